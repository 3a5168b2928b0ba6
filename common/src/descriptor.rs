//! The instance-descriptor store: the whole state of a test case.
//!
//! One file per instance in the test-case directory, named exactly by its instance id, holding
//! one JSON object and a newline. Files are written atomically (temp file + rename), so a crash
//! never leaves half a descriptor. Deleting a file by hand takes that instance out of later
//! tools' scope. A file whose name looks like an instance id but does not hold a valid
//! descriptor is bad input: reported by name, never ignored, never deleted. Keys this version
//! does not know are kept when a descriptor is rewritten.

use crate::config::AddressMode;
use crate::ec2::InstanceInfo;
use crate::error::{Error, Result, ResultExt};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files and state the tools keep beside the descriptors (locks, keys, logs).
pub const STATE_DIR: &str = ".ec2-tools";

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct SshInfo {
    pub user: Option<String>,
    pub port: Option<u16>,
    /// SHA-256 of the host key seen at the first login (trust on first use), base64.
    #[serde(default)]
    pub host_key: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub id: String,
    /// 1-based, stable within the case.
    pub index: u32,
    pub case: String,
    pub region: Option<String>,
    pub az: Option<String>,
    #[serde(rename = "type")]
    pub instance_type: Option<String>,
    pub ami: Option<String>,
    pub state: Option<String>,
    pub public_dns: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub private_dns: Option<String>,
    /// The address the tools connect to.
    pub address: Option<String>,
    pub ssh: SshInfo,
    pub launched_at: Option<String>,
    /// Keys written by other versions or by hand: kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    /// The address under an explicit mode, or the recorded one.
    pub fn address_for(&self, mode: Option<AddressMode>) -> Option<String> {
        match mode {
            Some(m) => m.pick(
                self.public_dns.as_deref(),
                self.public_ip.as_deref(),
                self.private_ip.as_deref(),
            ),
            None => self.address.clone().filter(|a| !a.is_empty()),
        }
    }

    /// Take what AWS says of the instance; true when anything changed.
    pub fn update_from(&mut self, info: &InstanceInfo, mode: AddressMode) -> bool {
        let before = self.clone();
        self.state = Some(info.state.clone());
        self.az = info.az.clone().or(self.az.take());
        self.instance_type = info.instance_type.clone().or(self.instance_type.take());
        self.ami = info.ami.clone().or(self.ami.take());
        self.public_dns = info.public_dns.clone();
        self.public_ip = info.public_ip.clone();
        self.private_ip = info.private_ip.clone().or(self.private_ip.take());
        self.private_dns = info.private_dns.clone().or(self.private_dns.take());
        self.launched_at = info.launched_at.clone().or(self.launched_at.take());
        self.address = mode.pick(
            self.public_dns.as_deref(),
            self.public_ip.as_deref(),
            self.private_ip.as_deref(),
        );
        *self != before
    }

    /// The role recorded at launch (`ec2-create --role`), if any.
    pub fn role(&self) -> Option<&str> {
        self.extra.get("role").and_then(|v| v.as_str())
    }

    /// `i-0abc (#3)`, for messages.
    pub fn label(&self) -> String {
        format!("{} (#{})", self.id, self.index)
    }
}

/// `i-` and 8 or 17 hex digits: the names the store owns.
pub fn is_instance_id(name: &str) -> bool {
    name.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
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
            if is_instance_id(name) {
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
        parse(id, &text)
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
                eprintln!(
                    "waiting for another ec2 tool working in {} ...",
                    self.dir.display()
                );
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

fn parse(id: &str, text: &str) -> Result<Descriptor> {
    let d: Descriptor = serde_json::from_str(text)
        .map_err(|e| Error::input(format!("{id}: descriptor is not valid JSON: {e}")))?;
    if d.id != id {
        return Err(Error::input(format!(
            "{id}: descriptor names another instance ({}); the file name is the instance id",
            d.id
        )));
    }
    if d.index == 0 {
        return Err(Error::input(format!(
            "{id}: descriptor index must be 1 or more"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, index: u32) -> Descriptor {
        Descriptor {
            id: id.into(),
            index,
            case: "c".into(),
            region: Some("us-east-1".into()),
            az: None,
            instance_type: Some("t3.micro".into()),
            ami: Some("ami-1".into()),
            state: Some("pending".into()),
            public_dns: None,
            public_ip: None,
            private_ip: Some("127.0.0.4".into()),
            private_dns: None,
            address: Some("127.0.0.4".into()),
            ssh: SshInfo {
                user: Some("u".into()),
                port: Some(22),
                host_key: None,
            },
            launched_at: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn instance_id_names_are_recognised() {
        assert!(is_instance_id("i-0123abcd"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(!is_instance_id("i-xyz"));
        assert!(!is_instance_id("README.md"));
        assert!(!is_instance_id(".i-0123abcd.tmp.5"));
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
