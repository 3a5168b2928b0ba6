//! Waiting for instances: to reach a state in AWS, and to accept SSH logins.
//!
//! One DescribeInstances per round for the whole set (never per instance); SSH probes run in
//! parallel on their own threads as soon as an instance is running with an address, each with
//! jittered backoff. Descriptors are updated as addresses and states appear. A probe can carry
//! a hook that runs on the fresh connection the moment that instance is ready (provisioning
//! while the others still boot), and a check that must hold for the instance to count as ready
//! (after a reboot: a new boot id). What does not belong here: what to do with instances that
//! did not get ready (the tools decide), SSH itself (remote/).

use super::fleet::Fleet;
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::fold_ranges;
use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::output;
use crate::remote::ssh::{self, Conn, Kind, SshError, Target};
use crate::tool;
use std::collections::{BTreeMap, BTreeSet};
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

/// The result of a wait.
#[derive(Debug, Default)]
pub struct Waited {
    /// Ready, in index order.
    pub ready: Vec<Descriptor>,
    /// Not ready: (descriptor, why), in index order.
    pub failed: Vec<(Descriptor, String)>,
    pub timed_out: bool,
    pub interrupted: bool,
}

enum Probe {
    Ready {
        id: String,
        host_key: Option<String>,
        public_key: Option<String>,
    },
    Retrying {
        id: String,
        error: String,
    },
    Fatal {
        id: String,
        error: String,
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

/// How long to wait, and how often to ask AWS.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub timeout: Duration,
    /// Pause between DescribeInstances rounds.
    pub poll: Duration,
}

impl Patience {
    /// `timeout`, asking AWS every 2 s.
    pub fn new(timeout: Duration) -> Patience {
        Patience {
            timeout,
            poll: Duration::from_secs(2),
        }
    }
}

/// Wait until every instance is `running` and accepts an SSH login (plus `check`), or the
/// deadline passes. Instances that stop or terminate meanwhile fail at once.
pub async fn ready(
    fleet: &Fleet,
    descs: Vec<Descriptor>,
    patience: Patience,
    check: ReadyCheck,
) -> Result<Waited> {
    let (ec2, ssh_cfg, store) = (&fleet.ec2, &fleet.ssh, &fleet.store);
    let Patience { timeout, poll } = patience;
    let deadline = Instant::now() + timeout;
    let mode = ssh_cfg.address_mode();
    let mut descs: BTreeMap<String, Descriptor> =
        descs.into_iter().map(|d| (d.id.clone(), d)).collect();
    let mut probing: BTreeSet<String> = BTreeSet::new();
    let mut last_error: BTreeMap<String, String> = BTreeMap::new();
    let mut ready: BTreeSet<String> = BTreeSet::new();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Probe>();
    let bar = output::progress(descs.len() as u64, "ready");
    let check = Arc::new(check);
    let mut timed_out = false;
    let began = Instant::now();
    let mut next_note = began + NOTE_EVERY;

    loop {
        if tool::interrupted() {
            break;
        }
        let waiting: Vec<String> = descs
            .iter()
            .filter(|(id, d)| {
                !ready.contains(*id)
                    && !failed.contains_key(*id)
                    && d.state() != InstanceState::Running
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !waiting.is_empty() {
            for info in ec2.describe(&waiting).await? {
                let Some(d) = descs.get_mut(&info.id) else {
                    continue;
                };
                if info.update(d, mode) {
                    store.write(d)?;
                }
                if matches!(
                    info.state,
                    InstanceState::ShuttingDown
                        | InstanceState::Terminated
                        | InstanceState::Stopping
                        | InstanceState::Stopped
                ) {
                    failed.insert(
                        info.id.clone(),
                        format!("{} while waiting for it to run", info.state),
                    );
                }
            }
        }
        for (id, d) in &descs {
            if d.state() != InstanceState::Running
                || probing.contains(id)
                || ready.contains(id)
                || failed.contains_key(id)
            {
                continue;
            }
            match Target::for_descriptor(d, ssh_cfg) {
                Ok(target) => {
                    probing.insert(id.clone());
                    spawn_probe(
                        d.clone(),
                        target,
                        ssh_cfg.clone(),
                        deadline,
                        stop.clone(),
                        tx.clone(),
                        check.clone(),
                    );
                }
                Err(e) => {
                    last_error.insert(id.clone(), e.message);
                }
            }
        }
        if ready.len() + failed.len() == descs.len() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        let round_end = tokio::time::Instant::from_std((now + poll).min(deadline));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(round_end) => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if tool::interrupted() { break; }
                    let why = pending(&descs, &ready, &failed, &last_error);
                    if !bar.is_hidden() {
                        bar.set_message(why);
                    } else if Instant::now() >= next_note {
                        next_note += NOTE_EVERY;
                        output::note(format!(
                            "{} of {} ready after {}; waiting for {why}",
                            ready.len(),
                            descs.len(),
                            humantime::format_duration(Duration::from_secs(began.elapsed().as_secs()))
                        ));
                    }
                }
                Some(msg) = rx.recv() => match msg {
                    Probe::Ready { id, host_key, public_key } => {
                        if let Some(d) = descs.get_mut(&id) {
                            if d.ssh.host_key.is_none() && host_key.is_some() {
                                d.ssh.host_key = host_key;
                                d.ssh.host_public_key = public_key;
                                store.write(d)?;
                            } else if d.ssh.host_public_key.is_none()
                                && public_key.is_some()
                                && d.ssh.host_key == host_key
                            {
                                d.ssh.host_public_key = public_key;
                                store.write(d)?;
                            }
                        }
                        probing.remove(&id);
                        ready.insert(id);
                        bar.inc(1);
                        if ready.len() + failed.len() == descs.len() { break; }
                    }
                    Probe::Retrying { id, error } => { last_error.insert(id, error); }
                    Probe::Fatal { id, error } => {
                        probing.remove(&id);
                        failed.insert(id, error);
                        if ready.len() + failed.len() == descs.len() { break; }
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(bar);

    let mut all: Vec<Descriptor> = descs.into_values().collect();
    all.sort_by_key(|d| d.index);
    let mut out = Waited {
        timed_out,
        interrupted: tool::interrupted(),
        ..Default::default()
    };
    for d in all {
        if ready.contains(&d.id) {
            out.ready.push(d);
        } else {
            let why = failed
                .get(&d.id)
                .or_else(|| last_error.get(&d.id))
                .cloned()
                .unwrap_or_else(|| format!("state {}", d.state()));
            out.failed.push((d, why));
        }
    }
    Ok(out)
}

/// How often a wait off a terminal says what it is waiting for.
const NOTE_EVERY: Duration = Duration::from_secs(30);

/// The hosts still pending and why, lowest indexes first: `#4 127.0.0.7: connection refused;
/// #5: pending; +3 more`.
fn pending(
    descs: &BTreeMap<String, Descriptor>,
    ready: &BTreeSet<String>,
    failed: &BTreeMap<String, String>,
    last_error: &BTreeMap<String, String>,
) -> String {
    let mut left: Vec<&Descriptor> = descs
        .values()
        .filter(|d| !ready.contains(&d.id) && !failed.contains_key(&d.id))
        .collect();
    left.sort_by_key(|d| d.index);
    let mut parts: Vec<String> = left
        .iter()
        .take(3)
        .map(|d| {
            let why = match last_error.get(&d.id) {
                Some(e) => e.clone(),
                None if d.state() == InstanceState::Running => "logging in".to_owned(),
                None => d.state().to_string(),
            };
            match &d.address {
                Some(a) => format!("#{} {a}: {why}", d.index),
                None => format!("#{}: {why}", d.index),
            }
        })
        .collect();
    if left.len() > 3 {
        parts.push(format!("+{} more", left.len() - 3));
    }
    parts.join("; ")
}

/// Why a login keeps being refused, and what usually fixes it.
const AUTH_HINT: &str = "wrong user or key? --user must be the AMI's login user (ubuntu on \
Ubuntu, ec2-user on Amazon Linux and RHEL, admin on Debian, centos on CentOS, fedora on Fedora), \
and -i the private half of the key pair the instance was launched with";

impl Waited {
    /// `i-… (#2) (127.0.0.5): why; …`; instances failing for the same reason are folded,
    /// `#[1-3,5] (4): why`, so the line stays short at any scale.
    pub fn failures(&self) -> String {
        let mut by_why: Vec<(&str, Vec<&Descriptor>)> = Vec::new();
        for (d, why) in &self.failed {
            match by_why.iter_mut().find(|(w, _)| w == why) {
                Some((_, ds)) => ds.push(d),
                None => by_why.push((why, vec![d])),
            }
        }
        by_why
            .iter()
            .map(|(why, ds)| match ds.as_slice() {
                [d] => format!(
                    "{} ({}): {why}",
                    d.label(),
                    d.address.as_deref().unwrap_or("no address")
                ),
                _ => {
                    let idx: Vec<u64> = ds.iter().map(|d| u64::from(d.index)).collect();
                    format!("#[{}] ({}): {why}", fold_ranges(&idx), ds.len())
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Print `<id> <address>` for the ready ones, in index order.
    pub fn print_ready(&self) {
        for d in &self.ready {
            output::data(format!("{} {}", d.id, d.address.as_deref().unwrap_or("-")));
        }
    }

    /// The error for a wait that did not fully succeed (None when all are ready). `fate` says
    /// what became of the instances that did not get ready: "descriptors kept", or that they
    /// were terminated.
    pub fn error(&self, what: &str, timeout: Duration, fate: &str) -> Option<Error> {
        if self.interrupted {
            return Some(Error::interrupted().context(format!(
                "{} of {} instances not ready; descriptors kept (ec2-killall terminates them)",
                self.failed.len(),
                self.failed.len() + self.ready.len()
            )));
        }
        if self.failed.is_empty() {
            return None;
        }
        let n = self.failed.len();
        let total = n + self.ready.len();
        Some(if self.timed_out {
            Error::infra(format!(
                "timed out after {} waiting for {n} of {total} instances to {what} ({fate}): {}",
                humantime::format_duration(timeout),
                self.failures()
            ))
        } else if self
            .failed
            .iter()
            .any(|(_, why)| why.contains("EC2_TOOLS_SSH_ALLOW"))
        {
            Error::infra(self.failures())
        } else {
            Error::partial(format!(
                "{n} of {total} instances failed to {what} ({fate}): {}",
                self.failures()
            ))
        })
    }
}

fn spawn_probe(
    d: Descriptor,
    target: Target,
    cfg: SshConfig,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    tx: tokio::sync::mpsc::UnboundedSender<Probe>,
    check: Arc<ReadyCheck>,
) {
    std::thread::spawn(move || {
        let id = d.id.clone();
        let started = Instant::now();
        let mut pause = Duration::from_millis(500);
        // The first of an unbroken run of login refusals.
        let mut refused_since: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) || tool::interrupted() || Instant::now() >= deadline {
                return;
            }
            let attempt = ssh::connect(&target, &cfg).and_then(|conn| {
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
                if let Some(old) = check.old_boot_ids.get(&id) {
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
            });
            match attempt {
                Ok(conn) => {
                    if let Some(hook) = &check.hook {
                        if let Err(e) = hook(&d, &conn) {
                            let _ = tx.send(Probe::Fatal { id, error: e });
                            return;
                        }
                    }
                    let _ = tx.send(Probe::Ready {
                        id,
                        host_key: conn.host_key.clone(),
                        public_key: conn.host_public_key.clone(),
                    });
                    return;
                }
                Err(error) if matches!(error.kind, Kind::Policy | Kind::HostKey | Kind::Config) => {
                    let _ = tx.send(Probe::Fatal {
                        id,
                        error: error.message,
                    });
                    return;
                }
                Err(error) if error.kind == Kind::Auth => {
                    let since = *refused_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= cfg.auth_grace {
                        let _ = tx.send(Probe::Fatal {
                            id,
                            // The grace, not the time each host took: equal reasons fold.
                            error: format!(
                                "{} (for over auth_grace {}): {AUTH_HINT}",
                                error.message,
                                humantime::format_duration(cfg.auth_grace)
                            ),
                        });
                        return;
                    }
                    let _ = tx.send(Probe::Retrying {
                        id: id.clone(),
                        error: error.message,
                    });
                }
                Err(error) => {
                    refused_since = None;
                    let _ = tx.send(Probe::Retrying {
                        id: id.clone(),
                        error: error.message,
                    });
                }
            }
            std::thread::sleep(ssh::jitter(pause));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
}

/// Wait until every instance reaches one of `states` in AWS (stop: `stopped`); instances AWS
/// no longer lists count as `terminated`. Returns the laggards, described.
pub async fn state(
    fleet: &Fleet,
    descs: &mut [Descriptor],
    states: &[InstanceState],
    patience: Patience,
) -> Result<Vec<String>> {
    let (ec2, ssh_cfg, store) = (&fleet.ec2, &fleet.ssh, &fleet.store);
    let Patience { timeout, poll } = patience;
    let deadline = Instant::now() + timeout;
    let mode = ssh_cfg.address_mode();
    let want = states
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("|");
    let bar = output::progress(descs.len() as u64, &want);
    loop {
        tool::check_interrupted()?;
        let pending: Vec<String> = descs
            .iter()
            .filter(|d| !states.contains(&d.state()))
            .map(|d| d.id.clone())
            .collect();
        if pending.is_empty() {
            return Ok(vec![]);
        }
        let infos = ec2.describe(&pending).await?;
        for d in descs.iter_mut().filter(|d| pending.contains(&d.id)) {
            match infos.iter().find(|i| i.id == d.id) {
                Some(info) if info.update(d, mode) => store.write(d)?,
                Some(_) => {}
                None if states.contains(&InstanceState::Terminated) => {
                    d.state = Some(InstanceState::Terminated)
                }
                None => {}
            }
        }
        let still: Vec<String> = descs
            .iter()
            .filter(|d| !states.contains(&d.state()))
            .map(|d| format!("{} ({})", d.label(), d.state()))
            .collect();
        if still.is_empty() {
            return Ok(vec![]);
        }
        bar.set_position((descs.len() - still.len()) as u64);
        let shown: Vec<String> = descs
            .iter()
            .filter(|d| !states.contains(&d.state()))
            .take(3)
            .map(|d| format!("#{}: {}", d.index, d.state()))
            .collect();
        bar.set_message(shown.join("; "));
        if Instant::now() >= deadline {
            return Ok(still);
        }
        let wait = poll.min(deadline.saturating_duration_since(Instant::now()));
        let end = Instant::now() + wait;
        while Instant::now() < end {
            tool::check_interrupted()?;
            tokio::time::sleep(
                Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }
}
