//! ec2-exec-remote CMD [-bg]: run CMD on every selected instance over SSH, in parallel.
use clap::Parser;
use common::config::{self, HostArgs};
use common::jobs::{self, Action};
use common::results::OutputArgs;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-exec-remote",
    version,
    about = "Run CMD through the remote user's shell on every \
selected instance, in parallel; output lines are prefixed `<address>: `; a summary goes to stderr"
)]
struct Cli {
    /// The command (several words are joined with spaces, as ssh does)
    #[arg(value_name = "CMD", required_unless_present_any = ["wait", "status", "stop"], num_args = 1..)]
    command: Vec<String>,
    /// Start CMD detached on each host (output to a remote log file) and return at once;
    /// `-bg` is accepted too
    #[arg(long, conflicts_with_all = ["wait", "status", "stop", "at"])]
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
    /// Kill job --job's process group on every host
    #[arg(long, requires = "job")]
    stop: bool,
    /// Lines of the job's log shown by --wait
    #[arg(long, value_name = "N", default_value_t = 20)]
    tail: u32,
    /// How many hosts at once
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    fanout: u32,
    /// Give up on a host whose command runs longer than this; its remote process group is killed
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    timeout: Option<Duration>,
    /// Start CMD on every host at the same wall-clock instant: +30s, HH:MM[:SS] or RFC 3339
    #[arg(long, value_name = "TIME", value_parser = common::sync::parse_at)]
    at: Option<std::time::SystemTime>,
    /// With --at: refuse to run when a host's clock is off by more than this
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = config::parse_duration)]
    max_skew: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    hosts: HostArgs,
}

fn main() -> std::process::ExitCode {
    const TOOL: &str = "ec2-exec-remote";
    common::tool::main(TOOL, |args| {
        let cli: Cli = common::tool::parse(args)?;
        if let Some(j) = &cli.job {
            jobs::validate_job_name(j)?;
        }
        let common::config::Hosts { ssh, hosts, .. } = cli.hosts.resolve()?;
        let fanout = cli.fanout as usize;
        let action = [
            (cli.wait, Action::Wait),
            (cli.status, Action::Status),
            (cli.stop, Action::Stop),
        ]
        .into_iter()
        .find_map(|(on, a)| on.then_some(a));
        if let (Some(action), Some(job)) = (action, &cli.job) {
            let f = jobs::Follow {
                job_id: job.clone(),
                action,
                tail: cli.tail,
                timeout: cli.timeout,
            };
            return jobs::follow(TOOL, &ssh, &hosts, &f, cli.output.opts());
        }
        let command = cli.command.join(" ");
        if cli.bg {
            let job = cli.job.unwrap_or_else(common::exec::new_job_id);
            return jobs::start(TOOL, &ssh, &hosts, &job, &command, fanout);
        }
        let job = common::exec::RemoteJob {
            command,
            fanout,
            timeout: cli.timeout,
            at: cli.at,
            max_skew: cli.max_skew,
            results: cli.output.opts(),
        };
        common::exec::run_remote(TOOL, &ssh, &hosts, &job)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
