//! The host keys an instance published on its console: cloud-init prints them between
//! `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----` as it boots, and
//! GetConsoleOutput (`Latest=true`: what Nitro has now, not the last snapshot) returns them —
//! seconds late on Nitro, minutes at worst. The key a host offers at first contact is checked
//! against them, so a pin is a verified key, not a blind trust on first use; and a pin that
//! was trusted before the console had the keys is checked against them later.
//!
//! What is decided here is pure ([`host_keys`], [`verdict`]) and unit-tested; the calls are
//! thin. What does not belong here: when to read the console (aws/wait.rs at first contact,
//! cmd/ before the tools connect) and the SSH handshake that compares (remote/ssh.rs).

use super::ec2::Ec2;
use super::errors::aws_error;
use crate::case::descriptor::{Descriptor, FIRST_USE, FROM_CONSOLE};
use crate::config::HostKeyCheck;
use crate::error::Result;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
const END: &str = "-----END SSH HOST KEY KEYS-----";

/// The SHA-256 fingerprints (`SHA256:…`, as OpenSSH prints them) of the host keys in a
/// console's text; `None` when it has no complete key block yet (cloud-init has not got
/// there, or the console is not captured yet). The last block counts (a reboot prints again).
pub fn host_keys(console: &str) -> Option<Vec<String>> {
    let start = console.rfind(BEGIN)? + BEGIN.len();
    let block = &console[start..];
    let block = &block[..block.find(END)?];
    let keys: Vec<String> = block
        .lines()
        .filter_map(|line| {
            // Each line is `type base64 comment`, possibly after a console timestamp.
            let from = ["ssh-", "ecdsa-"]
                .iter()
                .filter_map(|p| line.find(p))
                .min()?;
            let key = ssh_key::PublicKey::from_openssh(line[from..].trim()).ok()?;
            Some(key.fingerprint(ssh_key::HashAlg::Sha256).to_string())
        })
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// What a pinned key is, against the console's keys.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to check it against yet (or no pin): as it was.
    Unknown,
    /// Among the console's keys: verified.
    Verified,
    /// Not among them: the host that was trusted is not this instance.
    Mismatch,
}

/// A pin against the console's fingerprints.
pub fn verdict(pin: Option<&str>, console: Option<&[String]>) -> Verdict {
    match (pin, console) {
        (Some(pin), Some(keys)) if keys.iter().any(|k| k == pin) => Verdict::Verified,
        (Some(_), Some(_)) => Verdict::Mismatch,
        _ => Verdict::Unknown,
    }
}

/// The console's host-key fingerprints of each instance (`None`: none published yet), one
/// GetConsoleOutput each, a few at a time. Hosts of your own (`h-…`) have no console. Denied
/// (a least-privilege account without `ec2:GetConsoleOutput`), every instance is `None` and
/// the error is returned for the caller to say once.
pub async fn read(
    ec2: &Ec2,
    ids: &[String],
) -> (BTreeMap<String, Option<Vec<String>>>, Option<crate::Error>) {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut calls = tokio::task::JoinSet::new();
    for id in ids.iter().filter(|id| id.starts_with("i-")) {
        let (ec2, id, gate) = (ec2.clone(), id.clone(), gate.clone());
        calls.spawn(async move {
            let _turn = gate.acquire().await;
            let answer = one(&ec2, &id).await;
            (id, answer)
        });
    }
    let mut out = BTreeMap::new();
    let mut failed = None;
    while let Some(Ok((id, answer))) = calls.join_next().await {
        match answer {
            Ok(keys) => {
                out.insert(id, keys);
            }
            Err(e) => {
                out.insert(id, None);
                failed.get_or_insert(e);
            }
        }
    }
    (out, failed)
}

async fn one(ec2: &Ec2, id: &str) -> Result<Option<Vec<String>>> {
    use base64::Engine;
    let out = ec2
        .client
        .get_console_output()
        .instance_id(id)
        .latest(true)
        .send()
        .await
        .map_err(|e| aws_error("GetConsoleOutput", e).context(id))?;
    let Some(text) = out.output().filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|_| text.as_bytes().to_vec());
    Ok(host_keys(&String::from_utf8_lossy(&bytes)))
}

/// Before a tool connects: each selected instance whose pin was trusted on first use is
/// checked against its console, when it has the keys now. A verified pin is recorded as such
/// (`host_key_source: console`, returned to be written); a mismatch is said loudly and the
/// descriptor carries the console's keys, so the connection to it is refused (exit 1 for
/// it, the others run). Nothing to check, no call is made. An unreadable console (denied,
/// unreachable) is said once; the pins stay as they were.
pub async fn check_pins(ec2: &Ec2, hosts: &mut [Descriptor]) -> Vec<Descriptor> {
    let ids: Vec<String> = hosts
        .iter()
        .filter(|d| d.ssh.unverified())
        .map(|d| d.id.clone())
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let (consoles, failed) = read(ec2, &ids).await;
    if let Some(e) = failed {
        crate::output::note(format!(
            "cannot read the consoles to check host keys trusted on first use ({e}); they stay \
             unverified"
        ));
    }
    let mut verified = Vec::new();
    for d in hosts.iter_mut() {
        let Some(Some(keys)) = consoles.get(&d.id) else {
            continue;
        };
        match verdict(d.ssh.host_key.as_deref(), Some(keys)) {
            Verdict::Verified => {
                d.ssh.host_key_source = Some(FROM_CONSOLE.to_owned());
                verified.push(d.clone());
            }
            Verdict::Mismatch => {
                crate::output::note(format!(
                    "{}: HOST KEY MISMATCH: the key trusted at first contact ({}) is not among \
                     those its console published ({}): refusing to connect to it (another \
                     machine answered first at its address, or a man in the middle; \
                     ec2-killall it)",
                    d.label(),
                    d.ssh.host_key.as_deref().unwrap_or("?"),
                    keys.join(", ")
                ));
                d.ssh.console_keys = Some(keys.clone());
            }
            Verdict::Unknown => {}
        }
    }
    verified
}

/// The consoles' keys as a readiness wait learns them: shared with its probe threads (each
/// login attempt uses what is known at that moment), each console read at most every
/// [`READ_EVERY`] until it has keys.
#[derive(Clone, Default)]
pub struct Published {
    keys: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    read_at: Arc<Mutex<BTreeMap<String, std::time::Instant>>>,
    /// Why the consoles cannot be read (denied, unreachable): said once.
    pub unreadable: Arc<Mutex<Option<String>>>,
}

/// How often a wait reads the console of an instance that has not published its keys yet.
pub const READ_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

impl Published {
    /// The fingerprints instance `id`'s console published, if read.
    pub fn get(&self, id: &str) -> Option<Vec<String>> {
        self.keys.lock().ok()?.get(id).cloned()
    }

    /// Whether the consoles cannot be read at all.
    pub fn is_unreadable(&self) -> bool {
        self.unreadable.lock().map(|u| u.is_some()).unwrap_or(false)
    }

    /// Read the consoles of `ids` not known yet and not read in the last [`READ_EVERY`].
    pub async fn refresh(&self, ec2: &Ec2, ids: &[String]) {
        if self.is_unreadable() {
            return;
        }
        let now = std::time::Instant::now();
        let due: Vec<String> = {
            let (Ok(keys), Ok(mut at)) = (self.keys.lock(), self.read_at.lock()) else {
                return;
            };
            let due: Vec<String> = ids
                .iter()
                .filter(|id| !keys.contains_key(*id))
                .filter(|id| {
                    at.get(*id)
                        .is_none_or(|t| now.duration_since(*t) >= READ_EVERY)
                })
                .cloned()
                .collect();
            for id in &due {
                at.insert(id.clone(), now);
            }
            due
        };
        if due.is_empty() {
            return;
        }
        let (found, failed) = read(ec2, &due).await;
        if let Some(e) = failed.filter(|e| e.is_final()) {
            crate::output::note(format!(
                "cannot read the instances' consoles to check their host keys ({e})"
            ));
            if let Ok(mut u) = self.unreadable.lock() {
                *u = Some(e.to_string());
            }
        }
        if let Ok(mut keys) = self.keys.lock() {
            keys.extend(found.into_iter().filter_map(|(id, k)| Some((id, k?))));
        }
    }
}

/// How a pin made at first contact was trusted, for its descriptor.
pub fn source(verified: bool) -> &'static str {
    if verified {
        FROM_CONSOLE
    } else {
        FIRST_USE
    }
}

/// Whether the console is read at all under this setting.
pub fn wanted(check: HostKeyCheck) -> bool {
    check != HostKeyCheck::Tofu
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFVrVRWH4bVuUY2RGywlPTkH+mGSSnz6oszJidOoqbVb root@ip-10-0-0-1";

    /// As `ssh-keygen -lf` prints it for KEY (and remote::ssh::fingerprint for the offered key).
    fn fp() -> String {
        "SHA256:O+W0DzehFWSTN3gfgrrJ2mHb5/jm+AETK8WqQNCcRCI".to_owned()
    }

    #[test]
    fn the_key_block_cloud_init_prints_gives_its_fingerprints() {
        let console = format!(
            "[   10.1] cloud-init[612]: Generating public/private ed25519 key pair.\n\
             -----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 {} root@ip (ED25519)\n\
             -----END SSH HOST KEY FINGERPRINTS-----\n\
             {BEGIN}\n[   11.2] {KEY}\n{END}\n",
            fp()
        );
        assert_eq!(host_keys(&console), Some(vec![fp()]));
        assert!(fp().starts_with("SHA256:"));
    }

    #[test]
    fn no_block_or_an_unfinished_one_is_nothing_yet() {
        assert_eq!(host_keys(""), None);
        assert_eq!(host_keys("booting...\n"), None);
        assert_eq!(host_keys(&format!("{BEGIN}\n{KEY}\n")), None);
        assert_eq!(host_keys(&format!("{BEGIN}\nnot a key\n{END}\n")), None);
    }

    #[test]
    fn a_pin_is_verified_only_by_a_key_the_console_has() {
        let keys = vec![fp()];
        assert_eq!(verdict(Some(&fp()), Some(&keys)), Verdict::Verified);
        assert_eq!(
            verdict(Some("SHA256:other"), Some(&keys)),
            Verdict::Mismatch
        );
        assert_eq!(verdict(Some(&fp()), None), Verdict::Unknown);
        assert_eq!(verdict(None, Some(&keys)), Verdict::Unknown);
    }
}
