//! What helper builds and boot tests run on: the target volume, the instance, its console, and
//! the teardown of every transient resource (the network's own calls are in `network`).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, InstanceInterruptionBehavior, InstanceMarketOptionsRequest,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType,
    MarketType, ResourceType, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, VolumeType,
};
use base64::Engine as _;

use super::{AwsCloud, Missing, missing, states, tag_spec};
use crate::cloud::{
    BuildHosts, BuildResource, CloudError, ErrorClass, HelperLaunch, Placement, ResourceKind, ResourceStatus,
};

/// Codes with which EC2 may refuse `Latest` console output on a non-Nitro instance type.
const LIVE_CONSOLE_REFUSED: &[Option<&str>] = &[
    Some("UnsupportedOperation"),
    Some("InvalidParameterCombination"),
    Some("InvalidParameter"),
    Some("InvalidParameterValue"),
];

impl AwsCloud {
    async fn create_volume(
        &self,
        region: &str,
        resource: (&str, u32, crate::cloud::VolumeType),
        (encrypted, kms_key): (bool, Option<&str>),
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> Result<String, CloudError> {
        let (availability_zone, size_gib, volume_type) = resource;
        let ec2 = self.ec2(region);
        let out = self
            .call("CreateVolume", region)
            .send(|| {
                ec2.create_volume()
                    .availability_zone(availability_zone)
                    .size(size_gib as i32)
                    .volume_type(VolumeType::from(volume_type.as_str()))
                    .encrypted(encrypted)
                    .set_kms_key_id(kms_key.map(str::to_string))
                    .tag_specifications(tag_spec(ResourceType::Volume, tags))
                    .client_token(client_token)
                    .send()
            })
            .await?;
        Ok(out.volume_id.unwrap_or_default())
    }

    async fn attached_to(&self, region: &str, volume: &str) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeVolumes", region)
            .on(volume)
            .send(|| ec2.describe_volumes().volume_ids(volume).send())
            .await?;
        Ok(out.volumes().first().and_then(|v| v.attachments().first()).and_then(|a| a.instance_id.clone()))
    }
}

impl BuildHosts for AwsCloud {
    async fn default_subnet(&self, region: &str, zones: &[String]) -> Result<Option<String>, CloudError> {
        self.first_default_subnet(region, zones).await
    }

    async fn subnet_placement(&self, region: &str, subnet: &str) -> Result<Placement, CloudError> {
        self.placement_of(region, subnet).await
    }

    async fn create_build_resource(
        &self,
        region: &str,
        resource: &BuildResource,
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> Result<String, CloudError> {
        match resource {
            BuildResource::Vpc { cidr } => self.create_vpc(region, cidr, tags).await,
            BuildResource::Subnet { vpc, cidr, availability_zone } => {
                self.create_subnet(region, vpc, cidr, availability_zone.as_deref(), tags).await
            }
            BuildResource::InternetGateway { vpc } => self.create_gateway(region, vpc, tags).await,
            BuildResource::RouteTable { vpc, subnet, gateway } => {
                self.create_routes(region, (vpc, subnet, gateway), tags, client_token).await
            }
            BuildResource::SecurityGroup { vpc, name, description } => {
                self.create_group(region, (vpc, name, description), tags).await
            }
            BuildResource::Volume { availability_zone, size_gib, volume_type, encrypted, kms_key } => {
                let volume = (availability_zone.as_str(), *size_gib, *volume_type);
                self.create_volume(region, volume, (*encrypted, kms_key.as_deref()), tags, client_token).await
            }
        }
    }

    async fn launch_helper(&self, region: &str, launch: &HelperLaunch) -> Result<String, CloudError> {
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
        let request = ec2
            .run_instances()
            .image_id(&launch.image_id)
            .instance_type(InstanceType::from(launch.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_subnet_id(subnet)
            .set_security_group_ids(groups)
            .set_network_interfaces(interfaces)
            .set_block_device_mappings(root)
            .user_data(&user_data)
            .metadata_options(metadata)
            .instance_initiated_shutdown_behavior(shutdown)
            .set_instance_market_options(market)
            .tag_specifications(tag_spec(ResourceType::Instance, &launch.tags))
            .client_token(&launch.client_token);
        let out = self.call("RunInstances", region).fresh().send(|| request.clone().send()).await?;
        Ok(out.instances().first().and_then(|i| i.instance_id.clone()).unwrap_or_default())
    }

    async fn attach_volume(&self, region: &str, volume: &str, instance: &str, device: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let result = self
            .call("AttachVolume", region)
            .on(volume)
            .fresh()
            .send(|| ec2.attach_volume().volume_id(volume).instance_id(instance).device(device).send())
            .await;
        match result {
            // Already attached to this helper: a re-run after a crash.
            Err(e)
                if e.class == ErrorClass::InUse
                    && self.attached_to(region, volume).await? == Some(instance.to_string()) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn instance_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeInstances", region)
            .on(id)
            .fresh()
            .send(|| ec2.describe_instances().instance_ids(id).send())
            .await?;
        let instance = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .next()
            .ok_or_else(|| missing("DescribeInstances", region, "InvalidInstanceID.NotFound", id))?;
        Ok(ResourceStatus {
            state: states::instance(instance.state().and_then(|s| s.name()).map(|n| n.as_str()).unwrap_or_default()),
            reason: instance.state_reason().and_then(|r| r.message.clone()),
            snapshot_ids: vec![],
            deprecation: None,
            progress: None,
        })
    }

    /// The instance's console. Without `Latest`, EC2 answers only what it buffered at the last
    /// state transition, posted some time after it: a running job's lines are not there, and a
    /// stopped helper's appear late. `Latest` gives the live serial output, but only on Nitro
    /// instance types; where EC2 refuses it, this falls back to the buffered output for that
    /// instance from then on.
    async fn console_output(&self, region: &str, id: &str) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let latest = !self.buffered_consoles.lock().expect("console set lock").contains(id);
        let read = |latest: bool| {
            let ec2 = ec2.clone();
            async move {
                self.call("GetConsoleOutput", region)
                    .on(id)
                    .fresh()
                    .send(|| ec2.get_console_output().instance_id(id).latest(latest).send())
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

    async fn delete_build_resource(&self, region: &str, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        match kind {
            ResourceKind::Instance => {
                let call = self.call("TerminateInstances", region).on(id);
                call.send(|| ec2.terminate_instances().instance_ids(id).send()).await.or_gone()
            }
            ResourceKind::Volume => self
                .call("DeleteVolume", region)
                .on(id)
                .send(|| ec2.delete_volume().volume_id(id).send())
                .await
                .or_gone(),
            ResourceKind::SecurityGroup => {
                let call = self.call("DeleteSecurityGroup", region).on(id);
                call.send(|| ec2.delete_security_group().group_id(id).send()).await.or_gone()
            }
            ResourceKind::RouteTable => self.delete_route_table(region, id).await,
            ResourceKind::InternetGateway => self.delete_gateway(region, id).await,
            ResourceKind::Subnet => self
                .call("DeleteSubnet", region)
                .on(id)
                .send(|| ec2.delete_subnet().subnet_id(id).send())
                .await
                .or_gone(),
            ResourceKind::Vpc => {
                self.call("DeleteVpc", region).on(id).send(|| ec2.delete_vpc().vpc_id(id).send()).await.or_gone()
            }
            ResourceKind::Image | ResourceKind::Snapshot | ResourceKind::Parameter | ResourceKind::CatalogFiles => {
                Err(CloudError::new("Delete", region, ErrorClass::Fatal, format!("{id} is not a build resource")))
            }
        }
    }
}
