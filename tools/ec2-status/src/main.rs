//! ec2-status: one line per instance of the case, refreshed from AWS.
use clap::Parser;
use common::config::{FleetArgs, LaunchArgs, LaunchConfig};

#[derive(Parser, Debug)]
#[command(
    name = "ec2-status",
    version,
    about = "One line per instance: index, id, role, state, address, \
uptime (refreshed from AWS; instances of the case without a descriptor are listed as untracked)"
)]
struct Cli {
    /// Also try an SSH login on each instance now (exit 1 if any fails)
    #[arg(long)]
    check: bool,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
    /// Print the effective configuration and where each value came from (no AWS call)
    #[arg(long)]
    show_config: bool,
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    launch: LaunchArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-status", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let (r, cfg, ssh) = cli.fleet.resolve()?;
        LaunchConfig::resolve(&r, &cli.launch)?;
        if cli.show_config {
            return common::status::show_config(&r, cli.json);
        }
        let opts = common::status::StatusOptions {
            check: cli.check,
            json: cli.json,
        };
        common::status::run(&cfg, &ssh, cli.fleet.select(), &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
