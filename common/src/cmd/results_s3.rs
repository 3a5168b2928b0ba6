//! `ec2-get REMOTE_PATH s3://bucket/prefix/`: results to S3, compressed (the JMeter seed's
//! open to-do). Each instance's files are fetched over SFTP into a private temp directory,
//! packed as tar + zstd (level 3: several times faster than gzip at a better ratio on logs and
//! CSVs, so 1,000 hosts' results pack quickly on one laptop), and uploaded as
//! `prefix/<case>/<index>-<id>.tar.zst` — multipart for large archives, a few uploads at a
//! time, memory bounded by the part size. A manifest (`prefix/<case>/manifest.json`: ids,
//! sizes, SHA-256, which hosts failed and why) is written last, so its presence means the set
//! is complete. The bucket is checked before any host is contacted.

use crate::aws::s3::{self, S3};
use crate::case::descriptor::Descriptor;
use crate::config::{OutputConfig, SshConfig};
use crate::error::{Code, Error, Result};
use crate::output;
use crate::remote::fanout::on_each_host;
use crate::remote::results::Status;
use crate::remote::ssh::{Kind, SshError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Uploads at once (each holds at most one part in memory).
const UPLOADS: usize = 8;

/// Where results go.
pub(crate) struct Dest {
    pub bucket: String,
    pub prefix: String,
    pub case: String,
    pub region: Option<String>,
}

impl Dest {
    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            format!("{}/{name}", self.case)
        } else {
            format!("{}/{}/{name}", self.prefix, self.case)
        }
    }
}

/// One host's packed results, waiting for upload.
struct Packed {
    id: String,
    index: u32,
    address: String,
    archive: PathBuf,
    files: u64,
}

/// Fetch REMOTE from every host, pack, upload, write the manifest.
pub(crate) fn get_to_s3(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    remote: &str,
    dest: &Dest,
    fanout: usize,
) -> Result<Code> {
    let rt = crate::aws::runtime()?;
    let s3 = rt.block_on(async {
        let s3 = s3::connect(dest.region.as_deref()).await?;
        s3.check_bucket(&dest.bucket).await?;
        Ok::<_, Error>(s3)
    })?;
    let tmp = tempfile::tempdir().map_err(|e| Error::infra(format!("temp directory: {e}")))?;
    let packed: Mutex<Vec<Packed>> = Mutex::new(Vec::new());
    let failed: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let src = crate::remote::sftp::remote_path(remote);
    let fetched =
        on_each_host(
            cfg,
            hosts,
            fanout,
            OutputConfig::default(),
            |d, conn, _| match fetch_and_pack(d, conn, &src, tmp.path()) {
                Ok(p) => {
                    packed.lock().unwrap().push(p);
                    Status::Exited(0)
                }
                Err(e) => {
                    failed.lock().unwrap().push((d.id.clone(), e.clone()));
                    Status::Failed(SshError::new(Kind::Session, e))
                }
            },
        )?;
    let mut packed = packed.into_inner().unwrap();
    packed.sort_by_key(|p| p.index);
    let mut failed = failed.into_inner().unwrap();
    let uploaded = rt.block_on(upload_all(&s3, dest, &packed))?;
    let (objects, bytes) = listed(dest, &packed, uploaded, &mut failed);
    let manifest = json!({
        "case": dest.case,
        "bucket": dest.bucket,
        "remote_path": remote,
        "compression": "tar+zstd (level 3)",
        "created": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "objects": objects,
        "failed": failed.iter().map(|(id, why)| json!({"id": id, "error": why})).collect::<Vec<_>>(),
    });
    let key = dest.key("manifest.json");
    rt.block_on(s3.put_bytes(&dest.bucket, &key, format!("{manifest:#}\n").into_bytes()))?;
    output::note(format!(
        "uploaded {} ({bytes} bytes, tar+zstd) and the manifest s3://{}/{key}",
        output::count(objects.len(), "archive"),
        dest.bucket
    ));
    Ok(if failed.is_empty() {
        fetched
    } else {
        fetched.merge(Code::Partial)
    })
}

/// One host's REMOTE, fetched over SFTP into `tmp` and packed there.
fn fetch_and_pack(
    d: &Descriptor,
    conn: &crate::remote::ssh::Conn,
    src: &Path,
    tmp: &Path,
) -> std::result::Result<Packed, String> {
    let name = format!("{}-{}", d.index, d.id);
    let sftp = conn.sftp().map_err(|e| format!("sftp: {}", e.message()))?;
    let into = tmp.join(&name);
    std::fs::create_dir_all(&into).map_err(|e| format!("{}: {e}", into.display()))?;
    let leaf = src
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("home"));
    let mut t = crate::remote::sftp::Tally::default();
    crate::remote::sftp::download(&sftp, src, &into.join(leaf), &mut t)?;
    let archive = tmp.join(format!("{name}.tar.zst"));
    pack(&into, &archive).map_err(|e| format!("packing: {e}"))?;
    let _ = std::fs::remove_dir_all(&into);
    Ok(Packed {
        id: d.id.clone(),
        index: d.index,
        address: conn.target.address.clone(),
        archive,
        files: t.files,
    })
}

/// The manifest's objects for the uploads that worked (each printed as a data line), and
/// their bytes; the uploads that failed join `failed`.
fn listed(
    dest: &Dest,
    packed: &[Packed],
    uploaded: Vec<Result<(u64, String)>>,
    failed: &mut Vec<(String, String)>,
) -> (Vec<serde_json::Value>, u64) {
    let mut objects = Vec::new();
    let mut bytes = 0u64;
    for (p, r) in packed.iter().zip(uploaded) {
        match r {
            Ok((size, sha)) => {
                let key = dest.key(&format!("{}-{}.tar.zst", p.index, p.id));
                let url = format!("s3://{}/{key}", dest.bucket);
                output::record(
                    json!({"id": p.id, "index": p.index, "address": p.address, "url": url,
                        "bytes": size}),
                    format!("{} {} {url} {size}", p.id, p.address),
                );
                bytes += size;
                objects.push(
                    json!({"id": p.id, "index": p.index, "key": key, "bytes": size,
                    "sha256": sha, "files": p.files}),
                );
            }
            Err(e) => failed.push((p.id.clone(), e.message)),
        }
    }
    (objects, bytes)
}

/// tar + zstd (level 3) of `dir`'s contents into `archive`, streamed: bounded memory.
fn pack(dir: &Path, archive: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(archive)?;
    let mut tar = tar::Builder::new(zstd::stream::write::Encoder::new(file, 3)?);
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)?;
    tar.into_inner()?.finish()?.sync_all()
}

/// Upload every archive, [`UPLOADS`] at a time; results in `packed`'s order.
async fn upload_all(
    s3: &S3,
    dest: &Dest,
    packed: &[Packed],
) -> Result<Vec<std::result::Result<(u64, String), Error>>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(UPLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in packed.iter().enumerate() {
        let (s3, limit) = (s3.clone(), limit.clone());
        let bucket = dest.bucket.clone();
        let key = dest.key(&format!("{}-{}.tar.zst", p.index, p.id));
        let path = p.archive.clone();
        tasks.spawn(async move {
            let _slot = limit.acquire_owned().await;
            (i, s3.upload_file(&bucket, &key, &path).await)
        });
    }
    let mut out: Vec<Option<std::result::Result<(u64, String), Error>>> =
        (0..packed.len()).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.map_err(|e| Error::infra(format!("upload task: {e}")))?;
        out[i] = Some(r);
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every task reported"))
        .collect())
}
