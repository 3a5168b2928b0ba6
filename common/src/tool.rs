//! Process concerns, in one place for every tool.
//!
//! SIGPIPE is restored so `ec2-create 3 | head -1` ends quietly; SIGINT/SIGTERM set a flag the
//! long-running loops poll (a second one ends the process at once); TripCom's `-bg` spelling is
//! accepted anywhere on the line; errors are printed as one line `ec2-<tool>: <message>` and
//! mapped to the documented exit code. Nothing else calls `process::exit`.

use crate::error::{Code, Error};
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

/// Run a tool: `body` gets the normalized arguments and returns the exit code of a run that got
/// to the end (0 or 1), or an error that ends it.
pub fn main(name: &str, body: impl FnOnce(Vec<OsString>) -> crate::Result<Code>) -> ExitCode {
    install_signal_handlers();
    let args = normalize_args(std::env::args_os());
    let code = match body(args) {
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

/// Parse a clap CLI, mapping clap's own exits (help, version, usage errors) to ours.
pub fn parse<C: clap::Parser>(args: Vec<OsString>) -> crate::Result<C> {
    C::try_parse_from(args).map_err(|e| {
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
