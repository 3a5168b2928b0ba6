//! What the EC2 calls take and give, as the tools' own data: an instance as described, a
//! launch request (serialisable: the case state records it before it is sent), an image, an
//! instance type, a root volume. What does not belong here: the calls (mod.rs).

use super::state_of;
use crate::case::descriptor::{Descriptor, InstanceState};
use crate::config::AddressMode;
use aws_sdk_ec2::types::Instance;
use std::collections::BTreeMap;

/// What the tools need to know of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInfo {
    pub id: String,
    pub state: InstanceState,
    pub az: Option<String>,
    pub instance_type: Option<String>,
    pub ami: Option<String>,
    pub public_dns: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub private_dns: Option<String>,
    pub launch_index: Option<i32>,
    pub launched_at: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// A spot instance (its lifecycle), not on-demand.
    pub spot: bool,
}

impl From<&Instance> for InstanceInfo {
    fn from(i: &Instance) -> InstanceInfo {
        let s = |o: Option<&str>| o.filter(|s| !s.is_empty()).map(str::to_owned);
        InstanceInfo {
            id: i.instance_id().unwrap_or_default().to_owned(),
            state: state_of(i.state()),
            az: s(i.placement().and_then(|p| p.availability_zone())),
            instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
            ami: s(i.image_id()),
            public_dns: s(i.public_dns_name()),
            public_ip: s(i.public_ip_address()),
            private_ip: s(i.private_ip_address()),
            private_dns: s(i.private_dns_name()),
            launch_index: i.ami_launch_index(),
            spot: i.instance_lifecycle().is_some_and(|l| l.as_str() == "spot"),
            launched_at: i
                .launch_time()
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
            tags: i
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        }
    }
}

impl InstanceInfo {
    /// Take what AWS says of the instance into its descriptor; true when anything changed.
    pub fn update(&self, d: &mut Descriptor, mode: AddressMode) -> bool {
        let before = d.clone();
        d.state = Some(self.state);
        d.az = self.az.clone().or(d.az.take());
        d.instance_type = self.instance_type.clone().or(d.instance_type.take());
        d.ami = self.ami.clone().or(d.ami.take());
        d.public_dns = self.public_dns.clone();
        d.public_ip = self.public_ip.clone();
        d.private_ip = self.private_ip.clone().or(d.private_ip.take());
        d.private_dns = self.private_dns.clone().or(d.private_dns.take());
        d.launched_at = self.launched_at.clone().or(d.launched_at.take());
        d.address = mode.pick(
            d.public_dns.as_deref(),
            d.public_ip.as_deref(),
            d.private_ip.as_deref(),
        );
        *d != before
    }
}

/// One RunInstances request (recorded in the case state before it is sent: see
/// [`crate::case::store::InFlight`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchSpec {
    pub ami: String,
    pub instance_type: String,
    pub count: u32,
    pub key_name: Option<String>,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
    pub client_token: String,
    pub tags: Vec<(String, String)>,
    /// Launch at least this many (spot fallback asks for 1..=count); default: count.
    pub min_count: Option<u32>,
    pub spot: bool,
    /// The user data, base64-encoded as RunInstances takes it (crate::userdata: the TTL
    /// shutdown and the user's own part).
    pub user_data: Option<String>,
    /// A shutdown from inside the instance terminates it.
    pub terminate_on_shutdown: bool,
    /// Launch into this placement group.
    pub placement_group: Option<String>,
    /// The metadata service asked for (`None` in a request recorded before it was an
    /// option: a recorded request is sent again exactly as it was).
    #[serde(default)]
    pub metadata: Option<crate::config::Imds>,
    /// The root volume's mapping (`None`: the AMI's as it is).
    #[serde(default)]
    pub root_volume: Option<RootVolume>,
    /// The instance profile, by name or ARN.
    #[serde(default)]
    pub iam_profile: Option<String>,
}

/// What a launch needs to know of its AMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub root: Option<ImageRoot>,
    /// `x86_64`, `arm64`, … as EC2 names it.
    pub architecture: Option<String>,
}

/// An instance type, as DescribeInstanceTypes has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeInfo {
    /// The architectures it runs (`x86_64`, `arm64`).
    pub archs: Vec<String>,
    /// Its default vCPUs.
    pub vcpus: Option<u32>,
}

/// An AMI's root device: its name and its snapshot's size (GB), if the image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRoot {
    pub device: String,
    pub size_gb: Option<u32>,
}

/// The root volume of a launch: on the AMI's root device, deleted with the instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootVolume {
    /// The AMI's root device name (`/dev/xvda`, `/dev/sda1`).
    pub device: String,
    /// GB; `None`: the AMI's snapshot size.
    pub size_gb: Option<u32>,
    pub volume_type: String,
    pub encrypted: bool,
}
