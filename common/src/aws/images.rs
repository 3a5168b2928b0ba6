//! Baked images (ec2-bake): an AMI made from a set-up instance, so minutes of setup run once,
//! not per instance per run (the Packer stage of the ECS/Packer seed). Images and their
//! snapshots are tagged with the case and owner; they outlive cases, so nothing deletes them
//! unless asked. What does not belong here: choosing the instance, recording the AMI in the
//! settings file (cmd/bake.rs).

use super::ec2::{tag, Ec2};
use super::errors::{aws_error, error_code};
use crate::error::Result;
use aws_sdk_ec2::types::{Filter, ResourceType, TagSpecification};

/// An image as `ec2-bake --list` shows it.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub case: String,
    pub created: String,
    /// The EBS snapshots behind it (deleted with it).
    pub snapshots: Vec<String>,
}

impl Ec2 {
    /// CreateImage from `instance`, image and snapshots tagged; returns the AMI id.
    pub async fn create_image(
        &self,
        instance: &str,
        name: &str,
        no_reboot: bool,
        tags: &[(String, String)],
    ) -> Result<String> {
        let spec = |kind: ResourceType| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                .build()
        };
        let out = self
            .client
            .create_image()
            .instance_id(instance)
            .name(name)
            .description(format!("ec2-tools: baked from {instance}"))
            .no_reboot(no_reboot)
            .tag_specifications(spec(ResourceType::Image))
            .tag_specifications(spec(ResourceType::Snapshot))
            .send()
            .await
            .map_err(|e| aws_error("CreateImage", e).context(name))?;
        Ok(out.image_id().unwrap_or_default().to_owned())
    }

    /// Images owned by this account and tagged with `owner` (and `case`, when given).
    pub async fn owned_images(&self, owner: &str, case: Option<&str>) -> Result<Vec<ImageInfo>> {
        let mut req = self.client.describe_images().owners("self").filters(
            Filter::builder()
                .name(format!("tag:{}", super::ec2::TAG_OWNER))
                .values(owner)
                .build(),
        );
        if let Some(c) = case {
            req = req.filters(
                Filter::builder()
                    .name(format!("tag:{}", super::ec2::TAG_CASE))
                    .values(c)
                    .build(),
            );
        }
        let out = req
            .send()
            .await
            .map_err(|e| aws_error("DescribeImages", e))?;
        let mut v: Vec<ImageInfo> = out.images().iter().map(image_info).collect();
        v.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(v)
    }

    /// One image by id (None when AWS does not know it).
    pub async fn image(&self, ami: &str) -> Result<Option<ImageInfo>> {
        match self.client.describe_images().image_ids(ami).send().await {
            Ok(out) => Ok(out.images().first().map(image_info)),
            Err(e) if error_code(&e).is_some_and(|c| c.starts_with("InvalidAMIID")) => Ok(None),
            Err(e) => Err(aws_error("DescribeImages", e).context(ami)),
        }
    }

    /// Deregister an image and delete its snapshots (gone already is fine).
    pub async fn delete_image(&self, image: &ImageInfo) -> Result<()> {
        match self
            .client
            .deregister_image()
            .image_id(&image.id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if error_code(&e).is_some_and(|c| c.starts_with("InvalidAMIID")) => {}
            Err(e) => return Err(aws_error("DeregisterImage", e).context(&image.id)),
        }
        for s in &image.snapshots {
            match self.client.delete_snapshot().snapshot_id(s).send().await {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("InvalidSnapshot.NotFound") => {}
                Err(e) => return Err(aws_error("DeleteSnapshot", e).context(s)),
            }
        }
        Ok(())
    }
}

fn image_info(i: &aws_sdk_ec2::types::Image) -> ImageInfo {
    let tag_value = |k: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .unwrap_or_default()
            .to_owned()
    };
    ImageInfo {
        id: i.image_id().unwrap_or_default().to_owned(),
        name: i.name().unwrap_or_default().to_owned(),
        state: i.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        case: tag_value(super::ec2::TAG_CASE),
        created: i.creation_date().unwrap_or_default().to_owned(),
        snapshots: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
            .collect(),
    }
}
