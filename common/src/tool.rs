//! Process concerns, in one place for every tool.
//!
//! SIGPIPE is restored so `ec2-create 3 | head -1` ends quietly; SIGINT/SIGTERM set a flag the
//! long-running loops poll, and they clean up (remote process groups killed) before exiting
//! 130. A second signal within [`SAME_INTERRUPTION`] is the same interruption (GNU `timeout`
//! signals the tool and then its whole process group, at once); a later one means the user
//! insists: the cleanup gets [`INSIST_GRACE`] more and the process exits. TripCom's `-bg` spelling is
//! accepted anywhere on the line; errors are printed as one line `ec2-<tool>: <message>` and
//! mapped to the documented exit code. Nothing else calls `process::exit`. The tool's name is
//! its binary's (`CARGO_BIN_NAME`, through [`bin!`](crate::bin)).

use crate::error::{Code, Error};
use crate::output;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// True once SIGINT or SIGTERM arrived: stop starting new work, clean up, exit 130.
pub fn interrupted() -> bool {
    flag().load(Ordering::Relaxed)
}

/// `Err(interrupted)` once a signal arrived, for `?` in loops.
pub fn check_interrupted() -> crate::error::Result<()> {
    if interrupted() {
        Err(Error::interrupted())
    } else {
        Ok(())
    }
}

/// Signals this close together are one interruption.
pub const SAME_INTERRUPTION: std::time::Duration = std::time::Duration::from_secs(1);
/// After an insisting second signal, how long the cleanup may still run.
pub const INSIST_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

static FIRST_SIGNAL_MS: AtomicU64 = AtomicU64::new(0);
static INSISTED: AtomicBool = AtomicBool::new(false);

/// CLOCK_MONOTONIC in milliseconds (async-signal-safe).
fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn install_signal_handlers() {
    let f = flag().clone();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let f = f.clone();
        // SAFETY: the handler only touches atomics and calls clock_gettime (signal-safe).
        let _ = unsafe {
            signal_hook::low_level::register(sig, move || {
                let now = monotonic_ms();
                if !f.swap(true, Ordering::SeqCst) {
                    FIRST_SIGNAL_MS.store(now, Ordering::SeqCst);
                } else if now.saturating_sub(FIRST_SIGNAL_MS.load(Ordering::SeqCst))
                    > SAME_INTERRUPTION.as_millis() as u64
                {
                    INSISTED.store(true, Ordering::SeqCst);
                }
            })
        };
    }
    // The insisting second signal: cleanup gets a bounded moment, then the process ends.
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if INSISTED.load(Ordering::SeqCst) {
            output::note(format!(
                "second signal: exiting in {}s (cleaning up what can be)",
                INSIST_GRACE.as_secs()
            ));
            std::thread::sleep(INSIST_GRACE);
            // SAFETY: ends the process without running destructors that could block.
            unsafe { libc::_exit(130) };
        }
    });
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// TripCom wrote `ec2execremote CMD -bg`: accept `-bg` anywhere (until a `--`) as `--bg`,
/// moved before the command — whose words, options included, are otherwise all the
/// command's (`ec2-exec-remote ps -ef`, as with ssh and pdsh).
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut seen_dashdash = false;
    let mut bg = false;
    let mut out: Vec<OsString> = Vec::new();
    for a in args {
        if a == "--" {
            seen_dashdash = true;
        }
        if !seen_dashdash && a == "-bg" {
            bg = true;
        } else {
            out.push(a);
        }
    }
    if bg {
        out.insert(out.len().min(1), OsString::from("--bg"));
    }
    out
}

/// A tool: its command line and what it does with it.
pub trait Tool {
    /// Its command line.
    type Cli: clap::Parser;
    /// Do the tool's work; the code it exits with (an error: its one line and code).
    fn run(cli: Self::Cli) -> crate::error::Result<Code>;
}

/// The whole `main` of a tool binary: `common::bin!(common::cmd::create::Create);` names the
/// tool after the binary.
#[macro_export]
macro_rules! bin {
    ($tool:ty) => {
        fn main() -> std::process::ExitCode {
            $crate::tool::main::<$tool>(env!("CARGO_BIN_NAME"))
        }
    };
}

/// Run tool `T` as the binary `name`: parse, run, map the result to the exit code.
pub fn main<T: Tool>(name: &'static str) -> ExitCode {
    output::set_program(name);
    install_signal_handlers();
    let args = normalize_args(std::env::args_os());
    let code = match parse::<T::Cli>(name, args).and_then(T::run) {
        Ok(code) => code,
        Err(err) => {
            if !err.message.is_empty() {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, "{name}: {}", err.message);
            }
            err.code
        }
    };
    let _ = std::io::stdout().flush();
    let code = if interrupted() {
        Code::Interrupted.merge(code)
    } else {
        code
    };
    ExitCode::from(code.as_u8())
}

/// The clap command of a CLI as binary `name` would show it: its name, and the settings table
/// under `--help`.
pub fn command<C: clap::CommandFactory>(name: &'static str) -> clap::Command {
    let cmd = C::command();
    // `-h`: the examples; `--help`: the examples and the settings table.
    let examples = cmd
        .get_after_help()
        .map(|h| format!("{h}\n\n"))
        .unwrap_or_default();
    cmd.name(name)
        .bin_name(name)
        .arg(
            clap::Arg::new(VERBOSE)
                .short('v')
                .long("verbose")
                .action(clap::ArgAction::Count)
                .help("Log AWS calls and SSH phases to stderr (-vv: more; RUST_LOG overrides)")
                .help_heading(None::<&str>),
        )
        .after_long_help(format!("{examples}{}", crate::settings::help_table()))
}

/// The `-v` flag every tool has (added here, once, rather than in each tool's CLI).
const VERBOSE: &str = "ec2_tools_verbose";

/// Parse a clap CLI, mapping clap's own exits to ours: help and version print as clap does
/// (exit 0); a usage error is one line, `ec2-<tool>: <what> (see --help)`, exit 2.
pub fn parse<C: clap::Parser>(name: &'static str, args: Vec<OsString>) -> crate::error::Result<C> {
    command::<C>(name)
        .try_get_matches_from(args)
        .and_then(|m| {
            crate::log::init(m.get_count(VERBOSE));
            C::from_arg_matches(&m)
        })
        .map_err(|e| {
            if !e.use_stderr() {
                let _ = e.print();
                return Error::new(Code::Ok, "");
            }
            Error::input(usage_line(&e.render().to_string()))
        })
}

/// clap's multi-line usage error as one line: its `error:` sentence (and tip), no usage block.
fn usage_line(rendered: &str) -> String {
    let mut out = String::new();
    // After a sentence ending in `:` (clap's "were not provided:"), the indented lines are
    // its list: the first follows it with a space, the others with commas.
    let mut list: Option<bool> = None; // Some(first item still to come)
    for raw in rendered.lines() {
        let line = raw.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let item = raw.starts_with(' ') && list.is_some() && !line.starts_with("tip:");
        let sep = match (out.is_empty(), item, list) {
            (true, _, _) => "",
            (false, true, Some(true)) => " ",
            (false, true, _) => ", ",
            (false, false, _) => "; ",
        };
        if item {
            list = Some(false);
        } else {
            list = line.ends_with(':').then_some(true);
        }
        out.push_str(sep);
        out.push_str(line.trim_start_matches("error: "));
    }
    format!("{out} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_listing_missing_arguments_reads_as_one_sentence() {
        let clap = "error: the following required arguments were not provided:\n  --job <ID>\n  --wait\n\nUsage: ec2-exec-remote --job <ID>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(clap),
            "the following required arguments were not provided: --job <ID>, --wait (see --help)"
        );
        let tip = "error: unexpected argument '--foo' found\n\n  tip: to pass '--foo' as a value, use '-- --foo'\n\nUsage: x\n";
        assert_eq!(
            usage_line(tip),
            "unexpected argument '--foo' found; tip: to pass '--foo' as a value, use '-- --foo' (see --help)"
        );
    }

    #[test]
    fn bg_is_accepted_anywhere_before_dashdash() {
        let args: Vec<OsString> = ["x", "cmd", "-bg", "--", "-bg"]
            .iter()
            .map(OsString::from)
            .collect();
        let out: Vec<String> = normalize_args(args)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(out, vec!["x", "--bg", "cmd", "--", "-bg"]);
    }
}
