//! ec2-exec-remote CMD [-bg]: run CMD on every described instance over SSH, in parallel.
use clap::Parser;
use common::config::{self, DirArgs, Resolver, SshArgs, SshConfig};
use common::descriptor::Store;
use common::select::{self, SelectArgs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-exec-remote",
    version,
    about = "Run CMD through the remote user's shell on every \
described instance, in parallel; output lines are prefixed `<address>: `"
)]
struct Cli {
    /// The command (several words are joined with spaces, as ssh does)
    #[arg(value_name = "CMD", required = true, num_args = 1.., allow_hyphen_values = false)]
    command: Vec<String>,
    /// Start CMD detached on each host (output to a remote log file) and return at once;
    /// `-bg` is accepted too
    #[arg(long)]
    bg: bool,
    /// How many hosts at once
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    fanout: u32,
    /// Give up on a host whose command runs longer than this
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    ssh: SshArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-exec-remote", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let r = Resolver::new(&cli.dir)?;
        let ssh = SshConfig::resolve(&r, &cli.ssh)?;
        let dir = r.dir().to_path_buf();
        let hosts = select::select_some(&Store::new(dir), &cli.select)?;
        let job = common::exec::RemoteJob {
            command: cli.command.join(" "),
            background: cli.bg,
            fanout: cli.fanout as usize,
            timeout: cli.timeout,
        };
        common::exec::run_remote("ec2-exec-remote", &ssh, &hosts, &job)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
