//! Waiting for instances: to reach a state in AWS, and to accept SSH logins.
//!
//! One DescribeInstances per round for the whole set (never per instance); SSH probes run in
//! parallel on their own threads as soon as an instance is running with an address, each with
//! jittered backoff. Descriptors are updated as addresses and states appear. A probe can carry
//! a hook that runs on the fresh connection the moment that instance is ready (provisioning
//! while the others still boot), and a check that must hold for the instance to count as ready
//! (after a reboot: a new boot id). A host key is checked at first contact against the keys
//! the instance's console published when `host_key_check` asks (console.rs reads them, each
//! probe uses what is known at its attempt: probe.rs). What does not belong here: what to do
//! with instances that did not get ready (the tools decide), SSH itself (remote/).

use super::console::{self, Published};
use super::fleet::Fleet;
pub use super::probe::{boot_id, Cause, NotReady, ReadyCheck, ReadyHook};
use super::probe::{spawn_probe, to_check, Probe, Until};
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::fold_ranges;
use crate::error::{Error, Result};
use crate::output;
use crate::remote::ssh::{Kind, Target};
use crate::tool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let mut ssm = (fleet.ssh.transport == Some(crate::config::Transport::Ssm))
        .then(|| super::ssm_ready::SsmReady::new(&fleet.ec2));
    let mut timed_out = false;
    while !tool::interrupted() {
        w.describe_booting().await?;
        match &mut ssm {
            Some(ssm) => w.ssm_round(ssm).await?,
            None => {
                w.read_consoles().await;
                w.start_probes();
            }
        }
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

    /// Over SSM: the running hosts' agents and first commands (ssm_ready.rs), no login.
    async fn ssm_round(&mut self, ssm: &mut super::ssm_ready::SsmReady) -> Result<()> {
        let ids: Vec<String> = self
            .hosts
            .values()
            .filter(|(d, at)| !at.ended() && d.state() == InstanceState::Running)
            .map(|(d, _)| d.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        for (id, seen) in ssm.round(&ids).await? {
            let Some((_, at)) = self.hosts.get_mut(&id) else {
                continue;
            };
            *at = match seen {
                super::ssm_ready::Seen::Ready => {
                    self.bar.inc(1);
                    At::Ready
                }
                super::ssm_ready::Seen::Waiting(why) => At::Probing(Some(why)),
                super::ssm_ready::Seen::Failed(why) => At::Failed(why),
            };
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
