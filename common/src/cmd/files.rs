//! File transfer: `ec2-put` and `ec2-get`, over the same SSH sessions (SFTP through libssh2),
//! in parallel, on the selected instances.
//!
//! Files stream in fixed-size chunks (bounded memory whatever their size); modes are preserved;
//! directories are copied recursively. ec2-get keeps each instance's copy apart under
//! `LOCAL_DIR/<index>-<id>/`, so fetching every client's logs after a run (seed 001) is one
//! command. Remote paths are relative to the remote user's home unless absolute; `~/` works.

use super::transport::run_task;
use crate::case::descriptor::Descriptor;
use crate::cli::HostArgs;
use crate::config::{OutputConfig, SshConfig};
use crate::error::{Code, Error, Result};
use crate::output;
use crate::remote::fanout::RunOpts;
use crate::remote::results::{Collector, Status};
use crate::remote::task::{get_dir, Done, Task};
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
    #[arg(short = 'f', long, value_name = "N", default_value_t = crate::cli::DEFAULT_FANOUT, value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_FANOUT as i64))]
    fanout: u32,
    #[command(flatten)]
    hosts: HostArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

/// The `ec2-put` tool.
pub struct Put;

impl Tool for Put {
    type Cli = PutCli;

    fn run(mut cli: PutCli) -> Result<Code> {
        cli.json.apply();
        let (ssh, store, hosts) = super::selected_hosts(&cli.hosts)?;
        let state_dir = store.state_dir().ok();
        let remote = cli
            .paths
            .pop()
            .expect("two or more paths")
            .to_string_lossy()
            .into_owned();
        put(
            &ssh,
            &hosts,
            state_dir.as_deref(),
            &cli.paths,
            &remote,
            cli.fanout as usize,
        )
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
    #[arg(short = 'f', long, value_name = "N", default_value_t = crate::cli::DEFAULT_FANOUT, value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_FANOUT as i64))]
    fanout: u32,
    /// Do not bring home the hosts' sample files (`ec2-exec-remote --sample`), which by
    /// default land in `LOCAL_DIR/<index>-<id>/ec2-samples/` for ec2-report
    #[arg(long)]
    no_samples: bool,
    #[command(flatten)]
    hosts: HostArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

/// The `ec2-get` tool.
pub struct Get;

impl Tool for Get {
    type Cli = GetCli;

    fn run(cli: GetCli) -> Result<Code> {
        cli.json.apply();
        let s3 = crate::aws::s3::parse_url(&cli.local.to_string_lossy())
            .transpose()
            .map_err(Error::input)?;
        let (ssh, store, hosts) = super::selected_hosts(&cli.hosts)?;
        match s3 {
            Some(_) if ssh.transport_for(&hosts) == crate::config::Transport::Ssm => {
                Err(Error::input(
                    "ec2-get to s3:// packs on an SSH login: under transport ssm give a local \
                     directory (the copy goes through --ssm-bucket)",
                ))
            }
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
            None => get(
                &ssh,
                &hosts,
                store.state_dir().ok().as_deref(),
                &cli.remote,
                &cli.local,
                cli.fanout as usize,
                (!cli.no_samples).then(|| crate::report::samples::REMOTE_DIR.to_owned()),
            ),
        }
    }
}

/// Copy local files and directories into REMOTE_DIR (created if missing) on every host.
fn put(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    state_dir: Option<&Path>,
    locals: &[PathBuf],
    remote_dir: &str,
    fanout: usize,
) -> Result<Code> {
    let mut absolute = Vec::with_capacity(locals.len());
    for l in locals {
        std::fs::symlink_metadata(l).map_err(|e| Error::input(format!("{}: {e}", l.display())))?;
        // The session holder reads them too, from its own working directory.
        absolute.push(
            std::path::absolute(l).map_err(|e| Error::input(format!("{}: {e}", l.display())))?,
        );
    }
    let task = Task::Put {
        locals: absolute,
        remote_dir: remote_dir.to_owned(),
    };
    copy(
        cfg,
        hosts,
        state_dir,
        &task,
        fanout,
        &|d, address, files, bytes| {
            output::record(
                serde_json::json!({"id": d.id, "index": d.index, "address": address,
                    "files": files, "bytes": bytes}),
                format!("{} {address} {files} files {bytes} bytes", d.id),
            );
        },
    )
}

/// Copy REMOTE_PATH (a file or a directory) from every host into `LOCAL_DIR/<index>-<id>/`.
fn get(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    state_dir: Option<&Path>,
    remote: &str,
    local_dir: &Path,
    fanout: usize,
    samples: Option<String>,
) -> Result<Code> {
    std::fs::create_dir_all(local_dir)
        .map_err(|e| Error::input(format!("{}: {e}", local_dir.display())))?;
    let task = Task::Get {
        remote: remote.to_owned(),
        local_dir: std::path::absolute(local_dir)
            .map_err(|e| Error::input(format!("{}: {e}", local_dir.display())))?,
        samples,
    };
    copy(cfg, hosts, state_dir, &task, fanout, &|d, address, _, _| {
        // As the user named it (relative stays relative).
        let dir = get_dir(local_dir, d).display().to_string();
        output::record(
            serde_json::json!({"id": d.id, "index": d.index, "address": address, "dir": dir}),
            format!("{} {address} {dir}", d.id),
        );
    })
}

/// Run a copy on every host (warm sessions when the case has them); `done` prints a host's
/// line once its copy finished (files, bytes); then the summary.
fn copy(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    state_dir: Option<&Path>,
    task: &Task,
    fanout: usize,
    done: &(dyn Fn(&Descriptor, &str, u64, u64) + Sync),
) -> Result<Code> {
    let collector = Collector::new(OutputConfig::default())?;
    let opts = RunOpts {
        width: fanout,
        timeout: None,
        holder: state_dir,
        same_instant: false,
    };
    let outcomes = run_task(
        &collector,
        cfg,
        hosts,
        task,
        &opts,
        &|d, address, r, _| match r.and_then(Done::copied) {
            Ok((files, bytes)) => {
                done(d, address, files, bytes);
                Status::Exited(0)
            }
            Err(e) => Status::Failed(e),
        },
    )?;
    collector.finish(&outcomes)
}
