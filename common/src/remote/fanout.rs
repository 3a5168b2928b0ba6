//! Fan-out: run one thing per instance, many at once, one result per host.
//!
//! A fixed pool of worker threads takes hosts in index order; one failing host never stops the
//! others (its error becomes its result); a signal stops new hosts from starting, and the
//! remote process groups already started are killed. Every tool that works on hosts goes
//! through here, so they share the outcome type, the output modes and the summary
//! (results.rs). The entries, by what is run:
//!
//! * [`run_task`]: a [`Task`] (a command, a job script, a copy: plain data) on every host,
//!   through the case's session holder when [`RunOpts::warm`] says so — the one place that
//!   decides it — else over direct connections;
//! * [`on_connections`]: a read of each host with no output of its own (a login check, boot
//!   ids, clocks);
//! * [`on_each_host`]: a closure on each connection whose output goes through
//!   the collector (what cannot be data for the holder: ec2-get's packing for S3).
//!
//! How a host ended, in order: the task's [`Done`] on the host (over the holder's wire, as
//! [`holder::Ended`]: done, or failed with its `ssh::Kind`) → the tool's [`Judge`] makes it a
//! [`Status`] → with its address and time, an [`Outcome`], which the collector presents and
//! merges into the exit code → for the library, a `HostRun`. (A readiness wait's `Probe`
//! is no host run: aws/wait.rs.) What does not belong here: what is run on each host (cmd/).

use super::holder;
use super::results::{Collector, HostSink, Outcome, Status};
use super::ssh::{self, Conn, Kind, SshError, Target};
use super::task::{perform, Done, Task};
use crate::case::descriptor::Descriptor;
use crate::config::{OutputConfig, SshConfig};
use crate::error::{Code, Error, Result};
use crate::tool;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

pub use super::pool::fan_out;

type TargetResult = std::result::Result<Target, SshError>;

/// Targets for every host; any address outside the allow list stops everything before a single
/// connection is made (exit 3), as the allow list promises. Through a bastion (`--jump`) only
/// the bastion is connected to from here: its address is checked when it is logged in to.
pub fn resolve_targets<'a>(
    cfg: &SshConfig,
    hosts: &'a [Descriptor],
) -> Result<Vec<(&'a Descriptor, TargetResult)>> {
    let mut v = Vec::with_capacity(hosts.len());
    let mut refused = Vec::new();
    for d in hosts {
        let t = Target::for_descriptor(d, cfg);
        if let Ok(target) = &t {
            if cfg.allow.is_some() && cfg.jump.is_none() {
                if let Err(e) = ssh::resolve(target, cfg) {
                    if e.kind == Kind::Policy {
                        refused.push(format!("{}: {}", d.id, e.message));
                    }
                }
            }
        }
        v.push((d, t));
    }
    if !refused.is_empty() {
        return Err(Error::infra(refused.join("; ")));
    }
    Ok(v)
}

/// Connect to every host in parallel and run `work` on each connection, sending its output
/// through the collector; the summary and exit code come from the outcomes.
pub fn on_each_host<W>(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    width: usize,
    results: OutputConfig,
    work: W,
) -> Result<Code>
where
    W: Fn(&Descriptor, &Conn, &mut super::results::HostSink) -> Status + Sync,
{
    let collector = Collector::new(results)?;
    let outcomes = direct(&collector, cfg, hosts, width, work)?;
    collector.finish(&outcomes)
}

/// The direct path under every entry: each host connected to, `width` at a time, `work` run
/// on its connection, its output into `collector` (some hosts may have gone through the
/// session holder already); every host's outcome, in the hosts' order.
fn direct<W>(
    collector: &Collector,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    width: usize,
    work: W,
) -> Result<Vec<Outcome>>
where
    W: Fn(&Descriptor, &Conn, &mut super::results::HostSink) -> Status + Sync,
{
    let targets = resolve_targets(cfg, hosts)?;
    // On a terminal: done/total, and the hosts still running longest.
    let bar = crate::output::progress(hosts.len() as u64, "done");
    let running: std::sync::Mutex<std::collections::BTreeMap<u32, String>> = Default::default();
    let show_running = |running: &std::collections::BTreeMap<u32, String>| {
        let mut names: Vec<&str> = running.values().take(3).map(String::as_str).collect();
        if running.len() > 3 {
            names.push("…");
        }
        bar.set_message(if names.is_empty() {
            String::new()
        } else {
            format!("running: {}", names.join(" "))
        });
    };
    let outcomes = fan_out(&targets, width, |(d, target)| {
        let started = Instant::now();
        if !bar.is_hidden() {
            let mut r = running.lock().unwrap();
            r.insert(d.index, format!("#{}", d.index));
            show_running(&r);
        }
        let (address, status, sink) = match target {
            Err(e) => (d.id.clone(), Status::Failed(e.clone()), None),
            Ok(t) => {
                let mut sink = collector.host(d, &t.address);
                let status = match ssh::connect(t, cfg) {
                    Err(e) => Status::Failed(e),
                    Ok(conn) => {
                        repin(cfg, d, &conn);
                        work(d, &conn, &mut sink)
                    }
                };
                (t.address.clone(), status, Some(sink))
            }
        };
        let o = Outcome::new(d, address, status, started.elapsed());
        if let Some(sink) = sink {
            collector.done(sink, &o);
        }
        if !bar.is_hidden() {
            let mut r = running.lock().unwrap();
            r.remove(&d.index);
            show_running(&r);
            bar.inc(1);
        }
        o
    });
    drop(bar);
    Ok(collect(hosts, outcomes))
}

/// Connect to every host, `width` at a time, and run `read` on each connection — for what a
/// tool reads of its hosts without output of theirs (a login check, boot ids, clocks): one
/// result per host, in the hosts' order; a host not connected to has why (an address
/// outside the allow list is that host's `Kind::Policy`: a caller that must refuse the whole
/// run checks [`resolve_targets`] first), one not started (interrupted) `Kind::Interrupted`.
pub fn on_connections<T, R>(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    width: usize,
    read: R,
) -> Vec<std::result::Result<T, SshError>>
where
    T: Send,
    R: Fn(&Descriptor, &Conn) -> std::result::Result<T, SshError> + Sync,
{
    let results = fan_out(hosts, width, |d| {
        let t = Target::for_descriptor(d, cfg)?;
        let conn = ssh::connect(&t, cfg)?;
        repin(cfg, d, &conn);
        read(d, &conn)
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SshError::new(Kind::Interrupted, "interrupted"))))
        .collect()
}

/// What a tool makes of one host's end: the task's result (with the host's address and its
/// sink, whose kept output a capturing tool reads) becomes the host's status. Called once per
/// host, before its output is presented.
pub type Judge<'a> =
    dyn Fn(&Descriptor, &str, std::result::Result<Done, SshError>, &HostSink) -> Status + Sync + 'a;

/// How [`run_task`] runs: fan-out, time bound, and the case whose session holder may serve it.
pub struct RunOpts<'a> {
    /// How many hosts log in at once (warm hosts all start at once).
    pub width: usize,
    /// Bounds each host's command or script, from its start.
    pub timeout: Option<Duration>,
    /// The case's state directory: warm sessions through its holder when [`RunOpts::warm`]
    /// allows; `None`: direct connections only.
    pub holder: Option<&'a Path>,
    /// Every host starts at one wall-clock instant (`--at`): the clock offsets were measured
    /// over direct connections, so the hosts run over direct connections too.
    pub same_instant: bool,
}

impl RunOpts<'_> {
    /// Whether the hosts go through the case's session holder, decided here only: a holder
    /// directory, `persist` on, no bastion (`--jump`), no re-pinning, no common start instant.
    /// Returns the directory and how long the holder keeps sessions.
    fn warm(&self, cfg: &SshConfig) -> Option<(&Path, Duration)> {
        let dir = self.holder?;
        let allowed = cfg.repin.is_none() && cfg.jump.is_none() && !self.same_instant;
        allowed.then_some((dir, cfg.persist?))
    }
}

/// Run `task` on every host — through the case's session holder when it can, else (and for
/// whatever the holder could not start) over direct connections — output into `collector`.
/// One outcome per host, in the hosts' order.
pub fn run_task(
    collector: &Collector,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    task: &Task,
    opts: &RunOpts,
    judge: &Judge,
) -> Result<Vec<Outcome>> {
    let mut warm: Vec<Option<Outcome>> = hosts.iter().map(|_| None).collect();
    // A host whose pin its console contradicts is refused before any session (ssh.rs): the
    // holder never sees it, so such a run goes direct.
    let contradicted = hosts.iter().any(|d| d.ssh.console_keys.is_some());
    if let Some((dir, persist)) = opts.warm(cfg).filter(|_| !contradicted) {
        resolve_targets(cfg, hosts)?; // the allow list, before anything is sent
        let req = holder::RunRequest {
            ssh: cfg.clone(),
            hosts: hosts.to_vec(),
            task: task.clone(),
            timeout: opts.timeout,
            fanout: opts.width,
            persist,
        };
        match via_holder(dir, collector, &req, judge) {
            Ok((done, why)) => {
                warm = done;
                if let Some(why) = why.filter(|_| !tool::interrupted()) {
                    let left = warm.iter().filter(|o| o.is_none()).count();
                    crate::output::note(format!(
                        "{why}; connecting directly to the {left} hosts not yet started"
                    ));
                }
            }
            Err(holder::Unavailable(why)) => crate::output::note(format!(
                "warm sessions unavailable ({why}): connecting directly"
            )),
        }
    }
    let position: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let rest: Vec<Descriptor> = hosts
        .iter()
        .zip(&warm)
        .filter(|(_, o)| o.is_none())
        .map(|(d, _)| d.clone())
        .collect();
    if rest.is_empty() {
        return Ok(warm.into_iter().flatten().collect());
    }
    let direct = direct(collector, cfg, &rest, opts.width, |d, conn, sink| {
        let deadline = opts.timeout.map(|t| conn.started + t);
        let r = perform(
            task,
            position[d.id.as_str()],
            d,
            conn,
            deadline,
            &tool::interrupted,
            &mut |s, b| sink.push(s, b),
        );
        judge(d, &conn.target.address, r, sink)
    })?;
    let mut direct = direct.into_iter();
    Ok(warm
        .into_iter()
        .map(|o| o.or_else(|| direct.next()).expect("one outcome per host"))
        .collect())
}

/// Run a task on every host through the case's session holder (warm sessions), output into
/// `collector`. Hosts whose task had not started when the holder failed come back `None` (the
/// caller runs them directly), with why the holder failed; `Err` when it could not be used at
/// all. Policy refusals (the allow list) are the caller's to check first.
fn via_holder(
    state_dir: &Path,
    collector: &Collector,
    req: &holder::RunRequest,
    judge: &Judge,
) -> std::result::Result<(Vec<Option<Outcome>>, Option<String>), holder::Unavailable> {
    let stream = holder::connect_or_start(state_dir, &req.ssh)?;
    let hosts = &req.hosts;
    let began = Instant::now();
    let addresses = names(hosts, &req.ssh);
    let mut sinks: Vec<Option<HostSink>> = hosts.iter().map(|_| None).collect();
    let mut started = vec![false; hosts.len()];
    let mut outcomes: Vec<Option<Outcome>> = hosts.iter().map(|_| None).collect();
    // A host ended through the holder: judged, presented through its sink.
    let end = |i: usize, r: std::result::Result<Done, SshError>, sink: &mut Option<HostSink>| {
        let d = &hosts[i];
        let ms = began.elapsed().as_millis();
        match &r {
            Ok(done) => {
                tracing::info!(target: "ec2_tools::ssh", "ssh {}: {done} after {ms} ms (session holder)", addresses[i])
            }
            Err(e) => {
                tracing::info!(target: "ec2_tools::ssh", "ssh {}: failed after {ms} ms (session holder): {}", addresses[i], e.message)
            }
        }
        let sink = sink
            .take()
            .unwrap_or_else(|| collector.host(d, &addresses[i]));
        let status = judge(d, &addresses[i], r, &sink);
        let o = Outcome::new(d, addresses[i].clone(), status, began.elapsed());
        collector.done(sink, &o);
        o
    };
    let r = holder::run(
        stream,
        req,
        req.ssh.holder_quiet_limit(),
        &tool::interrupted,
        &mut |i, event| {
            let i = i as usize;
            let Some(d) = hosts.get(i) else { return };
            match event {
                holder::HostEvent::Started => started[i] = true,
                holder::HostEvent::Output(s, b) => sinks[i]
                    .get_or_insert_with(|| collector.host(d, &addresses[i]))
                    .push(s, b),
                holder::HostEvent::Ended(ended) => {
                    let r = match ended {
                        holder::Ended::Done(done) => Ok(done),
                        holder::Ended::Failed(kind, message) => Err(SshError::new(kind, message)),
                    };
                    outcomes[i] = Some(end(i, r, &mut sinks[i]));
                }
            }
        },
    );
    let why = r.err().map(|holder::Unavailable(why)| why);
    if let Some(why) = &why {
        // Started but not ended: it may have run, so it is not run again.
        for i in 0..hosts.len() {
            if outcomes[i].is_none() && (started[i] || tool::interrupted()) {
                let kind = if tool::interrupted() {
                    Kind::Interrupted
                } else {
                    Kind::Session
                };
                let e = SshError::new(kind, format!("{why} mid-command"));
                outcomes[i] = Some(end(i, Err(e), &mut sinks[i]));
            }
        }
    }
    Ok((outcomes, why))
}

/// Each host's name in output, once (as the direct path names it): its address, else its id.
pub(crate) fn names(hosts: &[Descriptor], ssh: &SshConfig) -> Vec<String> {
    hosts
        .iter()
        .map(|d| {
            Target::for_descriptor(d, ssh)
                .map(|t| t.address)
                .unwrap_or_else(|_| d.id.clone())
        })
        .collect()
}

/// `--accept-new-host-key`: record the key the host now offers in its descriptor.
fn repin(cfg: &SshConfig, d: &Descriptor, conn: &Conn) {
    let Some(dir) = cfg.repin.as_ref().filter(|_| conn.repinned) else {
        return;
    };
    let mut d = d.clone();
    d.ssh.host_key = conn.host_key.clone();
    d.ssh.host_public_key = conn.host_public_key.clone();
    match crate::case::store::Store::new(dir).write(&d) {
        Ok(()) => crate::output::note(format!(
            "{}: host key changed; accepted and recorded ({})",
            d.label(),
            d.ssh.host_key.as_deref().unwrap_or("?")
        )),
        Err(e) => crate::output::note(format!(
            "{}: could not record the new host key: {e}",
            d.label()
        )),
    }
}

pub fn collect(hosts: &[Descriptor], results: Vec<Option<Outcome>>) -> Vec<Outcome> {
    hosts
        .iter()
        .zip(results)
        .map(|(d, r)| {
            r.unwrap_or_else(|| Outcome {
                id: d.id.clone(),
                index: d.index,
                address: d.address.clone().unwrap_or_else(|| d.id.clone()),
                status: Status::NotStarted,
                duration: Duration::ZERO,
            })
        })
        .collect()
}
