//! ec2-killall: terminate every described instance, and only then forget it.
//!
//! A descriptor is removed only once AWS has accepted the termination (or no longer knows the
//! instance at all), so a failure — throttling, a network error — leaves it in place for the
//! next run. Running it twice is fine. `--case-sweep` also finds instances tagged with this
//! case and owner that have no descriptor (recovery after lost files); `--expired` sweeps the
//! whole region for this owner's instances past their `--ttl`, whatever directory launched
//! them. When the last instance of the case is gone, the key pair and security group the
//! tools made for it are deleted too (retrying while AWS still reports the group in use).

use crate::config::{Config, CASE_KEY_FILE};
use crate::descriptor::Store;
use crate::ec2::{self, Ec2, LIVE_STATES};
use crate::error::{Code, Result};
use crate::fleet::CaseState;
use crate::output;
use crate::select::{self, SelectArgs};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

const TOOL: &str = "ec2-killall";

#[derive(Debug, Clone, Default)]
pub struct KillOptions {
    pub case_sweep: bool,
    pub expired: bool,
    /// How long to keep retrying the security group's deletion.
    pub cleanup_patience: Option<Duration>,
}

pub fn run(cfg: &Config, sel: &SelectArgs, opts: &KillOptions) -> Result<Code> {
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let hosts = select::select(&store, sel)?;
    // A key pair or security group the tools made for the case may still exist in AWS.
    let state_file = store
        .dir()
        .join(crate::descriptor::STATE_DIR)
        .join("case.json");
    let has_resources = state_file.is_file()
        && CaseState::load(&store)
            .is_ok_and(|s| s.key_name.is_some() || s.security_group.is_some());
    if hosts.is_empty() && !opts.case_sweep && !opts.expired && !has_resources {
        output::note(
            TOOL,
            format!(
                "no instance descriptors in {}: nothing to terminate",
                store.dir().display()
            ),
        );
        return Ok(Code::Ok);
    }
    let rt = crate::runtime()?;
    rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let mut ids: Vec<String> = hosts.iter().map(|d| d.id.clone()).collect();
        let owner = crate::config::owner();
        if opts.case_sweep {
            let known: BTreeSet<String> = store.load_all()?.into_iter().map(|d| d.id).collect();
            for i in ec2
                .describe_case(&cfg.case, Some(&owner), LIVE_STATES)
                .await?
            {
                if !known.contains(&i.id) && !ids.contains(&i.id) {
                    output::note(
                        TOOL,
                        format!(
                            "{}: tagged {}={} but not described here: terminating",
                            i.id,
                            ec2::TAG_CASE,
                            cfg.case
                        ),
                    );
                    ids.push(i.id);
                }
            }
        }
        if opts.expired {
            let now = SystemTime::now();
            for i in ec2.describe_expiring(&owner).await? {
                let expired = i
                    .tags
                    .get(ec2::TAG_EXPIRES)
                    .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                    .is_some_and(|t| t <= now);
                if expired && !ids.contains(&i.id) {
                    output::note(
                        TOOL,
                        format!(
                            "{}: expired at {} (case {}): terminating",
                            i.id,
                            i.tags[ec2::TAG_EXPIRES],
                            i.tags.get(ec2::TAG_CASE).map(String::as_str).unwrap_or("?")
                        ),
                    );
                    ids.push(i.id);
                }
            }
        }
        let mut code = Code::Ok;
        if !ids.is_empty() {
            let result = ec2.terminate(&ids).await?;
            let mut done = BTreeSet::new();
            for (id, state) in &result.accepted {
                if matches!(state.as_str(), "shutting-down" | "terminated") {
                    store.remove(id)?;
                    output::data(format!("{id} {state}"));
                    done.insert(id.clone());
                }
            }
            for id in &result.unknown {
                store.remove(id)?;
                output::note(
                    TOOL,
                    format!("{id}: AWS no longer knows this instance; descriptor removed"),
                );
                done.insert(id.clone());
            }
            let failed: Vec<&String> = ids.iter().filter(|id| !done.contains(*id)).collect();
            if !failed.is_empty() {
                output::note(
                    TOOL,
                    format!(
                        "{} of {} instances not confirmed terminated (descriptors kept): {}",
                        failed.len(),
                        ids.len(),
                        failed
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                code = Code::Partial;
            }
        } else if !has_resources {
            output::note(
                TOOL,
                format!("no instances of case {} to terminate", cfg.case),
            );
        }
        if code == Code::Ok && has_resources && store.load_all()?.is_empty() {
            cleanup(
                &ec2,
                cfg,
                &store,
                opts.cleanup_patience.unwrap_or(Duration::from_secs(300)),
            )
            .await?;
        }
        Ok(code)
    })
}

/// Delete what the tools created for the case once no instance of it is alive.
async fn cleanup(ec2: &Ec2, cfg: &Config, store: &Store, patience: Duration) -> Result<()> {
    let mut state = CaseState::load(store)?;
    if state.key_name.is_none() && state.security_group.is_none() {
        return Ok(());
    }
    let alive = ec2
        .describe_case(&cfg.case, Some(&crate::config::owner()), LIVE_STATES)
        .await?;
    let ours: Vec<&str> = alive
        .iter()
        .filter(|i| {
            i.tags
                .get(ec2::TAG_LAUNCH)
                .is_some_and(|t| t.contains(&state.nonce))
        })
        .map(|i| i.id.as_str())
        .collect();
    if !ours.is_empty() {
        output::note(
            TOOL,
            format!(
                "keeping the case's key pair and security group: still used by {}",
                ours.join(", ")
            ),
        );
        return Ok(());
    }
    if let Some(sg) = state.security_group.clone() {
        ec2.delete_group(&sg, patience).await?;
        output::note(TOOL, format!("deleted security group {sg}"));
        state.security_group = None;
        state.save(store)?;
    }
    if let Some(key) = state.key_name.clone() {
        ec2.delete_key_pair(&key).await?;
        let dir = store.state_dir()?;
        let _ = std::fs::remove_file(dir.join(CASE_KEY_FILE));
        let _ = std::fs::remove_file(dir.join(CASE_KEY_FILE).with_extension("pub"));
        output::note(
            TOOL,
            format!("deleted key pair {key} and its local private key"),
        );
        state.key_name = None;
        state.save(store)?;
    }
    Ok(())
}
