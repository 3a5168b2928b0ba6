//! Bastions (`--jump`, `ssh_jump`): instances in private subnets reached through one
//! authenticated SSH session to a bastion, one `direct-tcpip` channel per instance — what
//! OpenSSH's ProxyJump does, without a process per host.
//!
//! libssh2 has no ProxyJump and a session wants a socket, so each channel is bridged to one
//! end of a Unix socket pair whose other end becomes the instance session's "TCP stream". One
//! relay thread per bastion owns its session (libssh2 sessions are not for sharing between
//! threads) and pumps every channel in non-blocking mode, so a thousand instance sessions cost
//! one bastion login and one thread. The bastion's host key is pinned at first contact in
//! `.ec2-tools/jump.json` (the generated ssh_config's known_hosts carries it too), exactly as
//! instance keys are. `EC2_TOOLS_SSH_ALLOW` applies to the bastion's address: it is the only
//! host this machine connects to. What does not belong here: the instance sessions themselves
//! (ssh.rs), which hosts (fanout.rs).

use super::failure::{Kind, SshError};
use crate::config::{Jump, SshConfig};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// libssh2's "would block".
const EAGAIN: i32 = -37;

struct Open {
    host: String,
    port: u16,
    reply: mpsc::Sender<Result<UnixStream, String>>,
}

/// A bastion's relay, or its last failure (reused for a connect timeout, so a dead bastion
/// costs one timeout, not one per host).
enum Relay {
    Up(mpsc::Sender<Open>),
    Down(Instant, SshError),
}

static RELAYS: Mutex<Vec<(String, Relay)>> = Mutex::new(Vec::new());

/// `user@host:port`, as messages name the bastion.
pub fn name(j: &Jump, cfg: &SshConfig) -> String {
    format!("{}@{}:{}", user(j, cfg), j.host, j.port)
}

pub fn user(j: &Jump, cfg: &SshConfig) -> String {
    j.user
        .clone()
        .or_else(|| cfg.user.clone())
        .unwrap_or_else(|| cfg.fallback_user.clone())
}

/// A logged-in bastion session, handed over by whoever logs in (ssh.rs): the relay thread owns
/// it from then on; `keep` is what must live as long as the session (the connection).
pub struct Bastion {
    pub sess: ssh2::Session,
    pub fd: std::os::fd::RawFd,
    pub keep: Box<dyn Send>,
}

/// How to log in to the bastion when no relay is up.
pub type Login<'a> = &'a dyn Fn() -> Result<Bastion, SshError>;

/// A stream to `host:port` as seen from the bastion, for an instance session to run over.
pub fn open(
    j: &Jump,
    cfg: &SshConfig,
    host: &str,
    port: u16,
    timeout: Duration,
    login: Login,
) -> Result<UnixStream, SshError> {
    let bastion = name(j, cfg);
    for _ in 0..2 {
        let tx = relay(j, cfg, login)?;
        let (reply, answer) = mpsc::channel();
        let ask = Open {
            host: host.to_owned(),
            port,
            reply,
        };
        if tx.send(ask).is_err() {
            // The relay ended (the bastion session broke): forget it, log in again once.
            forget(&bastion);
            continue;
        }
        return match answer.recv_timeout(timeout) {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(SshError::new(
                Kind::Connect,
                format!("connect to {host}:{port} via {bastion}: {e}"),
            )),
            Err(_) => Err(SshError::new(
                Kind::Connect,
                format!(
                    "connect to {host}:{port} via {bastion}: no answer within {}",
                    humantime::format_duration(timeout)
                ),
            )),
        };
    }
    Err(SshError::new(
        Kind::Connect,
        format!("bastion {bastion}: its session keeps ending"),
    ))
}

fn forget(bastion: &str) {
    RELAYS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(k, _)| k != bastion);
}

/// The bastion's relay: the running one, else a fresh login (one at a time: the lock is held,
/// so a hundred hosts starting at once make one login).
fn relay(j: &Jump, cfg: &SshConfig, login: Login) -> Result<mpsc::Sender<Open>, SshError> {
    let bastion = name(j, cfg);
    let mut relays = RELAYS.lock().unwrap_or_else(|e| e.into_inner());
    match relays.iter().find(|(k, _)| *k == bastion) {
        Some((_, Relay::Up(tx))) => return Ok(tx.clone()),
        Some((_, Relay::Down(at, e))) if at.elapsed() < cfg.bastion_retry_after() => {
            return Err(e.clone())
        }
        _ => {}
    }
    relays.retain(|(k, _)| *k != bastion);
    match login() {
        Ok(conn) => {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || pump(conn, rx));
            relays.push((bastion, Relay::Up(tx.clone())));
            Ok(tx)
        }
        Err(e) => {
            relays.push((bastion, Relay::Down(Instant::now(), e.clone())));
            Err(e)
        }
    }
}

/// Record the bastion's host key (`SHA256:` fingerprint and public key) as met now.
pub fn record_pin(j: &Jump, host_key: Option<&str>, public_key: Option<&str>) {
    if let Some(p) = &j.pin {
        let pin = json!({
            "host": j.host, "port": j.port, "host_key": host_key, "host_public_key": public_key,
        });
        let _ = std::fs::create_dir_all(p.parent().unwrap_or(p));
        let _ = std::fs::write(p, format!("{pin:#}\n"));
    }
}

/// One field of this bastion's pin, if it was met before (a pin of another bastion is none).
fn pinned(j: &Jump, field: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(j.pin.as_ref()?).ok()?).ok()?;
    (v["host"] == j.host.as_str() && v["port"] == j.port)
        .then(|| v[field].as_str().map(str::to_owned))
        .flatten()
}

/// The pinned host key fingerprint of this bastion, if it was met before.
pub fn pinned_host_key(j: &Jump) -> Option<String> {
    pinned(j, "host_key")
}

/// The bastion's pinned public key (`ssh-ed25519 AAAA…`), for the generated known_hosts.
pub fn pinned_public_key(j: &Jump) -> Option<String> {
    pinned(j, "host_public_key")
}

/// One forwarded connection: a channel and the local end of its socket pair, with what is
/// read from one side and not yet written to the other.
struct Link {
    ch: ssh2::Channel,
    local: UnixStream,
    up: Vec<u8>,
    down: Vec<u8>,
    local_eof: bool,
    eof_sent: bool,
    remote_eof: bool,
    done: bool,
}

impl Link {
    /// Move what can move without blocking; true if anything did.
    fn step(&mut self, buf: &mut [u8]) -> bool {
        let mut moved = false;
        if self.up.is_empty() && !self.local_eof {
            match self.local.read(buf) {
                Ok(0) => self.local_eof = true,
                Ok(n) => self.up.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.done = true,
            }
        }
        if !self.up.is_empty() {
            match self.ch.write(&self.up) {
                Ok(n) => {
                    self.up.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.done = true,
            }
        }
        if self.local_eof && self.up.is_empty() && !self.eof_sent {
            match self.ch.send_eof() {
                Ok(()) => self.eof_sent = true,
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {}
                Err(_) => self.done = true,
            }
        }
        if self.down.is_empty() && !self.remote_eof {
            match self.ch.read(buf) {
                Ok(0) => self.remote_eof = self.ch.eof(),
                Ok(n) => {
                    self.down.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.done = true,
            }
        }
        if !self.down.is_empty() {
            match self.local.write(&self.down) {
                Ok(n) => {
                    self.down.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.done = true,
            }
        }
        if self.remote_eof && self.down.is_empty() {
            let _ = self.local.shutdown(std::net::Shutdown::Write);
            if self.local_eof {
                self.done = true;
            }
        }
        moved || self.done
    }
}

/// The relay thread: opens channels on request and moves bytes both ways until every
/// instance session ended and no tool thread can ask for more.
fn pump(b: Bastion, rx: mpsc::Receiver<Open>) {
    let sess = b.sess.clone();
    let fd = b.fd;
    sess.set_blocking(false);
    let mut links: Vec<Link> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut asking = true;
    let mut next_keepalive = Instant::now();
    while asking || !links.is_empty() {
        let mut moved = false;
        loop {
            match rx.try_recv() {
                Ok(ask) => {
                    let _ = ask.reply.send(open_channel(&sess, fd, &ask, &mut links));
                    moved = true;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    asking = false;
                    break;
                }
            }
        }
        for l in &mut links {
            moved |= l.step(&mut buf);
        }
        links.retain_mut(|l| {
            if l.done {
                let _ = l.ch.close();
            }
            !l.done
        });
        if Instant::now() >= next_keepalive {
            match sess.keepalive_send() {
                Ok(secs) => {
                    next_keepalive = Instant::now() + Duration::from_secs(secs.max(1) as u64)
                }
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {}
                Err(_) => break, // the bastion is gone: every link with it
            }
        }
        if !moved {
            wait_readable(fd, &links, Duration::from_millis(20));
        }
    }
    sess.set_blocking(true);
    drop(b.keep);
}

fn open_channel(
    sess: &ssh2::Session,
    fd: std::os::fd::RawFd,
    ask: &Open,
    links: &mut Vec<Link>,
) -> Result<UnixStream, String> {
    let ch = loop {
        match sess.channel_direct_tcpip(&ask.host, ask.port, None) {
            Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {
                wait_readable(fd, &[], Duration::from_millis(10))
            }
            Err(e) => return Err(e.message().to_owned()),
            Ok(ch) => break ch,
        }
    };
    let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
    ours.set_nonblocking(true).map_err(|e| e.to_string())?;
    links.push(Link {
        ch,
        local: ours,
        up: Vec::new(),
        down: Vec::new(),
        local_eof: false,
        eof_sent: false,
        remote_eof: false,
        done: false,
    });
    Ok(theirs)
}

/// Sleep until the bastion socket or a local end has something to read, or `limit`.
fn wait_readable(fd: std::os::fd::RawFd, links: &[Link], limit: Duration) {
    let waiting = links.iter().filter(|l| l.up.is_empty() && !l.local_eof);
    let mut fds: Vec<libc::pollfd> = std::iter::once(fd)
        .chain(waiting.map(|l| l.local.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: fds is a live array of pollfd for the duration of the call.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            limit.as_millis() as i32,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hosts_parse_as_ssh_writes_them() {
        let j = Jump::parse("ec2-user@bastion.example.com:2222").unwrap();
        assert_eq!(
            (j.user.as_deref(), j.host.as_str(), j.port),
            (Some("ec2-user"), "bastion.example.com", 2222)
        );
        let j = Jump::parse("10.0.0.1").unwrap();
        assert_eq!((j.user, j.host.as_str(), j.port), (None, "10.0.0.1", 22));
        for bad in ["@h", "h:x", "", "a b"] {
            assert!(Jump::parse(bad).is_err(), "{bad:?}");
        }
    }
}
