//! The temporary network of a helper build (VPC, subnet, internet gateway, route table, security
//! group), and the subnets builds and tests are placed in.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType};

use super::{AwsCloud, Missing, missing, tag_spec};
use crate::cloud::{CloudError, ErrorClass, Placement, ResourceKind, Tagging};

impl AwsCloud {
    pub(super) async fn create_vpc(
        &self,
        region: &str,
        cidr: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2.create_vpc().cidr_block(cidr).tag_specifications(tag_spec(ResourceType::Vpc, tags));
        self.create_once(region, ResourceKind::Vpc, tags, None, || async {
            let out = self.call("CreateVpc", region).once(|| request.clone().send()).await?;
            Ok(out.vpc().and_then(|v| v.vpc_id.clone()).unwrap_or_default())
        })
        .await
    }

    pub(super) async fn create_subnet(
        &self,
        region: &str,
        vpc: &str,
        cidr: &str,
        availability_zone: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .set_availability_zone(availability_zone.map(str::to_string))
            .tag_specifications(tag_spec(ResourceType::Subnet, tags));
        self.create_once(region, ResourceKind::Subnet, tags, None, || async {
            let out = self.call("CreateSubnet", region).on(vpc).once(|| request.clone().send()).await?;
            Ok(out.subnet().and_then(|s| s.subnet_id.clone()).unwrap_or_default())
        })
        .await
    }

    pub(super) async fn create_gateway(
        &self,
        region: &str,
        vpc: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2.create_internet_gateway().tag_specifications(tag_spec(ResourceType::InternetGateway, tags));
        let id = self
            .create_once(region, ResourceKind::InternetGateway, tags, None, || async {
                let out = self.call("CreateInternetGateway", region).once(|| request.clone().send()).await?;
                Ok(out.internet_gateway().and_then(|g| g.internet_gateway_id.clone()).unwrap_or_default())
            })
            .await?;
        self.call("AttachInternetGateway", region)
            .on(&id)
            .fresh()
            .send(|| ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(vpc).send())
            .await?;
        Ok(id)
    }

    /// A route table with the default route through `gateway`, associated with `subnet`.
    pub(super) async fn create_routes(
        &self,
        region: &str,
        (vpc, subnet, gateway): (&str, &str, &str),
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("CreateRouteTable", region)
            .on(vpc)
            .fresh()
            .send(|| {
                ec2.create_route_table()
                    .vpc_id(vpc)
                    .client_token(client_token)
                    .tag_specifications(tag_spec(ResourceType::RouteTable, tags))
                    .send()
            })
            .await?;
        let id = out.route_table().and_then(|t| t.route_table_id.clone()).unwrap_or_default();
        self.call("CreateRoute", region)
            .on(&id)
            .fresh()
            .send(|| {
                ec2.create_route().route_table_id(&id).destination_cidr_block("0.0.0.0/0").gateway_id(gateway).send()
            })
            .await?;
        self.call("AssociateRouteTable", region)
            .on(&id)
            .fresh()
            .send(|| ec2.associate_route_table().route_table_id(&id).subnet_id(subnet).send())
            .await?;
        Ok(id)
    }

    pub(super) async fn create_group(
        &self,
        region: &str,
        (vpc, name, description): (&str, &str, &str),
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags));
        self.create_once(region, ResourceKind::SecurityGroup, tags, None, || async {
            match self.call("CreateSecurityGroup", region).on(vpc).once(|| request.clone().send()).await {
                Ok(out) => Ok(out.group_id.unwrap_or_default()),
                // Group names are unique per VPC: this name is amiplan's own, made by an attempt
                // whose answer was lost (or by a killed run). Adopt it.
                Err(e) if e.class == ErrorClass::Duplicate => {
                    let id = self.group_named(region, vpc, name).await?.ok_or(e)?;
                    self.set_tags(region, std::slice::from_ref(&id), tags).await?;
                    Ok(id)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn group_named(&self, region: &str, vpc: &str, name: &str) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let by_name = Filter::builder().name("group-name").values(name).build();
        let in_vpc = Filter::builder().name("vpc-id").values(vpc).build();
        let out = self
            .call("DescribeSecurityGroups", region)
            .send(|| ec2.describe_security_groups().filters(by_name.clone()).filters(in_vpc.clone()).send())
            .await?;
        Ok(out.security_groups().first().and_then(|g| g.group_id.clone()))
    }

    pub(super) async fn delete_route_table(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeRouteTables", region)
            .on(id)
            .send(|| ec2.describe_route_tables().route_table_ids(id).send())
            .await
            .or_none()?;
        let associations: Vec<String> = out
            .iter()
            .flat_map(|o| o.route_tables())
            .flat_map(|t| t.associations())
            .filter(|a| a.main != Some(true))
            .filter_map(|a| a.route_table_association_id.clone())
            .collect();
        for association in &associations {
            self.call("DisassociateRouteTable", region)
                .on(id)
                .send(|| ec2.disassociate_route_table().association_id(association).send())
                .await
                .or_gone()?;
        }
        self.call("DeleteRouteTable", region)
            .on(id)
            .send(|| ec2.delete_route_table().route_table_id(id).send())
            .await
            .or_gone()
    }

    pub(super) async fn delete_gateway(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeInternetGateways", region)
            .on(id)
            .send(|| ec2.describe_internet_gateways().internet_gateway_ids(id).send())
            .await
            .or_none()?;
        let vpcs: Vec<String> = out
            .iter()
            .flat_map(|o| o.internet_gateways())
            .flat_map(|g| g.attachments())
            .filter_map(|a| a.vpc_id.clone())
            .collect();
        for vpc in &vpcs {
            self.call("DetachInternetGateway", region)
                .on(id)
                .send(|| ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send())
                .await
                .or_gone()?;
        }
        self.call("DeleteInternetGateway", region)
            .on(id)
            .send(|| ec2.delete_internet_gateway().internet_gateway_id(id).send())
            .await
            .or_gone()
    }

    pub(super) async fn placement_of(&self, region: &str, subnet: &str) -> Result<Placement, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeSubnets", region)
            .on(subnet)
            .fresh()
            .send(|| ec2.describe_subnets().subnet_ids(subnet).send())
            .await?;
        let found = out
            .subnets()
            .first()
            .ok_or_else(|| missing("DescribeSubnets", region, "InvalidSubnetID.NotFound", subnet))?;
        Ok(Placement {
            vpc: found.vpc_id.clone().unwrap_or_default(),
            availability_zone: found.availability_zone.clone().unwrap_or_default(),
        })
    }

    pub(super) async fn first_default_subnet(
        &self,
        region: &str,
        zones: &[String],
    ) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let default = Filter::builder().name("default-for-az").values("true").build();
        let subnets = describe!(self, region, "DescribeSubnets", ec2.describe_subnets(), vec![default]).await?;
        let mut ids: Vec<String> = subnets
            .iter()
            .filter(|s| zones.is_empty() || s.availability_zone().is_some_and(|z| zones.iter().any(|w| w == z)))
            .filter_map(|s| s.subnet_id.clone())
            .collect();
        ids.sort();
        Ok(ids.into_iter().next())
    }
}
