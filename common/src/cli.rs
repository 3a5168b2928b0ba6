//! The command-line groups the tools share (like fd's cli.rs), and their `resolve()` into the
//! plain configuration of config.rs.
//!
//! A group holds what the user typed, as text; resolving it asks the settings layers
//! (settings.rs) which value wins for each setting, and parses the winner with the grammar in
//! config.rs. Each tool's own flags live with the tool (cmd/), flattening these groups. What
//! does not belong here: defaults and environment variable names (the settings table), value
//! grammar (config.rs), anything that reads descriptors or talks to AWS or hosts.

use crate::case::select::{parse_indexes, Selection};
use crate::case::store::{case_key_path, STATE_DIR};
use crate::config::{
    parse_case, parse_cidr, parse_cidrs, parse_duration, parse_list, parse_network,
    parse_nonempty_list, parse_on_off, parse_ports, parse_positive, parse_rate, parse_ttl,
    AddressMode, Config, Jump, Label, LaunchConfig, OutputConfig, OutputMode, Placement, SpotMode,
    SshConfig,
};
use crate::error::{Error, Result};
use crate::settings::{self as keys, Settings, Source};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn text(s: &str) -> std::result::Result<String, String> {
    Ok(s.to_owned())
}

/// How many hosts the SSH tools log in to at once (`-f/--fanout`). Chosen from `make bench`
/// at 50 ms RTT, where a login's ~7 round trips dominate: 128 beat 32 by 15–20 % (100 and 300
/// hosts) and 256 gained nothing more; at 0 ms it costs nothing. pdsh's is 32. Each host is
/// its own sshd, so this is not bounded by one sshd's MaxStartups.
pub const DEFAULT_FANOUT: u32 = 128;

/// `--dir`: the test-case directory.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Test case")]
pub struct DirArgs {
    /// The test-case directory holding the instance descriptors [default: current directory]
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
}

impl DirArgs {
    /// The settings layers of the test-case directory.
    pub fn settings(&self) -> Result<Settings> {
        Settings::load(self.dir.as_deref())
    }
}

/// `--region`; the rest of AWS configuration is the standard chain (AWS_PROFILE, credentials
/// files, SSO, IMDS, AWS_ENDPOINT_URL).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Test case")]
pub struct AwsArgs {
    /// AWS region (also AWS_REGION, "region" in ec2-tools.json) [default: the profile's]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// `--case`: the name that groups a test case's instances in AWS (tags, key pair, ...).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Test case")]
pub struct CaseArgs {
    /// Test-case name used in tags (also EC2_TOOLS_CASE) [default: the directory's basename]
    #[arg(long, value_name = "NAME")]
    pub case: Option<String>,
}

/// Resolve the case's identity: directory, name, region.
pub fn resolve_case(s: &Settings, case: &CaseArgs, aws: &AwsArgs) -> Result<Config> {
    let case = match s.value(&keys::CASE, case.case.as_deref(), parse_case)? {
        Some(c) => c,
        None => {
            let name = s.dir_name().ok_or_else(|| {
                Error::input(format!(
                    "{}: cannot name a case after it; use --case",
                    s.dir().display()
                ))
            })?;
            let c = parse_case(name)
                .map_err(|e| Error::input(format!("the directory's name as the case name: {e}")))?;
            s.record(keys::CASE.name, c.clone(), Source::Default);
            c
        }
    };
    Ok(Config {
        dir: s.dir().to_path_buf(),
        case,
        region: s.value(&keys::REGION, aws.region.as_deref(), text)?,
    })
}

/// Where the case lives and what it is called in AWS: `--dir`, `--case`, `--region`.
#[derive(Args, Debug, Clone, Default)]
pub struct CaseDirArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    #[command(flatten)]
    pub case: CaseArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl CaseDirArgs {
    /// The settings layers of the directory and the case they name.
    pub fn resolve(&self) -> Result<(Settings, Config)> {
        let s = self.dir.settings()?;
        let cfg = resolve_case(&s, &self.case, &self.aws)?;
        Ok((s, cfg))
    }
}

/// How instances are launched (see the settings table for environment variables and
/// defaults).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Launch")]
pub struct LaunchArgs {
    /// AMI to launch
    #[arg(long, value_name = "AMI_ID")]
    pub ami: Option<String>,
    /// Instance type; a comma list is tried in order when AWS has no capacity for one
    #[arg(long = "type", value_name = "TYPE[,TYPE…]")]
    pub instance_type: Option<String>,
    /// EC2 key pair name to launch with [default: a key pair made for the case]
    #[arg(long, value_name = "NAME")]
    pub key_name: Option<String>,
    /// Subnet to launch into; a comma list (one VPC) is tried in order when a subnet's AZ
    /// has no capacity [default: the default VPC's]
    #[arg(long = "subnet", value_name = "SUBNET_ID[,…]")]
    pub subnet: Option<String>,
    /// Security group ids, comma list [default: a group made for the case, SSH from --ssh-cidr]
    #[arg(long = "security-group", value_name = "SG_IDS")]
    pub security_groups: Option<String>,
    /// Who may reach TCP 22 of the case's own security group [default: the VPC's CIDR with
    /// --address private-ip, else your public address]
    #[arg(long, value_name = "CIDR")]
    pub ssh_cidr: Option<String>,
    /// Also open these TCP ports of the case's own group to the SSH CIDR (a load target),
    /// e.g. `80,8080-8090`; the case's instances always reach each other on every port
    #[arg(long, value_name = "PORTS")]
    pub open: Option<String>,
    /// Instances shut themselves down (and terminate) after this long; `off` to disable
    #[arg(long, value_name = "DURATION|off")]
    pub ttl: Option<String>,
    /// Launch spot instances; `--spot=fallback` launches on-demand what spot cannot supply
    #[arg(long, value_name = "on|fallback|off", num_args = 0..=1,
          default_missing_value = "on", require_equals = true)]
    pub spot: Option<String>,
    /// `off`: skip the per-instance `Name=<case>.<index>` tags (one CreateTags call per
    /// instance); the index stays derivable from the launch tags
    #[arg(long, value_name = "on|off")]
    pub name_tags: Option<String>,
    /// Launch into a placement group made for the case: `cluster` (close together: network
    /// benchmarks), `spread` or `partition` (apart); deleted with the last instance
    #[arg(long, value_name = "cluster|spread|partition|off")]
    pub placement: Option<String>,
    /// `auto`: without --subnet, launch into a VPC made for the case (public subnets in up
    /// to three AZs, an internet gateway, routes), torn down with the last instance; for
    /// regions without a default VPC
    #[arg(long, value_name = "auto|default")]
    pub network: Option<String>,
    /// The CIDR of the VPC `--network auto` makes
    #[arg(long, value_name = "CIDR")]
    pub network_cidr: Option<String>,
}

impl LaunchArgs {
    pub fn resolve(&self, s: &Settings) -> Result<LaunchConfig> {
        let has_default = "a default";
        Ok(LaunchConfig {
            ami: s.value(&keys::AMI, self.ami.as_deref(), text)?,
            instance_types: s
                .value(
                    &keys::INSTANCE_TYPE,
                    self.instance_type.as_deref(),
                    parse_nonempty_list,
                )?
                .expect(has_default),
            key_name: s.value(&keys::KEY_NAME, self.key_name.as_deref(), text)?,
            subnets: s
                .value(&keys::SUBNET, self.subnet.as_deref(), parse_list)?
                .unwrap_or_default(),
            open_ports: s
                .value(&keys::OPEN, self.open.as_deref(), parse_ports)?
                .unwrap_or_default(),
            launch_burst: s
                .value(&keys::LAUNCH_BURST, None, parse_positive)?
                .expect(has_default),
            launch_rate: s
                .value(&keys::LAUNCH_RATE, None, parse_rate)?
                .expect(has_default),
            security_groups: s
                .value(
                    &keys::SECURITY_GROUPS,
                    self.security_groups.as_deref(),
                    parse_list,
                )?
                .unwrap_or_default(),
            ssh_cidr: s.value(&keys::SSH_CIDR, self.ssh_cidr.as_deref(), parse_cidr)?,
            ttl: s
                .value(&keys::TTL, self.ttl.as_deref(), parse_ttl)?
                .expect(has_default),
            spot: s
                .value(&keys::SPOT, self.spot.as_deref(), SpotMode::parse)?
                .expect(has_default),
            name_tags: s
                .value(&keys::NAME_TAGS, self.name_tags.as_deref(), parse_on_off)?
                .expect(has_default),
            placement: s
                .value(
                    &keys::PLACEMENT,
                    self.placement.as_deref(),
                    Placement::parse,
                )?
                .flatten(),
            network_auto: s
                .value(&keys::NETWORK, self.network.as_deref(), parse_network)?
                .expect(has_default),
            network_cidr: s
                .value(
                    &keys::NETWORK_CIDR,
                    self.network_cidr.as_deref(),
                    parse_cidr,
                )?
                .expect(has_default),
        })
    }
}

/// How to reach instances over SSH.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "SSH")]
pub struct SshArgs {
    /// Remote user [default: the descriptor's, else ssh_user]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Private key file [default: the case key, ssh-agent, ~/.ssh/id_ed25519, ~/.ssh/id_rsa]
    #[arg(short = 'i', long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// SSH port [default: the descriptor's, else ssh_port]
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Address to connect to: auto, public-dns, public-ip, private-ip [default: the
    /// descriptor's, else address]
    #[arg(long, value_name = "MODE")]
    pub address: Option<String>,
    /// Give up connecting to a host after this long (e.g. 10s, 1m)
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// Accept a host key that differs from the one recorded at first contact, and record
    /// the new one (the instance was rebuilt on purpose); without it a changed key is refused
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Reach the instances through this bastion, [user@]host[:port] (one SSH session to it,
    /// a forwarded channel per instance; its host key pinned too), as ssh's ProxyJump
    #[arg(short = 'J', long, value_name = "[USER@]HOST[:PORT]")]
    pub jump: Option<String>,
    /// Keep the case's SSH logins open between runs this long after the last use, so the
    /// next run opens a channel instead of logging in; `off`: log in afresh every run
    #[arg(long, value_name = "DURATION|off")]
    pub persist: Option<String>,
}

/// A value set by flag or environment (it beats the descriptor), and the value of the lower
/// layers (file, default) for where neither says.
fn split<T: Clone>((v, source): (T, Source)) -> (Option<T>, T) {
    (source.is_explicit().then(|| v.clone()), v)
}

impl SshArgs {
    /// Report, do not check: a missing key file is found when a tool is about to log in
    /// (`remote::ssh::check_identity`), so `--show-config` still shows it.
    pub fn resolve(&self, s: &Settings) -> Result<SshConfig> {
        let has_default = "a default";
        let (user, fallback_user) = split(
            s.get(&keys::SSH_USER, self.user.as_deref(), text)?
                .expect(has_default),
        );
        let port = |p: &str| p.parse::<u16>().map_err(|e| format!("{p:?}: {e}"));
        let (port, fallback_port) = split(
            s.get(&keys::SSH_PORT, self.port.as_deref(), port)?
                .expect(has_default),
        );
        let (address, fallback_address) = split(
            s.get(&keys::ADDRESS, self.address.as_deref(), AddressMode::parse)?
                .expect(has_default),
        );
        let flag = self.identity.as_ref().map(|p| p.display().to_string());
        let identity = match s.value(&keys::SSH_KEY, flag.as_deref(), text)? {
            Some(p) => Some(PathBuf::from(p)),
            None => {
                let case_key = case_key_path(s.dir());
                case_key.is_file().then(|| {
                    s.record(
                        keys::SSH_KEY.name,
                        case_key.display().to_string(),
                        Source::Default,
                    );
                    case_key
                })
            }
        };
        Ok(SshConfig {
            user,
            identity,
            port,
            address,
            fallback_user,
            fallback_port,
            fallback_address,
            allow: s.value(&keys::SSH_ALLOW, None, parse_cidrs)?,
            connect_timeout: s
                .value(
                    &keys::CONNECT_TIMEOUT,
                    self.connect_timeout.as_deref(),
                    parse_duration,
                )?
                .expect(has_default),
            repin: self.accept_new_host_key.then(|| s.dir().to_path_buf()),
            jump: s
                .value(&keys::SSH_JUMP, self.jump.as_deref(), Jump::parse)?
                .map(|j| Jump {
                    pin: Some(s.dir().join(STATE_DIR).join("jump.json")),
                    ..j
                }),
            auth_grace: s
                .value(&keys::AUTH_GRACE, None, parse_duration)?
                .expect(has_default),
            persist: s
                .value(&keys::PERSIST, self.persist.as_deref(), parse_ttl)?
                .expect(has_default),
        })
    }
}

/// Which instances: `--from`, `--select`, `--role` (an intersection).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Selection")]
pub struct SelectArgs {
    /// Only the instances listed in FILE ('-' for stdin): the first field of each line is an
    /// instance id, so `ec2-create 3 | ec2-exec-remote --from - uptime` works
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Only these indexes: 1,3-5
    #[arg(long = "select", value_name = "INDEXES", value_parser = parse_indexes)]
    pub select: Option<BTreeSet<u32>>,
    /// Only instances of this role
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
}

impl SelectArgs {
    /// No selection given: every instance of the case.
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.select.is_none() && self.role.is_none()
    }

    pub fn resolve(&self) -> Selection {
        Selection {
            from: self.from.clone(),
            indexes: self.select.clone(),
            role: self.role.clone(),
        }
    }
}

/// The flags of every tool that works on selected instances over SSH: which instances, where
/// they are described, how to log in.
#[derive(Args, Debug, Clone, Default)]
pub struct HostArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub dir: DirArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

impl HostArgs {
    /// The directory, the SSH settings and the selection (not yet applied).
    pub fn resolve(&self) -> Result<(Settings, SshConfig, Selection)> {
        let s = self.dir.settings()?;
        let ssh = self.ssh.resolve(&s)?;
        Ok((s, ssh, self.select.resolve()))
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

/// What [`FleetArgs`] resolve to.
pub struct FleetSetup {
    pub settings: Settings,
    pub cfg: Config,
    pub ssh: SshConfig,
    pub selection: Selection,
}

impl FleetArgs {
    pub fn resolve(&self) -> Result<FleetSetup> {
        let (settings, ssh, selection) = self.hosts.resolve()?;
        let cfg = resolve_case(&settings, &self.case, &self.aws)?;
        Ok(FleetSetup {
            settings,
            cfg,
            ssh,
            selection,
        })
    }
}

/// `--gather`, `--json`, `--out-dir`, `--failed-to`: shared by the tools that run commands.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Print each distinct stdout once, with the hosts that produced it (like dshbak -c)
    #[arg(long, conflicts_with = "json")]
    pub gather: bool,
    /// One JSON object per instance on stdout (id, index, address, exit or error, duration,
    /// stdout/stderr or their paths)
    #[arg(long)]
    pub json: bool,
    /// Write each instance's output to DIR/<index>-<id>.stdout/.stderr/.exit as it arrives,
    /// plus DIR/summary.json
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Write the ids of failed instances to FILE, one per line (rerun them with --from FILE)
    #[arg(long, value_name = "FILE")]
    pub failed_to: Option<PathBuf>,
    /// No `ok N/N` summary when every instance succeeded (failures are always reported)
    #[arg(short, long)]
    pub quiet: bool,
    /// What names a host in line prefixes and host sets: its index, id, name
    /// (`<case>.<index>`) or address; `none`: no prefix (pdsh -N)
    #[arg(long, value_name = "index|id|name|address|none", default_value = "address",
          value_parser = Label::parse)]
    pub label: Label,
}

impl OutputArgs {
    pub fn resolve(&self) -> OutputConfig {
        OutputConfig {
            mode: if self.gather {
                OutputMode::Gather
            } else if self.json {
                OutputMode::Json
            } else {
                OutputMode::Prefix
            },
            out_dir: self.out_dir.clone(),
            failed_to: self.failed_to.clone(),
            quiet: self.quiet,
            label: self.label,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)], file: Option<&str>) -> (tempfile::TempDir, Settings) {
        let d = tempfile::tempdir().unwrap();
        if let Some(f) = file {
            std::fs::write(d.path().join(keys::FILE_NAME), f).unwrap();
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Settings::from_parts(
            d.path(),
            |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            None,
        )
        .unwrap();
        (d, s)
    }

    #[test]
    fn ssh_flags_and_env_beat_descriptors_while_files_and_defaults_only_fill_in() {
        let (_d, s) = settings(
            &[("EC2_TOOLS_SSH_PORT", "2222")],
            Some(r#"{"ssh_user": "ec2-user", "address": "private-ip"}"#),
        );
        let ssh = SshArgs {
            address: Some("public-ip".into()),
            ..Default::default()
        }
        .resolve(&s)
        .unwrap();
        assert_eq!((ssh.user, ssh.fallback_user.as_str()), (None, "ec2-user"));
        assert_eq!((ssh.port, ssh.fallback_port), (Some(2222), 2222));
        assert_eq!(ssh.address, Some(AddressMode::PublicIp));
        assert_eq!(ssh.connect_timeout, std::time::Duration::from_secs(10));
    }

    #[test]
    fn a_missing_identity_file_is_reported_not_checked_and_a_file_key_shows_as_file() {
        let (d, s) = settings(&[], Some(r#"{"ssh_key": "nosuch/key"}"#));
        let ssh = SshArgs::default().resolve(&s).unwrap();
        let want = std::fs::canonicalize(d.path()).unwrap().join("nosuch/key");
        assert_eq!(ssh.identity, Some(want));
        let t = s.trace();
        let key = t.iter().find(|t| t.key == "ssh_key").unwrap();
        assert!(matches!(key.source, Source::File(_)), "{key:?}");
    }

    #[test]
    fn launch_settings_parse_lists_ttl_and_spot() {
        let (_d, s) = settings(
            &[("EC2_TOOLS_SECURITY_GROUP_IDS", "sg-1, sg-2")],
            Some(r#"{"ttl": "off", "spot": "fallback"}"#),
        );
        let l = LaunchArgs::default().resolve(&s).unwrap();
        assert_eq!(l.security_groups, vec!["sg-1", "sg-2"]);
        assert_eq!((l.ttl, l.spot), (None, SpotMode::Fallback));
        assert_eq!(l.instance_types, ["t3.micro"]);
        assert!(l.name_tags);
    }

    /// Every key of the settings table is read by some flag group, from every layer: the
    /// environment when set, else the file (a key no group asks for would silently do nothing).
    #[test]
    fn every_setting_is_resolved_from_env_and_from_file() {
        let values = [
            ("region", "AWS_REGION", "us-west-2"),
            ("case", "EC2_TOOLS_CASE", "c1"),
            ("ami", "EC2_TOOLS_AMI", "ami-1"),
            ("instance_type", "EC2_TOOLS_INSTANCE_TYPE", "t3.nano"),
            ("key_name", "EC2_TOOLS_KEY_NAME", "k"),
            ("subnet_id", "EC2_TOOLS_SUBNET_ID", "subnet-1"),
            (
                "security_group_ids",
                "EC2_TOOLS_SECURITY_GROUP_IDS",
                "sg-1,sg-2",
            ),
            ("ssh_cidr", "EC2_TOOLS_SSH_CIDR", "10.0.0.0/8"),
            ("open", "EC2_TOOLS_OPEN", "80,8080"),
            ("launch_burst", "EC2_TOOLS_LAUNCH_BURST", "100"),
            ("launch_rate", "EC2_TOOLS_LAUNCH_RATE", "0.5"),
            ("ttl", "EC2_TOOLS_TTL", "90m"),
            ("spot", "EC2_TOOLS_SPOT", "fallback"),
            ("name_tags", "EC2_TOOLS_NAME_TAGS", "off"),
            ("placement", "EC2_TOOLS_PLACEMENT", "cluster"),
            ("network", "EC2_TOOLS_NETWORK", "auto"),
            ("network_cidr", "EC2_TOOLS_NETWORK_CIDR", "10.9.0.0/16"),
            ("ssh_user", "EC2_TOOLS_SSH_USER", "ec2-user"),
            ("ssh_key", "EC2_TOOLS_SSH_KEY", "/keys/id"),
            ("ssh_port", "EC2_TOOLS_SSH_PORT", "2222"),
            ("address", "EC2_TOOLS_ADDRESS", "private-ip"),
            ("connect_timeout", "EC2_TOOLS_CONNECT_TIMEOUT", "3s"),
            ("ssh_allow", "EC2_TOOLS_SSH_ALLOW", "127.0.0.0/8"),
            ("ssh_jump", "EC2_TOOLS_SSH_JUMP", "ec2-user@10.0.0.1:2222"),
            ("auth_grace", "EC2_TOOLS_AUTH_GRACE", "30s"),
            ("persist", "EC2_TOOLS_PERSIST", "5m"),
        ];
        assert_eq!(values.len(), keys::KEYS.len());
        let resolve_all = |s: &Settings| {
            resolve_case(s, &CaseArgs::default(), &AwsArgs::default()).unwrap();
            LaunchArgs::default().resolve(s).unwrap();
            SshArgs::default().resolve(s).unwrap();
            s.trace()
        };
        let env: Vec<(&str, &str)> = values.iter().map(|(_, e, v)| (*e, *v)).collect();
        let (_d, s) = settings(&env, None);
        let trace = resolve_all(&s);
        for (key, env, value) in values {
            let t = trace.iter().find(|t| t.key == key).expect(key);
            assert_eq!((t.value.as_str(), &t.source), (value, &Source::Env(env)));
        }
        let file: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(k, _, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let (_d, s) = settings(&[], Some(&serde_json::Value::Object(file).to_string()));
        for t in resolve_all(&s) {
            assert!(matches!(t.source, Source::File(_)), "{t:?}");
        }
    }

    #[test]
    fn the_case_is_named_after_the_directory_unless_told() {
        let (d, s) = settings(&[], None);
        let cfg = resolve_case(&s, &CaseArgs::default(), &AwsArgs::default()).unwrap();
        assert_eq!(
            cfg.case,
            d.path().file_name().unwrap().to_str().unwrap().to_owned()
        );
        assert_eq!(cfg.region, None);
        let (_d, s) = settings(&[("EC2_TOOLS_CASE", "bad name")], None);
        let e = resolve_case(&s, &CaseArgs::default(), &AwsArgs::default()).unwrap_err();
        assert!(e.message.starts_with("EC2_TOOLS_CASE: "), "{e}");
    }
}
