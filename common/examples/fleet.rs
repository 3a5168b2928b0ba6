//! A load test's whole life from a Rust program: create a fleet, run a command on every
//! instance, terminate the fleet — whatever happened in between.
//!
//! ```text
//! cargo run --example fleet -- DIR [N] [COMMAND]
//! ```
//!
//! DIR is the test-case directory (made if missing); N instances (default 2); COMMAND runs
//! through each instance's shell (default `uname -n`). Settings come from `ec2-tools.json` and
//! the environment, as for the tools (`EC2_TOOLS_AMI`, `AWS_REGION`, …). Prints one line per
//! host, `<index> <exit> <first line of output>`; exits 0 when every host ran the command
//! with exit 0, else with the tools' codes.

use ec2_tools::{Code, TestCase};
use std::process::ExitCode;

fn main() -> ExitCode {
    const USAGE: &str = "usage: fleet DIR [N] [COMMAND]";
    let mut args = std::env::args().skip(1);
    let dir = match args.next() {
        Some(h) if h == "-h" || h == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        // An option where DIR belongs is a mistake, not a directory to make and launch in.
        Some(d) if d.starts_with('-') => {
            eprintln!("fleet: {d:?}: not a directory name ({USAGE})");
            return ExitCode::from(Code::Usage.as_u8());
        }
        Some(d) => d,
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(Code::Usage.as_u8());
        }
    };
    let count = match args.next().map(|n| n.parse::<u32>()) {
        None => 2,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("fleet: N: {e}");
            return ExitCode::from(Code::Usage.as_u8());
        }
    };
    let command = args.next().unwrap_or_else(|| "uname -n".to_owned());
    match run(&dir, count, &command) {
        Ok(code) => ExitCode::from(code.as_u8()),
        Err(e) => {
            eprintln!("fleet: {}", e.message);
            ExitCode::from(e.code.as_u8())
        }
    }
}

fn run(dir: &str, count: u32, command: &str) -> ec2_tools::Result<Code> {
    std::fs::create_dir_all(dir).map_err(|e| ec2_tools::Error::input(format!("{dir}: {e}")))?;
    let case = TestCase::open(dir)?;
    // From here on the fleet is terminated on every path, errors included.
    let worked = create_and_run(&case, count, command);
    let killed = case.killall()?;
    let n = killed.terminated.len() + killed.unknown.len();
    eprintln!(
        "fleet: terminated {n} instance{}",
        if n == 1 { "" } else { "s" }
    );
    Ok(worked?.merge(killed.code()))
}

fn create_and_run(case: &TestCase, count: u32, command: &str) -> ec2_tools::Result<Code> {
    let fleet = case.create(count)?;
    if let Some(problem) = fleet.problem {
        return Err(problem);
    }
    let n = fleet.ready.len();
    eprintln!("fleet: {n} instance{} ready", if n == 1 { "" } else { "s" });
    let mut code = Code::Ok;
    for run in case.exec(command)? {
        let out = String::from_utf8_lossy(&run.stdout);
        let first = out.lines().next().unwrap_or("");
        match run.exit {
            Some(exit) => println!("{} {exit} {first}", run.index),
            None => println!("{} - {}", run.index, run.error.as_deref().unwrap_or("?")),
        }
        if !run.ok() {
            code = Code::Partial;
        }
    }
    Ok(code)
}
