//! An instance's life after its launch: start, stop, reboot; the spot requests a case's
//! launches made; the owner's instances past their `--ttl`. What does not belong here:
//! launching, describing and terminating (mod.rs).

use super::{case_filters, live_filter, state_of, Ec2, InstanceInfo, TAG_EXPIRES, TAG_OWNER};
use crate::aws::errors::aws_error;
use crate::case::descriptor::InstanceState;
use crate::error::Result;
use aws_sdk_ec2::types::Filter;

impl Ec2 {
    /// StartInstances; returns (id, new state).
    pub async fn start(&self, ids: &[String]) -> Result<Vec<(String, InstanceState)>> {
        let out = self
            .client
            .start_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("StartInstances", e))?;
        Ok(out
            .starting_instances()
            .iter()
            .map(|c| {
                (
                    c.instance_id().unwrap_or_default().to_owned(),
                    state_of(c.current_state()),
                )
            })
            .collect())
    }

    /// StopInstances; returns (id, new state).
    pub async fn stop(&self, ids: &[String]) -> Result<Vec<(String, InstanceState)>> {
        let out = self
            .client
            .stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("StopInstances", e))?;
        Ok(out
            .stopping_instances()
            .iter()
            .map(|c| {
                (
                    c.instance_id().unwrap_or_default().to_owned(),
                    state_of(c.current_state()),
                )
            })
            .collect())
    }

    pub async fn reboot(&self, ids: &[String]) -> Result<()> {
        self.client
            .reboot_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("RebootInstances", e))?;
        Ok(())
    }

    /// The spot requests tagged with the case and owner that are still open or active.
    pub async fn tagged_spot_requests(&self, case: &str, owner: &str) -> Result<Vec<String>> {
        let mut filters = case_filters(case, owner);
        filters.push(
            Filter::builder()
                .name("state")
                .values("open")
                .values("active")
                .build(),
        );
        let out = self
            .client
            .describe_spot_instance_requests()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| aws_error("DescribeSpotInstanceRequests", e))?;
        Ok(out
            .spot_instance_requests()
            .iter()
            .filter_map(|r| r.spot_instance_request_id().map(str::to_owned))
            .collect())
    }

    /// Cancel spot requests (their instances are terminated separately).
    pub async fn cancel_spot_requests(&self, ids: &[String]) -> Result<()> {
        self.client
            .cancel_spot_instance_requests()
            .set_spot_instance_request_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("CancelSpotInstanceRequests", e))?;
        Ok(())
    }

    /// Live instances of this owner carrying an expiry tag, in the whole region.
    pub async fn describe_expiring(&self, owner: &str) -> Result<Vec<InstanceInfo>> {
        let filters = vec![
            Filter::builder()
                .name(format!("tag:{TAG_OWNER}"))
                .values(owner)
                .build(),
            Filter::builder()
                .name("tag-key")
                .values(TAG_EXPIRES)
                .build(),
            live_filter(),
        ];
        self.describe_filtered(filters).await
    }
}
