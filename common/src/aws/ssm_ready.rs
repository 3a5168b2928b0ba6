//! Readiness over SSM (`--transport ssm`): an instance is ready once its agent is a managed
//! node `Online` (DescribeInstanceInformation, one call per 50 instances a round) and a first
//! command (`true`) ran on it (one SendCommand per 50 that came online, then one
//! ListCommandInvocations per command a round). Nothing logs in and no port is open.
//!
//! What does not belong here: the wait itself (wait.rs: rounds, deadline, progress, the
//! outcome), the calls (ssm.rs).

use super::probe::{Cause, NotReady};
use super::ssm::{Fail, Send, Ssm, Status, To};
use crate::error::Result;
use std::collections::BTreeMap;

/// What a round found for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Ready,
    /// Not yet, and why (the wait goes on).
    Waiting(NotReady),
    /// Never: its first command failed.
    Failed(NotReady),
}

/// The first commands sent, by instance.
pub struct SsmReady {
    ssm: Ssm,
    sent: BTreeMap<String, String>,
}

fn not_ready(message: String) -> NotReady {
    NotReady {
        cause: Cause::Ssm,
        message,
    }
}

impl SsmReady {
    pub fn new(ec2: &super::ec2::Ec2) -> SsmReady {
        SsmReady {
            ssm: Ssm::new(ec2),
            sent: BTreeMap::new(),
        }
    }

    /// One round for the running instances `ids` not yet ready.
    pub async fn round(&mut self, ids: &[String]) -> Result<Vec<(String, Seen)>> {
        let unsent: Vec<String> = ids
            .iter()
            .filter(|i| !self.sent.contains_key(*i))
            .cloned()
            .collect();
        let mut seen = match unsent.is_empty() {
            true => Vec::new(),
            false => self.ping_and_send(&unsent).await?,
        };
        seen.extend(self.first_commands(ids).await?);
        Ok(seen)
    }

    /// The instances not sent their first command yet: those `Online` get it (50 per call);
    /// the others wait, and say why.
    async fn ping_and_send(&mut self, unsent: &[String]) -> Result<Vec<(String, Seen)>> {
        let mut seen = Vec::new();
        let ping = match self.ssm.ping_status(unsent).await {
            Ok(p) => p,
            Err(Fail::Throttled(_)) => return Ok(seen),
            Err(f) => return Err(f.error()),
        };
        let online: Vec<String> = unsent
            .iter()
            .filter(|i| ping.get(*i).map(String::as_str) == Some("Online"))
            .cloned()
            .collect();
        for id in unsent.iter().filter(|i| !online.contains(i)) {
            let why = match ping.get(id) {
                Some(p) => format!("its SSM agent is {p}"),
                None => "its SSM agent has not registered yet (it needs the agent, an instance \
                         profile with AmazonSSMManagedInstanceCore and outbound 443)"
                    .to_owned(),
            };
            seen.push((id.clone(), Seen::Waiting(not_ready(why))));
        }
        for chunk in online.chunks(super::ssm_plan::MAX_IDS) {
            let send = Send {
                to: To::Ids(chunk.to_vec()),
                script: "true\n".into(),
                execution_s: 60,
                delivery_s: 60,
                concurrency: chunk.len(),
                bucket: None,
                comment: "ec2-tools: ready?".into(),
            };
            match self.ssm.send(&send).await {
                Ok((cmd, _)) => {
                    for id in chunk {
                        self.sent.insert(id.clone(), cmd.clone());
                    }
                }
                // Online a moment ago, not now (or throttled): the next round asks again.
                Err(Fail::Throttled(_) | Fail::NotManaged(_)) => {}
                Err(f) => return Err(f.error()),
            }
        }
        Ok(seen)
    }

    /// How the first commands sent to `ids` ended: one ListCommandInvocations (a page) per
    /// command, not one call per instance.
    async fn first_commands(&self, ids: &[String]) -> Result<Vec<(String, Seen)>> {
        let mut seen = Vec::new();
        let mut commands: Vec<String> = ids
            .iter()
            .filter_map(|i| self.sent.get(i))
            .cloned()
            .collect();
        commands.sort();
        commands.dedup();
        for cmd in commands {
            let mut calls = 0;
            let listed = match self.ssm.invocations(&cmd, &mut calls).await {
                Ok(l) => l,
                Err(Fail::Throttled(_)) => continue,
                Err(f) => return Err(f.error()),
            };
            for inv in listed.into_iter().filter(|i| ids.contains(&i.instance_id)) {
                let s = match inv.status {
                    Status::Success => Seen::Ready,
                    Status::Running => {
                        Seen::Waiting(not_ready("its first SSM command runs".into()))
                    }
                    _ => Seen::Failed(not_ready(format!(
                        "its first SSM command (true) ended {} ({})",
                        inv.details, inv.code
                    ))),
                };
                seen.push((inv.instance_id, s));
            }
        }
        Ok(seen)
    }
}
