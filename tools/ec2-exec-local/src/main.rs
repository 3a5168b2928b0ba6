//! ec2-exec-local CMD [-bg]: run `sh -c CMD` locally once per described instance.
use clap::Parser;
use common::config::HostArgs;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-exec-local",
    version,
    about = "Run `sh -c CMD` locally once per described instance, \
with CURRENT_AMI_DNS, CURRENT_AMI_ID, CURRENT_AMI_INDEX, CURRENT_SSH_USER, ... in its environment"
)]
struct Cli {
    /// The command (several words are joined with spaces)
    #[arg(value_name = "CMD", required = true, num_args = 1..)]
    command: Vec<String>,
    /// Start every command detached, output to a log file under DIR/logs, and return at once;
    /// `-bg` is accepted too
    #[arg(long)]
    bg: bool,
    /// How many commands at once (in index order)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    parallel: u32,
    #[command(flatten)]
    output: common::results::OutputArgs,
    #[command(flatten)]
    hosts: HostArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-exec-local", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let h = cli.hosts.resolve()?;
        let job = common::exec::LocalJob {
            command: cli.command.join(" "),
            background: cli.bg,
            parallel: cli.parallel as usize,
            results: cli.output.opts(),
        };
        common::exec::run_local("ec2-exec-local", &h.ssh, &h.store, &h.hosts, &job)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
