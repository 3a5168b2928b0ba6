//! How hosts are reached, resolved: the SSH settings (user, key, port, address mode, host-key
//! checking, a bastion), the transport (SSH or SSM), and the grammar of their values. What
//! does not belong here: connecting (remote/ssh.rs), the flags (cli/hosts.rs).

use super::AddressMode;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach instances over SSH. `user`, `port` and `address` are set only by a flag or
/// the environment and then beat what a descriptor recorded; the `fallback_*` values (a
/// settings file, else the default) apply where neither says. Serialisable: a tool hands it
/// to the case's session holder with each request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SshConfig {
    pub user: Option<String>,
    pub identity: Option<PathBuf>,
    pub port: Option<u16>,
    pub address: Option<AddressMode>,
    pub fallback_user: String,
    pub fallback_port: u16,
    pub fallback_address: AddressMode,
    /// `EC2_TOOLS_SSH_ALLOW`: when set, no connection leaves these networks.
    pub allow: Option<Vec<IpNet>>,
    /// `connect_timeout`: how long one login may take, TCP to shell (the bounds derived from it are [`SshConfig::holder_quiet_limit`], [`SshConfig::holder_start_limit`] and [`SshConfig::bastion_retry_after`]).
    pub connect_timeout: Duration,
    /// `--accept-new-host-key`: a changed host key is accepted and recorded (re-pinned) in
    /// the descriptors of this test-case directory. Never a setting: a deliberate act.
    pub repin: Option<PathBuf>,
    /// `--jump`: every connection goes through one session to this bastion.
    pub jump: Option<Jump>,
    /// While an instance boots, a refused login is normal (cloud-init installs the key after
    /// sshd starts); refused this long, it is a wrong user or key: the host fails early.
    pub auth_grace: Duration,
    /// Warm sessions: the case's session holder keeps logins open this long after the last
    /// use (`None`: off, every run logs in afresh).
    pub persist: Option<Duration>,
    /// `host_key_check`: how a host key is trusted at first contact.
    pub host_key_check: HostKeyCheck,
    /// `transport` when set (flag, environment or file): how commands reach the hosts;
    /// `None`: each descriptor's (what ec2-create launched it for), else SSH.
    pub transport: Option<Transport>,
    /// `ssm_bucket`: where SSM writes commands' whole output (past its inline limits).
    pub ssm_bucket: Option<String>,
}

/// How commands, copies and readiness checks reach the instances (`transport`): a login over
/// SSH from this machine, or AWS Systems Manager's Run Command (no inbound port at all; AWS
/// fans out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    #[default]
    Ssh,
    Ssm,
}

impl Transport {
    pub fn parse(s: &str) -> Result<Transport, String> {
        match s {
            "ssh" => Ok(Transport::Ssh),
            "ssm" => Ok(Transport::Ssm),
            _ => Err(format!("{s:?}: expected ssh or ssm")),
        }
    }
}

/// How a host key is trusted at first contact (`host_key_check`). On AWS cloud-init prints
/// the host keys to the instance's console (GetConsoleOutput), so the key a host offers can
/// be checked against what the instance itself published instead of trusted blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyCheck {
    /// Wait for the console's keys (within the wait's timeout); without them, refuse.
    Console,
    /// The console's keys when they are there; else trust on first use, say so, and check
    /// the pin against the console when it has them (ec2-status, the next tool).
    #[default]
    ConsoleOrTofu,
    /// Trust on first use; the console is never read.
    Tofu,
}

impl HostKeyCheck {
    pub fn parse(s: &str) -> Result<HostKeyCheck, String> {
        match s {
            "console" => Ok(HostKeyCheck::Console),
            "console-or-tofu" => Ok(HostKeyCheck::ConsoleOrTofu),
            "tofu" => Ok(HostKeyCheck::Tofu),
            _ => Err(format!("{s:?}: expected console, console-or-tofu or tofu")),
        }
    }
}

/// A bastion: `[user@]host[:port]` (ssh's ProxyJump syntax); the user defaults to the
/// instances' login user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Jump {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    /// Where its host key is pinned (the test case's `.ec2-tools/jump.json`).
    pub pin: Option<PathBuf>,
}

impl Jump {
    pub fn parse(s: &str) -> Result<Jump, String> {
        let (user, host, port) = parse_host_spec(s)?;
        let port = port.unwrap_or(22);
        Ok(Jump {
            user,
            host,
            port,
            pin: None,
        })
    }
}

/// `[user@]host[:port]` (ssh's own syntax; `[v6]:port` too): user, host, and the port when
/// one is given.
pub fn parse_host_spec(s: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_owned()), r),
        Some(_) => return Err(format!("{s:?}: empty user before @")),
        None => (None, s),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|e| format!("{s:?}: port {p:?}: {e}"))?,
            ),
        ),
        _ => (rest, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{s:?}: expected [user@]host[:port]"));
    }
    Ok((user, host.to_owned(), port))
}

impl SshConfig {
    /// How long the session holder may send nothing, not even a heartbeat, before a tool
    /// gives up on it: one login's bound (the holder is logging in for us meanwhile).
    pub fn holder_quiet_limit(&self) -> Duration {
        self.connect_timeout
    }

    /// How long a session holder may take to start listening: one login's bound, at most
    /// 3 s (a holder slower than that is stuck; the tool then connects directly).
    pub fn holder_start_limit(&self) -> Duration {
        self.connect_timeout.min(Duration::from_secs(3))
    }

    /// How long a bastion whose login failed is not tried again: one login's bound, so the
    /// hosts behind a dead bastion fail with one login attempt, not one each.
    pub fn bastion_retry_after(&self) -> Duration {
        self.connect_timeout
    }

    /// Is this IP one we may connect to?
    pub fn allows(&self, ip: IpAddr) -> bool {
        match &self.allow {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }

    pub fn allow_list(&self) -> String {
        self.allow
            .as_ref()
            .map(|v| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    }

    /// The address mode new descriptors record.
    pub fn address_mode(&self) -> AddressMode {
        self.address.unwrap_or(self.fallback_address)
    }

    /// The login user new descriptors record.
    pub fn user_or_fallback(&self) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| self.fallback_user.clone())
    }

    /// The port new descriptors record.
    pub fn port_or_fallback(&self) -> u16 {
        self.port.unwrap_or(self.fallback_port)
    }
}
