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
//!
//! Cleanup does all it can: each kind of resource (instances, spot requests, security groups,
//! key pairs, placement groups, networks, images) is listed and deleted on its own, so one
//! kind that cannot be listed or deleted — a call a least-privilege policy denies, one an
//! emulator does not implement, an error of AWS's — is reported in one line naming the kind,
//! the action and the error, with the AWS CLI line that removes it by hand, and the others are
//! still cleaned (exit 1). A key pair is kept while the case's instances cannot be listed:
//! it may still be the only way into one.
//!
//! Here: the instances (terminate, then forget). What does not belong here: deleting what
//! the case made besides them (made.rs), how leftovers are reported (leftover.rs).

use crate::aws::ec2::{owner, Ec2, TAG_CASE, TAG_EXPIRES, TAG_OWNER};
use crate::aws::fleet::Fleet;
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::select;
use crate::case::store::{CaseState, Store};
use crate::cli::{CaseDirArgs, SelectArgs};
use crate::config::Config;
use crate::error::{Code, Result};
use crate::output;
use crate::tool::Tool;
use leftover::{quote, Report};
pub use leftover::{Kind, Leftover};

mod leftover;
mod made;
use clap::Parser;
use made::{cleanup, delete_images, sweep_tagged};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// The command line of `ec2-killall` (its `--help` is the reference).
#[derive(Parser, Debug, Default)]
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
    #[command(flatten)]
    pub(crate) json: crate::cli::JsonArgs,
}

/// How long to keep retrying the security group's deletion.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(300);

/// The `ec2-killall` tool.
pub struct Killall;

impl Tool for Killall {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        cli.json.apply();
        let settings = cli.case.dir.settings()?;
        let killed = killall(&settings, &cli)?;
        for id in &killed.forgotten {
            let json = serde_json::json!({"id": id, "state": "forgotten"});
            output::record(json, format!("{id} forgotten"));
        }
        for (id, state) in &killed.terminated {
            let json = serde_json::json!({"id": id, "state": state});
            output::record(json, format!("{id} {state}"));
        }
        for l in &killed.left {
            output::note(l);
        }
        if !killed.left.is_empty() {
            output::note(format!(
                "left behind: {}; the lines above say how to remove each by hand, or run \
                 ec2-killall again once the cause is fixed",
                killed
                    .left
                    .iter()
                    .map(|l| l.kind.as_str())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
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
    /// What could not be listed or removed, kind by kind (the rest was still cleaned).
    pub left: Vec<Leftover>,
}

impl Killed {
    /// The tool's exit code: 1 when anything is left running, unconfirmed or behind.
    pub fn code(&self) -> Code {
        if self.unconfirmed.is_empty() && self.untracked.is_empty() && self.left.is_empty() {
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
    let state = cfg.dir.join(crate::case::store::STATE_DIR);
    let had_state = state.exists();
    // The case's warm sessions go first: nothing of the case outlives its instances.
    crate::remote::holder::stop(&state);
    let result = kill(&cfg, cli, settings).and_then(|mut killed| {
        if cli.images {
            delete_images(&cfg, &mut killed)?;
        }
        let ssh = crate::cli::SshArgs::default().resolve(settings)?;
        crate::remote::sshconf::update(&Store::new(&cfg.dir), &ssh);
        Ok(killed)
    });
    // A directory that had no state keeps none: the lock and the (empty) ssh_config and
    // known_hosts this run made go, and the directory only if that left it empty (anything
    // else in it stays).
    if !had_state && Store::new(&cfg.dir).load_all().is_ok_and(|d| d.is_empty()) {
        for f in ["lock", "ssh_config", "known_hosts"] {
            let _ = std::fs::remove_file(state.join(f));
        }
        let _ = std::fs::remove_dir(&state);
    }
    result
}

fn kill(cfg: &Config, opts: &Cli, settings: &crate::settings::Settings) -> Result<Killed> {
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let (own, hosts): (Vec<_>, Vec<_>) = select(&store, &opts.select.resolve())?
        .into_iter()
        .partition(|d| d.is_static());
    // Hosts of your own are forgotten, never terminated: no AWS call is about them.
    let mut killed = Killed {
        forgotten: forget(&store, &own)?,
        ..Default::default()
    };
    if !own.is_empty() && hosts.is_empty() && !opts.select.is_empty() {
        return Ok(killed);
    }
    // A key pair or security group the tools made for the case may still exist in AWS (or a
    // launch was in flight when a run crashed).
    let has_resources = CaseState::has_resources(&store);
    if hosts.is_empty() && !opts.case_sweep && !opts.expired && !has_resources {
        output::note(format!(
            "no instance descriptors in {}: nothing to terminate",
            store.dir().display()
        ));
        return Ok(killed);
    }
    let ssh = crate::cli::SshArgs::default().resolve(settings)?;
    let rt = crate::aws::runtime()?;
    rt.block_on(async {
        let fleet = Fleet::connect(cfg.clone(), ssh).await?;
        let ec2 = &fleet.ec2;
        let owner = owner();
        let mut report = Report::new(cfg, &ec2.region, &owner);
        let mut hosts = hosts;
        // A launch a crash interrupted: its instances are this directory's too, including
        // those EC2 does not list yet.
        if opts.select.is_empty() {
            match fleet.recover(&hosts, false).await {
                Ok(found) => hosts.extend(found),
                Err(e) => report.unlisted(Kind::Instances, &e),
            }
        }
        let mut ids: Vec<String> = hosts.iter().map(|d| d.id.clone()).collect();
        let fresh = crate::aws::errors::fresh_ids(&hosts);
        // Whether no instance of the case is alive but those terminated here: false when the
        // case's instances cannot be listed.
        let mut listed = true;
        if opts.case_sweep || opts.select.is_empty() {
            listed =
                find_untracked(&fleet, opts, &owner, &mut ids, &mut killed, &mut report).await?;
        }
        if opts.expired {
            find_expired(ec2, &owner, &mut ids, &mut report).await;
        }
        if !ids.is_empty() {
            let about = (ids.as_slice(), &fresh, hosts.as_slice());
            terminate(ec2, &store, about, &mut killed, &mut report).await?;
        } else if !has_resources && !opts.case_sweep && listed {
            output::note(format!("no instances of case {} to terminate", cfg.case));
        }
        let instances_gone = killed.unconfirmed.is_empty()
            && killed.untracked.is_empty()
            && store.load_all()?.is_empty();
        if instances_gone {
            let terminated = !killed.terminated.is_empty();
            release(
                &fleet,
                opts,
                &owner,
                listed,
                terminated,
                has_resources,
                &mut report,
            )
            .await?;
        }
        killed.left = report.left;
        Ok(killed)
    })
}

/// With every instance of the case gone: delete what the case made (`has_resources`) and,
/// with --case-sweep, what is tagged with it. Instances terminated just now take a while to
/// release what they use: worth waiting for. With none terminated and none listable, one
/// try each.
async fn release(
    fleet: &Fleet,
    opts: &Cli,
    owner: &str,
    listed: bool,
    terminated: bool,
    has_resources: bool,
    report: &mut Report<'_>,
) -> Result<()> {
    let (ec2, cfg) = (&fleet.ec2, &fleet.cfg);
    let patience = if !listed && !terminated {
        Duration::ZERO
    } else {
        CLEANUP_PATIENCE
    };
    let alive = alive_known(ec2, cfg, owner, listed, report).await;
    if has_resources {
        cleanup(ec2, cfg, &fleet.store, alive.as_deref(), patience, report).await?;
    }
    if opts.case_sweep {
        sweep_tagged(ec2, cfg, owner, alive.as_deref(), patience, report).await;
    }
    Ok(())
}

/// Remove the descriptors of `own` hosts; returns their ids.
fn forget(store: &Store, own: &[crate::case::descriptor::Descriptor]) -> Result<Vec<String>> {
    own.iter()
        .map(|d| store.remove(&d.id).map(|_| d.id.clone()))
        .collect()
}

/// Instances of the case without a descriptor (a crash between launch and descriptor), in
/// one DescribeInstances: added to `ids` with --case-sweep, else reported (exit 1). False
/// when the case's instances cannot be listed.
async fn find_untracked(
    fleet: &Fleet,
    opts: &Cli,
    owner: &str,
    ids: &mut Vec<String>,
    killed: &mut Killed,
    report: &mut Report<'_>,
) -> Result<bool> {
    let cfg = &fleet.cfg;
    let known: BTreeSet<String> = fleet.store.load_all()?.into_iter().map(|d| d.id).collect();
    let found = match fleet
        .ec2
        .describe_case(&cfg.case, Some(owner), &InstanceState::LIVE)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            report.unlisted(Kind::Instances, &e);
            return Ok(false);
        }
    };
    let lost: Vec<String> = found
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
            "{} instances tagged {TAG_CASE}={} (owner {owner}) have no \
             descriptor here (a crash between launch and descriptor?): {}; \
             `ec2-killall --case-sweep` terminates them",
            lost.len(),
            cfg.case,
            lost.join(", ")
        ));
        killed.untracked = lost;
    }
    Ok(true)
}

/// `--expired`: the owner's instances whose expiry tag has passed, added to `ids`.
async fn find_expired(ec2: &Ec2, owner: &str, ids: &mut Vec<String>, report: &mut Report<'_>) {
    let expiring = match ec2.describe_expiring(owner).await {
        Ok(expiring) => expiring,
        Err(e) => {
            let cli = format!(
                "aws ec2 describe-instances --region {} --filters {} \
                 Name=tag-key,Values={TAG_EXPIRES}",
                quote(&report.region),
                quote(&format!("Name=tag:{TAG_OWNER},Values={owner}"))
            );
            report.undeleted(Kind::Instances, &e, "", cli);
            return;
        }
    };
    let now = SystemTime::now();
    for i in expiring {
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

/// Terminate `ids`: a descriptor goes only once AWS confirms its instance is gone (or no
/// longer knows it); the rest are kept and named.
async fn terminate(
    ec2: &Ec2,
    store: &Store,
    (ids, fresh, hosts): (&[String], &BTreeSet<String>, &[Descriptor]),
    killed: &mut Killed,
    report: &mut Report<'_>,
) -> Result<()> {
    let result = match ec2.terminate(ids, fresh).await {
        Ok(result) => result,
        Err(e) => {
            output::note(format!("{e} (descriptors kept)"));
            let cli = format!(
                "aws ec2 terminate-instances --region {} --instance-ids {}",
                quote(&report.region),
                ids.join(" ")
            );
            report.undeleted(Kind::Instances, &e, "", cli);
            killed.unconfirmed = ids.to_vec();
            return Ok(());
        }
    };
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
    let failed: Vec<String> = ids
        .iter()
        .filter(|id| !done.contains(*id))
        .cloned()
        .collect();
    if !failed.is_empty() {
        output::note(format!(
            "{} of {} instances not confirmed terminated (descriptors kept): {}",
            failed.len(),
            ids.len(),
            failed.join(", ")
        ));
        killed.unconfirmed = failed;
    }
    say_cost(ec2, store, hosts, &done).await;
    Ok(())
}

/// What the instances terminated now cost, from their descriptors (type, market, launch
/// time; this run of each): `the case ran 3 instances for 0.9 instance-hours: $0.0094`.
async fn say_cost(ec2: &Ec2, store: &Store, hosts: &[Descriptor], done: &BTreeSet<String>) {
    use crate::aws::cost;
    let ran: Vec<(cost::Kind, f64)> = hosts
        .iter()
        .filter(|d| done.contains(&d.id))
        .filter(|d| matches!(d.state(), InstanceState::Running | InstanceState::Pending))
        .filter_map(|d| {
            let kind = (d.instance_type.clone()?, d.market() == Some("spot"));
            Some((kind, cost::hours_since(d.launched_at.as_deref())?))
        })
        .collect();
    if ran.is_empty() {
        return;
    }
    let kinds = ran.iter().map(|(k, _)| k.clone()).collect();
    let prices = cost::prices(ec2, store, &kinds).await;
    let hours: f64 = ran.iter().map(|(_, h)| h).sum();
    output::note(format!(
        "the case ran {} for {hours:.2} instance-hours: {}",
        output::count(ran.len(), "instance"),
        cost::ran(&ran, &prices).show()
    ));
}

/// Whether instances of the case are still alive: `Some(ids)` (empty: none), or `None` when
/// they cannot be listed (said once in the report).
async fn alive_known(
    ec2: &Ec2,
    cfg: &Config,
    owner: &str,
    listed: bool,
    report: &mut Report<'_>,
) -> Option<Vec<crate::aws::ec2::InstanceInfo>> {
    if !listed {
        return None;
    }
    match ec2
        .describe_case(&cfg.case, Some(owner), &InstanceState::LIVE)
        .await
    {
        Ok(v) => Some(v),
        Err(e) => {
            report.unlisted(Kind::Instances, &e);
            None
        }
    }
}
