//! Background jobs: `-bg` starts a command detached on every host under a job id; `--job ID`
//! with `--wait`, `--status` or `--stop` follows it up later, from any shell.
//!
//! On each host the job lives in `~/.ec2-tools/jobs/<job>-<instance-id>.{cmd,log,pid,exit}`: the
//! pid is the leader of the job's own session (so `--stop` kills the whole process group), the
//! exit code is written when the command ends. The job file name and the command reach the
//! host on stdin, never pasted into a shell line. The flags are ec2-exec-remote's
//! (exec_remote.rs).

use super::transport::run_task;
use crate::case::descriptor::Descriptor;
use crate::config::{OutputConfig, OutputMode, SshConfig};
use crate::error::{Code, Error, Result};
use crate::output;
use crate::remote::command::{who_lines, READ_WHO};
use crate::remote::fanout::RunOpts;
use crate::remote::results::{Collector, Status};
use crate::remote::ssh::{Kind, SshError};
use crate::remote::task::{Done, PerHost, Task};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// A job id for `-bg` runs: sortable by time, unique enough across runs.
pub(crate) fn new_job_id() -> String {
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

/// Validate a user-given job name: it becomes part of remote file names.
pub(crate) fn validate_job_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "job name {name:?}: use 1-64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// The name of one host's files of a job: `<job>-<instance-id>`.
pub(crate) fn job_file_name(job_id: &str, instance_id: &str) -> String {
    format!("{job_id}-{instance_id}")
}

/// Reads the job file name (first stdin line) and checks it; sets `$j`.
const PROLOGUE: &str = r#"IFS= read -r n
case "$n" in ''|.*|*[!A-Za-z0-9._-]*) echo "bad job name" >&2; exit 97 ;; esac
d="$HOME/.ec2-tools/jobs"; j="$d/$n"
"#;

/// After the prologue: the identity lines and the case's host list (kept in `$j.who`, read
/// back by the job's runner — never sourced), then the command (kept in `$j.cmd`), on stdin.
const START: &str = r#"mkdir -p "$d"
[ ! -e "$j.pid" ] || { echo "job already exists on this host" >&2; exit 96; }
{ for v in 1 2 3 4 5; do IFS= read -r l; printf '%s\n' "$l"; done
  c="$l"; while [ "$c" -gt 0 ]; do IFS= read -r l; printf '%s\n' "$l"; c=$((c-1)); done; } > "$j.who"
cat > "$j.cmd"
if command -v setsid >/dev/null 2>&1; then s=setsid; else s=nohup; fi
$s sh -c 'WHO"${SHELL:-/bin/sh}" "$1.cmd"; echo $? > "$1.exit.tmp"; mv "$1.exit.tmp" "$1.exit"' sh "$j" <"$j.who" >"$j.log" 2>&1 &
echo "$!" > "$j.pid"
echo "$j.log""#;

/// A job's state from its files: `exited N`, `running`, `stopped` (by `--stop`) or `died`.
const STATE_FN: &str = r#"state() { if [ -e "$1.exit" ]; then echo "exited $(cat "$1.exit")"
elif kill -0 "$(cat "$1.pid")" 2>/dev/null; then echo running
elif [ -e "$1.stopped" ]; then echo stopped; else echo died; fi; }
"#;

const STATE: &str = r#"[ -e "$j.pid" ] || { echo unknown; exit 0; }
state "$j""#;

/// `--jobs`: the name line is the instance id; one `<job> <state>` line per job on the host.
const LIST: &str = r#"for p in "$d"/*-"$n".pid; do [ -e "$p" ] || continue
b="${p##*/}"; printf '%s %s\n' "${b%-"$n".pid}" "$(state "${p%.pid}")"; done"#;

const WAIT: &str = r#"[ -e "$j.pid" ] || { echo "no job $n on this host" >&2; exit 98; }
while [ ! -e "$j.exit" ]; do
  kill -0 "$(cat "$j.pid")" 2>/dev/null || { sleep 1; [ -e "$j.exit" ] || { tail -n "$TAIL" "$j.log"; [ -e "$j.stopped" ] && exit 95; echo "the job died without an exit code (killed?)" >&2; exit 99; }; }
  sleep 1
done
tail -n "$TAIL" "$j.log"
exit "$(cat "$j.exit")""#;

const STOP: &str = r#"[ -e "$j.pid" ] || { echo "no job $n on this host" >&2; exit 98; }
p=$(cat "$j.pid")
if [ -e "$j.exit" ] || ! kill -0 "$p" 2>/dev/null; then echo "not running"; exit 0; fi
date > "$j.stopped"
kill -TERM "-$p" 2>/dev/null || kill -TERM "$p"
i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 10 ]; do sleep 0.5; i=$((i+1)); done
kill -KILL "-$p" 2>/dev/null || true
echo stopped"#;

fn script(body: &str) -> String {
    format!(
        "exec /bin/sh -c '{}'",
        format!("{PROLOGUE}{STATE_FN}{body}").replace('\'', "'\\''")
    )
}

/// Where and how a job's hosts are reached.
pub(crate) struct Reach<'a> {
    pub cfg: &'a SshConfig,
    pub hosts: &'a [Descriptor],
    /// The case's state directory (warm sessions through its holder), if any.
    pub state_dir: Option<&'a Path>,
    /// The case's host list, for `$CURRENT_HOSTS` on every host.
    pub case_hosts: &'a str,
}

/// Start `command` detached on every host; prints `<id> <address> <remote-log>` per host and
/// the job id on stderr.
pub(crate) fn start(
    at: &Reach,
    job_id: &str,
    command: &(dyn Fn(&Descriptor) -> String + Sync),
    fanout: usize,
) -> Result<Code> {
    let started = Instant::now();
    let inputs = at
        .hosts
        .iter()
        .map(|d| {
            format!(
                "{}\n{}{}",
                job_file_name(job_id, &d.id),
                who_lines(d, at.case_hosts),
                command(d)
            )
            .into_bytes()
        })
        .collect();
    let task = Task::Script {
        script: script(&START.replace("WHO", READ_WHO)),
        stdin: PerHost::Each(inputs),
    };
    let started_on = std::sync::Mutex::new(Vec::new());
    let code = run_captured(
        at,
        &task,
        fanout,
        OutputConfig::default(),
        &|d, address, code, out, err| {
            if code == 0 {
                started_on.lock().unwrap().push(d.id.clone());
                output::record(
                    serde_json::json!({"id": d.id, "index": d.index, "address": address,
                        "job": job_id, "log": out.trim()}),
                    format!("{} {address} {}", d.id, out.trim()),
                );
                Status::Exited(0)
            } else {
                Status::Failed(SshError::new(
                    Kind::Session,
                    format!("could not start the job (exit {code}): {}", err.trim()),
                ))
            }
        },
    )?;
    // Its follow-ups go to these hosts without the selection being given again.
    if let Some(dir) = at.state_dir {
        let ids = started_on.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = crate::case::jobs::record(dir, job_id, &ids) {
            output::note(format!("which hosts run job {job_id} is not kept: {e}"));
        }
    }
    output::note(format!(
        "job {job_id} started in {:.1}s; follow it with --job {job_id} --status|--wait|--stop",
        started.elapsed().as_secs_f64()
    ));
    Ok(code)
}

/// What to do with an existing job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `--jobs`: every job on every host.
    List,
    Status,
    Wait,
    Stop,
}

/// How to follow up an existing job.
#[derive(Debug, Clone)]
pub(crate) struct Follow {
    pub job_id: String,
    pub action: Action,
    /// Log lines shown by `--wait`.
    pub tail: u32,
    pub timeout: Option<Duration>,
}

/// A host's script ended with `code`, having written `out` and `err`: its status.
type Verdict<'a> = dyn Fn(&Descriptor, &str, i32, &str, &str) -> Status + Sync + 'a;

/// Run a job script on every host with its output kept (not shown); `verdict` turns each
/// host's exit code and output into its status (and data lines); then the summary (and
/// `--failed-to`, `--out-dir`'s summary, as `results` asks).
fn run_captured(
    at: &Reach,
    task: &Task,
    width: usize,
    results: OutputConfig,
    verdict: &Verdict,
) -> Result<Code> {
    let collector = Collector::new(OutputConfig {
        mode: OutputMode::Capture,
        ..results
    })?;
    let opts = RunOpts {
        width,
        timeout: None,
        holder: at.state_dir,
        same_instant: false,
    };
    let outcomes = run_task(
        &collector,
        at.cfg,
        at.hosts,
        task,
        &opts,
        &|d, address, r, sink| match r.and_then(Done::code) {
            Ok(code) => {
                let (out, err) = sink.kept();
                verdict(
                    d,
                    address,
                    code,
                    &String::from_utf8_lossy(out),
                    &String::from_utf8_lossy(err),
                )
            }
            Err(e) => Status::Failed(e),
        },
    )?;
    collector.finish(&outcomes)
}

/// `--jobs`: `<id> <address> <job> <state>` per job and host; `--status`: `<id> <address>
/// running|exited N|stopped|died|unknown`; `--wait`: each host's log tail
/// (prefixed) and its exit code as the host's result; `--stop`: kill each job's process group.
pub(crate) fn follow(at: &Reach, f: &Follow, results: OutputConfig) -> Result<Code> {
    match f.action {
        Action::List => list(at, results),
        Action::Status | Action::Stop => state_or_stop(at, f, results),
        Action::Wait => wait(at, f, results),
    }
}

/// One line of stdin per host, made by `line_of`.
fn per_host(hosts: &[Descriptor], line_of: &dyn Fn(&Descriptor) -> String) -> PerHost<Vec<u8>> {
    PerHost::Each(hosts.iter().map(|d| line_of(d).into_bytes()).collect())
}

/// `--jobs`: `<id> <address> <job> <state>` per job and host.
fn list(at: &Reach, results: OutputConfig) -> Result<Code> {
    let task = Task::Script {
        script: script(LIST),
        stdin: per_host(at.hosts, &|d| format!("{}\n", d.id)),
    };
    run_captured(at, &task, 32, results, &|d, address, code, out, err| {
        if code != 0 {
            return Status::Failed(SshError::new(
                Kind::Session,
                format!("could not list jobs (exit {code}): {}", err.trim()),
            ));
        }
        for line in out.lines() {
            let (job, state) = line.split_once(' ').unwrap_or((line, ""));
            output::record(
                serde_json::json!({"id": d.id, "index": d.index, "address": address,
                    "job": job, "state": state}),
                format!("{} {address} {line}", d.id),
            );
        }
        Status::Exited(0)
    })
}

/// `--status`: `<id> <address> running|exited N|stopped|died|unknown`; `--stop`: kill each
/// job's process group, said the same way.
fn state_or_stop(at: &Reach, f: &Follow, results: OutputConfig) -> Result<Code> {
    let job_id = f.job_id.as_str();
    let body = if f.action == Action::Status {
        STATE
    } else {
        STOP
    };
    let task = Task::Script {
        script: script(body),
        stdin: per_host(at.hosts, &|d| format!("{}\n", job_file_name(job_id, &d.id))),
    };
    run_captured(at, &task, 32, results, &|d, address, code, out, err| {
        if code != 0 {
            return Status::Failed(SshError::new(Kind::Session, err.trim().to_owned()));
        }
        let said = out.trim();
        output::record(
            serde_json::json!({"id": d.id, "index": d.index, "address": address,
                "job": job_id, "state": said}),
            format!("{} {address} {said}", d.id),
        );
        if said == "unknown" {
            Status::Failed(SshError::new(
                Kind::Session,
                format!("no job {job_id} on this host"),
            ))
        } else {
            Status::Exited(0)
        }
    })
}

/// `--wait`: each host's log tail (prefixed) and its exit code as the host's result.
fn wait(at: &Reach, f: &Follow, results: OutputConfig) -> Result<Code> {
    let job_id = f.job_id.as_str();
    let task = Task::Script {
        script: script(&WAIT.replace("\"$TAIL\"", &f.tail.to_string())),
        stdin: per_host(at.hosts, &|d| format!("{}\n", job_file_name(job_id, &d.id))),
    };
    // Waiting hosts mostly sleep: all at once, none queued behind another's job.
    let opts = RunOpts {
        width: at.hosts.len(),
        timeout: f.timeout,
        holder: at.state_dir,
        same_instant: false,
    };
    let collector = Collector::new(results)?;
    let outcomes = run_task(
        &collector,
        at.cfg,
        at.hosts,
        &task,
        &opts,
        &|_, _, r, _| match r.and_then(Done::code) {
            Ok(code) if (95..=99).contains(&code) => Status::Failed(SshError::new(
                Kind::Session,
                match code {
                    95 => "stopped (--stop) before it exited".into(),
                    98 => format!("no job {job_id} on this host"),
                    99 => "the job died without an exit code".into(),
                    _ => format!("exit {code}"),
                },
            )),
            Ok(code) => Status::Exited(code),
            Err(e) if e.kind == Kind::Timeout => Status::Failed(SshError::new(
                Kind::Timeout,
                "still running at --command-timeout",
            )),
            Err(e) => Status::Failed(e),
        },
    )?;
    collector.finish(&outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_shell_safe() {
        let id = new_job_id();
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{id}"
        );
    }

    #[test]
    fn job_names_are_restricted_to_file_name_safe_words() {
        assert!(validate_job_name("load-1.a_b").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "$(x)"] {
            assert!(validate_job_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(job_file_name("j1", "i-0123abcd"), "j1-i-0123abcd");
    }
}
