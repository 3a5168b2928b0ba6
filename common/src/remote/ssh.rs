//! SSH: connect, authenticate, run a command, for every tool that talks to instances.
//!
//! libssh2 (the ssh2 crate) has sharp edges this module keeps in one place: it has no timeout
//! unless one is set; stdout and stderr must be read together or a command that fills one
//! stream's 2 MiB window deadlocks; `exit_status()` is only valid after `wait_close()`. Every
//! connection first checks the address against `EC2_TOOLS_SSH_ALLOW`, and verifies the host
//! key recorded at the first login (trust on first use). A session is used by one thread.
//! Running commands on a session is command.rs; what does not belong here: which hosts, in
//! what parallel, with what output (fanout.rs, results.rs).

pub(crate) use super::failure::wrap;
pub use super::failure::{Kind, SshError};
use super::hostkey;
pub use super::hostkey::fingerprint;
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use crate::error::{Error, Result as ToolResult};
use ssh2::{HashType, MethodType, Session};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where and as whom to log in.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address as the user knows it (DNS name or IP): output prefixes and messages use it.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Expected host-key fingerprint (`SHA256:…`), when one was recorded.
    pub host_key: Option<String>,
    /// The fingerprints the instance's console published, when read: the key offered (and
    /// the pin) must be one of them.
    pub console_keys: Option<Vec<String>>,
}

impl Target {
    /// The target for a descriptor: flags/env first, then what the descriptor recorded.
    pub fn for_descriptor(d: &Descriptor, cfg: &SshConfig) -> Result<Target, SshError> {
        let address = d.address_for(cfg.address).ok_or_else(|| {
            SshError::new(
                Kind::Config,
                format!("no address to connect to (state {})", d.state()),
            )
        })?;
        if let (Some(pin), Some(keys)) = (&d.ssh.host_key, &d.ssh.console_keys) {
            // Found before connecting (aws/console.rs): no session, warm or new, is used.
            if let Some(e) = hostkey::not_published(pin, keys, "the key trusted at first contact") {
                return Err(e);
            }
        }
        Ok(Target {
            address,
            port: cfg.port.or(d.ssh.port).unwrap_or(cfg.fallback_port),
            user: cfg
                .user
                .clone()
                .or_else(|| d.ssh.user.clone())
                .unwrap_or_else(|| cfg.fallback_user.clone()),
            host_key: d.ssh.host_key.clone(),
            console_keys: d.ssh.console_keys.clone(),
        })
    }
}

/// An authenticated SSH session to one host.
pub struct Conn {
    pub(super) sess: Session,
    pub(super) fd: RawFd,
    pub host_key: Option<String>,
    pub target: Target,
    /// When the connect phase began (a host's `--timeout` counts from here).
    pub started: Instant,
    /// The host offered a key other than the recorded one and `--accept-new-host-key` took it.
    pub repinned: bool,
    /// The host's public key, OpenSSH style (`ssh-ed25519 AAAA…`).
    pub host_public_key: Option<String>,
}

const KEX: &str = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,\
diffie-hellman-group14-sha256,diffie-hellman-group16-sha512";
const HOSTKEYS: &str = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa";
const CIPHERS: &str = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";

/// Resolve the target's address and keep only addresses the allow list admits.
pub fn resolve(t: &Target, cfg: &SshConfig) -> Result<Vec<SocketAddr>, SshError> {
    let addrs: Vec<SocketAddr> = (t.address.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| SshError::new(Kind::Connect, format!("cannot resolve {}: {e}", t.address)))?
        .collect();
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| cfg.allows(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(SshError::new(
            Kind::Policy,
            format!(
                "{} is outside EC2_TOOLS_SSH_ALLOW ({}): refusing to connect",
                t.address,
                cfg.allow_list()
            ),
        ));
    }
    Ok(allowed)
}

/// libssh2's "timed out" (a blocking call exceeded the session timeout).
const LIBSSH2_ERROR_TIMEOUT: libc::c_int = -9;

/// Connect and log in, retrying a dropped handshake (a busy sshd throttling new connections
/// under MaxStartups closes them before the banner) with jittered backoff.
///
/// `connect_timeout` bounds the whole connect phase — TCP, banner, key exchange, login and
/// every retry — so a host that accepts TCP and never speaks fails once, in that time, instead
/// of being retried as if it had dropped us. Regression:
/// `a_host_that_never_sends_a_banner_fails_alone_within_the_connect_timeout`.
pub fn connect(t: &Target, cfg: &SshConfig) -> Result<Conn, SshError> {
    let started = Instant::now();
    let deadline = started + cfg.connect_timeout.max(Duration::from_millis(100));
    let mut attempt = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connect_once(t, cfg, left.max(Duration::from_millis(50))) {
            Ok(mut conn) => {
                conn.started = started;
                return Ok(conn);
            }
            // 0.2, 0.4, 0.8, 1.6, 3.2, 3.2, 3.2 s (±50%), within the deadline: enough for a
            // throttling sshd to work through a burst of hundreds of connections.
            Err(e) if e.kind == Kind::Handshake && attempt < 7 => {
                attempt += 1;
                let pause = jitter(Duration::from_millis(100 << attempt.min(5)));
                if Instant::now() + pause >= deadline {
                    return Err(e);
                }
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

/// A duration between 50% and 150% of `base`.
pub fn jitter(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let frac = 0.5 + f64::from(nanos % 1000) / 1000.0;
    base.mul_f64(frac)
}

/// What a session runs over: TCP to the host, or a channel through the bastion (jump.rs).
enum Stream {
    Tcp(TcpStream),
    Jumped(std::os::unix::net::UnixStream),
}

fn connect_once(t: &Target, cfg: &SshConfig, timeout: Duration) -> Result<Conn, SshError> {
    let started = Instant::now();
    let stream = match &cfg.jump {
        Some(j) => {
            let login = || bastion_login(j, cfg);
            let s = super::jump::open(j, cfg, &t.address, t.port, timeout, &login)?;
            tracing::info!(target: "ec2_tools::ssh", "ssh {}:{}: channel via bastion {} in {} ms", t.address, t.port, super::jump::name(j, cfg), started.elapsed().as_millis());
            Stream::Jumped(s)
        }
        None => Stream::Tcp(connect_tcp(t, cfg, timeout)?),
    };
    let phase = Instant::now();
    let fd = match &stream {
        Stream::Tcp(s) => s.as_raw_fd(),
        Stream::Jumped(s) => s.as_raw_fd(),
    };
    detect_dead_peers(fd);
    let mut sess = Session::new().map_err(wrap(Kind::Session, "ssh session"))?;
    sess.set_timeout(timeout.as_millis().min(u32::MAX as u128) as u32);
    for (m, prefs) in [
        (MethodType::Kex, KEX),
        (MethodType::HostKey, HOSTKEYS),
        (MethodType::CryptCs, CIPHERS),
        (MethodType::CryptSc, CIPHERS),
    ] {
        let _ = sess.method_pref(m, prefs);
    }
    match stream {
        Stream::Tcp(s) => sess.set_tcp_stream(s),
        Stream::Jumped(s) => sess.set_tcp_stream(s),
    }
    handshake_and_login(sess, fd, t, cfg, started, phase)
}

/// Log in to the bastion (`--jump`) directly, its host key checked against the pin recorded
/// at first contact; the relay (jump.rs) takes the session over.
fn bastion_login(
    j: &crate::config::Jump,
    cfg: &SshConfig,
) -> Result<super::jump::Bastion, SshError> {
    use super::jump;
    let bastion = jump::name(j, cfg);
    let pinned = jump::pinned_host_key(j);
    let target = Target {
        address: j.host.clone(),
        port: j.port,
        user: jump::user(j, cfg),
        host_key: pinned.clone(),
        console_keys: None,
    };
    let direct = SshConfig {
        jump: None,
        ..cfg.clone()
    };
    let conn = connect(&target, &direct)
        .map_err(|e| SshError::new(e.kind, format!("bastion {bastion}: {}", e.message)))?;
    if pinned.is_none() || conn.repinned {
        jump::record_pin(j, conn.host_key.as_deref(), conn.host_public_key.as_deref());
    }
    tracing::info!(target: "ec2_tools::ssh", "bastion {bastion}: logged in; instances are reached through it");
    Ok(jump::Bastion {
        sess: conn.sess.clone(),
        fd: conn.fd,
        keep: Box::new(conn),
    })
}

/// TCP to the target (the allow list checked first).
fn connect_tcp(t: &Target, cfg: &SshConfig, timeout: Duration) -> Result<TcpStream, SshError> {
    let addrs = resolve(t, cfg)?;
    let started = Instant::now();
    let mut last = None;
    let mut tcp = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        let e = last.map(|e| e.to_string()).unwrap_or_default();
        SshError::new(
            Kind::Connect,
            format!("connect to {}:{}: {e}", t.address, t.port),
        )
    })?;
    let _ = tcp.set_nodelay(true);
    tracing::info!(target: "ec2_tools::ssh", "ssh {}:{}: tcp connected in {} ms", t.address, t.port, started.elapsed().as_millis());
    Ok(tcp)
}

/// Key exchange, host key check, login.
fn handshake_and_login(
    mut sess: Session,
    fd: RawFd,
    t: &Target,
    cfg: &SshConfig,
    started: Instant,
    phase: Instant,
) -> Result<Conn, SshError> {
    sess.handshake().map_err(|e| {
        if e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT) {
            // Accepted and then silence: not a drop to retry.
            SshError::new(
                Kind::Connect,
                format!(
                    "ssh handshake: no answer within {} (TCP accepted, no SSH banner)",
                    humantime::format_duration(Duration::from_millis(
                        started.elapsed().as_millis() as u64
                    ))
                ),
            )
        } else {
            wrap(Kind::Handshake, "ssh handshake")(e)
        }
    })?;

    tracing::info!(target: "ec2_tools::ssh", "ssh {}: banner and key exchange in {} ms", t.address, phase.elapsed().as_millis());
    let phase = Instant::now();
    let host_key = sess.host_key_hash(HashType::Sha256).map(fingerprint);
    let host_public_key = hostkey::public_key_line(&sess);
    let expected = hostkey::Expected {
        address: &t.address,
        pin: t.host_key.as_deref(),
        console: t.console_keys.as_deref(),
        repin: cfg.repin.is_some(),
    };
    let repinned = hostkey::check(&expected, host_key.as_deref())?;
    authenticate(&sess, &t.user, cfg.identity.as_ref())?;
    tracing::info!(target: "ec2_tools::ssh", "ssh {}: logged in as {} in {} ms", t.address, t.user, phase.elapsed().as_millis());
    sess.set_keepalive(true, 15);
    Ok(Conn {
        sess,
        fd,
        host_key,
        target: t.clone(),
        started,
        repinned,
        host_public_key,
    })
}

/// Found before any host is contacted (and before anything is launched): the identity file
/// the settings name must exist, be readable, be a private key, and — when protected by a
/// passphrase — be usable through a running ssh-agent (exit 2, once). The settings themselves
/// only report it (`--show-config` shows a missing one).
pub fn check_identity(cfg: &SshConfig) -> ToolResult<()> {
    let Some(id) = &cfg.identity else {
        return Ok(());
    };
    let name = || format!("identity file {}", id.display());
    let text = match std::fs::read(id) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::input(format!(
                "{}: not found (--identity / EC2_TOOLS_SSH_KEY / \"ssh_key\")",
                name()
            )))
        }
        Err(e) => return Err(Error::input(format!("{}: {e}", name()))),
    };
    match identity_kind(&text) {
        IdentityKind::Plain => Ok(()),
        IdentityKind::NotAKey => Err(Error::input(format!(
            "{}: not a private key (OpenSSH or PEM); is it the .pub half?",
            name()
        ))),
        IdentityKind::Encrypted if std::env::var_os("SSH_AUTH_SOCK").is_some() => Ok(()),
        IdentityKind::Encrypted => Err(Error::input(format!(
            "{}: protected by a passphrase and no ssh-agent is running (SSH_AUTH_SOCK): \
             `eval $(ssh-agent) && ssh-add {}` first",
            name(),
            id.display()
        ))),
    }
}

#[derive(Debug, PartialEq)]
enum IdentityKind {
    Plain,
    Encrypted,
    NotAKey,
}

/// What a private key file holds, without its passphrase.
fn identity_kind(text: &[u8]) -> IdentityKind {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_start();
    if text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return match ssh_key::PrivateKey::from_openssh(text) {
            Ok(k) if k.is_encrypted() => IdentityKind::Encrypted,
            Ok(_) => IdentityKind::Plain,
            Err(_) => IdentityKind::NotAKey,
        };
    }
    if text.starts_with("-----BEGIN ") && text.contains("PRIVATE KEY-----") {
        // PEM: PKCS#1 marks encryption in a header, PKCS#8 in its label.
        if text.contains("ENCRYPTED") {
            return IdentityKind::Encrypted;
        }
        return IdentityKind::Plain;
    }
    IdentityKind::NotAKey
}

/// A host that vanishes (no RST, no FIN) must not stall its thread for TCP's default ~15
/// minutes: TCP keepalive probes an idle connection after 15 s (3 probes 5 s apart), and
/// TCP_USER_TIMEOUT fails a connection whose sent data (our SSH keepalives, every 15 s) stays
/// unacknowledged for 30 s. Either way the host fails within a minute, alone.
fn detect_dead_peers(fd: RawFd) {
    let set = |level: libc::c_int, opt: libc::c_int, val: libc::c_int| {
        // SAFETY: fd is a live socket; val outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 15);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 30_000);
}

fn default_identities() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return vec![];
    };
    let ssh = PathBuf::from(home).join(".ssh");
    ["id_ed25519", "id_rsa"]
        .iter()
        .map(|n| ssh.join(n))
        .filter(|p| p.is_file())
        .collect()
}

fn authenticate(sess: &Session, user: &str, identity: Option<&PathBuf>) -> Result<(), SshError> {
    if let Some(key) = identity {
        return sess
            .userauth_pubkey_file(user, None, key, None)
            .map_err(|e| {
                SshError::new(
                    Kind::Auth,
                    format!(
                        "login as {user} with {} refused: {}",
                        key.display(),
                        e.message()
                    ),
                )
            });
    }
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        if let Ok(mut agent) = sess.agent() {
            if agent.connect().is_ok() && agent.list_identities().is_ok() {
                for id in agent.identities().unwrap_or_default() {
                    if agent.userauth(user, &id).is_ok() {
                        return Ok(());
                    }
                }
                tried.push("ssh-agent".to_string());
            }
        }
    }
    for key in default_identities() {
        if sess.userauth_pubkey_file(user, None, &key, None).is_ok() {
            return Ok(());
        }
        tried.push(key.display().to_string());
    }
    Err(SshError::new(
        Kind::Auth,
        if tried.is_empty() {
            format!("no key to log in as {user}: give --identity / EC2_TOOLS_SSH_KEY or start ssh-agent")
        } else {
            format!("login as {user} refused (tried {})", tried.join(", "))
        },
    ))
}

impl Drop for Conn {
    /// Say goodbye properly: an SSH_MSG_DISCONNECT lets sshd end the session on its normal
    /// path instead of discovering a dead socket.
    fn drop(&mut self) {
        self.sess.set_timeout(1_000);
        let _ = self
            .sess
            .disconnect(Some(ssh2::DisconnectCode::ByApplication), "done", None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_told_apart_without_their_passphrase() {
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let plain = key.to_openssh(ssh_key::LineEnding::LF).unwrap();
        assert_eq!(identity_kind(plain.as_bytes()), IdentityKind::Plain);
        // A passphrase-protected key as users have them: made by ssh-keygen.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen (scripts/localcloud install provides it)");
        assert!(made.success());
        let locked = std::fs::read(&path).unwrap();
        assert_eq!(identity_kind(&locked), IdentityKind::Encrypted);
        let public = key.public_key().to_openssh().unwrap();
        assert_eq!(identity_kind(public.as_bytes()), IdentityKind::NotAKey);
        assert_eq!(identity_kind(b"garbage"), IdentityKind::NotAKey);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nxx\n";
        assert_eq!(identity_kind(pem.as_bytes()), IdentityKind::Encrypted);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n";
        assert_eq!(identity_kind(pem.as_bytes()), IdentityKind::Plain);
    }

    fn cfg(allow: &str) -> SshConfig {
        SshConfig {
            user: None,
            identity: None,
            port: None,
            address: None,
            fallback_user: "u".into(),
            fallback_port: 22,
            fallback_address: crate::config::AddressMode::Auto,
            allow: Some(crate::config::parse_cidrs(allow).unwrap()),
            connect_timeout: Duration::from_secs(1),
            repin: None,
            jump: None,
            auth_grace: Duration::from_secs(60),
            host_key_check: Default::default(),
            transport: None,
            ssm_bucket: None,
            persist: None,
        }
    }

    #[test]
    fn addresses_outside_the_allow_list_are_refused_before_any_connection() {
        let t = Target {
            address: "54.1.2.3".into(),
            port: 22,
            user: "u".into(),
            host_key: None,
            console_keys: None,
        };
        let e = resolve(&t, &cfg("127.0.0.0/8")).unwrap_err();
        assert_eq!(e.kind, Kind::Policy);
        assert!(e.message.contains("outside EC2_TOOLS_SSH_ALLOW"), "{e}");
        let t = Target {
            address: "127.0.0.9".into(),
            ..t
        };
        assert_eq!(resolve(&t, &cfg("127.0.0.0/8")).unwrap().len(), 1);
    }

    #[test]
    fn fingerprints_look_like_openssh_ones() {
        assert_eq!(
            fingerprint(&[0u8; 32]),
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
    }
}
