//! ec2-killall: terminate every described instance, then remove its descriptor.
use clap::Parser;
use common::config::{AwsArgs, CaseArgs, Config, DirArgs};
use common::select::SelectArgs;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-killall",
    version,
    about = "Terminate every described instance; a descriptor is \
removed once AWS accepted the termination. Running it twice is fine"
)]
struct Cli {
    /// Also terminate instances tagged with this case and owner that have no descriptor
    #[arg(long)]
    case_sweep: bool,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    case: CaseArgs,
    #[command(flatten)]
    aws: AwsArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-killall", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let cfg = Config::resolve(&cli.dir, &cli.case, &cli.aws)?;
        let opts = common::killall::KillOptions {
            case_sweep: cli.case_sweep,
        };
        common::killall::run(&cfg, &cli.select, &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
