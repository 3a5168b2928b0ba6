//! The last clock offset measured for each host (`.ec2-tools/clocks.json`): `--at` measures
//! every host's clock before a synchronized start, and `ec2-report` corrects each host's
//! timestamps by it, so results from skewed clocks still land in the right second.
//!
//! One JSON object, instance id → offset (host − this machine, seconds), the measurement's
//! round trip and when it was taken. A newer measurement replaces a host's older one; hosts
//! not measured keep theirs. What does not belong here: measuring (cmd/start_at.rs).

use crate::error::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// The file's name in the state directory.
pub const FILE: &str = "clocks.json";

/// One host's last measurement.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Clock {
    /// Host clock − this machine's clock, seconds.
    pub offset_s: f64,
    /// The round trip of the measurement, seconds (the offset is known to within half).
    pub rtt_s: f64,
    /// When it was measured, seconds since the epoch.
    pub at: f64,
}

/// Every host's last measurement (empty when none was ever taken). A broken file is an
/// error naming it: offsets silently lost would shift a report.
pub fn load(state_dir: &Path) -> Result<BTreeMap<String, Clock>> {
    super::store::load_state_file(&state_dir.join(FILE))
}

/// Record new measurements (atomically: written aside, then renamed).
pub fn save(state_dir: &Path, measured: &[(String, Clock)]) -> Result<()> {
    let mut all = load(state_dir).unwrap_or_default();
    for (id, c) in measured {
        all.insert(id.clone(), c.clone());
    }
    super::store::save_state_file(&state_dir.join(FILE), &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_measurement_replaces_a_hosts_older_one_and_keeps_the_rest() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).unwrap().is_empty());
        let c = |o: f64| Clock {
            offset_s: o,
            rtt_s: 0.001,
            at: 1.0,
        };
        save(d.path(), &[("i-1".into(), c(0.5)), ("i-2".into(), c(-1.0))]).unwrap();
        save(d.path(), &[("i-1".into(), c(0.25))]).unwrap();
        let all = load(d.path()).unwrap();
        assert_eq!((all["i-1"].offset_s, all["i-2"].offset_s), (0.25, -1.0));
        std::fs::write(d.path().join(FILE), "{").unwrap();
        assert_eq!(load(d.path()).unwrap_err().code, crate::error::Code::Usage);
    }
}
