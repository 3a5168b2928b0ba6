//! Waiting for instances: to reach a state in AWS, and to accept SSH logins.
//!
//! One DescribeInstances per round for the whole set (never per instance); SSH probes run in
//! parallel on their own threads as soon as an instance is running with an address, each with
//! jittered backoff. Descriptors are updated as addresses and states appear. A probe can carry
//! a hook that runs on the fresh connection the moment that instance is ready (provisioning
//! while the others still boot), and a check that must hold for the instance to count as ready
//! (after a reboot: a new boot id). A host key is checked at first contact against the keys
//! the instance's console published when `host_key_check` asks (console.rs reads them; each
//! login attempt uses what is known then). What does not belong here: what to do with instances that
//! did not get ready (the tools decide), SSH itself (remote/).

use super::console::{self, Published};
use super::fleet::Fleet;
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::fold_ranges;
use crate::config::{HostKeyCheck, SshConfig};
use crate::error::{Error, Result};
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

/// The result of a wait.
#[derive(Debug, Default)]
pub struct Waited {
    /// Ready, in index order.
    pub ready: Vec<Descriptor>,
    /// Not ready, and why, in index order.
    pub failed: Vec<(Descriptor, NotReady)>,
    pub timed_out: bool,
    pub interrupted: bool,
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
}

impl NotReady {
    fn ssh(e: SshError) -> NotReady {
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

/// What the instances were waited for, as the error says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// ec2-start: running again, and accepting SSH.
    Start,
    AcceptSsh,
    SetUp,
    Reboot,
}

impl Goal {
    fn as_str(self) -> &'static str {
        match self {
            Goal::Start => "start",
            Goal::AcceptSsh => "accept SSH",
            Goal::SetUp => "get ready and set up",
            Goal::Reboot => "come back after the reboot",
        }
    }
}

/// What became of the instances that did not get ready, as the error says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Their descriptors are kept (ec2-killall terminates them).
    Kept,
    /// `ec2-create --drop-failed` terminated them.
    Dropped,
}

impl Fate {
    fn as_str(self) -> &'static str {
        match self {
            Fate::Kept => "descriptors kept",
            Fate::Dropped => "terminated by --drop-failed",
        }
    }
}

/// What a probe thread reports.
enum Probe {
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
    let deadline = Instant::now() + patience.timeout;
    let mut w = Wait::new(fleet, descs, deadline, check);
    let mut timed_out = false;
    while !tool::interrupted() {
        w.describe_booting().await?;
        w.read_consoles().await;
        w.start_probes();
        if w.all_ended() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        w.listen_until((now + patience.poll).min(deadline)).await?;
    }
    Ok(w.finish(timed_out))
}

/// Where one instance is in the wait: one value per host, so none is in two states at once.
enum At {
    /// Not running in AWS yet, or running with no address to use; with why, if known.
    Booting(Option<NotReady>),
    /// A probe thread is logging in; with its latest failure.
    Probing(Option<NotReady>),
    Ready,
    Failed(NotReady),
}

impl At {
    fn ended(&self) -> bool {
        matches!(self, At::Ready | At::Failed(_))
    }
}

/// One wait for readiness: every host with where it is, and the probes' channel.
struct Wait<'a> {
    fleet: &'a Fleet,
    hosts: BTreeMap<String, (Descriptor, At)>,
    deadline: Instant,
    check: Arc<ReadyCheck>,
    stop: Arc<AtomicBool>,
    tx: tokio::sync::mpsc::UnboundedSender<Probe>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Probe>,
    bar: output::Progress,
    began: Instant,
    next_note: Instant,
    published: Published,
}

impl<'a> Wait<'a> {
    fn new(fleet: &'a Fleet, descs: Vec<Descriptor>, deadline: Instant, check: ReadyCheck) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Probe>();
        let began = Instant::now();
        Wait {
            fleet,
            bar: output::progress(descs.len() as u64, "ready"),
            hosts: descs
                .into_iter()
                .map(|d| (d.id.clone(), (d, At::Booting(None))))
                .collect(),
            deadline,
            check: Arc::new(check),
            stop: Arc::new(AtomicBool::new(false)),
            tx,
            rx,
            began,
            next_note: began + NOTE_EVERY,
            published: Published::default(),
        }
    }

    /// The consoles of the running hosts whose key is still to be checked, when
    /// `host_key_check` reads consoles.
    async fn read_consoles(&mut self) {
        if !console::wanted(self.fleet.ssh.host_key_check) {
            return;
        }
        let ids: Vec<String> = self
            .hosts
            .values()
            .filter(|(d, at)| !at.ended() && d.state() == InstanceState::Running && to_check(d))
            .map(|(d, _)| d.id.clone())
            .collect();
        self.published.refresh(&self.fleet.ec2, &ids).await;
    }

    /// One line for the hosts whose keys were trusted on first use: the console had none yet.
    fn say_trusted_on_first_use(&self) {
        let trusted: Vec<&Descriptor> = self
            .hosts
            .values()
            .filter(|(d, at)| matches!(at, At::Ready) && d.ssh.unverified())
            .map(|(d, _)| d)
            .collect();
        if trusted.is_empty() || !console::wanted(self.fleet.ssh.host_key_check) {
            return;
        }
        let indexes: Vec<u64> = trusted.iter().map(|d| u64::from(d.index)).collect();
        output::note(format!(
            "#{}: host keys trusted on first use: the consoles had not published them yet \
             (ec2-status and the next tool that connects check them once they have; \
             host_key_check=console waits instead)",
            fold_ranges(&indexes)
        ));
    }

    fn all_ended(&self) -> bool {
        self.hosts.values().all(|(_, at)| at.ended())
    }

    /// One DescribeInstances for the hosts not yet running: addresses and states are written
    /// to their descriptors; one that stopped or terminated fails.
    async fn describe_booting(&mut self) -> Result<()> {
        let waiting: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, (d, at))| {
                matches!(at, At::Booting(_)) && d.state() != InstanceState::Running
            })
            .map(|(id, _)| id.clone())
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let mode = self.fleet.ssh.address_mode();
        for info in self.fleet.ec2.describe(&waiting).await? {
            let Some((d, at)) = self.hosts.get_mut(&info.id) else {
                continue;
            };
            if info.update(d, mode) {
                self.fleet.store.write(d)?;
            }
            if matches!(
                info.state,
                InstanceState::ShuttingDown
                    | InstanceState::Terminated
                    | InstanceState::Stopping
                    | InstanceState::Stopped
            ) {
                *at = At::Failed(NotReady {
                    cause: Cause::Left(info.state),
                    message: format!("{} while waiting for it to run", info.state),
                });
            }
        }
        Ok(())
    }

    /// A probe thread for each host that runs now and has an address to use.
    fn start_probes(&mut self) {
        for (d, at) in self.hosts.values_mut() {
            if d.state() != InstanceState::Running || !matches!(at, At::Booting(_)) {
                continue;
            }
            match Target::for_descriptor(d, &self.fleet.ssh) {
                Ok(target) => {
                    *at = At::Probing(None);
                    spawn_probe(
                        d.clone(),
                        target,
                        self.fleet.ssh.clone(),
                        Until {
                            deadline: self.deadline,
                            stop: self.stop.clone(),
                        },
                        self.tx.clone(),
                        self.check.clone(),
                        self.published.clone(),
                    );
                }
                Err(e) => *at = At::Booting(Some(NotReady::ssh(e))),
            }
        }
    }

    /// Take the probes' reports until `end` (or every host has ended), saying meanwhile what
    /// is still waited for.
    async fn listen_until(&mut self, end: Instant) -> Result<()> {
        let end = tokio::time::Instant::from_std(end);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if tool::interrupted() { return Ok(()); }
                    self.show_pending();
                }
                Some(msg) = self.rx.recv() => {
                    self.take(msg)?;
                    if self.all_ended() { return Ok(()); }
                }
            }
        }
    }

    fn show_pending(&mut self) {
        let why = pending(&self.hosts);
        if !self.bar.is_hidden() {
            self.bar.set_message(why);
        } else if Instant::now() >= self.next_note {
            self.next_note += NOTE_EVERY;
            let ready = self
                .hosts
                .values()
                .filter(|(_, at)| matches!(at, At::Ready));
            output::note(format!(
                "{} of {} ready after {}; waiting for {why}",
                ready.count(),
                self.hosts.len(),
                humantime::format_duration(Duration::from_secs(self.began.elapsed().as_secs()))
            ));
        }
    }

    /// A probe's report: a ready host's first host key is written to its descriptor.
    fn take(&mut self, msg: Probe) -> Result<()> {
        match msg {
            Probe::Ready {
                id,
                host_key,
                public_key,
                verified,
            } => {
                if let Some((d, at)) = self.hosts.get_mut(&id) {
                    let source = console::source(verified);
                    if d.ssh.host_key.is_none() && host_key.is_some() {
                        d.ssh.host_key = host_key;
                        d.ssh.host_public_key = public_key;
                        d.ssh.host_key_source = Some(source.to_owned());
                        self.fleet.store.write(d)?;
                    } else if verified && d.ssh.unverified() && d.ssh.host_key == host_key {
                        d.ssh.host_key_source = Some(source.to_owned());
                        self.fleet.store.write(d)?;
                    } else if d.ssh.host_public_key.is_none()
                        && public_key.is_some()
                        && d.ssh.host_key == host_key
                    {
                        d.ssh.host_public_key = public_key;
                        self.fleet.store.write(d)?;
                    }
                    *at = At::Ready;
                    self.bar.inc(1);
                }
            }
            Probe::Retrying { id, why } => {
                if let Some((_, at @ At::Probing(_))) = self.hosts.get_mut(&id) {
                    *at = At::Probing(Some(why));
                }
            }
            Probe::Fatal { id, why } => {
                if let Some((_, at)) = self.hosts.get_mut(&id) {
                    *at = At::Failed(why);
                }
            }
        }
        Ok(())
    }

    /// Stop the probes; every host is ready or failed with its last reason, in index order.
    fn finish(self, timed_out: bool) -> Waited {
        self.stop.store(true, Ordering::Relaxed);
        self.say_trusted_on_first_use();
        drop(self.bar);
        let mut all: Vec<(Descriptor, At)> = self.hosts.into_values().collect();
        all.sort_by_key(|(d, _)| d.index);
        let mut out = Waited {
            timed_out,
            interrupted: tool::interrupted(),
            ..Default::default()
        };
        for (d, at) in all {
            let why = match at {
                At::Ready => {
                    out.ready.push(d);
                    continue;
                }
                At::Failed(why) | At::Booting(Some(why)) | At::Probing(Some(why)) => why,
                At::Booting(None) | At::Probing(None) => NotReady {
                    cause: Cause::NotRunning(d.state()),
                    message: format!("state {}", d.state()),
                },
            };
            out.failed.push((d, why));
        }
        out
    }
}

/// How often a wait off a terminal says what it is waiting for.
const NOTE_EVERY: Duration = Duration::from_secs(30);

/// The hosts still pending and why, lowest indexes first: `#4 127.0.0.7: connection refused;
/// #5: pending; +3 more`.
fn pending(hosts: &BTreeMap<String, (Descriptor, At)>) -> String {
    let mut left: Vec<(&Descriptor, &At)> = hosts
        .values()
        .filter(|(_, at)| !at.ended())
        .map(|(d, at)| (d, at))
        .collect();
    left.sort_by_key(|(d, _)| d.index);
    let mut parts: Vec<String> = left
        .iter()
        .take(3)
        .map(|(d, at)| {
            let why = match at {
                At::Booting(Some(e)) | At::Probing(Some(e)) => e.message.clone(),
                _ if d.state() == InstanceState::Running => "logging in".to_owned(),
                _ => d.state().to_string(),
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
            match by_why.iter_mut().find(|(w, _)| *w == why.message) {
                Some((_, ds)) => ds.push(d),
                None => by_why.push((&why.message, vec![d])),
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
            d.print_record();
        }
    }

    /// The error for a wait that did not fully succeed (None when all are ready): a timeout
    /// or an address the policy refuses is infrastructure (3), hosts that failed are partial (1).
    pub fn error(&self, goal: Goal, timeout: Duration, fate: Fate) -> Option<Error> {
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
        let (n, what, fate) = (self.failed.len(), goal.as_str(), fate.as_str());
        let total = n + self.ready.len();
        let refused = |why: &NotReady| why.cause == Cause::Ssh(Kind::Policy);
        Some(if self.timed_out {
            Error::infra(format!(
                "timed out after {} waiting for {n} of {total} instances to {what} ({fate}): {}",
                humantime::format_duration(timeout),
                self.failures()
            ))
        } else if self.failed.iter().any(|(_, why)| refused(why)) {
            Error::infra(self.failures())
        } else {
            Error::partial(format!(
                "{n} of {total} instances failed to {what} ({fate}): {}",
                self.failures()
            ))
        })
    }
}

/// One instance's login attempts on a thread of its own, with jittered backoff, until it is
/// ready, fails for good, or the wait ends; each attempt is reported on `tx`.
fn spawn_probe(
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

/// When a probe gives up: at the wait's deadline, or when the wait stops it.
struct Until {
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

/// A host whose key is still to be checked against its console (none pinned, or pinned on
/// first use).
fn to_check(d: &Descriptor) -> bool {
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
