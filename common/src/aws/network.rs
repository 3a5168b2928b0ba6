//! Network scaffolding (`--network auto`): for a region without a default VPC (the ECS/Packer
//! seed builds its own), a VPC for the case, one public subnet per availability zone (up to
//! three), an internet gateway and a route table sending 0.0.0.0/0 to it — every piece tagged
//! with the case and owner, recorded in the case state, and torn down by ec2-killall after the
//! last instance in dependency order (subnets, route table, gateway, VPC), retrying while AWS
//! still reports them in use; `--case-sweep` finds them by tag. An explicit `--subnet` wins.
//! What does not belong here: the case's security group and key pair (access.rs).

use super::ec2::{tag, Ec2};
use super::errors::{aws_error, error_code, retry_while_in_use};
use crate::case::store::NetworkState;
use crate::error::{Error, Result};
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, TagSpecification};
use std::time::Duration;

/// How many availability zones get a subnet.
const ZONES: usize = 3;

fn tagged(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .build()
}

/// The /20 blocks of `cidr`, one per zone (a /16 gives 16; smaller VPCs split in four).
pub fn subnet_blocks(cidr: &ipnet::IpNet, zones: usize) -> Result<Vec<ipnet::IpNet>> {
    let len = (cidr.prefix_len() + 4).clamp(20, 28);
    let blocks: Vec<ipnet::IpNet> = cidr
        .subnets(len)
        .map_err(|e| Error::input(format!("--network-cidr {cidr}: {e}")))?
        .take(zones)
        .collect();
    if blocks.len() < zones {
        return Err(Error::input(format!(
            "--network-cidr {cidr}: too small for {zones} subnets"
        )));
    }
    Ok(blocks)
}

impl Ec2 {
    /// Make the case's network (VPC, subnets, gateway, routes); returns what was made.
    pub async fn create_network(
        &self,
        cidr: &ipnet::IpNet,
        tags: &[(String, String)],
    ) -> Result<NetworkState> {
        let vpc = self
            .client
            .create_vpc()
            .cidr_block(cidr.to_string())
            .tag_specifications(tagged(ResourceType::Vpc, tags))
            .send()
            .await
            .map_err(|e| aws_error("CreateVpc", e))?
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap_or_default()
            .to_owned();
        let mut net = NetworkState {
            vpc: vpc.clone(),
            ..Default::default()
        };
        self.client
            .modify_vpc_attribute()
            .vpc_id(&vpc)
            .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| aws_error("ModifyVpcAttribute", e))?;
        let igw = self.create_gateway(&vpc, tags).await?;
        net.gateway = Some(igw.clone());
        let rtb = self.create_routes(&vpc, &igw, tags).await?;
        net.route_table = Some(rtb.clone());
        let names = self.zone_names().await?;
        for (az, block) in names.iter().zip(subnet_blocks(cidr, names.len())?) {
            let subnet = self.create_subnet(&vpc, &rtb, az, &block, tags).await?;
            net.subnets.push(subnet);
        }
        Ok(net)
    }

    /// An internet gateway, attached to `vpc`.
    async fn create_gateway(&self, vpc: &str, tags: &[(String, String)]) -> Result<String> {
        let igw = self
            .client
            .create_internet_gateway()
            .tag_specifications(tagged(ResourceType::InternetGateway, tags))
            .send()
            .await
            .map_err(|e| aws_error("CreateInternetGateway", e))?
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default()
            .to_owned();
        self.client
            .attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| aws_error("AttachInternetGateway", e))?;
        Ok(igw)
    }

    /// A route table in `vpc` with its default route through the gateway `igw`.
    async fn create_routes(
        &self,
        vpc: &str,
        igw: &str,
        tags: &[(String, String)],
    ) -> Result<String> {
        let rtb = self
            .client
            .create_route_table()
            .vpc_id(vpc)
            .tag_specifications(tagged(ResourceType::RouteTable, tags))
            .send()
            .await
            .map_err(|e| aws_error("CreateRouteTable", e))?
            .route_table()
            .and_then(|r| r.route_table_id())
            .unwrap_or_default()
            .to_owned();
        self.client
            .create_route()
            .route_table_id(&rtb)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(igw)
            .send()
            .await
            .map_err(|e| aws_error("CreateRoute", e))?;
        Ok(rtb)
    }

    /// The first [`ZONES`] available zones, by name.
    async fn zone_names(&self) -> Result<Vec<String>> {
        let zones = self
            .client
            .describe_availability_zones()
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .map_err(|e| aws_error("DescribeAvailabilityZones", e))?;
        let mut names: Vec<String> = zones
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_owned))
            .collect();
        names.sort();
        names.truncate(ZONES);
        Ok(names)
    }

    /// One subnet in `az`: public addresses on launch, routed by `rtb`.
    async fn create_subnet(
        &self,
        vpc: &str,
        rtb: &str,
        az: &str,
        block: &ipnet::IpNet,
        tags: &[(String, String)],
    ) -> Result<String> {
        let subnet = self
            .client
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(block.to_string())
            .availability_zone(az)
            .tag_specifications(tagged(ResourceType::Subnet, tags))
            .send()
            .await
            .map_err(|e| aws_error("CreateSubnet", e))?
            .subnet()
            .and_then(|s| s.subnet_id())
            .unwrap_or_default()
            .to_owned();
        self.client
            .modify_subnet_attribute()
            .subnet_id(&subnet)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| aws_error("ModifySubnetAttribute", e))?;
        self.client
            .associate_route_table()
            .route_table_id(rtb)
            .subnet_id(&subnet)
            .send()
            .await
            .map_err(|e| aws_error("AssociateRouteTable", e))?;
        Ok(subnet)
    }

    /// The VPCs tagged with the case and owner, and their tagged pieces, for `--case-sweep`.
    pub async fn tagged_networks(&self, case: &str, owner: &str) -> Result<Vec<NetworkState>> {
        let filters = super::ec2::case_filters(case, owner);
        let vpcs = self
            .client
            .describe_vpcs()
            .set_filters(Some(filters.clone()))
            .send()
            .await
            .map_err(|e| aws_error("DescribeVpcs", e))?;
        let mut out = Vec::new();
        for v in vpcs.vpcs() {
            let vpc = v.vpc_id().unwrap_or_default().to_owned();
            let in_vpc = Filter::builder().name("vpc-id").values(&vpc).build();
            let subnets = self
                .client
                .describe_subnets()
                .filters(in_vpc.clone())
                .send()
                .await
                .map_err(|e| aws_error("DescribeSubnets", e))?;
            let rtbs = self
                .client
                .describe_route_tables()
                .set_filters(Some(filters.clone()))
                .filters(in_vpc)
                .send()
                .await
                .map_err(|e| aws_error("DescribeRouteTables", e))?;
            let igws = self
                .client
                .describe_internet_gateways()
                .filters(
                    Filter::builder()
                        .name("attachment.vpc-id")
                        .values(&vpc)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| aws_error("DescribeInternetGateways", e))?;
            out.push(NetworkState {
                vpc,
                subnets: subnets
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_id().map(str::to_owned))
                    .collect(),
                route_table: rtbs
                    .route_tables()
                    .first()
                    .and_then(|r| r.route_table_id().map(str::to_owned)),
                gateway: igws
                    .internet_gateways()
                    .first()
                    .and_then(|g| g.internet_gateway_id().map(str::to_owned)),
            });
        }
        Ok(out)
    }

    /// Tear the case's network down in dependency order, retrying each step while AWS still
    /// reports it in use (network interfaces of terminated instances linger a while). Pieces
    /// already gone are fine.
    pub async fn delete_network(&self, net: &NetworkState, patience: Duration) -> Result<()> {
        // The route table's subnet associations first (explicitly: the table cannot go while
        // one remains).
        if let Some(r) = &net.route_table {
            self.disassociate(r, patience).await?;
        }
        for s in &net.subnets {
            retry_in_use(patience, "DeleteSubnet", s, || async {
                self.client
                    .delete_subnet()
                    .subnet_id(s)
                    .send()
                    .await
                    .map(|_| ())
            })
            .await?;
        }
        if let Some(r) = &net.route_table {
            retry_in_use(patience, "DeleteRouteTable", r, || async {
                self.client
                    .delete_route_table()
                    .route_table_id(r)
                    .send()
                    .await
                    .map(|_| ())
            })
            .await?;
        }
        if let Some(g) = &net.gateway {
            retry_in_use(patience, "DetachInternetGateway", g, || async {
                self.client
                    .detach_internet_gateway()
                    .internet_gateway_id(g)
                    .vpc_id(&net.vpc)
                    .send()
                    .await
                    .map(|_| ())
            })
            .await?;
            retry_in_use(patience, "DeleteInternetGateway", g, || async {
                self.client
                    .delete_internet_gateway()
                    .internet_gateway_id(g)
                    .send()
                    .await
                    .map(|_| ())
            })
            .await?;
        }
        retry_in_use(patience, "DeleteVpc", &net.vpc, || async {
            self.client
                .delete_vpc()
                .vpc_id(&net.vpc)
                .send()
                .await
                .map(|_| ())
        })
        .await
    }

    /// Remove the route table `r`'s subnet associations (not its main one).
    async fn disassociate(&self, r: &str, patience: Duration) -> Result<()> {
        let tables = match self
            .client
            .describe_route_tables()
            .route_table_ids(r)
            .send()
            .await
        {
            Ok(t) => t.route_tables().to_vec(),
            Err(e) if error_code(&e).is_some_and(|c| c.ends_with(".NotFound")) => vec![],
            Err(e) => return Err(aws_error("DescribeRouteTables", e).context(r)),
        };
        for a in tables.iter().flat_map(|t| t.associations()) {
            if a.main() == Some(true) {
                continue;
            }
            if let Some(id) = a.route_table_association_id() {
                retry_in_use(patience, "DisassociateRouteTable", id, || async {
                    self.client
                        .disassociate_route_table()
                        .association_id(id)
                        .send()
                        .await
                        .map(|_| ())
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// The network's pieces: gone is a `.NotFound` code or a gateway no longer attached; in use
/// is `DependencyViolation`.
async fn retry_in_use<E, F, Fut>(
    patience: Duration,
    action: &str,
    what: &str,
    call: F,
) -> Result<()>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), aws_sdk_ec2::error::SdkError<E>>>,
{
    let gone = |c: &str| c.ends_with(".NotFound") || c == "Gateway.NotAttached";
    retry_while_in_use(patience, action, what, "DependencyViolation", gone, call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_gives_one_20_per_zone_and_a_tiny_vpc_is_refused() {
        let cidr: ipnet::IpNet = "10.0.0.0/16".parse().unwrap();
        let b = subnet_blocks(&cidr, 3).unwrap();
        let b: Vec<String> = b.iter().map(|n| n.to_string()).collect();
        assert_eq!(b, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]);
        let tiny: ipnet::IpNet = "10.0.0.0/28".parse().unwrap();
        assert!(subnet_blocks(&tiny, 3).is_err());
    }
}
