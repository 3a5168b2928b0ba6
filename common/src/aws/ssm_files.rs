//! ec2-put and ec2-get over SSM: no SFTP without a login, so files go through the case's S3
//! bucket (`ssm_bucket`) with presigned URLs each instance fetches or fills itself (`curl`),
//! never credentials. Put: the local files as one tar, uploaded once (multipart, bounded
//! memory), streamed by every host into its directory (`curl | tar -x`). Get: each host tars
//! its path (and its sampler files) and PUTs it to its own URL; here each is downloaded to
//! disk and unpacked into `LOCAL_DIR/<index>-<id>/`, `-f/--fanout` at a time. The objects are
//! deleted afterwards (one DeleteObjects per thousand), whatever became of the run. The URLs travel as the hosts' input, never as shell text.
//!
//! What does not belong here: running the commands (run_command.rs), what a copy prints
//! (cmd/files.rs).

use super::s3::S3;
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::remote::failure::{Kind, SshError};
use crate::remote::fanout::{Judge, RunOpts};
use crate::remote::results::{Collector, HostSink, Outcome, Status};
use crate::remote::task::{get_dir, Done, PerHost, Task};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a presigned URL works: the longest a copy may take.
const VALID: Duration = Duration::from_secs(6 * 3600);

/// Each host's put: read the URL and the directory, stream the tar into it.
const PUT: &str = r#"IFS= read -r u; IFS= read -r d
case $d in "~") d=$HOME ;; "~/"*) d=$HOME/${d#"~/"} ;; /*) ;; *) d=$HOME/$d ;; esac
mkdir -p -- "$d" && curl -fsS --retry 3 -- "$u" | tar -xpf - -C "$d""#;

/// Each host's get: its URL, the path, its id (for its sampler files); a tar of them PUT.
const GET: &str = r#"IFS= read -r u; IFS= read -r p; IFS= read -r id; IFS= read -r s
case $p in "~") p=$HOME ;; "~/"*) p=$HOME/${p#"~/"} ;; /*) ;; *) p=$HOME/$p ;; esac
[ -e "$p" ] || { echo "$p: no such file or directory" >&2; exit 1; }
t=$(mktemp -d) || exit 1; trap 'rm -rf "$t"' EXIT
mkdir "$t/x" && ln -s "$p" "$t/x/$(basename "$p")" || exit 1
if [ -n "$s" ]; then
  case $s in /*) ;; *) s=$HOME/$s ;; esac
  for f in "$s"/*-"$id".tsv; do [ -f "$f" ] && mkdir -p "$t/x/ec2-samples" && ln -s "$f" "$t/x/ec2-samples/"; done
fi
tar -chf "$t/a.tar" -C "$t/x" . && curl -fsS --retry 3 -T "$t/a.tar" -- "$u""#;

/// The bucket, or the one-line reason a copy over SSM cannot run (exit 2, before anything).
fn bucket(cfg: &SshConfig) -> Result<String> {
    cfg.ssm_bucket.clone().ok_or_else(|| {
        Error::input(
            "copies over SSM go through S3: give --ssm-bucket BUCKET (or ssm_bucket), a bucket \
             the instances' role may read and write",
        )
    })
}

/// Run a copy task over SSM; `judge` gets each host's `Done::Copied` as over SSH.
pub fn copy(
    collector: &Collector,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    task: &Task,
    opts: &RunOpts,
    judge: &Judge,
) -> Result<Vec<Outcome>> {
    let bucket = bucket(cfg)?;
    // The copy commands print nothing worth keeping: no output objects to leave behind.
    let cfg = &SshConfig {
        ssm_bucket: None,
        ..cfg.clone()
    };
    let region = hosts.first().and_then(|d| d.region.clone());
    let case = hosts.first().map(|d| d.case.clone()).unwrap_or_default();
    let job = job_id();
    let rt = super::runtime()?;
    let s3 = rt.block_on(async {
        let s3 = super::s3::connect(region.as_deref()).await?;
        s3.check_bucket(&bucket).await?;
        Ok::<S3, Error>(s3)
    })?;
    match task {
        Task::Put { locals, remote_dir } => {
            let key = format!("ec2-tools/{case}/put/{job}.tar");
            let (files, bytes, tar) = pack(locals)?;
            let url = rt.block_on(async {
                s3.upload_file(&bucket, &key, tar.path()).await?;
                s3.presign(&bucket, &key, false, VALID).await
            });
            let result = url.and_then(|url| {
                let line = |s: &str| s.replace(['\n', '\r'], " ");
                let cmd = Task::Script {
                    script: PUT.into(),
                    stdin: PerHost::Same(format!("{}\n{}\n", line(&url), line(remote_dir)).into()),
                };
                let copied = |d: &Descriptor,
                              a: &str,
                              r: std::result::Result<Done, SshError>,
                              s: &HostSink| {
                    judge(d, a, r.and_then(|done| exit_zero(done, files, bytes)), s)
                };
                super::run_command::run_task(collector, cfg, hosts, &cmd, opts, &copied, None)
            });
            cleaned(rt.block_on(s3.delete(&bucket, &key)));
            result
        }
        Task::Get {
            remote,
            local_dir,
            samples,
        } => {
            let keys: Vec<String> = hosts
                .iter()
                .map(|d| format!("ec2-tools/{case}/get/{job}/{}.tar", d.id))
                .collect();
            let result = get(
                &rt,
                &s3,
                &bucket,
                &keys,
                collector,
                cfg,
                hosts,
                opts,
                judge,
                (remote, local_dir, samples.as_deref()),
            );
            cleaned(rt.block_on(s3.delete_all(&bucket, &keys)));
            result
        }
        _ => Err(Error::input("not a copy")),
    }
}

/// The copy's objects deleted, or a line saying which were left (the copy's own result
/// stands either way).
fn cleaned(r: Result<()>) {
    if let Err(e) = r {
        crate::output::note(format!("left in S3 (delete them yourself): {e}"));
    }
}

/// This copy's objects' name: milliseconds and pid (two copies at once never share one).
fn job_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_millis())
        .unwrap_or(0);
    format!("{ms}-{}", std::process::id())
}

/// A host's copy command ended: exit 0 is the copy done.
fn exit_zero(done: Done, files: u64, bytes: u64) -> std::result::Result<Done, SshError> {
    match done {
        Done::Exit(0) => Ok(Done::Copied { files, bytes }),
        Done::Exit(c) => Err(SshError::new(Kind::Session, format!("copy exited {c}"))),
        other => Ok(other),
    }
}

#[allow(clippy::too_many_arguments)]
fn get(
    rt: &tokio::runtime::Runtime,
    s3: &S3,
    bucket: &str,
    keys: &[String],
    collector: &Collector,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    opts: &RunOpts,
    judge: &Judge,
    (remote, local_dir, samples): (&str, &Path, Option<&str>),
) -> Result<Vec<Outcome>> {
    let mut inputs = Vec::new();
    for (d, key) in hosts.iter().zip(keys) {
        let url = rt.block_on(s3.presign(bucket, key, true, VALID))?;
        let line = |s: &str| s.replace(['\n', '\r'], " ");
        inputs.push(
            format!(
                "{}\n{}\n{}\n{}\n",
                line(&url),
                line(remote),
                d.id,
                line(samples.unwrap_or(""))
            )
            .into_bytes(),
        );
    }
    let cmd = Task::Script {
        script: GET.into(),
        stdin: PerHost::Each(inputs),
    };
    // The hosts' commands first (their tars uploaded), then each tar brought home.
    let uploaded = |_: &Descriptor,
                    _: &str,
                    r: std::result::Result<Done, SshError>,
                    _: &HostSink| match r.and_then(|d| exit_zero(d, 0, 0)) {
        Ok(_) => Status::Exited(0),
        Err(e) => Status::Failed(e),
    };
    let quiet = Collector::new(crate::config::OutputConfig::default())?;
    let ran = super::run_command::run_task(&quiet, cfg, hosts, &cmd, opts, &uploaded, None)?;
    let homes: Vec<PathBuf> = hosts.iter().map(|d| get_dir(local_dir, d)).collect();
    let fetched = rt.block_on(fetch_all(s3, bucket, keys, &homes, &ran, opts.width));
    let mut out = Vec::with_capacity(ran.len());
    for ((d, o), r) in hosts.iter().zip(ran).zip(fetched) {
        let sink = collector.host(d, &o.address);
        let status = judge(d, &o.address, r, &sink);
        let o = Outcome { status, ..o };
        collector.done(sink, &o);
        out.push(o);
    }
    Ok(out)
}

/// Each host's tar brought home into its directory, `width` at a time (a fleet's results in
/// the time of its slowest few downloads, not of all of them one after the other); a host
/// whose command failed keeps its failure.
async fn fetch_all(
    s3: &S3,
    bucket: &str,
    keys: &[String],
    homes: &[PathBuf],
    ran: &[Outcome],
    width: usize,
) -> Vec<std::result::Result<Done, SshError>> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(width.clamp(1, 64)));
    let mut set = tokio::task::JoinSet::new();
    let mut out: Vec<_> = ran
        .iter()
        .map(|o| match &o.status {
            Status::Exited(0) => Err(SshError::new(Kind::Session, "its tar was not brought home")),
            Status::Failed(e) => Err(e.clone()),
            _ => Err(SshError::new(Kind::NotStarted, "not started")),
        })
        .collect();
    for (i, o) in ran.iter().enumerate() {
        if !matches!(o.status, Status::Exited(0)) {
            continue;
        }
        let (s3, bucket, key, into) = (
            s3.clone(),
            bucket.to_owned(),
            keys[i].clone(),
            homes[i].clone(),
        );
        let gate = gate.clone();
        set.spawn(async move {
            let _turn = gate.acquire_owned().await;
            let r = unpack(&s3, &bucket, &key, &into).await;
            (i, r)
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = r
                .map(|(files, bytes)| Done::Copied { files, bytes })
                .map_err(|e| SshError::new(Kind::Session, e.to_string()));
        }
    }
    out
}

/// The local files and directories as one tar on disk (each by its own name): how many
/// files, and the file.
fn pack(locals: &[PathBuf]) -> Result<(u64, u64, tempfile::NamedTempFile)> {
    let tmp =
        tempfile::NamedTempFile::new().map_err(|e| Error::infra(format!("temp file: {e}")))?;
    let mut b = tar::Builder::new(tmp.reopen().map_err(|e| Error::infra(e.to_string()))?);
    b.follow_symlinks(false);
    let (mut files, mut bytes) = (0, 0);
    for l in locals {
        let name = l
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| ".".into());
        let (f, n) = tally(l);
        files += f;
        bytes += n;
        let r = if l.is_dir() {
            b.append_dir_all(&name, l)
        } else {
            b.append_path_with_name(l, &name)
        };
        r.map_err(|e| Error::input(format!("{}: {e}", l.display())))?;
    }
    b.finish().map_err(|e| Error::infra(e.to_string()))?;
    Ok((files, bytes, tmp))
}

/// Files and their bytes under `p` (as SFTP would count them).
fn tally(p: &Path) -> (u64, u64) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| tally(&e.path()))
                    .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
            })
            .unwrap_or((0, 0)),
        Ok(m) => (1, m.len()),
        Err(_) => (0, 0),
    }
}

/// A host's tar, downloaded to disk and unpacked into `into` (no path outside it): files and
/// bytes.
async fn unpack(s3: &S3, bucket: &str, key: &str, into: &Path) -> Result<(u64, u64)> {
    let tmp =
        tempfile::NamedTempFile::new().map_err(|e| Error::infra(format!("temp file: {e}")))?;
    s3.download_file(bucket, key, tmp.path()).await?;
    std::fs::create_dir_all(into).map_err(|e| Error::infra(format!("{}: {e}", into.display())))?;
    let mut a = tar::Archive::new(
        std::fs::File::open(tmp.path()).map_err(|e| Error::infra(e.to_string()))?,
    );
    a.set_preserve_permissions(true);
    let (mut files, mut bytes) = (0, 0);
    for entry in a.entries().map_err(|e| Error::infra(e.to_string()))? {
        let mut entry = entry.map_err(|e| Error::infra(e.to_string()))?;
        if entry.header().entry_type().is_file() {
            files += 1;
            bytes += entry.size();
        }
        entry
            .unpack_in(into)
            .map_err(|e| Error::infra(format!("{}: {e}", into.display())))?;
    }
    Ok((files, bytes))
}
