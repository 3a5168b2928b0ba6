//! The AWS side: every EC2 API call the tools make, in one place.
//!
//! Production code path only: aws-config's standard chain (profiles, SSO, env, IMDS, and the
//! `AWS_ENDPOINT_URL` override the local cloud uses), the SDK's retry policy, paginators.
//! Retries are the SDK's, configured in retry.rs.
//! Instances are looked up with one DescribeInstances per round for the whole set (filtering
//! by instance id, so an id that is not visible yet — EC2 is eventually consistent right after
//! RunInstances — is simply absent instead of failing the call).
//!
//! Here: the client, launching, describing, tagging, terminating. What does not belong here:
//! where the calls go and the checks before the first (endpoint.rs), an instance's later life
//! — start, stop, reboot, spot requests, expiry (lifecycle.rs), the data the calls take and
//! give (types.rs).

mod endpoint;
mod lifecycle;
mod types;
pub(crate) use endpoint::sdk_config;
use endpoint::{check_endpoint_resolves, check_region, endpoint_url};
pub use types::{Image, ImageRoot, InstanceInfo, LaunchSpec, RootVolume, TypeInfo};

use super::errors::{aws_error, error_code, ids_in_message, not_yet_visible, SETTLE};
use super::retry;
use crate::case::descriptor::InstanceState;
use crate::error::{Error, Result};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceType, MarketType,
    ResourceType, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use std::collections::BTreeMap;

pub const TAG_CASE: &str = "ec2-tools:case";
pub const TAG_OWNER: &str = "ec2-tools:owner";
pub const TAG_INDEX: &str = "ec2-tools:index";
/// Index of the instance with AmiLaunchIndex 0 in its launch: the index survives even if the
/// tools die before tagging each instance.
pub const TAG_INDEX_BASE: &str = "ec2-tools:index-base";
pub const TAG_LAUNCH: &str = "ec2-tools:launch";
pub const TAG_ROLE: &str = "ec2-tools:role";
/// RFC 3339 time after which the instance may be swept (`ec2-killall --expired`).
pub const TAG_EXPIRES: &str = "ec2-tools:expires";
pub const TAG_MARKET: &str = "ec2-tools:market";

/// `user@host` of whoever runs the tools: the `ec2-tools:owner` tag.
pub fn owner() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid{}", unsafe { libc::getuid() }));
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates within it on success.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    };
    format!("{user}@{host}")
}

/// A connected EC2 client and the region it talks to.
#[derive(Clone, Debug)]
pub struct Ec2 {
    pub(crate) client: Client,
    pub region: String,
    /// The configuration it was built from: the other services' clients share it.
    pub(crate) sdk: aws_config::SdkConfig,
}

/// Build the client from the standard chain; fail early, in words, when there is no region or
/// no credentials (rather than at the first call, as an opaque dispatch error).
pub async fn connect(region: Option<&str>) -> Result<Ec2> {
    let sdk = sdk_config(region).await?;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let url = endpoint_url(&sdk, &region).await?;
    check_region(&region, &url)?;
    check_endpoint_resolves(&url)?;
    let conf = aws_sdk_ec2::config::Builder::from(&sdk)
        .retry_classifier(retry::FinalErrors)
        .interceptor(crate::log::AwsCallLog)
        .build();
    Ok(Ec2 {
        client: Client::from_conf(conf),
        region,
        sdk,
    })
}

/// `v2`: session tokens required, hop limit 2 (a container on the instance is one hop more).
fn metadata_options(m: crate::config::Imds) -> aws_sdk_ec2::types::InstanceMetadataOptionsRequest {
    use aws_sdk_ec2::types::{HttpTokensState, InstanceMetadataEndpointState};
    aws_sdk_ec2::types::InstanceMetadataOptionsRequest::builder()
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .http_tokens(match m {
            crate::config::Imds::V2 => HttpTokensState::Required,
            crate::config::Imds::V1 => HttpTokensState::Optional,
        })
        .http_put_response_hop_limit(2)
        .build()
}

fn root_mapping(r: &RootVolume) -> aws_sdk_ec2::types::BlockDeviceMapping {
    let ebs = aws_sdk_ec2::types::EbsBlockDevice::builder()
        .set_volume_size(r.size_gb.map(|g| g as i32))
        .volume_type(aws_sdk_ec2::types::VolumeType::from(r.volume_type.as_str()))
        .encrypted(r.encrypted)
        .delete_on_termination(true)
        .build();
    aws_sdk_ec2::types::BlockDeviceMapping::builder()
        .device_name(&r.device)
        .ebs(ebs)
        .build()
}

/// An instance profile by ARN (`arn:…`) or by name.
fn instance_profile(p: &str) -> aws_sdk_ec2::types::IamInstanceProfileSpecification {
    let b = aws_sdk_ec2::types::IamInstanceProfileSpecification::builder();
    if p.starts_with("arn:") {
        b.arn(p).build()
    } else {
        b.name(p).build()
    }
}

/// The filter for instances in a live state (pending, running, stopping, stopped).
fn live_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            InstanceState::LIVE.iter().map(|s| s.to_string()).collect(),
        ))
        .build()
}

pub(crate) fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

impl Ec2 {
    /// RunInstances with MinCount = MaxCount = count (all or nothing), tagged at launch.
    /// Returns the instances ordered by AmiLaunchIndex.
    pub async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<InstanceInfo>> {
        let tags: Vec<Tag> = spec.tags.iter().map(|(k, v)| tag(k, v)).collect();
        let mut specs = vec![TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(Some(tags.clone()))
            .build()];
        // Volumes and network interfaces carry the tags from their creation too: policies
        // that require cost tags (aws:RequestTag) check every resource type of the call.
        for t in [ResourceType::Volume, ResourceType::NetworkInterface] {
            specs.push(
                TagSpecification::builder()
                    .resource_type(t)
                    .set_tags(Some(tags.clone()))
                    .build(),
            );
        }
        if spec.spot {
            // A spot launch makes a spot request too: tagged alike, so ec2-killall finds it.
            specs.push(
                TagSpecification::builder()
                    .resource_type(ResourceType::SpotInstancesRequest)
                    .set_tags(Some(tags))
                    .build(),
            );
        }
        let out = self
            .client
            .run_instances()
            .image_id(&spec.ami)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(spec.min_count.unwrap_or(spec.count) as i32)
            .max_count(spec.count as i32)
            .set_user_data(spec.user_data.clone())
            .set_instance_initiated_shutdown_behavior(
                spec.terminate_on_shutdown
                    .then_some(ShutdownBehavior::Terminate),
            )
            .set_instance_market_options(spec.spot.then(|| {
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build()
            }))
            .set_key_name(spec.key_name.clone())
            .set_subnet_id(spec.subnet.clone())
            .set_security_group_ids(
                (!spec.security_groups.is_empty()).then(|| spec.security_groups.clone()),
            )
            .set_placement(spec.placement_group.as_ref().map(|g| {
                aws_sdk_ec2::types::Placement::builder()
                    .group_name(g)
                    .build()
            }))
            .set_metadata_options(spec.metadata.map(metadata_options))
            .set_block_device_mappings(spec.root_volume.as_ref().map(|r| vec![root_mapping(r)]))
            .set_iam_instance_profile(spec.iam_profile.as_deref().map(instance_profile))
            .client_token(&spec.client_token)
            .set_tag_specifications(Some(specs))
            .send()
            .await
            .map_err(|e| aws_error("RunInstances", e))?;
        let mut v: Vec<InstanceInfo> = out.instances().iter().map(InstanceInfo::from).collect();
        v.sort_by_key(|i| i.launch_index.unwrap_or(i32::MAX));
        Ok(v)
    }

    /// The AMI exists and this account may see it: a wrong one is a configuration error (2),
    /// found before anything is made rather than by RunInstances. Returns its root device.
    pub async fn check_image(&self, ami: &str) -> Result<Image> {
        let not_found = || {
            Error::input(format!(
                "AMI {ami}: not found in {} (--ami / EC2_TOOLS_AMI)",
                self.region
            ))
        };
        let out = match self.client.describe_images().image_ids(ami).send().await {
            Ok(out) => out,
            // AWS answers an unknown (or malformed) id with an error, not an empty list.
            Err(e) if error_code(&e).is_some_and(|c| c.starts_with("InvalidAMIID")) => {
                return Err(not_found())
            }
            Err(e) => return Err(aws_error("DescribeImages", e)),
        };
        let Some(image) = out.images().first() else {
            return Err(Error::input(format!(
                "AMI {ami}: not found in {} (--ami / EC2_TOOLS_AMI)",
                self.region
            )));
        };
        let root = image.root_device_name().map(|device| ImageRoot {
            device: device.to_owned(),
            size_gb: image
                .block_device_mappings()
                .iter()
                .find(|m| m.device_name() == Some(device))
                .and_then(|m| m.ebs())
                .and_then(|e| e.volume_size())
                .and_then(|g| u32::try_from(g).ok()),
        });
        Ok(Image {
            id: ami.to_owned(),
            name: image.name().map(str::to_owned),
            root,
            architecture: image.architecture().map(|a| a.as_str().to_owned()),
        })
    }

    /// What EC2 says of each instance type (DescribeInstanceTypes, 100 a call): a type that
    /// does not exist is a configuration error naming it (exit 2), before anything is made.
    pub async fn instance_types(&self, types: &[String]) -> Result<BTreeMap<String, TypeInfo>> {
        let mut found = BTreeMap::new();
        for chunk in types.chunks(100) {
            let out = self
                .client
                .describe_instance_types()
                .set_instance_types(Some(
                    chunk
                        .iter()
                        .map(|t| InstanceType::from(t.as_str()))
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| aws_error("DescribeInstanceTypes", e).context("--type"))?;
            found.extend(out.instance_types().iter().filter_map(|t| {
                let name = t.instance_type()?.as_str().to_owned();
                let archs = t
                    .processor_info()
                    .map(|p| {
                        p.supported_architectures()
                            .iter()
                            .map(|a| a.as_str().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let vcpus = t
                    .v_cpu_info()
                    .and_then(|v| v.default_v_cpus())
                    .and_then(|n| u32::try_from(n).ok());
                Some((name, TypeInfo { archs, vcpus }))
            }));
        }
        Ok(found)
    }

    /// The current spot price of a Linux `instance_type` here, USD per hour: the highest of
    /// its availability zones' (`None`: EC2 lists none).
    pub async fn spot_price(&self, instance_type: &str) -> Result<Option<f64>> {
        let out = self
            .client
            .describe_spot_price_history()
            .instance_types(InstanceType::from(instance_type))
            .product_descriptions("Linux/UNIX")
            .start_time(aws_smithy_types::DateTime::from(
                std::time::SystemTime::now(),
            ))
            .send()
            .await
            .map_err(|e| aws_error("DescribeSpotPriceHistory", e))?;
        Ok(out
            .spot_price_history()
            .iter()
            .filter_map(|p| p.spot_price()?.parse::<f64>().ok())
            .reduce(f64::max))
    }

    /// The account's instances that count against its running-instance quotas (pending and
    /// running, every case and none), in this region.
    pub async fn running_instances(&self) -> Result<Vec<InstanceInfo>> {
        let filter = Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .build();
        self.describe_filtered(vec![filter]).await
    }

    /// Set tags on one instance, waiting out the moments after launch in which EC2 does not
    /// know the id yet.
    pub async fn create_tags(&self, id: &str, tags: &[(String, String)]) -> Result<()> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        let mut pause = std::time::Duration::from_millis(500);
        loop {
            let r = self
                .client
                .create_tags()
                .resources(id)
                .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                .send()
                .await
                .map_err(|e| aws_error("CreateTags", e).context(id));
            match r {
                Err(e) if not_yet_visible(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(5));
                }
                r => return r.map(|_| ()),
            }
        }
    }

    /// Describe a set of instances in as few calls as possible (200 ids per filter; paginated).
    /// Ids AWS does not (yet) know are absent from the answer.
    pub async fn describe(&self, ids: &[String]) -> Result<Vec<InstanceInfo>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(200) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.to_vec()))
                .build();
            out.extend(self.describe_filtered(vec![filter]).await?);
        }
        Ok(out)
    }

    /// Instances carrying the case (and owner) tags, in the given states.
    pub async fn describe_case(
        &self,
        case: &str,
        owner: Option<&str>,
        states: &[InstanceState],
    ) -> Result<Vec<InstanceInfo>> {
        let mut filters = vec![
            Filter::builder()
                .name(format!("tag:{TAG_CASE}"))
                .values(case)
                .build(),
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                .build(),
        ];
        if let Some(o) = owner {
            filters.push(
                Filter::builder()
                    .name(format!("tag:{TAG_OWNER}"))
                    .values(o)
                    .build(),
            );
        }
        self.describe_filtered(filters).await
    }

    /// Instances launched by the call with this ClientToken (tagged with it), in any state
    /// but terminated.
    pub async fn describe_launch(&self, token: &str) -> Result<Vec<InstanceInfo>> {
        let filters = vec![
            Filter::builder()
                .name(format!("tag:{TAG_LAUNCH}"))
                .values(token)
                .build(),
            live_filter(),
        ];
        self.describe_filtered(filters).await
    }

    async fn describe_filtered(&self, filters: Vec<Filter>) -> Result<Vec<InstanceInfo>> {
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DescribeInstances", e))?;
            for r in page.reservations() {
                out.extend(r.instances().iter().map(InstanceInfo::from));
            }
        }
        Ok(out)
    }

    /// TerminateInstances in batches. Returns each accepted id with its new state, and the ids
    /// AWS does not know at all (an unknown id fails a whole AWS call: they are taken out and
    /// the rest sent again). Ids in `fresh` (launched moments ago) that AWS does not know yet
    /// are sent again until it does, for up to [`SETTLE`]: never taken for gone too early.
    pub async fn terminate(
        &self,
        ids: &[String],
        fresh: &std::collections::BTreeSet<String>,
    ) -> Result<Terminated> {
        let mut result = self.terminate_once(ids).await?;
        let deadline = tokio::time::Instant::now() + SETTLE;
        let mut pause = std::time::Duration::from_millis(500);
        loop {
            let (young, old): (Vec<String>, Vec<String>) =
                result.unknown.drain(..).partition(|id| fresh.contains(id));
            result.unknown = old;
            if young.is_empty() {
                return Ok(result);
            }
            if tokio::time::Instant::now() >= deadline {
                result.unseen = young;
                return Ok(result);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
            let again = self.terminate_once(&young).await?;
            result.accepted.extend(again.accepted);
            result.unknown.extend(again.unknown);
        }
    }

    async fn terminate_once(&self, ids: &[String]) -> Result<Terminated> {
        let mut result = Terminated::default();
        for chunk in ids.chunks(500) {
            let mut batch: Vec<String> = chunk.to_vec();
            while !batch.is_empty() {
                match self
                    .client
                    .terminate_instances()
                    .set_instance_ids(Some(batch.clone()))
                    .send()
                    .await
                {
                    Ok(out) => {
                        for t in out.terminating_instances() {
                            let id = t.instance_id().unwrap_or_default().to_owned();
                            let state = state_of(t.current_state());
                            result.accepted.push((id, state));
                        }
                        break;
                    }
                    Err(e)
                        if error_code(&e).is_some_and(|c| c.starts_with("InvalidInstanceID")) =>
                    {
                        let unknown = ids_in_message(e.message().unwrap_or_default());
                        let before = batch.len();
                        batch.retain(|id| !unknown.contains(id));
                        if batch.len() == before {
                            return Err(aws_error("TerminateInstances", e));
                        }
                        result
                            .unknown
                            .extend(unknown.into_iter().filter(|u| chunk.contains(u)));
                    }
                    Err(e) => return Err(aws_error("TerminateInstances", e)),
                }
            }
        }
        Ok(result)
    }
}

fn state_of(s: Option<&aws_sdk_ec2::types::InstanceState>) -> InstanceState {
    s.and_then(|s| s.name())
        .map(|n| InstanceState::parse(n.as_str()))
        .unwrap_or(InstanceState::Unknown)
}

/// What TerminateInstances said.
#[derive(Debug, Default)]
pub struct Terminated {
    /// (id, current state): `shutting-down` or `terminated`.
    pub accepted: Vec<(String, InstanceState)>,
    /// Ids AWS does not know (long gone).
    pub unknown: Vec<String>,
    /// Fresh ids AWS still did not know after [`SETTLE`]: neither gone nor confirmed.
    pub unseen: Vec<String>,
}
/// The filters for what carries the case's and owner's tags.
pub(super) fn case_filters(case: &str, owner: &str) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{TAG_CASE}"))
            .values(case)
            .build(),
        Filter::builder()
            .name(format!("tag:{TAG_OWNER}"))
            .values(owner)
            .build(),
    ]
}
