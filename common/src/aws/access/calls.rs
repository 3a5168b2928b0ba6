//! The EC2 calls behind a case's access: key pairs (import, find, delete), its VPC, security
//! groups (make, open, find by name or tag, delete while AWS still says in use). What does
//! not belong here: what the case needs and when (mod.rs).

use crate::aws::ec2::{case_filters, tag, Ec2};
use crate::aws::errors::{aws_error, error_code, retry_while_in_use};
use crate::error::{Error, Result};
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, ResourceType, TagSpecification, UserIdGroupPair,
};

impl Ec2 {
    /// Register the public half of a key pair (the private key never leaves this machine).
    pub async fn import_key_pair(
        &self,
        name: &str,
        public_key: &str,
        tags: &[(String, String)],
    ) -> Result<()> {
        self.client
            .import_key_pair()
            .key_name(name)
            .public_key_material(aws_smithy_types::Blob::new(public_key.as_bytes()))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::KeyPair)
                    .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("ImportKeyPair", e).context(name))?;
        Ok(())
    }

    pub async fn key_pair_exists(&self, name: &str) -> Result<bool> {
        match self
            .client
            .describe_key_pairs()
            .key_names(name)
            .send()
            .await
        {
            Ok(out) => Ok(!out.key_pairs().is_empty()),
            Err(e) if error_code(&e) == Some("InvalidKeyPair.NotFound") => Ok(false),
            Err(e) => Err(aws_error("DescribeKeyPairs", e)),
        }
    }

    pub async fn delete_key_pair(&self, name: &str) -> Result<()> {
        match self.client.delete_key_pair().key_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("InvalidKeyPair.NotFound") => Ok(()),
            Err(e) => Err(aws_error("DeleteKeyPair", e).context(name)),
        }
    }

    /// The VPC of the subnets (one VPC: the case has one security group), or the default VPC,
    /// and its IPv4 CIDR.
    pub async fn vpc_of(&self, subnets: &[String]) -> Result<(String, Option<String>)> {
        let vpc_id = match subnets {
            [_, ..] => {
                let out = self
                    .client
                    .describe_subnets()
                    .filters(
                        Filter::builder()
                            .name("subnet-id")
                            .set_values(Some(subnets.to_vec()))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| aws_error("DescribeSubnets", e))?;
                let mut vpcs = std::collections::BTreeSet::new();
                for s in subnets {
                    let found = out.subnets().iter().find(|x| x.subnet_id() == Some(s));
                    match found.and_then(|x| x.vpc_id()) {
                        Some(v) => vpcs.insert(v.to_owned()),
                        None => return Err(Error::input(format!("subnet {s}: not found"))),
                    };
                }
                if vpcs.len() > 1 {
                    return Err(Error::input(format!(
                        "subnets {} are in different VPCs ({}): give subnets of one VPC",
                        subnets.join(","),
                        vpcs.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
                vpcs.into_iter().next().unwrap_or_default()
            }
            [] => {
                let out = self
                    .client
                    .describe_vpcs()
                    .filters(Filter::builder().name("isDefault").values("true").build())
                    .send()
                    .await
                    .map_err(|e| aws_error("DescribeVpcs", e))?;
                out.vpcs()
                    .first()
                    .and_then(|v| v.vpc_id())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Error::input(
                            "this region has no default VPC: give --subnet / EC2_TOOLS_SUBNET_ID",
                        )
                    })?
            }
        };
        let out = self
            .client
            .describe_vpcs()
            .vpc_ids(&vpc_id)
            .send()
            .await
            .map_err(|e| aws_error("DescribeVpcs", e))?;
        let cidr = out
            .vpcs()
            .first()
            .and_then(|v| v.cidr_block())
            .map(str::to_owned);
        Ok((vpc_id, cidr))
    }

    /// The case's security group: TCP 22 and `open` to `cidr` only, and every protocol and
    /// port from the group itself; returns its id.
    pub async fn create_case_group(
        &self,
        name: &str,
        vpc: &str,
        cidr: Option<&ipnet::IpNet>,
        open: &[u16],
        tags: &[(String, String)],
        ssh_and_itself: bool,
    ) -> Result<String> {
        let out = self
            .client
            .create_security_group()
            .group_name(name)
            .description("ec2-tools: SSH to a load-test case")
            .vpc_id(vpc)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CreateSecurityGroup", e).context(name))?;
        let id = out.group_id().unwrap_or_default().to_owned();
        let mut ports: Vec<u16> = if ssh_and_itself { vec![22] } else { vec![] };
        for &p in open {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        if let Some(cidr) = cidr.filter(|_| !ports.is_empty()) {
            self.authorize(&id, &ports, cidr).await?;
        }
        if !ssh_and_itself {
            return Ok(id);
        }
        let itself = IpPermission::builder()
            .ip_protocol("-1")
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(&id)
                    .description("ec2-tools: the case's instances reach each other")
                    .build(),
            )
            .build();
        self.client
            .authorize_security_group_ingress()
            .group_id(&id)
            .ip_permissions(itself)
            .send()
            .await
            .map_err(|e| aws_error("AuthorizeSecurityGroupIngress", e).context(&id))?;
        Ok(id)
    }

    /// Open TCP `ports` of a group to `cidr` (ports already open are fine).
    pub async fn authorize(&self, id: &str, ports: &[u16], cidr: &ipnet::IpNet) -> Result<()> {
        let perms = ports.iter().map(|&p| {
            let perm = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(p as i32)
                .to_port(p as i32);
            let desc = if p == 22 {
                "ec2-tools ssh"
            } else {
                "ec2-tools --open"
            };
            match cidr {
                ipnet::IpNet::V4(_) => perm.ip_ranges(
                    IpRange::builder()
                        .cidr_ip(cidr.to_string())
                        .description(desc)
                        .build(),
                ),
                ipnet::IpNet::V6(_) => perm.ipv6_ranges(
                    Ipv6Range::builder()
                        .cidr_ipv6(cidr.to_string())
                        .description(desc)
                        .build(),
                ),
            }
            .build()
        });
        for perm in perms {
            match self
                .client
                .authorize_security_group_ingress()
                .group_id(id)
                .ip_permissions(perm)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("InvalidPermission.Duplicate") => {}
                Err(e) => return Err(aws_error("AuthorizeSecurityGroupIngress", e).context(id)),
            }
        }
        Ok(())
    }

    /// Security groups tagged with the case and owner.
    pub async fn tagged_groups(&self, case: &str, owner: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_security_groups()
            .set_filters(Some(case_filters(case, owner)))
            .send()
            .await
            .map_err(|e| aws_error("DescribeSecurityGroups", e))?;
        Ok(out
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect())
    }

    /// Key pairs tagged with the case and owner.
    pub async fn tagged_key_pairs(&self, case: &str, owner: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_key_pairs()
            .set_filters(Some(case_filters(case, owner)))
            .send()
            .await
            .map_err(|e| aws_error("DescribeKeyPairs", e))?;
        Ok(out
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name().map(str::to_owned))
            .collect())
    }

    /// The id of a security group by name in a VPC, if it exists.
    pub async fn find_group(&self, name: &str, vpc: &str) -> Result<Option<String>> {
        let out = self
            .client
            .describe_security_groups()
            .filters(Filter::builder().name("group-name").values(name).build())
            .filters(Filter::builder().name("vpc-id").values(vpc).build())
            .send()
            .await
            .map_err(|e| aws_error("DescribeSecurityGroups", e))?;
        Ok(out
            .security_groups()
            .first()
            .and_then(|g| g.group_id())
            .map(str::to_owned))
    }

    /// Delete a security group, retrying while AWS still sees it in use (instances take a
    /// while to release their network interfaces after termination). Gone already is fine.
    pub async fn delete_group(&self, id: &str, patience: std::time::Duration) -> Result<()> {
        retry_while_in_use(
            patience,
            "DeleteSecurityGroup",
            id,
            "DependencyViolation",
            |c| c == "InvalidGroup.NotFound",
            || async {
                self.client
                    .delete_security_group()
                    .group_id(id)
                    .send()
                    .await
                    .map(|_| ())
            },
        )
        .await
    }
}
