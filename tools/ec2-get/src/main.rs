//! ec2-get REMOTE_PATH LOCAL_DIR: fetch a file or directory from every selected instance.
use clap::Parser;
use common::config::HostArgs;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-get",
    version,
    about = "Copy REMOTE_PATH (a file or directory, relative to the remote \
home) from every selected instance into LOCAL_DIR/<index>-<id>/, in parallel over SFTP; modes are kept; \
prints `<id> <address> <local-dir>` per instance"
)]
struct Cli {
    /// Remote file or directory
    #[arg(value_name = "REMOTE_PATH")]
    remote: String,
    /// Local directory (one subdirectory per instance)
    #[arg(value_name = "LOCAL_DIR")]
    local: PathBuf,
    /// How many hosts at once
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    fanout: u32,
    #[command(flatten)]
    hosts: HostArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-get", |args| {
        let cli: Cli = common::tool::parse(args)?;
        let h = cli.hosts.resolve()?;
        common::files::get(
            "ec2-get",
            &h.ssh,
            &h.hosts,
            &cli.remote,
            &cli.local,
            cli.fanout as usize,
        )
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
