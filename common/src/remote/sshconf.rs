//! The case for OpenSSH's own tools: `.ec2-tools/known_hosts` (each instance's host key as
//! first seen, keyed by instance id) and `.ec2-tools/ssh_config` (one `Host` entry per
//! instance — by id, by `<case>.<index>` and by index — with its address, port, user and
//! identity, and `StrictHostKeyChecking yes` against those pinned keys). So plain `ssh`,
//! `scp` and `rsync -e` work from test-case scripts without prompts and without throwing the
//! pinning away (`ec2-exec-local` exports `CURRENT_SSH_CONFIG` and `CURRENT_SSH_HOST`;
//! `ec2-ssh` logs in with it). Rewritten whole (temp file + rename) by every tool that changes
//! instances. What does not belong here: connecting (ssh.rs).

use super::ssh::Target;
use crate::case::descriptor::Descriptor;
use crate::case::store::{Store, STATE_DIR};
use crate::config::SshConfig;
use crate::error::{Result, ResultExt};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The bastion's `Host` name in the generated config (`--jump`).
pub const BASTION: &str = "ec2-tools-bastion";

/// Where the generated config is.
pub fn config_path(store: &Store) -> PathBuf {
    store.dir().join(STATE_DIR).join("ssh_config")
}

/// Where the pinned host keys are.
pub fn known_hosts_path(store: &Store) -> PathBuf {
    store.dir().join(STATE_DIR).join("known_hosts")
}

/// A value for ssh_config: quoted when it holds spaces (paths).
fn value(s: &str) -> String {
    if s.contains(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_owned()
    }
}

/// The two files' text for these descriptors (pure: tested without a disk).
pub fn render(
    case: &str,
    descs: &[Descriptor],
    cfg: &SshConfig,
    known_hosts: &std::path::Path,
    bastion_key: Option<&str>,
) -> (String, String) {
    let mut conf = String::from(
        "# Written by ec2-tools from the instance descriptors; rewritten on every change.\n\
         # ssh -F .ec2-tools/ssh_config <instance-id | case.index | index>\n",
    );
    let mut known = String::new();
    let identity = |conf: &mut String| {
        if let Some(id) = &cfg.identity {
            let id = std::fs::canonicalize(id).unwrap_or_else(|_| id.clone());
            let _ = writeln!(conf, "  IdentityFile {}", value(&id.display().to_string()));
            let _ = writeln!(conf, "  IdentitiesOnly yes");
        }
    };
    let pinned = |conf: &mut String, alias: &str| {
        let _ = writeln!(conf, "  HostKeyAlias {alias}");
        let _ = writeln!(
            conf,
            "  UserKnownHostsFile {}",
            value(&known_hosts.display().to_string())
        );
        let _ = writeln!(conf, "  StrictHostKeyChecking yes");
        let _ = writeln!(conf, "  BatchMode yes");
    };
    if let Some(j) = &cfg.jump {
        let _ = writeln!(conf, "\nHost {BASTION}");
        let _ = writeln!(conf, "  HostName {}", value(&j.host));
        let _ = writeln!(conf, "  Port {}", j.port);
        let _ = writeln!(conf, "  User {}", value(&super::jump::user(j, cfg)));
        identity(&mut conf);
        pinned(&mut conf, BASTION);
        if let Some(k) = bastion_key {
            let _ = writeln!(known, "{BASTION} {k}");
        }
    }
    for d in descs {
        let Ok(t) = Target::for_descriptor(d, cfg) else {
            continue;
        };
        if !d.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let _ = writeln!(conf, "\nHost {} {case}.{} {}", d.id, d.index, d.index);
        if cfg.transport_for(std::slice::from_ref(d)) == crate::config::Transport::Ssm {
            // No inbound port: what would log in says so in one line and fails.
            let _ = writeln!(conf, "  LogLevel QUIET");
            let _ = writeln!(
                conf,
                "  ProxyCommand sh -c 'echo \"ec2-tools: %n is reached over SSM (transport \
                 ssm): no SSH login; use ec2-exec-remote, ec2-put, ec2-get\" >&2; exit 1'"
            );
            continue;
        }
        let _ = writeln!(conf, "  HostName {}", value(&t.address));
        let _ = writeln!(conf, "  Port {}", t.port);
        let _ = writeln!(conf, "  User {}", value(&t.user));
        identity(&mut conf);
        pinned(&mut conf, &d.id);
        if cfg.jump.is_some() {
            let _ = writeln!(conf, "  ProxyJump {BASTION}");
        }
        if let Some(k) = &d.ssh.host_public_key {
            let _ = writeln!(known, "{} {k}", d.id);
        }
    }
    (conf, known)
}

/// Bring both files up to date in a case that has its state directory; a failure is a note,
/// not an error (the tools themselves do not need the files).
pub fn update(store: &Store, cfg: &SshConfig) {
    if !store.dir().join(STATE_DIR).is_dir() {
        return;
    }
    if let Err(e) = write(store, cfg) {
        crate::output::note(format!("could not update the case's ssh_config: {e}"));
    }
}

/// Rewrite both files from the case's descriptors.
pub fn write(store: &Store, cfg: &SshConfig) -> Result<()> {
    let descs = store.load_all()?;
    let dir = store.state_dir()?;
    let known_path = known_hosts_path(store);
    let known_abs = std::fs::canonicalize(&dir)
        .map(|d| d.join("known_hosts"))
        .unwrap_or(known_path.clone());
    let case = descs.first().map(|d| d.case.clone()).unwrap_or_default();
    let bastion_key = cfg.jump.as_ref().and_then(super::jump::pinned_public_key);
    let (conf, known) = render(&case, &descs, cfg, &known_abs, bastion_key.as_deref());
    for (path, text) in [(config_path(store), conf), (known_path, known)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).infra_err(tmp.display())?;
        std::fs::rename(&tmp, &path).infra_err(path.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_is_reachable_by_id_case_index_and_index_pinned_to_its_key() {
        let d: Descriptor = serde_json::from_value(serde_json::json!({
            "id": "i-0123abcd", "index": 2, "case": "tc", "region": null, "az": null,
            "type": null, "ami": null, "state": "running", "public_dns": null,
            "public_ip": null, "private_ip": "10.0.0.5", "private_dns": null,
            "address": "10.0.0.5",
            "ssh": {"user": "ubuntu", "port": 22, "host_key": "SHA256:x",
                    "host_public_key": "ssh-ed25519 AAAAkey"},
            "launched_at": null,
        }))
        .unwrap();
        let cfg = SshConfig {
            user: None,
            identity: Some("/keys/my key".into()),
            port: None,
            address: None,
            fallback_user: "ec2-user".into(),
            fallback_port: 22,
            fallback_address: crate::config::AddressMode::Auto,
            allow: None,
            connect_timeout: std::time::Duration::from_secs(10),
            repin: None,
            jump: None,
            auth_grace: std::time::Duration::from_secs(60),
            host_key_check: Default::default(),
            transport: None,
            ssm_bucket: None,
            persist: None,
        };
        let (conf, known) = render(
            "tc",
            &[d],
            &cfg,
            std::path::Path::new("/c/known_hosts"),
            None,
        );
        assert!(
            conf.contains(
                "\nHost i-0123abcd tc.2 2\n  HostName 10.0.0.5\n  Port 22\n  User ubuntu\n"
            ),
            "{conf}"
        );
        assert!(conf.contains("  IdentityFile \"/keys/my key\"\n"), "{conf}");
        assert!(conf.contains("  HostKeyAlias i-0123abcd\n  UserKnownHostsFile /c/known_hosts\n  StrictHostKeyChecking yes\n"), "{conf}");
        assert_eq!(known, "i-0123abcd ssh-ed25519 AAAAkey\n");
    }
}
