//! Process concerns, in one place for every tool.
//!
//! SIGPIPE is restored so `ec2-create 3 | head -1` ends quietly; SIGINT/SIGTERM set a flag the
//! long-running loops poll (a second one ends the process at once); TripCom's `-bg` spelling is
//! accepted anywhere on the line; errors are printed as one line `ec2-<tool>: <message>` and
//! mapped to the documented exit code. Nothing else calls `process::exit`. The tool's name is
//! its binary's (`CARGO_BIN_NAME`, through [`bin!`](crate::bin)).

use crate::error::{Code, Error};
use crate::output;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
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
pub fn check_interrupted() -> crate::Result<()> {
    if interrupted() {
        Err(Error::interrupted())
    } else {
        Ok(())
    }
}

fn install_signal_handlers() {
    let f = flag().clone();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal exits at once (the user insists); the first only sets the flag.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, f.clone());
        let _ = signal_hook::flag::register(sig, f.clone());
    }
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// TripCom wrote `ec2execremote CMD -bg`: accept `-bg` anywhere as `--bg` (until a `--`).
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut seen_dashdash = false;
    args.into_iter()
        .map(|a| {
            if a == "--" {
                seen_dashdash = true;
            }
            if !seen_dashdash && a == "-bg" {
                OsString::from("--bg")
            } else {
                a
            }
        })
        .collect()
}

/// A tool: its command line and what it does with it.
pub trait Tool {
    type Cli: clap::Parser;
    fn run(cli: Self::Cli) -> crate::Result<Code>;
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
    C::command()
        .name(name)
        .bin_name(name)
        .after_long_help(crate::settings::help_table())
}

/// Parse a clap CLI, mapping clap's own exits (help, version, usage errors) to ours.
pub fn parse<C: clap::Parser>(name: &'static str, args: Vec<OsString>) -> crate::Result<C> {
    command::<C>(name)
        .try_get_matches_from(args)
        .and_then(|m| C::from_arg_matches(&m))
        .map_err(|e| {
            let code = if e.use_stderr() {
                Code::Usage
            } else {
                Code::Ok
            };
            let _ = e.print();
            Error {
                code,
                message: String::new(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(out, vec!["x", "cmd", "--bg", "--", "-bg"]);
    }
}
