//! ec2-tools: run load tests on a temporary fleet of EC2 instances — as small Unix tools
//! composed in shell scripts, and as this library.
//!
//! # As a library
//!
//! A [`TestCase`] is a directory holding one JSON [`Descriptor`] per instance. Create a fleet,
//! run a command on every host, terminate it (the whole program is `examples/fleet.rs`):
//!
//! ```no_run
//! use ec2_tools::TestCase;
//!
//! fn main() -> Result<(), ec2_tools::Error> {
//!     std::fs::create_dir_all("smoke").unwrap();
//!     let case = TestCase::open("smoke")?;
//!     let fleet = case.create(3)?;
//!     if let Some(problem) = &fleet.problem {
//!         eprintln!("not all ready: {problem}");
//!     }
//!     for run in case.exec("uname -n")? {
//!         println!("#{} {:?} {}", run.index, run.exit, String::from_utf8_lossy(&run.stdout));
//!     }
//!     let killed = case.killall()?;
//!     assert!(killed.unconfirmed.is_empty());
//!     Ok(())
//! }
//! ```
//!
//! Settings come from the same layers as the tools' (`ec2-tools.json`, `EC2_TOOLS_*`, `AWS_*`;
//! [`TestCase::set`] ranks as a flag), AWS credentials from the SDK's standard chain. Errors
//! carry the tools' [exit codes](Code). Calls block (each runs its own small runtime); call
//! them from a thread, not from inside an async task.
//!
//! # Inside
//!
//! All behaviour lives here; each binary in `tools/` is one line, [`bin!`]. Data flows one way:
//! cli → settings → config → case (descriptors, selection) → aws / remote work → results →
//! output and exit code.
//!
//! The layers, from the bottom: [`error`], `output`, `settings` (flag > env > files >
//! default, with sources), [`tool`] (process concerns) · `catalog` (what AWS names publicly:
//! image aliases, regions, quota codes) · `userdata` (the user data a launch sends) · `policy` (the IAM policy the tools need) · `config` (plain resolved data) ·
//! `case` (the test case on disk) · `remote` (SSH, fan-out, per-host results) · `aws`
//! (EC2 calls, the fleet, waiting — it probes SSH through `remote`) · `report` (the answer of
//! a load test: formats, merging, the page; pure data, it imports no other layer) · `cli` (the flags,
//! resolved into config and a selection) · [`cmd`] (one module per tool) · [`TestCase`]
//! (the library's face: the tools' work, results returned). A module imports only from layers
//! below it: no cycles, nothing reaches back up.

#![deny(missing_docs)]

pub(crate) mod aws;
pub(crate) mod case;
pub(crate) mod catalog;
pub(crate) mod cli;
pub mod cmd;
pub(crate) mod config;
pub mod error;
pub(crate) mod log;
pub(crate) mod output;
pub(crate) mod policy;
pub(crate) mod remote;
pub(crate) mod report;
pub(crate) mod settings;
mod testcase;
pub mod tool;
pub(crate) mod userdata;

pub use case::descriptor::{Descriptor, InstanceState, SshInfo};
pub use cmd::create::Created;
pub use cmd::killall::Killed;
pub use error::{Code, Error, Result};
pub use remote::results::HostRun;
pub use testcase::{CreateOptions, ExecOptions, TestCase};
// Public: the library's face (testcase.rs and the data it returns), the tools (cmd/), their
// entry (tool.rs) and exit codes. The layers below are crate-private, so their dead code is
// seen and they can change without breaking a program built on this crate.

#[cfg(test)]
mod properties;
