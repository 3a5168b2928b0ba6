//! The tool's side of warm sessions: reach (or start) the case's holder, send a run, turn its
//! frames into per-host events, stop it. Every failure is [`Unavailable`]: the caller goes on
//! with direct logins. What does not belong here: the holder process (server.rs).

use super::{frame, read_frame, socket_path, Ended, Request, RunRequest, HEARTBEAT};
use crate::config::SshConfig;
use crate::remote::command::Stream;
use crate::remote::failure::Kind;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One host's end, as the tool sees it through the holder.
pub enum HostEvent<'a> {
    /// Output arrived.
    Output(Stream, &'a [u8]),
    /// The command may have started.
    Started,
    /// It ended.
    Ended(Ended),
}

/// Why the holder could not be used (the tool goes on without it).
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Connect to the case's holder, starting one (`ec2-tools session-holder`) when none answers.
pub fn connect_or_start(state_dir: &Path, cfg: &SshConfig) -> Result<UnixStream, Unavailable> {
    let sock = socket_path(state_dir)
        .ok_or_else(|| Unavailable("the case's path is too long for a Unix socket".into()))?;
    if let Ok(s) = UnixStream::connect(&sock) {
        return Ok(s);
    }
    let exe = holder_program().ok_or_else(|| {
        Unavailable("the ec2-tools program is not beside this one nor on PATH".into())
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join("holder.log"))
        .map_err(|e| Unavailable(format!("holder.log: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("session-holder")
        .arg(state_dir)
        .arg(humantime::format_duration(cfg.persist.unwrap_or_default()).to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; the holder leaves this process's session and
    // terminal, so a Ctrl-C in the user's shell does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| Unavailable(format!("cannot start the session holder: {e}")))?;
    let deadline = Instant::now() + cfg.holder_start_limit();
    loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            return Err(Unavailable(
                "the session holder did not start in time".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ec2-tools` beside this program (or one directory up: cargo's examples), else on PATH.
fn holder_program() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join("ec2-tools");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("ec2-tools"))
            .find(|p| p.is_file())
    })
}

/// Send `run` to the holder on `stream` and hand every event to `on`, by host index. Returns
/// when the holder says all hosts ended, or with why it went quiet or away (the caller decides
/// what to do with the hosts that had not ended).
pub fn run(
    stream: UnixStream,
    run: &RunRequest,
    quiet_limit: Duration,
    stop: &dyn Fn() -> bool,
    on: &mut dyn FnMut(u32, HostEvent),
) -> Result<(), Unavailable> {
    let mut line = serde_json::to_vec(&Request::Run(Box::new(run.clone())))
        .map_err(|e| Unavailable(e.to_string()))?;
    line.push(b'\n');
    let mut s = stream;
    s.set_write_timeout(Some(quiet_limit))
        .and_then(|()| s.write_all(&line))
        .map_err(|e| Unavailable(format!("sending to the session holder: {e}")))?;
    s.set_read_timeout(Some(quiet_limit.max(HEARTBEAT * 4)))
        .map_err(|e| Unavailable(e.to_string()))?;
    let mut r = BufReader::new(s);
    loop {
        // Dropping the stream tells the holder: it kills the remote process groups.
        if stop() {
            return Err(Unavailable("interrupted".into()));
        }
        let (kind, host, payload) = read_frame(&mut r).map_err(|e| {
            Unavailable(match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("the session holder went quiet for {quiet_limit:?}")
                }
                _ => format!("the session holder went away: {e}"),
            })
        })?;
        match kind {
            frame::HEARTBEAT => {}
            frame::STDOUT => on(host, HostEvent::Output(Stream::Stdout, &payload)),
            frame::STDERR => on(host, HostEvent::Output(Stream::Stderr, &payload)),
            frame::STARTED => on(host, HostEvent::Started),
            frame::ENDED => {
                let ended = serde_json::from_slice(&payload).unwrap_or_else(|e| {
                    Ended::Failed(Kind::Session, format!("bad answer from the holder: {e}"))
                });
                on(host, HostEvent::Ended(ended));
            }
            frame::DONE => return Ok(()),
            other => {
                return Err(Unavailable(format!(
                    "unknown frame {other} from the holder"
                )))
            }
        }
    }
}

/// Stop the case's holder, if one runs (ec2-killall). Quiet: there may be none.
pub fn stop(state_dir: &Path) {
    let Some(sock) = socket_path(state_dir) else {
        return;
    };
    if let Ok(mut s) = UnixStream::connect(&sock) {
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if writeln!(s, "{}", serde_json::json!({"op": "stop"})).is_ok() {
            let _ = BufReader::new(s).read_line(&mut String::new());
        }
    }
}
