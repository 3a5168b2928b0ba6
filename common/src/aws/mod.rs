//! Everything that talks to the EC2 API: the client and its retry policy (retry.rs), the calls
//! themselves (ec2.rs) and their errors (errors.rs), the case's key pair and security group
//! (access.rs), the host keys on the instances' consoles (console.rs), network (network.rs) and placement group (placement.rs), baked images (images.rs), what AWS publishes — image parameters, quotas, prices (lookup.rs), the checks before a launch and the images it runs (preflight.rs), the vCPU quota against a launch (quota.rs), what the case costs (cost.rs), RunInstances pacing (pace.rs), the fleet that launches (fleet.rs) and recovers, adopts, refreshes and terminates while keeping
//! descriptors true (upkeep.rs), and waiting for states and SSH logins (wait.rs, each instance's login attempts: probe.rs).
//!
//! Takes descriptors and configuration from above (case/, config.rs) and hands instances to
//! the remote layer only to probe readiness. What does not belong here: deciding what a tool
//! should do (cmd/), running commands on hosts (remote/).

pub mod access;
pub mod console;
pub mod cost;
pub mod ec2;
pub mod errors;
pub mod fleet;
pub mod iam;
pub mod images;
pub mod lookup;
pub mod network;
pub mod pace;
pub mod placement;
pub mod preflight;
pub(crate) mod probe;
pub mod quota;
pub mod retry;
pub mod run_command;
pub mod s3;
pub mod ssm;
pub mod ssm_files;
pub mod ssm_plan;
pub mod ssm_ready;
pub mod upkeep;
pub mod wait;

/// A runtime for the AWS side (network-bound, one thread is plenty; SSH work runs on its own
/// threads).
pub(crate) fn runtime() -> crate::error::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::infra(format!("cannot start the async runtime: {e}")))
}
