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
/// The private half of the key pair made for a case, in the test-case directory's state dir.
pub const CASE_KEY_FILE: &str = "case_key";

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
    /// EC2 key pair name to launch with [default: a key pair made for the case]
    #[arg(long, value_name = "NAME", env = "EC2_TOOLS_KEY_NAME")]
    pub key_name: Option<String>,
    /// Subnet to launch into [default: the default VPC's]
    #[arg(long = "subnet", value_name = "SUBNET_ID", env = "EC2_TOOLS_SUBNET_ID")]
    pub subnet: Option<String>,
    /// Security group ids, comma list [default: a group made for the case, SSH from --ssh-cidr]
    #[arg(
        long = "security-group",
        value_name = "SG_IDS",
        env = "EC2_TOOLS_SECURITY_GROUP_IDS"
    )]
    pub security_groups: Option<String>,
    /// Who may reach TCP 22 of the case's own security group [default: the VPC's CIDR with
    /// --address private-ip, else your public address]
    #[arg(long, value_name = "CIDR", env = "EC2_TOOLS_SSH_CIDR")]
    pub ssh_cidr: Option<String>,
    /// Instances shut themselves down (and terminate) after this long; `off` to disable
    /// [default: 4h]
    #[arg(long, value_name = "DURATION|off", env = "EC2_TOOLS_TTL")]
    pub ttl: Option<String>,
    /// Launch spot instances; `--spot=fallback` launches on-demand what spot cannot supply
    #[arg(long, value_name = "on|fallback|off", env = "EC2_TOOLS_SPOT", num_args = 0..=1,
          default_missing_value = "on", require_equals = true)]
    pub spot: Option<String>,
    /// `off`: skip the per-instance `Name=<case>.<index>` tags (one CreateTags call per
    /// instance); the index stays derivable from the launch tags [default: on]
    #[arg(long, value_name = "on|off", env = "EC2_TOOLS_NAME_TAGS")]
    pub name_tags: Option<String>,
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

    fn parse(s: &str) -> std::result::Result<AddressMode, String> {
        <AddressMode as ValueEnum>::from_str(s, true)
            .map_err(|_| format!("{s:?}: expected auto, public-dns, public-ip or private-ip"))
    }

    fn name(self) -> &'static str {
        match self {
            AddressMode::Auto => "auto",
            AddressMode::PublicDns => "public-dns",
            AddressMode::PublicIp => "public-ip",
            AddressMode::PrivateIp => "private-ip",
        }
    }
}

/// How to reach instances over SSH.
#[derive(Args, Debug, Clone, Default)]
pub struct SshArgs {
    /// Remote user [default: the descriptor's, else ubuntu]
    #[arg(long, value_name = "USER", env = "EC2_TOOLS_SSH_USER")]
    pub user: Option<String>,
    /// Private key file [default: the case key, ssh-agent, ~/.ssh/id_ed25519, ~/.ssh/id_rsa]
    #[arg(short = 'i', long, value_name = "FILE", env = "EC2_TOOLS_SSH_KEY")]
    pub identity: Option<PathBuf>,
    /// SSH port [default: the descriptor's, else 22]
    #[arg(long, value_name = "PORT", env = "EC2_TOOLS_SSH_PORT")]
    pub port: Option<u16>,
    /// Address to connect to: auto, public-dns, public-ip, private-ip [default: the
    /// descriptor's, else auto]
    #[arg(long, value_name = "MODE", env = "EC2_TOOLS_ADDRESS")]
    pub address: Option<String>,
    /// Give up connecting to a host after this long (e.g. 10s, 1m) [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
}

/// SSH settings after resolution. `None` fields defer to the descriptor, then the fallbacks.
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub user: Option<String>,
    pub identity: Option<PathBuf>,
    pub port: Option<u16>,
    pub address: Option<AddressMode>,
    /// Used when neither flag, environment nor descriptor says (config file, then default).
    pub fallback_user: String,
    pub fallback_port: u16,
    pub fallback_address: AddressMode,
    /// `EC2_TOOLS_SSH_ALLOW`: when set, no connection leaves these networks.
    pub allow: Option<Vec<IpNet>>,
    pub connect_timeout: Duration,
}

impl SshConfig {
    pub fn resolve(r: &Resolver, args: &SshArgs) -> Result<SshConfig> {
        // Flags and environment override what a descriptor recorded; the file and the
        // defaults only fill in what neither says.
        let user = r.cli(
            "ssh_user",
            Some("EC2_TOOLS_SSH_USER"),
            args.user.clone().filter(|u| !u.is_empty()),
            String::clone,
        );
        let fallback_user = r.file_or(
            "ssh_user",
            user.is_some(),
            |s| Ok::<_, String>(s.to_owned()),
            DEFAULT_SSH_USER.to_owned(),
            String::clone,
        )?;
        let port = r.cli(
            "ssh_port",
            Some("EC2_TOOLS_SSH_PORT"),
            args.port,
            u16::to_string,
        );
        let fallback_port = r.file_or(
            "ssh_port",
            port.is_some(),
            |s| s.parse::<u16>().map_err(|e| e.to_string()),
            DEFAULT_SSH_PORT,
            u16::to_string,
        )?;
        let address = match args.address.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                AddressMode::parse(s)
                    .map_err(|e| Error::input(format!("--address / EC2_TOOLS_ADDRESS: {e}")))?,
            ),
            None => None,
        };
        let address = r.cli("address", Some("EC2_TOOLS_ADDRESS"), address, |a| {
            a.name().to_owned()
        });
        let fallback_address = r.file_or(
            "address",
            address.is_some(),
            AddressMode::parse,
            AddressMode::Auto,
            |a| a.name().to_owned(),
        )?;
        let case_key = r
            .dir()
            .join(crate::descriptor::STATE_DIR)
            .join(CASE_KEY_FILE);
        let identity = match args.identity.clone() {
            Some(p) => r.cli("ssh_key", Some("EC2_TOOLS_SSH_KEY"), Some(p), |p| {
                p.display().to_string()
            }),
            None => match r.file_path("ssh_key") {
                Some(p) => r.cli("ssh_key", None, Some(p), |p| p.display().to_string()),
                None if case_key.is_file() => {
                    r.cli("ssh_key", None, Some(case_key), |p| p.display().to_string())
                }
                None => None,
            },
        };
        if let Some(id) = &identity {
            if !id.is_file() {
                return Err(Error::input(format!(
                    "identity file {}: not found (--identity / EC2_TOOLS_SSH_KEY)",
                    id.display()
                )));
            }
        }
        let connect_timeout = r
            .pick(
                "connect_timeout",
                None,
                args.connect_timeout.as_deref(),
                parse_duration,
                Some(Duration::from_secs(10)),
                |d| humantime::format_duration(*d).to_string(),
            )?
            .unwrap_or(Duration::from_secs(10));
        let env_allow = std::env::var("EC2_TOOLS_SSH_ALLOW")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let allow = r.pick(
            "ssh_allow",
            Some("EC2_TOOLS_SSH_ALLOW"),
            env_allow.as_deref(),
            parse_cidrs,
            None,
            |v| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
        )?;
        Ok(SshConfig {
            user,
            identity,
            port,
            address,
            fallback_user,
            fallback_port,
            fallback_address,
            allow,
            connect_timeout,
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

    /// The address mode new descriptors record.
    pub fn address_mode(&self) -> AddressMode {
        self.address.unwrap_or(self.fallback_address)
    }
}

/// The flags of every tool that works on selected instances over SSH: which instances, where
/// they are described, how to log in.
#[derive(Args, Debug, Clone, Default)]
pub struct HostArgs {
    #[command(flatten)]
    pub select: crate::select::SelectArgs,
    #[command(flatten)]
    pub dir: DirArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// What [`HostArgs`] resolve to.
pub struct Hosts {
    pub ssh: SshConfig,
    pub store: crate::descriptor::Store,
    /// The selection: never empty.
    pub hosts: Vec<crate::descriptor::Descriptor>,
}

impl HostArgs {
    /// The SSH settings and the selected descriptors.
    pub fn resolve(&self) -> Result<Hosts> {
        let resolver = Resolver::new(&self.dir)?;
        let ssh = SshConfig::resolve(&resolver, &self.ssh)?;
        let store = crate::descriptor::Store::new(resolver.dir());
        let hosts = crate::select::select_some(&store, &self.select)?;
        Ok(Hosts { ssh, store, hosts })
    }
}

/// The flags of every tool that acts on selected instances of a case over AWS and SSH.
#[derive(Args, Debug, Clone, Default)]
pub struct FleetArgs {
    #[command(flatten)]
    pub hosts: HostArgs,
    #[command(flatten)]
    pub case: CaseArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl FleetArgs {
    /// The settings layers, the case and the SSH settings. The selection itself is made later,
    /// under the directory's lock.
    pub fn resolve(&self) -> Result<(Resolver, Config, SshConfig)> {
        let r = Resolver::new(&self.hosts.dir)?;
        let cfg = Config::resolve(&r, &self.case, &self.aws)?;
        let ssh = SshConfig::resolve(&r, &self.hosts.ssh)?;
        Ok((r, cfg, ssh))
    }

    pub fn select(&self) -> &crate::select::SelectArgs {
        &self.hosts.select
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

fn parse_spot(s: &str) -> std::result::Result<SpotMode, String> {
    match s {
        "on" | "true" | "yes" | "1" => Ok(SpotMode::On),
        "fallback" => Ok(SpotMode::Fallback),
        "off" | "false" | "no" | "0" => Ok(SpotMode::Off),
        _ => Err(format!("{s:?}: expected on, fallback or off")),
    }
}

/// `90m`, `2h`; `off`, `none`, `0` disable.
fn parse_ttl(s: &str) -> std::result::Result<Option<Duration>, String> {
    match s {
        "off" | "none" | "0" => Ok(None),
        _ => parse_duration(s).map(Some),
    }
}

pub const DEFAULT_TTL: Duration = Duration::from_secs(4 * 3600);

/// Launch settings after resolution.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// Required to launch (checked by [`LaunchConfig::ami`]); optional so that
    /// `--show-config` and ec2-revert (which can reuse the descriptor's AMI) work without it.
    pub ami: Option<String>,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
    pub ssh_cidr: Option<IpNet>,
    pub ttl: Option<Duration>,
    pub spot: SpotMode,
    pub name_tags: bool,
}

impl LaunchConfig {
    /// The AMI, or the error that says how to give one.
    pub fn ami(&self) -> Result<&str> {
        self.ami.as_deref().ok_or_else(|| {
            Error::input("no AMI given: set --ami, EC2_TOOLS_AMI or \"ami\" in ec2-tools.json")
        })
    }

    pub fn resolve(r: &Resolver, args: &LaunchArgs) -> Result<LaunchConfig> {
        let string = |s: &str| Ok::<_, String>(s.to_owned());
        let ami = r.pick(
            "ami",
            Some("EC2_TOOLS_AMI"),
            args.ami.as_deref(),
            string,
            None,
            String::clone,
        )?;
        let instance_type = r
            .pick(
                "instance_type",
                Some("EC2_TOOLS_INSTANCE_TYPE"),
                args.instance_type.as_deref(),
                string,
                Some(DEFAULT_INSTANCE_TYPE.to_owned()),
                String::clone,
            )?
            .unwrap_or_default();
        let key_name = r.pick(
            "key_name",
            Some("EC2_TOOLS_KEY_NAME"),
            args.key_name.as_deref(),
            string,
            None,
            String::clone,
        )?;
        let subnet = r.pick(
            "subnet_id",
            Some("EC2_TOOLS_SUBNET_ID"),
            args.subnet.as_deref(),
            string,
            None,
            String::clone,
        )?;
        let list = |s: &str| {
            Ok::<_, String>(
                s.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
        };
        let security_groups = r
            .pick(
                "security_group_ids",
                Some("EC2_TOOLS_SECURITY_GROUP_IDS"),
                args.security_groups.as_deref(),
                list,
                Some(vec![]),
                |v| v.join(","),
            )?
            .unwrap_or_default();
        let cidr = |s: &str| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a CIDR"))
        };
        let ssh_cidr = r.pick(
            "ssh_cidr",
            Some("EC2_TOOLS_SSH_CIDR"),
            args.ssh_cidr.as_deref(),
            cidr,
            None,
            |c| c.to_string(),
        )?;
        let ttl = r
            .pick(
                "ttl",
                Some("EC2_TOOLS_TTL"),
                args.ttl.as_deref(),
                parse_ttl,
                Some(Some(DEFAULT_TTL)),
                |t| match t {
                    Some(d) => humantime::format_duration(*d).to_string(),
                    None => "off".into(),
                },
            )?
            .flatten();
        let spot = r
            .pick(
                "spot",
                Some("EC2_TOOLS_SPOT"),
                args.spot.as_deref(),
                parse_spot,
                Some(SpotMode::Off),
                |m| format!("{m:?}").to_lowercase(),
            )?
            .unwrap_or(SpotMode::Off);
        let on_off = |s: &str| match s {
            "on" | "true" | "yes" | "1" => Ok(true),
            "off" | "false" | "no" | "0" => Ok(false),
            _ => Err(format!("{s:?}: expected on or off")),
        };
        let name_tags = r
            .pick(
                "name_tags",
                Some("EC2_TOOLS_NAME_TAGS"),
                args.name_tags.as_deref(),
                on_off,
                Some(true),
                |b| if *b { "on" } else { "off" }.to_owned(),
            )?
            .unwrap_or(true);
        Ok(LaunchConfig {
            ami,
            instance_type,
            key_name,
            subnet,
            security_groups,
            ssh_cidr,
            ttl,
            spot,
            name_tags,
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
    pub fn resolve(r: &Resolver, case: &CaseArgs, aws: &AwsArgs) -> Result<Config> {
        let dir = r.dir().to_path_buf();
        let default = default_case(&dir)?;
        let string = |s: &str| Ok::<_, String>(s.to_owned());
        let case = r
            .pick(
                "case",
                Some("EC2_TOOLS_CASE"),
                case.case.as_deref(),
                string,
                Some(default),
                String::clone,
            )?
            .unwrap_or_default();
        validate_case(&case)?;
        let region = r.pick(
            "region",
            Some("AWS_REGION"),
            aws.region.as_deref(),
            string,
            None,
            String::clone,
        )?;
        // Without a flag or file value, the aws-config chain decides (AWS_REGION, profile).
        Ok(Config { dir, case, region })
    }

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

/// The name of the settings file looked for in the test-case directory and its parents.
pub const CONFIG_FILE: &str = "ec2-tools.json";

/// Every key a settings file may hold.
pub const FILE_KEYS: &[&str] = &[
    "region",
    "case",
    "ami",
    "instance_type",
    "key_name",
    "subnet_id",
    "security_group_ids",
    "ssh_cidr",
    "ttl",
    "spot",
    "ssh_user",
    "ssh_key",
    "ssh_port",
    "address",
    "connect_timeout",
    "ssh_allow",
    "name_tags",
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File(PathBuf),
    Default,
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(n) => write!(f, "env {n}"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

/// One line of `ec2-status --show-config`.
#[derive(Debug, Clone)]
pub struct Traced {
    pub key: &'static str,
    pub value: String,
    pub source: Source,
}

/// Layers settings: flag > environment > `ec2-tools.json` in the test-case directory, then in
/// each parent, then `$XDG_CONFIG_HOME/ec2-tools/config.json` > default, and remembers where
/// every value came from.
pub struct Resolver {
    dir: PathBuf,
    files: Vec<(PathBuf, serde_json::Map<String, serde_json::Value>)>,
    trace: std::sync::Mutex<Vec<Traced>>,
}

impl Resolver {
    /// Find and read the settings files for the test-case directory of `--dir`.
    pub fn new(dir: &DirArgs) -> Result<Resolver> {
        let dir = Config::resolve_dir(dir)?;
        let abs = std::fs::canonicalize(&dir).input_err(dir.display())?;
        let mut paths: Vec<PathBuf> = abs.ancestors().map(|a| a.join(CONFIG_FILE)).collect();
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(x) = xdg {
            paths.push(x.join("ec2-tools").join("config.json"));
        }
        let mut files = Vec::new();
        for p in paths {
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::input(format!("{}: {e}", p.display()))),
            };
            files.push((p.clone(), parse_file(&p, &text)?));
        }
        Ok(Resolver {
            dir,
            files,
            trace: Default::default(),
        })
    }

    /// A resolver with no files (unit tests, tools that need no settings).
    pub fn empty(dir: PathBuf) -> Resolver {
        Resolver {
            dir,
            files: vec![],
            trace: Default::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings files in force, nearest first.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Everything resolved so far, with sources.
    pub fn trace(&self) -> Vec<Traced> {
        self.trace.lock().unwrap().clone()
    }

    fn record(&self, key: &'static str, value: String, source: Source) {
        let mut t = self.trace.lock().unwrap();
        t.retain(|e| e.key != key);
        t.push(Traced { key, value, source });
    }

    fn cli_source(env: Option<&'static str>, shown: &str) -> Source {
        match env {
            Some(name) if std::env::var(name).is_ok_and(|v| v == shown) => Source::Env(name),
            _ => Source::Flag,
        }
    }

    /// A value from the nearest file that has the key, as text.
    fn file_text(&self, key: &str) -> Option<(String, &Path)> {
        self.files.iter().find_map(|(p, m)| {
            m.get(key).map(|v| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                (text, p.as_path())
            })
        })
    }

    /// A path from the nearest file, relative paths taken from that file's directory.
    pub fn file_path(&self, key: &'static str) -> Option<PathBuf> {
        let (text, file) = self.file_text(key)?;
        let p = PathBuf::from(text);
        let p = if p.is_relative() {
            file.parent().map(|d| d.join(&p)).unwrap_or(p)
        } else {
            p
        };
        self.record(
            key,
            p.display().to_string(),
            Source::File(file.to_path_buf()),
        );
        Some(p)
    }

    /// flag/env text (already merged by clap) > file > default, parsed by one parser.
    pub fn pick<T>(
        &self,
        key: &'static str,
        env: Option<&'static str>,
        cli: Option<&str>,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
        default: Option<T>,
        show: impl Fn(&T) -> String,
    ) -> Result<Option<T>> {
        if let Some(text) = cli.filter(|s| !s.is_empty()) {
            let what = match env {
                Some(e) => format!("{key} (flag or {e})"),
                None => key.to_owned(),
            };
            let v = parse(text).map_err(|e| Error::input(format!("{what}: {e}")))?;
            self.record(key, show(&v), Self::cli_source(env, text));
            return Ok(Some(v));
        }
        if let Some((text, path)) = self.file_text(key) {
            let v = parse(&text)
                .map_err(|e| Error::input(format!("{}: \"{key}\": {e}", path.display())))?;
            self.record(key, show(&v), Source::File(path.to_path_buf()));
            return Ok(Some(v));
        }
        match default {
            Some(v) => {
                self.record(key, show(&v), Source::Default);
                Ok(Some(v))
            }
            None => {
                self.record(key, String::new(), Source::Unset);
                Ok(None)
            }
        }
    }

    /// Record a value clap already parsed (flag or env); `None` leaves the key to others.
    pub fn cli<T>(
        &self,
        key: &'static str,
        env: Option<&'static str>,
        v: Option<T>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        if let Some(v) = &v {
            let shown = show(v);
            let source = Self::cli_source(env, &shown);
            self.record(key, shown, source);
        }
        v
    }

    /// The file value or nothing (recorded unless a flag already set the key).
    pub fn file<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
        show: impl Fn(&T) -> String,
    ) -> Result<Option<T>> {
        self.pick(key, None, None, parse, None, show)
    }

    /// The fallback below flags/env and descriptors: file, else the default. When `overridden`,
    /// the flag/env value is what the trace shows.
    pub fn file_or<T>(
        &self,
        key: &'static str,
        overridden: bool,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
        default: T,
        show: impl Fn(&T) -> String,
    ) -> Result<T> {
        if overridden {
            return Ok(match self.file_text(key) {
                Some((text, path)) => parse(&text)
                    .map_err(|e| Error::input(format!("{}: \"{key}\": {e}", path.display())))?,
                None => default,
            });
        }
        Ok(self
            .pick(key, None, None, parse, Some(default), show)?
            .expect("default given"))
    }
}

fn parse_file(path: &Path, text: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::input(format!("{}: not valid JSON: {e}", path.display())))?;
    let serde_json::Value::Object(map) = v else {
        return Err(Error::input(format!(
            "{}: must hold one JSON object",
            path.display()
        )));
    };
    for (k, v) in &map {
        if !FILE_KEYS.contains(&k.as_str()) {
            return Err(Error::input(format!(
                "{}: unknown key \"{k}\" (known keys: {})",
                path.display(),
                FILE_KEYS.join(", ")
            )));
        }
        if v.is_object() {
            return Err(Error::input(format!(
                "{}: \"{k}\": expected a string, number or list",
                path.display()
            )));
        }
    }
    Ok(map)
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
