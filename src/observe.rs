//! The only read of live state: one discovery per region, all regions concurrently, folded into
//! plain data the planner can judge without a client.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cloud::{Cloud, CloudError, DiscoveryQuery};
use crate::graph::{DesiredGraph, Work};
use crate::manifest::raw::HelperAmi;
use crate::tags;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Image,
    Snapshot,
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Volume,
    Instance,
}

/// An AMI, snapshot or transient build resource as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LiveResource {
    pub region: String,
    pub kind: ResourceKind,
    pub id: String,
    pub name: Option<String>,
    pub state: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub public: bool,
    /// For AMIs: the snapshots behind their block devices.
    pub snapshot_ids: Vec<String>,
    /// Creation time as AWS reports it (ISO 8601), for choosing among duplicates.
    pub created: Option<String>,
}

impl LiveResource {
    pub fn stack(&self) -> Option<&str> {
        self.tags.get(tags::STACK).map(String::as_str)
    }

    pub fn node(&self) -> Option<&str> {
        self.tags.get(tags::NODE).map(String::as_str)
    }
}

/// Live state of every region a set of stacks may own resources in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observed {
    pub account: String,
    pub regions: Vec<String>,
    pub resources: Vec<LiveResource>,
    /// Helper AMI filters resolved to the newest match: `owner=… name=…@region` → AMI ID.
    #[serde(default)]
    pub helper_amis: BTreeMap<String, String>,
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
    let queries = regions.iter().map(|region| {
        let mut image_names: Vec<String> =
            graph.nodes().filter(|n| &n.region == region).filter_map(|n| n.name.clone()).collect();
        image_names.sort();
        image_names.dedup();
        let build_resources = graph.nodes().any(|n| &n.region == region && n.kind.is_transient());
        let query = DiscoveryQuery { stacks: stacks.to_vec(), image_names, build_resources };
        async move { cloud.discover(region, &query).await }
    });
    let filters = graph.nodes().filter_map(|node| match &node.work {
        Work::Helper { ami: HelperAmi::Filter(filter), .. } => Some((node.region.clone(), filter.clone())),
        _ => None,
    });
    let resolutions = filters.map(|(region, filter)| async move {
        let found = cloud.newest_image(&region, &filter.owner, &filter.name).await?;
        let selector = format!("owner={} name={}", filter.owner, filter.name);
        Ok::<_, CloudError>(found.map(|id| (helper_ami_key(&selector, &region), id)))
    });
    let (found, resolved) = futures::future::try_join(try_join_all(queries), try_join_all(resolutions)).await?;
    let mut resources: Vec<LiveResource> = found.into_iter().flatten().collect();
    resources.sort();
    resources.dedup_by(|a, b| a.region == b.region && a.id == b.id);
    let helper_amis = resolved.into_iter().flatten().collect();
    Ok(Observed { account, regions, resources, helper_amis })
}
