//! The instances of a case as one object: a [`Fleet`] owns the EC2 client, the case's
//! configuration and descriptor store, and the SSH settings new descriptors record; it
//! launches, adopts, refreshes and terminates, keeping the descriptors true to AWS.
//!
//! Order matters for the promise that nothing is ever forgotten: a descriptor is written the
//! moment RunInstances returns the id, and removed only once AWS accepted the termination (or
//! no longer knows the instance). Each launch carries a deterministic ClientToken (the case's
//! nonce and launch round), so a crashed launch retried returns the same instances. What does
//! not belong here: deciding what to launch or trim (the tools' pure plans, cmd/), waiting
//! (wait.rs), the case's key pair and group (access.rs).

use super::access::{ensure_access, Access};
use super::ec2::{
    self, owner, Ec2, InstanceInfo, LaunchSpec, TAG_CASE, TAG_EXPIRES, TAG_INDEX, TAG_INDEX_BASE,
    TAG_LAUNCH, TAG_MARKET, TAG_OWNER, TAG_ROLE,
};
use crate::case::descriptor::{Descriptor, InstanceState, SshInfo};
use crate::case::store::{CaseState, Store};
use crate::config::{Config, LaunchConfig, SpotMode, SshConfig};
use crate::error::{Error, Result};
use crate::output;
use std::collections::BTreeSet;

/// A case's instances, as AWS and the descriptors see them.
pub struct Fleet {
    pub ec2: Ec2,
    pub cfg: Config,
    pub ssh: SshConfig,
    pub store: Store,
}

/// What a launch needs beyond the configuration: the case's state (nonce, round) and access.
pub struct Launcher<'a> {
    pub config: &'a LaunchConfig,
    state: CaseState,
    access: Access,
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

/// The index an instance's tags give: `ec2-tools:index`, else launch base + AmiLaunchIndex.
pub fn tag_index(i: &InstanceInfo) -> Option<u32> {
    if let Some(n) = i.tags.get(TAG_INDEX).and_then(|v| v.parse().ok()) {
        return Some(n);
    }
    let base: u32 = i.tags.get(TAG_INDEX_BASE)?.parse().ok()?;
    Some(base + i.launch_index.unwrap_or(0) as u32)
}

impl Fleet {
    /// Connect to EC2 for the case in `cfg` (the store is its directory).
    pub async fn connect(cfg: Config, ssh: SshConfig) -> Result<Fleet> {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        Ok(Fleet {
            ec2,
            store: Store::new(&cfg.dir),
            cfg,
            ssh,
        })
    }

    /// Get ready to launch: the case's nonce on disk (before its token is used), its key
    /// pair and security group in AWS. Bad configuration is found before anything is made.
    pub async fn launcher<'a>(&self, config: &'a LaunchConfig) -> Result<Launcher<'a>> {
        self.ec2.check_image(config.ami()?).await?;
        let mut state = CaseState::load(&self.store)?;
        state.save(&self.store)?;
        let access = ensure_access(
            &self.ec2,
            &self.cfg.case,
            config,
            &self.ssh,
            &self.store,
            &mut state,
        )
        .await?;
        Ok(Launcher {
            config,
            state,
            access,
        })
    }

    /// Launch `count` instances with indexes `first..`, write each descriptor the moment AWS
    /// returns the ids, then name them. Spot per the configuration (`fallback`: on-demand for
    /// what spot could not supply).
    pub async fn launch(
        &self,
        l: &mut Launcher<'_>,
        first: u32,
        count: u32,
        role: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let launch = l.config;
        let case = &self.cfg.case;
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
                l.state.nonce,
                l.state.round,
                if spot { "s" } else { "o" }
            );
            let market = if spot { "spot" } else { "on-demand" };
            let mut tags = vec![
                ("Name".to_owned(), case.clone()),
                (TAG_CASE.to_owned(), case.clone()),
                (TAG_OWNER.to_owned(), owner()),
                (TAG_INDEX_BASE.to_owned(), next.to_string()),
                (TAG_LAUNCH.to_owned(), token.clone()),
                (TAG_MARKET.to_owned(), market.to_owned()),
            ];
            if let Some(r) = role {
                tags.push((TAG_ROLE.to_owned(), r.to_owned()));
            }
            if let Some(ttl) = launch.ttl {
                let expires = std::time::SystemTime::now() + ttl;
                tags.push((
                    TAG_EXPIRES.to_owned(),
                    humantime::format_rfc3339_seconds(expires).to_string(),
                ));
            }
            let spec = LaunchSpec {
                ami: launch.ami()?.to_owned(),
                instance_type: launch.instance_type.clone(),
                count: left,
                min_count: fallback_spot.then_some(1),
                key_name: l.access.key_name.clone(),
                subnet: launch.subnet.clone(),
                security_groups: l.access.security_groups.clone(),
                client_token: token,
                tags,
                spot,
                user_data: launch.ttl.map(ttl_user_data),
                terminate_on_shutdown: launch.ttl.is_some() || spot,
            };
            let instances = match self.ec2.run_instances(&spec).await {
                Ok(v) => v,
                Err(e)
                    if fallback_spot
                        && SPOT_SHORTAGE.iter().any(|c| e.message.contains(c))
                        && i + 1 < markets.len() =>
                {
                    output::note(format!(
                        "spot could not supply {left}: {e}; launching on-demand"
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if std::env::var("EC2_TOOLS_FAULT").as_deref() == Ok("after-run-instances") {
                // Fault injection for the crash-recovery test: die as a crash would, before
                // any descriptor is written.
                std::process::abort();
            }
            for (k, info) in instances.iter().enumerate() {
                let index = next + info.launch_index.map(|l| l as u32).unwrap_or(k as u32);
                let d = self.descriptor_for(info, index, role, Some(market));
                self.store.write(&d)?;
                written.push(d);
            }
            next += instances.len() as u32;
            left -= instances.len() as u32;
        }
        l.state.round += 1;
        l.state.save(&self.store)?;
        if !written.is_empty() {
            output::note(format!(
                "launched {} instances (#{}-#{})",
                written.len(),
                first,
                next - 1
            ));
        }
        if launch.name_tags {
            self.name_instances(&written).await;
        }
        Ok(written)
    }

    /// Tag each instance `Name=<case>.<index>` and its index. The index is derivable from the
    /// launch tags too, so a failure here is a note, not an abort.
    async fn name_instances(&self, descs: &[Descriptor]) {
        let mut set = tokio::task::JoinSet::new();
        for d in descs {
            let ec2 = self.ec2.clone();
            let id = d.id.clone();
            let tags = vec![
                ("Name".to_owned(), format!("{}.{}", self.cfg.case, d.index)),
                (TAG_INDEX.to_owned(), d.index.to_string()),
            ];
            set.spawn(async move { ec2.create_tags(&id, &tags).await });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Err(e)) = r {
                output::note(e);
            }
        }
    }

    /// A descriptor for an instance AWS described.
    pub fn descriptor_for(
        &self,
        info: &InstanceInfo,
        index: u32,
        role: Option<&str>,
        market: Option<&str>,
    ) -> Descriptor {
        let mut d = Descriptor {
            id: info.id.clone(),
            index,
            case: self.cfg.case.clone(),
            region: Some(self.ec2.region.clone()),
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
                user: Some(self.ssh.user_or_fallback()),
                port: Some(self.ssh.port_or_fallback()),
                host_key: None,
            },
            launched_at: None,
            extra: Default::default(),
        };
        let json = |v: Option<&str>| v.map(serde_json::Value::from).unwrap_or_default();
        d.extra.insert("role".into(), json(role));
        d.extra.insert("market".into(), json(market));
        info.update(&mut d, self.ssh.address_mode());
        d
    }

    /// Live instances tagged with this case and owner that `tracked` does not hold.
    pub async fn untracked(&self, tracked: &[Descriptor]) -> Result<Vec<InstanceInfo>> {
        let known: BTreeSet<&str> = tracked.iter().map(|d| d.id.as_str()).collect();
        let mut found = self
            .ec2
            .describe_case(&self.cfg.case, Some(&owner()), &InstanceState::LIVE)
            .await?;
        found.retain(|i| !known.contains(i.id.as_str()));
        found.sort_by_key(|i| (tag_index(i).unwrap_or(u32::MAX), i.id.clone()));
        Ok(found)
    }

    /// Write a descriptor for an instance of the case that had none, at `index`.
    pub fn adopt(&self, info: &InstanceInfo, index: u32) -> Result<Descriptor> {
        let role = info.tags.get(TAG_ROLE).map(String::as_str);
        let market = info.tags.get(TAG_MARKET).map(String::as_str);
        let d = self.descriptor_for(info, index, role, market);
        self.store.write(&d)?;
        output::note(format!(
            "{}: tagged with case {} but had no descriptor: adopted as #{index}",
            d.id, self.cfg.case
        ));
        Ok(d)
    }

    /// Refresh descriptors from AWS (one DescribeInstances for all). Returns the descriptors
    /// of instances still alive, and removes those AWS reports gone or no longer lists
    /// (noting each): nothing is lost, the instance is gone.
    pub async fn refresh(&self, descs: Vec<Descriptor>) -> Result<Vec<Descriptor>> {
        if descs.is_empty() {
            return Ok(descs);
        }
        let ids: Vec<String> = descs.iter().map(|d| d.id.clone()).collect();
        let infos = self.ec2.describe(&ids).await?;
        let mut alive = Vec::new();
        for mut d in descs {
            match infos.iter().find(|i| i.id == d.id) {
                Some(info) if info.state.is_live() => {
                    if info.update(&mut d, self.ssh.address_mode()) {
                        self.store.write(&d)?;
                    }
                    alive.push(d);
                }
                Some(info) => {
                    self.store.remove(&d.id)?;
                    output::note(format!(
                        "{}: {} in AWS; descriptor removed",
                        d.label(),
                        info.state
                    ));
                }
                None => {
                    self.store.remove(&d.id)?;
                    output::note(format!(
                        "{}: AWS no longer knows this instance; descriptor removed",
                        d.label()
                    ));
                }
            }
        }
        Ok(alive)
    }

    /// Terminate and remove the descriptors AWS accepted; anything not accepted is an error
    /// and keeps its descriptor.
    pub async fn terminate(&self, hosts: &[Descriptor]) -> Result<()> {
        let ids: Vec<String> = hosts.iter().map(|d| d.id.clone()).collect();
        let result = self.ec2.terminate(&ids).await?;
        let mut gone: Vec<&String> = result.accepted.iter().map(|(id, _)| id).collect();
        gone.extend(result.unknown.iter());
        for id in &gone {
            self.store.remove(id)?;
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
}
