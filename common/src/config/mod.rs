//! The resolved configuration: what the tools will do, as plain data (like fd's config.rs).
//!
//! These types are built by cli/ from the flags and the settings layers (settings/) and
//! then only read. The grammar of setting values (durations, CIDR lists, address and spot
//! modes) lives beside the types it produces: here, in ssh.rs (how hosts are reached) and in
//! launch.rs (what a launch asks of EC2). What does not belong here: clap, reading
//! files or the environment, anything that talks to AWS or a host.

mod launch;
mod ssh;
pub use launch::{
    parse_network, parse_tags, parse_usd, parse_volume_size, parse_volume_type, Imds,
    InstanceOptions, LaunchConfig, Placement, SpotMode,
};
pub use ssh::{parse_host_spec, HostKeyCheck, Jump, SshConfig, Transport};

pub use crate::catalog::AmiSpec;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What every tool needs: where the test case lives and what it is called.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub case: String,
    /// Flag, `AWS_REGION` or a settings file; `None` leaves it to the aws-config chain
    /// (the profile's region).
    pub region: Option<String>,
}

/// Which of an instance's addresses the tools connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AddressMode {
    /// The first non-empty of public DNS, public IP, private IP
    #[default]
    Auto,
    PublicDns,
    PublicIp,
    PrivateIp,
}

impl AddressMode {
    /// Pick the address from (public DNS, public IP, private IP).
    pub fn pick(
        self,
        public_dns: Option<&str>,
        public_ip: Option<&str>,
        private_ip: Option<&str>,
    ) -> Option<String> {
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        match self {
            AddressMode::Auto => nonempty(public_dns)
                .or_else(|| nonempty(public_ip))
                .or_else(|| nonempty(private_ip)),
            AddressMode::PublicDns => nonempty(public_dns),
            AddressMode::PublicIp => nonempty(public_ip),
            AddressMode::PrivateIp => nonempty(private_ip),
        }
    }

    pub fn parse(s: &str) -> Result<AddressMode, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(AddressMode::Auto),
            "public-dns" => Ok(AddressMode::PublicDns),
            "public-ip" => Ok(AddressMode::PublicIp),
            "private-ip" => Ok(AddressMode::PrivateIp),
            _ => Err(format!(
                "{s:?}: expected auto, public-dns, public-ip or private-ip"
            )),
        }
    }
}

/// How a run's per-host output is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// pdsh-style `<address>: ` prefixed lines, as they arrive.
    #[default]
    Prefix,
    /// Each distinct stdout once, with the hosts that produced it.
    Gather,
    /// One JSON object per host.
    Json,
    /// Nothing printed: each host's stdout and stderr kept for the caller (the library).
    Capture,
}

/// What happens to each host's output and result.
#[derive(Debug, Clone, Default)]
pub struct OutputConfig {
    pub mode: OutputMode,
    pub out_dir: Option<PathBuf>,
    pub failed_to: Option<PathBuf>,
    /// No summary line when every host succeeded (`-q`).
    pub quiet: bool,
    /// What names a host in prefixes and host sets (`--label`).
    pub label: Label,
}

/// What names a host in output: pdsh users read short names, scripts want ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Label {
    /// The address connected to (`127.0.0.5`, `ec2-3-80-…compute-1.amazonaws.com`).
    #[default]
    Address,
    /// The index: `3`.
    Index,
    /// The instance id: `i-0abc…`.
    Id,
    /// `<case>.<index>`, the instance's Name tag.
    Name,
    /// No prefix at all (pdsh -N): one host's output, or output that names itself.
    None,
}

impl Label {
    pub fn parse(s: &str) -> Result<Label, String> {
        match s {
            "address" => Ok(Label::Address),
            "index" => Ok(Label::Index),
            "id" => Ok(Label::Id),
            "name" => Ok(Label::Name),
            "none" => Ok(Label::None),
            _ => Err(format!("{s:?}: expected index, id, name, address or none")),
        }
    }
}

/// `90m`, `2h`; `off`, `none`, `0` disable.
pub fn parse_ttl(s: &str) -> Result<Option<Duration>, String> {
    match s {
        "off" | "none" | "0" => Ok(None),
        _ => parse_duration(s).map(Some),
    }
}

/// `on`/`off` (and true/false, yes/no, 1/0).
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

/// `30`, `30s`, `5m`, `1h30m`: a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs >= 0.0 && secs.is_finite() {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// One CIDR; a bare address means that one host.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR (like 127.0.0.0/8)"))
}

/// A comma list of CIDRs.
pub fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_cidr)
        .collect()
}

/// A comma list of words (empty items dropped).
/// `80,443,8080-8090`: TCP ports (a range counts each port).
pub fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in parse_list(s)? {
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{p:?} is not a TCP port (1-65535)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if a > b || b - a > 1000 {
                    return Err(format!("{part:?}: a range is LOW-HIGH, at most 1000 ports"));
                }
                out.extend(a..=b);
            }
            None => out.push(port(&part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A positive whole number (`1000`).
pub fn parse_positive(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a positive whole number"))
}

/// A positive rate (`2`, `0.5`).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("{s:?} is not a positive number"))
}

/// A comma list with at least one element.
pub fn parse_nonempty_list(s: &str) -> Result<Vec<String>, String> {
    let v = parse_list(s)?;
    if v.is_empty() {
        return Err("an empty list".into());
    }
    Ok(v)
}

pub fn parse_list(s: &str) -> Result<Vec<String>, String> {
    Ok(s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Case names go into tags, key-pair and group names: keep them to a safe alphabet.
pub fn parse_case(case: &str) -> Result<String, String> {
    let ok = !case.is_empty()
        && case.len() <= 64
        && case
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(case.to_owned())
    } else {
        Err(format!(
            "case name {case:?}: use 1-64 letters, digits, '-', '_' or '.' (or give --case)"
        ))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn auto_address_prefers_public_dns_then_public_ip_then_private_ip() {
        let m = AddressMode::Auto;
        assert_eq!(
            m.pick(Some("ec2.x"), Some("1.2.3.4"), Some("10.0.0.1"))
                .as_deref(),
            Some("ec2.x")
        );
        assert_eq!(
            m.pick(Some(""), Some("1.2.3.4"), Some("10.0.0.1"))
                .as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            m.pick(None, None, Some("10.0.0.1")).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            AddressMode::PublicIp.pick(Some("ec2.x"), None, Some("10.0.0.1")),
            None
        );
        assert_eq!(AddressMode::parse("Private-IP"), Ok(AddressMode::PrivateIp));
        assert!(AddressMode::parse("ipv6").is_err());
    }

    #[test]
    fn durations_accept_bare_seconds_and_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_ttl("off"), Ok(None));
        assert_eq!(parse_ttl("90m"), Ok(Some(Duration::from_secs(5400))));
    }

    #[test]
    fn allow_list_parses_cidrs_and_single_hosts() {
        let nets = parse_cidrs("127.0.0.0/8, 10.1.2.3").unwrap();
        assert!(nets[0].contains(&"127.9.9.9".parse::<IpAddr>().unwrap()));
        assert!(nets[1].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!(!nets[1].contains(&"10.1.2.4".parse::<IpAddr>().unwrap()));
        assert!(parse_cidrs("127.0.0.0/33").is_err());
    }

    #[test]
    fn case_names_are_restricted_to_a_tag_safe_alphabet() {
        assert!(parse_case("load-test_1.a").is_ok());
        assert!(parse_case("a b").is_err());
        assert!(parse_case("").is_err());
    }
}
