//! Configuration: the command-line groups every tool shares, and the resolved [`Config`].
//!
//! The parsed CLI (clap structs, one group per concern, flattened into each tool's own CLI) and
//! the resolved configuration are separate types, as in fd and hyperfine: the CLI says what the
//! user typed, `Config` says what the tools will do. Flags override environment variables
//! (clap reads both); defaults come last. AWS settings other than `--region` come from the
//! standard aws-config chain and are not repeated here.

use crate::error::{Error, Result, ResultExt};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
pub const DEFAULT_SSH_USER: &str = "ubuntu";
pub const DEFAULT_SSH_PORT: u16 = 22;

/// `--dir`: the test-case directory.
#[derive(Args, Debug, Clone, Default)]
pub struct DirArgs {
    /// The test-case directory holding the instance descriptors [default: current directory]
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
}

/// `--region`; the rest of AWS configuration is the standard chain (AWS_PROFILE, AWS_REGION,
/// credentials files, SSO, IMDS, AWS_ENDPOINT_URL).
#[derive(Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// AWS region [default: the aws-config chain: AWS_REGION, profile]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// `--case`: the name that groups a test case's instances in AWS (tags, key pair, ...).
#[derive(Args, Debug, Clone, Default)]
pub struct CaseArgs {
    /// Test-case name used in tags [default: the test-case directory's basename]
    #[arg(long, value_name = "NAME", env = "EC2_TOOLS_CASE")]
    pub case: Option<String>,
}

/// How instances are launched.
#[derive(Args, Debug, Clone, Default)]
pub struct LaunchArgs {
    /// AMI to launch
    #[arg(long, value_name = "AMI_ID", env = "EC2_TOOLS_AMI")]
    pub ami: Option<String>,
    /// Instance type [default: t3.micro]
    #[arg(long = "type", value_name = "TYPE", env = "EC2_TOOLS_INSTANCE_TYPE")]
    pub instance_type: Option<String>,
    /// EC2 key pair name to launch with
    #[arg(long, value_name = "NAME", env = "EC2_TOOLS_KEY_NAME")]
    pub key_name: Option<String>,
    /// Subnet to launch into
    #[arg(long = "subnet", value_name = "SUBNET_ID", env = "EC2_TOOLS_SUBNET_ID")]
    pub subnet: Option<String>,
    /// Security group ids (comma list)
    #[arg(
        long = "security-group",
        value_name = "SG_IDS",
        env = "EC2_TOOLS_SECURITY_GROUP_IDS",
        value_delimiter = ','
    )]
    pub security_groups: Vec<String>,
}

/// Which of an instance's addresses the tools connect to.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}

/// How to reach instances over SSH.
#[derive(Args, Debug, Clone, Default)]
pub struct SshArgs {
    /// Remote user [default: the descriptor's, else ubuntu]
    #[arg(long, value_name = "USER", env = "EC2_TOOLS_SSH_USER")]
    pub user: Option<String>,
    /// Private key file [default: ssh-agent, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa]
    #[arg(short = 'i', long, value_name = "FILE", env = "EC2_TOOLS_SSH_KEY")]
    pub identity: Option<PathBuf>,
    /// SSH port [default: the descriptor's, else 22]
    #[arg(long, value_name = "PORT", env = "EC2_TOOLS_SSH_PORT")]
    pub port: Option<u16>,
    /// Address to connect to [default: the descriptor's, else auto]
    #[arg(long, value_name = "MODE", env = "EC2_TOOLS_ADDRESS")]
    pub address: Option<AddressMode>,
    /// Give up connecting to a host after this long (e.g. 10s, 1m)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

/// SSH settings after resolution. `None` fields defer to the descriptor, then the default.
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub user: Option<String>,
    pub identity: Option<PathBuf>,
    pub port: Option<u16>,
    pub address: Option<AddressMode>,
    /// `EC2_TOOLS_SSH_ALLOW`: when set, no connection leaves these networks.
    pub allow: Option<Vec<IpNet>>,
    pub connect_timeout: Duration,
}

impl SshConfig {
    pub fn resolve(args: &SshArgs) -> Result<SshConfig> {
        let allow = match std::env::var("EC2_TOOLS_SSH_ALLOW") {
            Ok(v) if !v.trim().is_empty() => {
                Some(parse_cidrs(&v).input_err("EC2_TOOLS_SSH_ALLOW")?)
            }
            _ => None,
        };
        if let Some(id) = &args.identity {
            if !id.is_file() {
                return Err(Error::input(format!(
                    "identity file {}: not found (--identity / EC2_TOOLS_SSH_KEY)",
                    id.display()
                )));
            }
        }
        Ok(SshConfig {
            user: args.user.clone().filter(|u| !u.is_empty()),
            identity: args.identity.clone(),
            port: args.port,
            address: args.address,
            allow,
            connect_timeout: args.connect_timeout,
        })
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
}

/// Launch settings after resolution.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    pub ami: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
}

impl LaunchConfig {
    pub fn resolve(args: &LaunchArgs) -> Result<LaunchConfig> {
        let ami = args
            .ami
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::input("no AMI given: set --ami or EC2_TOOLS_AMI"))?;
        Ok(LaunchConfig {
            ami,
            instance_type: args
                .instance_type
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.into()),
            key_name: args.key_name.clone().filter(|s| !s.is_empty()),
            subnet: args.subnet.clone().filter(|s| !s.is_empty()),
            security_groups: args
                .security_groups
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
        })
    }
}

/// What every tool needs: where the test case lives and what it is called.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub case: String,
    pub region: Option<String>,
}

impl Config {
    pub fn resolve(dir: &DirArgs, case: &CaseArgs, aws: &AwsArgs) -> Result<Config> {
        let dir = Config::resolve_dir(dir)?;
        let case = match case.case.clone().filter(|c| !c.is_empty()) {
            Some(c) => c,
            None => default_case(&dir)?,
        };
        validate_case(&case)?;
        Ok(Config {
            dir,
            case,
            region: aws.region.clone().filter(|r| !r.is_empty()),
        })
    }
}

impl Config {
    /// The test-case directory: `--dir`, else the current directory. It must exist.
    pub fn resolve_dir(dir: &DirArgs) -> Result<PathBuf> {
        let dir = match &dir.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().input_err("current directory")?,
        };
        if !dir.is_dir() {
            return Err(Error::input(format!(
                "{}: not a directory (--dir)",
                dir.display()
            )));
        }
        Ok(dir)
    }
}

fn default_case(dir: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(dir).input_err(dir.display())?;
    abs.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::input(format!(
                "{}: cannot name a case after it; use --case",
                abs.display()
            ))
        })
}

/// Case names go into tags, key-pair and group names: keep them to a safe alphabet.
pub fn validate_case(case: &str) -> Result<()> {
    let ok = !case.is_empty()
        && case.len() <= 64
        && case
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "case name {case:?}: use 1-64 letters, digits, '-', '_' or '.' (--case / EC2_TOOLS_CASE)"
        )))
    }
}

/// `user@host` of whoever runs the tools: the `ec2-tools:owner` tag.
pub fn owner() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid{}", unsafe { libc::getuid() }));
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates within it on success.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    };
    format!("{user}@{host}")
}

/// `30`, `30s`, `5m`, `1h30m`: a bare number is seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs >= 0.0 && secs.is_finite() {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// A comma list of CIDRs (a bare address means that one host).
pub fn parse_cidrs(s: &str) -> std::result::Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{p:?} is not a CIDR (like 127.0.0.0/8)"))
        })
        .collect()
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
    }

    #[test]
    fn durations_accept_bare_seconds_and_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
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
        assert!(validate_case("load-test_1.a").is_ok());
        assert!(validate_case("a b").is_err());
        assert!(validate_case("").is_err());
    }
}
