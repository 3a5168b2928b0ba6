//! ec2-killall: terminate every described instance, then remove its descriptor.
use clap::Parser;
use common::config::{AwsArgs, CaseArgs, Config, DirArgs, Resolver};
use common::select::SelectArgs;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-killall",
    version,
    about = "Terminate every described (or selected) instance; a \
descriptor is removed once AWS accepted the termination; the case's key pair and security group go \
with the last instance. Running it twice is fine"
)]
struct Cli {
    /// Also terminate instances tagged with this case and owner that have no descriptor
    #[arg(long)]
    case_sweep: bool,
    /// Also terminate this owner's instances past their --ttl, in the whole region
    #[arg(long)]
    expired: bool,
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
        let r = Resolver::new(&cli.dir)?;
        let cfg = Config::resolve(&r, &cli.case, &cli.aws)?;
        let opts = common::killall::KillOptions {
            case_sweep: cli.case_sweep,
            expired: cli.expired,
            cleanup_patience: None,
        };
        common::killall::run(&cfg, &cli.select, &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
