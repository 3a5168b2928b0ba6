//! Placement groups (`--placement cluster|spread|partition`): network-heavy tests want their
//! instances close together (cluster: low latency, high bandwidth, as tsunami does for network
//! benchmarks), or apart (spread, partition: no shared hardware). The case's group is made
//! once, named and tagged like its security group, checked for the asked strategy before
//! anything launches, and deleted by ec2-killall with the last instance (`--case-sweep` finds
//! it by tag). What does not belong here: the case's key pair and security group (access.rs).

use super::ec2::{tag, Ec2};
use super::errors::{aws_error, retry_while_in_use};
use crate::config::Placement;
use crate::error::{Error, Result};
use aws_sdk_ec2::types::{
    Filter, PlacementGroup, PlacementStrategy, ResourceType, TagSpecification,
};

impl Ec2 {
    /// The strategy of the placement group `name`, if it exists.
    pub async fn placement_strategy(&self, name: &str) -> Result<Option<String>> {
        let by_name = Filter::builder().name("group-name").values(name).build();
        Ok(self
            .placement_groups(vec![by_name])
            .await?
            .iter()
            .find(|g| g.group_name() == Some(name))
            .map(|g| {
                g.strategy()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default()
            }))
    }

    /// Make the case's placement group unless it exists with this strategy; another strategy
    /// is a configuration error (instances cannot move between strategies).
    pub async fn ensure_placement_group(
        &self,
        name: &str,
        strategy: Placement,
        tags: &[(String, String)],
    ) -> Result<bool> {
        match self.placement_strategy(name).await? {
            Some(s) if s == strategy.as_str() => return Ok(false),
            Some(s) => {
                return Err(Error::input(format!(
                    "--placement {}: the case's placement group {name} is {s} (ec2-killall the \
                     case to change its placement)",
                    strategy.as_str()
                )))
            }
            None => {}
        }
        self.client
            .create_placement_group()
            .group_name(name)
            .strategy(PlacementStrategy::from(strategy.as_str()))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::PlacementGroup)
                    .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CreatePlacementGroup", e).context(name))?;
        Ok(true)
    }

    /// Placement groups tagged with the case and owner.
    pub async fn tagged_placement_groups(&self, case: &str, owner: &str) -> Result<Vec<String>> {
        let groups = self
            .placement_groups(super::ec2::case_filters(case, owner))
            .await?;
        Ok(groups
            .iter()
            .filter_map(|g| g.group_name().map(str::to_owned))
            .collect())
    }

    /// One DescribePlacementGroups with these filters.
    async fn placement_groups(&self, filters: Vec<Filter>) -> Result<Vec<PlacementGroup>> {
        let out = self
            .client
            .describe_placement_groups()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| aws_error("DescribePlacementGroups", e))?;
        Ok(out.placement_groups().to_vec())
    }

    /// Delete a placement group, retrying while AWS still counts terminating instances in it.
    /// Gone already is fine.
    pub async fn delete_placement_group(
        &self,
        name: &str,
        patience: std::time::Duration,
    ) -> Result<()> {
        retry_while_in_use(
            patience,
            "DeletePlacementGroup",
            name,
            "InvalidPlacementGroup.InUse",
            |c| c == "InvalidPlacementGroup.Unknown",
            || async {
                self.client
                    .delete_placement_group()
                    .group_name(name)
                    .send()
                    .await
                    .map(|_| ())
            },
        )
        .await
    }
}
