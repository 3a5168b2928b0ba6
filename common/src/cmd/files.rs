//! File transfer: `ec2-put` and `ec2-get`, over the same SSH sessions (SFTP through libssh2),
//! in parallel, on the selected instances.
//!
//! Files stream in fixed-size chunks (bounded memory whatever their size); modes are preserved;
//! directories are copied recursively. ec2-get keeps each instance's copy apart under
//! `LOCAL_DIR/<index>-<id>/`, so fetching every client's logs after a run (seed 001) is one
//! command. Remote paths are relative to the remote user's home unless absolute; `~/` works.

use crate::case::descriptor::Descriptor;
use crate::cli::HostArgs;
use crate::config::{OutputConfig, SshConfig};
use crate::error::{Code, Error, Result};
use crate::output;
use crate::remote::fanout::on_each_host;
use crate::remote::results::Status;
use crate::remote::sftp::{download, mkdir_p, remote_path, upload, Tally};
use crate::remote::ssh::{Kind, SshError};
use crate::tool::Tool;
use clap::Parser;
use std::path::{Path, PathBuf};

/// The command line of `ec2-put` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Copy local files and directories into REMOTE_DIR (created if \
missing; relative to the remote home) on every selected instance, in parallel over SFTP; modes are kept; \
prints `<id> <address> <n> files <bytes> bytes` per instance",
    override_usage = "ec2-put [OPTIONS] LOCAL... REMOTE_DIR",
    after_help = "Examples:
  ec2-put bundle.tgz .                            into the remote home of every instance
  ec2-put --role slave conf/ data.csv work/       a directory and a file into ~/work/"
)]
pub struct PutCli {
    /// Local files or directories, then the remote directory
    #[arg(value_name = "LOCAL... REMOTE_DIR", required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
    /// How many hosts at once (pdsh -f)
    #[arg(short = 'f', long, value_name = "N", default_value_t = crate::cli::DEFAULT_FANOUT, value_parser = clap::value_parser!(u32).range(1..=4096))]
    fanout: u32,
    #[command(flatten)]
    hosts: HostArgs,
}

/// The `ec2-put` tool.
pub struct Put;

impl Tool for Put {
    type Cli = PutCli;

    fn run(mut cli: PutCli) -> Result<Code> {
        let (ssh, _, hosts) = super::selected_hosts(&cli.hosts)?;
        let remote = cli
            .paths
            .pop()
            .expect("two or more paths")
            .to_string_lossy()
            .into_owned();
        put(&ssh, &hosts, &cli.paths, &remote, cli.fanout as usize)
    }
}

/// The command line of `ec2-get` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Copy REMOTE_PATH (a file or directory, relative to the remote \
home) from every selected instance into LOCAL_DIR/<index>-<id>/, in parallel over SFTP; modes are kept; \
prints `<id> <address> <local-dir>` per instance; to s3://BUCKET/PREFIX/ each instance's files \
go as PREFIX/<case>/<index>-<id>.tar.zst, then a manifest.json",
    after_help = "Examples:
  ec2-get results.csv out/                        out/<index>-<id>/results.csv per instance
  ec2-get --role slave logs/ out/                 a directory, from the slaves only
  ec2-get logs/ s3://my-results/run-42/           tar+zstd per instance, multipart, manifest"
)]
pub struct GetCli {
    /// Remote file or directory
    #[arg(value_name = "REMOTE_PATH")]
    remote: String,
    /// Local directory (one subdirectory per instance), or s3://BUCKET/PREFIX/
    #[arg(value_name = "LOCAL_DIR")]
    local: PathBuf,
    /// How many hosts at once (pdsh -f)
    #[arg(short = 'f', long, value_name = "N", default_value_t = crate::cli::DEFAULT_FANOUT, value_parser = clap::value_parser!(u32).range(1..=4096))]
    fanout: u32,
    #[command(flatten)]
    hosts: HostArgs,
}

/// The `ec2-get` tool.
pub struct Get;

impl Tool for Get {
    type Cli = GetCli;

    fn run(cli: GetCli) -> Result<Code> {
        let s3 = crate::aws::s3::parse_url(&cli.local.to_string_lossy())
            .transpose()
            .map_err(Error::input)?;
        let (ssh, _, hosts) = super::selected_hosts(&cli.hosts)?;
        match s3 {
            Some((bucket, prefix)) => {
                let settings = cli.hosts.dir.settings()?;
                let cfg = crate::cli::resolve_case(
                    &settings,
                    &crate::cli::CaseArgs::default(),
                    &crate::cli::AwsArgs::default(),
                )?;
                let dest = super::results_s3::Dest {
                    bucket,
                    prefix,
                    case: cfg.case,
                    region: cfg.region,
                };
                super::results_s3::get_to_s3(&ssh, &hosts, &cli.remote, &dest, cli.fanout as usize)
            }
            None => get(&ssh, &hosts, &cli.remote, &cli.local, cli.fanout as usize),
        }
    }
}

/// Copy local files and directories into REMOTE_DIR (created if missing) on every host.
fn put(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    locals: &[PathBuf],
    remote_dir: &str,
    fanout: usize,
) -> Result<Code> {
    for l in locals {
        std::fs::symlink_metadata(l).map_err(|e| Error::input(format!("{}: {e}", l.display())))?;
    }
    let dir = remote_path(remote_dir);
    on_each_host(cfg, hosts, fanout, OutputConfig::default(), |d, conn, _| {
        let r = (|| -> std::result::Result<Tally, String> {
            let sftp = conn.sftp().map_err(|e| format!("sftp: {}", e.message()))?;
            mkdir_p(&sftp, &dir)?;
            let mut t = Tally::default();
            for l in locals {
                let name = l
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."));
                upload(&sftp, l, &dir.join(name), &mut t)?;
            }
            Ok(t)
        })();
        match r {
            Ok(t) => {
                output::data(format!(
                    "{} {} {} files {} bytes",
                    d.id, conn.target.address, t.files, t.bytes
                ));
                Status::Exited(0)
            }
            Err(e) => Status::Failed(SshError::new(Kind::Session, e)),
        }
    })
}

/// Copy REMOTE_PATH (a file or a directory) from every host into `LOCAL_DIR/<index>-<id>/`.
fn get(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    remote: &str,
    local_dir: &Path,
    fanout: usize,
) -> Result<Code> {
    std::fs::create_dir_all(local_dir)
        .map_err(|e| Error::input(format!("{}: {e}", local_dir.display())))?;
    let src = remote_path(remote);
    on_each_host(cfg, hosts, fanout, OutputConfig::default(), |d, conn, _| {
        let into = local_dir.join(format!("{}-{}", d.index, d.id));
        let r = (|| -> std::result::Result<Tally, String> {
            let sftp = conn.sftp().map_err(|e| format!("sftp: {}", e.message()))?;
            std::fs::create_dir_all(&into).map_err(|e| format!("{}: {e}", into.display()))?;
            let name = src
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("home"));
            let mut t = Tally::default();
            download(&sftp, &src, &into.join(name), &mut t)?;
            Ok(t)
        })();
        match r {
            Ok(_) => {
                output::data(format!(
                    "{} {} {}",
                    d.id,
                    conn.target.address,
                    into.display()
                ));
                Status::Exited(0)
            }
            Err(e) => Status::Failed(SshError::new(Kind::Session, e)),
        }
    })
}
