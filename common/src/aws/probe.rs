//! One instance's side of a readiness wait: SSH login attempts on a thread of its own, with
//! jittered backoff, each reported to the wait (wait.rs) as a [`Probe`]; what "ready" means
//! beyond a login ([`ReadyCheck`]: a new boot id after a reboot, a setup hook on the fresh
//! connection); why an instance did not get ready ([`NotReady`]). The host key offered is
//! checked against the console's keys known at that attempt (console.rs). What does not
//! belong here: the wait itself and AWS's side of it (wait.rs), SSH (remote/).

use super::console::{self, Published};
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::config::{HostKeyCheck, SshConfig};
use crate::output;
use crate::remote::ssh::{self, Conn, Kind, SshError, Target};
use crate::tool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs on a ready instance's connection before it counts as ready; an error fails it.
pub type ReadyHook =
    Arc<dyn Fn(&Descriptor, &Conn) -> std::result::Result<(), String> + Send + Sync>;

/// What "ready" means beyond a login that runs `true`.
#[derive(Clone, Default)]
pub struct ReadyCheck {
    /// Boot ids seen before a reboot: ready only once the id differs. After `grace` with SSH
    /// never down and the id unchanged, the instance is taken as ready with a warning (AWS
    /// itself hard-reboots an instance that does not reboot cleanly within minutes).
    pub old_boot_ids: BTreeMap<String, String>,
    pub grace: Duration,
    pub hook: Option<ReadyHook>,
}

/// Why an instance did not get ready: decisions read [`NotReady::cause`], people the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub cause: Cause,
    /// One line (`connection refused`, `stopped while waiting for it to run`).
    pub message: String,
}

/// What kept an instance from getting ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It stopped or terminated in AWS while we waited.
    Left(InstanceState),
    /// Still not running in AWS when the wait ended.
    NotRunning(InstanceState),
    /// Running, but the last SSH attempt failed this way.
    Ssh(Kind),
    /// The setup hook failed on it.
    Setup,
    /// Its SSM agent is not online yet, or its first command did not succeed.
    Ssm,
}

impl NotReady {
    pub(super) fn ssh(e: SshError) -> NotReady {
        NotReady {
            cause: Cause::Ssh(e.kind),
            message: e.message,
        }
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a probe thread reports.
pub(super) enum Probe {
    Ready {
        id: String,
        host_key: Option<String>,
        public_key: Option<String>,
        /// The key was checked against the console's.
        verified: bool,
    },
    Retrying {
        id: String,
        why: NotReady,
    },
    Fatal {
        id: String,
        why: NotReady,
    },
}

const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id 2>/dev/null || true";

/// Read an instance's boot id over an open connection (empty when the OS has none).
pub fn boot_id(conn: &Conn) -> Option<String> {
    conn.run_capture(BOOT_ID, None)
        .ok()
        .map(|(_, out, _)| String::from_utf8_lossy(&out).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// One instance's login attempts on a thread of its own, with jittered backoff, until it is
/// ready, fails for good, or the wait ends; each attempt is reported on `tx`.
pub(super) fn spawn_probe(
    d: Descriptor,
    target: Target,
    cfg: SshConfig,
    until: Until,
    tx: tokio::sync::mpsc::UnboundedSender<Probe>,
    check: Arc<ReadyCheck>,
    published: Published,
) {
    std::thread::spawn(move || {
        let id = d.id.clone();
        let started = Instant::now();
        let mut pause = Duration::from_millis(500);
        // The first of an unbroken run of login refusals.
        let mut refused_since: Option<Instant> = None;
        loop {
            if until.stop.load(Ordering::Relaxed)
                || tool::interrupted()
                || Instant::now() >= until.deadline
            {
                return;
            }
            let target = match with_console_keys(&d, &target, &cfg, &published) {
                Ok(t) => t,
                Err(report) => {
                    let fatal = matches!(report, Probe::Fatal { .. });
                    let _ = tx.send(report);
                    if fatal {
                        return;
                    }
                    std::thread::sleep(ssh::jitter(pause));
                    continue;
                }
            };
            let report = match attempt(&target, &cfg, &check, &id, started) {
                Ok(conn) => {
                    let _ = tx.send(on_login(&d, &conn, &check));
                    return;
                }
                Err(e) => judge(e, &cfg, &mut refused_since),
            };
            match report {
                Err(why) => {
                    let _ = tx.send(Probe::Fatal { id, why });
                    return;
                }
                Ok(why) => {
                    let _ = tx.send(Probe::Retrying {
                        id: id.clone(),
                        why,
                    });
                }
            }
            std::thread::sleep(ssh::jitter(pause));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
}

/// Why a login keeps being refused, and what usually fixes it.
pub(super) const AUTH_HINT: &str =
    "wrong user or key? --user must be the AMI's login user (ubuntu on \
Ubuntu, ec2-user on Amazon Linux and RHEL, admin on Debian, centos on CentOS, fedora on Fedora), \
and -i the private half of the key pair the instance was launched with";

/// When a probe gives up: at the wait's deadline, or when the wait stops it.
pub(super) struct Until {
    pub(super) deadline: Instant,
    pub(super) stop: Arc<AtomicBool>,
}

/// A host whose key is still to be checked against its console (none pinned, or pinned on
/// first use).
pub(super) fn to_check(d: &Descriptor) -> bool {
    d.ssh.host_key.is_none() || d.ssh.unverified()
}

/// The target with the console's keys known now. Under `host_key_check=console` a host to
/// check whose console has none yet is not logged in to: retried while the wait lasts, and
/// failed at once when the consoles cannot be read at all.
fn with_console_keys(
    d: &Descriptor,
    target: &Target,
    cfg: &SshConfig,
    published: &Published,
) -> std::result::Result<Target, Probe> {
    let mut t = target.clone();
    if !console::wanted(cfg.host_key_check) || !to_check(d) {
        return Ok(t);
    }
    t.console_keys = published.get(&d.id);
    if t.console_keys.is_some() || cfg.host_key_check != HostKeyCheck::Console {
        return Ok(t);
    }
    let why = |message: String| NotReady {
        cause: Cause::Ssh(Kind::HostKey),
        message,
    };
    if published.is_unreadable() {
        return Err(Probe::Fatal {
            id: d.id.clone(),
            why: why(
                "its console cannot be read, and host_key_check=console trusts no host key \
                 without it"
                    .into(),
            ),
        });
    }
    Err(Probe::Retrying {
        id: d.id.clone(),
        why: why("its console has not published its host keys yet (host_key_check=console)".into()),
    })
}

/// One login that runs `true` and reads the boot id; after a reboot, an unchanged boot id is
/// a failure until `check.grace` has passed.
fn attempt(
    target: &Target,
    cfg: &SshConfig,
    check: &ReadyCheck,
    id: &str,
    started: Instant,
) -> std::result::Result<Conn, SshError> {
    let conn = ssh::connect(target, cfg)?;
    let (info, out, err) = conn.run_capture(&format!("true && {BOOT_ID}"), None)?;
    if info.code != 0 {
        return Err(SshError::new(
            Kind::Session,
            format!(
                "login works but `true` exited {}: {}",
                info.code,
                String::from_utf8_lossy(&err).trim()
            ),
        ));
    }
    if let Some(old) = check.old_boot_ids.get(id) {
        let now = String::from_utf8_lossy(&out).trim().to_owned();
        if &now == old {
            if started.elapsed() < check.grace {
                return Err(SshError::new(
                    Kind::Session,
                    "not rebooted yet (same boot id)",
                ));
            }
            output::note(format!(
                "{id}: still the same boot id after {}; taking it as ready",
                humantime::format_duration(check.grace)
            ));
        }
    }
    Ok(conn)
}

/// A logged-in host: the hook runs on its connection, then it is ready with its host key.
fn on_login(d: &Descriptor, conn: &Conn, check: &ReadyCheck) -> Probe {
    if let Some(hook) = &check.hook {
        if let Err(message) = hook(d, conn) {
            return Probe::Fatal {
                id: d.id.clone(),
                why: NotReady {
                    cause: Cause::Setup,
                    message,
                },
            };
        }
    }
    Probe::Ready {
        id: d.id.clone(),
        host_key: conn.host_key.clone(),
        public_key: conn.host_public_key.clone(),
        verified: conn.target.console_keys.is_some(),
    }
}

/// A failed attempt: `Ok` to try again, `Err` when no retry helps (the policy, the host key,
/// the configuration; a login refused for longer than `auth_grace`).
fn judge(
    error: SshError,
    cfg: &SshConfig,
    refused_since: &mut Option<Instant>,
) -> std::result::Result<NotReady, NotReady> {
    match error.kind {
        Kind::Policy | Kind::HostKey | Kind::Config => Err(NotReady::ssh(error)),
        Kind::Auth => {
            let since = *refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() < cfg.auth_grace {
                return Ok(NotReady::ssh(error));
            }
            Err(NotReady {
                cause: Cause::Ssh(Kind::Auth),
                // The grace, not the time each host took: equal reasons fold.
                message: format!(
                    "{} (for over auth_grace {}): {AUTH_HINT}",
                    error.message,
                    humantime::format_duration(cfg.auth_grace)
                ),
            })
        }
        _ => {
            *refused_since = None;
            Ok(NotReady::ssh(error))
        }
    }
}
