//! Finding what exists: one paginated, tag-filtered Describe per kind per region. The same
//! Describe finds what a create whose answer was lost made (by its `amiplan:node` tag).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{AttachmentStatus, Filter, Image, InternetGateway, RouteTable, Snapshot, Subnet, Volume, Vpc};
use aws_smithy_types::date_time::Format;

use super::{AwsCloud, Missing, states, tag_map};
use crate::cloud::{
    CloudError, Discovery, DiscoveryQuery, ExistingSubnet, LiveResource, ResourceKind, RouteOut, State, tags,
};

/// States in which an instance still exists for planning purposes: a terminated helper is gone.
const LIVE_INSTANCE_STATES: &[&str] = &["pending", "running", "stopping", "stopped"];

/// The kinds of transient build resource, each found with one Describe.
const BUILD_KINDS: [ResourceKind; 7] = [
    ResourceKind::Instance,
    ResourceKind::Vpc,
    ResourceKind::Subnet,
    ResourceKind::InternetGateway,
    ResourceKind::RouteTable,
    ResourceKind::SecurityGroup,
    ResourceKind::Volume,
];

pub(super) fn live_image(region: &str, image: &Image) -> LiveResource {
    LiveResource {
        region: region.to_string(),
        kind: ResourceKind::Image,
        id: image.image_id.clone().unwrap_or_default(),
        name: image.name.clone(),
        state: states::image(image.state.as_ref().map(|s| s.as_str()).unwrap_or_default()),
        description: image.description.clone().filter(|d| !d.is_empty()),
        tags: tag_map(image.tags()),
        public: image.public.unwrap_or(false),
        snapshot_ids: image_snapshots(image),
        created: image.creation_date.clone(),
        deprecation: image.deprecation_time.clone(),
        protection: states::protection(image.deregistration_protection.as_deref()),
        sharing: None,
        snapshot_sharing: vec![],
        value: None,
        files: BTreeMap::new(),
        size_bytes: None,
    }
}

pub(super) fn image_snapshots(image: &Image) -> Vec<String> {
    image.block_device_mappings().iter().filter_map(|m| m.ebs.as_ref()?.snapshot_id.clone()).collect()
}

fn live_snapshot(region: &str, snapshot: &Snapshot) -> LiveResource {
    LiveResource {
        region: region.to_string(),
        kind: ResourceKind::Snapshot,
        id: snapshot.snapshot_id.clone().unwrap_or_default(),
        name: None,
        state: states::snapshot(snapshot.state.as_ref().map(|s| s.as_str()).unwrap_or_default()),
        description: snapshot.description.clone().filter(|d| !d.is_empty()),
        tags: tag_map(snapshot.tags()),
        public: false,
        snapshot_ids: vec![],
        created: snapshot.start_time.and_then(|t| t.fmt(Format::DateTime).ok()),
        deprecation: None,
        protection: Default::default(),
        sharing: None,
        snapshot_sharing: vec![],
        value: None,
        files: BTreeMap::new(),
        size_bytes: snapshot
            .full_snapshot_size_in_bytes()
            .and_then(|bytes| u64::try_from(bytes).ok())
            .or_else(|| snapshot.volume_size().and_then(|gib| u64::try_from(gib).ok()).map(|gib| gib << 30)),
    }
}

impl AwsCloud {
    /// Owned AMIs matching `filters`, every page, disabled ones included: EC2 leaves them out
    /// unless asked (DisableImage), yet they keep their names and snapshots, and destroy must
    /// find them.
    pub(super) async fn describe_images(&self, region: &str, filters: Vec<Filter>) -> Result<Vec<Image>, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2.describe_images().owners("self").include_disabled(true);
        describe!(self, region, "DescribeImages", request, filters).await
    }

    /// Every resource of `kind` matching `filters` (a tag filter, at least), as live resources.
    pub(super) async fn describe_kind(
        &self,
        region: &str,
        kind: ResourceKind,
        mut filters: Vec<Filter>,
    ) -> Result<Vec<LiveResource>, CloudError> {
        let ec2 = self.ec2(region);
        let live =
            |id: Option<&str>, state: State, tags| LiveResource::new(region, kind, id.unwrap_or_default(), state, tags);
        let word = |state: Option<&str>| state.unwrap_or_default().to_string();
        Ok(match kind {
            ResourceKind::Image => {
                let found = self.describe_images(region, filters).await?;
                found.iter().map(|i| live_image(region, i)).collect()
            }
            ResourceKind::Snapshot => {
                let request = ec2.describe_snapshots().owner_ids("self");
                let found = describe!(self, region, "DescribeSnapshots", request, filters).await?;
                found.iter().map(|s| live_snapshot(region, s)).collect()
            }
            ResourceKind::Instance => {
                let alive = LIVE_INSTANCE_STATES.iter().map(|s| s.to_string()).collect();
                filters.push(Filter::builder().name("instance-state-name").set_values(Some(alive)).build());
                let found = describe!(self, region, "DescribeInstances", ec2.describe_instances(), filters).await?;
                let instances = found.iter().flat_map(|r| r.instances());
                instances
                    .map(|i| {
                        let state = states::instance(&word(i.state().and_then(|s| s.name()).map(|n| n.as_str())));
                        let mut found = live(i.instance_id(), state, tag_map(i.tags()));
                        found.created = i.launch_time().map(|t| t.to_string());
                        found
                    })
                    .collect()
            }
            ResourceKind::Vpc => {
                let found = describe!(self, region, "DescribeVpcs", ec2.describe_vpcs(), filters).await?;
                let state = |v: &Vpc| states::network(&word(v.state().map(|s| s.as_str())));
                found.iter().map(|v| live(v.vpc_id(), state(v), tag_map(v.tags()))).collect()
            }
            ResourceKind::Subnet => {
                let found = describe!(self, region, "DescribeSubnets", ec2.describe_subnets(), filters).await?;
                let state = |s: &Subnet| states::network(&word(s.state().map(|s| s.as_str())));
                found.iter().map(|s| live(s.subnet_id(), state(s), tag_map(s.tags()))).collect()
            }
            ResourceKind::InternetGateway => {
                let request = ec2.describe_internet_gateways();
                let found = describe!(self, region, "DescribeInternetGateways", request, filters).await?;
                // A gateway made by a run that stopped before attaching it is of no use: say so.
                let state = |g: &InternetGateway| {
                    let attached = g.attachments().iter().any(|a| {
                        matches!(a.state(), Some(AttachmentStatus::Attached) | Some(AttachmentStatus::Attaching))
                            || a.state().map(|s| s.as_str()) == Some("available")
                    });
                    if attached { State::Ready } else { State::Detached }
                };
                found.iter().map(|g| live(g.internet_gateway_id(), state(g), tag_map(g.tags()))).collect()
            }
            ResourceKind::RouteTable => {
                let request = ec2.describe_route_tables();
                let found = describe!(self, region, "DescribeRouteTables", request, filters).await?;
                // Likewise a route table without its default route or its subnet.
                let state = |t: &RouteTable| {
                    let routed = t.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
                    let associated = t.associations().iter().any(|a| a.main != Some(true) && a.subnet_id.is_some());
                    if routed && associated { State::Ready } else { State::Incomplete }
                };
                found.iter().map(|t| live(t.route_table_id(), state(t), tag_map(t.tags()))).collect()
            }
            ResourceKind::SecurityGroup => {
                let request = ec2.describe_security_groups();
                let found = describe!(self, region, "DescribeSecurityGroups", request, filters).await?;
                found.iter().map(|g| live(g.group_id(), State::Ready, tag_map(g.tags()))).collect()
            }
            ResourceKind::Volume => {
                let found = describe!(self, region, "DescribeVolumes", ec2.describe_volumes(), filters).await?;
                let state = |v: &Volume| states::volume(&word(v.state().map(|s| s.as_str())));
                found.iter().map(|v| live(v.volume_id(), state(v), tag_map(v.tags()))).collect()
            }
            // Not EC2 resources: found by `discover_parameters`, and by one listing per bucket
            // prefix.
            ResourceKind::Parameter | ResourceKind::CatalogFiles => vec![],
        })
    }

    /// The resource of `kind` tagged for `node` (and matching `extra`), if any.
    pub(super) async fn find_by_node(
        &self,
        region: &str,
        kind: ResourceKind,
        node: &str,
        extra: Option<Filter>,
    ) -> Result<Option<String>, CloudError> {
        let mut filters = vec![Filter::builder().name(format!("tag:{}", tags::NODE)).values(node).build()];
        filters.extend(extra);
        let found = self.describe_kind(region, kind, filters).await?;
        Ok(found.into_iter().next().map(|live| live.id))
    }
}

impl Discovery for AwsCloud {
    async fn discover(&self, region: &str, query: &DiscoveryQuery) -> Result<Vec<LiveResource>, CloudError> {
        if query.stacks.is_empty() && query.image_names.is_empty() && query.parameter_names.is_empty() {
            return Ok(vec![]);
        }
        // Every stack's images, snapshots and build resources, not only those of `stacks`:
        // stacks no manifest declares any more are reported, and pruned when asked.
        let by_stack = || vec![Filter::builder().name("tag-key").values(tags::STACK).build()];
        let mut kinds = vec![];
        if !query.stacks.is_empty() {
            kinds.extend([ResourceKind::Image, ResourceKind::Snapshot]);
            if query.build_resources {
                kinds.extend(BUILD_KINDS);
            }
        }
        // Every listing is independent: one round trip per region, not one per kind.
        let tagged =
            futures::future::try_join_all(kinds.into_iter().map(|kind| self.describe_kind(region, kind, by_stack())));
        // EC2 accepts up to 200 values per filter.
        let named = futures::future::try_join_all(query.image_names.chunks(200).map(|names| {
            let by_name = Filter::builder().name("name").set_values(Some(names.to_vec())).build();
            self.describe_kind(region, ResourceKind::Image, vec![by_name])
        }));
        let parameters = self.discover_parameters(region, &query.stacks, &query.parameter_names);
        let (tagged, named, parameters) = futures::try_join!(tagged, named, parameters)?;
        Ok(tagged.into_iter().chain(named).flatten().chain(parameters).collect())
    }

    async fn stack_images(&self, region: &str, stacks: &[String]) -> Result<Vec<LiveResource>, CloudError> {
        let by_stack = Filter::builder().name(format!("tag:{}", tags::STACK)).set_values(Some(stacks.to_vec())).build();
        self.describe_kind(region, ResourceKind::Image, vec![by_stack]).await
    }

    async fn launch_template_images(&self, region: &str) -> Result<BTreeMap<String, String>, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2.describe_launch_template_versions().versions("$Latest").versions("$Default");
        let versions = describe!(self, region, "DescribeLaunchTemplateVersions", request, vec![]).await?;
        Ok(versions
            .iter()
            .filter_map(|v| {
                let image = v.launch_template_data()?.image_id()?;
                Some((image.to_string(), v.launch_template_name().unwrap_or_default().to_string()))
            })
            .collect())
    }

    async fn newest_image(&self, region: &str, owner: &str, pattern: &str) -> Result<Option<String>, CloudError> {
        let ec2 = self.ec2(region);
        let by_name = Filter::builder().name("name").values(pattern).build();
        let images =
            describe!(self, region, "DescribeImages", ec2.describe_images().owners(owner), vec![by_name]).await?;
        let newest =
            images.iter().max_by(|a, b| (a.creation_date(), a.image_id()).cmp(&(b.creation_date(), b.image_id())));
        Ok(newest.and_then(|image| image.image_id.clone()))
    }

    /// The subnet's zone and the target of its default route (its own route table's, or the
    /// VPC's main one's), if it leads out; `None` when the subnet does not exist.
    async fn existing_subnet(&self, region: &str, subnet: &str) -> Result<Option<ExistingSubnet>, CloudError> {
        let ec2 = self.ec2(region);
        let described = self
            .call("DescribeSubnets", region)
            .on(subnet)
            .send(|| ec2.describe_subnets().subnet_ids(subnet).send())
            .await
            .or_none()?;
        let Some(found) = described.as_ref().and_then(|d| d.subnets().first()) else { return Ok(None) };
        let vpc = found.vpc_id.clone().unwrap_or_default();
        let availability_zone = found.availability_zone.clone().unwrap_or_default();
        let tables = |filters: Vec<Filter>| {
            let ec2 = ec2.clone();
            async move { describe!(self, region, "DescribeRouteTables", ec2.describe_route_tables(), filters).await }
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
        let attached = Filter::builder().name("attachment.vpc-id").values(&vpc).build();
        let gateways = self
            .call("DescribeInternetGateways", region)
            .send(|| ec2.describe_internet_gateways().filters(attached.clone()).send())
            .await?;
        let attached: Vec<&str> = gateways.internet_gateways().iter().filter_map(|g| g.internet_gateway_id()).collect();
        let route_out = found_tables
            .iter()
            .flat_map(|t| t.routes())
            .filter(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .find_map(|r| match (r.gateway_id(), r.nat_gateway_id()) {
                (Some(gateway), _) if attached.contains(&gateway) => {
                    Some(RouteOut::InternetGateway(gateway.to_string()))
                }
                (_, Some(nat)) => Some(RouteOut::Nat(nat.to_string())),
                _ => None,
            });
        Ok(Some(ExistingSubnet { availability_zone, route_out }))
    }
}
