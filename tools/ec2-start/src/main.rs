//! ec2-start: start the selected instances of the case and wait for them.
use clap::Parser;
use common::config::{self, FleetArgs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-start",
    version,
    about = "Start the selected instances (all by default) and wait until each accepts SSH logins again (addresses may change: descriptors are updated); prints `<id> <address>` lines"
)]
struct Cli {
    /// Give up waiting after this long (exit 3)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = config::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    fleet: FleetArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-start", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let (_, cfg, ssh) = cli.fleet.resolve()?;
        let opts = common::lifecycle::LifeOptions {
            timeout: cli.timeout,
            poll: Duration::from_secs(2),
            reboot_grace: Duration::ZERO,
            sequential: false,
        };
        common::lifecycle::start(&cfg, &ssh, cli.fleet.select(), &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
