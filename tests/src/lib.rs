//! The end-to-end harness: brings up the local cloud (moto_server + a real sshd, through
//! `scripts/localcloud`) once per test binary, and gives each test its own test-case directory
//! in which it runs the real workspace binaries.
//!
//! If the cloud cannot start, every test fails with the reason (never skips). The cloud stops
//! itself when the test process exits (`localcloud start --watch <pid>`), even after a panic.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where the workspace binaries are: beside the test executable's `deps/` directory.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("ec2-create").is_file(),
        "workspace binaries not built in {} (run `cargo build --workspace` first; `make test` does)",
        dir.display()
    );
    dir
}

pub struct Cloud {
    pub env: BTreeMap<String, String>,
    _state: tempfile::TempDir,
}

static CLOUD: OnceLock<Result<Cloud, String>> = OnceLock::new();

/// The shared local cloud of this test process (started on first use).
pub fn cloud() -> &'static Cloud {
    match CLOUD.get_or_init(start_cloud) {
        Ok(c) => c,
        Err(e) => panic!("the local cloud did not start: {e}"),
    }
}

fn start_cloud() -> Result<Cloud, String> {
    start_cloud_with(&[])
}

/// A local cloud of its own, with extra environment for `scripts/localcloud` (e.g.
/// LOCALCLOUD_MAX_STARTUPS); stopped when dropped (and, like the shared one, when this test
/// process exits).
pub fn start_cloud_with(extra: &[(&str, &str)]) -> Result<Cloud, String> {
    start_cloud_args(extra, &[])
}

/// A local cloud of its own, with extra environment and arguments for `localcloud start`
/// (e.g. `--realistic`).
pub fn start_cloud_args(extra: &[(&str, &str)], args: &[&str]) -> Result<Cloud, String> {
    let state = tempfile::Builder::new()
        .prefix("ec2-tools-cloud-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let out = Command::new(repo_root().join("scripts/localcloud"))
        .envs(extra.iter().copied())
        .args(["start", "--state"])
        .arg(state.path())
        .args(["--watch", &std::process::id().to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("scripts/localcloud: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/localcloud start exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut env = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    for k in [
        "AWS_ENDPOINT_URL",
        "EC2_TOOLS_SSH_PORT",
        "EC2_TOOLS_SSH_KEY",
        "EC2_TOOLS_SUBNET_ID",
    ] {
        if !env.contains_key(k) {
            return Err(format!("localcloud printed no {k}"));
        }
    }
    // The network rule: whatever a test does, no tool connects outside loopback.
    assert_eq!(env["EC2_TOOLS_SSH_ALLOW"], "127.0.0.0/8");
    Ok(Cloud { env, _state: state })
}

/// One test case: a fresh directory with a unique case name, and the cloud's environment.
pub struct Case {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
}

impl Cloud {
    /// What the cloud's own logs say went wrong (the EC2 front's notes, e.g. a moto failure),
    /// for a failing test's message: the last 20 such lines, or "".
    pub fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self._state.path().join("proxy.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("ec2proxy:")).collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!("--- the EC2 front's log\n{}\n", tail.join("\n"))
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/localcloud"))
            .args(["stop", "--state"])
            .arg(self._state.path())
            .status();
    }
}

impl Case {
    pub fn new() -> Case {
        Case::in_cloud(cloud())
    }

    /// A test case in a given cloud. Its access key is its own, so the EC2 front keeps its
    /// faults and counters apart from other tests running at the same time.
    pub fn in_cloud(cloud: &Cloud) -> Case {
        let dir = tempfile::Builder::new().prefix("tc-").tempdir().unwrap();
        let mut env = cloud.env.clone();
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        env.insert("AWS_ACCESS_KEY_ID".into(), format!("AKID{name}"));
        Case { dir, env }
    }

    /// Faults the EC2 front injects into this case's calls from now on (see
    /// scripts/ec2proxy.py for the keys); replaces earlier ones and resets the counters.
    pub fn faults(&self, faults: Value) {
        let key = &self.env["AWS_ACCESS_KEY_ID"];
        http_post(
            &self.env["AWS_ENDPOINT_URL"],
            &format!("/__proxy/faults?key={key}"),
            &faults.to_string(),
        );
    }

    /// The emulated machine of instance `id` crashes: its sshd and everything it runs are
    /// killed; EC2 still says running (its own shutdown, a TTL, never comes).
    pub fn crash_machine(&self, id: &str) {
        http_post(
            &self.env["AWS_ENDPOINT_URL"],
            "/__proxy/kill-machine",
            &serde_json::json!({ "id": id }).to_string(),
        );
    }

    /// What the EC2 front counted of this case's calls: {"calls": {action: n}, "faults":
    /// {code: n}, "instances_launched": n}.
    pub fn counters(&self) -> Value {
        let key = &self.env["AWS_ACCESS_KEY_ID"];
        let body = http_post(
            &self.env["AWS_ENDPOINT_URL"],
            &format!("/__proxy/counters?key={key}"),
            "",
        );
        serde_json::from_str(&body).unwrap()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn name(&self) -> String {
        self.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// A command for a workspace tool, run in the test-case directory with the cloud's env
    /// (and nothing from the developer's own AWS or SSH setup).
    pub fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(bin_dir().join(tool));
        c.current_dir(self.path()).env_clear();
        for k in ["PATH", "HOME", "USER", "LANG", "TMPDIR"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-creds");
        c.envs(&self.env).stdin(Stdio::null());
        c
    }

    /// A run of `tool` to build, coreutils-style: `c.tool("ec2-create").arg("2").env("K", "v")
    /// .run().succeeds().stderr_has("…")`.
    pub fn tool(&self, tool: &str) -> ToolRun<'_> {
        ToolRun {
            case: self,
            tool: tool.to_owned(),
            args: vec![],
            env: vec![],
            unset: vec![],
            stdin: None,
        }
    }

    /// Run a tool to completion.
    pub fn run(&self, tool: &str, args: &[&str]) -> Run {
        self.tool(tool).args(args).run()
    }

    /// Run a tool with extra (or overriding) environment variables.
    pub fn run_with(&self, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.tool(tool).args(args).envs(env).run()
    }

    /// Run a tool without some of the cloud's variables (so descriptors decide).
    pub fn run_without(&self, tool: &str, args: &[&str], unset: &[&str]) -> Run {
        self.tool(tool).args(args).unset(unset).run()
    }

    /// Run a shell script in the test-case directory with the workspace binaries on PATH.
    pub fn shell(&self, script: &str) -> Run {
        let started = Instant::now();
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = self.cmd("ec2-create");
        c.env("PATH", path);
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(script)
            .current_dir(self.path())
            .env_clear()
            .stdin(Stdio::null());
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        let out = sh.output().unwrap();
        Run::new(out, started.elapsed())
    }

    /// `127.N.`: how the addresses of this cloud's VPC (127.N.0.0/16) begin.
    pub fn vpc_prefix(&self) -> String {
        let vpc = &self.env["LOCALCLOUD_VPC_CIDR"];
        format!("{}.", vpc.split('.').take(2).collect::<Vec<_>>().join("."))
    }

    /// `ec2-create N`, asserting success; returns the (id, address) lines.
    pub fn create(&self, n: u32) -> Vec<(String, String)> {
        self.create_with(n, &[])
    }

    /// `ec2-create N ARGS…`, asserting success; returns the (id, address) lines.
    pub fn create_with(&self, n: u32, args: &[&str]) -> Vec<(String, String)> {
        let mut all = vec![n.to_string(), "--timeout".into(), "60".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let r = self.run("ec2-create", &all);
        r.assert_code(0);
        let lines: Vec<(String, String)> = r
            .stdout
            .lines()
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap();
                (a.to_owned(), b.to_owned())
            })
            .collect();
        assert_eq!(lines.len(), n as usize, "{r}");
        lines
    }

    /// The descriptor files in the directory, parsed, by file name.
    pub fn descriptors(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(self.path()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            // Instances (`i-…`) and hosts of your own (`h-…`, ec2-hosts).
            if name.starts_with("i-") || name.starts_with("h-") {
                let text = std::fs::read_to_string(e.path()).unwrap();
                out.insert(name, serde_json::from_str(&text).unwrap_or(Value::Null));
            }
        }
        out
    }

    /// Rewrite one descriptor key by hand (as a user might).
    pub fn edit(&self, id: &str, f: impl FnOnce(&mut Value)) {
        let p = self.path().join(id);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, format!("{v}\n")).unwrap();
    }

    /// What the emulator says of this case's instances (asked with boto3, independently).
    pub fn emulator_instances(&self) -> Vec<Value> {
        let out = self.python(&["instances", &self.name()]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn python(&self, args: &[&str]) -> String {
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("tests/helpers/ec2q.py"))
            .args(args)
            .envs(&self.env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ec2q.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Instances of this case the emulator still runs (not shutting-down/terminated).
    pub fn live_instances(&self) -> Vec<String> {
        self.emulator_instances()
            .iter()
            .filter(|i| {
                ["pending", "running", "stopping", "stopped"]
                    .contains(&i["state"].as_str().unwrap())
            })
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Default for Case {
    fn default() -> Self {
        Case::new()
    }
}

impl Drop for Case {
    /// Never leave a test's instances running, whatever the test did.
    fn drop(&mut self) {
        if self.path().exists() && !self.descriptors().is_empty() {
            let _ = self
                .cmd("ec2-killall")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A tool run being built ([`Case::tool`]): arguments, environment, stdin; [`ToolRun::run`]
/// runs it to completion in the case's directory with the cloud's environment.
pub struct ToolRun<'a> {
    case: &'a Case,
    tool: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    stdin: Option<Vec<u8>>,
}

impl ToolRun<'_> {
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An extra (or overriding) environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Without these of the cloud's variables (so descriptors decide).
    pub fn unset(mut self, keys: &[&str]) -> Self {
        self.unset.extend(keys.iter().map(|k| k.to_string()));
        self
    }

    /// Fed to the tool's stdin (else stdin is /dev/null).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn run(self) -> Run {
        let started = Instant::now();
        let out = self.spawn().wait_with_output().unwrap();
        Run::new(out, started.elapsed())
    }

    /// Start it and hand back the child (stdout and stderr piped) for a test that signals,
    /// races or feeds it.
    pub fn spawn(self) -> std::process::Child {
        use std::io::Write;
        let mut c = self.case.cmd(&self.tool);
        for k in &self.unset {
            c.env_remove(k);
        }
        c.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().unwrap();
        if let Some(bytes) = self.stdin {
            let mut pipe = child.stdin.take().unwrap();
            // A tool that exits without reading all of it is the test's to judge.
            let _ = pipe.write_all(&bytes);
        }
        child
    }
}

/// A finished tool run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn new(out: Output, elapsed: Duration) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// Exit 0.
    pub fn succeeds(&self) -> &Run {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Run {
        assert!(self.stdout.contains(s), "stdout lacks {s:?}\n{self}");
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, s: &str) -> &Run {
        assert!(!self.stdout.contains(s), "stdout has {s:?}\n{self}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, s: &str) -> &Run {
        assert!(self.stderr.contains(s), "stderr lacks {s:?}\n{self}");
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, s: &str) -> &Run {
        assert!(!self.stderr.contains(s), "stderr has {s:?}\n{self}");
        self
    }

    /// Ended within `d`.
    #[track_caller]
    pub fn within(&self, d: Duration) -> &Run {
        assert!(
            self.elapsed < d,
            "took {:?}, more than {d:?}\n{self}",
            self.elapsed
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A minimal HTTP/1.0 POST to the EC2 front's control API (loopback only).
fn http_post(endpoint: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    assert!(host.starts_with("127."), "control API off loopback: {host}");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

/// Wait until `f` holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
