//! ec2-exec-remote CMD [-bg]: run CMD on every selected instance over SSH, in parallel.
//!
//! The command goes through the remote user's login shell on stdin-fed, tracked channels
//! (remote/command.rs), so a timeout or Ctrl-C kills the remote process group. `-bg` and
//! `--job` hand over to background jobs (jobs.rs), `--at` to the synchronized start (start_at.rs).
//! What does not belong here: SSH, fan-out and output machinery (remote/).

use super::jobs::{self, Action};
use super::start_at;
use super::transport::run_task;
use crate::case::descriptor::hosts_list;
use crate::case::descriptor::Descriptor;
use crate::cli::{HostArgs, OutputArgs};
use crate::config::{parse_duration, OutputConfig, SshConfig};
use crate::error::{Code, Result};
use crate::remote::fanout::RunOpts;
use crate::remote::results::{Collector, HostRun, HostSink, Outcome, Status};
use crate::remote::ssh::{Kind, SshError};
use crate::remote::task::{Done, PerHost, Task};
use crate::settings::Settings;
use crate::tool::Tool;
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The command line of `ec2-exec-remote` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Run CMD through the remote user's shell on every \
selected instance, in parallel; output lines are prefixed `<address>: `; a summary goes to stderr",
    after_help = "Examples:
  ec2-exec-remote uptime                          every instance, 128 at once
  ec2-exec-remote --role slave -bg ./load.sh      detached; prints <id> <address> <log>
  ec2-exec-remote --job load --wait               exit codes and log tails of job `load`
  ec2-exec-remote --jobs                          every job on every host, and its state
  ec2-exec-remote --at +20s --role slave -bg ./load.sh   one synchronized start
  ec2-exec-remote --failed-to failed.txt ./step.sh; ec2-exec-remote --from failed.txt ./step.sh
  ec2-exec-remote --label index --gather 'cat /etc/os-release'"
)]
pub struct Cli {
    /// The command: it and every word after it (options too: `ps -ef`) are joined with
    /// spaces, as ssh does; this tool's options go before it
    #[arg(value_name = "CMD", required_unless_present_any = ["wait", "status", "stop", "jobs"],
          num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// Start CMD detached on each host (output to a remote log file) and return at once;
    /// `-bg` is accepted too
    #[arg(long, conflicts_with_all = ["wait", "status", "stop"])]
    bg: bool,
    /// The background job's id: names a new job with --bg (default: generated), or the job
    /// to follow with --wait, --status, --stop
    #[arg(long, value_name = "ID")]
    job: Option<String>,
    /// Wait for job --job on every host; report each host's exit code and log tail
    #[arg(long, requires = "job", conflicts_with_all = ["status", "stop"])]
    wait: bool,
    /// Say whether job --job is running or exited on every host
    #[arg(long, requires = "job", conflicts_with = "stop")]
    status: bool,
    /// Kill job --job's process group on every host (--status then says `stopped`)
    #[arg(long, requires = "job")]
    stop: bool,
    /// List the jobs on every host: `<id> <address> <job> <state>` lines
    #[arg(long, conflicts_with_all = ["bg", "job", "wait", "status", "stop"])]
    jobs: bool,
    /// Lines of the job's log shown by --wait
    #[arg(long, value_name = "N", default_value_t = 20)]
    tail: u32,
    /// Do not send this tool's stdin to the command (it is sent, to every host, when it is a
    /// pipe or a file and `--from -` is not reading it: `echo x | ec2-exec-remote cat`)
    #[arg(short = 'n', long)]
    no_stdin: bool,
    /// How many hosts at once (pdsh -f)
    #[arg(short = 'f', long, value_name = "N", default_value_t = crate::cli::DEFAULT_FANOUT, value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_FANOUT as i64))]
    fanout: u32,
    /// Give up on a host whose command (connect included) runs longer than this; its remote
    /// process group is killed (pdsh -u)
    #[arg(short = 'u', long, value_name = "DURATION", value_parser = parse_duration)]
    command_timeout: Option<Duration>,
    /// Start CMD on every host at the same wall-clock instant: +30s, HH:MM[:SS] or RFC 3339
    #[arg(long, value_name = "TIME", value_parser = start_at::parse_at)]
    at: Option<SystemTime>,
    /// With --at: refuse to run when a host's clock is off by more than this
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    max_skew: Duration,
    /// Sample each host every INTERVAL while CMD runs (CPU incl. steal, memory, load,
    /// network per interface, and CMD's own process tree's CPU and threads) into
    /// `~/.ec2-tools/samples/<job>-<id>.tsv`; ec2-get brings it home, ec2-report judges
    /// whether a client was the limit
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, require_equals = true,
          default_missing_value = "1s", value_parser = parse_sample_interval)]
    sample: Option<Duration>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    hosts: HostArgs,
}

/// The `ec2-exec-remote` tool.
pub struct ExecRemote;

impl Tool for ExecRemote {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        // -bg, --status, --jobs, --stop print records too: JSON under --json.
        crate::output::records_as_json(cli.output.json);
        if let Some(j) = &cli.job {
            jobs::validate_job_name(j)?;
        }
        let (ssh, store, hosts) = super::selected_hosts(&cli.hosts)?;
        let state_dir = store.state_dir().ok();
        let case_hosts = hosts_list(&store.load_all()?);
        let reach = jobs::Reach {
            cfg: &ssh,
            hosts: &hosts,
            state_dir: state_dir.as_deref(),
            case_hosts: &case_hosts,
        };
        let fanout = cli.fanout as usize;
        let action = [
            (cli.jobs, Action::List),
            (cli.wait, Action::Wait),
            (cli.status, Action::Status),
            (cli.stop, Action::Stop),
        ]
        .into_iter()
        .find_map(|(on, a)| on.then_some(a));
        if let Some(action) = action {
            return follow_up(&cli, action, &reach);
        }
        let command = cli.command.join(" ");
        let job = cli.job.clone().unwrap_or_else(jobs::new_job_id);
        let sample = cli
            .sample
            .map(|iv| crate::report::samples::start_prefix(&job, iv.as_secs_f64()));
        if cli.bg {
            // With --at: each host's job waits for the instant on its own clock, corrected
            // by its measured offset, and the tool returns at once.
            let starts = match cli.at {
                Some(at) => {
                    start_at::starts(&ssh, &hosts, at, cli.max_skew, fanout, state_dir.as_deref())?
                }
                None => BTreeMap::new(),
            };
            let sampler = sample.clone().unwrap_or_default();
            let command_for = |d: &Descriptor| match starts.get(&d.id) {
                Some(t) => format!("{sampler}{}{command}", start_at::wait_until_prefix(*t)),
                None => format!("{sampler}{command}"),
            };
            return jobs::start(&reach, &job, &command_for, fanout);
        }
        let from_stdin = cli.hosts.select.from.as_deref() == Some(std::path::Path::new("-"));
        let stdin = if cli.no_stdin || from_stdin {
            None
        } else {
            piped_stdin()?
        };
        let job = RemoteJob {
            command: format!("{}{command}", sample.unwrap_or_default()),
            stdin,
            fanout,
            timeout: cli.command_timeout,
            at: cli.at,
            max_skew: cli.max_skew,
            results: cli.output.resolve(),
            state_dir,
            case_hosts,
        };
        run_remote(&ssh, &hosts, &job)
    }
}

/// `--jobs`, or a job's `--wait`, `--status` or `--stop`: on the hosts it was started on
/// (case/jobs.rs), unless a selection is given.
fn follow_up(cli: &Cli, action: Action, reach: &jobs::Reach) -> Result<Code> {
    let started_on = match (&cli.job, reach.state_dir) {
        (Some(j), Some(dir)) if action != Action::List => crate::case::jobs::load(dir)?.remove(j),
        _ => None,
    };
    let explicit = !cli.hosts.select.is_empty();
    let hosts =
        crate::case::jobs::follow_up_hosts(reach.hosts.to_vec(), started_on.as_ref(), explicit);
    if hosts.is_empty() {
        return Err(crate::error::Error::input(format!(
            "job {}: the instances it was started on are no longer in the case",
            cli.job.as_deref().unwrap_or_default()
        )));
    }
    let reach = jobs::Reach {
        hosts: &hosts,
        ..*reach
    };
    let f = jobs::Follow {
        job_id: cli.job.clone().unwrap_or_default(),
        action,
        tail: cli.tail,
        timeout: cli.command_timeout,
    };
    jobs::follow(&reach, &f, cli.output.resolve())
}

/// What ec2-exec-remote was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct RemoteJob {
    pub command: String,
    /// Sent to the command on every host (this tool's own stdin, when piped).
    pub stdin: Option<Vec<u8>>,
    pub fanout: usize,
    /// Bounds the whole command on each host; the remote process group is killed after it.
    pub timeout: Option<Duration>,
    /// Start at this wall-clock instant on every host (`--at`).
    pub at: Option<SystemTime>,
    pub max_skew: Duration,
    pub results: OutputConfig,
    /// The case's state directory, where its session holder listens (warm sessions).
    pub state_dir: Option<PathBuf>,
    /// The case's host list, for `$CURRENT_HOSTS` on every host (every instance of the
    /// case, not only those selected: a client needs its server's address).
    pub case_hosts: String,
}

/// This process's stdin when it is a pipe or a regular file (never a terminal, a socket or
/// /dev/null: a command must not wait for input nobody will type), read whole.
fn piped_stdin() -> Result<Option<Vec<u8>>> {
    // SAFETY: fstat on fd 0 into a zeroed stat we own.
    let kind = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut st) != 0 {
            return Ok(None);
        }
        st.st_mode & libc::S_IFMT
    };
    if kind != libc::S_IFIFO && kind != libc::S_IFREG {
        return Ok(None);
    }
    let mut data = Vec::new();
    use std::io::Read;
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| crate::error::Error::input(format!("reading stdin: {e}")))?;
    Ok((!data.is_empty()).then_some(data))
}

/// Run a command on every host over SSH; output as `job.results` says, then the summary.
pub(crate) fn run_remote(cfg: &SshConfig, hosts: &[Descriptor], job: &RemoteJob) -> Result<Code> {
    let (outcomes, collector) = remote_outcomes(cfg, hosts, job)?;
    collector.finish(&outcomes)
}

/// The library's ec2-exec-remote: `job` on the hosts chosen, in `settings`, nothing
/// printed (`job.results` captures); every host's exit and output come back.
pub(crate) fn capture(
    settings: &Settings,
    hosts: &HostArgs,
    job: RemoteJob,
) -> Result<Vec<HostRun>> {
    let (ssh, store, hosts) = super::selected_hosts_in(settings, hosts)?;
    let job = RemoteJob {
        state_dir: store.state_dir().ok(),
        case_hosts: hosts_list(&store.load_all()?),
        ..job
    };
    let (outcomes, collector) = remote_outcomes(&ssh, &hosts, &job)?;
    Ok(collector.captured(outcomes))
}

/// Run a command on every host over SSH: the outcomes, and the collector holding the output
/// still to present.
fn remote_outcomes(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    job: &RemoteJob,
) -> Result<(Vec<Outcome>, Collector)> {
    let mut opts = RunOpts {
        width: job.fanout,
        timeout: job.timeout,
        holder: job.state_dir.as_deref(),
        same_instant: false,
    };
    let mut command = PerHost::Same(job.command.clone());
    if let Some(at) = job.at {
        let starts = start_at::starts(
            cfg,
            hosts,
            at,
            job.max_skew,
            job.fanout,
            job.state_dir.as_deref(),
        )?;
        command = PerHost::Each(
            hosts
                .iter()
                .map(|d| match starts.get(&d.id) {
                    Some(t) => format!("{}{}", start_at::wait_until_prefix(*t), job.command),
                    None => job.command.clone(),
                })
                .collect(),
        );
        // Every host waits for the same instant: none may queue behind a sleeping one. The
        // timeout counts from the start instant.
        opts.width = hosts.len();
        opts.same_instant = true;
        opts.timeout = job.timeout.map(|t| t + until(Some(at)));
    }
    // --timeout bounds the whole host: the connect phase too.
    let mut cfg = cfg.clone();
    if let Some(t) = job.timeout {
        cfg.connect_timeout = cfg.connect_timeout.min(t);
    }
    // A timeout or interruption killed the remote process group: say so (over SSM the
    // transport says what it did).
    let ssm = cfg.transport_for(hosts) == crate::config::Transport::Ssm;
    let judge =
        |_: &Descriptor, _: &str, r: std::result::Result<Done, SshError>, _: &HostSink| match r
            .and_then(Done::code)
        {
            Ok(code) => Status::Exited(code),
            Err(e) if ssm => Status::Failed(e),
            Err(e) if e.kind == Kind::Timeout => Status::Failed(SshError::new(
                Kind::Timeout,
                format!(
                    "timed out after {} (remote process group killed)",
                    humantime::format_duration(job.timeout.unwrap_or_default())
                ),
            )),
            Err(e) if e.kind == Kind::Interrupted => Status::Failed(SshError::new(
                Kind::Interrupted,
                "interrupted (remote process group killed)",
            )),
            Err(e) => Status::Failed(e),
        };
    let collector = Collector::new(job.results.clone())?;
    let task = Task::Command {
        command,
        stdin: job.stdin.clone(),
        hosts: job.case_hosts.clone(),
    };
    let outcomes = run_task(&collector, &cfg, hosts, &task, &opts, &judge)?;
    Ok((outcomes, collector))
}

/// `--sample`'s interval: from 0.1 s (finer costs the host more than it tells) to 1 h.
fn parse_sample_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("{s:?}: the interval must be between 0.1s and 1h"));
    }
    Ok(d)
}

fn until(at: Option<SystemTime>) -> Duration {
    at.and_then(|t| t.duration_since(SystemTime::now()).ok())
        .unwrap_or_default()
}
