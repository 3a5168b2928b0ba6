//! ec2-killall: terminate every described instance, and only then forget it.
//!
//! A descriptor is removed only once AWS has accepted the termination (or no longer knows the
//! instance at all), so a failure — throttling, a network error — leaves it in place for the
//! next run. Running it twice is fine. `--case-sweep` also finds instances tagged with this
//! case and owner that have no descriptor (recovery after lost files).

use crate::config::Config;
use crate::descriptor::Store;
use crate::ec2::{self, LIVE_STATES};
use crate::error::{Code, Result};
use crate::output;
use crate::select::{self, SelectArgs};
use std::collections::BTreeSet;

const TOOL: &str = "ec2-killall";

#[derive(Debug, Clone, Default)]
pub struct KillOptions {
    pub case_sweep: bool,
}

pub fn run(cfg: &Config, sel: &SelectArgs, opts: &KillOptions) -> Result<Code> {
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let hosts = select::select(&store, sel)?;
    if hosts.is_empty() && !opts.case_sweep {
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
        let mut swept = BTreeSet::new();
        if opts.case_sweep {
            let known: BTreeSet<String> = store.load_all()?.into_iter().map(|d| d.id).collect();
            let owner = crate::config::owner();
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
                    swept.insert(i.id.clone());
                    ids.push(i.id);
                }
            }
        }
        if ids.is_empty() {
            output::note(
                TOOL,
                format!("no instances of case {} to terminate", cfg.case),
            );
            return Ok(Code::Ok);
        }
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
        if failed.is_empty() {
            Ok(Code::Ok)
        } else {
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
            Ok(Code::Partial)
        }
    })
}
