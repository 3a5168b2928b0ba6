//! ec2-exec-local CMD [-bg]: run `sh -c CMD` locally once per selected instance, with the
//! instance in the environment (`CURRENT_AMI_DNS`, `CURRENT_AMI_ID`, ...): TripCom's way of
//! copying files to each instance or registering it somewhere.
//!
//! Instance data reaches the command only through the environment, never pasted into its
//! text. Output goes through the same collector as remote runs, so both tools report alike.

use crate::case::descriptor::Descriptor;
use crate::case::store::Store;
use crate::cli::{HostArgs, OutputArgs};
use crate::config::{OutputConfig, SshConfig};
use crate::error::{Code, Error, Result};
use crate::output;
use crate::remote::command::Stream;
use crate::remote::fanout::{collect, fan_out};
use crate::remote::results::{Collector, HostSink, Outcome, Status};
use crate::remote::ssh::{Kind, SshError, Target};
use crate::remote::sshconf;
use crate::tool::Tool;
use clap::Parser;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

/// The command line of `ec2-exec-local` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Run `sh -c CMD` locally once per described instance, \
with CURRENT_AMI_DNS, CURRENT_AMI_ID, CURRENT_AMI_INDEX, CURRENT_SSH_USER, ... in its environment",
    after_help = "Examples:
  ec2-exec-local 'scp -F \"$CURRENT_SSH_CONFIG\" bundle.tgz \"$CURRENT_SSH_HOST:\"'
  ec2-exec-local -f 8 'rsync -e \"ssh -F $CURRENT_SSH_CONFIG\" -a out/ \"$CURRENT_SSH_HOST:out/\"'
  ec2-exec-local --role master 'echo \"$CURRENT_AMI_INDEX $CURRENT_AMI_PRIVATE_IP\"' > masters.txt"
)]
pub struct Cli {
    /// The command: it and every word after it (options too) are joined with spaces; this
    /// tool's options go before it
    #[arg(value_name = "CMD", required = true, num_args = 1.., trailing_var_arg = true,
          allow_hyphen_values = true)]
    command: Vec<String>,
    /// Start every command detached, output to a log file under DIR/logs, and return at once;
    /// `-bg` is accepted too
    #[arg(long)]
    bg: bool,
    /// How many commands at once, started in index order (pdsh -f; `--parallel` is accepted)
    #[arg(short = 'f', long, alias = "parallel", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_FANOUT as i64))]
    fanout: u32,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    hosts: HostArgs,
}

/// The `ec2-exec-local` tool.
pub struct ExecLocal;

impl Tool for ExecLocal {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        crate::output::records_as_json(cli.output.json);
        let (ssh, store, hosts) = super::selected_hosts(&cli.hosts)?;
        let job = LocalJob {
            command: cli.command.join(" "),
            background: cli.bg,
            parallel: cli.fanout as usize,
            results: cli.output.resolve(),
        };
        run_local(&ssh, &store, &hosts, &job)
    }
}

/// What ec2-exec-local was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct LocalJob {
    pub command: String,
    pub background: bool,
    pub parallel: usize,
    pub results: OutputConfig,
}

/// The environment a local command sees for one instance. Instance data reaches the command
/// only this way, never pasted into its text.
pub(crate) fn local_env(
    d: &Descriptor,
    cfg: &SshConfig,
    ssh_config: &std::path::Path,
) -> BTreeMap<&'static str, String> {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let target = Target::for_descriptor(d, cfg);
    let mut env = BTreeMap::new();
    env.insert(
        "CURRENT_AMI_DNS",
        target
            .as_ref()
            .map(|t| t.address.clone())
            .unwrap_or_default(),
    );
    env.insert("CURRENT_AMI_ID", d.id.clone());
    env.insert("CURRENT_AMI_INDEX", d.index.to_string());
    env.insert("CURRENT_AMI_PUBLIC_IP", s(&d.public_ip));
    env.insert("CURRENT_AMI_PRIVATE_IP", s(&d.private_ip));
    env.insert("CURRENT_AMI_PUBLIC_DNS", s(&d.public_dns));
    env.insert("CURRENT_AMI_PRIVATE_DNS", s(&d.private_dns));
    env.insert("CURRENT_AMI_ROLE", d.role().unwrap_or_default().to_owned());
    env.insert("CURRENT_CASE", d.case.clone());
    if let Ok(t) = &target {
        env.insert("CURRENT_SSH_USER", t.user.clone());
        env.insert("CURRENT_SSH_PORT", t.port.to_string());
    }
    if let Some(k) = &cfg.identity {
        let k = std::fs::canonicalize(k).unwrap_or_else(|_| k.clone());
        env.insert("CURRENT_SSH_KEY", k.display().to_string());
    }
    // `ssh -F "$CURRENT_SSH_CONFIG" "$CURRENT_SSH_HOST"`, scp and rsync -e alike: pinned.
    env.insert("CURRENT_SSH_CONFIG", ssh_config.display().to_string());
    env.insert("CURRENT_SSH_HOST", d.id.clone());
    env
}

/// Run a command locally once per instance, with the instance in the environment.
pub(crate) fn run_local(
    cfg: &SshConfig,
    store: &Store,
    hosts: &[Descriptor],
    job: &LocalJob,
) -> Result<Code> {
    let job_id = super::jobs::new_job_id();
    sshconf::write(store, cfg)?;
    let ssh_config = std::fs::canonicalize(sshconf::config_path(store))
        .unwrap_or_else(|_| sshconf::config_path(store));
    let log_dir: PathBuf = store.dir().join("logs");
    if job.background {
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| Error::infra(format!("{}: {e}", log_dir.display())))?;
    }
    let collector = Collector::new(job.results.clone())?;
    // Starting a detached command takes microseconds: one at a time keeps the index order.
    let width = if job.background { 1 } else { job.parallel };
    let results = fan_out(hosts, width, |d| {
        let started = Instant::now();
        let env = local_env(d, cfg, &ssh_config);
        let label = Some(env["CURRENT_AMI_DNS"].clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| d.id.clone());
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&job.command)
            .envs(&env)
            .current_dir(store.dir());
        let (status, sink) = if job.background {
            let log = log_dir.join(format!("local-{job_id}-{}-{}.log", d.index, d.id));
            let r = start_detached(&mut cmd, &log).map(|()| {
                output::record(
                    serde_json::json!({"id": d.id, "index": d.index, "label": label,
                        "log": log.display().to_string()}),
                    format!("{} {} {}", d.id, label, log.display()),
                );
                0
            });
            (r, None)
        } else {
            let mut sink = collector.host(d, &label);
            (run_local_command(&mut cmd, &mut sink), Some(sink))
        };
        let status = match status {
            Ok(code) => Status::Exited(code),
            Err(e) => Status::Failed(SshError::new(Kind::Session, e)),
        };
        let o = Outcome::new(d, label, status, started.elapsed());
        if let Some(sink) = sink {
            collector.done(sink, &o);
        }
        o
    });
    let outcomes = collect(hosts, results);
    if job.background {
        output::note(format!(
            "job {job_id}: {} local commands started",
            outcomes.iter().filter(|o| o.ok()).count()
        ));
    }
    collector.finish(&outcomes)
}

fn start_detached(cmd: &mut Command, log: &PathBuf) -> std::result::Result<(), String> {
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .process_group(0);
    cmd.spawn().map(|_| ()).map_err(|e| format!("sh: {e}"))
}

fn run_local_command(cmd: &mut Command, sink: &mut HostSink) -> std::result::Result<i32, String> {
    use std::os::unix::process::ExitStatusExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("sh: {e}"))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let sink = Mutex::new(sink);
    std::thread::scope(|s| {
        s.spawn(|| copy_into(&mut err, Stream::Stderr, &sink));
        copy_into(&mut out, Stream::Stdout, &sink);
    });
    let st = child.wait().map_err(|e| e.to_string())?;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}

fn copy_into(r: &mut impl Read, stream: Stream, sink: &Mutex<&mut HostSink>) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        sink.lock().unwrap().push(stream, &buf[..n]);
    }
}
