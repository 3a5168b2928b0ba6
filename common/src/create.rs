//! ec2-create: launch N instances and wait until each one accepts an SSH login.
//!
//! Order matters for the promise that nothing is ever forgotten: the descriptors are written
//! as soon as RunInstances returns the ids (before any waiting), so a crash or Ctrl-C leaves
//! every launched instance findable by ec2-killall. Launch tags carry the case, the owner and
//! the first index (with AmiLaunchIndex it gives every instance's index even if the per-instance
//! tags were never written). Waiting polls one DescribeInstances per round for the whole set and
//! runs the SSH probes in parallel; "ready" means a login that ran a command, not an open port.

use crate::config::{
    AddressMode, Config, LaunchConfig, SshConfig, DEFAULT_SSH_PORT, DEFAULT_SSH_USER,
};
use crate::descriptor::{Descriptor, SshInfo, Store};
use crate::ec2::{self, Ec2, InstanceInfo, LaunchSpec};
use crate::error::{Code, Error, Result, ResultExt};
use crate::output;
use crate::ssh::{self, Kind, SshError, Target};
use crate::tool;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOOL: &str = "ec2-create";

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub count: u32,
    pub timeout: Duration,
    pub role: Option<String>,
    /// Pause between DescribeInstances rounds.
    pub poll: Duration,
}

/// Per-directory launch bookkeeping: a random nonce and a round counter make a ClientToken
/// that is the same when a crashed launch is retried and different for every new launch.
#[derive(Serialize, Deserialize, Default)]
struct LaunchState {
    nonce: String,
    round: u64,
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

fn load_launch_state(store: &Store) -> Result<LaunchState> {
    let path = store.state_dir()?.join("launch.json");
    match std::fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s).input_err(path.display()),
        Err(_) => Ok(LaunchState {
            nonce: random_hex(),
            round: 1,
        }),
    }
}

fn save_launch_state(store: &Store, st: &LaunchState) -> Result<()> {
    let path = store.state_dir()?.join("launch.json");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string(st).expect("serializes"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .infra_err(path.display())
}

/// Launch, record, wait, print `<id> <address>` per instance.
pub fn run(
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    opts: &CreateOptions,
) -> Result<Code> {
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let existing = store.load_all()?; // a bad descriptor stops us before anything is launched
    let rt = crate::runtime()?;
    rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let launched =
            launch_and_record(&ec2, cfg, launch, ssh_cfg, opts, &store, &existing).await?;
        wait_ready(&ec2, ssh_cfg, opts, &store, launched).await
    })
}

async fn launch_and_record(
    ec2: &Ec2,
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    opts: &CreateOptions,
    store: &Store,
    existing: &[Descriptor],
) -> Result<Vec<Descriptor>> {
    let base = existing.iter().map(|d| d.index).max().unwrap_or(0) + 1;
    let mut state = load_launch_state(store)?;
    save_launch_state(store, &state)?;
    let token = format!("ec2-tools-{}-{}", state.nonce, state.round);
    let mut tags = vec![
        ("Name".to_owned(), cfg.case.clone()),
        (ec2::TAG_CASE.to_owned(), cfg.case.clone()),
        (ec2::TAG_OWNER.to_owned(), crate::config::owner()),
        (ec2::TAG_INDEX_BASE.to_owned(), base.to_string()),
        (ec2::TAG_LAUNCH.to_owned(), token.clone()),
    ];
    if let Some(role) = &opts.role {
        tags.push((ec2::TAG_ROLE.to_owned(), role.clone()));
    }
    let spec = LaunchSpec {
        ami: launch.ami.clone(),
        instance_type: launch.instance_type.clone(),
        count: opts.count,
        key_name: launch.key_name.clone(),
        subnet: launch.subnet.clone(),
        security_groups: launch.security_groups.clone(),
        client_token: token,
        tags,
    };
    let instances = ec2.run_instances(&spec).await?;
    if instances.len() != opts.count as usize {
        output::note(
            TOOL,
            format!(
                "asked for {} instances, AWS launched {}",
                opts.count,
                instances.len()
            ),
        );
    }
    let mode = ssh_cfg.address.unwrap_or_default();
    let mut written = Vec::new();
    for (i, info) in instances.iter().enumerate() {
        let index = base + info.launch_index.map(|l| l as u32).unwrap_or(i as u32);
        let d = new_descriptor(cfg, ec2, ssh_cfg, info, index, opts.role.as_deref(), mode);
        store.write(&d)?;
        written.push(d);
    }
    state.round += 1;
    save_launch_state(store, &state)?;
    output::note(
        TOOL,
        format!(
            "launched {} instances ({} …); waiting for SSH",
            written.len(),
            written[0].id
        ),
    );

    // Per-instance names (the console shows them); the index is already derivable from the
    // launch tags, so a failure here is worth a note, not an abort.
    let mut set = tokio::task::JoinSet::new();
    for d in &written {
        let ec2 = ec2.clone();
        let id = d.id.clone();
        let tags = vec![
            ("Name".to_owned(), format!("{}.{}", cfg.case, d.index)),
            (ec2::TAG_INDEX.to_owned(), d.index.to_string()),
        ];
        set.spawn(async move { ec2.create_tags(&id, &tags).await });
    }
    while let Some(r) = set.join_next().await {
        if let Ok(Err(e)) = r {
            output::note(TOOL, e);
        }
    }
    Ok(written)
}

fn new_descriptor(
    cfg: &Config,
    ec2: &Ec2,
    ssh_cfg: &SshConfig,
    info: &InstanceInfo,
    index: u32,
    role: Option<&str>,
    mode: AddressMode,
) -> Descriptor {
    let mut d = Descriptor {
        id: info.id.clone(),
        index,
        case: cfg.case.clone(),
        region: Some(ec2.region.clone()),
        az: None,
        instance_type: None,
        ami: None,
        state: None,
        public_dns: None,
        public_ip: None,
        private_ip: None,
        private_dns: None,
        address: None,
        ssh: SshInfo {
            user: Some(
                ssh_cfg
                    .user
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SSH_USER.into()),
            ),
            port: Some(ssh_cfg.port.unwrap_or(DEFAULT_SSH_PORT)),
            host_key: None,
        },
        launched_at: None,
        extra: Default::default(),
    };
    if let Some(r) = role {
        d.extra.insert("role".into(), serde_json::json!(r));
    }
    d.update_from(info, mode);
    d
}

/// What a probe thread reports.
enum Probe {
    Ready {
        id: String,
        host_key: Option<String>,
    },
    /// Still trying; the last error, for the timeout report.
    Retrying { id: String, error: SshError },
    /// Will never succeed (address refused by the allow list, host key mismatch).
    Fatal { id: String, error: SshError },
}

async fn wait_ready(
    ec2: &Ec2,
    ssh_cfg: &SshConfig,
    opts: &CreateOptions,
    store: &Store,
    launched: Vec<Descriptor>,
) -> Result<Code> {
    let deadline = Instant::now() + opts.timeout;
    let mode = ssh_cfg.address.unwrap_or_default();
    let mut descs: BTreeMap<String, Descriptor> =
        launched.into_iter().map(|d| (d.id.clone(), d)).collect();
    let mut probing: BTreeSet<String> = BTreeSet::new();
    let mut last_error: BTreeMap<String, String> = BTreeMap::new();
    let mut ready: BTreeSet<String> = BTreeSet::new();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Probe>();
    let bar = output::progress(descs.len() as u64, "ready");

    let outcome = loop {
        if tool::interrupted() {
            break Err(Error::interrupted());
        }
        // One DescribeInstances for every instance not yet known to be running.
        let waiting: Vec<String> = descs
            .iter()
            .filter(|(id, d)| {
                !ready.contains(*id)
                    && !failed.contains_key(*id)
                    && d.state.as_deref() != Some("running")
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !waiting.is_empty() {
            for info in ec2.describe(&waiting).await? {
                let Some(d) = descs.get_mut(&info.id) else {
                    continue;
                };
                if d.update_from(&info, mode) {
                    store.write(d)?;
                }
                if matches!(
                    info.state.as_str(),
                    "shutting-down" | "terminated" | "stopping" | "stopped"
                ) {
                    failed.insert(info.id.clone(), format!("{} while booting", info.state));
                }
            }
        }
        // Start a probe for every running instance with an address.
        for (id, d) in &descs {
            if d.state.as_deref() == Some("running")
                && !probing.contains(id)
                && !ready.contains(id)
                && !failed.contains_key(id)
            {
                match Target::for_descriptor(d, ssh_cfg) {
                    Ok(target) => {
                        probing.insert(id.clone());
                        spawn_probe(
                            id.clone(),
                            target,
                            ssh_cfg.clone(),
                            deadline,
                            stop.clone(),
                            tx.clone(),
                        );
                    }
                    Err(e) => {
                        last_error.insert(id.clone(), e.message);
                    }
                }
            }
        }
        let pending = descs.len() - ready.len() - failed.len();
        if pending == 0 {
            break Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            break Err(Error::infra(""));
        }
        // Sleep until the next round, waking for every probe report.
        let round_end = tokio::time::Instant::from_std((now + opts.poll).min(deadline));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(round_end) => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if tool::interrupted() { break; }
                }
                Some(msg) = rx.recv() => match msg {
                    Probe::Ready { id, host_key } => {
                        if let Some(d) = descs.get_mut(&id) {
                            d.ssh.host_key = host_key;
                            store.write(d)?;
                        }
                        probing.remove(&id);
                        ready.insert(id);
                        bar.inc(1);
                        if ready.len() + failed.len() == descs.len() { break; }
                    }
                    Probe::Retrying { id, error } => { last_error.insert(id, error.message); }
                    Probe::Fatal { id, error } => {
                        probing.remove(&id);
                        failed.insert(id, error.message);
                        if ready.len() + failed.len() == descs.len() { break; }
                    }
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    bar.finish_and_clear();

    // Ready instances go to stdout in index order, whatever else happened.
    let mut by_index: Vec<&Descriptor> = descs.values().collect();
    by_index.sort_by_key(|d| d.index);
    for d in &by_index {
        if ready.contains(&d.id) {
            output::data(format!("{} {}", d.id, d.address.as_deref().unwrap_or("-")));
        }
    }
    let describe = |d: &Descriptor| -> String {
        let why = failed
            .get(&d.id)
            .or_else(|| last_error.get(&d.id))
            .cloned()
            .unwrap_or_else(|| format!("state {}", d.state.as_deref().unwrap_or("unknown")));
        format!(
            "{} ({}): {why}",
            d.label(),
            d.address.as_deref().unwrap_or("no address")
        )
    };
    let not_ready: Vec<String> = by_index
        .iter()
        .filter(|d| !ready.contains(&d.id))
        .map(|d| describe(d))
        .collect();
    match outcome {
        Ok(()) if failed.is_empty() => Ok(Code::Ok),
        Ok(()) => {
            output::note(
                TOOL,
                format!(
                    "{} of {} instances failed (descriptors kept; ec2-killall terminates them): {}",
                    not_ready.len(),
                    descs.len(),
                    not_ready.join("; ")
                ),
            );
            let fatal_policy = failed.values().any(|m| m.contains("EC2_TOOLS_SSH_ALLOW"));
            Ok(if fatal_policy {
                Code::Infra
            } else {
                Code::Partial
            })
        }
        Err(e) if e.code == Code::Interrupted => Err(Error::interrupted().context(format!(
            "{} instances launched, descriptors kept in {}; ec2-killall terminates them",
            descs.len(),
            store.dir().display()
        ))),
        Err(e) if e.message.is_empty() => Err(Error::infra(format!(
            "timed out after {} waiting for {} of {} instances (descriptors kept): {}",
            humantime::format_duration(opts.timeout),
            not_ready.len(),
            descs.len(),
            not_ready.join("; ")
        ))),
        Err(e) => Err(e),
    }
}

fn spawn_probe(
    id: String,
    target: Target,
    cfg: SshConfig,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    tx: tokio::sync::mpsc::UnboundedSender<Probe>,
) {
    std::thread::spawn(move || {
        let mut pause = Duration::from_millis(500);
        loop {
            if stop.load(Ordering::Relaxed) || tool::interrupted() || Instant::now() >= deadline {
                return;
            }
            let attempt = ssh::connect(&target, &cfg).and_then(|conn| {
                let (info, _, err) = conn.run_capture("true", None)?;
                if info.code == 0 {
                    Ok(conn.host_key)
                } else {
                    Err(SshError::new(
                        Kind::Session,
                        format!(
                            "login works but `true` exited {}: {}",
                            info.code,
                            String::from_utf8_lossy(&err).trim()
                        ),
                    ))
                }
            });
            match attempt {
                Ok(host_key) => {
                    let _ = tx.send(Probe::Ready { id, host_key });
                    return;
                }
                Err(error) if matches!(error.kind, Kind::Policy | Kind::HostKey | Kind::Config) => {
                    let _ = tx.send(Probe::Fatal { id, error });
                    return;
                }
                Err(error) => {
                    let _ = tx.send(Probe::Retrying {
                        id: id.clone(),
                        error,
                    });
                }
            }
            std::thread::sleep(ssh::jitter(pause));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
}
