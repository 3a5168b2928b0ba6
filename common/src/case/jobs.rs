//! Which hosts each background job was started on (`.ec2-tools/jobs.json`), so that its
//! follow-ups (`--job ID --wait|--status|--stop`) go to those hosts without the selection
//! being given again: a job started on `--role server` is not looked for on the clients.
//!
//! One JSON object, job id → the instance ids it started on. Starting the same job id again
//! adds its hosts. An explicit selection on a follow-up wins. What does not belong here:
//! starting or following jobs (cmd/jobs.rs).

use crate::case::descriptor::Descriptor;
use crate::error::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The file's name in the state directory.
pub const FILE: &str = "jobs.json";

/// Every job's hosts (empty when no job was ever started here). A broken file is an error
/// naming it.
pub fn load(state_dir: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    super::store::load_state_file(&state_dir.join(FILE))
}

/// Record that `job` started on `ids` (atomically: written aside, then renamed).
pub fn record(state_dir: &Path, job: &str, ids: &[String]) -> Result<()> {
    let mut all = load(state_dir).unwrap_or_default();
    all.entry(job.to_owned())
        .or_default()
        .extend(ids.iter().cloned());
    super::store::save_state_file(&state_dir.join(FILE), &all)
}

/// The hosts a follow-up of a job goes to: with an explicit selection, the selection; else
/// the selected hosts the job was started on, when it was recorded (a job started before
/// this was recorded, or by another directory, is looked for everywhere).
pub fn follow_up_hosts(
    selected: Vec<Descriptor>,
    started_on: Option<&BTreeSet<String>>,
    explicit: bool,
) -> Vec<Descriptor> {
    match started_on {
        Some(ids) if !explicit => selected
            .into_iter()
            .filter(|d| ids.contains(&d.id))
            .collect(),
        _ => selected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str, index: u32) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "id": id, "index": index, "case": "c", "region": null, "az": null, "type": null,
            "ami": null, "state": "running", "public_dns": null, "public_ip": null,
            "private_ip": null, "private_dns": null, "address": null,
            "ssh": {"user": "u", "port": 22}, "launched_at": null,
        }))
        .unwrap()
    }

    #[test]
    fn a_jobs_follow_ups_go_to_the_hosts_it_started_on_unless_a_selection_is_given() {
        let all = || vec![d("i-00000001", 1), d("i-00000002", 2), d("i-00000003", 3)];
        let started: BTreeSet<String> = ["i-00000002".to_owned()].into();
        let ids = |v: Vec<Descriptor>| v.into_iter().map(|d| d.index).collect::<Vec<_>>();
        assert_eq!(ids(follow_up_hosts(all(), Some(&started), false)), [2]);
        assert_eq!(ids(follow_up_hosts(all(), Some(&started), true)), [1, 2, 3]);
        assert_eq!(ids(follow_up_hosts(all(), None, false)), [1, 2, 3]);

        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        record(dir.path(), "ab", &["i-00000001".into()]).unwrap();
        record(dir.path(), "ab", &["i-00000003".into()]).unwrap();
        record(dir.path(), "cd", &["i-00000002".into()]).unwrap();
        let jobs = load(dir.path()).unwrap();
        assert_eq!(jobs["ab"].len(), 2);
        assert_eq!(jobs["cd"].len(), 1);
        std::fs::write(dir.path().join(FILE), "[").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
