//! ec2-put LOCAL... REMOTE_DIR: copy files to every selected instance, in parallel.
use clap::Parser;
use common::config::HostArgs;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ec2-put",
    version,
    about = "Copy local files and directories into REMOTE_DIR (created if \
missing; relative to the remote home) on every selected instance, in parallel over SFTP; modes are kept; \
prints `<id> <address> <n> files <bytes> bytes` per instance"
)]
struct Cli {
    /// Local files or directories, then the remote directory
    #[arg(value_name = "LOCAL... REMOTE_DIR", required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
    /// How many hosts at once
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    fanout: u32,
    #[command(flatten)]
    hosts: HostArgs,
}

fn main() -> std::process::ExitCode {
    common::tool::main("ec2-put", |args| {
        let mut cli: Cli = common::tool::parse(args)?;
        let h = cli.hosts.resolve()?;
        let remote = cli
            .paths
            .pop()
            .expect("two or more paths")
            .to_string_lossy()
            .into_owned();
        common::files::put(
            "ec2-put",
            &h.ssh,
            &h.hosts,
            &cli.paths,
            &remote,
            cli.fanout as usize,
        )
    })
}

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
