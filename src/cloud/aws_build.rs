//! The AWS calls of helper builds: the temporary network, the target volume, the helper instance
//! and their teardown. Kept apart from `aws.rs`, which holds the image and snapshot calls.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttachmentStatus, BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest,
    InstanceNetworkInterfaceSpecification, InstanceType, LocationType, MarketType, ResourceType, ShutdownBehavior,
    SpotInstanceType, SpotMarketOptions, VolumeType,
};
use base64::Engine as _;

use super::aws::{AwsCloud, sdk_error, tag_map, tag_spec};
use super::tags;
use super::{
    BuildResource, CloudError, ErrorClass, ExistingSubnet, HelperLaunch, Placement, ResourceStatus, RootDevice,
};
use super::{LiveResource, ResourceKind};

/// Codes with which EC2 may refuse `Latest` console output on a non-Nitro instance type.
const LIVE_CONSOLE_REFUSED: &[Option<&str>] = &[
    Some("UnsupportedOperation"),
    Some("InvalidParameterCombination"),
    Some("InvalidParameter"),
    Some("InvalidParameterValue"),
];

/// States in which an instance still exists for planning purposes: a terminated helper is gone.
const LIVE_INSTANCE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// AWS's state word of a resource, or `present` for kinds without one.
fn state<S: AsRef<str>>(state: Option<&S>) -> String {
    state.map_or_else(|| "present".to_string(), |s| s.as_ref().to_string())
}

fn ignore_not_found(result: Result<(), CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

impl AwsCloud {
    /// Helper instances (one Describe, filtered by stack tag and live state) and the other
    /// transient resources (one DescribeTags over every kind), of the given stacks.
    pub(super) async fn discover_build_resources(
        &self,
        region: &str,
        stacks: &[String],
    ) -> Result<Vec<LiveResource>, CloudError> {
        if stacks.is_empty() {
            return Ok(vec![]);
        }
        let ec2 = self.ec2(region);
        let instances = self.policy().run(false, || async {
            let by_stack =
                Filter::builder().name(format!("tag:{}", tags::STACK)).set_values(Some(stacks.to_vec())).build();
            let states = Filter::builder()
                .name("instance-state-name")
                .set_values(Some(LIVE_INSTANCE_STATES.iter().map(|s| s.to_string()).collect()))
                .build();
            let pages = ec2.describe_instances().filters(by_stack).filters(states).into_paginator().items().send();
            pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeInstances", region, e))
        });
        // One tag-filtered Describe per kind, all at once. (DescribeTags would be one call, but
        // it may still list resources that were deleted, which would make them look alive.)
        let by_stack =
            || Filter::builder().name(format!("tag:{}", tags::STACK)).set_values(Some(stacks.to_vec())).build();
        let policy = self.policy();
        let vpcs = policy.run(false, || async {
            let pages = ec2.describe_vpcs().filters(by_stack()).into_paginator().items().send();
            let found = pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeVpcs", region, e))?;
            Ok(found
                .iter()
                .map(|v| (ResourceKind::Vpc, v.vpc_id.clone(), v.tags().to_vec(), state(v.state())))
                .collect::<Vec<_>>())
        });
        let subnets = policy.run(false, || async {
            let pages = ec2.describe_subnets().filters(by_stack()).into_paginator().items().send();
            let found =
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeSubnets", region, e))?;
            Ok(found
                .iter()
                .map(|v| (ResourceKind::Subnet, v.subnet_id.clone(), v.tags().to_vec(), state(v.state())))
                .collect::<Vec<_>>())
        });
        let gateways = policy.run(false, || async {
            let pages = ec2.describe_internet_gateways().filters(by_stack()).into_paginator().items().send();
            let found = pages
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| sdk_error("DescribeInternetGateways", region, e))?;
            // A gateway made by a run that stopped before attaching it is of no use: say so.
            Ok(found
                .iter()
                .map(|v| {
                    let attached = v.attachments().iter().any(|a| {
                        matches!(a.state(), Some(AttachmentStatus::Attached) | Some(AttachmentStatus::Attaching))
                            || a.state().map(|s| s.as_str()) == Some("available")
                    });
                    let state = if attached { "attached" } else { "detached" };
                    (ResourceKind::InternetGateway, v.internet_gateway_id.clone(), v.tags().to_vec(), state.to_string())
                })
                .collect::<Vec<_>>())
        });
        let route_tables = policy.run(false, || async {
            let pages = ec2.describe_route_tables().filters(by_stack()).into_paginator().items().send();
            let found =
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeRouteTables", region, e))?;
            // Likewise a route table without its default route or its subnet.
            Ok(found
                .iter()
                .map(|v| {
                    let routed = v.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
                    let associated = v.associations().iter().any(|a| a.main != Some(true) && a.subnet_id.is_some());
                    let state = if routed && associated { "routed" } else { "incomplete" };
                    (ResourceKind::RouteTable, v.route_table_id.clone(), v.tags().to_vec(), state.to_string())
                })
                .collect::<Vec<_>>())
        });
        let groups = policy.run(false, || async {
            let pages = ec2.describe_security_groups().filters(by_stack()).into_paginator().items().send();
            let found = pages
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| sdk_error("DescribeSecurityGroups", region, e))?;
            Ok(found
                .iter()
                .map(|v| (ResourceKind::SecurityGroup, v.group_id.clone(), v.tags().to_vec(), "present".to_string()))
                .collect::<Vec<_>>())
        });
        let volumes = policy.run(false, || async {
            let pages = ec2.describe_volumes().filters(by_stack()).into_paginator().items().send();
            let found =
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeVolumes", region, e))?;
            Ok(found
                .iter()
                .map(|v| (ResourceKind::Volume, v.volume_id.clone(), v.tags().to_vec(), state(v.state())))
                .collect::<Vec<_>>())
        });
        let (reservations, vpcs, subnets, gateways, route_tables, groups, volumes) =
            futures::try_join!(instances, vpcs, subnets, gateways, route_tables, groups, volumes)?;
        let mut found = Vec::new();
        for instance in reservations.iter().flat_map(|r| r.instances()) {
            let state = instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
            let id = instance.instance_id().unwrap_or_default();
            let mut live = LiveResource::new(region, ResourceKind::Instance, id, &state, tag_map(instance.tags()));
            live.created = instance.launch_time().map(|t| t.to_string());
            found.push(live);
        }
        for (kind, id, tags, state) in [vpcs, subnets, gateways, route_tables, groups, volumes].into_iter().flatten() {
            found.push(LiveResource::new(region, kind, &id.unwrap_or_default(), &state, tag_map(&tags)));
        }
        Ok(found)
    }

    pub(super) async fn newest_image_by_name(
        &self,
        region: &str,
        owner: &str,
        pattern: &str,
    ) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let images = self
            .policy()
            .run(false, || async {
                let by_name = Filter::builder().name("name").values(pattern).build();
                let pages = ec2.describe_images().owners(owner).filters(by_name).into_paginator().items().send();
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeImages", region, e))
            })
            .await?;
        let newest =
            images.iter().max_by(|a, b| (a.creation_date(), a.image_id()).cmp(&(b.creation_date(), b.image_id())));
        Ok(newest.and_then(|image| image.image_id.clone()))
    }

    /// The subnet's zone and the target of its default route (its own route table's, or the
    /// VPC's main one's), if it leads out; `None` when the subnet does not exist.
    pub(super) async fn existing_subnet_of(
        &self,
        region: &str,
        subnet: &str,
    ) -> Result<Option<ExistingSubnet>, CloudError> {
        let ec2 = self.ec2(region);
        let policy = self.policy();
        let described = policy
            .run(false, || async {
                ec2.describe_subnets()
                    .subnet_ids(subnet)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeSubnets", region, e).on(subnet))
            })
            .await;
        let found = match described {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        let Some(found) = found.subnets().first() else { return Ok(None) };
        let vpc = found.vpc_id.clone().unwrap_or_default();
        let availability_zone = found.availability_zone.clone().unwrap_or_default();
        let tables = |filters: Vec<Filter>| {
            let ec2 = ec2.clone();
            async move {
                policy
                    .run(false, || async {
                        let pages = ec2
                            .describe_route_tables()
                            .set_filters(Some(filters.clone()))
                            .into_paginator()
                            .items()
                            .send();
                        pages
                            .collect::<Result<Vec<_>, _>>()
                            .await
                            .map_err(|e| sdk_error("DescribeRouteTables", region, e))
                    })
                    .await
            }
        };
        let mut found_tables =
            tables(vec![Filter::builder().name("association.subnet-id").values(subnet).build()]).await?;
        if found_tables.is_empty() {
            found_tables = tables(vec![
                Filter::builder().name("vpc-id").values(&vpc).build(),
                Filter::builder().name("association.main").values("true").build(),
            ])
            .await?;
        }
        let gateways = policy
            .run(false, || async {
                let attached = Filter::builder().name("attachment.vpc-id").values(&vpc).build();
                ec2.describe_internet_gateways()
                    .filters(attached)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeInternetGateways", region, e))
            })
            .await?;
        let attached: Vec<&str> = gateways.internet_gateways().iter().filter_map(|g| g.internet_gateway_id()).collect();
        let route_out = found_tables
            .iter()
            .flat_map(|t| t.routes())
            .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .find_map(|r| match (r.gateway_id(), r.nat_gateway_id()) {
                (Some(gateway), _) if attached.contains(&gateway) => Some(gateway.to_string()),
                (_, Some(nat)) => Some(nat.to_string()),
                _ => None,
            });
        Ok(Some(ExistingSubnet { availability_zone, route_out }))
    }

    pub(super) async fn root_device_of(&self, region: &str, image: &str) -> Result<RootDevice, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .policy()
            .run(false, || async {
                ec2.describe_images()
                    .image_ids(image)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeImages", region, e).on(image))
            })
            .await?;
        let found = out.images().first().ok_or_else(|| {
            CloudError::new(
                "DescribeImages",
                region,
                Some("InvalidAMIID.NotFound".into()),
                format!("{image} does not exist"),
            )
            .on(image)
        })?;
        let name = found.root_device_name().unwrap_or("/dev/xvda").to_string();
        let size = found
            .block_device_mappings()
            .iter()
            .find(|m| m.device_name() == Some(name.as_str()))
            .and_then(|m| m.ebs()?.volume_size())
            // AWS's own Linux AMIs have 8 GiB roots; an AMI that does not say is taken as that.
            .unwrap_or(8);
        Ok(RootDevice { name, size_gib: size.max(1) as u32 })
    }

    pub(super) async fn first_default_subnet(
        &self,
        region: &str,
        zones: &[String],
    ) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let subnets = self
            .policy()
            .run(false, || async {
                let default = Filter::builder().name("default-for-az").values("true").build();
                let pages = ec2.describe_subnets().filters(default).into_paginator().items().send();
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeSubnets", region, e))
            })
            .await?;
        let mut ids: Vec<String> = subnets
            .iter()
            .filter(|s| zones.is_empty() || s.availability_zone().is_some_and(|z| zones.iter().any(|w| w == z)))
            .filter_map(|s| s.subnet_id.clone())
            .collect();
        ids.sort();
        Ok(ids.into_iter().next())
    }

    pub(super) async fn count_vpcs(&self, region: &str) -> Result<usize, CloudError> {
        let ec2 = self.ec2(region);
        let vpcs = self
            .policy()
            .run(false, || async {
                let pages = ec2.describe_vpcs().into_paginator().items().send();
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeVpcs", region, e))
            })
            .await?;
        Ok(vpcs.len())
    }

    pub(super) async fn zones_offering(&self, region: &str, instance_type: &str) -> Result<Vec<String>, CloudError> {
        let ec2 = self.ec2(region);
        let offerings = self
            .policy()
            .run(false, || async {
                let of_type = Filter::builder().name("instance-type").values(instance_type).build();
                let pages = ec2
                    .describe_instance_type_offerings()
                    .location_type(LocationType::AvailabilityZone)
                    .filters(of_type)
                    .into_paginator()
                    .items()
                    .send();
                pages
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .map_err(|e| sdk_error("DescribeInstanceTypeOfferings", region, e))
            })
            .await?;
        let mut zones: Vec<String> = offerings.iter().filter_map(|o| o.location.clone()).collect();
        zones.sort();
        zones.dedup();
        Ok(zones)
    }

    pub(super) async fn placement_of(&self, region: &str, subnet: &str) -> Result<Placement, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .policy()
            .run(true, || async {
                ec2.describe_subnets()
                    .subnet_ids(subnet)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeSubnets", region, e).on(subnet))
            })
            .await?;
        let found = out.subnets().first().ok_or_else(|| {
            CloudError::new(
                "DescribeSubnets",
                region,
                Some("InvalidSubnetID.NotFound".into()),
                format!("subnet {subnet} does not exist"),
            )
            .on(subnet)
        })?;
        Ok(Placement {
            vpc: found.vpc_id.clone().unwrap_or_default(),
            availability_zone: found.availability_zone.clone().unwrap_or_default(),
        })
    }

    pub(super) async fn create_transient(
        &self,
        region: &str,
        resource: &BuildResource,
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let policy = self.policy();
        match resource {
            BuildResource::Vpc { cidr } => {
                self.create_once(region, ResourceKind::Vpc, tags, None, || async {
                    let out = ec2
                        .create_vpc()
                        .cidr_block(cidr)
                        .tag_specifications(tag_spec(ResourceType::Vpc, tags))
                        .send()
                        .await
                        .map_err(|e| sdk_error("CreateVpc", region, e))?;
                    Ok(out.vpc().and_then(|v| v.vpc_id.clone()).unwrap_or_default())
                })
                .await
            }
            BuildResource::Subnet { vpc, cidr, availability_zone } => {
                self.create_once(region, ResourceKind::Subnet, tags, None, || async {
                    let out = ec2
                        .create_subnet()
                        .vpc_id(vpc)
                        .cidr_block(cidr)
                        .set_availability_zone(availability_zone.clone())
                        .tag_specifications(tag_spec(ResourceType::Subnet, tags))
                        .send()
                        .await
                        .map_err(|e| sdk_error("CreateSubnet", region, e).on(vpc))?;
                    Ok(out.subnet().and_then(|s| s.subnet_id.clone()).unwrap_or_default())
                })
                .await
            }
            BuildResource::InternetGateway { vpc } => {
                let id = self
                    .create_once(region, ResourceKind::InternetGateway, tags, None, || async {
                        let out = ec2
                            .create_internet_gateway()
                            .tag_specifications(tag_spec(ResourceType::InternetGateway, tags))
                            .send()
                            .await
                            .map_err(|e| sdk_error("CreateInternetGateway", region, e))?;
                        Ok(out.internet_gateway().and_then(|g| g.internet_gateway_id.clone()).unwrap_or_default())
                    })
                    .await?;
                policy
                    .run(true, || async {
                        ec2.attach_internet_gateway()
                            .internet_gateway_id(&id)
                            .vpc_id(vpc)
                            .send()
                            .await
                            .map_err(|e| sdk_error("AttachInternetGateway", region, e).on(&id))
                    })
                    .await?;
                Ok(id)
            }
            BuildResource::RouteTable { vpc, subnet, gateway } => {
                let out = policy
                    .run(true, || async {
                        ec2.create_route_table()
                            .vpc_id(vpc)
                            .client_token(client_token)
                            .tag_specifications(tag_spec(ResourceType::RouteTable, tags))
                            .send()
                            .await
                            .map_err(|e| sdk_error("CreateRouteTable", region, e).on(vpc))
                    })
                    .await?;
                let id = out.route_table().and_then(|t| t.route_table_id.clone()).unwrap_or_default();
                policy
                    .run(true, || async {
                        ec2.create_route()
                            .route_table_id(&id)
                            .destination_cidr_block("0.0.0.0/0")
                            .gateway_id(gateway)
                            .send()
                            .await
                            .map_err(|e| sdk_error("CreateRoute", region, e).on(&id))
                    })
                    .await?;
                policy
                    .run(true, || async {
                        ec2.associate_route_table()
                            .route_table_id(&id)
                            .subnet_id(subnet)
                            .send()
                            .await
                            .map_err(|e| sdk_error("AssociateRouteTable", region, e).on(&id))
                    })
                    .await?;
                Ok(id)
            }
            BuildResource::SecurityGroup { vpc, name, description } => {
                self.create_once(region, ResourceKind::SecurityGroup, tags, None, || async {
                    let created = ec2
                        .create_security_group()
                        .group_name(name)
                        .description(description)
                        .vpc_id(vpc)
                        .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
                        .send()
                        .await
                        .map_err(|e| sdk_error("CreateSecurityGroup", region, e).on(vpc));
                    match created {
                        Ok(out) => Ok(out.group_id.unwrap_or_default()),
                        // Group names are unique per VPC: this name is amiplan's own, made by
                        // an attempt whose answer was lost (or by a killed run). Adopt it.
                        Err(e) if e.code.as_deref() == Some("InvalidGroup.Duplicate") => {
                            let id = self.group_named(region, vpc, name).await?.ok_or(e)?;
                            super::Cloud::set_tags(self, region, std::slice::from_ref(&id), tags).await?;
                            Ok(id)
                        }
                        Err(e) => Err(e),
                    }
                })
                .await
            }
            BuildResource::Volume { availability_zone, size_gib, volume_type, encrypted, kms_key } => {
                let out = policy
                    .run(false, || async {
                        ec2.create_volume()
                            .availability_zone(availability_zone)
                            .size(*size_gib as i32)
                            .volume_type(VolumeType::from(volume_type.as_str()))
                            .encrypted(*encrypted)
                            .set_kms_key_id(kms_key.clone())
                            .tag_specifications(tag_spec(ResourceType::Volume, tags))
                            .client_token(client_token)
                            .send()
                            .await
                            .map_err(|e| sdk_error("CreateVolume", region, e))
                    })
                    .await?;
                Ok(out.volume_id.unwrap_or_default())
            }
        }
    }

    pub(super) async fn run_helper(&self, region: &str, launch: &HelperLaunch) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let user_data = base64::engine::general_purpose::STANDARD.encode(launch.user_data.as_bytes());
        // IMDSv2 only; no key pair and a group without inbound rules, so nothing can log in.
        let metadata = InstanceMetadataOptionsRequest::builder()
            .http_tokens(HttpTokensState::Required)
            .http_endpoint(InstanceMetadataEndpointState::Enabled)
            .http_put_response_hop_limit(1)
            .build();
        // The job powers the helper off when done: `stop` keeps it (and its console) visible.
        // One-time spot instances cannot stop, so they terminate; the result is read either way.
        let (shutdown, market) = if launch.spot {
            let spot = SpotMarketOptions::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build();
            let market =
                InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).spot_options(spot).build();
            (ShutdownBehavior::Terminate, Some(market))
        } else {
            (ShutdownBehavior::Stop, None)
        };
        // A public address can only be asked for on an explicit network interface, which then
        // carries the subnet and group too.
        let (subnet, groups, interfaces) = if launch.public_address {
            let interface = InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(&launch.subnet)
                .groups(&launch.security_group)
                .associate_public_ip_address(true)
                .delete_on_termination(true)
                .build();
            (None, None, Some(vec![interface]))
        } else {
            (Some(launch.subnet.clone()), Some(vec![launch.security_group.clone()]), None)
        };
        let root = launch.root_volume.as_ref().map(|root| {
            let ebs = EbsBlockDevice::builder()
                .volume_size(root.size_gib as i32)
                .volume_type(VolumeType::Gp3)
                .delete_on_termination(true)
                .build();
            vec![BlockDeviceMapping::builder().device_name(&root.name).ebs(ebs).build()]
        });
        let out = self
            .policy()
            .run(true, || async {
                ec2.run_instances()
                    .image_id(&launch.image_id)
                    .instance_type(InstanceType::from(launch.instance_type.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .set_subnet_id(subnet.clone())
                    .set_security_group_ids(groups.clone())
                    .set_network_interfaces(interfaces.clone())
                    .set_block_device_mappings(root.clone())
                    .user_data(&user_data)
                    .metadata_options(metadata.clone())
                    .instance_initiated_shutdown_behavior(shutdown.clone())
                    .set_instance_market_options(market.clone())
                    .tag_specifications(tag_spec(ResourceType::Instance, &launch.tags))
                    .client_token(&launch.client_token)
                    .send()
                    .await
                    .map_err(|e| sdk_error("RunInstances", region, e))
            })
            .await?;
        Ok(out.instances().first().and_then(|i| i.instance_id.clone()).unwrap_or_default())
    }

    pub(super) async fn attach(
        &self,
        region: &str,
        volume: &str,
        instance: &str,
        device: &str,
    ) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let result = self
            .policy()
            .run(true, || async {
                ec2.attach_volume()
                    .volume_id(volume)
                    .instance_id(instance)
                    .device(device)
                    .send()
                    .await
                    .map_err(|e| sdk_error("AttachVolume", region, e).on(volume))
            })
            .await;
        match result {
            // Already attached to this helper: a re-run after a crash.
            Err(e)
                if e.code.as_deref() == Some("VolumeInUse")
                    && self.attached_to(region, volume).await? == Some(instance.to_string()) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn attached_to(&self, region: &str, volume: &str) -> Result<Option<String>, CloudError> {
        let out = self
            .ec2(region)
            .describe_volumes()
            .volume_ids(volume)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeVolumes", region, e).on(volume))?;
        Ok(out.volumes().first().and_then(|v| v.attachments().first()).and_then(|a| a.instance_id.clone()))
    }

    pub(super) async fn instance_state(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .policy()
            .run(true, || async {
                ec2.describe_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeInstances", region, e).on(id))
            })
            .await?;
        let instance = out.reservations().iter().flat_map(|r| r.instances()).next().ok_or_else(|| {
            CloudError::new(
                "DescribeInstances",
                region,
                Some("InvalidInstanceID.NotFound".into()),
                format!("{id} does not exist"),
            )
            .on(id)
        })?;
        Ok(ResourceStatus {
            state: instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
            reason: instance.state_reason().and_then(|r| r.message.clone()),
            snapshot_ids: vec![],
        })
    }

    /// The instance's console. Without `Latest`, EC2 answers only what it buffered at the last
    /// state transition, posted some time after it: a running job's lines are not there, and a
    /// stopped helper's appear late. `Latest` gives the live serial output, but only on Nitro
    /// instance types; where EC2 refuses it, this falls back to the buffered output for that
    /// instance from then on.
    pub(super) async fn console(&self, region: &str, id: &str) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let latest = !self.buffered_consoles.lock().expect("console set lock").contains(id);
        let read = |latest: bool| {
            let ec2 = ec2.clone();
            async move {
                self.policy()
                    .run(true, || async {
                        ec2.get_console_output()
                            .instance_id(id)
                            .latest(latest)
                            .send()
                            .await
                            .map_err(|e| sdk_error("GetConsoleOutput", region, e).on(id))
                    })
                    .await
            }
        };
        let out = match read(latest).await {
            Err(e) if latest && e.class == ErrorClass::Fatal && LIVE_CONSOLE_REFUSED.contains(&e.code.as_deref()) => {
                tracing::debug!(instance = id, error = %e, "no live console: reading the buffered one");
                self.buffered_consoles.lock().expect("console set lock").insert(id.to_string());
                read(false).await?
            }
            other => other?,
        };
        let encoded = out.output().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub(super) async fn encrypted_copy(
        &self,
        region: &str,
        source: &str,
        kms_key: Option<&str>,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .policy()
            .run(true, || async {
                ec2.copy_snapshot()
                    .source_region(region)
                    .source_snapshot_id(source)
                    .encrypted(true)
                    .set_kms_key_id(kms_key.map(str::to_string))
                    .description(description)
                    .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
                    .send()
                    .await
                    .map_err(|e| sdk_error("CopySnapshot", region, e).on(source))
            })
            .await?;
        Ok(out.snapshot_id.unwrap_or_default())
    }

    pub(super) async fn snapshot_of(
        &self,
        region: &str,
        volume: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let of_volume = Filter::builder().name("volume-id").values(volume).build();
        self.create_once(region, ResourceKind::Snapshot, tags, Some(of_volume), || async {
            let out = ec2
                .create_snapshot()
                .volume_id(volume)
                .description(description)
                .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
                .send()
                .await
                .map_err(|e| sdk_error("CreateSnapshot", region, e).on(volume))?;
            Ok(out.snapshot_id.unwrap_or_default())
        })
        .await
    }

    /// Runs a create whose API takes no client token. Its answer may be lost after AWS made the
    /// resource; a plain retry would make a second one. So before every retry, look for what it
    /// would have made (by its `amiplan:node` tag, set at creation, and `extra`) and adopt that.
    async fn create_once<F, Fut>(
        &self,
        region: &str,
        kind: ResourceKind,
        tags: &BTreeMap<String, String>,
        extra: Option<Filter>,
        mut create: F,
    ) -> Result<String, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<String, CloudError>>,
    {
        let policy = self.policy();
        let started = tokio::time::Instant::now();
        let mut attempt = 1;
        let mut transient_failures = 0;
        loop {
            if attempt > 1
                && let Some(node) = tags.get(tags::NODE)
                && let Some(id) = self.find_by_node(region, kind, node, extra.clone()).await?
            {
                tracing::debug!(%id, node, "adopted what a create whose answer was lost made");
                return Ok(id);
            }
            match create().await {
                Ok(id) => return Ok(id),
                Err(error) => {
                    if error.class == ErrorClass::Transient {
                        transient_failures += 1;
                    }
                    if !policy.should_retry(&error, transient_failures, started.elapsed(), true) {
                        return Err(error);
                    }
                    tracing::debug!(%error, attempt, "retrying a create");
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// The resource of `kind` tagged for `node` (and matching `extra`), if any.
    async fn find_by_node(
        &self,
        region: &str,
        kind: ResourceKind,
        node: &str,
        extra: Option<Filter>,
    ) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let mut filters = vec![Filter::builder().name(format!("tag:{}", tags::NODE)).values(node).build()];
        filters.extend(extra);
        let filters = Some(filters);
        self.policy()
            .run(false, || async {
                let id = match kind {
                    ResourceKind::Vpc => ec2
                        .describe_vpcs()
                        .set_filters(filters.clone())
                        .send()
                        .await
                        .map(|o| o.vpcs().first().and_then(|v| v.vpc_id.clone()))
                        .map_err(|e| sdk_error("DescribeVpcs", region, e)),
                    ResourceKind::Subnet => ec2
                        .describe_subnets()
                        .set_filters(filters.clone())
                        .send()
                        .await
                        .map(|o| o.subnets().first().and_then(|v| v.subnet_id.clone()))
                        .map_err(|e| sdk_error("DescribeSubnets", region, e)),
                    ResourceKind::InternetGateway => ec2
                        .describe_internet_gateways()
                        .set_filters(filters.clone())
                        .send()
                        .await
                        .map(|o| o.internet_gateways().first().and_then(|v| v.internet_gateway_id.clone()))
                        .map_err(|e| sdk_error("DescribeInternetGateways", region, e)),
                    ResourceKind::SecurityGroup => ec2
                        .describe_security_groups()
                        .set_filters(filters.clone())
                        .send()
                        .await
                        .map(|o| o.security_groups().first().and_then(|v| v.group_id.clone()))
                        .map_err(|e| sdk_error("DescribeSecurityGroups", region, e)),
                    ResourceKind::Snapshot => ec2
                        .describe_snapshots()
                        .owner_ids("self")
                        .set_filters(filters.clone())
                        .send()
                        .await
                        .map(|o| o.snapshots().first().and_then(|v| v.snapshot_id.clone()))
                        .map_err(|e| sdk_error("DescribeSnapshots", region, e)),
                    _ => Ok(None),
                }?;
                Ok(id)
            })
            .await
    }

    async fn group_named(&self, region: &str, vpc: &str, name: &str) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .policy()
            .run(false, || async {
                ec2.describe_security_groups()
                    .filters(Filter::builder().name("group-name").values(name).build())
                    .filters(Filter::builder().name("vpc-id").values(vpc).build())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeSecurityGroups", region, e))
            })
            .await?;
        Ok(out.security_groups().first().and_then(|g| g.group_id.clone()))
    }

    pub(super) async fn delete_transient(&self, region: &str, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let policy = self.policy();
        let result = match kind {
            ResourceKind::Instance => {
                policy
                    .run(false, || async {
                        ec2.terminate_instances()
                            .instance_ids(id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("TerminateInstances", region, e).on(id))
                    })
                    .await
            }
            ResourceKind::Volume => {
                policy
                    .run(false, || async {
                        ec2.delete_volume()
                            .volume_id(id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("DeleteVolume", region, e).on(id))
                    })
                    .await
            }
            ResourceKind::SecurityGroup => {
                policy
                    .run(false, || async {
                        ec2.delete_security_group()
                            .group_id(id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("DeleteSecurityGroup", region, e).on(id))
                    })
                    .await
            }
            ResourceKind::RouteTable => self.delete_route_table(region, id).await,
            ResourceKind::InternetGateway => self.delete_gateway(region, id).await,
            ResourceKind::Subnet => {
                policy
                    .run(false, || async {
                        ec2.delete_subnet()
                            .subnet_id(id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("DeleteSubnet", region, e).on(id))
                    })
                    .await
            }
            ResourceKind::Vpc => {
                policy
                    .run(false, || async {
                        ec2.delete_vpc()
                            .vpc_id(id)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("DeleteVpc", region, e).on(id))
                    })
                    .await
            }
            ResourceKind::Image | ResourceKind::Snapshot => {
                return Err(CloudError::new("Delete", region, None, format!("{id} is not a build resource")));
            }
        };
        ignore_not_found(result)
    }

    async fn delete_route_table(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let policy = self.policy();
        let out = policy
            .run(false, || async {
                ec2.describe_route_tables()
                    .route_table_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeRouteTables", region, e).on(id))
            })
            .await?;
        let associations: Vec<String> = out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .filter(|a| a.main != Some(true))
            .filter_map(|a| a.route_table_association_id.clone())
            .collect();
        for association in &associations {
            ignore_not_found(
                policy
                    .run(false, || async {
                        ec2.disassociate_route_table()
                            .association_id(association)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("DisassociateRouteTable", region, e).on(id))
                    })
                    .await,
            )?;
        }
        policy
            .run(false, || async {
                ec2.delete_route_table()
                    .route_table_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("DeleteRouteTable", region, e).on(id))
            })
            .await
    }

    async fn delete_gateway(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let policy = self.policy();
        let out = policy
            .run(false, || async {
                ec2.describe_internet_gateways()
                    .internet_gateway_ids(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeInternetGateways", region, e).on(id))
            })
            .await?;
        let vpcs: Vec<String> =
            out.internet_gateways().iter().flat_map(|g| g.attachments()).filter_map(|a| a.vpc_id.clone()).collect();
        for vpc in &vpcs {
            ignore_not_found(
                policy
                    .run(false, || async {
                        ec2.detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| sdk_error("DetachInternetGateway", region, e).on(id))
                    })
                    .await,
            )?;
        }
        policy
            .run(false, || async {
                ec2.delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| sdk_error("DeleteInternetGateway", region, e).on(id))
            })
            .await
    }
}
