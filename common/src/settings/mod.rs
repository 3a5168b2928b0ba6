//! Layered settings: flag > environment > `ec2-tools.json` in the test-case directory > the
//! same file in each parent > `$XDG_CONFIG_HOME/ec2-tools/config.json` > default, with the
//! source of every value remembered for `ec2-status --show-config`.
//!
//! Every setting is one row of [`KEYS`] (keys.rs): its file key, its environment variable and
//! its default, each written once; clap only supplies the flag's text (cli/), and this module
//! decides which layer wins. Values stay text here; their grammar (durations, CIDRs, modes)
//! belongs to the resolved types in config.rs. What does not belong here: clap, the meaning
//! of a value, anything about instances. The environment is read once, up front, so the
//! precedence is a pure function of the layers and unit-tested as one.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod keys;
pub use keys::*;

/// The name of the settings file looked for in the test-case directory and its parents.
pub const FILE_NAME: &str = "ec2-tools.json";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    /// Set by a program using the library ([`Settings::set`]): ranks as a flag.
    Set,
    Env(&'static str),
    File(PathBuf),
    Default,
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Set => f.write_str("set by the program"),
            Source::Env(n) => write!(f, "env {n}"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

impl Source {
    /// Set by the user for this run (flag or environment): beats what a descriptor recorded.
    pub fn is_explicit(&self) -> bool {
        matches!(self, Source::Flag | Source::Set | Source::Env(_))
    }
}

/// One line of `ec2-status --show-config`.
#[derive(Debug, Clone, PartialEq)]
pub struct Traced {
    pub key: &'static str,
    pub value: String,
    pub source: Source,
}

type FileMap = serde_json::Map<String, serde_json::Value>;

/// The layers below the flags, for one test-case directory.
pub struct Settings {
    dir: PathBuf,
    /// The canonical directory's basename (the default case name), if it has one.
    dir_name: Option<String>,
    env: BTreeMap<&'static str, String>,
    /// Values a program set ([`Settings::set`]): above the environment, below a flag.
    set: BTreeMap<&'static str, String>,
    files: Vec<(PathBuf, FileMap)>,
    trace: Mutex<Vec<Traced>>,
}

impl Settings {
    /// The settings of the test-case directory `dir` (default: the current one), from this
    /// process's environment and the settings files.
    pub fn load(dir: Option<&Path>) -> Result<Settings> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir()
                .map_err(|e| Error::input(format!("current directory: {e}")))?,
        };
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        Settings::from_parts(&dir, |k| std::env::var(k).ok(), xdg.as_deref())
    }

    /// The settings from explicit parts: `env` looks a variable up, `xdg` is the XDG config
    /// home. Reads the settings files; an unreadable or malformed one is an error naming it.
    pub fn from_parts(
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
        xdg: Option<&Path>,
    ) -> Result<Settings> {
        if !dir.is_dir() {
            return Err(Error::input(format!(
                "{}: not a directory (--dir)",
                dir.display()
            )));
        }
        let abs = std::fs::canonicalize(dir)
            .map_err(|e| Error::input(format!("{}: {e}", dir.display())))?;
        let mut paths: Vec<PathBuf> = abs.ancestors().map(|a| a.join(FILE_NAME)).collect();
        if let Some(x) = xdg {
            paths.push(x.join("ec2-tools").join("config.json"));
        }
        let mut files = Vec::new();
        for p in paths {
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::input(format!("{}: {e}", p.display()))),
            };
            files.push((p.clone(), parse_file(&p, &text)?));
        }
        let env = KEYS
            .iter()
            .filter_map(|k| {
                let name = k.env?;
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
            .collect();
        Ok(Settings {
            dir: dir.to_path_buf(),
            dir_name: abs.file_name().and_then(|n| n.to_str()).map(str::to_owned),
            env,
            set: BTreeMap::new(),
            files,
            trace: Mutex::new(Vec::new()),
        })
    }

    /// The test-case directory, as given.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The test-case directory's own name (the default case name).
    pub fn dir_name(&self) -> Option<&str> {
        self.dir_name.as_deref()
    }

    /// Set `key` in the test-case directory's own settings file (made if missing; its other
    /// keys kept), written whole through a temp file. Returns the file, and the environment
    /// variable that is set and would still win over it, if any.
    pub fn write_to_file(&self, key: &Key, value: &str) -> Result<(PathBuf, Option<&'static str>)> {
        let path = self.dir.join(FILE_NAME);
        let mut map: serde_json::Map<String, serde_json::Value> =
            match std::fs::read_to_string(&path) {
                Ok(text) => serde_json::from_str(&text)
                    .map_err(|e| Error::input(format!("{}: {e}", path.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
                Err(e) => return Err(Error::input(format!("{}: {e}", path.display()))),
            };
        map.insert(key.name.to_owned(), serde_json::Value::from(value));
        let tmp = path.with_extension("json.tmp");
        let text = format!("{:#}\n", serde_json::Value::Object(map));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?;
        let shadow = key.env.filter(|e| self.env.contains_key(e));
        Ok((path, shadow))
    }

    /// Set the setting named `name` (its settings-file key, e.g. `instance_type`) for this
    /// process, as a flag would: it beats the environment and the files. An unknown name is
    /// an input error; the value is checked where it is used, as a flag's is.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let key = KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
            Error::input(format!(
                "{name}: not a setting (known: {})",
                KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ))
        })?;
        self.set.insert(key.name, value.to_owned());
        Ok(())
    }

    /// The settings files in force, nearest first.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Everything looked up so far, with sources, in [`KEYS`] order.
    pub fn trace(&self) -> Vec<Traced> {
        let t = self.trace.lock().unwrap();
        let mut v = t.clone();
        v.sort_by_key(|e| KEYS.iter().position(|k| k.name == e.key));
        v
    }

    /// The winning text of `key` and where it came from: the flag's text, else the
    /// environment, else the nearest file, else the default (`None`: unset everywhere).
    pub fn raw(&self, key: &Key, flag: Option<&str>) -> Option<(String, Source)> {
        if let Some(t) = flag.filter(|t| !t.is_empty()) {
            return Some((t.to_owned(), Source::Flag));
        }
        if let Some(v) = self.set.get(key.name).filter(|v| !v.is_empty()) {
            return Some((v.clone(), Source::Set));
        }
        if let Some(name) = key.env {
            if let Some(v) = self.env.get(name) {
                return Some((v.clone(), Source::Env(name)));
            }
        }
        for (path, map) in &self.files {
            if let Some(v) = map.get(key.name) {
                let mut text = file_text(v);
                if key.path && Path::new(&text).is_relative() {
                    if let Some(d) = path.parent() {
                        text = d.join(&text).display().to_string();
                    }
                }
                return Some((text, Source::File(path.clone())));
            }
        }
        key.default.map(|d| (d.to_owned(), Source::Default))
    }

    /// `key` parsed by `parse`, with its source; a bad value is an error naming the layer
    /// that gave it. Recorded for `--show-config`.
    pub fn get<T>(
        &self,
        key: &'static Key,
        flag: Option<&str>,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<(T, Source)>> {
        let Some((text, source)) = self.raw(key, flag) else {
            self.record(key.name, String::new(), Source::Unset);
            return Ok(None);
        };
        let v = parse(text.trim()).map_err(|e| {
            Error::input(match &source {
                Source::Flag => format!("{} (flag): {e}", key.name),
                Source::Set => format!("{} (set by the program): {e}", key.name),
                Source::Env(n) => format!("{n}: {e}"),
                Source::File(p) => format!("{}: \"{}\": {e}", p.display(), key.name),
                _ => format!("default {}: {e}", key.name),
            })
        })?;
        self.record(key.name, text, source.clone());
        Ok(Some((v, source)))
    }

    /// [`Settings::get`] without the source.
    pub fn value<T>(
        &self,
        key: &'static Key,
        flag: Option<&str>,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        Ok(self.get(key, flag, parse)?.map(|(v, _)| v))
    }

    /// Record a value decided outside the layers (a computed default).
    pub fn record(&self, key: &'static str, value: String, source: Source) {
        let mut t = self.trace.lock().unwrap();
        t.retain(|e| e.key != key);
        t.push(Traced { key, value, source });
    }
}

/// A file value as text: strings as they are, lists joined with commas.
fn file_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        // `"tags": {"team": "load"}`: the same text as the flag's.
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileMap> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::input(format!("{}: not valid JSON: {e}", path.display())))?;
    let serde_json::Value::Object(map) = v else {
        return Err(Error::input(format!(
            "{}: must hold one JSON object",
            path.display()
        )));
    };
    for (k, v) in &map {
        if !KEYS.iter().any(|key| key.name == k) {
            let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            return Err(Error::input(format!(
                "{}: unknown key \"{k}\" (known keys: {})",
                path.display(),
                known.join(", ")
            )));
        }
        if v.is_object() && k != "tags" {
            return Err(Error::input(format!(
                "{}: \"{k}\": expected a string, number or list",
                path.display()
            )));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five distinct values each key's grammar accepts (the layers' order is what is tested).
    fn samples(key: &Key) -> [&'static str; 5] {
        match key.name {
            "ttl" | "connect_timeout" | "auth_grace" | "persist" => ["1s", "2s", "3s", "4s", "5s"],
            "ssh_jump" => ["u@b1", "b2:2222", "b3", "u@b4:22", "b5"],
            "placement" => ["cluster", "spread", "partition", "off", "none"],
            "network" => ["auto", "default", "auto", "default", "auto"],
            "imds" => ["v1", "v2", "v1", "v2", "v1"],
            "volume_size" => ["8", "9", "10", "11", "12"],
            "volume_type" => ["gp3", "gp2", "io2", "io1", "st1"],
            "volume_encrypted" => ["on", "off", "yes", "no", "1"],
            "tags" => ["a=1", "b=2", "c=3", "d=4", "e=5"],
            "network_cidr" => [
                "10.1.0.0/16",
                "10.2.0.0/16",
                "10.3.0.0/16",
                "10.4.0.0/16",
                "10.5.0.0/16",
            ],
            "spot" => ["on", "fallback", "off", "true", "false"],
            "name_tags" => ["on", "off", "yes", "no", "1"],
            "ssh_port" => ["2201", "2202", "2203", "2204", "2205"],
            "address" => [
                "public-dns",
                "public-ip",
                "private-ip",
                "auto",
                "PRIVATE-IP",
            ],
            "ssh_cidr" | "ssh_allow" => [
                "10.0.0.1/32",
                "10.0.0.2/32",
                "10.0.0.3/32",
                "10.0.0.4/32",
                "10.0.0.5/32",
            ],
            "ssh_key" => ["/k/flag", "/k/env", "/k/dir", "/k/parent", "/k/xdg"],
            _ => ["flag-v", "env-v", "dir-v", "parent-v", "xdg-v"],
        }
    }

    struct Tree {
        _root: tempfile::TempDir,
        xdg: PathBuf,
        parent: PathBuf,
        dir: PathBuf,
    }

    fn tree() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let xdg = root.path().join("xdg");
        let parent = root.path().join("tests");
        let dir = parent.join("case1");
        std::fs::create_dir_all(xdg.join("ec2-tools")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        Tree {
            _root: root,
            xdg,
            parent,
            dir,
        }
    }

    fn write(path: &Path, pairs: &[(&str, &str)]) {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        std::fs::write(path, serde_json::Value::Object(map).to_string()).unwrap();
    }

    /// For every key: with all layers set the flag wins; take the flag away and what the
    /// program set wins; take that away and the environment wins; then the directory's file, the parent's, the XDG file, the default.
    #[test]
    fn precedence_is_flag_set_env_dir_file_parent_file_xdg_file_default_for_every_key() {
        for key in KEYS {
            let t = tree();
            let [flag, env, dir_v, parent_v, xdg_v] = samples(key);
            let files = [
                (t.dir.join(FILE_NAME), dir_v),
                (t.parent.join(FILE_NAME), parent_v),
                (t.xdg.join("ec2-tools/config.json"), xdg_v),
            ];
            let expect_file = |n: usize| Source::File(std::fs::canonicalize(&files[n].0).unwrap());
            for (p, v) in &files {
                write(p, &[(key.name, v)]);
            }
            let env_of = |k: &str| (Some(k) == key.env).then(|| env.to_owned());
            let mut s = Settings::from_parts(&t.dir, env_of, Some(&t.xdg)).unwrap();
            s.set(key.name, "program-value").unwrap();
            assert_eq!(
                s.raw(key, Some(flag)),
                Some((flag.into(), Source::Flag)),
                "{}",
                key.name
            );
            assert_eq!(
                s.raw(key, None),
                Some(("program-value".into(), Source::Set)),
                "{}",
                key.name
            );
            let s = Settings::from_parts(&t.dir, env_of, Some(&t.xdg)).unwrap();
            if let Some(name) = key.env {
                assert_eq!(
                    s.raw(key, None),
                    Some((env.into(), Source::Env(name))),
                    "{}",
                    key.name
                );
            }
            for (n, want) in [dir_v, parent_v, xdg_v].into_iter().enumerate() {
                let s = Settings::from_parts(&t.dir, |_| None, Some(&t.xdg)).unwrap();
                let (text, source) = s.raw(key, None).unwrap();
                assert_eq!(source, expect_file(n), "{}", key.name);
                assert!(text.ends_with(want), "{}: {text}", key.name);
                std::fs::remove_file(&files[n].0).unwrap();
            }
            let s = Settings::from_parts(&t.dir, |_| None, Some(&t.xdg)).unwrap();
            assert_eq!(
                s.raw(key, None),
                key.default.map(|d| (d.to_owned(), Source::Default)),
                "{}",
                key.name
            );
        }
    }

    #[test]
    fn aws_region_in_the_environment_beats_the_settings_file() {
        let t = tree();
        write(&t.dir.join(FILE_NAME), &[("region", "eu-west-1")]);
        let env = |k: &str| (k == "AWS_REGION").then(|| "us-east-2".to_owned());
        let s = Settings::from_parts(&t.dir, env, Some(&t.xdg)).unwrap();
        let got = s.get(&REGION, None, |v| Ok(v.to_owned())).unwrap();
        assert_eq!(got, Some(("us-east-2".into(), Source::Env("AWS_REGION"))));
        assert_eq!(s.trace()[0].source.to_string(), "env AWS_REGION");
    }

    #[test]
    fn relative_paths_in_a_file_are_taken_from_its_directory() {
        let t = tree();
        write(&t.parent.join(FILE_NAME), &[("ssh_key", "keys/id")]);
        let s = Settings::from_parts(&t.dir, |_| None, None).unwrap();
        let (text, source) = s.raw(&SSH_KEY, None).unwrap();
        let parent = std::fs::canonicalize(&t.parent).unwrap();
        assert_eq!(text, parent.join("keys/id").display().to_string());
        assert_eq!(source, Source::File(parent.join(FILE_NAME)));
    }

    #[test]
    fn a_bad_value_is_an_error_naming_its_layer() {
        let t = tree();
        write(&t.dir.join(FILE_NAME), &[("ssh_port", "x")]);
        let s = Settings::from_parts(&t.dir, |_| None, None).unwrap();
        let e = s
            .get(&SSH_PORT, None, |v| {
                v.parse::<u16>().map_err(|e| e.to_string())
            })
            .unwrap_err();
        assert!(e.message.contains("ec2-tools.json: \"ssh_port\""), "{e}");
        let env = |k: &str| (k == "EC2_TOOLS_SSH_PORT").then(|| "y".to_owned());
        let s = Settings::from_parts(&t.dir, env, None).unwrap();
        let e = s
            .get(&SSH_PORT, None, |v| {
                v.parse::<u16>().map_err(|e| e.to_string())
            })
            .unwrap_err();
        assert!(e.message.starts_with("EC2_TOOLS_SSH_PORT: "), "{e}");
    }

    #[test]
    fn unknown_file_keys_are_refused_naming_key_and_file() {
        let t = tree();
        write(&t.dir.join(FILE_NAME), &[("instance_typo", "x")]);
        let e = Settings::from_parts(&t.dir, |_| None, None).err().unwrap();
        assert!(
            e.message.contains("unknown key \"instance_typo\"")
                && e.message.contains("case1/ec2-tools.json"),
            "{e}"
        );
    }

    #[test]
    fn setting_an_unknown_name_is_refused_naming_it() {
        let t = tree();
        let mut s = Settings::from_parts(&t.dir, |_| None, None).unwrap();
        let e = s.set("instance_typo", "x").err().unwrap();
        assert_eq!(e.code, crate::error::Code::Usage, "{e}");
        assert!(e.message.starts_with("instance_typo: not a setting"), "{e}");
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let t = tree();
        let env = |k: &str| (k == "EC2_TOOLS_SSH_USER").then(|| " ".to_owned());
        let s = Settings::from_parts(&t.dir, env, None).unwrap();
        assert_eq!(
            s.raw(&SSH_USER, None),
            Some(("ubuntu".into(), Source::Default))
        );
    }
}
