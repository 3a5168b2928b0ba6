//! The command-line groups about hosts: how to reach them over SSH, which ones (`--select`,
//! `--role`, `--from`), and how their output is presented. What does not belong here: the
//! case and its launches (aws.rs).

use super::{text, DirArgs};
use crate::case::select::{parse_indexes, Selection};
use crate::case::store::{login_identity, STATE_DIR};
use crate::config::{
    parse_cidrs, parse_duration, parse_ttl, AddressMode, AmiSpec, HostKeyCheck, Jump, Label,
    OutputConfig, OutputMode, SshConfig, Transport,
};
use crate::error::Result;
use crate::settings::{self as keys, Settings, Source};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;

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
    /// How commands reach the instances: ssh, or ssm (Systems Manager Run Command: no
    /// inbound port; AWS fans out) [default: what each instance was launched for, else ssh]
    #[arg(long, value_name = "ssh|ssm")]
    pub transport: Option<String>,
    /// With ssm: the S3 bucket SSM writes each command's whole output to (inline output is
    /// cut at 24,000 characters of stdout and 8,000 of stderr)
    #[arg(long, value_name = "BUCKET")]
    pub ssm_bucket: Option<String>,
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
        let configured = s.value(&keys::SSH_KEY, flag.as_deref(), text)?;
        let identity = login_identity(configured.clone().map(PathBuf::from), s.dir(), false);
        if let (None, Some(key)) = (configured, &identity) {
            s.record(
                keys::SSH_KEY.name,
                key.display().to_string(),
                Source::Default,
            );
        }
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
            host_key_check: s
                .value(&keys::HOST_KEY_CHECK, None, HostKeyCheck::parse)?
                .expect(has_default),
            transport: s.value(
                &keys::TRANSPORT,
                self.transport.as_deref(),
                Transport::parse,
            )?,
            ssm_bucket: s.value(&keys::SSM_BUCKET, self.ssm_bucket.as_deref(), text)?,
        })
    }

    /// [`SshArgs::resolve`] for instances about to be launched from `ami`: where no one set
    /// `ssh_user` (not a flag, the environment or a file), the image's own login user when
    /// its alias or parameter says (al2023: ec2-user, debian-12: admin).
    pub fn resolve_for_launch(&self, s: &Settings, ami: &AmiSpec) -> Result<SshConfig> {
        let mut ssh = self.resolve(s)?;
        let defaulted = s
            .raw(&keys::SSH_USER, self.user.as_deref())
            .is_none_or(|(_, source)| source == Source::Default);
        if let (true, Some(user)) = (defaulted, ami.login_user()) {
            ssh.fallback_user = user.to_owned();
            s.record(keys::SSH_USER.name, user.to_owned(), Source::Default);
        }
        Ok(ssh)
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
