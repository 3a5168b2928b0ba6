//! Fan-out: run one thing per instance, many at once, and report per host.
//!
//! A fixed pool of worker threads takes hosts in index order; one failing host never stops the
//! others (its error becomes its result); a signal stops new hosts from starting. The remote
//! and local runners share the outcome type, the output prefixing and the summary, so
//! ec2-exec-remote and ec2-exec-local behave alike.

use crate::config::SshConfig;
use crate::descriptor::{Descriptor, Store};
use crate::error::{Code, Error, Result};
use crate::output::{self, Dest, LinePrefixer};
use crate::ssh::{self, Kind, SshError, Stream, Target};
use crate::tool;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// How one host's run ended.
#[derive(Debug, Clone)]
pub enum Status {
    /// The command ran and exited with this code.
    Exited(i32),
    /// It could not be run, or did not finish.
    Failed(SshError),
    /// Not started: interrupted first.
    NotStarted,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: String,
    pub index: u32,
    pub address: String,
    pub status: Status,
    pub duration: Duration,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Exited(0))
    }
}

/// The exit code of a fan-out, and the summary on stderr when anything failed:
/// `failed 2/5: 127.0.0.5 (i-…): exit 2; 127.0.0.6 (i-…): connect …`.
pub fn report(tool_name: &str, outcomes: &[Outcome]) -> Code {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    if failed.is_empty() {
        return if tool::interrupted() {
            Code::Interrupted
        } else {
            Code::Ok
        };
    }
    let detail: Vec<String> = failed
        .iter()
        .map(|o| {
            let why = match &o.status {
                Status::Exited(c) => format!("exit {c}"),
                Status::Failed(e) => e.message.clone(),
                Status::NotStarted => "not started (interrupted)".into(),
            };
            format!("{} ({}): {why}", o.address, o.id)
        })
        .collect();
    output::note(
        tool_name,
        format!(
            "ok {}/{}, failed {}: {}",
            outcomes.len() - failed.len(),
            outcomes.len(),
            failed.len(),
            detail.join("; ")
        ),
    );
    if tool::interrupted() {
        Code::Interrupted
    } else {
        Code::Partial
    }
}

fn outcome_for(d: &Descriptor, address: String, status: Status, started: Instant) -> Outcome {
    Outcome {
        id: d.id.clone(),
        index: d.index,
        address,
        status,
        duration: started.elapsed(),
    }
}

/// A job id for `-bg` runs: sortable by time, unique enough across runs.
pub fn new_job_id() -> String {
    let now = std::time::SystemTime::now();
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
    pub background: bool,
    pub fanout: usize,
    pub timeout: Option<Duration>,
}

/// The fixed script that starts a background job. Its stdin carries the job file name on the
/// first line and the user's command after it (nothing is pasted into a shell line). The
/// command runs detached in its own session, stdin from /dev/null, output in `<name>.log`, its
/// pid and exit code recorded in `<name>.pid` and `<name>.exit`. Prints the log's path.
const BG_SCRIPT: &str = r#"set -e
IFS= read -r n
case "$n" in ''|*[!A-Za-z0-9._-]*) echo "bad job name" >&2; exit 2 ;; esac
d="$HOME/.ec2-tools/jobs"; mkdir -p "$d"; j="$d/$n"
cat > "$j.cmd"
if command -v setsid >/dev/null 2>&1; then s=setsid; else s=nohup; fi
$s sh -c '"${SHELL:-/bin/sh}" "$1.cmd"; echo $? > "$1.exit"' sh "$j" </dev/null >"$j.log" 2>&1 &
echo "$!" > "$j.pid"
echo "$j.log""#;

/// The name of one host's files of a background job: `<job>-<instance-id>`.
pub fn job_file_name(job_id: &str, instance_id: &str) -> String {
    format!("{job_id}-{instance_id}")
}

/// Run a command on every host over SSH.
pub fn run_remote(
    tool_name: &str,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    job: &RemoteJob,
) -> Result<Code> {
    let targets = resolve_targets(cfg, hosts)?;
    let job_id = new_job_id();
    let started_all = Instant::now();
    let results = fan_out(&targets, job.fanout, |(d, target)| {
        let started = Instant::now();
        let target = match target {
            Ok(t) => t,
            Err(e) => return outcome_for(d, d.id.clone(), Status::Failed(e.clone()), started),
        };
        let address = target.address.clone();
        let status = match ssh::connect(target, cfg) {
            Err(e) => Status::Failed(e),
            Ok(conn) if job.background => {
                let input = format!("{}\n{}", job_file_name(&job_id, &d.id), job.command);
                match conn.run_capture(BG_SCRIPT, Some(input.as_bytes())) {
                    Ok((info, out, _)) if info.code == 0 => {
                        let log = String::from_utf8_lossy(&out).trim().to_owned();
                        output::data(format!("{} {} {}", d.id, address, log));
                        Status::Exited(0)
                    }
                    Ok((info, _, err_bytes)) => Status::Failed(SshError::new(
                        Kind::Session,
                        format!(
                            "could not start the job (exit {}): {}",
                            info.code,
                            String::from_utf8_lossy(&err_bytes).trim()
                        ),
                    )),
                    Err(e) => Status::Failed(e),
                }
            }
            Ok(conn) => {
                let mut out = LinePrefixer::new(&address, Dest::Stdout);
                let mut err = LinePrefixer::new(&address, Dest::Stderr);
                let deadline = job.timeout.map(|t| Instant::now() + t);
                let r = conn.exec(
                    &job.command,
                    None,
                    deadline,
                    &tool::interrupted,
                    &mut |s, b| match s {
                        Stream::Stdout => out.push(b),
                        Stream::Stderr => err.push(b),
                    },
                );
                match r {
                    Ok(info) => Status::Exited(info.code),
                    Err(e) => Status::Failed(e),
                }
            }
        };
        outcome_for(d, address, status, started)
    });
    let outcomes = collect(hosts, results);
    if job.background {
        let ok = outcomes.iter().filter(|o| o.ok()).count();
        output::note(
            tool_name,
            format!(
                "job {job_id} started on {ok}/{} hosts in {:.1}s (logs: ~/.ec2-tools/jobs/{job_id}-<instance-id>.log)",
                outcomes.len(),
                started_all.elapsed().as_secs_f64()
            ),
        );
    }
    Ok(report(tool_name, &outcomes))
}

type TargetResult = std::result::Result<Target, SshError>;

/// Targets for every host; any address outside the allow list stops everything before a single
/// connection is made (exit 3), as the allow list promises.
fn resolve_targets<'a>(
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

fn collect(hosts: &[Descriptor], results: Vec<Option<Outcome>>) -> Vec<Outcome> {
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
        let status = if job.background {
            let log = log_dir.join(format!("local-{job_id}-{}-{}.log", d.index, d.id));
            start_detached(&mut cmd, &log).map(|()| {
                output::data(format!("{} {} {}", d.id, label, log.display()));
                0
            })
        } else {
            run_prefixed(&mut cmd, &label)
        };
        let status = match status {
            Ok(code) => Status::Exited(code),
            Err(e) => Status::Failed(SshError::new(Kind::Session, e)),
        };
        outcome_for(d, label, status, started)
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
    Ok(report(tool_name, &outcomes))
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

fn run_prefixed(cmd: &mut Command, label: &str) -> std::result::Result<i32, String> {
    use std::os::unix::process::ExitStatusExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("sh: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    std::thread::scope(|s| {
        s.spawn(|| copy_prefixed(&mut err, label, Dest::Stderr));
        copy_prefixed(&mut out, label, Dest::Stdout);
    });
    let st = child.wait().map_err(|e| e.to_string())?;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}

fn copy_prefixed(r: &mut impl Read, label: &str, dest: Dest) {
    let mut p = LinePrefixer::new(label, dest);
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        p.push(&buf[..n]);
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
