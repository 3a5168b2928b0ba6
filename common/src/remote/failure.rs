//! Why an SSH operation failed ([`Kind`] decides retries and exit codes), in a layer of its
//! own below the session code (ssh.rs) and the bastion relay (jump.rs), which both report
//! failures. What does not belong here: anything that connects.

use std::fmt;

/// Why an SSH operation failed; decides retries and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// The address is outside EC2_TOOLS_SSH_ALLOW: never connected.
    Policy,
    /// Nothing usable to connect to (no address, no key).
    Config,
    /// TCP connect refused, unreachable or timed out.
    Connect,
    /// The SSH handshake failed (e.g. sshd dropped us under MaxStartups): worth a retry.
    Handshake,
    /// Login refused.
    Auth,
    /// The host key differs from the one recorded.
    HostKey,
    /// The command ran past its deadline.
    Timeout,
    /// The session broke while running.
    Session,
    /// The session broke before anything ran on the host (a held session that died between
    /// its keepalive and the channel): running it again is safe.
    NotStarted,
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct SshError {
    pub kind: Kind,
    pub message: String,
}

impl SshError {
    pub fn new(kind: Kind, message: impl Into<String>) -> SshError {
        SshError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) fn wrap(kind: Kind, what: &str) -> impl Fn(ssh2::Error) -> SshError + '_ {
    move |e| SshError::new(kind, format!("{what}: {}", e.message()))
}
