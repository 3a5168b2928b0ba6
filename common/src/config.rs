//! The resolved configuration: what the tools will do, as plain data (like fd's config.rs).
//!
//! These types are built by cli/ from the flags and the settings layers (settings/) and
//! then only read. The grammar of setting values (durations, CIDR lists, address and spot
//! modes) lives here beside the types it produces. What does not belong here: clap, reading
//! files or the environment, anything that talks to AWS or a host.

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

/// Spot or on-demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotMode {
    Off,
    On,
    /// Spot first; on-demand for whatever spot cannot supply.
    Fallback,
}

impl SpotMode {
    pub fn parse(s: &str) -> Result<SpotMode, String> {
        match s {
            "on" | "true" | "yes" | "1" => Ok(SpotMode::On),
            "fallback" => Ok(SpotMode::Fallback),
            "off" | "false" | "no" | "0" => Ok(SpotMode::Off),
            _ => Err(format!("{s:?}: expected on, fallback or off")),
        }
    }
}

/// Launch settings.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// The image: an id, or an alias or parameter resolved at launch for each type's
    /// architecture (default: the `ubuntu` alias).
    pub ami: AmiSpec,
    /// The image was configured (flag, environment, file), not the default: ec2-revert uses
    /// the AMI the instances run unless one was.
    pub ami_configured: bool,
    /// Instance types, in order of preference (never empty).
    pub instance_types: Vec<String>,
    pub key_name: Option<String>,
    /// Subnets, in order of preference; empty: the default VPC's.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub ssh_cidr: Option<IpNet>,
    /// Extra TCP ports the case's own group opens to the SSH CIDR (a load target's).
    pub open_ports: Vec<u16>,
    /// RunInstances pacing: bucket size (instances) and refill (instances per second).
    pub launch_burst: u32,
    pub launch_rate: f64,
    pub ttl: Option<Duration>,
    pub spot: SpotMode,
    pub name_tags: bool,
    /// The case's placement group strategy (`--placement`), if any.
    pub placement: Option<Placement>,
    /// `--network auto`: without `--subnet`, launch into a network made for the case.
    pub network_auto: bool,
    /// The CIDR of that network's VPC.
    pub network_cidr: IpNet,
    /// What each instance is launched with beyond its type and place.
    pub instance: InstanceOptions,
    /// `--max-hourly-cost`: USD per hour the case may cost after a launch.
    pub max_hourly_cost: Option<f64>,
    /// What RunInstances gets as user data: the TTL's part and the user's own.
    pub user_data: Option<crate::userdata::Composed>,
    /// The user's own part, when given now (`--user-data`, the environment or a settings
    /// file): recorded in the case (`.ec2-tools/user-data`) at launch, so that later launches
    /// of the case use the same.
    pub record_user_data: Option<Vec<u8>>,
}

/// The options a company account asks of every instance: its metadata service, root volume,
/// instance profile and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceOptions {
    /// The instance metadata service the instances answer.
    pub imds: Imds,
    /// The root volume: its size (GB; `None`: the AMI's), EBS type and encryption; it is
    /// deleted with the instance.
    pub volume_size: Option<u32>,
    pub volume_type: String,
    pub volume_encrypted: bool,
    /// The instance profile the instances run with: a name or an ARN.
    pub iam_profile: Option<String>,
    /// The user's tags, on every instance, volume and network interface at launch, and on
    /// everything the case makes (key pair, security group, network, placement group,
    /// images), at creation: tag-enforcing policies allow the call.
    pub tags: Vec<(String, String)>,
}

/// The instance metadata service: `v2` only (session tokens required, hop limit 2 so that
/// containers on the instance reach it; what company accounts ask for) or `v1` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Imds {
    V2,
    V1,
}

impl Imds {
    pub fn parse(s: &str) -> Result<Imds, String> {
        match s {
            "v2" => Ok(Imds::V2),
            "v1" => Ok(Imds::V1),
            _ => Err(format!("{s:?}: expected v2 (tokens required) or v1")),
        }
    }
}

/// A positive amount of US dollars (`2.50`, `$2.50`).
pub fn parse_usd(s: &str) -> Result<f64, String> {
    match s.trim_start_matches('$').parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?}: expected a positive amount of USD (2.50)")),
    }
}

/// An EBS volume type a root volume can have.
pub fn parse_volume_type(s: &str) -> Result<String, String> {
    const TYPES: &[&str] = &["gp3", "gp2", "io2", "io1", "st1", "sc1", "standard"];
    if TYPES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?}: expected one of {}", TYPES.join(", ")))
    }
}

/// A root volume's size in GB, as EBS allows it (1 to 16384).
pub fn parse_volume_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=16384).contains(&n) => Ok(n),
        _ => Err(format!("{s:?}: expected a size in GB, 1 to 16384")),
    }
}

/// Tags, `KEY=VALUE[,KEY=VALUE…]` (a settings file may give an object): AWS's limits (key up
/// to 128 characters, value up to 256, 50 in all, nothing starting `aws:`) are checked here,
/// and the tools' own keys (`ec2-tools:…`, `Name`) are refused: the tools set those.
pub fn parse_tags(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("{item:?}: expected KEY=VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(format!(
                "{item:?}: a tag key is 1 to 128 characters, a value up to 256"
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!("{k:?}: keys starting with aws: are AWS's own"));
        }
        if k.starts_with("ec2-tools:") || k == "Name" {
            return Err(format!("{k:?}: the tools set this tag themselves"));
        }
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_owned(),
            None => out.push((k.to_owned(), v.to_owned())),
        }
    }
    if out.len() > 40 {
        return Err(format!(
            "{} tags: at most 40 (AWS allows 50 per resource; the tools add their own)",
            out.len()
        ));
    }
    Ok(out)
}

/// `auto` (a network made for the case when no subnet is given) or `default` (the default
/// VPC's).
pub fn parse_network(s: &str) -> Result<bool, String> {
    match s {
        "auto" => Ok(true),
        "default" => Ok(false),
        _ => Err(format!("{s:?}: expected auto or default")),
    }
}

/// How a placement group places its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Close together in one AZ: lowest latency, highest bandwidth between them.
    Cluster,
    /// Each on distinct hardware (at most 7 per AZ).
    Spread,
    /// In partitions that share no hardware with each other.
    Partition,
}

impl Placement {
    pub fn parse(s: &str) -> Result<Option<Placement>, String> {
        match s {
            "cluster" => Ok(Some(Placement::Cluster)),
            "spread" => Ok(Some(Placement::Spread)),
            "partition" => Ok(Some(Placement::Partition)),
            "off" | "none" => Ok(None),
            _ => Err(format!("{s:?}: expected cluster, spread, partition or off")),
        }
    }

    /// AWS's name of the strategy.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Cluster => "cluster",
            Placement::Spread => "spread",
            Placement::Partition => "partition",
        }
    }
}

impl LaunchConfig {
    /// With the user data composed from the user's own part (`own`: its name, bytes, and
    /// whether it was given now rather than recorded) and the TTL's; what cloud-init would
    /// ignore, or what does not fit AWS's limit, is bad input naming the file.
    pub fn with_user_data(
        mut self,
        own: Option<(String, Vec<u8>, bool)>,
    ) -> crate::error::Result<LaunchConfig> {
        let part = own.as_ref().map(|(n, b, _)| (n.as_str(), b.as_slice()));
        self.user_data =
            crate::userdata::compose(part, self.ttl).map_err(crate::error::Error::input)?;
        self.record_user_data = own.filter(|o| o.2).map(|o| o.1);
        Ok(self)
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

    #[test]
    fn tags_are_checked_against_aws_limits_and_the_tools_own_keys() {
        assert_eq!(
            parse_tags("team=load, cost-center=42,team=perf").unwrap(),
            vec![
                ("team".to_owned(), "perf".to_owned()),
                ("cost-center".to_owned(), "42".to_owned())
            ]
        );
        assert_eq!(parse_tags("empty=").unwrap()[0].1, "");
        for bad in [
            "aws:x=1",
            "AWS:x=1",
            "Name=x",
            "ec2-tools:case=x",
            "novalue",
            "=v",
        ] {
            assert!(parse_tags(bad).is_err(), "{bad}");
        }
        assert!(parse_tags(&format!("{}=v", "k".repeat(129))).is_err());
        let many: Vec<String> = (0..41).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tags(&many.join(",")).is_err());
    }

    #[test]
    fn root_volumes_and_the_metadata_service_take_what_aws_takes() {
        assert_eq!(Imds::parse("v2"), Ok(Imds::V2));
        assert_eq!(Imds::parse("v1"), Ok(Imds::V1));
        assert!(Imds::parse("v3").is_err());
        assert_eq!(parse_volume_size("40"), Ok(40));
        for bad in ["0", "16385", "-1", "ten"] {
            assert!(parse_volume_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_volume_type("gp3").as_deref(), Ok("gp3"));
        assert!(parse_volume_type("ssd").is_err());
    }

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
