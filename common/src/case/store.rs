//! The test case on disk: the descriptor files, the tools' own state beside them, and the
//! directory lock.
//!
//! One file per instance in the test-case directory, named exactly by its instance id, holding
//! one JSON object and a newline. Files are written atomically (temp file + rename), so a crash
//! never leaves half a descriptor. Deleting a file by hand takes that instance out of later
//! tools' scope. A file whose name looks like an instance id but does not hold a valid
//! descriptor is bad input: reported by name, never ignored, never deleted. Beside them,
//! `.ec2-tools/` holds the lock, the case key and [`CaseState`]. What does not belong here:
//! which instances a tool acts on (select.rs), anything that talks to AWS or hosts.

use super::descriptor::{is_descriptor_id, parse, Descriptor};
use crate::error::{Error, Result, ResultExt};
use crate::output;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files and state the tools keep beside the descriptors (locks, keys, logs).
pub const STATE_DIR: &str = ".ec2-tools";
/// The user's own user data as the case recorded it at its first launch with it.
pub const USER_DATA_FILE: &str = "user-data";
/// The private half of the key pair made for a case, in the state directory.
pub const CASE_KEY_FILE: &str = "case_key";
const CASE_STATE_FILE: &str = "case.json";

/// Where the case key of the test-case directory `dir` is (whether or not it exists).
pub fn case_key_path(dir: &Path) -> PathBuf {
    dir.join(STATE_DIR).join(CASE_KEY_FILE)
}

/// The key the tools log in with, decided here only: the configured one (`--identity`,
/// EC2_TOOLS_SSH_KEY, "ssh_key"); else the case key of `dir`, when it exists or ec2-create is
/// about to make it (`making_case_key`: a launch with no key pair named and no identity);
/// else none, and remote/ssh.rs tries ssh-agent and ~/.ssh/id_*, as OpenSSH does.
pub fn login_identity(
    configured: Option<PathBuf>,
    dir: &Path,
    making_case_key: bool,
) -> Option<PathBuf> {
    configured.or_else(|| {
        let key = case_key_path(dir);
        (making_case_key || key.is_file()).then_some(key)
    })
}

/// A JSON file of the case's state directory (`clocks.json`, `jobs.json`): its value, or
/// the empty one when it does not exist yet. A broken file is an error naming it: state
/// silently lost would send a later run astray.
pub fn load_state_file<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::input(format!("{}: not valid JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::input(format!("{}: {e}", path.display()))),
    }
}

/// Write such a file atomically: aside in the same directory, then renamed over it.
pub fn save_state_file<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let mut text = serde_json::to_string_pretty(value).expect("plain data serializes");
    text.push('\n');
    fs::write(&tmp, text)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))
}

/// The descriptors of one test-case directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The tools' own state directory, created on demand.
    pub fn state_dir(&self) -> Result<PathBuf> {
        let d = self.dir.join(STATE_DIR);
        fs::create_dir_all(&d).input_err(d.display())?;
        Ok(d)
    }

    /// Every descriptor, by index. Any file named like an instance id that is not a valid
    /// descriptor fails the whole load (exit 2) — acting on a partial view could orphan it.
    pub fn load_all(&self) -> Result<Vec<Descriptor>> {
        let entries = fs::read_dir(&self.dir).input_err(self.dir.display())?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.input_err(self.dir.display())?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_descriptor_id(name) {
                out.push(self.load(name)?);
            }
        }
        out.sort_by(|a, b| a.index.cmp(&b.index).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One descriptor by instance id.
    pub fn load(&self, id: &str) -> Result<Descriptor> {
        let path = self.path(id);
        let text = fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::input(format!("{id}: no descriptor in {}", self.dir.display()))
            } else {
                Error::input(format!("{id}: cannot read descriptor: {e}"))
            }
        })?;
        // One rule for every tool: a broken descriptor stops it, named, with the way out.
        parse(id, &text).map_err(|e| {
            Error::input(format!(
                "{}; fix or remove {} (once it is gone, `ec2-killall --case-sweep` still finds \
                 its instance by the case's tags)",
                e.message,
                path.display()
            ))
        })
    }

    /// Write atomically: a temp file in the same directory, fsync, rename.
    pub fn write(&self, d: &Descriptor) -> Result<()> {
        let mut text = serde_json::to_string(d).expect("descriptors serialize");
        text.push('\n');
        let tmp = self
            .dir
            .join(format!(".{}.tmp.{}", d.id, std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(&d.id))
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::infra(format!("{}: cannot write descriptor: {e}", d.id))
        })
    }

    /// Forget an instance (after AWS confirmed its termination).
    pub fn remove(&self, id: &str) -> Result<()> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::infra(format!("{id}: cannot remove descriptor: {e}"))),
        }
    }

    /// Hold the directory's lock while mutating the case, so two tools never race on indexes
    /// or on the same instances. Released when dropped.
    pub fn lock(&self) -> Result<DirLock> {
        use fs4::fs_std::FileExt;
        let path = self.state_dir()?.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .input_err(path.display())?;
        match file.try_lock_exclusive() {
            Ok(true) => {}
            Ok(false) => {
                output::note(format!(
                    "waiting for another ec2 tool working in {} ...",
                    self.dir.display()
                ));
                file.lock_exclusive().infra_err(path.display())?;
            }
            Err(e) => return Err(Error::infra(format!("{}: {e}", path.display()))),
        }
        Ok(DirLock { _file: file })
    }
}

/// An exclusive lock on a test-case directory.
pub struct DirLock {
    _file: fs::File,
}

/// Per-directory bookkeeping: a random nonce, the launch round (with the nonce it makes each
/// launch's ClientToken; moved on *before* a launch's first call, so no later request can
/// carry a token already used), the RunInstances call in flight (written before it is sent,
/// cleared once its descriptors are), and what the tools created in AWS for the case.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct CaseState {
    pub nonce: String,
    pub round: u64,
    /// The RunInstances call sent (or about to be) whose descriptors are not all written:
    /// a crash leaves it here, and the next run asks AWS for its answer again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// The case launched spot instances (ec2-killall then looks for its spot requests).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spot: bool,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub security_group: Option<String>,
    #[serde(default)]
    pub placement_group: Option<String>,
    /// The IAM role and instance profile (one name) made for SSM (`--transport ssm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_profile: Option<String>,
    /// The network `--network auto` made for the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkState>,
}

/// One RunInstances request as it was sent: the index of its first instance and the request
/// itself (the launcher's own record, kept opaque here), so that the same request — same
/// ClientToken, same parameters — can be sent again after a crash.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InFlight {
    /// The index the instance with AmiLaunchIndex 0 gets.
    pub first: u32,
    /// When it was sent (seconds since the epoch).
    pub sent_at: u64,
    /// The request (the launcher's `LaunchSpec`).
    pub request: serde_json::Value,
}

/// A case's own network: its VPC and the pieces in it (ids), torn down with the case.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq)]
pub struct NetworkState {
    pub vpc: String,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub route_table: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl CaseState {
    fn path(store: &Store) -> Result<PathBuf> {
        Ok(store.state_dir()?.join(CASE_STATE_FILE))
    }

    /// True when the case's state file records a key pair or security group the tools made:
    /// they may still exist in AWS.
    pub fn has_resources(store: &Store) -> bool {
        store.dir().join(STATE_DIR).join(CASE_STATE_FILE).is_file()
            && CaseState::load(store).is_ok_and(|s| {
                s.key_name.is_some()
                    || s.security_group.is_some()
                    || s.placement_group.is_some()
                    || s.network.is_some()
                    || s.in_flight.is_some()
            })
    }

    pub fn load(store: &Store) -> Result<CaseState> {
        let path = Self::path(store)?;
        match std::fs::read_to_string(&path) {
            Ok(s) => serde_json::from_str(&s).input_err(path.display()),
            Err(_) => Ok(CaseState {
                nonce: random_hex(),
                round: 1,
                ..Default::default()
            }),
        }
    }

    pub fn save(&self, store: &Store) -> Result<()> {
        let path = Self::path(store)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(self).expect("serializes"),
        )
        .and_then(|()| std::fs::rename(&tmp, &path))
        .infra_err(path.display())
    }

    /// `ec2-tools-<case>-<first 8 of nonce>`: the name of the case's key pair and group.
    pub fn resource_name(&self, case: &str) -> String {
        format!(
            "ec2-tools-{case}-{}",
            &self.nonce[..8.min(self.nonce.len())]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::descriptor::{InstanceState, SshInfo};

    fn sample(id: &str, index: u32) -> Descriptor {
        Descriptor {
            id: id.into(),
            index,
            case: "c".into(),
            region: Some("us-east-1".into()),
            az: None,
            instance_type: Some("t3.micro".into()),
            ami: Some("ami-1".into()),
            state: Some(InstanceState::Pending),
            public_dns: None,
            public_ip: None,
            private_ip: Some("127.0.0.4".into()),
            private_dns: None,
            address: Some("127.0.0.4".into()),
            ssh: SshInfo {
                user: Some("u".into()),
                port: Some(22),
                host_key: None,
                host_public_key: None,
                ..SshInfo::default()
            },
            launched_at: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn descriptors_round_trip_with_all_contract_keys_and_unknown_keys_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut d = sample("i-0123456789abcdef0", 1);
        d.extra.insert("note".into(), serde_json::json!("kept"));
        store.write(&d).unwrap();
        let text = fs::read_to_string(store.path(&d.id)).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "id",
            "index",
            "case",
            "region",
            "az",
            "type",
            "ami",
            "state",
            "public_dns",
            "public_ip",
            "private_ip",
            "private_dns",
            "address",
            "ssh",
            "launched_at",
        ] {
            assert!(v.get(key).is_some(), "missing key {key}");
        }
        assert!(v["ssh"].get("user").is_some() && v["ssh"].get("port").is_some());
        assert_eq!(store.load_all().unwrap(), vec![d]);
    }

    #[test]
    fn malformed_descriptor_is_an_input_error_naming_the_file_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(dir.path().join("i-0123abcd"), "{not json").unwrap();
        fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let err = store.load_all().unwrap_err();
        assert_eq!(err.code, crate::error::Code::Usage);
        assert!(
            err.message
                .starts_with("i-0123abcd: descriptor is not valid JSON"),
            "{err}"
        );
        assert!(dir.path().join("i-0123abcd").exists());
        // The way out, the same in every tool: fix or remove that file.
        let path = dir.path().join("i-0123abcd");
        assert!(
            err.message
                .contains(&format!("fix or remove {}", path.display()))
                && err.message.contains("ec2-killall --case-sweep")
                && !err.message.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn descriptor_whose_id_disagrees_with_its_name_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let d = sample("i-0123456789abcdef0", 1);
        fs::write(
            dir.path().join("i-0123abcd"),
            serde_json::to_string(&d).unwrap(),
        )
        .unwrap();
        assert!(store
            .load_all()
            .unwrap_err()
            .message
            .contains("names another instance"));
    }

    #[test]
    fn load_all_orders_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.write(&sample("i-0000000b", 2)).unwrap();
        store.write(&sample("i-0000000a", 10)).unwrap();
        store.write(&sample("i-0000000c", 1)).unwrap();
        let idx: Vec<u32> = store.load_all().unwrap().iter().map(|d| d.index).collect();
        assert_eq!(idx, vec![1, 2, 10]);
    }
}
