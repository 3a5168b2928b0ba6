//! ec2-tools: small Unix tools to run load tests on a temporary fleet of EC2 instances.
//!
//! All behaviour lives here; each binary in `tools/` only parses its command line and calls
//! one `run` function. Data flows one way: configuration ([`config`]) → selection of
//! descriptors ([`descriptor`], [`select`]) → AWS ([`ec2`], [`fleet`], [`wait`]) or SSH
//! ([`ssh`]) work in parallel ([`exec`]) → output ([`output`]) and an exit code ([`error`]).

pub mod config;
pub mod create;
pub mod descriptor;
pub mod ec2;
pub mod error;
pub mod exec;
pub mod files;
pub mod fleet;
pub mod jobs;
pub mod killall;
pub mod lifecycle;
pub mod output;
pub mod results;
pub mod select;
pub mod ssh;
pub mod status;
pub mod sync;
pub mod tool;
pub mod wait;

pub use error::{Code, Error, Result};

/// A runtime for the AWS side (network-bound, one thread is plenty; SSH work runs on its own
/// threads).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::infra(format!("cannot start the async runtime: {e}")))
}
