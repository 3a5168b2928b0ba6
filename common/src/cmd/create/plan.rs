//! What ec2-create does to the case, decided: a pure function of what the case holds and what
//! was asked (reuse, start, adopt, trim, launch the missing), unit-tested here. What does not
//! belong here: finding out what the case holds, and carrying the plan out (mod.rs).

use crate::case::descriptor::{Descriptor, InstanceState};
use std::collections::BTreeSet;

/// What the user asked of the case.
#[derive(Debug, Clone, Default)]
pub(crate) struct Want {
    pub count: u32,
    pub role: Option<String>,
    pub add: bool,
    pub max: Option<u32>,
    /// `--min-ready`: a partial fleet this large is accepted (the quota check launches what
    /// fits).
    pub min_ready: Option<u32>,
}

/// An instance as the plan sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub id: String,
    /// For an untracked instance: the index its tags give, if any.
    pub index: Option<u32>,
    pub role: Option<String>,
    pub state: InstanceState,
}

impl Member {
    fn of(d: &Descriptor) -> Member {
        Member {
            id: d.id.clone(),
            index: Some(d.index),
            role: d.role().map(str::to_owned),
            state: d.state(),
        }
    }
}

/// What to do to the case.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// Untracked instances of the case to write descriptors for, at these indexes.
    pub adopt: Vec<(String, u32)>,
    /// Members above `--max`, to terminate: the highest indexes.
    pub trim: Vec<String>,
    /// Stopped (or stopping) members to start.
    pub start: Vec<String>,
    /// Launch this many, from this index on.
    pub launch: Option<(u32, u32)>,
    /// The members kept, in index order (launches come on top).
    pub keep: Vec<String>,
}

/// Decide: adopt every untracked instance (its tagged index when free, else the next one);
/// of the role's members, trim above `--max` (highest index first), start the stopped ones,
/// reuse the rest whatever their state (a running instance that does not answer SSH is the
/// wait's to report, not a reason to launch another); launch what is missing (`--add`: all N)
/// after the highest index in use.
pub(crate) fn plan(tracked: &[Descriptor], untracked: &[Member], want: &Want) -> Plan {
    let mut p = Plan::default();
    let mut all: Vec<(u32, Member)> = tracked.iter().map(|d| (d.index, Member::of(d))).collect();
    let mut used: BTreeSet<u32> = tracked.iter().map(|d| d.index).collect();
    let mut untracked = untracked.to_vec();
    untracked.sort_by_key(|u| (u.index.unwrap_or(u32::MAX), u.id.clone()));
    for u in untracked {
        let index = match u.index {
            Some(i) if !used.contains(&i) => i,
            _ => used.iter().max().copied().unwrap_or(0) + 1,
        };
        used.insert(index);
        p.adopt.push((u.id.clone(), index));
        all.push((index, u));
    }
    all.sort_by_key(|(i, _)| *i);
    // Hosts of your own hold their indexes but are never counted, started or trimmed.
    let mut members: Vec<&(u32, Member)> = all
        .iter()
        .filter(|(_, m)| m.role == want.role && m.state != InstanceState::Static)
        .collect();
    let missing = if want.add {
        want.count
    } else {
        want.count.saturating_sub(members.len() as u32)
    };
    if let Some(max) = want.max {
        if members.len() as u32 > max {
            p.trim = members
                .split_off(max as usize)
                .iter()
                .map(|(_, m)| m.id.clone())
                .collect();
        }
    }
    p.start = members
        .iter()
        .filter(|(_, m)| matches!(m.state, InstanceState::Stopped | InstanceState::Stopping))
        .map(|(_, m)| m.id.clone())
        .collect();
    p.keep = members.iter().map(|(_, m)| m.id.clone()).collect();
    if missing > 0 {
        p.launch = Some((used.iter().max().copied().unwrap_or(0) + 1, missing));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(index: u32, role: Option<&str>, state: InstanceState) -> Descriptor {
        let mut d: Descriptor = serde_json::from_value(serde_json::json!({
            "id": format!("i-{index:08x}"), "index": index, "case": "c", "region": null,
            "az": null, "type": null, "ami": null, "state": state, "public_dns": null,
            "public_ip": null, "private_ip": null, "private_dns": null, "address": null,
            "ssh": {"user": "u", "port": 22}, "launched_at": null,
        }))
        .unwrap();
        if let Some(r) = role {
            d.extra.insert("role".into(), r.into());
        }
        d
    }

    fn want(count: u32) -> Want {
        Want {
            count,
            ..Default::default()
        }
    }

    fn id(index: u32) -> String {
        format!("i-{index:08x}")
    }

    use InstanceState::{Running, Stopped, Stopping};

    #[test]
    fn running_instances_are_reused_and_only_the_missing_launched() {
        let have = [d(1, None, Running), d(2, None, Running)];
        let p = plan(&have, &[], &want(3));
        assert_eq!(p.keep, vec![id(1), id(2)]);
        assert_eq!(p.launch, Some((3, 1)));
        assert!(p.adopt.is_empty() && p.trim.is_empty() && p.start.is_empty());
        assert_eq!(plan(&have, &[], &want(2)).launch, None);
    }

    #[test]
    fn stopped_and_stopping_members_are_started_not_replaced() {
        let have = [
            d(1, None, Stopped),
            d(2, None, Running),
            d(3, None, Stopping),
        ];
        let p = plan(&have, &[], &want(3));
        assert_eq!(p.start, vec![id(1), id(3)]);
        assert_eq!(p.launch, None);
    }

    #[test]
    fn untracked_instances_are_adopted_at_their_tagged_index_or_the_next_free_one() {
        let have = [d(1, None, Running)];
        let lost = [
            Member {
                id: "i-0000aaaa".into(),
                index: Some(1), // taken: gets the next free index
                role: None,
                state: Running,
            },
            Member {
                id: "i-0000bbbb".into(),
                index: Some(2),
                role: None,
                state: Stopped,
            },
        ];
        let p = plan(&have, &lost, &want(3));
        assert_eq!(
            p.adopt,
            vec![("i-0000aaaa".into(), 2), ("i-0000bbbb".into(), 3)]
        );
        // The lost instances count towards N (no duplicate launch); a stopped one is started.
        assert_eq!(p.launch, None);
        assert_eq!(p.start, vec!["i-0000bbbb".to_owned()]);
    }

    #[test]
    fn max_trims_the_highest_indexes_first() {
        let have: Vec<Descriptor> = (1..=5).map(|i| d(i, None, Running)).collect();
        let p = plan(
            &have,
            &[],
            &Want {
                count: 2,
                max: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(p.trim, vec![id(4), id(5)]);
        assert_eq!(p.keep, vec![id(1), id(2), id(3)]);
        assert_eq!(p.launch, None);
    }

    #[test]
    fn add_launches_n_more_after_the_highest_index_in_use() {
        let have = [d(1, None, Running), d(7, Some("master"), Running)];
        let p = plan(
            &have,
            &[],
            &Want {
                count: 2,
                add: true,
                ..Default::default()
            },
        );
        assert_eq!(p.launch, Some((8, 2)));
    }

    #[test]
    fn n_counts_only_the_role_asked_for() {
        let have = [
            d(1, Some("master"), Running),
            d(2, Some("slave"), Running),
            d(3, Some("slave"), Stopped),
        ];
        let slaves = plan(
            &have,
            &[],
            &Want {
                count: 3,
                role: Some("slave".into()),
                ..Default::default()
            },
        );
        assert_eq!(slaves.keep, vec![id(2), id(3)]);
        assert_eq!(slaves.start, vec![id(3)]);
        assert_eq!(slaves.launch, Some((4, 1)));
        let masters = plan(
            &have,
            &[],
            &Want {
                count: 1,
                role: Some("master".into()),
                ..Default::default()
            },
        );
        assert_eq!((masters.keep, masters.launch), (vec![id(1)], None));
        // No role: instances of a role are not counted.
        assert_eq!(plan(&have, &[], &want(1)).launch, Some((4, 1)));
    }

    #[test]
    fn a_running_but_unreachable_instance_is_kept_for_the_wait_to_report() {
        // No address, or one that refuses SSH: the plan cannot know, and must not launch a
        // second instance for it (that would grow the fleet on every rerun).
        let mut lost = d(1, None, Running);
        lost.address = None;
        let p = plan(&[lost], &[], &want(1));
        assert_eq!((p.keep, p.launch), (vec![id(1)], None));
    }
}
