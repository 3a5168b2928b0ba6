//! Warm sessions: one process per test case keeps its authenticated SSH sessions open between
//! tool runs, so a repeated `ec2-exec-remote` costs one channel per host — no TCP handshake,
//! key exchange, login or new sshd process.
//!
//! The holder (`ec2-tools session-holder DIR`, started by the first tool that wants it) listens
//! on `.ec2-tools/holder.sock` (mode 0600; a peer of another uid is refused) and runs commands
//! on the sessions it holds, streaming output back in frames. It is never trusted to be alive:
//! a tool that cannot reach it within a second, or hears nothing from it (not even the
//! heartbeat sent every [`HEARTBEAT`]) for the connect timeout, goes on without it — hosts
//! whose command had not started are run over direct connections, and it says so once. Host
//! keys are the descriptors' pins, checked at each login as without a holder; a session whose
//! pin changed is not reused. It exits after the idle time (`persist`), when `ec2-killall`
//! stops it, or when its test-case directory is gone; a session that died (stopped or
//! rebooted instance) is replaced by a fresh login before anything runs on it.
//!
//! What does not belong here: which tool uses it and for what (cmd/), output presentation
//! (results.rs), connecting (ssh.rs).

use super::command::Stream;
use super::failure::Kind;
use super::pool::fan_out;
use super::ssh::{self, Conn, Target};
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The holder's socket, in the case's state directory.
pub const SOCKET: &str = "holder.sock";
/// Held by the running holder: at most one per case.
const LOCK: &str = "holder.lock";
/// The running holder's pid, for people and tests.
const PID_FILE: &str = "holder.pid";
/// How often a running request tells the tool it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// How often idle sessions are checked with a keepalive.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Unix socket paths are limited to 108 bytes (with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// What a tool asks of the holder: one JSON line.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Alive? Answered with one JSON line.
    Ping,
    /// Exit now (ec2-killall).
    Stop,
    /// Run a command on every host; answered with frames.
    Run(Box<RunRequest>),
}

/// A command to run on hosts, as `ec2-exec-remote` runs it.
#[derive(Serialize, Deserialize, Debug)]
pub struct RunRequest {
    /// How to log in (the tool's resolved settings: user, key, port, allow list, pins).
    pub ssh: SshConfig,
    /// The hosts, as the tool's descriptors describe them (pins included).
    pub hosts: Vec<Descriptor>,
    /// Through the remote user's shell, as remote/command.rs runs it.
    pub command: String,
    /// Sent to the command on every host.
    pub stdin: Option<Vec<u8>>,
    /// Bounds each host's command.
    pub timeout: Option<Duration>,
    /// How many hosts may log in at once (warm hosts all run at once).
    pub fanout: usize,
    /// The holder's idle time from now on.
    pub persist: Duration,
}

/// Frame kinds, holder → tool: `[kind u8][host u32 BE][len u32 BE][payload]`.
mod frame {
    pub const HEARTBEAT: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    /// The host's command may have started (it must not be run again elsewhere).
    pub const STARTED: u8 = 3;
    /// Payload: JSON [`super::Ended`].
    pub const ENDED: u8 = 4;
    /// Every host has ended.
    pub const DONE: u8 = 5;
}

/// How one host's run ended, in an `ENDED` frame.
#[derive(Serialize, Deserialize, Debug)]
pub enum Ended {
    /// The command exited with this code.
    Exit(i32),
    /// It could not be run or did not finish.
    Failed(Kind, String),
}

fn write_frame(w: &Mutex<UnixStream>, kind: u8, host: u32, payload: &[u8]) -> bool {
    let mut buf = Vec::with_capacity(9 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&host.to_be_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.lock().unwrap().write_all(&buf).is_ok()
}

fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let host = u32::from_be_bytes(head[1..5].try_into().unwrap());
    let len = u32::from_be_bytes(head[5..9].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((head[0], host, payload))
}

/// The socket of the case whose state directory is `state_dir`, if its path fits.
pub fn socket_path(state_dir: &Path) -> Option<PathBuf> {
    let p = state_dir.join(SOCKET);
    (p.as_os_str().len() <= MAX_SOCKET_PATH).then_some(p)
}

// ---------------------------------------------------------------------------------------------
// The holder process.

/// A held session and the pin it was opened under.
struct Held {
    conn: Conn,
    key: SessionKey,
}

/// What a reusable session must match: where, as whom, with which key and pin.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct SessionKey {
    address: String,
    port: u16,
    user: String,
    identity: Option<PathBuf>,
    pin: Option<String>,
}

impl SessionKey {
    fn of(t: &Target, cfg: &SshConfig) -> SessionKey {
        SessionKey {
            address: t.address.clone(),
            port: t.port,
            user: t.user.clone(),
            identity: cfg.identity.clone(),
            pin: t.host_key.clone(),
        }
    }
}

/// A session place: claimed by one command at a time (`busy`), so a second run on the same
/// host (a status check while a long command runs) takes another place — it never waits.
#[derive(Default)]
struct SlotInner {
    busy: AtomicBool,
    held: Mutex<Option<Held>>,
}

type Slot = Arc<SlotInner>;

/// Sessions kept per host; beyond these a run's extra login is used once and closed.
const MAX_PER_HOST: usize = 4;

/// A claimed place, released when dropped.
struct Claim(Slot);

impl Claim {
    fn try_new(slot: &Slot) -> Option<Claim> {
        slot.busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            .then(|| Claim(slot.clone()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }
}

struct Holder {
    /// One slot per (address, port, user): a host's session serves one command at a time.
    sessions: Mutex<HashMap<(String, u16, String), Vec<Slot>>>,
    last_use: Mutex<Instant>,
    idle: Mutex<Duration>,
    busy: AtomicUsize,
}

/// Serve the case whose state directory is `state_dir` until idle for `idle`, stopped, or the
/// directory is gone. Returns when it exits; an error only when it could not start.
pub fn serve(state_dir: &Path, idle: Duration) -> Result<(), String> {
    raise_open_files();
    let lock_path = state_dir.join(LOCK);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if !fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap_or(false) {
        return Ok(()); // another holder serves this case
    }
    let sock = socket_path(state_dir).ok_or("socket path too long")?;
    let _ = std::fs::remove_file(&sock);
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0o077) };
    let listener = UnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()));
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    let inode = inode_of(&sock);
    let pid_file = state_dir.join(PID_FILE);
    let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));
    eprintln!(
        "session holder {}: serving {} (idle limit {})",
        std::process::id(),
        sock.display(),
        humantime::format_duration(idle)
    );
    let holder = Arc::new(Holder {
        sessions: Mutex::new(HashMap::new()),
        last_use: Mutex::new(Instant::now()),
        idle: Mutex::new(idle),
        busy: AtomicUsize::new(0),
    });
    let h = holder.clone();
    std::thread::spawn(move || keepalives(&h));
    let stop = Arc::new(AtomicBool::new(false));
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (h, stop) = (holder.clone(), stop.clone());
                std::thread::spawn(move || handle(&h, stream, &stop));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
        let idle_for = holder.last_use.lock().unwrap().elapsed();
        let idle_limit = *holder.idle.lock().unwrap();
        let gone = inode_of(&sock) != inode; // directory removed, or socket replaced
        if gone || (holder.busy.load(Ordering::SeqCst) == 0 && idle_for >= idle_limit) {
            break;
        }
    }
    if inode_of(&sock) == inode {
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(&pid_file);
    }
    eprintln!("session holder {}: exiting", std::process::id());
    drop(lock);
    Ok(())
}

/// A held session is a socket: a thousand hosts need more than the usual soft limit of 1,024
/// open files, so the holder takes its hard limit.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn inode_of(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).ok().map(|m| m.ino())
}

/// Keepalives on idle sessions; a session that fails one is dropped.
fn keepalives(h: &Holder) {
    loop {
        std::thread::sleep(KEEPALIVE);
        let slots: Vec<Slot> = h
            .sessions
            .lock()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect();
        for slot in slots {
            if let Some(claim) = Claim::try_new(&slot) {
                let mut held = claim.0.held.lock().unwrap();
                if held
                    .as_ref()
                    .is_some_and(|s| s.conn.sess.keepalive_send().is_err())
                {
                    *held = None;
                }
            }
        }
    }
}

/// The peer's uid (SO_PEERCRED).
fn peer_uid(s: &UnixStream) -> Option<u32> {
    use std::os::unix::io::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the ucred we own.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

fn handle(h: &Holder, stream: UnixStream, stop: &AtomicBool) {
    // SAFETY: getuid cannot fail.
    if peer_uid(&stream) != Some(unsafe { libc::getuid() }) {
        return;
    }
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // A tool that stops reading is gone: its hosts' commands are killed, not waited on.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    if BufReader::new(reader).read_line(&mut line).is_err() {
        return;
    }
    let Ok(req) = serde_json::from_str::<Request>(&line) else {
        return;
    };
    *h.last_use.lock().unwrap() = Instant::now();
    match req {
        Request::Ping => {
            let mut s = stream;
            let _ = writeln!(s, "{{\"pid\":{}}}", std::process::id());
        }
        Request::Stop => {
            stop.store(true, Ordering::SeqCst);
            let mut s = stream;
            let _ = writeln!(s, "{{\"stopping\":true}}");
        }
        Request::Run(run) => {
            h.busy.fetch_add(1, Ordering::SeqCst);
            *h.idle.lock().unwrap() = run.persist;
            run_request(h, stream, &run);
            *h.last_use.lock().unwrap() = Instant::now();
            h.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn run_request(h: &Holder, stream: UnixStream, run: &RunRequest) {
    let w = Mutex::new(stream);
    let gone = AtomicBool::new(false);
    // Dropping the sender ends the heartbeat at once (not after its next tick).
    let (done, ticks) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let (wr, gr) = (&w, &gone);
        s.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                ticks.recv_timeout(HEARTBEAT)
            {
                if !write_frame(wr, frame::HEARTBEAT, 0, &[]) {
                    gr.store(true, Ordering::SeqCst);
                }
            }
        });
        // Warm hosts all start at once; logins are bounded by the tool's fan-out.
        let warm = run
            .hosts
            .iter()
            .filter(|d| has_session(h, d, &run.ssh))
            .count();
        let width = run.fanout.max(warm).max(1);
        let indexed: Vec<(u32, &Descriptor)> = (0u32..).zip(run.hosts.iter()).collect();
        fan_out(&indexed, width, |(i, d)| {
            let ended = run_one(h, d, run, *i, &w, &gone);
            let payload = serde_json::to_vec(&ended).unwrap_or_default();
            if !write_frame(&w, frame::ENDED, *i, &payload) {
                gone.store(true, Ordering::SeqCst);
            }
        });
        drop(done);
    });
    write_frame(&w, frame::DONE, 0, &[]);
}

/// Claim a place for `t`: a free one holding a session under `key` first, else any free one,
/// else a new one (kept when the host has fewer than [`MAX_PER_HOST`]).
fn claim_for(h: &Holder, t: &Target, key: &SessionKey) -> Claim {
    let mut map = h.sessions.lock().unwrap();
    let slots = map
        .entry((t.address.clone(), t.port, t.user.clone()))
        .or_default();
    let matches = |s: &Slot| {
        s.held
            .try_lock()
            .is_ok_and(|held| held.as_ref().is_some_and(|x| &x.key == key))
    };
    for want_match in [true, false] {
        for s in slots.iter() {
            if want_match && !matches(s) {
                continue;
            }
            if let Some(c) = Claim::try_new(s) {
                return c;
            }
        }
    }
    let slot = Slot::default();
    if slots.len() < MAX_PER_HOST {
        slots.push(slot.clone());
    }
    Claim::try_new(&slot).expect("a new place is free")
}

fn has_session(h: &Holder, d: &Descriptor, cfg: &SshConfig) -> bool {
    let Ok(t) = Target::for_descriptor(d, cfg) else {
        return false;
    };
    let key = SessionKey::of(&t, cfg);
    let map = h.sessions.lock().unwrap();
    map.get(&(t.address.clone(), t.port, t.user.clone()))
        .is_some_and(|slots| {
            slots.iter().any(|s| {
                !s.busy.load(Ordering::SeqCst)
                    && s.held
                        .try_lock()
                        .is_ok_and(|held| held.as_ref().is_some_and(|x| x.key == key))
            })
        })
}

fn run_one(
    h: &Holder,
    d: &Descriptor,
    run: &RunRequest,
    i: u32,
    w: &Mutex<UnixStream>,
    gone: &AtomicBool,
) -> Ended {
    let cfg = &run.ssh;
    let t = match Target::for_descriptor(d, cfg) {
        Ok(t) => t,
        Err(e) => return Ended::Failed(e.kind, e.message),
    };
    let key = SessionKey::of(&t, cfg);
    let claim = claim_for(h, &t, &key);
    let mut held = claim.0.held.lock().unwrap();
    // A held session is used only under the same pin, and only while it answers.
    let mut warm = held.as_ref().is_some_and(|s| s.key == key)
        && held
            .as_ref()
            .is_some_and(|s| s.conn.sess.keepalive_send().is_ok());
    for attempt in 0..2 {
        if !warm {
            *held = None;
            match ssh::connect(&t, cfg) {
                Ok(conn) => {
                    *held = Some(Held {
                        conn,
                        key: key.clone(),
                    })
                }
                Err(e) => return Ended::Failed(e.kind, e.message),
            }
        }
        let conn = &held.as_ref().unwrap().conn;
        if attempt == 0 && !write_frame(w, frame::STARTED, i, &[]) {
            gone.store(true, Ordering::SeqCst);
        }
        let deadline = run.timeout.map(|t| Instant::now() + t);
        let r = conn.run_command(
            &run.command,
            d,
            run.stdin.as_deref(),
            deadline,
            &|| gone.load(Ordering::SeqCst),
            &mut |s, b| {
                let kind = match s {
                    Stream::Stdout => frame::STDOUT,
                    Stream::Stderr => frame::STDERR,
                };
                if !write_frame(w, kind, i, b) {
                    gone.store(true, Ordering::SeqCst);
                }
            },
        );
        match r {
            Ok(info) => return Ended::Exit(info.code),
            // The held session died between the keepalive and the channel: nothing ran, so
            // log in afresh and run it once more.
            Err(e) if warm && e.kind == Kind::Session && e.message.starts_with("open channel") => {
                warm = false;
            }
            Err(e) => {
                *held = None;
                return Ended::Failed(e.kind, e.message);
            }
        }
    }
    Ended::Failed(Kind::Session, "session lost twice".into())
}

// ---------------------------------------------------------------------------------------------
// The tool's side.

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
    let deadline = Instant::now() + cfg.connect_timeout.min(Duration::from_secs(3));
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
    let mut line = serde_json::to_vec(&Request::Run(Box::new(clone_run(run))))
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

fn clone_run(r: &RunRequest) -> RunRequest {
    RunRequest {
        ssh: r.ssh.clone(),
        hosts: r.hosts.clone(),
        command: r.command.clone(),
        stdin: r.stdin.clone(),
        timeout: r.timeout,
        fanout: r.fanout,
        persist: r.persist,
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
