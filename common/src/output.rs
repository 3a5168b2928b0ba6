//! Output that many threads write at once without ever mixing half-lines.
//!
//! Each host's output is buffered per stream and written whole lines at a time, prefixed
//! `<address>: ` (pdsh style), under the stdout/stderr lock (as fd does). stdout carries data
//! only; diagnostics and progress go to stderr, progress bars only when it is a terminal.
//! Diagnostics carry the running tool's name, which comes from the binary (set once by
//! tool.rs), never from a literal here.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

static PROGRAM: OnceLock<String> = OnceLock::new();

/// Name the running tool (its binary's name) for every diagnostic line. The first call wins.
pub fn set_program(name: &str) {
    let _ = PROGRAM.set(name.to_owned());
}

/// The running tool's name.
pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("ec2-tools")
}

/// Which local stream a [`LinePrefixer`] writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Stdout,
    Stderr,
}

/// Turns a byte stream into whole prefixed lines on stdout or stderr.
pub struct LinePrefixer {
    prefix: Vec<u8>,
    dest: Dest,
    pending: Vec<u8>,
    discard: bool,
}

impl LinePrefixer {
    /// A prefixer that writes nothing.
    pub fn discard() -> LinePrefixer {
        LinePrefixer {
            prefix: vec![],
            dest: Dest::Stdout,
            pending: vec![],
            discard: true,
        }
    }

    /// Lines prefixed `<prefix>: `; an empty prefix leaves lines as they are.
    pub fn new(prefix: &str, dest: Dest) -> LinePrefixer {
        LinePrefixer {
            prefix: if prefix.is_empty() {
                vec![]
            } else {
                format!("{prefix}: ").into_bytes()
            },
            dest,
            pending: Vec::new(),
            discard: false,
        }
    }

    /// A host's lines: `<label>: `, the label in the host's own colour (picked by its index,
    /// one per host, as clush does) when `dest` is a terminal that wants colours.
    pub fn host(label: &str, index: u32, dest: Dest) -> LinePrefixer {
        if !colours(dest) || label.is_empty() {
            return LinePrefixer::new(label, dest);
        }
        const PALETTE: [u8; 12] = [32, 33, 34, 35, 36, 31, 92, 93, 94, 95, 96, 91];
        let c = PALETTE[index as usize % PALETTE.len()];
        LinePrefixer::new(&format!("\x1b[{c}m{label}\x1b[0m"), dest)
    }

    /// Take a chunk; write every line it completes in one locked write.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.discard {
            return;
        }
        let Some(last_nl) = chunk.iter().rposition(|&b| b == b'\n') else {
            self.pending.extend_from_slice(chunk);
            return;
        };
        let mut out = Vec::with_capacity(self.pending.len() + last_nl + 1 + 64);
        let complete = std::mem::take(&mut self.pending)
            .into_iter()
            .chain(chunk[..=last_nl].iter().copied())
            .collect::<Vec<u8>>();
        for line in complete.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(line);
        }
        self.pending.extend_from_slice(&chunk[last_nl + 1..]);
        write_locked(self.dest, &out);
    }

    /// Write an unterminated last line, with a newline.
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            let mut out = self.prefix.clone();
            out.append(&mut self.pending);
            out.push(b'\n');
            write_locked(self.dest, &out);
        }
    }
}

impl Drop for LinePrefixer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether `dest` gets ANSI colours: it is a terminal and `NO_COLOR` is unset or empty
/// (no-color.org).
pub fn colours(dest: Dest) -> bool {
    let terminal = match dest {
        Dest::Stdout => std::io::stdout().is_terminal(),
        Dest::Stderr => std::io::stderr().is_terminal(),
    };
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The progress bar on screen, if any: lines written meanwhile clear it first and redraw it
/// after, so a bar never tears an output line.
static ACTIVE: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// One write of whole lines under the stream's lock.
pub fn write_locked(dest: Dest, bytes: &[u8]) {
    let bar = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(|| write_now(dest, bytes)),
        None => write_now(dest, bytes),
    }
}

fn write_now(dest: Dest, bytes: &[u8]) {
    match dest {
        Dest::Stdout => {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(bytes);
            let _ = o.flush();
        }
        Dest::Stderr => {
            let _ = std::io::stderr().lock().write_all(bytes);
        }
    }
}

/// `1 instance`, `2 instances`: a count and its noun, in the right number.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A diagnostic line on stderr: `<tool>: <message>`.
pub fn note(msg: impl std::fmt::Display) {
    write_locked(Dest::Stderr, format!("{}: {msg}\n", program()).as_bytes());
}

/// A data line on stdout.
pub fn data(line: impl std::fmt::Display) {
    write_locked(Dest::Stdout, format!("{line}\n").as_bytes());
}

/// `--json`: records print as one JSON object per line from now on (set once, at a tool's
/// start, from its flag).
static JSON_RECORDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Print records as JSON (`--json`) or as text lines.
pub fn records_as_json(on: bool) {
    JSON_RECORDS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether records print as JSON.
pub fn json_records() -> bool {
    JSON_RECORDS.load(std::sync::atomic::Ordering::Relaxed)
}

/// One record on stdout: `json` under `--json`, else the text line.
pub fn record(json: serde_json::Value, text: impl std::fmt::Display) {
    if json_records() {
        data(json);
    } else {
        data(text);
    }
}

/// A progress bar on stderr while it lives; cleared when dropped.
pub struct Progress(indicatif::ProgressBar);

impl std::ops::Deref for Progress {
    type Target = indicatif::ProgressBar;
    fn deref(&self) -> &indicatif::ProgressBar {
        &self.0
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.0.is_hidden() {
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.0.finish_and_clear();
        }
    }
}

/// A progress bar on stderr when it is a terminal (and NO_COLOR is honoured); hidden otherwise:
/// `<what> [====>   ] 3/5 <message> (12s)`.
pub fn progress(len: u64, what: &str) -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress(indicatif::ProgressBar::hidden());
    }
    let plain = !colours(Dest::Stderr);
    let template = if plain {
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})"
    } else {
        "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({elapsed})"
    };
    let pb = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(what.to_owned());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(pb.clone());
    Progress(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_are_held_until_complete() {
        let mut p = LinePrefixer::new("h", Dest::Stderr);
        p.push(b"abc");
        assert_eq!(p.pending, b"abc");
        p.push(b"def\ngh");
        assert_eq!(p.pending, b"gh");
        p.finish();
        assert!(p.pending.is_empty());
    }
}
