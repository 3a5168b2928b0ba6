//! The holder process: accepts the case owner's tools on the socket, keeps up to
//! [`MAX_PER_HOST`] logged-in sessions per host, runs each request's task on them and
//! streams the frames back. What does not belong here: the tool's side (client.rs).

use super::{frame, write_frame, Ended, Request, RunRequest, KEEPALIVE, LOCK, PID_FILE};
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use crate::remote::command::Stream;
use crate::remote::failure::Kind;
use crate::remote::pool::fan_out;
use crate::remote::ssh::{self, Conn, Target};
use crate::remote::task::perform;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let sock = super::socket_path(state_dir).ok_or("socket path too long")?;
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
                ticks.recv_timeout(super::HEARTBEAT)
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
        let r = perform(
            &run.task,
            i as usize,
            d,
            conn,
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
            Ok(done) => return Ended::Done(done),
            // The held session died between the keepalive and the channel: nothing ran, so
            // log in afresh and run it once more.
            Err(e) if warm && e.kind == Kind::NotStarted => {
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
