//! The case's IAM role and instance profile for Systems Manager (`--transport ssm` without
//! `--iam-profile`): a role EC2 may assume, with AWS's `AmazonSSMManagedInstanceCore` policy
//! attached, in an instance profile of the same name, both under the path `/ec2-tools/` and
//! tagged with the case and owner (so `ec2-killall --case-sweep` finds them without the
//! case's state). Made idempotently, removed in the order IAM requires.
//!
//! What does not belong here: when they are made or removed (access.rs, cmd/killall/).

use super::ec2::{Ec2, TAG_CASE, TAG_OWNER};
use super::errors::{aws_error, error_code};
use crate::error::Result;
use aws_sdk_iam::types::Tag;

/// The path the case's roles and profiles live under.
pub const PATH: &str = "/ec2-tools/";
/// The AWS-managed policy an SSM managed node's role needs.
pub const SSM_POLICY: &str = "AmazonSSMManagedInstanceCore";

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The IAM client.
pub struct Iam {
    client: aws_sdk_iam::Client,
    partition: &'static str,
}

fn tags(t: &[(String, String)]) -> Vec<Tag> {
    t.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

impl Iam {
    /// The client, configured as `ec2` is.
    pub fn new(ec2: &Ec2) -> Iam {
        let conf = aws_sdk_iam::config::Builder::from(&ec2.sdk)
            .retry_classifier(super::retry::FinalErrors)
            .interceptor(crate::log::AwsCallLog)
            .build();
        let partition = if ec2.region.starts_with("cn-") {
            "aws-cn"
        } else if ec2.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Iam {
            client: aws_sdk_iam::Client::from_conf(conf),
            partition,
        }
    }

    fn policy_arn(&self) -> String {
        format!("arn:{}:iam::aws:policy/{SSM_POLICY}", self.partition)
    }

    /// Role and instance profile `name` for SSM, made where missing; `recorded` is called
    /// once the first of them exists (the case state holds it before anything else).
    /// Returns whether anything was made.
    pub async fn ensure_ssm_profile(
        &self,
        name: &str,
        t: &[(String, String)],
        recorded: impl FnOnce() -> Result<()>,
    ) -> Result<bool> {
        let mut made = false;
        let mut recorded = Some(recorded);
        let mut record = || recorded.take().map_or(Ok(()), |f| f());
        match self.client.get_role().role_name(name).send().await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("NoSuchEntity") => {
                record()?;
                self.client
                    .create_role()
                    .path(PATH)
                    .role_name(name)
                    .description("ec2-tools: the case's instances as SSM managed nodes")
                    .assume_role_policy_document(TRUST)
                    .set_tags(Some(tags(t)))
                    .send()
                    .await
                    .map_err(|e| aws_error("CreateRole", e).context(name))?;
                made = true;
            }
            Err(e) => return Err(aws_error("GetRole", e).context(name)),
        }
        self.client
            .attach_role_policy()
            .role_name(name)
            .policy_arn(self.policy_arn())
            .send()
            .await
            .map_err(|e| aws_error("AttachRolePolicy", e).context(name))?;
        let roles = match self.profile_roles(name).await? {
            Some(roles) => roles,
            None => {
                record()?;
                self.client
                    .create_instance_profile()
                    .path(PATH)
                    .instance_profile_name(name)
                    .set_tags(Some(tags(t)))
                    .send()
                    .await
                    .map_err(|e| aws_error("CreateInstanceProfile", e).context(name))?;
                made = true;
                Vec::<String>::new()
            }
        };
        if !roles.iter().any(|r| r == name) {
            self.client
                .add_role_to_instance_profile()
                .instance_profile_name(name)
                .role_name(name)
                .send()
                .await
                .map_err(|e| aws_error("AddRoleToInstanceProfile", e).context(name))?;
        }
        Ok(made)
    }

    /// Whether IAM has instance profile `name` (a name or its ARN): `None` when IAM will not
    /// say (GetInstanceProfile denied, unreachable).
    pub async fn profile_exists(&self, name: &str) -> Option<bool> {
        let name = name.rsplit('/').next().unwrap_or(name);
        self.profile_roles(name).await.ok().map(|r| r.is_some())
    }

    /// The roles in instance profile `name`, `None` when IAM has no such profile.
    async fn profile_roles(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self
            .client
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
        {
            Ok(p) => Ok(Some(
                p.instance_profile()
                    .map(|p| p.roles().iter().map(|r| r.role_name().to_owned()).collect())
                    .unwrap_or_default(),
            )),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(None),
            Err(e) => Err(aws_error("GetInstanceProfile", e).context(name)),
        }
    }

    /// Instance profile and role `name` removed (what is already gone is fine): roles out of
    /// the profile, the profile, the role's policies, the role.
    pub async fn delete_ssm_profile(&self, name: &str) -> Result<()> {
        let gone = |code: Option<&str>| code == Some("NoSuchEntity");
        if let Some(roles) = self.profile_roles(name).await? {
            for r in roles {
                self.client
                    .remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(&r)
                    .send()
                    .await
                    .map_err(|e| aws_error("RemoveRoleFromInstanceProfile", e).context(name))?;
            }
            match self
                .client
                .delete_instance_profile()
                .instance_profile_name(name)
                .send()
                .await
            {
                Err(e) if !gone(error_code(&e)) => {
                    return Err(aws_error("DeleteInstanceProfile", e).context(name))
                }
                _ => {}
            }
        }
        let attached = match self
            .client
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
        {
            Ok(a) => a.attached_policies().to_vec(),
            Err(e) if gone(error_code(&e)) => return Ok(()),
            Err(e) => return Err(aws_error("ListAttachedRolePolicies", e).context(name)),
        };
        for p in attached {
            if let Some(arn) = p.policy_arn() {
                self.client
                    .detach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(|e| aws_error("DetachRolePolicy", e).context(name))?;
            }
        }
        match self.client.delete_role().role_name(name).send().await {
            Err(e) if !gone(error_code(&e)) => Err(aws_error("DeleteRole", e).context(name)),
            _ => Ok(()),
        }
    }

    /// The roles under [`PATH`] tagged with `case` and `owner` (each has the profile of its
    /// name, if that still exists).
    pub async fn tagged_roles(&self, case: &str, owner: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .list_roles()
            .path_prefix(PATH)
            .send()
            .await
            .map_err(|e| aws_error("ListRoles", e))?;
        let mut found = Vec::new();
        for r in out.roles() {
            let t = self
                .client
                .list_role_tags()
                .role_name(r.role_name())
                .send()
                .await
                .map_err(|e| aws_error("ListRoleTags", e))?;
            let has = |k: &str, v: &str| t.tags().iter().any(|x| x.key() == k && x.value() == v);
            if has(TAG_CASE, case) && has(TAG_OWNER, owner) {
                found.push(r.role_name().to_owned());
            }
        }
        Ok(found)
    }
}
