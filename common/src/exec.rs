//! Fan-out: run one thing per instance, many at once, and report per host.
//!
//! A fixed pool of worker threads takes hosts in index order; one failing host never stops the
//! others (its error becomes its result); a signal stops new hosts from starting, and the
//! remote process groups already started are killed. The remote and local runners share the
//! outcome type, the output modes and the summary ([`crate::results`]), so ec2-exec-remote and
//! ec2-exec-local behave alike.

use crate::config::SshConfig;
use crate::descriptor::{Descriptor, Store};
use crate::error::{Code, Error, Result};
use crate::output;
use crate::results::{Collector, Outcome, ResultOpts, Status};
use crate::ssh::{self, Conn, Kind, SshError, Target};
use crate::tool;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Run `f` on every item with at most `width` at once, in order of the items. Items not
/// started because of an interruption come back as `None`.
pub fn fan_out<T: Sync, R: Send>(
    items: &[T],
    width: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let width = width.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..width {
            s.spawn(|| loop {
                if tool::interrupted() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap()
}

/// A job id for `-bg` runs: sortable by time, unique enough across runs.
pub fn new_job_id() -> String {
    let now = SystemTime::now();
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:04x}",
        &stamp[..8],
        &stamp[8..],
        (nanos ^ std::process::id()) & 0xffff
    )
}

/// What ec2-exec-remote was asked to do.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    pub command: String,
    pub fanout: usize,
    /// Bounds the whole command on each host; the remote process group is killed after it.
    pub timeout: Option<Duration>,
    /// Start at this wall-clock instant on every host (`--at`).
    pub at: Option<SystemTime>,
    pub max_skew: Duration,
    pub results: ResultOpts,
}

type TargetResult = std::result::Result<Target, SshError>;

/// Targets for every host; any address outside the allow list stops everything before a single
/// connection is made (exit 3), as the allow list promises.
pub fn resolve_targets<'a>(
    cfg: &SshConfig,
    hosts: &'a [Descriptor],
) -> Result<Vec<(&'a Descriptor, TargetResult)>> {
    let mut v = Vec::with_capacity(hosts.len());
    let mut refused = Vec::new();
    for d in hosts {
        let t = Target::for_descriptor(d, cfg);
        if let Ok(target) = &t {
            if cfg.allow.is_some() {
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
    tool_name: &str,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    width: usize,
    results: ResultOpts,
    work: W,
) -> Result<Code>
where
    W: Fn(&Descriptor, &Conn, &mut crate::results::HostSink) -> Status + Sync,
{
    let targets = resolve_targets(cfg, hosts)?;
    let collector = Collector::new(results)?;
    let outcomes = fan_out(&targets, width, |(d, target)| {
        let started = Instant::now();
        let (address, status, sink) = match target {
            Err(e) => (d.id.clone(), Status::Failed(e.clone()), None),
            Ok(t) => {
                let mut sink = collector.host(d, &t.address);
                let status = match ssh::connect(t, cfg) {
                    Err(e) => Status::Failed(e),
                    Ok(conn) => work(d, &conn, &mut sink),
                };
                (t.address.clone(), status, Some(sink))
            }
        };
        let o = Outcome::new(d, address, status, started.elapsed());
        if let Some(sink) = sink {
            collector.done(sink, &o);
        }
        o
    });
    let outcomes = collect(hosts, outcomes);
    collector.finish(tool_name, &outcomes)
}

/// Run a command on every host over SSH.
pub fn run_remote(
    tool_name: &str,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    job: &RemoteJob,
) -> Result<Code> {
    let mut width = job.fanout;
    let mut starts: BTreeMap<String, f64> = BTreeMap::new();
    if let Some(at) = job.at {
        starts = crate::sync::plan(tool_name, cfg, hosts, at, job.max_skew, job.fanout)?;
        // Every host waits for the same instant: none may queue behind a sleeping one.
        width = hosts.len();
    }
    on_each_host(
        tool_name,
        cfg,
        hosts,
        width,
        job.results.clone(),
        |d, conn, sink| {
            let command = match starts.get(&d.id) {
                Some(t) => format!("{}{}", crate::sync::wait_until_prefix(*t), job.command),
                None => job.command.clone(),
            };
            let deadline = job.timeout.map(|t| {
                Instant::now() + t + starts.get(&d.id).map(|_| until(job.at)).unwrap_or_default()
            });
            match conn.run_command(&command, deadline, &tool::interrupted, &mut |s, b| {
                sink.push(s, b)
            }) {
                Ok(info) => Status::Exited(info.code),
                Err(e) if e.kind == Kind::Timeout => Status::Failed(SshError::new(
                    Kind::Timeout,
                    format!(
                        "timed out after {} (remote process group killed)",
                        humantime::format_duration(job.timeout.unwrap_or_default())
                    ),
                )),
                Err(e) if e.kind == Kind::Interrupted => Status::Failed(SshError::new(
                    Kind::Interrupted,
                    "interrupted (remote process group killed)",
                )),
                Err(e) => Status::Failed(e),
            }
        },
    )
}

fn until(at: Option<SystemTime>) -> Duration {
    at.and_then(|t| t.duration_since(SystemTime::now()).ok())
        .unwrap_or_default()
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

/// What ec2-exec-local was asked to do.
#[derive(Debug, Clone)]
pub struct LocalJob {
    pub command: String,
    pub background: bool,
    pub parallel: usize,
    pub results: ResultOpts,
}

/// The environment a local command sees for one instance. Instance data reaches the command
/// only this way, never pasted into its text.
pub fn local_env(d: &Descriptor, cfg: &SshConfig) -> BTreeMap<&'static str, String> {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let target = Target::for_descriptor(d, cfg);
    let mut env = BTreeMap::new();
    env.insert(
        "CURRENT_AMI_DNS",
        target
            .as_ref()
            .map(|t| t.address.clone())
            .unwrap_or_default(),
    );
    env.insert("CURRENT_AMI_ID", d.id.clone());
    env.insert("CURRENT_AMI_INDEX", d.index.to_string());
    env.insert("CURRENT_AMI_PUBLIC_IP", s(&d.public_ip));
    env.insert("CURRENT_AMI_PRIVATE_IP", s(&d.private_ip));
    env.insert("CURRENT_AMI_PUBLIC_DNS", s(&d.public_dns));
    env.insert("CURRENT_AMI_PRIVATE_DNS", s(&d.private_dns));
    env.insert("CURRENT_AMI_ROLE", d.role().unwrap_or_default().to_owned());
    env.insert("CURRENT_CASE", d.case.clone());
    if let Ok(t) = &target {
        env.insert("CURRENT_SSH_USER", t.user.clone());
        env.insert("CURRENT_SSH_PORT", t.port.to_string());
    }
    if let Some(k) = &cfg.identity {
        let k = std::fs::canonicalize(k).unwrap_or_else(|_| k.clone());
        env.insert("CURRENT_SSH_KEY", k.display().to_string());
    }
    env
}

/// Run a command locally once per instance, with the instance in the environment.
pub fn run_local(
    tool_name: &str,
    cfg: &SshConfig,
    store: &Store,
    hosts: &[Descriptor],
    job: &LocalJob,
) -> Result<Code> {
    let job_id = new_job_id();
    let log_dir: PathBuf = store.dir().join("logs");
    if job.background {
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| Error::infra(format!("{}: {e}", log_dir.display())))?;
    }
    let collector = Collector::new(job.results.clone())?;
    // Starting a detached command takes microseconds: one at a time keeps the index order.
    let width = if job.background { 1 } else { job.parallel };
    let results = fan_out(hosts, width, |d| {
        let started = Instant::now();
        let env = local_env(d, cfg);
        let label = Some(env["CURRENT_AMI_DNS"].clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| d.id.clone());
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&job.command)
            .envs(&env)
            .current_dir(store.dir());
        let (status, sink) = if job.background {
            let log = log_dir.join(format!("local-{job_id}-{}-{}.log", d.index, d.id));
            let r = start_detached(&mut cmd, &log).map(|()| {
                output::data(format!("{} {} {}", d.id, label, log.display()));
                0
            });
            (r, None)
        } else {
            let mut sink = collector.host(d, &label);
            (run_local_command(&mut cmd, &mut sink), Some(sink))
        };
        let status = match status {
            Ok(code) => Status::Exited(code),
            Err(e) => Status::Failed(SshError::new(Kind::Session, e)),
        };
        let o = Outcome::new(d, label, status, started.elapsed());
        if let Some(sink) = sink {
            collector.done(sink, &o);
        }
        o
    });
    let outcomes = collect(hosts, results);
    if job.background {
        output::note(
            tool_name,
            format!(
                "job {job_id}: {} local commands started",
                outcomes.iter().filter(|o| o.ok()).count()
            ),
        );
    }
    collector.finish(tool_name, &outcomes)
}

fn start_detached(cmd: &mut Command, log: &PathBuf) -> std::result::Result<(), String> {
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .process_group(0);
    cmd.spawn().map(|_| ()).map_err(|e| format!("sh: {e}"))
}

fn run_local_command(
    cmd: &mut Command,
    sink: &mut crate::results::HostSink,
) -> std::result::Result<i32, String> {
    use std::os::unix::process::ExitStatusExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("sh: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let sink = Mutex::new(sink);
    std::thread::scope(|s| {
        s.spawn(|| copy_into(&mut err, ssh::Stream::Stderr, &sink));
        copy_into(&mut out, ssh::Stream::Stdout, &sink);
    });
    let st = child.wait().map_err(|e| e.to_string())?;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}

fn copy_into(r: &mut impl Read, stream: ssh::Stream, sink: &Mutex<&mut crate::results::HostSink>) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        sink.lock().unwrap().push(stream, &buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_keeps_item_order_and_bounds_concurrency() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..40).collect();
        let out = fan_out(&items, 4, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(
            out.into_iter().map(Option::unwrap).collect::<Vec<_>>(),
            (0..40).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }

    #[test]
    fn job_ids_are_shell_safe() {
        let id = new_job_id();
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{id}"
        );
    }
}
