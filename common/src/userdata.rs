//! The instances' user data: the user's own part (`--user-data FILE`, a cloud-config or a
//! script) and the tools' TTL part, as one MIME multipart archive — the form cloud-init merges,
//! running every part — within AWS's 16 KB limit, gzip-compressed when only that fits (cloud-init
//! reads gzip too). Pure: what a launch sends is decided here, before anything is made; a part
//! cloud-init would ignore, or an archive too large even compressed, is bad input naming it.
//!
//! What does not belong here: reading the file (cli/), sending it (aws/ec2.rs).

use std::io::Write;
use std::time::Duration;

/// AWS's limit on user data, before base64.
pub const LIMIT: usize = 16 * 1024;

/// What RunInstances gets as `UserData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The bytes (a script, a cloud-config, a MIME archive, or gzip of one).
    pub bytes: Vec<u8>,
    /// gzip-compressed to fit.
    pub gzipped: bool,
}

/// The MIME type cloud-init gives a part by its first line (`None`: one it would ignore).
fn part_type(own: &[u8]) -> Option<&'static str> {
    const STARTS: &[(&str, &str)] = &[
        ("#cloud-config", "text/cloud-config"),
        ("#!", "text/x-shellscript"),
        ("#include", "text/x-include-url"),
        ("#cloud-boothook", "text/cloud-boothook"),
        ("#part-handler", "text/part-handler"),
        ("## template: jinja", "text/jinja2"),
    ];
    STARTS
        .iter()
        .find(|(s, _)| own.starts_with(s.as_bytes()))
        .map(|(_, t)| *t)
}

/// The script that makes an instance power itself off (and so terminate) at its TTL:
/// `shutdown -h +minutes` (systemd keeps it, `shutdown --show` tells it, `shutdown -c` cancels
/// it), and, for a TTL that is not whole minutes, a detached `sleep` that powers off on the
/// second. The clock starts when cloud-init runs the part, once the instance has booted.
pub fn ttl_script(ttl: Duration) -> String {
    let secs = ttl.as_secs().max(1);
    let minutes = secs.div_ceil(60);
    let mut s = format!(
        "#!/bin/sh\n# ec2-tools cost safety (--ttl): power off, and so terminate, after {}.\n\
         shutdown -h +{minutes} 'ec2-tools: TTL reached' 2>/dev/null || (sleep {} && poweroff) >/dev/null 2>&1 &\n",
        humantime::format_duration(Duration::from_secs(secs)),
        minutes * 60
    );
    if secs % 60 != 0 {
        s.push_str(&format!(
            "nohup sh -c 'sleep {secs}; shutdown -h now ec2-tools: TTL reached || poweroff' \
             >/dev/null 2>&1 &\n"
        ));
    }
    s
}

/// The user data for `own` (the user's file, named `name` in errors) and a TTL: the TTL part
/// alone, the user's alone, or both as a MIME multipart archive (the TTL part first).
pub fn compose(
    own: Option<(&str, &[u8])>,
    ttl: Option<Duration>,
) -> Result<Option<Composed>, String> {
    let ttl = ttl.map(ttl_script);
    let bytes = match (own, ttl) {
        (None, None) => return Ok(None),
        (None, Some(t)) => t.into_bytes(),
        (Some((name, own)), ttl) => {
            check_own(name, own)?;
            match ttl {
                None => own.to_vec(),
                Some(t) => multipart(own, &t),
            }
        }
    };
    if bytes.len() <= LIMIT {
        return Ok(Some(Composed {
            bytes,
            gzipped: false,
        }));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes).expect("writing to memory");
    let packed = gz.finish().expect("writing to memory");
    if packed.len() <= LIMIT {
        return Ok(Some(Composed {
            bytes: packed,
            gzipped: true,
        }));
    }
    let name = own.map(|(n, _)| n).unwrap_or("user data");
    Err(format!(
        "--user-data {name}: the user data is {} bytes ({} gzipped); AWS takes {LIMIT} at most \
         (fetch the rest from S3 in the script)",
        bytes.len(),
        packed.len()
    ))
}

fn check_own(name: &str, own: &[u8]) -> Result<(), String> {
    if own.starts_with(&[0x1f, 0x8b]) {
        return Err(format!(
            "--user-data {name}: gzip-compressed; give it uncompressed (ec2-create compresses \
             the whole when it must)"
        ));
    }
    if is_mime(own) || part_type(own).is_some() {
        return Ok(());
    }
    Err(format!(
        "--user-data {name}: cloud-init would ignore it: start it with #cloud-config or #! \
         (a script), or give a MIME multipart archive"
    ))
}

fn is_mime(own: &[u8]) -> bool {
    own.starts_with(b"Content-Type:") || own.starts_with(b"MIME-Version:")
}

/// The two parts as one `multipart/mixed` archive; a MIME archive of the user's is nested as
/// it is (cloud-init walks nested parts).
fn multipart(own: &[u8], ttl: &str) -> Vec<u8> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest([own, ttl.as_bytes()].concat());
    let boundary = format!(
        "==ec2-tools-{}==",
        digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut out = format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n\
         --{boundary}\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\nMIME-Version: 1.0\n\
         Content-Transfer-Encoding: 7bit\nContent-Disposition: attachment; filename=\"ec2-tools-ttl.sh\"\n\n\
         {ttl}\n--{boundary}\n"
    )
    .into_bytes();
    if is_mime(own) {
        out.extend_from_slice(own);
    } else {
        let kind = part_type(own).unwrap_or("text/plain");
        out.extend_from_slice(
            format!(
                "Content-Type: {kind}; charset=\"utf-8\"\nMIME-Version: 1.0\n\
                 Content-Transfer-Encoding: 8bit\nContent-Disposition: attachment; filename=\"user-data\"\n\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(own);
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &[u8] =
        b"#cloud-config\npackages: [wrk]\nruncmd:\n  - sysctl -w net.core.somaxconn=4096\n";

    #[test]
    fn the_users_part_and_the_ttl_part_are_one_multipart_archive() {
        let c = compose(Some(("init.yaml", CONFIG)), Some(Duration::from_secs(3600)))
            .unwrap()
            .unwrap();
        assert!(!c.gzipped);
        let text = String::from_utf8(c.bytes).unwrap();
        assert!(
            text.starts_with("Content-Type: multipart/mixed; boundary=\""),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/cloud-config"), "{text}");
        assert!(text.contains("Content-Type: text/x-shellscript"), "{text}");
        assert!(
            text.contains("shutdown -h +60 "),
            "the TTL part intact: {text}"
        );
        assert!(text.contains("packages: [wrk]"), "{text}");
        assert!(text.trim_end().ends_with("==--"), "{text}");
        // Alone, each part is sent as it is.
        let own = compose(Some(("s.sh", b"#!/bin/sh\necho hi\n")), None)
            .unwrap()
            .unwrap();
        assert_eq!(own.bytes, b"#!/bin/sh\necho hi\n");
        let ttl = compose(None, Some(Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert!(ttl.bytes.starts_with(b"#!/bin/sh\n"));
        assert_eq!(compose(None, None).unwrap(), None);
        // Whole minutes: shutdown alone; else a sleep to the second as well.
        assert!(!ttl_script(Duration::from_secs(120)).contains("sleep 120;"));
        let short = ttl_script(Duration::from_secs(20));
        assert!(
            short.contains("shutdown -h +1 ") && short.contains("sleep 20; shutdown -h now"),
            "{short}"
        );
    }

    #[test]
    fn user_data_past_16_kb_is_gzipped_when_that_fits_and_refused_when_not() {
        let mut big = b"#!/bin/sh\n".to_vec();
        big.extend(std::iter::repeat_n(b"echo the same line again\n".as_slice(), 1000).flatten());
        let c = compose(Some(("big.sh", &big)), Some(Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert!(c.gzipped && c.bytes.len() <= LIMIT && c.bytes.starts_with(&[0x1f, 0x8b]));
        // Random bytes do not compress: refused, with both sizes.
        let mut noise = b"#!/bin/sh\n: '".to_vec();
        let mut x: u32 = 1;
        for _ in 0..40_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x >> 16) as usize % 36]);
        }
        let Err(e) = compose(Some(("noise.sh", &noise)), None) else {
            panic!("40 kB of noise fits?")
        };
        assert!(
            e.contains("noise.sh") && e.contains("gzipped") && e.contains("16384"),
            "{e}"
        );
    }

    #[test]
    fn user_data_cloud_init_would_ignore_is_refused_naming_the_file() {
        let e = compose(Some(("notes.txt", b"install wrk please")), None).unwrap_err();
        assert!(
            e.contains("notes.txt") && e.contains("#cloud-config"),
            "{e}"
        );
        let e = compose(Some(("x.gz", &[0x1f, 0x8b, 8, 0])), None).unwrap_err();
        assert!(e.contains("gzip"), "{e}");
        let mime =
            b"Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\n--b--\n";
        let c = compose(Some(("m", mime)), Some(Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert!(String::from_utf8(c.bytes)
            .unwrap()
            .contains("boundary=\"b\""));
    }
}
