//! The command-line groups the tools share (like fd's cli.rs), and their `resolve()` into the
//! plain configuration of config.rs.
//!
//! Here: the shared pieces (`--dir`, the default fan-out); aws.rs has the groups about the
//! case and its launches, hosts.rs those about reaching and selecting hosts and presenting
//! their output. A group holds what the user typed, as text; resolving it asks the settings layers
//! (settings/) which value wins for each setting, and parses the winner with the grammar in
//! config.rs. Each tool's own flags live with the tool (cmd/), flattening these groups. What
//! does not belong here: defaults and environment variable names (the settings table), value
//! grammar (config.rs), anything that reads descriptors or talks to AWS or hosts.

use crate::error::Result;
use crate::settings::Settings;
use clap::Args;
use std::path::PathBuf;

mod aws;
mod hosts;
pub use aws::*;
pub use hosts::*;

fn text(s: &str) -> std::result::Result<String, String> {
    Ok(s.to_owned())
}

/// How many hosts the SSH tools log in to at once (`-f/--fanout`). Chosen from `make bench`
/// at 50 ms RTT, where a login's ~7 round trips dominate: 128 beat 32 by 15–20 % (100 and 300
/// hosts) and 256 gained nothing more; at 0 ms it costs nothing. pdsh's is 32. Each host is
/// its own sshd, so this is not bounded by one sshd's MaxStartups.
pub const DEFAULT_FANOUT: u32 = 128;

/// The most hosts that log in at once (`-f`), for every tool and the library alike.
pub const MAX_FANOUT: u32 = 4096;

/// `--json`: a tool's records as one JSON object per line (their fields: README, "Machine
/// output"), for the tools that print records and run no commands.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Output")]
pub struct JsonArgs {
    /// One JSON object per line on stdout instead of text columns (fields in README)
    #[arg(long, global = true)]
    pub json: bool,
}

impl JsonArgs {
    /// Records print as asked from now on.
    pub fn apply(&self) {
        crate::output::records_as_json(self.json);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AddressMode, SpotMode};
    use crate::settings::{self as keys, Source};

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
    fn an_images_alias_gives_the_login_user_only_where_no_one_set_ssh_user() {
        use crate::config::AmiSpec;
        let al2023 = AmiSpec::parse("al2023").unwrap();
        let (_d, s) = settings(&[], None);
        let ssh = SshArgs::default().resolve_for_launch(&s, &al2023).unwrap();
        assert_eq!((ssh.user, ssh.fallback_user.as_str()), (None, "ec2-user"));
        let id = AmiSpec::parse("ami-0123456789abcdef0").unwrap();
        let ssh = SshArgs::default().resolve_for_launch(&s, &id).unwrap();
        assert_eq!(
            ssh.fallback_user, "ubuntu",
            "an id says nothing: the default"
        );
        let (_d, s) = settings(&[], Some(r#"{"ssh_user": "admin"}"#));
        let ssh = SshArgs::default().resolve_for_launch(&s, &al2023).unwrap();
        assert_eq!(ssh.fallback_user, "admin", "a file's ssh_user wins");
        let (_d, s) = settings(&[("EC2_TOOLS_SSH_USER", "me")], None);
        let ssh = SshArgs::default().resolve_for_launch(&s, &al2023).unwrap();
        assert_eq!(ssh.user.as_deref(), Some("me"), "the environment wins");
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
        // The user data setting names a file that is read: a script of this test's own.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init.sh");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let script = path.to_str().unwrap();
        let values = [
            ("region", "AWS_REGION", "us-west-2"),
            ("case", "EC2_TOOLS_CASE", "c1"),
            ("ami", "EC2_TOOLS_AMI", "ami-12345678"),
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
            ("imds", "EC2_TOOLS_IMDS", "v1"),
            ("volume_size", "EC2_TOOLS_VOLUME_SIZE", "40"),
            ("volume_type", "EC2_TOOLS_VOLUME_TYPE", "io2"),
            ("volume_encrypted", "EC2_TOOLS_VOLUME_ENCRYPTED", "off"),
            ("iam_profile", "EC2_TOOLS_IAM_PROFILE", "loadgen"),
            ("tags", "EC2_TOOLS_TAGS", "team=load,cost=42"),
            ("user_data", "EC2_TOOLS_USER_DATA", script),
            ("max_hourly_cost", "EC2_TOOLS_MAX_HOURLY_COST", "2.5"),
            ("ssh_user", "EC2_TOOLS_SSH_USER", "ec2-user"),
            ("ssh_key", "EC2_TOOLS_SSH_KEY", "/keys/id"),
            ("ssh_port", "EC2_TOOLS_SSH_PORT", "2222"),
            ("address", "EC2_TOOLS_ADDRESS", "private-ip"),
            ("connect_timeout", "EC2_TOOLS_CONNECT_TIMEOUT", "3s"),
            ("ssh_allow", "EC2_TOOLS_SSH_ALLOW", "127.0.0.0/8"),
            ("ssh_jump", "EC2_TOOLS_SSH_JUMP", "ec2-user@10.0.0.1:2222"),
            ("auth_grace", "EC2_TOOLS_AUTH_GRACE", "30s"),
            ("host_key_check", "EC2_TOOLS_HOST_KEY_CHECK", "console"),
            ("persist", "EC2_TOOLS_PERSIST", "5m"),
            ("transport", "EC2_TOOLS_TRANSPORT", "ssm"),
            ("ssm_bucket", "EC2_TOOLS_SSM_BUCKET", "my-output"),
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
    fn tags_in_a_settings_file_are_an_object_and_a_flag_beats_it() {
        let (_d, s) = settings(&[], Some(r#"{"tags": {"team": "load", "cost": 42}}"#));
        let l = LaunchArgs::default().resolve(&s).unwrap();
        assert_eq!(
            l.instance.tags,
            vec![
                ("cost".to_owned(), "42".to_owned()),
                ("team".to_owned(), "load".to_owned())
            ]
        );
        let flags = LaunchArgs {
            tags: vec!["team=perf".into()],
            ..Default::default()
        };
        assert_eq!(
            flags.resolve(&s).unwrap().instance.tags,
            [("team".into(), "perf".into())]
        );
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
