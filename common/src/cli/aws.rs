//! The command-line groups about the case and what it launches or acts on over AWS:
//! `--region`, `--case`, `--dir` with the case, the launch flags of ec2-create and friends, and
//! the fleet tools' flags (hosts.rs's selection and SSH, plus the case). What does not belong
//! here: reaching hosts (hosts.rs).

use super::{text, DirArgs, HostArgs};
use crate::case::select::Selection;
use crate::case::store::{STATE_DIR, USER_DATA_FILE};
use crate::config::{
    parse_case, parse_cidr, parse_list, parse_network, parse_nonempty_list, parse_on_off,
    parse_ports, parse_positive, parse_rate, parse_tags, parse_ttl, parse_usd, parse_volume_size,
    parse_volume_type, AmiSpec, Config, Imds, InstanceOptions, LaunchConfig, Placement, SpotMode,
    SshConfig,
};
use crate::error::{Error, Result};
use crate::settings::{self as keys, Settings, Source};
use clap::Args;
use std::path::PathBuf;

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
    /// The image: an AMI id, an alias resolved through AWS's public SSM parameters for the
    /// instance type's architecture (ubuntu — the latest LTS, the default —, ubuntu-24.04,
    /// ubuntu-22.04, al2023, debian-12; an alias also gives the login user), or
    /// resolve:ssm:/parameter/name
    #[arg(long, value_name = "AMI_ID|ALIAS")]
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
    /// Tag every instance, volume and network interface, and everything the case makes, at
    /// creation (repeatable; for accounts whose policies require cost tags)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// The instance metadata service: `v2` only (tokens required, hop limit 2) or `v1` too
    #[arg(long, value_name = "v2|v1")]
    pub imds: Option<String>,
    /// The root volume's size in GB [default: the AMI's]
    #[arg(long, value_name = "GB")]
    pub volume_size: Option<String>,
    /// The root volume's EBS type
    #[arg(long, value_name = "gp3|gp2|io2|…")]
    pub volume_type: Option<String>,
    /// `off`: an unencrypted root volume (it is encrypted by default, with the account's
    /// default EBS key)
    #[arg(long, value_name = "on|off")]
    pub volume_encrypted: Option<String>,
    /// The instance profile the instances run with (an IAM role's), by name or ARN: for
    /// instances that write to S3 or read a secret themselves
    #[arg(long, value_name = "NAME|ARN")]
    pub iam_profile: Option<String>,
    /// Refuse a launch that would make the case cost more than USD per hour (on-demand
    /// prices from the Price List API, spot from the price history; an unknown price refuses
    /// too)
    #[arg(long, value_name = "USD")]
    pub max_hourly_cost: Option<String>,
    /// Your own user data (a cloud-config or a script), run by cloud-init beside the TTL's
    /// part (one MIME multipart archive; gzip when only that fits AWS's 16 KB); recorded in
    /// the case, so that later launches of it use the same
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
}

impl LaunchArgs {
    pub fn resolve(&self, s: &Settings) -> Result<LaunchConfig> {
        let has_default = "a default";
        let ami = s
            .get(&keys::AMI, self.ami.as_deref(), AmiSpec::parse)?
            .expect(has_default);
        let config = LaunchConfig {
            ami: ami.0,
            ami_configured: ami.1 != Source::Default,
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
            instance: self.instance_options(s)?,
            max_hourly_cost: s.value(
                &keys::MAX_HOURLY_COST,
                self.max_hourly_cost.as_deref(),
                parse_usd,
            )?,
            user_data: None,
            record_user_data: None,
        };
        config.with_user_data(self.user_data_file(s)?)
    }

    /// The user's own user data: the file given now (flag, environment, settings file; read
    /// here, a missing one is bad input naming it), else the one the case recorded.
    fn user_data_file(&self, s: &Settings) -> Result<Option<(String, Vec<u8>, bool)>> {
        let flag = self.user_data.as_ref().map(|p| p.display().to_string());
        if let Some(path) = s.value(&keys::USER_DATA, flag.as_deref(), text)? {
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::input(format!("--user-data {path}: {e}")))?;
            return Ok(Some((path, bytes, true)));
        }
        let recorded = s.dir().join(STATE_DIR).join(USER_DATA_FILE);
        match std::fs::read(&recorded) {
            Ok(bytes) => Ok(Some((recorded.display().to_string(), bytes, false))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::input(format!("{}: {e}", recorded.display()))),
        }
    }

    /// `--imds`, the root volume, `--iam-profile` and `--tag`.
    fn instance_options(&self, s: &Settings) -> Result<InstanceOptions> {
        let has_default = "a default";
        let flag_tags = (!self.tags.is_empty()).then(|| self.tags.join(","));
        Ok(InstanceOptions {
            imds: s
                .value(&keys::IMDS, self.imds.as_deref(), Imds::parse)?
                .expect(has_default),
            volume_size: s.value(
                &keys::VOLUME_SIZE,
                self.volume_size.as_deref(),
                parse_volume_size,
            )?,
            volume_type: s
                .value(
                    &keys::VOLUME_TYPE,
                    self.volume_type.as_deref(),
                    parse_volume_type,
                )?
                .expect(has_default),
            volume_encrypted: s
                .value(
                    &keys::VOLUME_ENCRYPTED,
                    self.volume_encrypted.as_deref(),
                    parse_on_off,
                )?
                .expect(has_default),
            iam_profile: s.value(&keys::IAM_PROFILE, self.iam_profile.as_deref(), text)?,
            tags: s
                .value(&keys::TAGS, flag_tags.as_deref(), parse_tags)?
                .unwrap_or_default(),
        })
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
