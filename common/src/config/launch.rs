//! What a launch asks of EC2, resolved: types, images, subnets, market, placement, the
//! instance's options (tags, volume, metadata service, profile), user data and TTL, and the
//! grammar of their values. What does not belong here: launching (aws/fleet.rs), the flags
//! (cli/aws.rs).

use super::AmiSpec;
use ipnet::IpNet;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
