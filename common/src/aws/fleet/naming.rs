//! What a launch's calls and instances are called and numbered, as pure functions with their
//! unit tests: the market, the ClientToken of a request, the case indexes of a launch's
//! instances, the capacity pools in order, the index an instance's tags give. What does not
//! belong here: the calls (mod.rs).

use crate::aws::ec2::{InstanceInfo, LaunchSpec, TAG_INDEX, TAG_INDEX_BASE, TAG_LAUNCH};
use crate::config::{LaunchConfig, SpotMode};
use std::collections::BTreeSet;

/// The market a launch call asks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Market {
    /// Spot capacity.
    Spot,
    /// On-demand capacity.
    OnDemand,
}

impl Market {
    pub(super) fn of(spot: bool) -> Market {
        if spot {
            Market::Spot
        } else {
            Market::OnDemand
        }
    }

    /// As tagged and recorded: `spot` or `on-demand`.
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::OnDemand => "on-demand",
        }
    }

    /// Its letter in a ClientToken.
    pub(super) fn letter(self) -> char {
        match self {
            Market::Spot => 's',
            Market::OnDemand => 'o',
        }
    }
}

/// The ClientToken of one RunInstances request: the case's nonce, the launch round, the
/// call within it, and a digest of the request itself (everything but the token). Two
/// different requests never share a token — AWS answers a reused token with other
/// parameters `IdempotentParameterMismatch` — and the same request recorded and sent again
/// after a crash carries the same one. At most 64 characters, as EC2 allows.
pub(crate) fn client_token(nonce: &str, round: u64, call: &str, spec: &LaunchSpec) -> String {
    use sha2::Digest;
    let mut unsigned = spec.clone();
    unsigned.client_token.clear();
    unsigned.tags.retain(|(k, _)| k != TAG_LAUNCH);
    let digest = sha2::Sha256::digest(serde_json::to_vec(&unsigned).expect("serializes"));
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("ec2-tools-{nonce}-{round}-{call}-{hex}");
    token.chars().take(64).collect()
}

/// Seconds since the epoch, now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The case indexes of one launch's instances, in the order given: `first` + AmiLaunchIndex
/// (or + position, when AWS gave none), each taken at most once; an index already `used`
/// (or given twice) becomes the next free one after everything in use. Saturating: no count
/// of instances can overflow it.
pub(crate) fn launch_indexes_to_indexes(
    first: u32,
    launch_indexes: &[Option<i32>],
    used: &BTreeSet<u32>,
) -> Vec<u32> {
    let mut taken = used.clone();
    let mut out = Vec::with_capacity(launch_indexes.len());
    for (k, li) in launch_indexes.iter().enumerate() {
        let offset = li
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or_else(|| u32::try_from(k).unwrap_or(u32::MAX));
        let mut index = first.saturating_add(offset);
        if taken.contains(&index) {
            index = taken.iter().next_back().map_or(1, |m| m.saturating_add(1));
        }
        taken.insert(index);
        out.push(index);
    }
    out
}

/// The markets a launch tries, in order (spot first when falling back to on-demand).
pub(super) fn markets(mode: SpotMode) -> &'static [bool] {
    match mode {
        SpotMode::Off => &[false],
        SpotMode::On => &[true],
        SpotMode::Fallback => &[true, false],
    }
}

/// The capacity pools of a launch: each type in each subnet (or the default VPC), in order.
pub(super) fn pools(launch: &LaunchConfig) -> Vec<(String, Option<String>)> {
    let subnets: Vec<Option<String>> = if launch.subnets.is_empty() {
        vec![None]
    } else {
        launch.subnets.iter().cloned().map(Some).collect()
    };
    launch
        .instance_types
        .iter()
        .flat_map(|t| subnets.iter().map(move |s| (t.clone(), s.clone())))
        .collect()
}

pub(super) fn pool_label(itype: &str, subnet: Option<&str>) -> String {
    match subnet {
        Some(s) => format!("{itype} in {s}"),
        None => format!("{itype} in the default VPC"),
    }
}

/// The index an instance's tags give: `ec2-tools:index`, else launch base + AmiLaunchIndex.
pub fn tag_index(i: &InstanceInfo) -> Option<u32> {
    if let Some(n) = i.tags.get(TAG_INDEX).and_then(|v| v.parse().ok()) {
        return Some(n);
    }
    let base: u32 = i.tags.get(TAG_INDEX_BASE)?.parse().ok()?;
    Some(base + i.launch_index.unwrap_or(0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ec2::TAG_CASE;

    fn spec(count: u32) -> LaunchSpec {
        LaunchSpec {
            ami: "ami-1".into(),
            instance_type: "t3.micro".into(),
            count,
            key_name: None,
            subnet: None,
            security_groups: vec![],
            client_token: String::new(),
            tags: vec![(TAG_CASE.into(), "c".into())],
            min_count: Some(1),
            spot: false,
            user_data: None,
            terminate_on_shutdown: false,
            placement_group: None,
            metadata: None,
            root_volume: None,
            iam_profile: None,
        }
    }

    #[test]
    fn a_client_token_is_never_shared_by_two_different_requests() {
        // The defect: a rerun sent the crashed round's token with another count.
        let a = client_token("0123456789abcdef", 1, "o0-1", &spec(20));
        let b = client_token("0123456789abcdef", 1, "o0-1", &spec(7));
        assert_ne!(a, b);
        // The same request (recorded, sent again after a crash): the same token, whatever
        // token and launch tag it already carried.
        let mut again = spec(20);
        again.client_token = a.clone();
        again.tags.push((TAG_LAUNCH.into(), a.clone()));
        assert_eq!(client_token("0123456789abcdef", 1, "o0-1", &again), a);
        assert!(a.len() <= 64 && a.is_ascii(), "{a}");
        let long = client_token(&"f".repeat(40), u64::MAX, "o99-4294967295", &spec(1));
        assert!(long.len() <= 64, "{long}");
    }

    #[test]
    fn recovered_instances_keep_their_launch_indexes_and_collisions_take_the_next_free() {
        let none = BTreeSet::new();
        assert_eq!(
            launch_indexes_to_indexes(1, &[Some(0), Some(1), Some(2)], &none),
            vec![1, 2, 3]
        );
        // Out of order, or with AmiLaunchIndex missing (position then).
        assert_eq!(
            launch_indexes_to_indexes(5, &[Some(2), None, Some(0)], &none),
            vec![7, 6, 5]
        );
        // An index already used: the next free one after everything in use.
        let used = BTreeSet::from([1, 2, 9]);
        assert_eq!(
            launch_indexes_to_indexes(1, &[Some(0), Some(2), Some(2)], &used),
            vec![10, 3, 11]
        );
        // No arithmetic overflows, whatever AWS answers.
        let top = BTreeSet::from([u32::MAX]);
        let v = launch_indexes_to_indexes(u32::MAX, &[Some(i32::MAX), Some(-1)], &top);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn pools_are_each_type_in_each_subnet_in_order() {
        let l = LaunchConfig {
            ami: crate::config::AmiSpec::Alias(0),
            ami_configured: false,
            max_hourly_cost: None,
            user_data: None,
            record_user_data: None,
            instance_types: vec!["a".into(), "b".into()],
            key_name: None,
            subnets: vec!["s1".into(), "s2".into()],
            security_groups: vec![],
            ssh_cidr: None,
            open_ports: vec![],
            launch_burst: 1000,
            launch_rate: 2.0,
            ttl: None,
            spot: SpotMode::Off,
            name_tags: true,
            placement: None,
            network_auto: false,
            network_cidr: "10.0.0.0/16".parse().unwrap(),
            instance: crate::config::InstanceOptions {
                imds: crate::config::Imds::V2,
                volume_size: None,
                volume_type: "gp3".into(),
                volume_encrypted: true,
                iam_profile: None,
                tags: vec![],
            },
        };
        let p: Vec<String> = pools(&l)
            .iter()
            .map(|(t, s)| format!("{t}/{}", s.as_deref().unwrap_or("-")))
            .collect();
        assert_eq!(p, ["a/s1", "a/s2", "b/s1", "b/s2"]);
    }
}
