//! The instance descriptor: the contract between the tools and the user's scripts.
//!
//! One JSON object per instance (the file format is the store's business, store.rs), and the
//! vocabulary every layer below shares: what an instance id looks like, the instance states.
//! Keys this version does not know are kept when a descriptor is rewritten. What does not
//! belong here: files, AWS calls (aws/ turns what AWS says into descriptor updates), SSH.

use crate::config::AddressMode;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// An instance's state, as EC2 names it. Instances in the [live](InstanceState::is_live)
/// states still cost money or will again.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Launched or starting; not yet running.
    Pending,
    /// Running (which is not yet "accepts SSH").
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Terminated: gone for good.
    Terminated,
    /// Being stopped.
    Stopping,
    /// Stopped: its disks still cost money; `ec2-start` brings it back.
    Stopped,
    /// A host of your own (`ec2-hosts add`), not an EC2 instance: reached over SSH, never
    /// asked of AWS.
    Static,
    /// Not said, or not known to AWS.
    #[serde(other)]
    Unknown,
}

impl InstanceState {
    /// The states of an instance that still costs money, or will again.
    pub const LIVE: [InstanceState; 4] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::Stopping,
        InstanceState::Stopped,
    ];

    /// The state EC2 names `s` (`shutting-down`, …); anything else is [`InstanceState::Unknown`].
    pub fn parse(s: &str) -> InstanceState {
        match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "static" => InstanceState::Static,
            _ => InstanceState::Unknown,
        }
    }

    /// EC2's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Static => "static",
            InstanceState::Unknown => "unknown",
        }
    }

    /// Still costs money, or will again once started.
    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }

    /// On its way out, or gone.
    pub fn is_gone(self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an instance is logged in to, as recorded at launch or first contact.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct SshInfo {
    /// The remote user (`ubuntu`, `ec2-user`, …).
    pub user: Option<String>,
    /// The SSH port.
    pub port: Option<u16>,
    /// SHA-256 of the host key seen at the first login (trust on first use), base64.
    #[serde(default)]
    pub host_key: Option<String>,
    /// The host's public key as first seen (`ssh-ed25519 AAAA…`): what `.ec2-tools/known_hosts`
    /// pins for OpenSSH's own tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_public_key: Option<String>,
    /// What the pin was checked against: `console` (it is among the keys the instance's
    /// console published) or `first-use` (nothing to check it against yet: the next tool
    /// that connects, or ec2-status, checks it once the console has the keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key_source: Option<String>,
    /// The fingerprints the instance's console published, when read this run (never
    /// stored): a host key offered or pinned that is not among them is refused.
    #[serde(skip)]
    pub console_keys: Option<Vec<String>>,
    /// How it is reached when no setting says (`ssm`: launched with no inbound port, for
    /// Systems Manager; absent: SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<crate::config::Transport>,
}

/// [`SshInfo::host_key_source`] of a pin checked against the console.
pub const FROM_CONSOLE: &str = "console";
/// [`SshInfo::host_key_source`] of a pin trusted on first use.
pub const FIRST_USE: &str = "first-use";

impl SshInfo {
    /// A pin still to be checked against the console (trusted on first use, or recorded
    /// before the tools read consoles).
    pub fn unverified(&self) -> bool {
        self.host_key.is_some() && self.host_key_source.as_deref() != Some(FROM_CONSOLE)
    }
}

/// One instance of a test case: the JSON file named by its id in the test-case directory,
/// which scripts read (`jq -r .address i-*`) and the tools keep current.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// The instance id (`i-0abc…`), or `h-` and 8 hex digits for a host of your own.
    pub id: String,
    /// 1-based, stable within the case.
    pub index: u32,
    /// The test case's name (the `ec2-tools:case` tag).
    pub case: String,
    /// The AWS region.
    pub region: Option<String>,
    /// The availability zone.
    pub az: Option<String>,
    /// The instance type (`c6i.large`).
    #[serde(rename = "type")]
    pub instance_type: Option<String>,
    /// The image it was launched from.
    pub ami: Option<String>,
    /// The state last seen.
    pub state: Option<InstanceState>,
    /// Public DNS name, when it has one.
    pub public_dns: Option<String>,
    /// Public IPv4 address, when it has one.
    pub public_ip: Option<String>,
    /// Private IPv4 address.
    pub private_ip: Option<String>,
    /// Private DNS name.
    pub private_dns: Option<String>,
    /// The address the tools connect to.
    pub address: Option<String>,
    /// How it is logged in to, and its pinned host key.
    pub ssh: SshInfo,
    /// When EC2 launched it (RFC 3339).
    pub launched_at: Option<String>,
    /// Keys written by other versions or by hand: kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl crate::config::SshConfig {
    /// How `hosts` are reached: the setting, else the first descriptor's, else SSH. (Here,
    /// beside the descriptors it reads: the configuration knows nothing of them.)
    pub fn transport_for(&self, hosts: &[Descriptor]) -> crate::config::Transport {
        self.transport
            .or_else(|| hosts.iter().find_map(|d| d.ssh.transport))
            .unwrap_or_default()
    }
}

impl Descriptor {
    /// The address under an explicit mode, or the recorded one (a static host has only the
    /// one it was added with).
    pub(crate) fn address_for(&self, mode: Option<AddressMode>) -> Option<String> {
        if self.is_static() {
            return self.address.clone().filter(|a| !a.is_empty());
        }
        match mode {
            Some(m) => m.pick(
                self.public_dns.as_deref(),
                self.public_ip.as_deref(),
                self.private_ip.as_deref(),
            ),
            None => self.address.clone().filter(|a| !a.is_empty()),
        }
    }

    /// Launched less than `within` ago (by the launch time AWS gave): EC2 may not know the id
    /// everywhere yet, so "not found" does not mean gone.
    pub(crate) fn is_fresh(&self, within: std::time::Duration) -> bool {
        self.launched_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .is_some_and(|t| {
                std::time::SystemTime::now()
                    .duration_since(t)
                    .map_or(true, |age| age < within)
            })
    }

    /// A host of your own (`ec2-hosts add`): the AWS tools leave it alone.
    pub fn is_static(&self) -> bool {
        self.state == Some(InstanceState::Static)
    }

    /// The role recorded at launch (`ec2-create --role`), if any.
    pub fn role(&self) -> Option<&str> {
        self.extra.get("role").and_then(|v| v.as_str())
    }

    /// The recorded state (unknown when none was recorded).
    pub fn state(&self) -> InstanceState {
        self.state.unwrap_or(InstanceState::Unknown)
    }

    /// The market recorded at launch (`spot`, `on-demand`), if any.
    pub fn market(&self) -> Option<&str> {
        self.extra.get("market").and_then(|v| v.as_str())
    }

    /// `i-0abc (#3)`, for messages.
    pub fn label(&self) -> String {
        format!("{} (#{})", self.id, self.index)
    }

    /// What a tool prints of an instance it launched or brought back: `<id> <address>`, or
    /// under `--json` the fields a script needs (README, "Machine output").
    pub fn print_record(&self) {
        let json = serde_json::json!({
            "id": self.id, "index": self.index, "role": self.role(), "state": self.state,
            "address": self.address, "private_ip": self.private_ip, "public_ip": self.public_ip,
            "private_dns": self.private_dns, "public_dns": self.public_dns, "az": self.az,
            "type": self.instance_type, "ami": self.ami, "market": self.market(),
        });
        let text = format!("{} {}", self.id, self.address.as_deref().unwrap_or("-"));
        crate::output::record(json, text);
    }
}

/// `h-` and 8 hex digits: the name of a static host's descriptor (`ec2-hosts add`).
pub fn is_static_id(name: &str) -> bool {
    name.strip_prefix("h-")
        .is_some_and(|hex| hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An instance id or a static host's id: the names the store owns.
pub fn is_descriptor_id(name: &str) -> bool {
    is_instance_id(name) || is_static_id(name)
}

/// `i-` and 8 or 17 hex digits: an EC2 instance id.
pub fn is_instance_id(name: &str) -> bool {
    name.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Parse a descriptor file's text; `id` is the file's name.
pub fn parse(id: &str, text: &str) -> Result<Descriptor> {
    let d: Descriptor = serde_json::from_str(text)
        .map_err(|e| Error::input(format!("{id}: descriptor is not valid JSON: {e}")))?;
    if d.id != id {
        return Err(Error::input(format!(
            "{id}: descriptor names another instance ({}); the file name is the instance id",
            d.id
        )));
    }
    if d.index == 0 {
        return Err(Error::input(format!(
            "{id}: descriptor index must be 1 or more"
        )));
    }
    Ok(d)
}

/// The case's host list as remote commands get it (`$CURRENT_HOSTS`): a line per host in index
/// order, `<index> <id> <role> <private address> <public address>`, `-` for what it lacks.
pub fn hosts_list(descs: &[Descriptor]) -> String {
    let mut sorted: Vec<&Descriptor> = descs.iter().collect();
    sorted.sort_by_key(|d| d.index);
    let or = |v: Option<&str>| {
        v.filter(|s| !s.is_empty())
            .unwrap_or("-")
            .replace(char::is_whitespace, "_")
    };
    sorted
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {}\n",
                d.index,
                d.id,
                or(d.role()),
                or(d.private_ip.as_deref().or(d.address.as_deref())),
                or(d.public_ip.as_deref())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_names_are_recognised() {
        assert!(is_instance_id("i-0123abcd"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(!is_instance_id("i-xyz"));
        assert!(!is_instance_id("README.md"));
        assert!(!is_instance_id(".i-0123abcd.tmp.5"));
    }

    #[test]
    fn states_read_and_write_as_ec2_names_them() {
        for s in InstanceState::LIVE
            .into_iter()
            .chain([InstanceState::ShuttingDown, InstanceState::Terminated])
        {
            assert_eq!(InstanceState::parse(s.as_str()), s);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<InstanceState>(&json).unwrap(), s);
        }
        assert_eq!(
            serde_json::from_str::<InstanceState>("\"rebooting\"").unwrap(),
            InstanceState::Unknown
        );
        assert!(InstanceState::Stopped.is_live() && !InstanceState::ShuttingDown.is_live());
    }
}
