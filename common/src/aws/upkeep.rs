//! Keeping a case's descriptors true to AWS after its launches: finishing a launch a crashed
//! run left in flight, adopting the case's instances that have no descriptor, refreshing
//! states and addresses, naming instances, terminating. Methods of [`Fleet`] (fleet.rs
//! launches). What does not belong here: deciding what to adopt or terminate (the tools'
//! pure plans, cmd/), waiting (wait.rs).

use super::ec2::{owner, InstanceInfo, LaunchSpec, TAG_INDEX, TAG_MARKET, TAG_ROLE};
use super::errors;
use super::fleet::{launch_indexes_to_indexes, tag_index, unix_now, Fleet};
use super::retry::CAPACITY_ERRORS;
use crate::case::descriptor::{Descriptor, InstanceState, SshInfo};
use crate::case::store::CaseState;
use crate::error::{Error, Result};
use crate::output;
use std::collections::BTreeSet;

impl Fleet {
    /// Finish what a crashed run left in flight: the RunInstances call recorded before it was
    /// sent. Sent again, exactly as it was (same ClientToken, same parameters), it gets the
    /// first call's answer from AWS — every instance it launched, including those EC2 does
    /// not list yet (eventual consistency hides new instances for seconds) — or, had it never
    /// arrived, launches them now. Each instance without a descriptor is adopted at the index
    /// the launch gave it (first + AmiLaunchIndex; the next free one if taken), its index
    /// tagged. A record older than [`errors::FRESH`] is not sent again: what AWS lists is then
    /// the truth. Returns the descriptors written.
    pub async fn recover(
        &self,
        tracked: &[Descriptor],
        name_tags: bool,
    ) -> Result<Vec<Descriptor>> {
        let mut state = CaseState::load(&self.store)?;
        let Some(rec) = state.in_flight.clone() else {
            return Ok(vec![]);
        };
        let spec: LaunchSpec = match serde_json::from_value(rec.request.clone()) {
            Ok(s) => s,
            Err(e) => {
                output::note(format!(
                    "the recorded launch in flight cannot be read ({e}); `ec2-killall \
                     --case-sweep` finds its instances by tag"
                ));
                state.in_flight = None;
                state.save(&self.store)?;
                return Ok(vec![]);
            }
        };
        let token = spec.client_token.clone();
        let mut seen = self.ec2.describe_launch(&token).await?;
        let fresh = unix_now().saturating_sub(rec.sent_at) < errors::FRESH.as_secs();
        let visible = u32::try_from(seen.len()).unwrap_or(u32::MAX);
        if fresh && visible < spec.count {
            output::note(format!(
                "a launch was interrupted ({token}, {} of {} instances listed): asking AWS \
                 for its answer again",
                visible, spec.count
            ));
            match self.ec2.run_instances(&spec).await {
                Ok(answer) => {
                    let listed: BTreeSet<&str> = seen.iter().map(|i| i.id.as_str()).collect();
                    if !listed.is_empty() && !answer.iter().any(|i| listed.contains(i.id.as_str()))
                    {
                        output::note(format!(
                            "the EC2 endpoint ignored the ClientToken (plain moto does; AWS \
                             does not): {} launched again, all adopted (ec2-killall \
                             terminates them)",
                            output::count(answer.len(), "instance")
                        ));
                    }
                    for i in answer {
                        if !seen.iter().any(|s| s.id == i.id) {
                            seen.push(i);
                        }
                    }
                }
                Err(e) if e.is_aws(CAPACITY_ERRORS) || e.code == crate::error::Code::Usage => {
                    // It launched nothing then, and launches nothing now.
                    output::note(format!("the interrupted launch launched nothing: {e}"));
                }
                Err(e) => return Err(e.context("recovering an interrupted launch")),
            }
        }
        let known: BTreeSet<&str> = tracked.iter().map(|d| d.id.as_str()).collect();
        let mut used: BTreeSet<u32> = tracked.iter().map(|d| d.index).collect();
        used.extend(self.store.load_all()?.iter().map(|d| d.index));
        seen.retain(|i| !known.contains(i.id.as_str()) && !self.store.path(&i.id).exists());
        seen.sort_by_key(|i| (i.launch_index.unwrap_or(i32::MAX), i.id.clone()));
        let launch_indexes: Vec<Option<i32>> = seen.iter().map(|i| i.launch_index).collect();
        let indexes = launch_indexes_to_indexes(rec.first, &launch_indexes, &used);
        let mut adopted = Vec::new();
        for (info, index) in seen.iter().zip(indexes) {
            adopted.push(self.adopt(info, index)?);
        }
        if name_tags {
            self.name_instances(&adopted).await;
        }
        state.in_flight = None;
        state.save(&self.store)?;
        Ok(adopted)
    }

    /// Tag each instance `Name=<case>.<index>` and its index. The index is derivable from the
    /// launch tags too, so a failure here is a note, not an abort.
    pub(crate) async fn name_instances(&self, descs: &[Descriptor]) {
        // A few at a time: CreateTags has its own (smaller) token bucket.
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
        let mut set = tokio::task::JoinSet::new();
        for d in descs {
            let gate = gate.clone();
            let ec2 = self.ec2.clone();
            let id = d.id.clone();
            let tags = vec![
                ("Name".to_owned(), format!("{}.{}", self.cfg.case, d.index)),
                (TAG_INDEX.to_owned(), d.index.to_string()),
            ];
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                ec2.create_tags(&id, &tags).await
            });
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
                host_public_key: None,
                transport: self.ssh.transport,
                ..SshInfo::default()
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

    /// Bring `.ec2-tools/ssh_config` and `known_hosts` up to date with the descriptors (a
    /// failure is a note: the tools themselves do not need them).
    pub fn sync_ssh_files(&self) {
        crate::remote::sshconf::update(&self.store, &self.ssh);
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
    /// Static hosts (`ec2-hosts add`) are not AWS's: kept as they are, never asked about.
    pub async fn refresh(&self, descs: Vec<Descriptor>) -> Result<Vec<Descriptor>> {
        let (mut alive, descs): (Vec<Descriptor>, Vec<Descriptor>) =
            descs.into_iter().partition(Descriptor::is_static);
        if descs.is_empty() {
            return Ok(alive);
        }
        let ids: Vec<String> = descs.iter().map(|d| d.id.clone()).collect();
        let infos = self.ec2.describe(&ids).await?;
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
                None if d.is_fresh(errors::FRESH) => {
                    output::note(format!(
                        "{}: launched moments ago and not visible in AWS yet; descriptor kept",
                        d.label()
                    ));
                    alive.push(d);
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
        let result = self.ec2.terminate(&ids, &errors::fresh_ids(hosts)).await?;
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
