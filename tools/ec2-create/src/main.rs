//! ec2-create N: launch N instances, wait until each accepts SSH, write their descriptors.
use clap::Parser;
use common::config::{
    self, AwsArgs, CaseArgs, Config, DirArgs, LaunchArgs, LaunchConfig, SshArgs, SshConfig,
};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-create",
    version,
    about = "Launch N instances, wait until each accepts an SSH login, \
write one descriptor per instance into the test-case directory; prints `<instance-id> <address>` lines"
)]
struct Cli {
    /// How many instances to launch (a positive integer)
    #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// Give up waiting after this long (exit 3; descriptors are kept)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = config::parse_duration)]
    timeout: Duration,
    /// Tag the instances with this role (e.g. master, slave)
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
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
    common::tool::main("ec2-create", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let cfg = Config::resolve(&cli.dir, &cli.case, &cli.aws)?;
        let launch = LaunchConfig::resolve(&cli.launch)?;
        let ssh = SshConfig::resolve(&cli.ssh)?;
        let opts = common::create::CreateOptions {
            count: cli.count,
            timeout: cli.timeout,
            role: cli.role,
            poll: Duration::from_secs(2),
        };
        common::create::run(&cfg, &launch, &ssh, &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
