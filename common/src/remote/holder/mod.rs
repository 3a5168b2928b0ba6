//! Warm sessions: one process per test case keeps its authenticated SSH sessions open between
//! tool runs, so a repeated `ec2-exec-remote` costs one channel per host — no TCP handshake,
//! key exchange, login or new sshd process.
//!
//! The holder (`ec2-tools session-holder DIR`, started by the first tool that wants it) listens
//! on `.ec2-tools/holder.sock` (mode 0600; a peer of another uid is refused) and runs tasks
//! (remote/task.rs: commands, job scripts, file copies) on the sessions it holds, streaming
//! output back in frames. It is never trusted to be alive:
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
//!
//! Here: the protocol both sides share (requests, frames, the socket's place); the holder
//! process is server.rs, the tool's side client.rs.

mod client;
mod server;

pub use client::{connect_or_start, run, stop, HostEvent, Unavailable};
pub use server::serve;

use super::failure::Kind;
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use crate::remote::task::{Done, Task};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The holder's socket, in the case's state directory.
pub const SOCKET: &str = "holder.sock";
/// Held by the running holder: at most one per case.
pub(super) const LOCK: &str = "holder.lock";
/// The running holder's pid, for people and tests.
pub(super) const PID_FILE: &str = "holder.pid";
/// How often a running request tells the tool it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// How often idle sessions are checked with a keepalive.
pub(super) const KEEPALIVE: Duration = Duration::from_secs(15);
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
    /// Run a task on every host; answered with frames.
    Run(Box<RunRequest>),
}

/// A task to run on hosts, as the tool would run it over its own connections.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RunRequest {
    /// How to log in (the tool's resolved settings: user, key, port, allow list, pins).
    pub ssh: SshConfig,
    /// The hosts, as the tool's descriptors describe them (pins included).
    pub hosts: Vec<Descriptor>,
    /// What each host does (remote/task.rs, shared with the direct path).
    pub task: Task,
    /// Bounds each host's command or script.
    pub timeout: Option<Duration>,
    /// How many hosts may log in at once (warm hosts all run at once).
    pub fanout: usize,
    /// The holder's idle time from now on.
    pub persist: Duration,
}

/// Frame kinds, holder → tool: `[kind u8][host u32 BE][len u32 BE][payload]`.
pub(super) mod frame {
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
    /// The task ran to its end.
    Done(Done),
    /// It could not be run or did not finish.
    Failed(Kind, String),
}

pub(super) fn write_frame(w: &Mutex<UnixStream>, kind: u8, host: u32, payload: &[u8]) -> bool {
    let mut buf = Vec::with_capacity(9 + payload.len());
    buf.push(kind);
    buf.extend_from_slice(&host.to_be_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.lock().unwrap().write_all(&buf).is_ok()
}

pub(super) fn read_frame(r: &mut impl Read) -> std::io::Result<(u8, u32, Vec<u8>)> {
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
