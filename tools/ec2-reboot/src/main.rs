//! ec2-reboot: reboot the selected instances of the case and wait for them.
use clap::Parser;
use common::config::{self, FleetArgs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-reboot",
    version,
    about = "Reboot the selected instances (all by default) and wait until each has rebooted and accepts SSH logins again; prints `<id> <address>` lines"
)]
struct Cli {
    /// Give up waiting after this long (exit 3)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = config::parse_duration)]
    timeout: Duration,
    /// Take an instance as rebooted after this long even if its boot id did not change
    #[arg(long, value_name = "DURATION", default_value = "240s", value_parser = config::parse_duration)]
    reboot_grace: Duration,
    #[command(flatten)]
    fleet: FleetArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-reboot", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let (_, cfg, ssh) = cli.fleet.resolve()?;
        let opts = common::lifecycle::LifeOptions {
            timeout: cli.timeout,
            poll: Duration::from_secs(2),
            reboot_grace: cli.reboot_grace,
            sequential: false,
        };
        common::lifecycle::reboot(&cfg, &ssh, cli.fleet.select(), &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
