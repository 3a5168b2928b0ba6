//! What one host does in a run — a command, a job script, a copy either way — written as
//! data, so the tool's own connection and the session holder's held one do exactly the same
//! thing (the holder runs as the same user on the same machine: it reads and writes the same
//! local files).
//!
//! What does not belong here: which hosts, over which connection (fanout.rs, holder/), how
//! results are presented (results.rs), what a tool makes of them (cmd/).

use super::command::Stream;
use super::failure::Kind;
use super::sftp::{download, mkdir_p, remote_path, upload, Tally};
use super::ssh::Conn;
use super::ssh::SshError;
use crate::case::descriptor::Descriptor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One value for every host, or one per host (in the hosts' order).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum PerHost<T> {
    /// The same for every host (sent once, whatever the fleet's size).
    Same(T),
    /// One per host.
    Each(Vec<T>),
}

impl<T> PerHost<T> {
    /// Host `i`'s value.
    pub fn get(&self, i: usize) -> &T {
        match self {
            PerHost::Same(v) => v,
            PerHost::Each(v) => &v[i],
        }
    }
}

/// What to do on each host.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Task {
    /// A command through the remote user's shell, as ec2-exec-remote runs it: its process
    /// group tracked (killed on timeout or interruption), the host's identity on its stdin
    /// ahead of `stdin`.
    Command {
        /// The command line (per host with `--at`: each waits for its own instant).
        command: PerHost<String>,
        /// Sent to the command on every host.
        stdin: Option<Vec<u8>>,
        /// The case's host list, written on every host (`$CURRENT_HOSTS`).
        #[serde(default)]
        hosts: String,
    },
    /// A script executed as given, with its own input per host (job control: the job's file
    /// name and identity lines).
    Script {
        /// The remote command line.
        script: String,
        /// What each host's script reads.
        stdin: PerHost<Vec<u8>>,
    },
    /// ec2-put: local files and directories (absolute paths) into a remote directory.
    Put {
        /// What to copy, each by its own name.
        locals: Vec<PathBuf>,
        /// Created if missing; relative to the remote home unless absolute.
        remote_dir: String,
    },
    /// ec2-get: a remote file or directory into `<local_dir>/<index>-<id>/`.
    Get {
        /// Relative to the remote home unless absolute.
        remote: String,
        /// An absolute local directory.
        local_dir: PathBuf,
        /// A remote directory whose `*.tsv` files (the sampler's) come home too, into
        /// `<local_dir>/<index>-<id>/ec2-samples/`; a host without it is not an error.
        #[serde(default)]
        samples: Option<String>,
    },
}

/// Where a host's sample files land under its ec2-get directory.
pub const SAMPLES_HOME: &str = "ec2-samples";

/// How a host's task ended, when it ran.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The command or script exited with this code.
    Exit(i32),
    /// A copy finished: how many files and bytes moved.
    Copied {
        /// Files copied.
        files: u64,
        /// Bytes copied.
        bytes: u64,
    },
}

impl Done {
    /// A command's or script's exit code (any other result is an error).
    pub fn code(self) -> Result<i32, SshError> {
        match self {
            Done::Exit(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// A copy's files and bytes (any other result is an error).
    pub fn copied(self) -> Result<(u64, u64), SshError> {
        match self {
            Done::Copied { files, bytes } => Ok((files, bytes)),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(d: Done) -> SshError {
    SshError::new(Kind::Session, format!("unexpected result: {d}"))
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Exit(c) => write!(f, "exit {c}"),
            Done::Copied { files, bytes } => write!(f, "copied {files} files, {bytes} bytes"),
        }
    }
}

/// Host `i` (`d`) does its part of `task` on `conn`; output goes to `out`. `deadline` and
/// `stop` bound commands and scripts (a command's process group is killed then).
pub fn perform(
    task: &Task,
    i: usize,
    d: &Descriptor,
    conn: &Conn,
    deadline: Option<Instant>,
    stop: &dyn Fn() -> bool,
    out: &mut dyn FnMut(Stream, &[u8]),
) -> Result<Done, SshError> {
    match task {
        Task::Command {
            command,
            stdin,
            hosts,
        } => {
            let who = crate::remote::command::who_lines(d, hosts);
            conn.run_command(
                command.get(i),
                who.as_bytes(),
                stdin.as_deref(),
                deadline,
                stop,
                out,
            )
            .map(|info| Done::Exit(info.code))
        }
        Task::Script { script, stdin } => conn
            .exec(script, Some(stdin.get(i)), deadline, stop, out)
            .map(|info| Done::Exit(info.code)),
        Task::Put { locals, remote_dir } => {
            let sftp = open_sftp(conn)?;
            let dir = remote_path(remote_dir);
            let copy = || -> Result<Tally, String> {
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
            };
            copied(copy())
        }
        Task::Get {
            remote,
            local_dir,
            samples,
        } => {
            let sftp = open_sftp(conn)?;
            let src = remote_path(remote);
            let into = get_dir(local_dir, d);
            let copy = || -> Result<Tally, String> {
                std::fs::create_dir_all(&into).map_err(|e| format!("{}: {e}", into.display()))?;
                let name = src
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("home"));
                let mut t = Tally::default();
                download(&sftp, &src, &into.join(name), &mut t)?;
                if let Some(dir) = samples {
                    get_samples(
                        &sftp,
                        &remote_path(dir),
                        &d.id,
                        &into.join(SAMPLES_HOME),
                        &mut t,
                    )?;
                }
                Ok(t)
            };
            copied(copy())
        }
    }
}

/// The sampler's files of instance `id` (`*-<id>.tsv`: a home shared by several instances
/// holds theirs too) in `dir`, if it exists, into `into`.
fn get_samples(
    sftp: &ssh2::Sftp,
    dir: &Path,
    id: &str,
    into: &Path,
    t: &mut Tally,
) -> Result<(), String> {
    let suffix = format!("-{id}.tsv");
    let Ok(entries) = sftp.readdir(dir) else {
        return Ok(());
    };
    for (path, st) in entries {
        let Some(name) = path.file_name() else {
            continue;
        };
        if st.is_file() && name.to_string_lossy().ends_with(&suffix) {
            std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
            download(sftp, &dir.join(name), &into.join(name), t)?;
        }
    }
    Ok(())
}

/// Where ec2-get puts host `d`'s copy: `<local_dir>/<index>-<id>`.
pub fn get_dir(local_dir: &std::path::Path, d: &Descriptor) -> PathBuf {
    local_dir.join(format!("{}-{}", d.index, d.id))
}

fn open_sftp(conn: &Conn) -> Result<ssh2::Sftp, SshError> {
    conn.sftp().map_err(|e| {
        SshError::new(
            Kind::NotStarted,
            format!("open channel (sftp): {}", e.message()),
        )
    })
}

fn copied(r: Result<Tally, String>) -> Result<Done, SshError> {
    r.map(|t| Done::Copied {
        files: t.files,
        bytes: t.bytes,
    })
    .map_err(|e| SshError::new(Kind::Session, e))
}
