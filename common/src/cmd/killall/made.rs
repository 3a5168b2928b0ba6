//! What ec2-killall deletes besides instances: the resources the case made (its placement
//! group, security group, IAM role and instance profile, key pair, network, spot requests),
//! once none of its instances is alive, each forgotten in case.json the moment it is gone;
//! with `--case-sweep` those found by the case's and owner's tags; with `--images` its baked
//! images. Each kind on its own: one that cannot be listed or deleted is reported (with the
//! AWS CLI line that removes it) and the rest are still cleaned.
//!
//! What does not belong here: terminating instances and forgetting their descriptors
//! (mod.rs), how a leftover is reported (leftover.rs).

use super::leftover::{
    delete_group_line, delete_key_line, delete_network_line, delete_placement_line,
    delete_profile_line, kept_key, quote, Report,
};
use super::{Killed, Kind};
use crate::aws::ec2::{owner, Ec2, TAG_LAUNCH};
use crate::case::store::{case_key_path, CaseState, Store};
use crate::config::Config;
use crate::error::Result;
use crate::output;
use std::time::Duration;

/// `--images`: deregister the images tagged with this case and owner, and their snapshots,
/// each on its own.
pub(super) fn delete_images(cfg: &Config, killed: &mut Killed) -> Result<()> {
    crate::aws::runtime()?.block_on(async {
        let ec2 = crate::aws::ec2::connect(cfg.region.as_deref()).await?;
        let owner = owner();
        let mut report = Report::new(cfg, &ec2.region, &owner);
        match ec2.owned_images(&owner, Some(&cfg.case)).await {
            Ok(images) => {
                for i in images {
                    match ec2.delete_image(&i).await {
                        Ok(()) => output::note(format!(
                            "deregistered image {} ({}) and deleted {}",
                            i.id,
                            i.name,
                            output::count(i.snapshots.len(), "snapshot")
                        )),
                        Err(e) => report.undeleted(
                            Kind::Images,
                            &e,
                            &i.id,
                            format!(
                                "aws ec2 deregister-image --region {} --image-id {}{}",
                                quote(&report.region),
                                i.id,
                                i.snapshots
                                    .iter()
                                    .map(|s| format!(
                                        " && aws ec2 delete-snapshot --region {} --snapshot-id {s}",
                                        quote(&report.region)
                                    ))
                                    .collect::<String>()
                            ),
                        ),
                    }
                }
            }
            Err(e) => report.unlisted(Kind::Images, &e),
        }
        killed.left.extend(report.left);
        Ok(())
    })
}

/// `--case-sweep`: delete the spot requests, security groups, key pairs, placement groups and
/// networks tagged with the case and owner (what a case whose `.ec2-tools/` was lost still
/// has), once none of its instances is alive — each kind on its own.
pub(super) async fn sweep_tagged(
    ec2: &Ec2,
    cfg: &Config,
    owner: &str,
    alive: Option<&[crate::aws::ec2::InstanceInfo]>,
    patience: Duration,
    report: &mut Report<'_>,
) {
    if let Some(alive) = alive.filter(|a| !a.is_empty()) {
        output::note(format!(
            "keeping the case's tagged key pairs and groups: {} instances still alive",
            alive.len()
        ));
        return;
    }
    let tagged = || format!("(tagged with case {})", cfg.case);
    cancel_spot_requests(ec2, cfg, owner, report).await;
    delete_each(
        report,
        Kind::SecurityGroups,
        ec2.tagged_groups(&cfg.case, owner).await,
        delete_group_line,
        async |g: &String| ec2.delete_group(g, patience).await,
        &tagged(),
    )
    .await;
    let keys = match ec2.tagged_key_pairs(&cfg.case, owner).await {
        Ok(keys) if alive.is_none() => {
            for k in keys {
                report.left.push(kept_key(&report.region, &k));
            }
            Ok(vec![])
        }
        listed => listed,
    };
    delete_each(
        report,
        Kind::KeyPairs,
        keys,
        delete_key_line,
        async |k: &String| ec2.delete_key_pair(k).await,
        &tagged(),
    )
    .await;
    delete_each(
        report,
        Kind::PlacementGroups,
        ec2.tagged_placement_groups(&cfg.case, owner).await,
        delete_placement_line,
        async |p: &String| ec2.delete_placement_group(p, patience).await,
        &tagged(),
    )
    .await;
    let iam = crate::aws::iam::Iam::new(ec2);
    delete_each(
        report,
        Kind::InstanceProfiles,
        iam.tagged_roles(&cfg.case, owner).await,
        |_: &str, name: &str| delete_profile_line(name),
        async |name: &String| iam.delete_ssm_profile(name).await,
        &tagged(),
    )
    .await;
    // Last: the security groups in them are gone.
    let nets = ec2.tagged_networks(&cfg.case, owner).await;
    let by_vpc: Vec<crate::case::store::NetworkState> = nets.as_ref().cloned().unwrap_or_default();
    delete_each(
        report,
        Kind::Networks,
        nets.map(|n| n.into_iter().map(|n| n.vpc).collect()),
        delete_network_line,
        async |vpc: &String| match by_vpc.iter().find(|n| &n.vpc == vpc) {
            Some(n) => ec2.delete_network(n, patience).await,
            None => Ok(()),
        },
        &tagged(),
    )
    .await;
}

/// Cancel the case's spot requests still open or active (one call for all of them).
async fn cancel_spot_requests(ec2: &Ec2, cfg: &Config, owner: &str, report: &mut Report<'_>) {
    match ec2.tagged_spot_requests(&cfg.case, owner).await {
        Ok(ids) if !ids.is_empty() => match ec2.cancel_spot_requests(&ids).await {
            Ok(()) => output::note(format!(
                "cancelled spot requests {} (tagged with case {})",
                ids.join(", "),
                cfg.case
            )),
            Err(e) => report.undeleted(
                Kind::SpotRequests,
                &e,
                "",
                format!(
                    "aws ec2 cancel-spot-instance-requests --region {} \
                     --spot-instance-request-ids {}",
                    quote(&report.region),
                    ids.join(" ")
                ),
            ),
        },
        Ok(_) => {}
        Err(e) => report.unlisted(Kind::SpotRequests, &e),
    }
}

/// One kind of the sweep: what its listing found, deleted one by one. A listing that failed,
/// or a deletion, is one leftover each; the others go on.
async fn delete_each(
    report: &mut Report<'_>,
    kind: Kind,
    listed: Result<Vec<String>>,
    by_hand: fn(&str, &str) -> String,
    delete: impl AsyncFn(&String) -> Result<()>,
    why: &str,
) {
    let items = match listed {
        Ok(items) => items,
        Err(e) => return report.unlisted(kind, &e),
    };
    for item in items {
        match delete(&item).await {
            Ok(()) => output::note(format!("deleted {} {item} {why}", kind.one())),
            Err(e) => {
                let line = by_hand(&report.region, &item);
                report.undeleted(kind, &e, &item, line);
            }
        }
    }
}

/// Delete what the tools created for the case once no instance of it is alive, each kind on
/// its own (the case state forgets each as it goes).
/// One deletion of something the case made: what it is, and what is said either way.
struct Deleted<'a> {
    kind: Kind,
    name: &'a str,
    /// The AWS CLI line that deletes it by hand.
    line: String,
    /// Said when it is gone.
    said: String,
}

impl Deleted<'_> {
    /// Gone: say so and forget it in case.json at once (a later failure keeps the rest).
    /// Not: report it with the line that deletes it by hand.
    fn settle(
        self,
        r: Result<()>,
        state: &mut CaseState,
        store: &Store,
        report: &mut Report<'_>,
        forget: impl FnOnce(&mut CaseState),
    ) -> Result<()> {
        match r {
            Ok(()) => {
                output::note(self.said);
                forget(state);
                state.save(store)
            }
            Err(e) => {
                report.undeleted(self.kind, &e, self.name, self.line);
                Ok(())
            }
        }
    }
}

pub(super) async fn cleanup(
    ec2: &Ec2,
    cfg: &Config,
    store: &Store,
    alive: Option<&[crate::aws::ec2::InstanceInfo]>,
    patience: Duration,
    report: &mut Report<'_>,
) -> Result<()> {
    let mut state = CaseState::load(store)?;
    if state.key_name.is_none()
        && state.security_group.is_none()
        && state.placement_group.is_none()
        && state.network.is_none()
        && state.iam_profile.is_none()
        && !state.spot
    {
        return Ok(());
    }
    if let Some(alive) = alive {
        let ours: Vec<&str> = alive
            .iter()
            .filter(|i| {
                i.tags
                    .get(TAG_LAUNCH)
                    .is_some_and(|t| t.contains(&state.nonce))
            })
            .map(|i| i.id.as_str())
            .collect();
        if !ours.is_empty() {
            output::note(format!(
                "keeping the case's key pair and security group: still used by {}",
                ours.join(", ")
            ));
            return Ok(());
        }
    }
    if state.spot {
        cancel_spot_requests(ec2, cfg, &owner(), report).await;
    }
    delete_made(ec2, store, &mut state, alive.is_some(), patience, report).await?;
    if state.spot && report.left.iter().all(|l| l.kind != Kind::SpotRequests) {
        state.spot = false;
        state.save(store)?;
    }
    Ok(())
}

/// The role and instance profile the case made for SSM, if any.
async fn delete_ssm_profile(
    ec2: &Ec2,
    store: &Store,
    state: &mut CaseState,
    report: &mut Report<'_>,
) -> Result<()> {
    let Some(name) = state.iam_profile.clone() else {
        return Ok(());
    };
    let r = crate::aws::iam::Iam::new(ec2)
        .delete_ssm_profile(&name)
        .await;
    let gone = Deleted {
        kind: Kind::InstanceProfiles,
        name: &name,
        line: delete_profile_line(&name),
        said: format!("deleted IAM instance profile and role {name}"),
    };
    gone.settle(r, state, store, report, |s| s.iam_profile = None)
}

/// Delete what the case made, in dependency order (placement group, security group, key
/// pair, then its network), each forgotten in case.json the moment it is gone. The key pair
/// stays when the case's instances cannot be listed (`listed` false): one may still use it.
async fn delete_made(
    ec2: &Ec2,
    store: &Store,
    state: &mut CaseState,
    listed: bool,
    patience: Duration,
    report: &mut Report<'_>,
) -> Result<()> {
    if let Some(pg) = state.placement_group.clone() {
        let r = ec2.delete_placement_group(&pg, patience).await;
        let line = delete_placement_line(&report.region, &pg);
        let said = format!("deleted placement group {pg}");
        let gone = Deleted {
            kind: Kind::PlacementGroups,
            name: &pg,
            line,
            said,
        };
        gone.settle(r, state, store, report, |s| s.placement_group = None)?;
    }
    if let Some(sg) = state.security_group.clone() {
        let r = ec2.delete_group(&sg, patience).await;
        let line = delete_group_line(&report.region, &sg);
        let said = format!("deleted security group {sg}");
        let gone = Deleted {
            kind: Kind::SecurityGroups,
            name: &sg,
            line,
            said,
        };
        gone.settle(r, state, store, report, |s| s.security_group = None)?;
    }
    delete_ssm_profile(ec2, store, state, report).await?;
    if let Some(key) = state.key_name.clone() {
        if !listed {
            report.left.push(kept_key(&report.region, &key));
        } else {
            let r = ec2.delete_key_pair(&key).await;
            let key_file = case_key_path(store.dir());
            let said = if r.is_ok() && std::fs::remove_file(&key_file).is_ok() {
                format!("deleted key pair {key} and its local private key")
            } else {
                format!("deleted key pair {key}")
            };
            if r.is_ok() {
                let _ = std::fs::remove_file(key_file.with_extension("pub"));
            }
            let line = delete_key_line(&report.region, &key);
            let gone = Deleted {
                kind: Kind::KeyPairs,
                name: &key,
                line,
                said,
            };
            gone.settle(r, state, store, report, |s| s.key_name = None)?;
        }
    }
    // Last: the group in it is gone (its instances' interfaces may linger: retried).
    if let Some(net) = state.network.clone() {
        let r = ec2.delete_network(&net, patience).await;
        let line = delete_network_line(&report.region, &net.vpc);
        let said = format!("deleted network {}", net.vpc);
        let gone = Deleted {
            kind: Kind::Networks,
            name: &net.vpc,
            line,
            said,
        };
        gone.settle(r, state, store, report, |s| s.network = None)?;
    }
    Ok(())
}
