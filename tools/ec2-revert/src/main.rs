//! ec2-revert: replace the selected instances with fresh ones from the AMI.
use clap::Parser;
use common::config::{
    self, AwsArgs, CaseArgs, Config, DirArgs, LaunchArgs, LaunchConfig, Resolver, SshArgs,
    SshConfig,
};
use common::select::SelectArgs;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-revert",
    version,
    about = "Replace the selected instances (all by default) with fresh \
ones from the AMI, keeping each one's index, role and name; prints `<instance-id> <address>` lines"
)]
struct Cli {
    /// One at a time, each replacement launched and ready before its old instance is
    /// terminated (capacity is never given up); default: terminate all, then launch all
    #[arg(long)]
    sequential: bool,
    /// Give up waiting after this long (exit 3)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = config::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    case: CaseArgs,
    #[command(flatten)]
    aws: AwsArgs,
    #[command(flatten)]
    launch: LaunchArgs,
    #[command(flatten)]
    ssh: SshArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-revert", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let r = Resolver::new(&cli.dir)?;
        let cfg = Config::resolve(&r, &cli.case, &cli.aws)?;
        let launch = LaunchConfig::resolve(&r, &cli.launch)?;
        let ssh = SshConfig::resolve(&r, &cli.ssh)?;
        let opts = common::lifecycle::LifeOptions {
            timeout: cli.timeout,
            poll: Duration::from_secs(2),
            reboot_grace: Duration::ZERO,
            sequential: cli.sequential,
        };
        common::lifecycle::revert(&cfg, &launch, &ssh, &cli.select, &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
