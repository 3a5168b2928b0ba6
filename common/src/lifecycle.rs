//! ec2-stop, ec2-start, ec2-reboot, ec2-revert: one command per lifecycle stage, on the
//! selected instances of a case (wolphin's operations), each waiting for its target state.
//!
//! start and reboot wait until SSH logins work again, exactly as ec2-create does; a reboot is
//! recognised by a new boot id, so a probe that slips in before the instance went down does not
//! count. Addresses change across stop/start: descriptors are updated as they appear.
//!
//! revert replaces instances with fresh ones from the AMI, keeping each one's index, role and
//! name. Batch (default) terminates all, then launches all: fast, but the capacity given up may
//! not come back (account limits, spot, contended instance types). `--sequential` launches each
//! replacement first and terminates the old instance only once the new one is ready: slower,
//! one at a time, but the case never holds fewer instances than before.

use crate::config::{Config, LaunchConfig, SshConfig};
use crate::descriptor::{Descriptor, Store};
use crate::ec2::{self, Ec2};
use crate::error::{Code, Error, Result};
use crate::exec::fan_out;
use crate::fleet::{self, CaseState};
use crate::output;
use crate::select::{self, SelectArgs};
use crate::ssh;
use crate::wait::{self, ReadyCheck};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct LifeOptions {
    pub timeout: Duration,
    pub poll: Duration,
    /// ec2-reboot: how long an unchanged boot id may stay before the instance is taken as
    /// rebooted anyway.
    pub reboot_grace: Duration,
    pub sequential: bool,
}

fn ids(v: &[Descriptor]) -> Vec<String> {
    v.iter().map(|d| d.id.clone()).collect()
}

/// The frame every stage shares: the directory lock held, a non-empty selection, one EC2
/// client, then `stage` on them.
fn on_selection(
    cfg: &Config,
    sel: &SelectArgs,
    stage: impl AsyncFnOnce(&Ec2, &Store, Vec<Descriptor>) -> Result<Code>,
) -> Result<Code> {
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let hosts = select::select_some(&store, sel)?;
    crate::runtime()?.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        stage(&ec2, &store, hosts).await
    })
}

pub fn stop(
    cfg: &Config,
    ssh_cfg: &SshConfig,
    sel: &SelectArgs,
    opts: &LifeOptions,
) -> Result<Code> {
    on_selection(cfg, sel, async |ec2, store, mut hosts| {
        ec2.stop(&ids(&hosts)).await?;
        let late = wait::state(
            ec2,
            ssh_cfg,
            store,
            &mut hosts,
            &["stopped"],
            opts.timeout,
            opts.poll,
        )
        .await?;
        for d in hosts
            .iter()
            .filter(|d| d.state.as_deref() == Some("stopped"))
        {
            output::data(format!("{} stopped", d.id));
        }
        if late.is_empty() {
            Ok(Code::Ok)
        } else {
            Err(Error::infra(format!(
                "timed out after {} waiting for instances to stop: {}",
                humantime::format_duration(opts.timeout),
                late.join(", ")
            )))
        }
    })
}

pub fn start(
    cfg: &Config,
    ssh_cfg: &SshConfig,
    sel: &SelectArgs,
    opts: &LifeOptions,
) -> Result<Code> {
    on_selection(cfg, sel, async |ec2, store, mut hosts| {
        ec2.start(&ids(&hosts)).await?;
        for d in &mut hosts {
            d.state = Some("pending".into());
        }
        finish_ready(
            ec2,
            ssh_cfg,
            store,
            hosts,
            opts,
            ReadyCheck::default(),
            "start",
        )
        .await
    })
}

pub fn reboot(
    cfg: &Config,
    ssh_cfg: &SshConfig,
    sel: &SelectArgs,
    opts: &LifeOptions,
) -> Result<Code> {
    on_selection(cfg, sel, async |ec2, store, hosts| {
        // Boot ids before the reboot, read in parallel (instances that cannot be reached now
        // are simply waited for).
        let before = fan_out(&hosts, 32, |d| {
            let t = ssh::Target::for_descriptor(d, ssh_cfg).ok()?;
            let conn = ssh::connect(&t, ssh_cfg).ok()?;
            wait::boot_id(&conn).map(|b| (d.id.clone(), b))
        });
        let old_boot_ids: BTreeMap<String, String> =
            before.into_iter().flatten().flatten().collect();
        ec2.reboot(&ids(&hosts)).await?;
        output::note("ec2-reboot", format!("rebooting {} instances", hosts.len()));
        let check = ReadyCheck {
            old_boot_ids,
            grace: opts.reboot_grace,
            hook: None,
        };
        finish_ready(
            ec2,
            ssh_cfg,
            store,
            hosts,
            opts,
            check,
            "come back after the reboot",
        )
        .await
    })
}

async fn finish_ready(
    ec2: &Ec2,
    ssh_cfg: &SshConfig,
    store: &Store,
    hosts: Vec<Descriptor>,
    opts: &LifeOptions,
    check: ReadyCheck,
    what: &str,
) -> Result<Code> {
    let waited = wait::ready(ec2, ssh_cfg, store, hosts, opts.timeout, opts.poll, check).await?;
    waited.print_ready();
    match waited.error(what, opts.timeout) {
        None => Ok(Code::Ok),
        Some(e) => Err(e),
    }
}

/// Contiguous runs of indexes: [2,3,4,7] → [(2,3),(7,1)].
fn runs(mut indexes: Vec<u32>) -> Vec<(u32, u32)> {
    indexes.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for i in indexes {
        match out.last_mut() {
            Some((start, len)) if *start + *len == i => *len += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

pub fn revert(
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    sel: &SelectArgs,
    opts: &LifeOptions,
) -> Result<Code> {
    on_selection(cfg, sel, async |ec2, store, hosts| {
        // Fresh from the configured AMI; without one, from the AMI the instances run.
        let mut launch = launch.clone();
        if launch.ami.is_none() {
            launch.ami = hosts.iter().find_map(|d| d.ami.clone());
        }
        let launch = &launch;
        let mut state = CaseState::load(store)?;
        state.save(store)?;
        let access = fleet::ensure_access(ec2, cfg, launch, ssh_cfg, store, &mut state).await?;
        let mut replacements = Vec::new();
        if opts.sequential {
            for old in &hosts {
                let new = fleet::launch(
                    ec2,
                    cfg,
                    launch,
                    ssh_cfg,
                    store,
                    &mut state,
                    &access,
                    old.index,
                    1,
                    old.role(),
                )
                .await?;
                let waited = wait::ready(
                    ec2,
                    ssh_cfg,
                    store,
                    new,
                    opts.timeout,
                    opts.poll,
                    ReadyCheck::default(),
                )
                .await?;
                if let Some(e) = waited.error("accept SSH", opts.timeout) {
                    return Err(e.context(format!("replacing {} (kept)", old.label())));
                }
                fleet::terminate_and_forget(ec2, store, std::slice::from_ref(old)).await?;
                output::note(
                    "ec2-revert",
                    format!("{} replaced by {}", old.label(), waited.ready[0].id),
                );
                replacements.extend(waited.ready);
            }
        } else {
            fleet::terminate_and_forget(ec2, store, &hosts).await?;
            for (first, count) in runs(hosts.iter().map(|d| d.index).collect()) {
                // Roles are kept per index run; a run mixing roles is split by role.
                let mut by_role: BTreeMap<Option<String>, Vec<u32>> = BTreeMap::new();
                for d in hosts
                    .iter()
                    .filter(|d| d.index >= first && d.index < first + count)
                {
                    by_role
                        .entry(d.role().map(str::to_owned))
                        .or_default()
                        .push(d.index);
                }
                for (role, idx) in by_role {
                    for (f, c) in runs(idx) {
                        replacements.extend(
                            fleet::launch(
                                ec2,
                                cfg,
                                launch,
                                ssh_cfg,
                                store,
                                &mut state,
                                &access,
                                f,
                                c,
                                role.as_deref(),
                            )
                            .await?,
                        );
                    }
                }
            }
            replacements.sort_by_key(|d| d.index);
            let waited = wait::ready(
                ec2,
                ssh_cfg,
                store,
                replacements,
                opts.timeout,
                opts.poll,
                ReadyCheck::default(),
            )
            .await?;
            waited.print_ready();
            return match waited.error("accept SSH", opts.timeout) {
                None => Ok(Code::Ok),
                Some(e) => Err(e),
            };
        }
        for d in &replacements {
            output::data(format!("{} {}", d.id, d.address.as_deref().unwrap_or("-")));
        }
        Ok(Code::Ok)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_runs_are_contiguous() {
        assert_eq!(super::runs(vec![7, 2, 3, 4]), vec![(2, 3), (7, 1)]);
        assert_eq!(super::runs(vec![]), vec![]);
    }
}
