//! ec2-stop, ec2-start, ec2-reboot, ec2-revert: one command per lifecycle stage, on the
//! selected instances of a case (wolphin's operations), each waiting for its target state.
//!
//! start and reboot wait until SSH logins work again, exactly as ec2-create does; a reboot is
//! recognised by a new boot id, so a probe that slips in before the instance went down does not
//! count. Addresses change across stop/start: descriptors are updated as they appear.
//!
//! revert replaces instances with fresh ones from the AMI, keeping each one's index, role and
//! name. Batch (default) terminates all, then launches all: fast, but the capacity given up may
//! not come back (account limits, spot, contended instance types). `--sequential` launches each
//! replacement first and terminates the old instance only once the new one is ready: slower,
//! one at a time, but the case never holds fewer instances than before.

use crate::aws::fleet::{Ask, Fleet};
use crate::aws::wait::{self, Fate, Goal, Patience, ReadyCheck};
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::select_some;
use crate::cli::{CaseDirArgs, FleetArgs, FleetSetup, LaunchArgs, SelectArgs, SshArgs};
use crate::config::parse_duration;
use crate::error::{Code, Error, Result};
use crate::output;
use crate::remote::fanout::on_connections;
use crate::remote::ssh;
use crate::tool::Tool;
use clap::{Args, Parser};
use std::collections::BTreeMap;
use std::time::Duration;

/// What every lifecycle stage takes: the selected instances of a case, and how long to wait.
#[derive(Args, Debug)]
pub(crate) struct StageArgs {
    /// Give up waiting after this long (exit 3)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

/// What ec2-stop takes: no SSH flags (nothing is logged in to; the SSH settings only keep the
/// case's ssh_config current).
#[derive(Args, Debug)]
pub(crate) struct StopArgs {
    /// Give up waiting after this long (exit 3)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    case: CaseDirArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

impl StopArgs {
    fn resolve(&self) -> Result<FleetSetup> {
        let (settings, cfg) = self.case.resolve()?;
        let ssh = SshArgs::default().resolve(&settings)?;
        Ok(FleetSetup {
            settings,
            cfg,
            ssh,
            selection: self.select.resolve(),
        })
    }
}

fn ids(v: &[Descriptor]) -> Vec<String> {
    v.iter().map(|d| d.id.clone()).collect()
}

/// The frame every stage shares: the directory lock held, a non-empty selection, one fleet,
/// then `stage` on them.
fn on_selection(
    setup: FleetSetup,
    stage: impl AsyncFnOnce(&Fleet, Vec<Descriptor>) -> Result<Code>,
) -> Result<Code> {
    let FleetSetup {
        cfg,
        ssh: ssh_cfg,
        selection,
        ..
    } = setup;
    ssh::check_identity(&ssh_cfg)?;
    let store = crate::case::Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let (own, hosts): (Vec<Descriptor>, Vec<Descriptor>) = select_some(&store, &selection)?
        .into_iter()
        .partition(Descriptor::is_static);
    if !own.is_empty() {
        output::note(format!(
            "skipping {} of your own (not EC2 instances): {}",
            output::count(own.len(), "host"),
            own.iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if hosts.is_empty() {
        return Ok(Code::Ok);
    }
    crate::aws::runtime()?.block_on(async {
        let fleet = Fleet::connect(cfg, ssh_cfg).await?;
        let code = stage(&fleet, hosts).await;
        fleet.sync_ssh_files();
        code
    })
}

/// The command line of `ec2-stop` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Stop the selected instances (all by default) and wait until they are stopped; prints `<id> stopped` lines",
    after_help = "Examples:
  ec2-stop                                        every instance of the case (disks kept)
  ec2-stop --role slave && ec2-start --role slave"
)]
pub struct StopCli {
    #[command(flatten)]
    stage: StopArgs,
}

/// The `ec2-stop` tool.
pub struct Stop;

impl Tool for Stop {
    type Cli = StopCli;

    fn run(cli: StopCli) -> Result<Code> {
        cli.stage.json.apply();
        let patience = Patience::new(cli.stage.timeout);
        on_selection(cli.stage.resolve()?, async |fleet, mut hosts| {
            fleet.ec2.stop(&ids(&hosts)).await?;
            let late = wait::state(fleet, &mut hosts, &[InstanceState::Stopped], patience).await?;
            for d in hosts.iter().filter(|d| d.state() == InstanceState::Stopped) {
                output::record(
                    serde_json::json!({"id": d.id, "index": d.index, "state": "stopped"}),
                    format!("{} stopped", d.id),
                );
            }
            if late.is_empty() {
                Ok(Code::Ok)
            } else {
                Err(Error::infra(format!(
                    "timed out after {} waiting for instances to stop: {}",
                    humantime::format_duration(patience.timeout),
                    late.join(", ")
                )))
            }
        })
    }
}

/// The command line of `ec2-start` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Start the selected instances (all by default) and wait until each accepts SSH logins again (addresses may change: descriptors are updated); prints `<id> <address>` lines",
    after_help = "Examples:
  ec2-start                                       back after ec2-stop, SSH ready
  ec2-start --select 2-4 --timeout 15m"
)]
pub struct StartCli {
    #[command(flatten)]
    stage: StageArgs,
}

/// The `ec2-start` tool.
pub struct Start;

impl Tool for Start {
    type Cli = StartCli;

    fn run(cli: StartCli) -> Result<Code> {
        cli.stage.json.apply();
        let patience = Patience::new(cli.stage.timeout);
        on_selection(cli.stage.fleet.resolve()?, async |fleet, mut hosts| {
            fleet.ec2.start(&ids(&hosts)).await?;
            for d in &mut hosts {
                d.state = Some(InstanceState::Pending);
            }
            finish_ready(fleet, hosts, patience, ReadyCheck::default(), Goal::Start).await
        })
    }
}

/// The command line of `ec2-reboot` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Reboot the selected instances (all by default) and wait until each has rebooted and accepts SSH logins again; prints `<id> <address>` lines",
    after_help = "Examples:
  ec2-reboot --role slave                         after a kernel setting changed
  ec2-reboot --select 1 && ec2-exec-remote --select 1 uptime"
)]
pub struct RebootCli {
    /// Take an instance as rebooted after this long even if its boot id did not change
    #[arg(long, value_name = "DURATION", default_value = "240s", value_parser = parse_duration)]
    reboot_grace: Duration,
    #[command(flatten)]
    stage: StageArgs,
}

/// How many hosts ec2-reboot reads the boot id of at once.
const BOOT_ID_WIDTH: usize = 32;

/// The `ec2-reboot` tool.
pub struct Reboot;

impl Tool for Reboot {
    type Cli = RebootCli;

    fn run(cli: RebootCli) -> Result<Code> {
        cli.stage.json.apply();
        let patience = Patience::new(cli.stage.timeout);
        on_selection(cli.stage.fleet.resolve()?, async |fleet, hosts| {
            if fleet.ssh.transport == Some(crate::config::Transport::Ssm) {
                // Its agent answers until the reboot takes it down: no boot id, no proof.
                return Err(crate::error::Error::input(
                    "ec2-reboot proves each reboot by a new boot id read over SSH: not yet \
                     under transport ssm (ec2-stop and ec2-start work)",
                ));
            }
            // Boot ids before the reboot, read in parallel (instances that cannot be reached
            // now are simply waited for).
            let before = on_connections(&fleet.ssh, &hosts, BOOT_ID_WIDTH, |d, conn| {
                Ok(wait::boot_id(conn).map(|b| (d.id.clone(), b)))
            });
            let old_boot_ids: BTreeMap<String, String> =
                before.into_iter().flatten().flatten().collect();
            fleet.ec2.reboot(&ids(&hosts)).await?;
            output::note(format!("rebooting {} instances", hosts.len()));
            let check = ReadyCheck {
                old_boot_ids,
                grace: cli.reboot_grace,
                hook: None,
            };
            finish_ready(fleet, hosts, patience, check, Goal::Reboot).await
        })
    }
}

async fn finish_ready(
    fleet: &Fleet,
    hosts: Vec<Descriptor>,
    patience: Patience,
    check: ReadyCheck,
    goal: Goal,
) -> Result<Code> {
    let waited = wait::ready(fleet, hosts, patience, check).await?;
    waited.print_ready();
    match waited.error(goal, patience.timeout, Fate::Kept) {
        None => Ok(Code::Ok),
        Some(e) => Err(e),
    }
}

/// Contiguous runs of indexes: [2,3,4,7] → [(2,3),(7,1)].
fn runs(mut indexes: Vec<u32>) -> Vec<(u32, u32)> {
    indexes.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for i in indexes {
        match out.last_mut() {
            Some((start, len)) if *start + *len == i => *len += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// The command line of `ec2-revert` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Replace the selected instances (all by default) with fresh \
ones from the AMI, keeping each one's index, role and name; prints `<instance-id> <address>` lines",
    after_help = "Examples:
  ec2-revert                                      a clean slate between two runs
  ec2-revert --sequential --role master           never fewer instances than before"
)]
pub struct RevertCli {
    /// One at a time, each replacement launched and ready before its old instance is
    /// terminated (capacity is never given up); default: terminate all, then launch all
    #[arg(long)]
    sequential: bool,
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    launch: LaunchArgs,
}

/// The `ec2-revert` tool.
pub struct Revert;

impl Tool for Revert {
    type Cli = RevertCli;

    fn run(cli: RevertCli) -> Result<Code> {
        cli.stage.json.apply();
        let patience = Patience::new(cli.stage.timeout);
        let setup = cli.stage.fleet.resolve()?;
        let mut launch = cli.launch.resolve(&setup.settings)?;
        on_selection(setup, async |fleet, hosts| {
            // Fresh from the configured AMI; without one, from the AMI the instances run.
            if !launch.ami_configured {
                if let Some(id) = hosts.iter().find_map(|d| d.ami.clone()) {
                    launch.ami = crate::config::AmiSpec::Id(id);
                }
            }
            // Sequentially, one more instance at a time; else the replaced ones are
            // terminated first and free their vCPUs.
            let ask = Ask {
                count: u32::from(cli.sequential),
                min_ready: None,
                later: 0,
            };
            let mut launcher = fleet.launcher(&launch, ask).await?;
            if cli.sequential {
                let mut replacements = Vec::new();
                for old in &hosts {
                    let new = fleet
                        .launch(&mut launcher, old.index, 1, old.role())
                        .await?
                        .complete()?;
                    let waited = wait::ready(fleet, new, patience, ReadyCheck::default()).await?;
                    if let Some(e) = waited.error(Goal::AcceptSsh, patience.timeout, Fate::Kept) {
                        return Err(e.context(format!("replacing {} (kept)", old.label())));
                    }
                    fleet.terminate(std::slice::from_ref(old)).await?;
                    output::note(format!(
                        "{} replaced by {}",
                        old.label(),
                        waited.ready[0].id
                    ));
                    replacements.extend(waited.ready);
                }
                for d in &replacements {
                    d.print_record();
                }
                return Ok(Code::Ok);
            }
            fleet.terminate(&hosts).await?;
            let mut replacements = Vec::new();
            for (first, count) in runs(hosts.iter().map(|d| d.index).collect()) {
                // Roles are kept per index run; a run mixing roles is split by role.
                let mut by_role: BTreeMap<Option<String>, Vec<u32>> = BTreeMap::new();
                for d in hosts
                    .iter()
                    .filter(|d| d.index >= first && d.index < first + count)
                {
                    by_role
                        .entry(d.role().map(str::to_owned))
                        .or_default()
                        .push(d.index);
                }
                for (role, idx) in by_role {
                    for (f, c) in runs(idx) {
                        replacements.extend(
                            fleet
                                .launch(&mut launcher, f, c, role.as_deref())
                                .await?
                                .complete()?,
                        );
                    }
                }
            }
            replacements.sort_by_key(|d| d.index);
            finish_ready(
                fleet,
                replacements,
                patience,
                ReadyCheck::default(),
                Goal::AcceptSsh,
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_runs_are_contiguous() {
        assert_eq!(super::runs(vec![7, 2, 3, 4]), vec![(2, 3), (7, 1)]);
        assert_eq!(super::runs(vec![]), vec![]);
    }
}
