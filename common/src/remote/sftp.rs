//! Copying files over an SSH session's SFTP channel, both ways, for the tools that move files
//! (ec2-put, ec2-get, ec2-get to S3).
//!
//! Files stream in fixed-size chunks (bounded memory whatever their size); permission bits
//! are kept, never setuid/setgid/sticky; directories are copied recursively. What does not
//! belong here: which hosts, where copies land locally, what is reported (cmd/).

use ssh2::{OpenFlags, OpenType, Sftp};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CHUNK: usize = 256 * 1024;

/// A remote path as SFTP takes it: relative to the home directory unless absolute; `~/`
/// and `~` work.
pub(crate) fn remote_path(p: &str) -> PathBuf {
    let p = p
        .strip_prefix("~/")
        .unwrap_or(if p == "~" { "." } else { p });
    PathBuf::from(if p.is_empty() { "." } else { p })
}

fn sftp_err(what: &Path) -> impl Fn(ssh2::Error) -> String + '_ {
    move |e| format!("{}: {}", what.display(), e.message())
}

/// What a copy moved.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// `mkdir -p` over SFTP.
pub(crate) fn mkdir_p(sftp: &Sftp, dir: &Path) -> std::result::Result<(), String> {
    let mut cur = PathBuf::new();
    for c in dir.components() {
        cur.push(c);
        if cur.as_os_str() == "/" || cur.as_os_str() == "." {
            continue;
        }
        match sftp.stat(&cur) {
            Ok(st) if st.is_dir() => {}
            Ok(_) => return Err(format!("{}: exists and is not a directory", cur.display())),
            // Someone else (another session to the same host) may create it meanwhile.
            Err(_) => {
                if let Err(e) = sftp.mkdir(&cur, 0o755) {
                    if !sftp.stat(&cur).is_ok_and(|st| st.is_dir()) {
                        return Err(sftp_err(&cur)(e));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Copy a local file or directory (recursively) to `remote`, permission bits kept.
pub(crate) fn upload(
    sftp: &Sftp,
    local: &Path,
    remote: &Path,
    t: &mut Tally,
) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(local).map_err(|e| format!("{}: {e}", local.display()))?;
    // Permission bits only: setuid, setgid and sticky are never carried over (as OpenSSH's
    // sftp does).
    let mode = meta.permissions().mode() & 0o777;
    if meta.is_dir() {
        mkdir_p(sftp, remote)?;
        let mut entries: Vec<_> = std::fs::read_dir(local)
            .map_err(|e| format!("{}: {e}", local.display()))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            upload(sftp, &e.path(), &remote.join(e.file_name()), t)?;
        }
        let _ = sftp.setstat(remote, stat_with_mode(mode));
        return Ok(());
    }
    let mut src = std::fs::File::open(local).map_err(|e| format!("{}: {e}", local.display()))?;
    let mut dst = sftp
        .open_mode(
            remote,
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
            mode as i32,
            OpenType::File,
        )
        .map_err(sftp_err(remote))?;
    copy_chunks(&mut src, local, &mut dst, remote, t)?;
    drop(dst);
    sftp.setstat(remote, stat_with_mode(mode))
        .map_err(sftp_err(remote))?;
    t.files += 1;
    Ok(())
}

/// Stream `src` into `dst` in fixed chunks: bounded memory whatever the file's size.
fn copy_chunks(
    src: &mut impl Read,
    src_name: &Path,
    dst: &mut impl Write,
    dst_name: &Path,
    t: &mut Tally,
) -> std::result::Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", src_name.display()))?;
        if n == 0 {
            return Ok(());
        }
        dst.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", dst_name.display()))?;
        t.bytes += n as u64;
    }
}

fn stat_with_mode(mode: u32) -> ssh2::FileStat {
    ssh2::FileStat {
        size: None,
        uid: None,
        gid: None,
        perm: Some(mode),
        atime: None,
        mtime: None,
    }
}

/// Copy a remote file or directory (recursively) to `local`, permission bits kept.
pub(crate) fn download(
    sftp: &Sftp,
    remote: &Path,
    local: &Path,
    t: &mut Tally,
) -> std::result::Result<(), String> {
    let st = sftp.stat(remote).map_err(sftp_err(remote))?;
    let mode = st.perm.unwrap_or(0o644) & 0o777; // never a remote setuid/setgid/sticky bit
    if st.is_dir() {
        std::fs::create_dir_all(local).map_err(|e| format!("{}: {e}", local.display()))?;
        let mut entries = sftp.readdir(remote).map_err(sftp_err(remote))?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, _) in entries {
            let Some(name) = path.file_name() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            download(sftp, &remote.join(name), &local.join(name), t)?;
        }
        let _ = std::fs::set_permissions(local, std::fs::Permissions::from_mode(mode));
        return Ok(());
    }
    let mut src = sftp.open(remote).map_err(sftp_err(remote))?;
    let mut dst = std::fs::File::create(local).map_err(|e| format!("{}: {e}", local.display()))?;
    copy_chunks(&mut src, remote, &mut dst, local, t)?;
    std::fs::set_permissions(local, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", local.display()))?;
    t.files += 1;
    Ok(())
}
