//! ec2-killall: terminate every described instance, and only then forget it.
//!
//! A descriptor is removed only once AWS has accepted the termination (or no longer knows the
//! instance at all), so a failure — throttling, a network error — leaves it in place for the
//! next run. Running it twice is fine. `--case-sweep` also finds instances tagged with this
//! case and owner that have no descriptor (recovery after lost files); `--expired` sweeps the
//! whole region for this owner's instances past their `--ttl`, whatever directory launched
//! them. When the last instance of the case is gone, the key pair and security group the
//! tools made for it are deleted too (retrying while AWS still reports the group in use);
//! with `--case-sweep` also those found by their case and owner tags, so a case whose
//! `.ec2-tools/` was lost leaves nothing behind. Without `--case-sweep`, instances of the case
//! that have no descriptor (a crash between launch and descriptor) are reported, exit 1.

use crate::aws::ec2::{self, owner, Ec2, TAG_CASE, TAG_EXPIRES, TAG_LAUNCH};
use crate::case::descriptor::InstanceState;
use crate::case::select::select;
use crate::case::store::{case_key_path, CaseState, Store};
use crate::cli::{CaseDirArgs, SelectArgs};
use crate::config::Config;
use crate::error::{Code, Result};
use crate::output;
use crate::tool::Tool;
use clap::Parser;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// The command line of `ec2-killall` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Terminate every described (or selected) instance; a \
descriptor is removed once AWS accepted the termination; the case's key pair and security group go \
with the last instance. Running it twice is fine",
    after_help = "Examples:
  ec2-killall                                     the whole case: instances, key pair, group
  ec2-killall --role slave                        only the slaves
  ec2-killall --case-sweep                        also what a lost directory left running
  ec2-killall --expired --dir /tmp                every instance of yours past its --ttl
  ec2-killall --images                            and the images baked from this case"
)]
pub struct Cli {
    /// Also terminate instances tagged with this case and owner that have no descriptor
    #[arg(long)]
    case_sweep: bool,
    /// Also terminate this owner's instances past their --ttl, in the whole region
    #[arg(long)]
    expired: bool,
    /// Also deregister the images baked from this case (ec2-bake) and delete their
    /// snapshots; without it images outlive the case
    #[arg(long)]
    images: bool,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    case: CaseDirArgs,
}

/// How long to keep retrying the security group's deletion.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(300);

/// The `ec2-killall` tool.
pub struct Killall;

impl Tool for Killall {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        let settings = cli.case.dir.settings()?;
        let killed = killall(&settings, &cli)?;
        for id in &killed.forgotten {
            output::data(format!("{id} forgotten"));
        }
        for (id, state) in &killed.terminated {
            output::data(format!("{id} {state}"));
        }
        Ok(killed.code())
    }
}

/// What `ec2-killall` did.
#[derive(Debug, Default)]
pub struct Killed {
    /// Instances whose termination AWS accepted, with the state it reported; their
    /// descriptors are removed.
    pub terminated: Vec<(String, InstanceState)>,
    /// Instances AWS no longer knows (terminated long ago): descriptors removed.
    pub unknown: Vec<String>,
    /// Hosts of your own (`ec2-hosts add`) forgotten: descriptors removed, nothing terminated.
    pub forgotten: Vec<String>,
    /// Instances not confirmed terminated: descriptors kept for the next run.
    pub unconfirmed: Vec<String>,
    /// Instances tagged with the case that have no descriptor here and were left running
    /// (`--case-sweep` terminates them).
    pub untracked: Vec<String>,
}

impl Killed {
    /// The tool's exit code: 1 when anything is left running or unconfirmed.
    pub fn code(&self) -> Code {
        if self.unconfirmed.is_empty() && self.untracked.is_empty() {
            Code::Ok
        } else {
            Code::Partial
        }
    }
}

/// The work of ec2-killall in `settings`: terminate, forget, clean up (and `--images`); the
/// case's ssh_config and known_hosts then follow the descriptors that are left.
pub(crate) fn killall(settings: &crate::settings::Settings, cli: &Cli) -> Result<Killed> {
    let cfg = crate::cli::resolve_case(settings, &cli.case.case, &cli.case.aws)?;
    // The case's warm sessions go first: nothing of the case outlives its instances.
    crate::remote::holder::stop(&cfg.dir.join(crate::case::store::STATE_DIR));
    let killed = kill(&cfg, cli)?;
    if cli.images {
        delete_images(&cfg)?;
    }
    let ssh = crate::cli::SshArgs::default().resolve(settings)?;
    crate::remote::sshconf::update(&Store::new(&cfg.dir), &ssh);
    Ok(killed)
}

fn kill(cfg: &Config, opts: &Cli) -> Result<Killed> {
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let (own, hosts): (Vec<_>, Vec<_>) = select(&store, &opts.select.resolve())?
        .into_iter()
        .partition(|d| d.is_static());
    let mut killed = Killed::default();
    // Hosts of your own are forgotten, never terminated: no AWS call is about them.
    for d in &own {
        store.remove(&d.id)?;
        killed.forgotten.push(d.id.clone());
    }
    if !own.is_empty() && hosts.is_empty() && !opts.select.is_empty() {
        return Ok(killed);
    }
    // A key pair or security group the tools made for the case may still exist in AWS.
    let has_resources = CaseState::has_resources(&store);
    if hosts.is_empty() && !opts.case_sweep && !opts.expired && !has_resources {
        output::note(format!(
            "no instance descriptors in {}: nothing to terminate",
            store.dir().display()
        ));
        return Ok(killed);
    }
    let rt = crate::aws::runtime()?;
    rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let mut ids: Vec<String> = hosts.iter().map(|d| d.id.clone()).collect();
        let fresh = crate::aws::errors::fresh_ids(&hosts);
        let owner = owner();
        // Instances of the case without a descriptor (a crash between launch and descriptor):
        // terminated with --case-sweep, else reported (exit 1). One DescribeInstances.
        if opts.case_sweep || opts.select.is_empty() {
            let known: BTreeSet<String> = store.load_all()?.into_iter().map(|d| d.id).collect();
            let lost: Vec<String> = ec2
                .describe_case(&cfg.case, Some(&owner), &InstanceState::LIVE)
                .await?
                .into_iter()
                .map(|i| i.id)
                .filter(|id| !known.contains(id) && !ids.contains(id))
                .collect();
            if opts.case_sweep {
                for id in lost {
                    output::note(format!(
                        "{id}: tagged {TAG_CASE}={} but not described here: terminating",
                        cfg.case
                    ));
                    ids.push(id);
                }
            } else if !lost.is_empty() {
                output::note(format!(
                    "{} instances tagged {TAG_CASE}={} (owner {owner}) have no descriptor here \
                     (a crash between launch and descriptor?): {}; `ec2-killall --case-sweep` \
                     terminates them",
                    lost.len(),
                    cfg.case,
                    lost.join(", ")
                ));
                killed.untracked = lost;
            }
        }
        if opts.expired {
            let now = SystemTime::now();
            for i in ec2.describe_expiring(&owner).await? {
                let expired = i
                    .tags
                    .get(TAG_EXPIRES)
                    .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                    .is_some_and(|t| t <= now);
                if expired && !ids.contains(&i.id) {
                    output::note(format!(
                        "{}: expired at {} (case {}): terminating",
                        i.id,
                        i.tags[TAG_EXPIRES],
                        i.tags.get(TAG_CASE).map(String::as_str).unwrap_or("?")
                    ));
                    ids.push(i.id);
                }
            }
        }
        if !ids.is_empty() {
            let result = ec2.terminate(&ids, &fresh).await?;
            let mut done = BTreeSet::new();
            for (id, state) in &result.accepted {
                if state.is_gone() {
                    store.remove(id)?;
                    killed.terminated.push((id.clone(), *state));
                    done.insert(id.clone());
                }
            }
            for id in &result.unknown {
                store.remove(id)?;
                output::note(format!(
                    "{id}: AWS no longer knows this instance; descriptor removed"
                ));
                killed.unknown.push(id.clone());
                done.insert(id.clone());
            }
            let failed: Vec<&String> = ids.iter().filter(|id| !done.contains(*id)).collect();
            if !failed.is_empty() {
                output::note(format!(
                    "{} of {} instances not confirmed terminated (descriptors kept): {}",
                    failed.len(),
                    ids.len(),
                    failed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                killed.unconfirmed = failed.into_iter().cloned().collect();
            }
        } else if !has_resources && !opts.case_sweep {
            output::note(format!("no instances of case {} to terminate", cfg.case));
        }
        if killed.code() == Code::Ok && store.load_all()?.is_empty() {
            if has_resources {
                cleanup(&ec2, cfg, &store, CLEANUP_PATIENCE).await?;
            }
            if opts.case_sweep {
                sweep_tagged(&ec2, cfg, &owner, CLEANUP_PATIENCE).await?;
            }
        }
        Ok(killed)
    })
}

/// `--images`: deregister the images tagged with this case and owner, and their snapshots.
fn delete_images(cfg: &Config) -> Result<()> {
    crate::aws::runtime()?.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        for i in ec2.owned_images(&owner(), Some(&cfg.case)).await? {
            ec2.delete_image(&i).await?;
            output::note(format!(
                "deregistered image {} ({}) and deleted {}",
                i.id,
                i.name,
                output::count(i.snapshots.len(), "snapshot")
            ));
        }
        Ok(())
    })
}

/// `--case-sweep`: delete the security groups and key pairs tagged with the case and owner
/// (what a case whose `.ec2-tools/` was lost still has), once none of its instances is alive.
async fn sweep_tagged(ec2: &Ec2, cfg: &Config, owner: &str, patience: Duration) -> Result<()> {
    let groups = ec2.tagged_groups(&cfg.case, owner).await?;
    let keys = ec2.tagged_key_pairs(&cfg.case, owner).await?;
    let placements = ec2.tagged_placement_groups(&cfg.case, owner).await?;
    let networks = ec2.tagged_networks(&cfg.case, owner).await?;
    if groups.is_empty() && keys.is_empty() && placements.is_empty() && networks.is_empty() {
        return Ok(());
    }
    let alive = ec2
        .describe_case(&cfg.case, Some(owner), &InstanceState::LIVE)
        .await?;
    if !alive.is_empty() {
        output::note(format!(
            "keeping the case's tagged key pairs and groups: {} instances still alive",
            alive.len()
        ));
        return Ok(());
    }
    for g in groups {
        ec2.delete_group(&g, patience).await?;
        output::note(format!(
            "deleted security group {g} (tagged with case {})",
            cfg.case
        ));
    }
    for k in keys {
        ec2.delete_key_pair(&k).await?;
        output::note(format!(
            "deleted key pair {k} (tagged with case {})",
            cfg.case
        ));
    }
    for p in placements {
        ec2.delete_placement_group(&p, patience).await?;
        output::note(format!(
            "deleted placement group {p} (tagged with case {})",
            cfg.case
        ));
    }
    // Last: the security groups in them are gone.
    for n in networks {
        ec2.delete_network(&n, patience).await?;
        output::note(format!(
            "deleted network {} (tagged with case {})",
            n.vpc, cfg.case
        ));
    }
    Ok(())
}

/// Delete what the tools created for the case once no instance of it is alive.
async fn cleanup(ec2: &Ec2, cfg: &Config, store: &Store, patience: Duration) -> Result<()> {
    let mut state = CaseState::load(store)?;
    if state.key_name.is_none()
        && state.security_group.is_none()
        && state.placement_group.is_none()
        && state.network.is_none()
    {
        return Ok(());
    }
    let alive = ec2
        .describe_case(&cfg.case, Some(&owner()), &InstanceState::LIVE)
        .await?;
    let ours: Vec<&str> = alive
        .iter()
        .filter(|i| {
            i.tags
                .get(TAG_LAUNCH)
                .is_some_and(|t| t.contains(&state.nonce))
        })
        .map(|i| i.id.as_str())
        .collect();
    if !ours.is_empty() {
        output::note(format!(
            "keeping the case's key pair and security group: still used by {}",
            ours.join(", ")
        ));
        return Ok(());
    }
    if let Some(pg) = state.placement_group.clone() {
        ec2.delete_placement_group(&pg, patience).await?;
        output::note(format!("deleted placement group {pg}"));
        state.placement_group = None;
        state.save(store)?;
    }
    if let Some(sg) = state.security_group.clone() {
        ec2.delete_group(&sg, patience).await?;
        output::note(format!("deleted security group {sg}"));
        state.security_group = None;
        state.save(store)?;
    }
    if let Some(key) = state.key_name.clone() {
        ec2.delete_key_pair(&key).await?;
        let key_file = case_key_path(store.dir());
        let had_file = std::fs::remove_file(&key_file).is_ok();
        let _ = std::fs::remove_file(key_file.with_extension("pub"));
        output::note(if had_file {
            format!("deleted key pair {key} and its local private key")
        } else {
            format!("deleted key pair {key}")
        });
        state.key_name = None;
        state.save(store)?;
    }
    // Last: the group in it is gone (its instances' interfaces may linger: retried).
    if let Some(net) = state.network.clone() {
        ec2.delete_network(&net, patience).await?;
        output::note(format!("deleted network {}", net.vpc));
        state.network = None;
        state.save(store)?;
    }
    Ok(())
}
