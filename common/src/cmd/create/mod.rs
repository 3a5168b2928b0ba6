//! ec2-create: bring the case to N running instances (of a role) that accept SSH logins.
//!
//! `ec2-create N` means "ensure N", so re-running a test-case script never grows the fleet: it
//! reuses running instances, starts stopped ones, adopts instances tagged with the case whose
//! descriptors were never written, and launches only the missing (`--add` launches N more
//! regardless; `--max M` terminates extras above M, highest index first — wolphin's min/max).
//! What to do is decided by `plan`, a pure function of what the case holds and what was
//! asked; `apply` only carries it out. Then the wait: every instance `running` and accepting
//! an SSH login, with `--setup` run on each the moment it is ready.
//!
//! Here: resolving the job, finding out what the case holds, applying the plan, the wait and
//! its verdict. What does not belong here: the options and their checks (options.rs), the
//! decision (plan.rs).

mod options;
mod plan;
pub use options::CreateOptions;
use options::{parse_roles, Roles, DEFAULT_TIMEOUT, MAX_COUNT};
use plan::{plan, Member, Plan, Want};

use crate::aws::ec2::InstanceInfo;
use crate::aws::fleet::{tag_index, Ask, Fleet};
use crate::aws::wait::{self, Fate, Goal, NotReady, Patience, ReadyCheck};
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::cli::{CaseDirArgs, LaunchArgs, SshArgs};
use crate::config::{parse_duration, LaunchConfig};
use crate::error::{Code, Error, Result};
use crate::output::{self, Dest, LinePrefixer};
use crate::remote::command::{who_lines, Stream, READ_WHO};
use crate::remote::ssh::{self, Conn};
use crate::tool::{self, Tool};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The command line of `ec2-create` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Make the test case hold N running instances (of a role) that \
accept SSH logins: reuse, start, adopt, launch only the missing; write one descriptor per instance; \
print `<instance-id> <address>` lines",
    after_help = "Examples:
  ec2-create 5                                    five instances, SSH ready, descriptors written
  ec2-create 1 --role server 3 --role client      two roles, one launch, one boot wait
  ec2-create 4 --role slave --type c6i.large,c5.large
  ec2-create 2 --type c7g.large --ami al2023      Graviton: the alias picks the arm64 image
  ec2-create 3 --user-data init.yaml --max-hourly-cost 1.50
  ec2-create 20 --setup install.sh --min-ready 18 --drop-failed
  ec2-create 8 --placement cluster --type c6in.large   network benchmark, one placement group
  ec2-create 4 --network auto                     a region without a default VPC: one made for the case
  ec2-create 4 --tag cost-center=4711 --iam-profile loadgen --volume-size 40
                                                  a company account: its cost tags on everything, a role, more disk
  ec2-create 3 --ami ami-0abc --user ubuntu --ttl 2h --open 80,8080 | ec2-exec-remote --from - uptime
  ec2-create 3 --json | jq -r .private_ip"
)]
pub struct Cli {
    /// How many instances (a positive integer): the minimum the case must hold; several, each
    /// followed by its --role, bring up several roles at once (`1 --role server 3 --role
    /// client`: one launch, one boot wait)
    #[arg(value_name = "N", required_unless_present = "roles",
          value_parser = clap::value_parser!(u32).range(1..=MAX_COUNT as i64))]
    count: Vec<u32>,
    /// Several roles at once, each with its N: `server=1,client=3` (instead of N and --role)
    #[arg(long, value_name = "ROLE=N,…", conflicts_with_all = ["count", "role"], value_parser = parse_roles)]
    roles: Option<Roles>,
    /// Terminate instances (of the role) above this many, highest index first
    #[arg(long, value_name = "M")]
    max: Option<u32>,
    /// Launch N more regardless of what the case holds
    #[arg(long, conflicts_with = "max")]
    add: bool,
    /// Role of these instances (e.g. master, slave): tagged and recorded; N counts this role
    /// (one per N when several are given)
    #[arg(long, value_name = "NAME")]
    role: Vec<String>,
    /// Upload SCRIPT and run it on each instance as soon as that one is ready (while others
    /// still boot); its output goes to stderr, prefixed; a failing script fails the instance
    #[arg(long, value_name = "SCRIPT")]
    setup: Option<PathBuf>,
    /// Succeed when at least M instances are ready (and set up); the rest are reported
    #[arg(long, value_name = "M")]
    min_ready: Option<u32>,
    /// Terminate the instances that did not get ready or failed their setup
    #[arg(long)]
    drop_failed: bool,
    /// Give up waiting after this long (exit 3; descriptors are kept)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    case: CaseDirArgs,
    #[command(flatten)]
    launch: LaunchArgs,
    #[command(flatten)]
    ssh: SshArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

/// Runs the setup script from stdin (after the identity lines, see `READ_WHO`) with its own
/// shebang, in a private temp file.
const SETUP: &str = "exec /bin/sh -c 'WHOf=$(mktemp \"${TMPDIR:-/tmp}/ec2-tools-setup.XXXXXX\") \
|| exit 97; cat > \"$f\"; chmod 700 \"$f\"; \"$f\" </dev/null; rc=$?; rm -f \"$f\"; exit $rc'";

/// The provision-while-booting hook: seed 001's provider → queue → configurer pipeline, with
/// the wait loop as provider and each probe thread as a configurer.
fn setup_hook(script: Vec<u8>, case_hosts: String) -> wait::ReadyHook {
    std::sync::Arc::new(move |d: &Descriptor, conn: &Conn| {
        let label = d.address.clone().unwrap_or_else(|| d.id.clone());
        // Setup output goes to stderr: ec2-create's stdout stays a list of instances.
        let mut out = LinePrefixer::new(&label, Dest::Stderr);
        let mut err = LinePrefixer::new(&label, Dest::Stderr);
        let mut input = who_lines(d, &case_hosts).into_bytes();
        input.extend_from_slice(&script);
        let r = conn.exec(
            &SETUP.replace("WHO", READ_WHO),
            Some(&input),
            None,
            &tool::interrupted,
            &mut |s, b| match s {
                Stream::Stdout => out.push(b),
                Stream::Stderr => err.push(b),
            },
        );
        match r {
            Ok(i) if i.code == 0 => Ok(()),
            Ok(i) => Err(format!("setup exited {}", i.code)),
            Err(e) => Err(format!("setup: {e}")),
        }
    })
}

/// The `ec2-create` tool.
pub struct Create;

impl Tool for Create {
    type Cli = Cli;

    /// Check, plan, apply, wait; print `<id> <address>` for every instance of the role.
    fn run(cli: Cli) -> Result<Code> {
        cli.json.apply();
        let settings = cli.case.dir.settings()?;
        let job = resolve(&settings, &cli.case, &cli.launch, &cli.ssh, cli.options()?)?;
        let created = create(job)?;
        for d in &created.ready {
            d.print_record();
        }
        match created.problem {
            None => Ok(Code::Ok),
            Some(e) => Err(e),
        }
    }
}

/// What `ec2-create` brought about.
#[derive(Debug)]
pub struct Created {
    /// The role's instances that are running and accept SSH (set up, with a setup script),
    /// in index order; their descriptors are written.
    pub ready: Vec<Descriptor>,
    /// Those that did not get ready, and why (descriptors kept unless dropped on purpose).
    pub failed: Vec<(Descriptor, NotReady)>,
    /// Why the tool would exit non-zero: instances not ready or not launched (unless
    /// `--min-ready` were met), or an interruption. `None`: all is well.
    pub problem: Option<Error>,
}

/// ec2-create's work, resolved once: where the case is, how to launch and log in, what was
/// asked, and the setup script's bytes.
pub(crate) struct Job {
    cfg: crate::config::Config,
    launch: LaunchConfig,
    ssh: crate::config::SshConfig,
    opts: CreateOptions,
    setup: Option<Vec<u8>>,
}

/// Resolve everything ec2-create needs in `settings` (the test case's layers, and what a
/// program set) and the flags over them; every bad input is found here, before anything.
pub(crate) fn resolve(
    settings: &crate::settings::Settings,
    case: &CaseDirArgs,
    launch: &LaunchArgs,
    ssh: &SshArgs,
    opts: CreateOptions,
) -> Result<Job> {
    opts.check()?;
    let cfg = crate::cli::resolve_case(settings, &case.case, &case.aws)?;
    let launch = launch.resolve(settings)?;
    let ssh = ssh.resolve_for_launch(settings, &launch.ami)?;
    ssh::check_identity(&ssh)?;
    let setup = match &opts.setup {
        Some(p) => Some(
            std::fs::read(p).map_err(|e| Error::input(format!("--setup {}: {e}", p.display())))?,
        ),
        None => None,
    };
    Ok(Job {
        cfg,
        launch,
        ssh,
        opts,
        setup,
    })
}

/// The work of ec2-create: plan, apply, wait. Nothing is printed but notes on stderr.
pub(crate) fn create(job: Job) -> Result<Created> {
    let Job {
        cfg,
        launch,
        mut ssh,
        opts,
        setup,
    } = job;
    let store = crate::case::Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let existing = store.load_all()?; // a bad descriptor stops us before anything is launched
    ssh.identity = crate::aws::access::default_identity(&store, &launch, &ssh)?;
    if setup.is_some() && ssh.transport_for(&existing) == crate::config::Transport::Ssm {
        return Err(crate::error::Error::input(
            "--setup runs on an SSH login: under transport ssm run it with ec2-exec-remote after \
             ec2-create",
        ));
    }
    let patience = Patience::new(opts.timeout.unwrap_or(DEFAULT_TIMEOUT));
    crate::aws::runtime()?.block_on(async {
        let fleet = Fleet::connect(cfg, ssh).await?;
        let (members, missing) =
            bring_up(&fleet, &launch, &opts.wants(), existing, patience).await?;
        if let Some(e) = missing.as_ref().filter(|e| e.code == Code::Interrupted) {
            return Err(e.clone());
        }
        let case_hosts = crate::case::descriptor::hosts_list(&store.load_all()?);
        let check = ReadyCheck {
            hook: setup.map(|s| setup_hook(s, case_hosts)),
            ..Default::default()
        };
        let waited = wait::ready(&fleet, members, patience, check).await?;
        fleet.sync_ssh_files();
        settle(&fleet, &opts, waited, missing, patience.timeout).await
    })
}

/// What the case holds now (refreshed, a crashed launch recovered, the untracked found),
/// planned and applied role by role: the members of every role asked for, to wait for
/// together, and what could not be launched.
async fn bring_up(
    fleet: &Fleet,
    launch: &LaunchConfig,
    wants: &[Want],
    existing: Vec<Descriptor>,
    patience: Patience,
) -> Result<(Vec<Descriptor>, Option<Error>)> {
    let mut tracked = fleet.refresh(existing).await?;
    // A launch a crash interrupted first: its instances keep their indexes, and those EC2
    // does not list yet are not launched a second time.
    tracked.extend(fleet.recover(&tracked, launch.name_tags).await?);
    tracked.sort_by_key(|d| d.index);
    let mut untracked = fleet.untracked(&tracked).await?;
    let (mut members, mut missing) = (Vec::new(), None::<Error>);
    for (i, want) in wants.iter().enumerate() {
        let views: Vec<Member> = untracked
            .iter()
            .map(|i| Member {
                id: i.id.clone(),
                index: tag_index(i),
                role: i.tags.get(crate::aws::ec2::TAG_ROLE).cloned(),
                state: i.state,
            })
            .collect();
        let plan = plan(&tracked, &views, want);
        // The roles still to come are counted in this launch's quota and cost checks, so
        // that nothing is made when the whole would not fit.
        let later = wants[i + 1..]
            .iter()
            .filter_map(|w| self::plan(&tracked, &[], w).launch.map(|(_, n)| n))
            .sum();
        let untracked_now = std::mem::take(&mut untracked); // the first plan adopts them all
        let step = Step {
            want,
            plan: &plan,
            later,
        };
        let (m, miss) = apply(fleet, launch, step, tracked, untracked_now, patience).await?;
        members.extend(m);
        missing = match (missing, miss) {
            (Some(a), Some(b)) => Some(Error::new(a.code.merge(b.code), format!("{a}; {b}"))),
            (a, b) => a.or(b),
        };
        if missing
            .as_ref()
            .is_some_and(|e| e.code == Code::Interrupted)
        {
            break;
        }
        tracked = fleet.store.load_all()?; // what this role's step adopted, launched, trimmed
    }
    members.sort_by_key(|d| d.index);
    Ok((members, missing))
}

/// One role's part of a run: what was asked, its plan, and how many the roles after it will
/// launch.
struct Step<'a> {
    want: &'a Want,
    plan: &'a Plan,
    later: u32,
}

/// After the wait: `--drop-failed` terminates the instances not ready; what was not ready
/// or not launched is the problem, unless `--min-ready` were met.
async fn settle(
    fleet: &Fleet,
    opts: &CreateOptions,
    waited: wait::Waited,
    missing: Option<Error>,
    timeout: Duration,
) -> Result<Created> {
    let goal = if opts.setup.is_some() {
        Goal::SetUp
    } else {
        Goal::AcceptSsh
    };
    let mut fate = Fate::Kept;
    if opts.drop_failed && !waited.failed.is_empty() && !waited.interrupted {
        let failed: Vec<Descriptor> = waited.failed.iter().map(|(d, _)| d.clone()).collect();
        fleet.terminate(&failed).await?;
        let ids: Vec<String> = failed.iter().map(|d| d.id.clone()).collect();
        output::note(format!("--drop-failed: terminated {}", ids.join(", ")));
        fate = Fate::Dropped;
    }
    let enough = opts
        .min_ready
        .is_some_and(|m| waited.ready.len() as u32 >= m);
    // What could not be launched (no capacity in any pool) counts as not ready.
    let error = match (waited.error(goal, timeout, fate), missing) {
        (Some(e), Some(m)) => Some(Error::new(
            e.code.merge(m.code),
            format!("{}; {}", m.message, e.message),
        )),
        (e, m) => e.or(m),
    };
    let problem = match error {
        Some(e) if enough && e.code != Code::Interrupted => {
            output::note(format!(
                "{e}; continuing with {} ready (--min-ready {})",
                waited.ready.len(),
                opts.min_ready.unwrap_or(0)
            ));
            None
        }
        e => e,
    };
    Ok(Created {
        ready: waited.ready,
        failed: waited.failed,
        problem,
    })
}

/// Carry out the plan; returns the role's members to wait for, by index.
async fn apply(
    fleet: &Fleet,
    launch: &LaunchConfig,
    Step { want, plan, later }: Step<'_>,
    tracked: Vec<Descriptor>,
    untracked: Vec<InstanceInfo>,
    patience: Patience,
) -> Result<(Vec<Descriptor>, Option<Error>)> {
    let mut by_id: BTreeMap<String, Descriptor> =
        tracked.into_iter().map(|d| (d.id.clone(), d)).collect();
    let mut adopted = Vec::new();
    for (id, index) in &plan.adopt {
        if let Some(info) = untracked.iter().find(|i| &i.id == id) {
            let d = fleet.adopt(info, *index)?;
            adopted.push(d.clone());
            by_id.insert(id.clone(), d);
        }
    }
    if launch.name_tags {
        // The index given is recorded on the instance too, once: another directory (or
        // this one after its files are lost) adopts it at the same index.
        fleet.name_instances(&adopted).await;
    }
    let take = |ids: &[String], by_id: &BTreeMap<String, Descriptor>| -> Vec<Descriptor> {
        ids.iter().filter_map(|id| by_id.get(id).cloned()).collect()
    };
    if !plan.trim.is_empty() {
        fleet.terminate(&take(&plan.trim, &by_id)).await?;
        output::note(format!(
            "terminated {} instances above --max {}: {}",
            plan.trim.len(),
            want.max.unwrap_or(0),
            plan.trim.join(", ")
        ));
    }
    let mut members = take(&plan.keep, &by_id);
    if !plan.start.is_empty() {
        start_stopped(
            fleet,
            plan,
            take(&plan.start, &by_id),
            &mut members,
            patience,
        )
        .await?;
    }
    let mut missing = None;
    match plan.launch {
        Some((first, count)) => {
            let (descs, short) = launch_missing(fleet, launch, want, (first, count), later).await?;
            missing = short;
            members.extend(descs);
        }
        None if !want.add => output::note(format!(
            "the case already has {}{}: launching none",
            output::count(members.len(), "instance"),
            want.role
                .as_deref()
                .map(|r| format!(" of role {r}"))
                .unwrap_or_default()
        )),
        None => {}
    }
    members.sort_by_key(|d| d.index);
    Ok((members, missing))
}

/// Launch `count` instances of the role from index `first` (as many as the vCPU quota
/// allows, with `--min-ready`); the descriptors written, and what could not be launched.
async fn launch_missing(
    fleet: &Fleet,
    launch: &LaunchConfig,
    want: &Want,
    (first, count): (u32, u32),
    later: u32,
) -> Result<(Vec<Descriptor>, Option<Error>)> {
    let ask = Ask {
        count,
        min_ready: want.min_ready,
        later,
    };
    let mut launcher = fleet.launcher(launch, ask).await?;
    let allowed = launcher.allowed;
    let launched = fleet
        .launch(&mut launcher, first, allowed, want.role.as_deref())
        .await?;
    let missing = launched.shortfall().or_else(|| {
        (allowed < count).then(|| {
            Error::infra(format!(
                "the vCPU quota allowed {allowed} of {count} instances"
            ))
        })
    });
    Ok((launched.descs, missing))
}

/// Start the plan's stopped members (those still stopping are waited for first); they
/// count as pending from then on.
async fn start_stopped(
    fleet: &Fleet,
    plan: &Plan,
    mut to_start: Vec<Descriptor>,
    members: &mut [Descriptor],
    patience: Patience,
) -> Result<()> {
    if to_start
        .iter()
        .any(|d| d.state() == InstanceState::Stopping)
    {
        let late = wait::state(fleet, &mut to_start, &[InstanceState::Stopped], patience).await?;
        if !late.is_empty() {
            return Err(Error::infra(format!(
                "instances still stopping: {}",
                late.join(", ")
            )));
        }
    }
    fleet.ec2.start(&plan.start).await?;
    output::note(format!(
        "starting {} stopped instances: {}",
        plan.start.len(),
        plan.start.join(", ")
    ));
    for m in members.iter_mut().filter(|m| plan.start.contains(&m.id)) {
        m.state = Some(InstanceState::Pending);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<CreateOptions> {
        use clap::Parser;
        let argv = std::iter::once("ec2-create").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map_err(|e| Error::input(e.to_string()))?
            .options()
    }

    #[test]
    fn several_roles_in_one_create_pair_each_n_with_its_role() {
        let o = parsed(&["1", "--role", "server", "3", "--role", "client"]).unwrap();
        assert_eq!((o.count, o.role.as_deref()), (1, Some("server")));
        assert_eq!(o.more_roles, vec![("client".to_owned(), 3)]);
        let w = o.wants();
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].count, w[1].role.as_deref()), (3, Some("client")));
        let o = parsed(&["--roles", "server=1,client=3"]).unwrap();
        assert_eq!((o.count, o.role.as_deref()), (1, Some("server")));
        assert_eq!(o.more_roles, vec![("client".to_owned(), 3)]);
        assert!(o.check().is_ok());
        // One N, one role: as ever.
        let o = parsed(&["4", "--role", "slave"]).unwrap();
        assert!(o.more_roles.is_empty() && o.count == 4);
        for (args, needle) in [
            (
                &["1", "3", "--role", "client"][..],
                "give each N its --role",
            ),
            (&["2", "--role", "a", "--role", "b"][..], "give each its N"),
        ] {
            let e = parsed(args).unwrap_err();
            assert!(e.message.contains(needle), "{args:?}: {e}");
        }
        for (args, needle) in [
            (&["--roles", "a=1,a=2"][..], "given twice"),
            (
                &["1", "--role", "a", "2", "--role", "b", "--max", "3"][..],
                "--max",
            ),
        ] {
            let e = parsed(args).unwrap().check().unwrap_err();
            assert!(e.message.contains(needle), "{args:?}: {e}");
        }
        assert!(parsed(&["--roles", "a=0"]).is_err());
        assert!(parsed(&["--roles", "a"]).is_err());
    }
}
