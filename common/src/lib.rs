//! ec2-tools: small Unix tools to run load tests on a temporary fleet of EC2 instances.
//!
//! All behaviour lives here; each binary in `tools/` is one line, [`bin!`]. Data flows one way:
//! cli → settings → config → case (descriptors, selection) → aws / remote work → results →
//! output and exit code.
//!
//! The layers, from the bottom: [`error`], [`output`], [`settings`] (flag > env > files >
//! default, with sources), [`tool`] (process concerns) · [`config`] (plain resolved data) ·
//! [`case`] (the test case on disk) · [`remote`] (SSH, fan-out, per-host results) · [`aws`]
//! (EC2 calls, the fleet, waiting — it probes SSH through `remote`) · [`cli`] (the flags,
//! resolved into config and a selection) · [`cmd`] (one module per tool). A module imports only
//! from layers below it: no cycles, nothing reaches back up.

pub(crate) mod aws;
pub(crate) mod case;
pub(crate) mod cli;
pub mod cmd;
pub(crate) mod config;
pub mod error;
pub(crate) mod log;
pub(crate) mod output;
pub(crate) mod remote;
pub(crate) mod settings;
pub mod tool;

pub use error::{Code, Error, Result};
// Only the tools (cmd/), their entry (tool.rs) and exit codes are public: nothing outside
// this crate needs the layers below, so they are crate-private and their dead code is seen.

/// A runtime for the AWS side (network-bound, one thread is plenty; SSH work runs on its own
/// threads).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::infra(format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod properties;
