//! ec2-revert: replace the selected instances with fresh ones from the AMI.
use clap::Parser;
use common::config::{self, FleetArgs, LaunchArgs, LaunchConfig};
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
    fleet: FleetArgs,
    #[command(flatten)]
    launch: LaunchArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-revert", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let (r, cfg, ssh) = cli.fleet.resolve()?;
        let launch = LaunchConfig::resolve(&r, &cli.launch)?;
        let opts = common::lifecycle::LifeOptions {
            timeout: cli.timeout,
            poll: Duration::from_secs(2),
            reboot_grace: Duration::ZERO,
            sequential: cli.sequential,
        };
        common::lifecycle::revert(&cfg, &launch, &ssh, cli.fleet.select(), &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
