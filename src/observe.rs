//! The only read of live state: one discovery per region, all regions concurrently, folded into
//! plain data the planner can judge without a client.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};

use futures::future::{join_all, try_join_all};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cloud::{
    Cloud, CloudError, DiscoveryQuery, ErrorClass, InstanceTypeTraits, LiveResource, PublicAccess, Quota, ResourceKind,
    RouteOut, Sharing,
};
use crate::graph::{DesiredGraph, NodeKind};
use crate::manifest::raw::HelperAmi;
use crate::resource::catalog_files::{self, CatalogFiles};
use crate::resource::public_access::PublicImages;
use crate::resource::{Node, Spec, helper, parameter};
use crate::tags;

/// Live state of every region a set of stacks may own resources in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observed {
    pub account: String,
    pub regions: Vec<String>,
    pub resources: Vec<LiveResource>,
    /// Whole-file SHA-256 of stacks' sources, by stack, where resources tagged with that older
    /// digest form were found (see `Workspace::observe`).
    #[serde(default)]
    pub older_digests: BTreeMap<String, String>,
    /// Helper AMI filters resolved to the newest match: `owner=… name=…@region` → AMI ID.
    #[serde(default)]
    pub helper_amis: BTreeMap<String, String>,
    /// Image block public access state per region with public AMIs, where AWS answers it.
    #[serde(default)]
    pub block_public_access: BTreeMap<String, PublicAccess>,
    /// Snapshot block public access state per region with public AMIs, where AWS answers it.
    #[serde(default)]
    pub snapshot_block_public_access: BTreeMap<String, PublicAccess>,
    /// The account's public AMIs and their quota, per region with public AMIs.
    #[serde(default)]
    pub public_images: BTreeMap<String, PublicImages>,
    /// Per region, AMIs launch templates use (→ template name), read where a plan may
    /// deregister owned AMIs that no node wants.
    #[serde(default)]
    pub launch_templates: BTreeMap<String, BTreeMap<String, String>>,
    /// For each existing subnet a helper runs in (`subnet@region`): where its default route
    /// leads out (an internet or NAT gateway), or `None` when it leads nowhere.
    #[serde(default)]
    pub routes_out: BTreeMap<String, Option<RouteOut>>,
    /// Availability Zones offering each instance type a helper or boot test uses
    /// (`type@region`), and the zone of each existing subnet they run in (`subnet@region`).
    #[serde(default)]
    pub zones: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub subnet_zones: BTreeMap<String, String>,
    /// What each boot test's instance type launches (`type@region`), where EC2 knows the type.
    #[serde(default)]
    pub instance_types: BTreeMap<String, InstanceTypeTraits>,
    /// Regions where the account encrypts every new volume and snapshot by default, among the
    /// regions of unencrypted AMIs that are to be shared.
    #[serde(default)]
    pub encrypted_by_default: BTreeSet<String>,
    /// VPCs per region where a helper build makes a temporary one (against the quota).
    #[serde(default)]
    pub vpc_counts: BTreeMap<String, usize>,
    /// The account's VPC quota in those regions, where Service Quotas answers.
    #[serde(default)]
    pub vpc_quotas: BTreeMap<String, u32>,
    /// The account's "AMI sharing" quota, where Service Quotas answers, in regions where an AMI
    /// is to be shared with more entities than AWS allows by default.
    #[serde(default)]
    pub sharing_quotas: BTreeMap<String, u32>,
    /// Regions skipped because access there is denied (no manifest targets them), with AWS's
    /// answer.
    #[serde(default)]
    pub denied_regions: BTreeMap<String, String>,
    /// Resources of stacks no manifest given declares (`amiplan:stack` of another value): left
    /// out of `resources` and the fingerprint, reported by plans, deleted by `--prune`.
    #[serde(default)]
    pub foreign: Vec<LiveResource>,
}

/// The key of a helper AMI selector in [`Observed::helper_amis`].
pub fn helper_ami_key(selector: &str, region: &str) -> String {
    format!("{selector}@{region}")
}

impl Observed {
    /// A digest of everything observed; a saved plan is refused when it changed.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(&(&self.resources, &self.helper_amis)).expect("live resources serialize");
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }
}

/// Launch permissions beyond the public flag can only be read one AMI at a time, so they are read
/// only for AMIs that are, or were, shared with accounts or organizations: those of stacks whose
/// manifest names anyone, and those tagged as shared by an earlier run.
async fn read_sharing<C: Cloud>(
    cloud: &C,
    graph: &DesiredGraph,
    resources: &mut [LiveResource],
) -> Result<(), CloudError> {
    let sharing_stacks: BTreeSet<&str> =
        graph.nodes().filter(|n| n.sharing.names_anyone()).map(|n| n.stack.as_str()).collect();
    let wanted = |r: &LiveResource| {
        r.kind == ResourceKind::Image
            && (r.tags.contains_key(tags::SHARED) || r.stack().is_some_and(|s| sharing_stacks.contains(s)))
    };
    let reads = resources.iter().enumerate().filter(|(_, r)| wanted(r)).map(|(index, image)| async move {
        let sharing = cloud.image_sharing(&image.region, &image.id).await?;
        let mut snapshots = Vec::new();
        for snapshot in &image.snapshot_ids {
            snapshots.push((snapshot.clone(), cloud.snapshot_sharing(&image.region, snapshot).await?));
        }
        Ok::<_, CloudError>((index, sharing, snapshots))
    });
    let read: Vec<_> = futures::stream::iter(reads).buffer_unordered(SHARING_READS).try_collect().await?;
    for (index, sharing, snapshots) in read {
        resources[index].sharing = Some(sharing);
        resources[index].snapshot_sharing = snapshots;
    }
    Ok(())
}

/// Launch templates are read only in regions with owned AMIs no node wants (older versions,
/// removed regions): the only AMIs a plan may deregister without replacing them.
async fn read_launch_templates<C: Cloud>(
    cloud: &C,
    graph: &DesiredGraph,
    resources: &[LiveResource],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, CloudError> {
    let mut regions: Vec<&str> = resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Image && r.stack().is_some())
        .filter(|r| r.node().is_none_or(|node| graph.get(node).is_none_or(|n| n.region != r.region)))
        .map(|r| r.region.as_str())
        .collect();
    regions.sort();
    regions.dedup();
    let reads = regions.into_iter().map(|region| async move {
        Ok::<_, CloudError>((region.to_string(), cloud.launch_template_images(region).await?))
    });
    Ok(try_join_all(reads).await?.into_iter().collect())
}

/// A stack's catalogue files: one listing of their prefix, then the tags of each file of the
/// stack's layout (S3 lists no tags), so that only files amiplan wrote count as its own.
async fn read_files<C: Cloud>(cloud: &C, node: &Node, spec: &CatalogFiles) -> Result<Option<LiveResource>, CloudError> {
    let listing = spec.relative(cloud.list_objects(&node.region, &spec.bucket, &spec.prefix).await?);
    let candidates = listing.into_iter().filter(|(path, _)| catalog_files::in_layout(&node.stack, path));
    let reads = candidates.map(|(path, etag)| async move {
        let key = format!("{}{path}", spec.prefix);
        let found = cloud.object_tags(&node.region, &spec.bucket, &key).await?;
        let ours = found.as_ref().and_then(|tags| tags.get(tags::NODE)) == Some(&node.id);
        Ok::<_, CloudError>(ours.then_some((path, etag)))
    });
    let owned: Vec<_> = futures::stream::iter(reads).buffer_unordered(SHARING_READS).try_collect().await?;
    Ok(catalog_files::from_listing(node, spec, owned.into_iter().flatten().collect()))
}

/// Attribute reads in flight at once: well under EC2's request rate, fast for hundreds of AMIs.
const SHARING_READS: usize = 8;

/// Which regions to look in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionScope {
    /// Every region the account has enabled: finds copies in regions removed from a manifest.
    All,
    /// Only the regions the manifests name.
    Manifest,
}

/// Discovers everything `stacks` own (and AMIs with desired names) in the regions of `scope`.
pub async fn observe<C: Cloud>(
    cloud: &C,
    graph: &DesiredGraph,
    stacks: &[String],
    scope: RegionScope,
    via_region: &str,
) -> Result<Observed, CloudError> {
    let account = cloud.account_id().await?;
    let mut regions = graph.regions();
    if scope == RegionScope::All {
        regions.extend(cloud.regions(via_region).await?);
        regions.sort();
        regions.dedup();
    }
    let targeted = graph.regions();
    let queries = regions.iter().map(|region| {
        let here = || graph.nodes().filter(|n| &n.region == region);
        let mut image_names: Vec<String> =
            here().filter(|n| n.kind().is_image()).filter_map(|n| n.name.clone()).collect();
        image_names.sort();
        image_names.dedup();
        let parameter_names = here()
            .filter_map(|n| match &n.spec {
                Spec::Parameter(parameter) => Some(parameter.name.clone()),
                _ => None,
            })
            .collect();
        let build_resources =
            graph.nodes().any(|n| &n.region == region && (n.kind().is_transient() || n.kind() == NodeKind::Test));
        let query = DiscoveryQuery { stacks: stacks.to_vec(), image_names, build_resources, parameter_names };
        let targeted = targeted.contains(region);
        async move {
            match cloud.discover(region, &query).await {
                // A region an organization policy (or IAM) denies, found only by scanning every
                // enabled region: nothing of ours can be there. Skipped, and said so.
                Err(error) if error.class == ErrorClass::Denied && !targeted => {
                    Ok((vec![], Some((region.clone(), error.to_string()))))
                }
                other => other.map(|found| (found, None)),
            }
        }
    });
    let filters = graph.nodes().filter_map(|node| match &node.spec {
        Spec::Helper(helper::Helper { ami: HelperAmi::Filter(filter), .. }) => {
            Some((node.region.clone(), filter.clone()))
        }
        _ => None,
    });
    let resolutions = filters.map(|(region, filter)| async move {
        let found = cloud.newest_image(&region, &filter.owner, &filter.name).await?;
        let selector = format!("owner={} name={}", filter.owner, filter.name);
        Ok::<_, CloudError>(found.map(|id| (helper_ami_key(&selector, &region), id)))
    });
    let mut instance_types = BTreeSet::new();
    let mut placed_subnets = BTreeSet::new();
    for node in graph.nodes() {
        if let Some((instance_type, subnet)) = node.spec.instance() {
            instance_types.insert((node.region.clone(), instance_type.to_string()));
            placed_subnets.extend(subnet.map(|s| (node.region.clone(), s.to_string())));
        }
    }
    // Boot tests launch amiplan's own AMIs, whose traits the plan knows: one read per region of
    // what their instance types launch.
    let mut test_types: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for node in graph.nodes().filter(|n| n.kind() == NodeKind::Test) {
        if let Some((instance_type, _)) = node.spec.instance() {
            test_types.entry(node.region.as_str()).or_default().push(instance_type.to_string());
        }
    }
    let traits = test_types.into_iter().map(|(region, mut types)| async move {
        types.sort();
        types.dedup();
        let found = cloud.instance_type_traits(region, &types).await?;
        Ok::<_, CloudError>(found.into_iter().map(move |(t, traits)| (helper_ami_key(&t, region), traits)))
    });
    let offerings = instance_types.iter().map(|(region, instance_type)| async move {
        let zones = cloud.instance_type_zones(region, instance_type).await?;
        Ok::<_, CloudError>((helper_ami_key(instance_type, region), zones))
    });
    // A subnet named in a manifest may not exist (any more): that is for the launch to report,
    // and must not keep `destroy` from reading what it has to remove.
    let subnet_reads = placed_subnets.iter().map(|(region, subnet)| async move {
        let found = cloud.existing_subnet(region, subnet).await?;
        Ok::<_, CloudError>(found.map(|found| (helper_ami_key(subnet, region), found)))
    });
    let ((found, resolved), (zones, subnets), traits) = futures::future::try_join3(
        futures::future::try_join(try_join_all(queries), try_join_all(resolutions)),
        futures::future::try_join(try_join_all(offerings), try_join_all(subnet_reads)),
        try_join_all(traits),
    )
    .await?;
    let subnets: Vec<(String, crate::cloud::ExistingSubnet)> = subnets.into_iter().flatten().collect();
    let routes_out = subnets.iter().map(|(key, subnet)| (key.clone(), subnet.route_out.clone())).collect();
    let subnet_zones = subnets.into_iter().map(|(key, subnet)| (key, subnet.availability_zone)).collect();
    let zones = zones.into_iter().collect();
    let type_traits = traits.into_iter().flatten().collect();

    let shared_plain: BTreeSet<&str> = graph
        .nodes()
        .filter(|n| n.sharing.public || n.sharing.names_anyone())
        .filter(|n| n.spec.ami().is_some_and(|ami| !ami.attrs.encrypted))
        .map(|n| n.region.as_str())
        .collect();
    let encrypted_by_default: BTreeSet<String> = try_join_all(shared_plain.into_iter().map(|region| async move {
        Ok::<_, CloudError>(cloud.encryption_by_default(region).await?.then(|| region.to_string()))
    }))
    .await?
    .into_iter()
    .flatten()
    .collect();
    let vpc_regions: BTreeSet<&str> =
        graph.nodes().filter(|n| n.kind() == NodeKind::Vpc).map(|n| n.region.as_str()).collect();
    let vpcs = try_join_all(vpc_regions.into_iter().map(|region| async move {
        let (count, quota) = futures::join!(cloud.vpc_count(region), cloud.quota(region, Quota::Vpcs));
        Ok::<_, CloudError>((region.to_string(), count?, quota))
    }))
    .await?;
    let vpc_counts = vpcs.iter().map(|(region, count, _)| (region.clone(), *count)).collect();
    let vpc_quotas = vpcs.into_iter().filter_map(|(region, _, quota)| Some((region, quota?))).collect();
    // The quota cannot be lowered: at or under AWS's default there is nothing to ask.
    let widely_shared: BTreeSet<&str> = graph
        .nodes()
        .filter(|n| n.kind().is_image() && n.sharing.entities() > Sharing::DEFAULT_ENTITY_QUOTA)
        .map(|n| n.region.as_str())
        .collect();
    let sharing_quotas = join_all(widely_shared.into_iter().map(|region| async move {
        cloud.quota(region, Quota::ImageSharing).await.map(|quota| (region.to_string(), quota))
    }))
    .await
    .into_iter()
    .flatten()
    .collect();

    let (found, denied): (Vec<_>, Vec<_>) = found.into_iter().unzip();
    let denied_regions: BTreeMap<String, String> = denied.into_iter().flatten().collect();
    for (region, why) in &denied_regions {
        tracing::warn!(region, %why, "region skipped: access denied");
    }
    let regions = regions.into_iter().filter(|r| !denied_regions.contains_key(r)).collect();
    let mut resources: Vec<LiveResource> = found.into_iter().flatten().collect();
    resources.sort();
    resources.dedup_by(|a, b| a.region == b.region && a.id == b.id);
    for live in resources.iter_mut().filter(|r| r.kind == ResourceKind::Parameter && r.stack().is_some()) {
        // Tagged with its node at creation; discovery reads no tags of parameters but the stack.
        live.tags.insert(tags::NODE.into(), parameter::node_id(&live.id, &live.region));
    }
    let listings = graph.nodes().filter_map(|node| match &node.spec {
        Spec::CatalogFiles(spec) => Some(read_files(cloud, node, spec)),
        _ => None,
    });
    resources.extend(try_join_all(listings).await?.into_iter().flatten());
    read_sharing(cloud, graph, &mut resources).await?;
    let helper_amis = resolved.into_iter().flatten().collect();
    // The account's settings, where a read-only node asks for them.
    let mut public_regions: Vec<&str> =
        graph.nodes().filter(|n| n.kind() == NodeKind::PublicAccess).map(|n| n.region.as_str()).collect();
    public_regions.sort();
    public_regions.dedup();
    let states = join_all(public_regions.iter().map(|region| async move {
        cloud.image_block_public_access(region).await.map(|state| (region.to_string(), state))
    }))
    .await;
    let block_public_access = states.into_iter().flatten().collect();
    let states = join_all(public_regions.iter().map(|region| async move {
        cloud.snapshot_block_public_access(region).await.map(|state| (region.to_string(), state))
    }))
    .await;
    let snapshot_block_public_access = states.into_iter().flatten().collect();
    let public_images = try_join_all(public_regions.iter().map(|region| async move {
        let (count, quota) = futures::join!(cloud.public_image_count(region), cloud.quota(region, Quota::PublicImages));
        Ok::<_, CloudError>((region.to_string(), PublicImages { count: count?, quota }))
    }))
    .await?
    .into_iter()
    .collect();
    let launch_templates = read_launch_templates(cloud, graph, &resources).await?;
    // What other stacks own is reported, or pruned when asked, but never part of this plan's
    // live state otherwise: a saved plan does not go stale when another stack changes.
    let (resources, foreign): (Vec<LiveResource>, Vec<LiveResource>) =
        resources.into_iter().partition(|live| live.stack().is_none_or(|stack| stacks.iter().any(|s| s == stack)));
    Ok(Observed {
        foreign,
        older_digests: BTreeMap::new(),
        account,
        regions,
        resources,
        helper_amis,
        block_public_access,
        snapshot_block_public_access,
        public_images,
        launch_templates,
        routes_out,
        zones,
        subnet_zones,
        instance_types: type_traits,
        vpc_counts,
        vpc_quotas,
        sharing_quotas,
        encrypted_by_default,
        denied_regions,
    })
}

/// What the catalogue is made of in `regions` (those of `graph` when empty): the stacks' AMIs,
/// and every parameter under their catalogue prefixes. One paginated DescribeImages and one
/// GetParametersByPath per prefix in each region, whatever the number of AMIs.
pub async fn catalogue_state<C: Cloud>(
    cloud: &C,
    graph: &DesiredGraph,
    stacks: &[String],
    regions: &[String],
) -> Result<Vec<LiveResource>, CloudError> {
    let regions: Vec<String> =
        graph.regions().into_iter().filter(|r| regions.is_empty() || regions.contains(r)).collect();
    let reads = regions.iter().map(|region| async move {
        let mut prefixes: Vec<&str> = graph
            .nodes()
            .filter(|n| &n.region == region)
            .filter_map(|n| graph.catalog(&n.stack).map(|(catalog, _)| catalog.prefix.as_str()))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        let parameters = try_join_all(prefixes.into_iter().map(|prefix| cloud.parameters_under(region, prefix)));
        let (images, parameters) = futures::try_join!(cloud.stack_images(region, stacks), parameters)?;
        Ok::<_, CloudError>(images.into_iter().chain(parameters.into_iter().flatten()).collect::<Vec<_>>())
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}
