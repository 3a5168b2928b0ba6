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

use crate::aws::ec2::{owner, Ec2, TAG_CASE, TAG_EXPIRES, TAG_LAUNCH, TAG_OWNER};
use crate::aws::fleet::Fleet;
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::select;
use crate::case::store::{case_key_path, CaseState, Store};
use crate::cli::{CaseDirArgs, SelectArgs};
use crate::config::Config;
use crate::error::{Code, Result};
use crate::output;
use crate::tool::Tool;
use leftover::{
    delete_group_line, delete_key_line, delete_network_line, delete_placement_line,
    delete_profile_line, kept_key, quote, Report,
};
pub use leftover::{Kind, Leftover};

mod leftover;
use clap::Parser;
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

/// `--images`: deregister the images tagged with this case and owner, and their snapshots,
/// each on its own.
fn delete_images(cfg: &Config, killed: &mut Killed) -> Result<()> {
    crate::aws::runtime()?.block_on(async {
        let ec2 = crate::aws::ec2::connect(cfg.region.as_deref()).await?;
        let owner = owner();
        let mut report = Report::new(cfg, &ec2.region, &owner);
        match ec2.owned_images(&owner, Some(&cfg.case)).await {
            Ok(images) => {
                for i in images {
                    match ec2.delete_image(&i).await {
                        Ok(()) => output::note(format!(
                            "deregistered image {} ({}) and deleted {}",
                            i.id,
                            i.name,
                            output::count(i.snapshots.len(), "snapshot")
                        )),
                        Err(e) => report.undeleted(
                            Kind::Images,
                            &e,
                            &i.id,
                            format!(
                                "aws ec2 deregister-image --region {} --image-id {}{}",
                                quote(&report.region),
                                i.id,
                                i.snapshots
                                    .iter()
                                    .map(|s| format!(
                                        " && aws ec2 delete-snapshot --region {} --snapshot-id {s}",
                                        quote(&report.region)
                                    ))
                                    .collect::<String>()
                            ),
                        ),
                    }
                }
            }
            Err(e) => report.unlisted(Kind::Images, &e),
        }
        killed.left.extend(report.left);
        Ok(())
    })
}

/// `--case-sweep`: delete the spot requests, security groups, key pairs, placement groups and
/// networks tagged with the case and owner (what a case whose `.ec2-tools/` was lost still
/// has), once none of its instances is alive — each kind on its own.
async fn sweep_tagged(
    ec2: &Ec2,
    cfg: &Config,
    owner: &str,
    alive: Option<&[crate::aws::ec2::InstanceInfo]>,
    patience: Duration,
    report: &mut Report<'_>,
) {
    if let Some(alive) = alive.filter(|a| !a.is_empty()) {
        output::note(format!(
            "keeping the case's tagged key pairs and groups: {} instances still alive",
            alive.len()
        ));
        return;
    }
    let tagged = || format!("(tagged with case {})", cfg.case);
    cancel_spot_requests(ec2, cfg, owner, report).await;
    delete_each(
        report,
        Kind::SecurityGroups,
        ec2.tagged_groups(&cfg.case, owner).await,
        delete_group_line,
        async |g: &String| ec2.delete_group(g, patience).await,
        &tagged(),
    )
    .await;
    let keys = match ec2.tagged_key_pairs(&cfg.case, owner).await {
        Ok(keys) if alive.is_none() => {
            for k in keys {
                report.left.push(kept_key(&report.region, &k));
            }
            Ok(vec![])
        }
        listed => listed,
    };
    delete_each(
        report,
        Kind::KeyPairs,
        keys,
        delete_key_line,
        async |k: &String| ec2.delete_key_pair(k).await,
        &tagged(),
    )
    .await;
    delete_each(
        report,
        Kind::PlacementGroups,
        ec2.tagged_placement_groups(&cfg.case, owner).await,
        delete_placement_line,
        async |p: &String| ec2.delete_placement_group(p, patience).await,
        &tagged(),
    )
    .await;
    let iam = crate::aws::iam::Iam::new(ec2);
    delete_each(
        report,
        Kind::InstanceProfiles,
        iam.tagged_roles(&cfg.case, owner).await,
        |_: &str, name: &str| delete_profile_line(name),
        async |name: &String| iam.delete_ssm_profile(name).await,
        &tagged(),
    )
    .await;
    // Last: the security groups in them are gone.
    let nets = ec2.tagged_networks(&cfg.case, owner).await;
    let by_vpc: Vec<crate::case::store::NetworkState> = nets.as_ref().cloned().unwrap_or_default();
    delete_each(
        report,
        Kind::Networks,
        nets.map(|n| n.into_iter().map(|n| n.vpc).collect()),
        delete_network_line,
        async |vpc: &String| match by_vpc.iter().find(|n| &n.vpc == vpc) {
            Some(n) => ec2.delete_network(n, patience).await,
            None => Ok(()),
        },
        &tagged(),
    )
    .await;
}

/// Cancel the case's spot requests still open or active (one call for all of them).
async fn cancel_spot_requests(ec2: &Ec2, cfg: &Config, owner: &str, report: &mut Report<'_>) {
    match ec2.tagged_spot_requests(&cfg.case, owner).await {
        Ok(ids) if !ids.is_empty() => match ec2.cancel_spot_requests(&ids).await {
            Ok(()) => output::note(format!(
                "cancelled spot requests {} (tagged with case {})",
                ids.join(", "),
                cfg.case
            )),
            Err(e) => report.undeleted(
                Kind::SpotRequests,
                &e,
                "",
                format!(
                    "aws ec2 cancel-spot-instance-requests --region {} \
                     --spot-instance-request-ids {}",
                    quote(&report.region),
                    ids.join(" ")
                ),
            ),
        },
        Ok(_) => {}
        Err(e) => report.unlisted(Kind::SpotRequests, &e),
    }
}

/// One kind of the sweep: what its listing found, deleted one by one. A listing that failed,
/// or a deletion, is one leftover each; the others go on.
async fn delete_each(
    report: &mut Report<'_>,
    kind: Kind,
    listed: Result<Vec<String>>,
    by_hand: fn(&str, &str) -> String,
    delete: impl AsyncFn(&String) -> Result<()>,
    why: &str,
) {
    let items = match listed {
        Ok(items) => items,
        Err(e) => return report.unlisted(kind, &e),
    };
    for item in items {
        match delete(&item).await {
            Ok(()) => output::note(format!("deleted {} {item} {why}", kind.one())),
            Err(e) => {
                let line = by_hand(&report.region, &item);
                report.undeleted(kind, &e, &item, line);
            }
        }
    }
}

/// Delete what the tools created for the case once no instance of it is alive, each kind on
/// its own (the case state forgets each as it goes).
/// One deletion of something the case made: what it is, and what is said either way.
struct Deleted<'a> {
    kind: Kind,
    name: &'a str,
    /// The AWS CLI line that deletes it by hand.
    line: String,
    /// Said when it is gone.
    said: String,
}

impl Deleted<'_> {
    /// Gone: say so and forget it in case.json at once (a later failure keeps the rest).
    /// Not: report it with the line that deletes it by hand.
    fn settle(
        self,
        r: Result<()>,
        state: &mut CaseState,
        store: &Store,
        report: &mut Report<'_>,
        forget: impl FnOnce(&mut CaseState),
    ) -> Result<()> {
        match r {
            Ok(()) => {
                output::note(self.said);
                forget(state);
                state.save(store)
            }
            Err(e) => {
                report.undeleted(self.kind, &e, self.name, self.line);
                Ok(())
            }
        }
    }
}

async fn cleanup(
    ec2: &Ec2,
    cfg: &Config,
    store: &Store,
    alive: Option<&[crate::aws::ec2::InstanceInfo]>,
    patience: Duration,
    report: &mut Report<'_>,
) -> Result<()> {
    let mut state = CaseState::load(store)?;
    if state.key_name.is_none()
        && state.security_group.is_none()
        && state.placement_group.is_none()
        && state.network.is_none()
        && state.iam_profile.is_none()
        && !state.spot
    {
        return Ok(());
    }
    if let Some(alive) = alive {
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
    }
    if state.spot {
        cancel_spot_requests(ec2, cfg, &owner(), report).await;
    }
    delete_made(ec2, store, &mut state, alive.is_some(), patience, report).await?;
    if state.spot && report.left.iter().all(|l| l.kind != Kind::SpotRequests) {
        state.spot = false;
        state.save(store)?;
    }
    Ok(())
}

/// The role and instance profile the case made for SSM, if any.
async fn delete_ssm_profile(
    ec2: &Ec2,
    store: &Store,
    state: &mut CaseState,
    report: &mut Report<'_>,
) -> Result<()> {
    let Some(name) = state.iam_profile.clone() else {
        return Ok(());
    };
    let r = crate::aws::iam::Iam::new(ec2)
        .delete_ssm_profile(&name)
        .await;
    let gone = Deleted {
        kind: Kind::InstanceProfiles,
        name: &name,
        line: delete_profile_line(&name),
        said: format!("deleted IAM instance profile and role {name}"),
    };
    gone.settle(r, state, store, report, |s| s.iam_profile = None)
}

/// Delete what the case made, in dependency order (placement group, security group, key
/// pair, then its network), each forgotten in case.json the moment it is gone. The key pair
/// stays when the case's instances cannot be listed (`listed` false): one may still use it.
async fn delete_made(
    ec2: &Ec2,
    store: &Store,
    state: &mut CaseState,
    listed: bool,
    patience: Duration,
    report: &mut Report<'_>,
) -> Result<()> {
    if let Some(pg) = state.placement_group.clone() {
        let r = ec2.delete_placement_group(&pg, patience).await;
        let line = delete_placement_line(&report.region, &pg);
        let said = format!("deleted placement group {pg}");
        let gone = Deleted {
            kind: Kind::PlacementGroups,
            name: &pg,
            line,
            said,
        };
        gone.settle(r, state, store, report, |s| s.placement_group = None)?;
    }
    if let Some(sg) = state.security_group.clone() {
        let r = ec2.delete_group(&sg, patience).await;
        let line = delete_group_line(&report.region, &sg);
        let said = format!("deleted security group {sg}");
        let gone = Deleted {
            kind: Kind::SecurityGroups,
            name: &sg,
            line,
            said,
        };
        gone.settle(r, state, store, report, |s| s.security_group = None)?;
    }
    delete_ssm_profile(ec2, store, state, report).await?;
    if let Some(key) = state.key_name.clone() {
        if !listed {
            report.left.push(kept_key(&report.region, &key));
        } else {
            let r = ec2.delete_key_pair(&key).await;
            let key_file = case_key_path(store.dir());
            let said = if r.is_ok() && std::fs::remove_file(&key_file).is_ok() {
                format!("deleted key pair {key} and its local private key")
            } else {
                format!("deleted key pair {key}")
            };
            if r.is_ok() {
                let _ = std::fs::remove_file(key_file.with_extension("pub"));
            }
            let line = delete_key_line(&report.region, &key);
            let gone = Deleted {
                kind: Kind::KeyPairs,
                name: &key,
                line,
                said,
            };
            gone.settle(r, state, store, report, |s| s.key_name = None)?;
        }
    }
    // Last: the group in it is gone (its instances' interfaces may linger: retried).
    if let Some(net) = state.network.clone() {
        let r = ec2.delete_network(&net, patience).await;
        let line = delete_network_line(&report.region, &net.vpc);
        let said = format!("deleted network {}", net.vpc);
        let gone = Deleted {
            kind: Kind::Networks,
            name: &net.vpc,
            line,
            said,
        };
        gone.settle(r, state, store, report, |s| s.network = None)?;
    }
    Ok(())
}
