//! ec2-create N: make the case hold N instances that accept SSH; write their descriptors.
use clap::Parser;
use common::config::{
    self, AwsArgs, CaseArgs, Config, DirArgs, LaunchArgs, LaunchConfig, Resolver, SshArgs,
    SshConfig,
};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-create",
    version,
    about = "Make the test case hold N running instances (of a role) that \
accept SSH logins: reuse, start, adopt, launch only the missing; write one descriptor per instance; \
print `<instance-id> <address>` lines"
)]
struct Cli {
    /// How many instances (a positive integer): the minimum the case must hold
    #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
    /// Terminate instances (of the role) above this many, highest index first
    #[arg(long, value_name = "M")]
    max: Option<u32>,
    /// Launch N more regardless of what the case holds
    #[arg(long, conflicts_with = "max")]
    add: bool,
    /// Role of these instances (e.g. master, slave): tagged and recorded; N counts this role
    #[arg(long, value_name = "NAME")]
    role: Option<String>,
    /// Upload SCRIPT and run it on each instance as soon as that one is ready (while others
    /// still boot); its output goes to stderr, prefixed; a failing script fails the instance
    #[arg(long, value_name = "SCRIPT")]
    setup: Option<std::path::PathBuf>,
    /// Succeed when at least M instances are ready (and set up); the rest are reported
    #[arg(long, value_name = "M")]
    min_ready: Option<u32>,
    /// Terminate the instances that did not get ready or failed their setup
    #[arg(long)]
    drop_failed: bool,
    /// Give up waiting after this long (exit 3; descriptors are kept)
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = config::parse_duration)]
    timeout: Duration,
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
        let r = Resolver::new(&cli.dir)?;
        let cfg = Config::resolve(&r, &cli.case, &cli.aws)?;
        let launch = LaunchConfig::resolve(&r, &cli.launch)?;
        let ssh = SshConfig::resolve(&r, &cli.ssh)?;
        let opts =
            common::create::CreateOptions {
                count: cli.count,
                max: cli.max,
                add: cli.add,
                timeout: cli.timeout,
                role: cli.role,
                poll: Duration::from_secs(2),
                setup: match &cli.setup {
                    Some(p) => Some(std::fs::read(p).map_err(|e| {
                        common::Error::input(format!("--setup {}: {e}", p.display()))
                    })?),
                    None => None,
                },
                min_ready: cli.min_ready,
                drop_failed: cli.drop_failed,
            };
        common::create::run(&cfg, &launch, &ssh, &opts)
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
