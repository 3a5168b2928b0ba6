//! The settings that exist: one row each — file key, environment variable, default — written
//! once, and the `--help` table made from them. Which layer wins is the parent module's
//! business; what a value means is config.rs's.

/// One setting: file key, environment variable, default (as text, parsed like any other
/// layer's value).
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub default: Option<&'static str>,
    /// A path: relative values in a settings file are taken from that file's directory.
    pub path: bool,
}

const fn key(name: &'static str, env: &'static str, default: Option<&'static str>) -> Key {
    Key {
        name,
        env: Some(env),
        default,
        path: false,
    }
}

pub const REGION: Key = key("region", "AWS_REGION", None);
/// Default: the test-case directory's basename.
pub const CASE: Key = key("case", "EC2_TOOLS_CASE", None);
/// An AMI id, an alias (`ubuntu`, `al2023`, …: crate::catalog) or `resolve:ssm:/parameter`.
pub const AMI: Key = key("ami", "EC2_TOOLS_AMI", Some(crate::catalog::DEFAULT_AMI));
pub const INSTANCE_TYPE: Key = key("instance_type", "EC2_TOOLS_INSTANCE_TYPE", Some("t3.micro"));
pub const KEY_NAME: Key = key("key_name", "EC2_TOOLS_KEY_NAME", None);
pub const SUBNET: Key = key("subnet_id", "EC2_TOOLS_SUBNET_ID", None);
pub const SECURITY_GROUPS: Key = key("security_group_ids", "EC2_TOOLS_SECURITY_GROUP_IDS", None);
pub const SSH_CIDR: Key = key("ssh_cidr", "EC2_TOOLS_SSH_CIDR", None);
pub const OPEN: Key = key("open", "EC2_TOOLS_OPEN", None);
/// RunInstances pacing: AWS's per-account bucket (instances) and its refill (instances/s).
pub const LAUNCH_BURST: Key = key("launch_burst", "EC2_TOOLS_LAUNCH_BURST", Some("1000"));
pub const LAUNCH_RATE: Key = key("launch_rate", "EC2_TOOLS_LAUNCH_RATE", Some("2"));
pub const TTL: Key = key("ttl", "EC2_TOOLS_TTL", Some("4h"));
pub const SPOT: Key = key("spot", "EC2_TOOLS_SPOT", Some("off"));
pub const NAME_TAGS: Key = key("name_tags", "EC2_TOOLS_NAME_TAGS", Some("on"));
pub const SSH_USER: Key = key("ssh_user", "EC2_TOOLS_SSH_USER", Some("ubuntu"));
/// Default: the case key when the case has one, else ssh-agent and ~/.ssh's keys.
pub const SSH_KEY: Key = Key {
    path: true,
    ..key("ssh_key", "EC2_TOOLS_SSH_KEY", None)
};
pub const SSH_PORT: Key = key("ssh_port", "EC2_TOOLS_SSH_PORT", Some("22"));
pub const ADDRESS: Key = key("address", "EC2_TOOLS_ADDRESS", Some("auto"));
pub const CONNECT_TIMEOUT: Key = key("connect_timeout", "EC2_TOOLS_CONNECT_TIMEOUT", Some("10s"));
pub const SSH_ALLOW: Key = key("ssh_allow", "EC2_TOOLS_SSH_ALLOW", None);
pub const NETWORK: Key = key("network", "EC2_TOOLS_NETWORK", Some("default"));
pub const NETWORK_CIDR: Key = key(
    "network_cidr",
    "EC2_TOOLS_NETWORK_CIDR",
    Some("10.0.0.0/16"),
);
pub const PLACEMENT: Key = key("placement", "EC2_TOOLS_PLACEMENT", None);
pub const SSH_JUMP: Key = key("ssh_jump", "EC2_TOOLS_SSH_JUMP", None);
pub const AUTH_GRACE: Key = key("auth_grace", "EC2_TOOLS_AUTH_GRACE", Some("60s"));
/// How a host key is trusted at first contact: `console` (the key cloud-init printed to the
/// instance's console, waited for), `console-or-tofu` (that when it is there, else trust on
/// first use and check it against the console later), `tofu`.
pub const HOST_KEY_CHECK: Key = key(
    "host_key_check",
    "EC2_TOOLS_HOST_KEY_CHECK",
    Some("console-or-tofu"),
);
/// How commands reach the instances: `ssh` or `ssm` (Systems Manager Run Command). Unset:
/// what each instance was launched for (its descriptor), else `ssh`.
pub const TRANSPORT: Key = key("transport", "EC2_TOOLS_TRANSPORT", None);
/// The S3 bucket SSM writes commands' whole output to (inline output is cut at 24,000
/// characters of stdout, 8,000 of stderr).
pub const SSM_BUCKET: Key = key("ssm_bucket", "EC2_TOOLS_SSM_BUCKET", None);
/// The instance metadata service: `v2` (tokens required) or `v1`.
pub const IMDS: Key = key("imds", "EC2_TOOLS_IMDS", Some("v2"));
/// The root volume's size in GB. Default: the AMI's.
pub const VOLUME_SIZE: Key = key("volume_size", "EC2_TOOLS_VOLUME_SIZE", None);
pub const VOLUME_TYPE: Key = key("volume_type", "EC2_TOOLS_VOLUME_TYPE", Some("gp3"));
pub const VOLUME_ENCRYPTED: Key = key("volume_encrypted", "EC2_TOOLS_VOLUME_ENCRYPTED", Some("on"));
pub const IAM_PROFILE: Key = key("iam_profile", "EC2_TOOLS_IAM_PROFILE", None);
/// `KEY=VALUE,…` (an object in a settings file).
pub const TAGS: Key = key("tags", "EC2_TOOLS_TAGS", None);
/// The user's own user data (a cloud-config or a script), beside the TTL's part.
pub const USER_DATA: Key = Key {
    path: true,
    ..key("user_data", "EC2_TOOLS_USER_DATA", None)
};
/// A launch that would make the case cost more than this many USD per hour is refused.
pub const MAX_HOURLY_COST: Key = key("max_hourly_cost", "EC2_TOOLS_MAX_HOURLY_COST", None);
/// Keep the case's SSH sessions open between tool runs this long after the last use (`off`).
pub const PERSIST: Key = key("persist", "EC2_TOOLS_PERSIST", Some("10m"));

/// Every setting, in the order `--show-config` lists them.
pub const KEYS: &[&Key] = &[
    &REGION,
    &CASE,
    &AMI,
    &INSTANCE_TYPE,
    &KEY_NAME,
    &SUBNET,
    &SECURITY_GROUPS,
    &SSH_CIDR,
    &OPEN,
    &LAUNCH_BURST,
    &LAUNCH_RATE,
    &TTL,
    &SPOT,
    &NAME_TAGS,
    &PLACEMENT,
    &NETWORK,
    &NETWORK_CIDR,
    &IMDS,
    &VOLUME_SIZE,
    &VOLUME_TYPE,
    &VOLUME_ENCRYPTED,
    &IAM_PROFILE,
    &TAGS,
    &USER_DATA,
    &MAX_HOURLY_COST,
    &SSH_USER,
    &SSH_KEY,
    &SSH_PORT,
    &ADDRESS,
    &CONNECT_TIMEOUT,
    &SSH_ALLOW,
    &SSH_JUMP,
    &AUTH_GRACE,
    &HOST_KEY_CHECK,
    &PERSIST,
    &TRANSPORT,
    &SSM_BUCKET,
];

/// The settings table for `--help`: file key, environment variable, default.
pub fn help_table() -> String {
    let mut s = String::from(
        "Settings (flag > environment > ec2-tools.json in the directory, then its parents > \
         $XDG_CONFIG_HOME/ec2-tools/config.json > default):\n",
    );
    for k in KEYS {
        s.push_str(&format!(
            "  {:<20} {:<30} {}\n",
            k.name,
            k.env.unwrap_or("-"),
            k.default.unwrap_or("-")
        ));
    }
    s
}
