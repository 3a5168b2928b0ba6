//! The instances of a case as one object: a [`Fleet`] owns the EC2 client, the case's
//! configuration and descriptor store, and the SSH settings new descriptors record; it
//! launches, adopts, refreshes and terminates, keeping the descriptors true to AWS.
//!
//! Order matters for the promise that nothing is ever forgotten: a descriptor is written the
//! moment RunInstances returns the id, and removed only once AWS accepted the termination (or
//! no longer knows the instance). Each launch carries a deterministic ClientToken (the case's
//! nonce and launch round), so a crashed launch retried returns the same instances. What does
//! not belong here: deciding what to launch or trim (the tools' pure plans, cmd/), waiting
//! (wait.rs), the case's key pair and group (access.rs), the checks before a launch and its
//! images (preflight.rs), the quota and the cost (quota.rs, cost.rs), what keeps the
//! descriptors true after a launch — recovery, adoption, refresh, termination (upkeep.rs).

mod naming;
pub(super) use naming::unix_now;
pub(crate) use naming::{client_token, launch_indexes_to_indexes};
use naming::{pool_label, pools};
pub use naming::{tag_index, Market};

use super::access::{ensure_access, Access};
use super::ec2::{
    self, owner, Ec2, InstanceInfo, LaunchSpec, RootVolume, TAG_CASE, TAG_EXPIRES, TAG_INDEX_BASE,
    TAG_LAUNCH, TAG_MARKET, TAG_OWNER, TAG_ROLE,
};
use super::pace::Pacer;
use super::preflight::Images;
use super::retry::CAPACITY_ERRORS;
use crate::case::descriptor::Descriptor;
use crate::case::store::{CaseState, InFlight, Store};
use crate::config::{Config, LaunchConfig, SpotMode, SshConfig};
use crate::error::{Error, Result};
use crate::output;
use crate::tool;
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
    /// The configuration, with the subnets of the case's own network when `--network auto`
    /// made one.
    pub config: std::borrow::Cow<'a, LaunchConfig>,
    state: CaseState,
    access: Access,
    pacer: Pacer,
    /// The image of each instance type (its root device is where the root volume goes).
    images: Images,
    /// How many instances the account's vCPU quota allows of those asked for.
    pub allowed: u32,
}

/// What a launch is about to ask for, for the quota check.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub count: u32,
    /// `--min-ready`: a partial fleet is accepted down to this many.
    pub min_ready: Option<u32>,
    /// Instances the same run launches next (other roles): the quota and cost checks count
    /// them too, so that nothing is made when the whole would not fit.
    pub later: u32,
}

impl Launcher<'_> {
    /// The round moves on before the first call: a crash at any later moment leaves a case
    /// whose next launch has tokens of its own (only the recorded call in flight is ever
    /// sent again, exactly as it was). Returns this launch's round.
    fn next_round(&mut self, store: &Store) -> Result<u64> {
        let round = self.state.round;
        self.state.round = round.saturating_add(1);
        self.state.spot |= self.config.spot != SpotMode::Off;
        self.state.save(store)?;
        Ok(round)
    }

    /// One call's request, its ClientToken ([`client_token`]: the case's nonce, the round,
    /// the call's `label`, a digest of the request) made once and tagged on the instances.
    fn spec(
        &self,
        (instance_type, subnet): &(String, Option<String>),
        count: u32,
        spot: bool,
        tags: Vec<(String, String)>,
        round: u64,
        label: &str,
    ) -> Result<LaunchSpec> {
        let launch = &self.config;
        let image = self.images.for_type(instance_type)?;
        let mut spec = LaunchSpec {
            ami: image.id.clone(),
            instance_type: instance_type.clone(),
            count,
            // Whatever the pool has: the rest goes to the next pool.
            min_count: Some(1),
            key_name: self.access.key_name.clone(),
            subnet: subnet.clone(),
            security_groups: self.access.security_groups.clone(),
            placement_group: self.access.placement_group.clone(),
            client_token: String::new(),
            tags,
            spot,
            user_data: launch.user_data.as_ref().map(|u| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(&u.bytes)
            }),
            terminate_on_shutdown: launch.ttl.is_some() || spot,
            metadata: Some(launch.instance.imds),
            root_volume: image.root.clone().map(|root| RootVolume {
                device: root.device,
                size_gb: launch.instance.volume_size.or(root.size_gb),
                volume_type: launch.instance.volume_type.clone(),
                encrypted: launch.instance.volume_encrypted,
            }),
            iam_profile: (launch.instance.iam_profile.clone())
                .or_else(|| self.access.iam_profile.clone()),
        };
        spec.client_token = client_token(&self.state.nonce, round, label, &spec);
        spec.tags
            .push((TAG_LAUNCH.to_owned(), spec.client_token.clone()));
        Ok(spec)
    }
}

/// Instances per RunInstances call: descriptors are written after each call, so a crash
/// loses track of at most this many (and `--case-sweep` finds those by tag).
const MAX_PER_CALL: u32 = 100;

/// What a launch got.
#[derive(Debug, Default)]
pub struct Launched {
    /// Descriptors written, in index order.
    pub descs: Vec<Descriptor>,
    /// How many of those asked for no pool could supply.
    pub short: u32,
    /// The pools that reported no capacity (`on-demand t3.micro in subnet-1`).
    pub shortages: Vec<String>,
    /// RunInstances calls still throttled after the SDK's retries (paused and sent again).
    pub throttled: u32,
    /// Ctrl-C stopped the launch between calls.
    pub interrupted: bool,
    /// The images launched from, whose names the descriptors record.
    images: Images,
}

impl From<&Images> for Launched {
    /// Nothing launched yet, from these images.
    fn from(images: &Images) -> Launched {
        Launched {
            images: images.clone(),
            ..Default::default()
        }
    }
}

impl Launched {
    /// Everything asked for, or the error: interrupted (130) or short of capacity (3). The
    /// descriptors of what was launched are written either way.
    pub fn complete(self) -> Result<Vec<Descriptor>> {
        if let Some(e) = self.shortfall() {
            return Err(e);
        }
        Ok(self.descs)
    }

    /// What went missing, as the error to report (None when nothing did).
    pub fn shortfall(&self) -> Option<Error> {
        if self.interrupted {
            return Some(Error::interrupted().context(format!(
                "launching stopped after {} instances; descriptors kept (ec2-killall \
                 terminates them)",
                self.descs.len()
            )));
        }
        (self.short > 0).then(|| {
            Error::infra(format!(
                "no capacity for {} of {} instances (tried: {}); {} launched, descriptors kept",
                self.short,
                self.short as usize + self.descs.len(),
                self.shortages.join("; "),
                self.descs.len()
            ))
        })
    }
}

/// How one RunInstances call ended, short of an error that ends the launch.
enum Call {
    Launched(Vec<InstanceInfo>),
    /// No capacity in this pool: the rest goes to the next one.
    NoCapacity(Error),
    /// RequestLimitExceeded past the SDK's retries: the call is sent again.
    Throttled(Error),
    /// An instance profile made moments ago, not visible to EC2 yet: sent again.
    ProfileNotYet(Error),
}

/// Fault injection for the crash-recovery test (`EC2_TOOLS_FAULT=after-run-instances`): die as
/// a crash would, after RunInstances answered and before any descriptor is written.
fn crash_if_asked() {
    if std::env::var("EC2_TOOLS_FAULT").as_deref() == Ok("after-run-instances") {
        std::process::abort();
    }
}

/// The instance profile is not visible to EC2 yet: said once, then a pause before the
/// call is sent again; past [`IAM_PROPAGATION`] of it, the refusal is the answer.
///
/// [`IAM_PROPAGATION`]: super::errors::IAM_PROPAGATION
async fn pause_for_profile(e: Error, since: &mut Option<std::time::Instant>) -> Result<()> {
    let first = since.is_none();
    let waited = since.get_or_insert_with(std::time::Instant::now).elapsed();
    if waited > super::errors::IAM_PROPAGATION {
        // A wait that timed out (3), though AWS's words are a refusal's.
        let mut e = e.context(format!(
            "the instance profile was still not visible to EC2 after {} s",
            waited.as_secs()
        ));
        e.code = crate::error::Code::Infra;
        return Err(e);
    }
    if first {
        output::note(
            "RunInstances: the instance profile is not visible to EC2 yet (IAM propagates in \
             seconds); retrying",
        );
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    Ok(())
}

impl Launched {
    /// `launched 5 instances (#1-#5) in 1 RunInstances call`.
    fn say_launched(&self, calls: u32) {
        let (Some(lo), Some(hi)) = (
            self.descs.iter().map(|d| d.index).min(),
            self.descs.iter().map(|d| d.index).max(),
        ) else {
            return;
        };
        let indexes = if lo == hi {
            format!("#{lo}")
        } else {
            format!("#{lo}-#{hi}")
        };
        output::note(format!(
            "launched {} ({indexes}) in {}",
            output::count(self.descs.len(), "instance"),
            output::count(calls as usize, "RunInstances call")
        ));
    }
}

impl Fleet {
    /// Connect to EC2 for the case in `cfg` (the store is its directory).
    pub async fn connect(cfg: Config, mut ssh: SshConfig) -> Result<Fleet> {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let store = Store::new(&cfg.dir);
        if ssh.transport.is_none() {
            // No setting: the case keeps the transport it was made for (`--add`, ec2-start).
            ssh.transport = store.load_all().ok().and_then(|all| {
                all.iter()
                    .find_map(|d| d.ssh.transport)
                    .filter(|t| *t == crate::config::Transport::Ssm)
            });
        }
        Ok(Fleet {
            ec2,
            store,
            cfg,
            ssh,
        })
    }

    /// Get ready to launch `ask.count` instances: the case's nonce on disk (before its token
    /// is used), its key pair and security group in AWS. Bad configuration, and a launch past
    /// the account's vCPU quota ([`Fleet::quota_allows`]), are found before anything is made;
    /// [`Launcher::allowed`] is how many the quota lets `--min-ready` launch.
    pub async fn launcher<'a>(&self, config: &'a LaunchConfig, ask: Ask) -> Result<Launcher<'a>> {
        let (images, types) = super::preflight::Preflight { ec2: &self.ec2 }
            .check_launch(config)
            .await?;
        let allowed = self
            .quota_allows(&types, &config.instance_types[0], config.spot, ask)
            .await?;
        self.price_launch(config, allowed + ask.later).await?;
        if let Some(own) = &config.record_user_data {
            let path = self
                .store
                .state_dir()?
                .join(crate::case::store::USER_DATA_FILE);
            std::fs::write(&path, own)
                .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        }
        let mut state = CaseState::load(&self.store)?;
        state.save(&self.store)?;
        let config = if config.network_auto && config.subnets.is_empty() {
            let net = match state.network.clone() {
                Some(n) => n,
                None => {
                    let mut tags = vec![
                        (TAG_CASE.to_owned(), self.cfg.case.clone()),
                        (TAG_OWNER.to_owned(), owner()),
                    ];
                    tags.extend(config.instance.tags.iter().cloned());
                    let n = self.ec2.create_network(&config.network_cidr, &tags).await?;
                    output::note(format!(
                        "created network {} ({}): {} with an internet gateway",
                        n.vpc,
                        config.network_cidr,
                        output::count(n.subnets.len(), "public subnet")
                    ));
                    state.network = Some(n.clone());
                    state.save(&self.store)?;
                    n
                }
            };
            std::borrow::Cow::Owned(LaunchConfig {
                subnets: net.subnets,
                ..config.clone()
            })
        } else {
            std::borrow::Cow::Borrowed(config)
        };
        let (launch_burst, launch_rate) = (config.launch_burst, config.launch_rate);
        let access = ensure_access(
            &self.ec2,
            &self.cfg.case,
            &config,
            &self.ssh,
            &self.store,
            &mut state,
        )
        .await?;
        Ok(Launcher {
            config,
            state,
            access,
            pacer: Pacer::new(launch_burst, launch_rate),
            images,
            allowed,
        })
    }

    /// Launch `count` instances with indexes `first..`, writing each descriptor the moment AWS
    /// returns its id, then name them.
    ///
    /// Calls are paced to the account's RunInstances bucket ([`Pacer`]), so a launch of
    /// thousands waits for tokens instead of failing at the first empty bucket. Each call
    /// carries a ClientToken of its own ([`client_token`]: the case's nonce, a launch round
    /// moved on before the first call, the call, a digest of the request), recorded with the
    /// whole request in the case state before it is sent and cleared once its descriptors are
    /// written: a call the SDK retries returns the same instances, and a crashed run's call
    /// is sent again, unchanged, by the next run ([`Fleet::recover`]). The pools
    /// (`--type` × `--subnet`, in order) are tried in turn: a capacity error moves the rest of
    /// the launch to the next pool; what no pool had is reported in [`Launched::short`], not an
    /// error (`--min-ready` decides). Spot per the configuration (`fallback`: on-demand for
    /// what spot could not supply). Ctrl-C stops launching between calls.
    pub async fn launch(
        &self,
        l: &mut Launcher<'_>,
        first: u32,
        count: u32,
        role: Option<&str>,
    ) -> Result<Launched> {
        let launch = l.config.clone();
        let mut out = Launched::from(&l.images);
        let mut next = first;
        let mut left = count;
        let markets = naming::markets(launch.spot);
        let pools = pools(&launch);
        let round = l.next_round(&self.store)?;
        let mut calls = 0u32;
        let mut profile_since = None;
        'markets: for &spot in markets {
            let market = Market::of(spot);
            let mut pool = 0;
            while left > 0 && pool < pools.len() {
                if tool::interrupted() {
                    out.interrupted = true;
                    break 'markets;
                }
                let (itype, subnet) = &pools[pool];
                let n = l.pacer.take(left.min(MAX_PER_CALL)).await;
                if tool::interrupted() {
                    out.interrupted = true;
                    break 'markets;
                }
                calls += 1;
                let tags = self.launch_tags(&launch, role, next, market);
                let label = format!("{}{pool}-{calls}", market.letter());
                let spec = l.spec(&pools[pool], n, spot, tags, round, &label)?;
                let instances = match self.one_call(l, &spec, next).await? {
                    Call::Launched(v) => v,
                    Call::NoCapacity(e) => {
                        let pool_name = pool_label(itype, subnet.as_deref());
                        output::note(format!("{} {pool_name}: {e}", market.as_str()));
                        out.shortages
                            .push(format!("{} {pool_name}", market.as_str()));
                        l.pacer.give_back(n);
                        pool += 1;
                        continue;
                    }
                    Call::Throttled(e) => {
                        out.throttled += 1;
                        if out.throttled > 20 {
                            return Err(e);
                        }
                        continue;
                    }
                    Call::ProfileNotYet(e) => {
                        l.pacer.give_back(n);
                        self.wait_for_profile(l, &spec, e, &mut profile_since)
                            .await?;
                        continue;
                    }
                };
                crash_if_asked();
                let got = u32::try_from(instances.len()).unwrap_or(u32::MAX);
                l.pacer.give_back(n.saturating_sub(got));
                let taken = self.write_launched(&instances, next, role, market, &mut out)?;
                self.settled(l)?;
                next = next.max(taken);
                left = left.saturating_sub(got);
            }
            if spot && left > 0 && launch.spot == SpotMode::Fallback {
                output::note(format!("spot could not supply {left}: launching on-demand"));
            }
        }
        out.short = left;
        out.say_launched(calls);
        if launch.name_tags {
            self.name_instances(&out.descs).await;
        }
        Ok(out)
    }

    /// The tags every instance of one call carries: the case, its owner, the first index,
    /// the market, the role and the expiry (`--ttl`).
    fn launch_tags(
        &self,
        launch: &LaunchConfig,
        role: Option<&str>,
        first: u32,
        market: Market,
    ) -> Vec<(String, String)> {
        let case = &self.cfg.case;
        let mut tags = vec![
            ("Name".to_owned(), case.clone()),
            (TAG_CASE.to_owned(), case.clone()),
            (TAG_OWNER.to_owned(), owner()),
            (TAG_INDEX_BASE.to_owned(), first.to_string()),
            (TAG_MARKET.to_owned(), market.as_str().to_owned()),
        ];
        if let Some(r) = role {
            tags.push((TAG_ROLE.to_owned(), r.to_owned()));
        }
        tags.extend(launch.instance.tags.iter().cloned());
        if let Some(ttl) = launch.ttl {
            let expires = std::time::SystemTime::now() + ttl;
            tags.push((
                TAG_EXPIRES.to_owned(),
                humantime::format_rfc3339_seconds(expires).to_string(),
            ));
        }
        tags
    }

    /// One RunInstances, recorded in the case state before it is sent (a crash from then on
    /// is recovered by sending this very request again, see `recover`) and forgotten once
    /// answered. A capacity error or a throttle is an answer; anything else may have
    /// launched (an answer lost on the way), so the call stays recorded.
    async fn one_call(&self, l: &mut Launcher<'_>, spec: &LaunchSpec, first: u32) -> Result<Call> {
        l.state.in_flight = Some(InFlight {
            first,
            sent_at: unix_now(),
            request: serde_json::to_value(spec).expect("a launch spec serializes"),
        });
        l.state.save(&self.store)?;
        let call = match self.ec2.run_instances(spec).await {
            Ok(v) => return Ok(Call::Launched(v)),
            Err(e) if e.is_aws(CAPACITY_ERRORS) => Call::NoCapacity(e),
            Err(e) if e.is_aws(&["RequestLimitExceeded"]) => {
                // The account's bucket is emptier than ours thought (another tool, another
                // user): wait for it, and send the call again.
                output::note(format!(
                    "RunInstances throttled after {} attempts; pausing",
                    super::retry::MAX_ATTEMPTS
                ));
                l.pacer.drain();
                Call::Throttled(e)
            }
            Err(e) if spec.iam_profile.is_some() && super::errors::profile_not_visible(&e) => {
                Call::ProfileNotYet(e)
            }
            Err(e) => return Err(e),
        };
        self.settled(l)?;
        Ok(call)
    }

    /// EC2 refused the call's instance profile: an error at once unless IAM has it, else
    /// [`pause_for_profile`].
    async fn wait_for_profile(
        &self,
        l: &Launcher<'_>,
        spec: &LaunchSpec,
        e: Error,
        since: &mut Option<std::time::Instant>,
    ) -> Result<()> {
        if since.is_none() && !self.profile_exists(l, spec).await {
            return Err(e);
        }
        pause_for_profile(e, since).await
    }

    /// Whether the instance profile EC2 refused exists in IAM (then EC2 merely does not see
    /// it yet): the case's own, just made or found, does; one the user named is asked about
    /// once — missing, or IAM will not say, and the refusal is the user's to fix, at once.
    async fn profile_exists(&self, l: &Launcher<'_>, spec: &LaunchSpec) -> bool {
        match &spec.iam_profile {
            None => false,
            Some(p) if l.access.iam_profile.as_ref() == Some(p) => true,
            Some(p) => super::iam::Iam::new(&self.ec2)
                .profile_exists(p)
                .await
                .unwrap_or(false),
        }
    }

    /// The call in flight got its answer, or surely launched nothing: forget it.
    fn settled(&self, l: &mut Launcher<'_>) -> Result<()> {
        l.state.in_flight = None;
        l.state.save(&self.store)
    }

    /// Write a descriptor for each instance of one RunInstances answer, at `first` + its
    /// AmiLaunchIndex (the caller chose `first`: ec2-create after every index in use,
    /// ec2-revert the index it replaces); an instance already described keeps its
    /// descriptor and index. Returns the index after the highest used.
    fn write_launched(
        &self,
        instances: &[InstanceInfo],
        first: u32,
        role: Option<&str>,
        market: Market,
        out: &mut Launched,
    ) -> Result<u32> {
        let fresh: Vec<&InstanceInfo> = instances
            .iter()
            .filter(|i| {
                let known = self.store.path(&i.id).exists();
                if known {
                    output::note(format!(
                        "{}: AWS answered with an instance already described here; its \
                         descriptor and index are kept",
                        i.id
                    ));
                }
                !known
            })
            .collect();
        let launch_indexes: Vec<Option<i32>> = fresh.iter().map(|i| i.launch_index).collect();
        let indexes = launch_indexes_to_indexes(first, &launch_indexes, &BTreeSet::new());
        let mut after = first;
        // Fault injection for the crash-recovery test: die after this many descriptors.
        let die_after: Option<usize> = std::env::var("EC2_TOOLS_FAULT")
            .ok()
            .and_then(|f| f.strip_prefix("after-descriptors:")?.parse().ok());
        for (info, index) in fresh.into_iter().zip(indexes) {
            let mut d = self.descriptor_for(info, index, role, Some(market.as_str()));
            if let Some(name) = info.ami.as_deref().and_then(|a| out.images.name_of(a)) {
                d.extra.insert("ami_name".into(), name.into());
            }
            self.store.write(&d)?;
            out.descs.push(d);
            after = after.max(index.saturating_add(1));
            if die_after == Some(out.descs.len()) {
                std::process::abort();
            }
        }
        Ok(after)
    }
}
