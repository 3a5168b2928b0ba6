//! The instances of a case as a whole: what a case owns in AWS (its key pair and security
//! group), launching with everything a launch needs, and adopting instances whose descriptors
//! were never written (a crash between RunInstances and the descriptor write).
//!
//! Everything a case creates is named `ec2-tools-<case>-<nonce>` (the nonce is per test-case
//! directory, so two directories with the same basename never share resources) and remembered
//! in `.ec2-tools/resources.json`, so ec2-killall can delete exactly that after the last
//! instance is gone.

use crate::config::{Config, LaunchConfig, SpotMode, SshConfig, CASE_KEY_FILE};
use crate::descriptor::{Descriptor, SshInfo, Store};
use crate::ec2::{self, Ec2, InstanceInfo, LaunchSpec, LIVE_STATES};
use crate::error::{Error, Result, ResultExt};
use crate::output;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Per-directory bookkeeping: a random nonce, the launch round (with the nonce it makes each
/// launch's ClientToken: the same when a crashed launch is retried, new for each new launch),
/// and what the tools created in AWS for the case.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct CaseState {
    pub nonce: String,
    pub round: u64,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub security_group: Option<String>,
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
        Ok(store.state_dir()?.join("case.json"))
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

/// The key pair and security groups a launch uses.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
}

/// Use what the configuration names; otherwise make (once per case) an ed25519 key pair whose
/// private half stays in `.ec2-tools/` (mode 0600) and a security group opening TCP 22 only to
/// the SSH CIDR.
pub async fn ensure_access(
    ec2: &Ec2,
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    store: &Store,
    state: &mut CaseState,
) -> Result<Access> {
    let name = state.resource_name(&cfg.case);
    let tags = vec![
        (ec2::TAG_CASE.to_owned(), cfg.case.clone()),
        (ec2::TAG_OWNER.to_owned(), crate::config::owner()),
    ];
    let key_name = match &launch.key_name {
        Some(k) => k.clone(),
        None => {
            let public = case_key(store)?;
            if !ec2.key_pair_exists(&name).await? {
                ec2.import_key_pair(&name, &public, &tags).await?;
                output::note(
                    "ec2-create",
                    format!(
                        "imported key pair {name} (private key in {})",
                        store.state_dir()?.join(CASE_KEY_FILE).display()
                    ),
                );
            }
            state.key_name = Some(name.clone());
            state.save(store)?;
            name.clone()
        }
    };
    let security_groups = if !launch.security_groups.is_empty() {
        launch.security_groups.clone()
    } else {
        let (vpc, vpc_cidr) = ec2.vpc_of(launch.subnet.as_deref()).await?;
        let id = match ec2.find_group(&name, &vpc).await? {
            Some(id) => id,
            None => {
                let cidr = ssh_cidr(launch, ssh_cfg, vpc_cidr.as_deref())?;
                let id = ec2.create_ssh_group(&name, &vpc, &cidr, &tags).await?;
                output::note(
                    "ec2-create",
                    format!("created security group {id} ({name}): TCP 22 from {cidr} only"),
                );
                id
            }
        };
        state.security_group = Some(id.clone());
        state.save(store)?;
        vec![id]
    };
    Ok(Access {
        key_name: Some(key_name),
        security_groups,
    })
}

/// Who may reach port 22: the configured CIDR; with private addresses the VPC's CIDR; else
/// the caller's public address. Never 0.0.0.0/0 unless asked for.
fn ssh_cidr(
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    vpc_cidr: Option<&str>,
) -> Result<ipnet::IpNet> {
    if let Some(c) = launch.ssh_cidr {
        return Ok(c);
    }
    if ssh_cfg.address_mode() == crate::config::AddressMode::PrivateIp {
        if let Some(c) = vpc_cidr.and_then(|c| c.parse().ok()) {
            return Ok(c);
        }
    }
    if ssh_cfg.allow.is_none() {
        if let Some(ip) = public_ip() {
            return Ok(ipnet::IpNet::from(ip));
        }
    }
    Err(Error::input(
        "cannot tell who should reach SSH on the case's security group: give --ssh-cidr / \
         EC2_TOOLS_SSH_CIDR (your public address/32), or --security-group",
    ))
}

/// This machine's public IPv4 address as AWS sees it (checkip.amazonaws.com), if reachable.
fn public_ip() -> Option<std::net::IpAddr> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = ("checkip.amazonaws.com", 80)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: checkip.amazonaws.com\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.rsplit("\r\n\r\n").next()?.trim().parse().ok()
}

/// The case key's public half (OpenSSH format), generating the pair on first use.
fn case_key(store: &Store) -> Result<String> {
    let private = store.state_dir()?.join(CASE_KEY_FILE);
    let public = private.with_extension("pub");
    if private.is_file() && public.is_file() {
        return std::fs::read_to_string(&public).input_err(public.display());
    }
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|e| Error::infra(format!("generating an ed25519 key: {e}")))?;
    let pem = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| Error::infra(format!("encoding the case key: {e}")))?;
    let pubtext = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::infra(format!("encoding the case key: {e}")))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private)
            .infra_err(private.display())?;
        f.write_all(pem.as_bytes()).infra_err(private.display())?;
    }
    std::fs::write(&public, format!("{pubtext}\n")).infra_err(public.display())?;
    Ok(pubtext)
}

/// The user data that makes an instance power itself off (and so terminate) at its TTL.
fn ttl_user_data(ttl: std::time::Duration) -> String {
    let minutes = ttl.as_secs().div_ceil(60).max(1);
    format!(
        "#!/bin/sh\n# ec2-tools cost safety (--ttl): power off, and so terminate, after {minutes} minutes.\n\
         shutdown -h +{minutes} 'ec2-tools: TTL reached' 2>/dev/null || (sleep {secs} && poweroff) >/dev/null 2>&1 &\n",
        secs = minutes * 60
    )
}

const SPOT_SHORTAGE: &[&str] = &[
    "InsufficientInstanceCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientCapacity",
    "UnfulfillableCapacity",
];

/// Launch `count` instances with indexes `first..`, write each descriptor the moment AWS
/// returns the ids, then name them. Spot per the configuration (`fallback`: on-demand for what
/// spot could not supply).
#[allow(clippy::too_many_arguments)]
pub async fn launch(
    ec2: &Ec2,
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    store: &Store,
    state: &mut CaseState,
    access: &Access,
    first: u32,
    count: u32,
    role: Option<&str>,
) -> Result<Vec<Descriptor>> {
    let mut written = Vec::new();
    let mut next = first;
    let mut left = count;
    let markets: &[bool] = match launch.spot {
        SpotMode::Off => &[false],
        SpotMode::On => &[true],
        SpotMode::Fallback => &[true, false],
    };
    for (i, &spot) in markets.iter().enumerate() {
        if left == 0 {
            break;
        }
        let fallback_spot = spot && launch.spot == SpotMode::Fallback;
        let token = format!(
            "ec2-tools-{}-{}-{}",
            state.nonce,
            state.round,
            if spot { "s" } else { "o" }
        );
        let market = if spot { "spot" } else { "on-demand" };
        let mut tags = vec![
            ("Name".to_owned(), cfg.case.clone()),
            (ec2::TAG_CASE.to_owned(), cfg.case.clone()),
            (ec2::TAG_OWNER.to_owned(), crate::config::owner()),
            (ec2::TAG_INDEX_BASE.to_owned(), next.to_string()),
            (ec2::TAG_LAUNCH.to_owned(), token.clone()),
            (ec2::TAG_MARKET.to_owned(), market.to_owned()),
        ];
        if let Some(r) = role {
            tags.push((ec2::TAG_ROLE.to_owned(), r.to_owned()));
        }
        if let Some(ttl) = launch.ttl {
            let expires = std::time::SystemTime::now() + ttl;
            tags.push((
                ec2::TAG_EXPIRES.to_owned(),
                humantime::format_rfc3339_seconds(expires).to_string(),
            ));
        }
        let spec = LaunchSpec {
            ami: launch.ami()?.to_owned(),
            instance_type: launch.instance_type.clone(),
            count: left,
            min_count: fallback_spot.then_some(1),
            key_name: access.key_name.clone(),
            subnet: launch.subnet.clone(),
            security_groups: access.security_groups.clone(),
            client_token: token,
            tags,
            spot,
            user_data: launch.ttl.map(ttl_user_data),
            terminate_on_shutdown: launch.ttl.is_some() || spot,
        };
        let instances = match ec2.run_instances(&spec).await {
            Ok(v) => v,
            Err(e)
                if fallback_spot
                    && SPOT_SHORTAGE.iter().any(|c| e.message.contains(c))
                    && i + 1 < markets.len() =>
            {
                output::note(
                    "ec2-create",
                    format!("spot could not supply {left}: {e}; launching on-demand"),
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        if std::env::var("EC2_TOOLS_FAULT").as_deref() == Ok("after-run-instances") {
            // Fault injection for the crash-recovery test: die as a crash would, before any
            // descriptor is written.
            std::process::abort();
        }
        let mode = ssh_cfg.address_mode();
        for (k, info) in instances.iter().enumerate() {
            let index = next + info.launch_index.map(|l| l as u32).unwrap_or(k as u32);
            let d = descriptor_for(cfg, ec2, ssh_cfg, info, index, role, Some(market), mode);
            store.write(&d)?;
            written.push(d);
        }
        next += instances.len() as u32;
        left -= instances.len() as u32;
    }
    state.round += 1;
    state.save(store)?;
    if !written.is_empty() {
        output::note(
            "ec2-create",
            format!(
                "launched {} instances (#{}-#{})",
                written.len(),
                first,
                next - 1
            ),
        );
    }
    if launch.name_tags {
        name_instances(ec2, cfg, &written).await;
    }
    Ok(written)
}

/// Tag each instance `Name=<case>.<index>` and its index. The index is derivable from the
/// launch tags too, so a failure here is a note, not an abort.
pub async fn name_instances(ec2: &Ec2, cfg: &Config, descs: &[Descriptor]) {
    let mut set = tokio::task::JoinSet::new();
    for d in descs {
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
            output::note("ec2-tools", e);
        }
    }
}

/// A descriptor for an instance AWS described.
#[allow(clippy::too_many_arguments)]
pub fn descriptor_for(
    cfg: &Config,
    ec2: &Ec2,
    ssh_cfg: &SshConfig,
    info: &InstanceInfo,
    index: u32,
    role: Option<&str>,
    market: Option<&str>,
    mode: crate::config::AddressMode,
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
                    .unwrap_or_else(|| ssh_cfg.fallback_user.clone()),
            ),
            port: Some(ssh_cfg.port.unwrap_or(ssh_cfg.fallback_port)),
            host_key: None,
        },
        launched_at: None,
        extra: Default::default(),
    };
    d.extra.insert(
        "role".into(),
        role.map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null),
    );
    d.extra.insert(
        "market".into(),
        market
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null),
    );
    d.update_from(info, mode);
    d
}

/// Instances tagged with this case and owner that have no descriptor: write one for each (index
/// from its tags, else the next free one). Returns the adopted descriptors.
pub async fn adopt(
    ec2: &Ec2,
    cfg: &Config,
    ssh_cfg: &SshConfig,
    store: &Store,
    existing: &[Descriptor],
) -> Result<Vec<Descriptor>> {
    let known: BTreeSet<&str> = existing.iter().map(|d| d.id.as_str()).collect();
    let mut used: BTreeSet<u32> = existing.iter().map(|d| d.index).collect();
    let mut adopted = Vec::new();
    let mut found = ec2
        .describe_case(&cfg.case, Some(&crate::config::owner()), LIVE_STATES)
        .await?;
    found.retain(|i| !known.contains(i.id.as_str()));
    found.sort_by_key(|i| (tag_index(i).unwrap_or(u32::MAX), i.id.clone()));
    for info in found {
        let index = match tag_index(&info) {
            Some(i) if !used.contains(&i) => i,
            _ => used.iter().max().copied().unwrap_or(0) + 1,
        };
        used.insert(index);
        let role = info.tags.get(ec2::TAG_ROLE).cloned();
        let market = info.tags.get(ec2::TAG_MARKET).cloned();
        let d = descriptor_for(
            cfg,
            ec2,
            ssh_cfg,
            &info,
            index,
            role.as_deref(),
            market.as_deref(),
            ssh_cfg.address_mode(),
        );
        store.write(&d)?;
        output::note(
            "ec2-create",
            format!(
                "{}: tagged with case {} but had no descriptor: adopted as #{index}",
                d.id, cfg.case
            ),
        );
        adopted.push(d);
    }
    Ok(adopted)
}

/// The index an instance's tags give: `ec2-tools:index`, else launch base + AmiLaunchIndex.
pub fn tag_index(i: &InstanceInfo) -> Option<u32> {
    if let Some(n) = i.tags.get(ec2::TAG_INDEX).and_then(|v| v.parse().ok()) {
        return Some(n);
    }
    let base: u32 = i.tags.get(ec2::TAG_INDEX_BASE)?.parse().ok()?;
    Some(base + i.launch_index.unwrap_or(0) as u32)
}

/// Refresh descriptors from AWS (one DescribeInstances for all). Returns the descriptors of
/// instances still alive, and removes those AWS reports terminated or no longer lists (noting
/// each): nothing is lost, the instance is gone.
pub async fn refresh(
    ec2: &Ec2,
    ssh_cfg: &SshConfig,
    store: &Store,
    descs: Vec<Descriptor>,
    tool: &str,
) -> Result<Vec<Descriptor>> {
    if descs.is_empty() {
        return Ok(descs);
    }
    let ids: Vec<String> = descs.iter().map(|d| d.id.clone()).collect();
    let infos = ec2.describe(&ids).await?;
    let mut alive = Vec::new();
    for mut d in descs {
        match infos.iter().find(|i| i.id == d.id) {
            Some(info) if LIVE_STATES.contains(&info.state.as_str()) => {
                if d.update_from(info, ssh_cfg.address_mode()) {
                    store.write(&d)?;
                }
                alive.push(d);
            }
            Some(info) => {
                store.remove(&d.id)?;
                output::note(
                    tool,
                    format!("{}: {} in AWS; descriptor removed", d.label(), info.state),
                );
            }
            None => {
                store.remove(&d.id)?;
                output::note(
                    tool,
                    format!(
                        "{}: AWS no longer knows this instance; descriptor removed",
                        d.label()
                    ),
                );
            }
        }
    }
    Ok(alive)
}

/// Terminate and remove the descriptors AWS accepted; anything not accepted is an error and
/// keeps its descriptor.
pub async fn terminate_and_forget(ec2: &Ec2, store: &Store, hosts: &[Descriptor]) -> Result<()> {
    let ids: Vec<String> = hosts.iter().map(|d| d.id.clone()).collect();
    let result = ec2.terminate(&ids).await?;
    let mut gone: Vec<&String> = result.accepted.iter().map(|(id, _)| id).collect();
    gone.extend(result.unknown.iter());
    for id in &gone {
        store.remove(id)?;
    }
    let left: Vec<&String> = ids.iter().filter(|i| !gone.contains(i)).collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(Error::infra(format!(
            "AWS did not accept terminating {left:?} (descriptors kept)"
        )))
    }
}
