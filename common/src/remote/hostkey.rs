//! Host keys: the fingerprint of the key a host offers, and the checks it must pass before
//! any login — the pin recorded at first contact, and the keys the instance's console
//! published (read by aws/console.rs, carried on the SSH target). One place decides both, for
//! a new session and before a warm one is used. What does not belong here: reading consoles
//! (aws/), the handshake itself (ssh.rs).

use super::failure::{Kind, SshError};
use ssh2::Session;

/// `SHA256:` + unpadded base64, as OpenSSH prints fingerprints.
pub fn fingerprint(hash: &[u8]) -> String {
    use base64::Engine;
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
    )
}

/// A `HOST KEY MISMATCH` refusal when `key` (what `whose` names: the key offered, or the
/// pin) is not among the console's `keys`.
pub(super) fn not_published(key: &str, keys: &[String], whose: &str) -> Option<SshError> {
    (!keys.iter().any(|k| k == key)).then(|| {
        SshError::new(
            Kind::HostKey,
            format!(
                "HOST KEY MISMATCH: {whose} ({key}) is not among the keys its console \
                 published ({}): refusing to log in (another machine answers at this address, \
                 or a man in the middle)",
                keys.join(", ")
            ),
        )
    })
}

/// The host's public key as OpenSSH writes it (`ssh-ed25519 AAAA…`).
pub(super) fn public_key_line(sess: &Session) -> Option<String> {
    sess.host_key().and_then(|(key, kind)| {
        use base64::Engine;
        let name = match kind {
            ssh2::HostKeyType::Rsa => "ssh-rsa",
            ssh2::HostKeyType::Dss => "ssh-dss",
            ssh2::HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
            ssh2::HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
            ssh2::HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
            ssh2::HostKeyType::Ed25519 => "ssh-ed25519",
            _ => return None,
        };
        Some(format!(
            "{name} {}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ))
    })
}

/// What a host's key is checked against: where it is, its pin, the console's keys, and
/// whether `--accept-new-host-key` takes a changed one.
pub(super) struct Expected<'a> {
    pub address: &'a str,
    pub pin: Option<&'a str>,
    pub console: Option<&'a [String]>,
    pub repin: bool,
}

/// The key offered against the pin and the console's keys, before any login: `Ok(true)`
/// when `--accept-new-host-key` takes a changed one.
pub(super) fn check(t: &Expected<'_>, got: Option<&str>) -> Result<bool, SshError> {
    let Some(got) = got else {
        return Ok(false);
    };
    let mut repinned = false;
    if let Some(want) = t.pin {
        if want != got && t.repin {
            repinned = true;
        } else if want != got {
            return Err(SshError::new(
                Kind::HostKey,
                format!(
                    "host key changed (recorded {want}, offered {got}): refusing to log in; \
                     if the instance was rebuilt on purpose, --accept-new-host-key re-pins it"
                ),
            ));
        }
    }
    if let Some(keys) = t.console {
        if let Some(e) = not_published(got, keys, &format!("{} offered", t.address)) {
            return Err(e);
        }
    }
    Ok(repinned)
}
