//! What happens to each host's output and result: pdsh-style prefixed lines (default),
//! `--gather` (each distinct output once with the hosts that produced it, like `dshbak -c` /
//! `clush -b`), `--json` (one object per host), `--out-dir` (per-host files written as output
//! arrives, plus summary.json), `--failed-to` (the failed ids, for `--from` reruns), and the
//! final summary on stderr. Streaming modes use bounded memory whatever the output size;
//! `--gather` and `--json` without `--out-dir` hold each host's stdout in memory. What does
//! not belong here: running anything (fanout.rs, command.rs).

use super::command::Stream;
use super::ssh::SshError;
use crate::case::descriptor::Descriptor;
use crate::case::select::fold_ranges;
use crate::config::{Label, OutputConfig, OutputMode as Mode};
use crate::error::{Code, Error, Result, ResultExt};
use crate::output::{self, Dest, LinePrefixer};
use crate::tool;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// How a host's run ended.
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

    pub fn why(&self) -> String {
        match &self.status {
            Status::Exited(c) => format!("exit {c}"),
            Status::Failed(e) => e.message.clone(),
            Status::NotStarted => "not started (interrupted)".into(),
        }
    }

    pub fn new(d: &Descriptor, address: String, status: Status, duration: Duration) -> Outcome {
        Outcome {
            id: d.id.clone(),
            index: d.index,
            address,
            status,
            duration,
        }
    }
}

/// One host's run of a command, for a program using the library
/// ([`TestCase::exec`](crate::TestCase::exec)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRun {
    /// The instance (or own host) id.
    pub id: String,
    /// Its index in the case.
    pub index: u32,
    /// The address connected to.
    pub address: String,
    /// The command's exit code; `None` when it could not be run or did not finish.
    pub exit: Option<i32>,
    /// Why there is no exit code (refused connection, timeout, host key mismatch, …).
    pub error: Option<String>,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
    /// From the start of the connection to the end of the command.
    pub duration: Duration,
}

impl HostRun {
    /// The command ran and exited 0.
    pub fn ok(&self) -> bool {
        self.exit == Some(0)
    }
}

/// How `d`, reached at `address`, is named in prefixes and host sets (`--label`).
pub fn label_of(label: Label, d: &Descriptor, address: &str) -> String {
    match label {
        Label::Address => address.to_owned(),
        Label::Index => d.index.to_string(),
        Label::Id => d.id.clone(),
        Label::Name => format!("{}.{}", d.case, d.index),
        Label::None => String::new(),
    }
}

/// One host's output as it arrives.
pub struct HostSink {
    label: String,
    prefix: Option<(LinePrefixer, LinePrefixer)>,
    files: Option<(std::fs::File, std::fs::File)>,
    out: Option<Vec<u8>>,
    err: Option<Vec<u8>>,
    paths: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl HostSink {
    /// What this sink kept of the host's stdout and stderr so far (all of it in capture
    /// mode; empty where the mode keeps nothing).
    pub fn kept(&self) -> (&[u8], &[u8]) {
        (
            self.out.as_deref().unwrap_or_default(),
            self.err.as_deref().unwrap_or_default(),
        )
    }

    pub fn push(&mut self, s: Stream, b: &[u8]) {
        if let Some((o, e)) = self.prefix.as_mut() {
            match s {
                Stream::Stdout => o.push(b),
                Stream::Stderr => e.push(b),
            }
        }
        if let Some((o, e)) = self.files.as_mut() {
            let _ = match s {
                Stream::Stdout => o.write_all(b),
                Stream::Stderr => e.write_all(b),
            };
        }
        match s {
            Stream::Stdout => self.out.as_mut().map(|v| v.extend_from_slice(b)),
            Stream::Stderr => self.err.as_mut().map(|v| v.extend_from_slice(b)),
        };
    }
}

/// A host's whole stdout and stderr.
type Streams = (Vec<u8>, Vec<u8>);

/// Collects every host's result for one run.
pub struct Collector {
    opts: OutputConfig,
    gathered: Mutex<Vec<(u32, String, Vec<u8>)>>,
    json_lines: Mutex<Vec<(u32, serde_json::Value)>>,
    /// [`Mode::Capture`]: each host's (stdout, stderr), by id.
    captured: Mutex<BTreeMap<String, Streams>>,
}

impl Collector {
    pub fn new(opts: OutputConfig) -> Result<Collector> {
        if let Some(d) = &opts.out_dir {
            std::fs::create_dir_all(d).input_err(format!("--out-dir {}", d.display()))?;
        }
        Ok(Collector {
            opts,
            gathered: Mutex::new(vec![]),
            json_lines: Mutex::new(vec![]),
            captured: Mutex::new(BTreeMap::new()),
        })
    }

    /// A sink for one host's output.
    pub fn host(&self, d: &Descriptor, address: &str) -> HostSink {
        let quiet =
            self.opts.out_dir.is_some() || matches!(self.opts.mode, Mode::Json | Mode::Capture);
        let label = label_of(self.opts.label, d, address);
        let prefix = match self.opts.mode {
            Mode::Prefix if !quiet => Some((
                LinePrefixer::host(&label, d.index, Dest::Stdout),
                LinePrefixer::host(&label, d.index, Dest::Stderr),
            )),
            // Gather: stderr still streams, prefixed; stdout is grouped at the end.
            Mode::Gather if !quiet => Some((
                LinePrefixer::discard(),
                LinePrefixer::host(&label, d.index, Dest::Stderr),
            )),
            _ => None,
        };
        let (mut files, mut paths) = (None, None);
        if let Some(dir) = &self.opts.out_dir {
            let base = dir.join(format!("{}-{}", d.index, d.id));
            let (po, pe, px) = (
                base.with_extension("stdout"),
                base.with_extension("stderr"),
                base.with_extension("exit"),
            );
            if let (Ok(o), Ok(e)) = (std::fs::File::create(&po), std::fs::File::create(&pe)) {
                files = Some((o, e));
            }
            paths = Some((po, pe, px));
        }
        let keep_out = matches!(self.opts.mode, Mode::Gather | Mode::Capture)
            || (self.opts.mode == Mode::Json && self.opts.out_dir.is_none());
        let keep_err = self.opts.mode == Mode::Capture
            || (self.opts.mode == Mode::Json && self.opts.out_dir.is_none());
        HostSink {
            label,
            prefix,
            files,
            out: keep_out.then(Vec::new),
            err: keep_err.then(Vec::new),
            paths,
        }
    }

    /// A host is done: its `.exit` file, JSON object or gathered output.
    pub fn done(&self, sink: HostSink, o: &Outcome) {
        let HostSink {
            label,
            prefix,
            files,
            out,
            err,
            paths,
        } = sink;
        drop(prefix); // flushes unterminated last lines
        drop(files);
        let (code, error) = match &o.status {
            Status::Exited(c) => (Some(*c), None),
            _ => (None, Some(o.why())),
        };
        if let Some((_, _, px)) = &paths {
            let text = match (code, &error) {
                (Some(c), _) => format!("{c}\n"),
                (None, Some(e)) => format!("error: {e}\n"),
                _ => String::new(),
            };
            let _ = std::fs::write(px, text);
        }
        if self.opts.mode == Mode::Json {
            let mut v = json!({
                "id": o.id, "index": o.index, "address": o.address, "exit": code, "error": error,
                "duration_s": (o.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            });
            match &paths {
                Some((po, pe, _)) => {
                    v["stdout_path"] = json!(po.display().to_string());
                    v["stderr_path"] = json!(pe.display().to_string());
                }
                None => {
                    for (key, bytes) in [("stdout", &out), ("stderr", &err)] {
                        let bytes = bytes.as_deref().unwrap_or_default();
                        match std::str::from_utf8(bytes) {
                            Ok(text) => v[key] = json!(text),
                            // Not text: carried exactly, as base64 under `<stream>_base64`.
                            Err(_) => {
                                use base64::Engine;
                                v[format!("{key}_base64")] =
                                    json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                            }
                        }
                    }
                }
            }
            // Streamed as hosts finish, whole lines.
            output::data(&v);
            self.json_lines.lock().unwrap().push((o.index, v));
        } else if self.opts.mode == Mode::Capture {
            self.captured.lock().unwrap().insert(
                o.id.clone(),
                (out.unwrap_or_default(), err.unwrap_or_default()),
            );
        } else if self.opts.mode == Mode::Gather {
            self.gathered
                .lock()
                .unwrap()
                .push((o.index, label, out.unwrap_or_default()));
        }
    }

    /// [`Mode::Capture`]: every host's result with its output, in the outcomes' order.
    pub fn captured(&self, outcomes: Vec<Outcome>) -> Vec<HostRun> {
        let mut captured = self.captured.lock().unwrap();
        outcomes
            .into_iter()
            .map(|o| {
                let (stdout, stderr) = captured.remove(&o.id).unwrap_or_default();
                let (exit, error) = match &o.status {
                    Status::Exited(c) => (Some(*c), None),
                    _ => (None, Some(o.why())),
                };
                HostRun {
                    id: o.id,
                    index: o.index,
                    address: o.address,
                    exit,
                    error,
                    stdout,
                    stderr,
                    duration: o.duration,
                }
            })
            .collect()
    }

    /// After all hosts: gathered groups, summary.json, --failed-to, the summary line; the code.
    pub fn finish(&self, outcomes: &[Outcome]) -> Result<Code> {
        if self.opts.mode == Mode::Gather {
            let mut groups: BTreeMap<Vec<u8>, Vec<(u32, String)>> = BTreeMap::new();
            for (index, addr, out) in self.gathered.lock().unwrap().drain(..) {
                groups.entry(out).or_default().push((index, addr));
            }
            let mut groups: Vec<_> = groups.into_iter().collect();
            groups.sort_by_key(|(_, hosts)| hosts.iter().map(|h| h.0).min());
            for (out, hosts) in groups {
                let names: Vec<String> = hosts.into_iter().map(|h| h.1).collect();
                let mut block = format!(
                    "---------------\n{} ({})\n---------------\n",
                    fold_hosts(&names),
                    names.len()
                )
                .into_bytes();
                block.extend_from_slice(&out);
                if !out.is_empty() && !out.ends_with(b"\n") {
                    block.push(b'\n');
                }
                output::write_locked(Dest::Stdout, &block);
            }
        }
        let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
        if let Some(dir) = &self.opts.out_dir {
            let hosts: Vec<serde_json::Value> = outcomes
                .iter()
                .map(|o| {
                    json!({
                        "id": o.id, "index": o.index, "address": o.address,
                        "exit": match o.status { Status::Exited(c) => Some(c), _ => None },
                        "error": (!matches!(o.status, Status::Exited(_))).then(|| o.why()),
                        "duration_s": (o.duration.as_secs_f64() * 1000.0).round() / 1000.0,
                    })
                })
                .collect();
            let summary = json!({"ok": outcomes.len() - failed.len(), "failed": failed.len(), "hosts": hosts});
            let path = dir.join("summary.json");
            std::fs::write(&path, format!("{summary:#}\n")).infra_err(path.display())?;
        }
        if let Some(path) = &self.opts.failed_to {
            let text: String = failed.iter().map(|o| format!("{}\n", o.id)).collect();
            std::fs::write(path, text)
                .map_err(|e| Error::infra(format!("--failed-to {}: {e}", path.display())))?;
        }
        Ok(report(outcomes, self.opts.quiet))
    }
}

/// The summary on stderr and the exit code: `ok 47/50, failed 3 (i-… 10.0.0.5: exit 2, …)`;
/// beyond three failures, hosts with the same reason are folded as clush does
/// (`127.0.0.[4-9,15-23] (15): exit 1`), so the line stays readable at any scale.
pub fn report(outcomes: &[Outcome], quiet: bool) -> Code {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    let mut line = format!("ok {}/{}", outcomes.len() - failed.len(), outcomes.len());
    if failed.len() > 3 {
        let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for o in &failed {
            by_reason
                .entry(o.why())
                .or_default()
                .push(o.address.clone());
        }
        let mut groups: Vec<(String, Vec<String>)> = by_reason.into_iter().collect();
        groups.sort_by_key(|(_, hosts)| std::cmp::Reverse(hosts.len()));
        let detail: Vec<String> = groups
            .iter()
            .map(|(why, hosts)| format!("{} ({}): {why}", fold_hosts(hosts), hosts.len()))
            .collect();
        line.push_str(&format!(
            ", failed {} ({}; --failed-to FILE lists their ids)",
            failed.len(),
            detail.join("; ")
        ));
    } else if !failed.is_empty() {
        let detail: Vec<String> = failed
            .iter()
            .map(|o| format!("{} {}: {}", o.id, o.address, o.why()))
            .collect();
        line.push_str(&format!(
            ", failed {} ({})",
            failed.len(),
            detail.join(", ")
        ));
    }
    if !(quiet && failed.is_empty()) {
        output::note(line);
    }
    run_code(outcomes.iter().map(|o| &o.status), tool::interrupted())
}

/// The exit code of a run from its hosts' ends, merged as every tool promises (README "Exit
/// codes"): each host that did not exit 0 makes it 1 (the others still ran), an interruption
/// makes it 130 whatever the hosts did; no host at all is 0. Pure: decided here only.
pub fn run_code<'a>(ends: impl IntoIterator<Item = &'a Status>, interrupted: bool) -> Code {
    let hosts = ends
        .into_iter()
        .map(|s| match s {
            Status::Exited(0) => Code::Ok,
            _ => Code::Partial,
        })
        .fold(Code::Ok, Code::merge);
    if interrupted {
        hosts.merge(Code::Interrupted)
    } else {
        hosts
    }
}

/// `127.0.0.4, 127.0.0.5, 127.0.0.6, 10.0.0.1` → `127.0.0.[4-6],10.0.0.1` (clush's node sets).
pub fn fold_hosts(names: &[String]) -> String {
    let mut by_prefix: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<&str> = Vec::new();
    for n in names {
        let digits = n.len() - n.bytes().rev().take_while(|b| b.is_ascii_digit()).count();
        let (prefix, num) = n.split_at(digits);
        match num.parse::<u64>() {
            Ok(v) if !num.starts_with('0') || num == "0" => {
                by_prefix.entry(prefix).or_default().push(v)
            }
            _ => plain.push(n),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for (prefix, mut nums) in by_prefix {
        nums.sort_unstable();
        nums.dedup();
        if nums.len() == 1 {
            parts.push(format!("{prefix}{}", nums[0]));
            continue;
        }
        parts.push(format!("{prefix}[{}]", fold_ranges(&nums)));
    }
    parts.extend(plain.into_iter().map(str::to_owned));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_code_is_the_merge_of_its_hosts_ends() {
        use crate::remote::failure::{Kind, SshError};
        let failed = Status::Failed(SshError::new(Kind::Connect, "refused"));
        let cases = [
            (vec![], false, Code::Ok),
            (vec![Status::Exited(0), Status::Exited(0)], false, Code::Ok),
            (
                vec![Status::Exited(0), Status::Exited(3)],
                false,
                Code::Partial,
            ),
            (
                vec![failed.clone(), Status::Exited(0)],
                false,
                Code::Partial,
            ),
            (vec![Status::NotStarted], false, Code::Partial),
            (vec![Status::Exited(0)], true, Code::Interrupted),
            (vec![failed, Status::Exited(1)], true, Code::Interrupted),
        ];
        for (ends, interrupted, want) in cases {
            assert_eq!(run_code(&ends, interrupted), want, "{ends:?} {interrupted}");
        }
    }

    #[test]
    fn host_lists_fold_into_ranges() {
        let names: Vec<String> = [
            "127.0.0.6",
            "127.0.0.4",
            "127.0.0.5",
            "127.0.0.9",
            "10.0.0.1",
            "web",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(fold_hosts(&names), "10.0.0.1,127.0.0.[4-6,9],web");
    }
}
