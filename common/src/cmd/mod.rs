//! One module per tool or tool family: each owns its command line (a clap struct) and a
//! [`Tool`](crate::tool::Tool) whose `run` does the tool's work with the layers below — the
//! settings and configuration, the case on disk, the fleet in AWS, the hosts over SSH — and
//! returns the exit code. `tools/<tool>/src/main.rs` names one of these and nothing else.
//!
//! What does not belong here: machinery two tools share (it goes down a layer: aws/, remote/,
//! case/), and process concerns (tool.rs).

pub mod bake;
pub mod create;
pub mod exec_local;
pub mod exec_remote;
pub mod files;
pub mod hosts;
pub(crate) mod jobs;
pub mod killall;
pub mod lifecycle;
pub mod login;
pub mod report;
pub(crate) mod results_s3;
pub(crate) mod start_at;
pub mod status;
pub mod suite;
pub(crate) mod transport;

use crate::case::descriptor::{Descriptor, InstanceState};
use crate::case::select::select_some;
use crate::case::store::Store;
use crate::cli::HostArgs;
use crate::config::SshConfig;
use crate::error::Result;
use crate::remote::ssh::check_identity;
use crate::settings::Settings;

/// The SSH settings, the store and the selected descriptors (never none), for the tools that
/// work on hosts over SSH only. A missing identity file is found here, before any host.
fn selected_hosts(args: &HostArgs) -> Result<(SshConfig, Store, Vec<Descriptor>)> {
    selected_hosts_in(&args.dir.settings()?, args)
}

/// [`selected_hosts`] in settings already loaded (a program's, with what it set).
fn selected_hosts_in(
    settings: &Settings,
    args: &HostArgs,
) -> Result<(SshConfig, Store, Vec<Descriptor>)> {
    let ssh = args.ssh.resolve(settings)?;
    let selection = args.select.resolve();
    let store = Store::new(settings.dir());
    let mut hosts = select_some(&store, &selection)?;
    if ssh.transport_for(&hosts) == crate::config::Transport::Ssh {
        check_identity(&ssh)?;
    }
    check_console_pins(&ssh, &store, &mut hosts);
    for d in &hosts {
        if matches!(
            d.state(),
            InstanceState::Stopped
                | InstanceState::Stopping
                | InstanceState::ShuttingDown
                | InstanceState::Terminated
        ) {
            crate::output::note(format!(
                "{}: its descriptor says {} (ec2-start, or ec2-status to refresh)",
                d.label(),
                d.state()
            ));
        }
    }
    Ok((ssh, store, hosts))
}

/// Host keys trusted on first use, checked against the instances' consoles now that they may
/// have published them (aws/console.rs): a verified pin is recorded as such, a mismatch makes
/// the connection to that host refused. Nothing to check, nothing is called; AWS out of reach,
/// the pins stay as they were (said once).
fn check_console_pins(ssh: &SshConfig, store: &Store, hosts: &mut [Descriptor]) {
    use crate::aws::console;
    let Some(first) = hosts.iter().find(|d| d.ssh.unverified() && !d.is_static()) else {
        return;
    };
    if !console::wanted(ssh.host_key_check) {
        return;
    }
    let region = first.region.clone();
    let Ok(rt) = crate::aws::runtime() else {
        return;
    };
    rt.block_on(async {
        match crate::aws::ec2::connect(region.as_deref()).await {
            Ok(ec2) => verify_pins(&ec2, store, hosts).await,
            Err(e) => crate::output::note(format!(
                "cannot check host keys trusted on first use against the consoles: {e}"
            )),
        }
    });
}

/// [`console::check_pins`](crate::aws::console::check_pins), and each pin it verified
/// recorded in its descriptor (a descriptor that cannot be written is said, not fatal).
async fn verify_pins(ec2: &crate::aws::ec2::Ec2, store: &Store, hosts: &mut [Descriptor]) {
    for d in crate::aws::console::check_pins(ec2, hosts).await {
        if let Err(e) = store.write(&d) {
            crate::output::note(format!("{}: {e}", d.label()));
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks on every tool's command line, as the binary builds it
    /// (with the `-v` every tool gets), and on the dispatcher's.
    #[test]
    fn every_cli_is_well_formed() {
        for c in super::suite::commands() {
            c.debug_assert();
        }
        super::suite::Cli::command().debug_assert();
    }
}
