//! The kinds of resource amiplan manages, one module each: its typed desired spec, and what
//! about it AWS fixes at creation (hashed into the `amiplan:spec` tag; a difference means
//! replacement).
//!
//! Everything common to all kinds is an exhaustive `match` on [`Spec`] or [`NodeKind`] in this
//! file: a new kind fails to compile until every such place says what it does.

pub mod catalog_files;
pub mod copy;
mod diff;
pub mod helper;
pub mod image;
pub mod network;
mod node;
pub mod parameter;
pub mod public_access;
mod reason;
pub mod security_group;
pub mod snapshot;
pub mod steps;
pub mod test;
pub mod volume;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cloud::Tagging;
use crate::cloud::{CloudError, LiveProtection, LiveResource, ResourceKind, State};
use crate::tags;
pub use diff::{AttrDiff, Attribute};
pub use node::{Node, spec_hash};
pub use reason::Reason;
use steps::{Inputs, Resolved, StepError, Steps, remove_build_resource};

/// What kind of AWS resource a node becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// An EBS snapshot: uploaded from the source image, or taken of a helper's target volume.
    Snapshot,
    /// An AMI registered from a snapshot in the build region.
    Image,
    /// An AMI copied from the build region's image.
    ImageCopy,
    // The transient resources of a helper build, created for it and removed after it.
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    /// The target volume the helper writes the image to.
    Volume,
    /// The helper instance.
    Helper,
    /// The boot test of an AMI: no resource of its own, recorded as a tag on the AMI.
    Test,
    /// The account's block public access settings where AMIs are to be public: read, never
    /// changed.
    PublicAccess,
    /// A Parameter Store parameter naming an AMI (a version's or a channel's).
    Parameter,
    /// The stack's catalogue files in an S3 bucket.
    CatalogFiles,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Snapshot => "snapshot",
            NodeKind::Image => "image",
            NodeKind::ImageCopy => "image-copy",
            NodeKind::Vpc => "vpc",
            NodeKind::Subnet => "subnet",
            NodeKind::InternetGateway => "internet-gateway",
            NodeKind::RouteTable => "route-table",
            NodeKind::SecurityGroup => "security-group",
            NodeKind::Volume => "volume",
            NodeKind::Helper => "helper",
            NodeKind::Test => "test",
            NodeKind::PublicAccess => "public-access",
            NodeKind::Parameter => "parameter",
            NodeKind::CatalogFiles => "catalog-files",
        }
    }

    /// Whether the live resource is an AMI (as opposed to a snapshot).
    pub fn is_image(self) -> bool {
        matches!(self, NodeKind::Image | NodeKind::ImageCopy)
    }

    /// Created for a build and removed once its snapshot exists: declared by each kind.
    pub fn is_transient(self) -> bool {
        match self {
            NodeKind::Snapshot => snapshot::TRANSIENT,
            NodeKind::Image => image::TRANSIENT,
            NodeKind::ImageCopy => copy::TRANSIENT,
            NodeKind::Vpc | NodeKind::Subnet | NodeKind::InternetGateway | NodeKind::RouteTable => network::TRANSIENT,
            NodeKind::SecurityGroup => security_group::TRANSIENT,
            NodeKind::Volume => volume::TRANSIENT,
            NodeKind::Helper => helper::TRANSIENT,
            NodeKind::Test => test::TRANSIENT,
            NodeKind::PublicAccess => public_access::TRANSIENT,
            NodeKind::Parameter => parameter::TRANSIENT,
            NodeKind::CatalogFiles => catalog_files::TRANSIENT,
        }
    }

    /// Read and judged, never made, changed or deleted: no live resource is claimed for it.
    pub fn is_read_only(self) -> bool {
        self.resource_kind().is_none()
    }

    /// The kind of live resource that realises nodes of this kind (a test's instance is one
    /// while it runs; its pass is a tag on the AMI), or `None` for read-only kinds.
    pub fn resource_kind(self) -> Option<ResourceKind> {
        Some(match self {
            NodeKind::Snapshot => ResourceKind::Snapshot,
            NodeKind::Image | NodeKind::ImageCopy => ResourceKind::Image,
            NodeKind::Vpc => ResourceKind::Vpc,
            NodeKind::Subnet => ResourceKind::Subnet,
            NodeKind::InternetGateway => ResourceKind::InternetGateway,
            NodeKind::RouteTable => ResourceKind::RouteTable,
            NodeKind::SecurityGroup => ResourceKind::SecurityGroup,
            NodeKind::Volume => ResourceKind::Volume,
            NodeKind::Helper | NodeKind::Test => ResourceKind::Instance,
            NodeKind::Parameter => ResourceKind::Parameter,
            NodeKind::CatalogFiles => ResourceKind::CatalogFiles,
            NodeKind::PublicAccess => return None,
        })
    }

    /// The node kind of a live resource no node claims (for deletes of orphans).
    pub fn of_resource(kind: ResourceKind) -> NodeKind {
        match kind {
            ResourceKind::Image => NodeKind::Image,
            ResourceKind::Snapshot => NodeKind::Snapshot,
            ResourceKind::Vpc => NodeKind::Vpc,
            ResourceKind::Subnet => NodeKind::Subnet,
            ResourceKind::InternetGateway => NodeKind::InternetGateway,
            ResourceKind::RouteTable => NodeKind::RouteTable,
            ResourceKind::SecurityGroup => NodeKind::SecurityGroup,
            ResourceKind::Volume => NodeKind::Volume,
            ResourceKind::Instance => NodeKind::Helper,
            ResourceKind::Parameter => NodeKind::Parameter,
            ResourceKind::CatalogFiles => NodeKind::CatalogFiles,
        }
    }

    /// Deletes run in this order (lowest first): what depends on something goes before it. A
    /// catalogue stops naming an AMI before the AMI goes.
    pub fn delete_rank(self) -> u8 {
        match self {
            NodeKind::Parameter | NodeKind::CatalogFiles | NodeKind::PublicAccess => 0,
            NodeKind::Image | NodeKind::ImageCopy => 1,
            NodeKind::Snapshot => 2,
            NodeKind::Helper | NodeKind::Test => 3,
            NodeKind::Volume => 4,
            NodeKind::SecurityGroup => 5,
            NodeKind::RouteTable => 6,
            NodeKind::InternetGateway => 7,
            NodeKind::Subnet => 8,
            NodeKind::Vpc => 9,
        }
    }
}

/// One node's desired resource, typed by kind: everything the planner compares and the
/// executor needs to make it.
#[derive(Debug, Clone)]
pub enum Spec {
    Snapshot(snapshot::Snapshot),
    Image(image::Image),
    Copy(copy::Copy),
    Vpc(network::Vpc),
    Subnet(network::Subnet),
    InternetGateway(network::Gateway),
    RouteTable(network::RouteTable),
    SecurityGroup(security_group::SecurityGroup),
    Volume(volume::Volume),
    Helper(helper::Helper),
    Test(test::BootTest),
    PublicAccess(public_access::PublicSharing),
    Parameter(parameter::Parameter),
    CatalogFiles(catalog_files::CatalogFiles),
}

impl Spec {
    pub fn kind(&self) -> NodeKind {
        match self {
            Spec::Snapshot(_) => NodeKind::Snapshot,
            Spec::Image(_) => NodeKind::Image,
            Spec::Copy(_) => NodeKind::ImageCopy,
            Spec::Vpc(_) => NodeKind::Vpc,
            Spec::Subnet(_) => NodeKind::Subnet,
            Spec::InternetGateway(_) => NodeKind::InternetGateway,
            Spec::RouteTable(_) => NodeKind::RouteTable,
            Spec::SecurityGroup(_) => NodeKind::SecurityGroup,
            Spec::Volume(_) => NodeKind::Volume,
            Spec::Helper(_) => NodeKind::Helper,
            Spec::Test(_) => NodeKind::Test,
            Spec::PublicAccess(_) => NodeKind::PublicAccess,
            Spec::Parameter(_) => NodeKind::Parameter,
            Spec::CatalogFiles(_) => NodeKind::CatalogFiles,
        }
    }

    /// What AWS fixes at creation, by name: hashed into `amiplan:spec`, shown in
    /// `amiplan:attrs` and in replacement diffs. Names and values are a stored format: live
    /// resources carry their hash, so changing them would replace every resource.
    pub fn immutable(&self) -> BTreeMap<String, String> {
        let pairs = match self {
            Spec::Snapshot(spec) => spec.immutable(),
            Spec::Image(spec) => spec.immutable(),
            Spec::Copy(spec) => spec.immutable(),
            Spec::Vpc(spec) => spec.immutable(),
            Spec::Subnet(spec) => spec.immutable(),
            Spec::InternetGateway(spec) => spec.immutable(),
            Spec::RouteTable(spec) => spec.immutable(),
            Spec::SecurityGroup(spec) => spec.immutable(),
            Spec::Volume(spec) => spec.immutable(),
            Spec::Helper(spec) => spec.immutable(),
            Spec::Test(spec) => spec.immutable(),
            Spec::PublicAccess(spec) => spec.immutable(),
            Spec::Parameter(spec) => spec.immutable(),
            Spec::CatalogFiles(spec) => spec.immutable(),
        };
        pairs.into_iter().map(|(key, value)| (key.to_string(), value)).collect()
    }

    /// The older digest form of what the resource is made from, where known.
    pub fn source_alias(&self) -> Option<&str> {
        match self {
            Spec::Snapshot(spec) => spec.source_alias.as_deref(),
            Spec::Image(spec) => spec.ami.source_alias.as_deref(),
            Spec::Copy(spec) => spec.ami.source_alias.as_deref(),
            _ => None,
        }
    }

    /// The digest of what the resource is made from, for kinds made from a source.
    pub fn source_digest(&self) -> Option<&str> {
        match self {
            Spec::Snapshot(spec) => Some(spec.source_sha256.planned()),
            Spec::Image(spec) => Some(spec.ami.source_sha256.planned()),
            Spec::Copy(spec) => Some(spec.ami.source_sha256.planned()),
            Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::Helper(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_)
            | Spec::Parameter(_)
            | Spec::CatalogFiles(_) => None,
        }
    }
}

impl Spec {
    /// A snapshot taken of a helper build's volume: the node the build's transient resources
    /// serve.
    pub fn is_capture(&self) -> bool {
        matches!(self, Spec::Snapshot(snapshot) if snapshot.is_capture())
    }

    /// The AMI an image or copy node makes.
    pub fn ami(&self) -> Option<&image::Ami> {
        match self {
            Spec::Image(spec) => Some(&spec.ami),
            Spec::Copy(spec) => Some(&spec.ami),
            Spec::Snapshot(_)
            | Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::Helper(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_)
            | Spec::Parameter(_)
            | Spec::CatalogFiles(_) => None,
        }
    }

    /// The instance a node runs: its type, and the manifest's subnet for it (`None`: the
    /// build's own network, or a default subnet).
    pub fn instance(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Spec::Helper(spec) => Some((&spec.instance_type, spec.existing_subnet.as_deref())),
            Spec::Test(spec) => Some((&spec.instance_type, spec.subnet.as_deref())),
            Spec::Snapshot(_)
            | Spec::Image(_)
            | Spec::Copy(_)
            | Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::PublicAccess(_)
            | Spec::Parameter(_)
            | Spec::CatalogFiles(_) => None,
        }
    }
}

// The executor's steps, by kind. Each kind's module holds its own; these matches only route.
impl Spec {
    /// Makes the node's resource (adopting what an interrupted attempt made, where the kind
    /// can) and returns its ID once it is usable.
    pub async fn create<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        inputs: &Inputs,
        resolved: &Resolved,
    ) -> Result<String, StepError> {
        match self {
            Spec::Snapshot(spec) => spec.create(steps, node, inputs).await,
            Spec::Image(spec) => spec.create(steps, node, inputs).await,
            Spec::Copy(spec) => spec.create(steps, node, inputs).await,
            Spec::Vpc(spec) => spec.create(steps, node).await,
            Spec::Subnet(spec) => spec.create(steps, node, inputs, resolved).await,
            Spec::InternetGateway(spec) => spec.create(steps, node, inputs).await,
            Spec::RouteTable(spec) => spec.create(steps, node, inputs).await,
            Spec::SecurityGroup(spec) => spec.create(steps, node, inputs).await,
            Spec::Volume(spec) => spec.create(steps, node, inputs).await,
            Spec::Helper(spec) => spec.create(steps, node, inputs, resolved).await,
            Spec::Test(spec) => spec.run(steps, node, inputs, resolved).await,
            Spec::Parameter(spec) => spec.create(steps, node, inputs, resolved).await,
            Spec::CatalogFiles(spec) => spec.publish(steps, node).await,
            Spec::PublicAccess(_) => {
                Err(StepError { resource: None, message: format!("{} is read-only: nothing is made", node.id) })
            }
        }
    }

    /// Changes the live resource `id` in place as `diffs` say (or waits for it to be ready).
    pub async fn update<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        change: Update<'_>,
        id: &str,
    ) -> Result<(), StepError> {
        let Update { diffs, inputs, resolved } = change;
        match self {
            Spec::Parameter(spec) => spec.update(steps, node, diffs, inputs, resolved).await,
            Spec::CatalogFiles(spec) => spec.publish(steps, node).await.map(drop),
            Spec::Snapshot(_) => snapshot::update(steps, node, diffs, id).await,
            Spec::Image(_) | Spec::Copy(_) => image::update(steps, node, diffs, id).await,
            // Adopted as they are: a build's resources are never changed in place (a running
            // helper keeps running), and a test has nothing live to change.
            Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::Helper(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_) => Ok(()),
        }
    }
}

/// What a delete came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Done,
    /// An AMI whose deregistration protection's cooldown keeps it: nothing more can be done
    /// before then, said.
    AfterCooldown(String),
}

/// Deletes the live resource `id` of a node of `kind` (a node that may no longer be desired).
/// An AMI takes `with_snapshots` with it, and lifts its `protection` first.
pub async fn delete<S: Steps>(
    steps: &S,
    kind: NodeKind,
    region: &str,
    id: &str,
    with_snapshots: &[String],
    protection: &LiveProtection,
) -> Result<Removal, CloudError> {
    let removed = match kind {
        NodeKind::Image | NodeKind::ImageCopy => {
            return image::delete(steps, region, id, with_snapshots, protection).await;
        }
        NodeKind::Snapshot => snapshot::delete_after_images(steps, region, id).await,
        NodeKind::Vpc
        | NodeKind::Subnet
        | NodeKind::InternetGateway
        | NodeKind::RouteTable
        | NodeKind::SecurityGroup
        | NodeKind::Volume
        | NodeKind::Helper
        // A test's instance, left by an interrupted test, is found and deleted like a helper.
        | NodeKind::Test => remove_build_resource(steps, region, kind, id).await,
        // Read-only: nothing of it is ever made, so nothing is deleted.
        NodeKind::PublicAccess => Ok(()),
        NodeKind::Parameter => parameter::delete(steps, region, id).await,
        NodeKind::CatalogFiles => catalog_files::delete(steps, region, id).await,
    };
    removed.map(|()| Removal::Done)
}

/// What an update of a node is to do, and what it has to do it with.
pub struct Update<'a> {
    pub diffs: &'a [AttrDiff],
    pub inputs: &'a Inputs,
    pub resolved: &'a Resolved,
}

// The pure comparison of desired against live, by kind.
impl Spec {
    /// Why the live resource can never become usable, if it cannot (a failed AMI, a volume in
    /// error): among duplicates it comes last, and it is replaced.
    pub fn failed(&self, live: &LiveResource) -> Option<Reason> {
        let failed = match self {
            Spec::Snapshot(_) | Spec::Image(_) | Spec::Copy(_) => {
                !matches!(live.state, State::Ready | State::Pending | State::Disabled)
            }
            Spec::Volume(_) => volume::failed(&live.state),
            // A stopped helper is judged by `stale`; terminated ones are not even discovered.
            Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Helper(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_)
            | Spec::Parameter(_)
            | Spec::CatalogFiles(_) => false,
        };
        failed.then(|| Reason::Failed { id: live.id.clone(), state: live.state.to_string() })
    }

    /// Why a live resource that is fine in itself must be made again, if it must.
    pub fn stale(&self, live: &LiveResource) -> Option<Reason> {
        match self {
            Spec::Snapshot(spec) => spec.stale(live),
            Spec::Helper(_) => helper::stale(live),
            Spec::InternetGateway(_) | Spec::RouteTable(_) => network::stale(live),
            Spec::Image(_)
            | Spec::Copy(_)
            | Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_)
            | Spec::Parameter(_)
            | Spec::CatalogFiles(_) => None,
        }
    }

    /// What differs and can change in place: the kind's own attributes, then the tags. `now`
    /// (seconds since the epoch) stands for the creation time AWS has not reported yet.
    pub fn in_place(&self, node: &Node, live: &LiveResource, now: i64) -> Vec<AttrDiff> {
        let mut diffs = match self {
            Spec::Image(_) | Spec::Copy(_) => image::in_place(node, live, now),
            Spec::Snapshot(_)
            | Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::Helper(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_) => vec![],
            // Its value is judged by the planner, which knows the AMI it should name; the
            // files' content too, from the catalogue.
            Spec::Parameter(_) | Spec::CatalogFiles(_) => return vec![],
        };
        diffs.extend(tag_diffs(node, live));
        diffs
    }

    /// Why the plan leaves something the manifest asks for as it is, because AWS would refuse
    /// it (see [`image::REFUSED`]).
    pub fn refused(&self, node: &Node, live: &LiveResource, now: i64) -> Option<Reason> {
        match self {
            Spec::Image(_) | Spec::Copy(_) => image::refused_deprecation(node, live, now).map(Reason::Refused),
            Spec::Snapshot(_)
            | Spec::Vpc(_)
            | Spec::Subnet(_)
            | Spec::InternetGateway(_)
            | Spec::RouteTable(_)
            | Spec::SecurityGroup(_)
            | Spec::Volume(_)
            | Spec::Helper(_)
            | Spec::Test(_)
            | Spec::PublicAccess(_)
            | Spec::Parameter(_)
            | Spec::CatalogFiles(_) => None,
        }
    }
}

/// The tags to set or remove: the node's (user tags and ownership tags) against the live ones.
fn tag_diffs(node: &Node, live: &LiveResource) -> Vec<AttrDiff> {
    let mut diffs = Vec::new();
    let desired: BTreeMap<String, String> = node.desired_tags();
    let keys: BTreeSet<&String> = desired.keys().chain(live.tags.keys()).collect();
    for key in keys {
        let (before, after) = (live.tags.get(key), desired.get(key));
        // amiplan's status tags and AWS's own tags are not the manifest's to remove.
        if after.is_none() && tags::is_reserved(key) {
            continue;
        }
        if before != after {
            let attribute = Attribute::Tag(key.clone());
            diffs.push(AttrDiff { attribute, before: before.cloned(), after: after.cloned() });
        }
    }
    diffs
}

/// Applies the `tags.*` diffs: sets what changed, removes what the node no longer wants.
async fn update_tags<S: Steps>(steps: &S, region: &str, id: &str, diffs: &[AttrDiff]) -> Result<(), StepError> {
    let ids = [id.to_string()];
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for diff in diffs {
        match (&diff.attribute, &diff.after) {
            (Attribute::Tag(key), Some(value)) => {
                set.insert(key.clone(), value.clone());
            }
            (Attribute::Tag(key), None) => remove.push(key.clone()),
            _ => {}
        }
    }
    let cloud = steps.cloud();
    cloud.set_tags(region, &ids, &set).await.map_err(|e| StepError::from(e).on(id))?;
    cloud.remove_tags(region, &ids, &remove).await.map_err(|e| StepError::from(e).on(id))?;
    Ok(())
}

/// Name-value pairs of a spec's immutable attributes.
type Pairs = Vec<(&'static str, String)>;

/// An optional value as the spec map has always held it: empty when absent.
fn or_empty(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::raw::AmiFilter;

    fn pairs(spec: Spec) -> Vec<(String, String)> {
        spec.immutable().into_iter().collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The names and values of the build kinds' specs, as the version whose specs were string
    /// maps stored them (their hashes are on live resources).
    #[test]
    fn build_kinds_keep_their_stored_spec_format() {
        assert_eq!(pairs(Spec::Vpc(network::Vpc { cidr: "10.0.0.0/16".into() })), owned(&[("cidr", "10.0.0.0/16")]));
        assert_eq!(pairs(Spec::InternetGateway(network::Gateway)), owned(&[]));
        assert_eq!(pairs(Spec::RouteTable(network::RouteTable)), owned(&[("cidr", "0.0.0.0/0")]));
        let group = security_group::SecurityGroup { existing_subnet: Some("subnet-1".into()) };
        assert_eq!(pairs(Spec::SecurityGroup(group)), owned(&[("subnet", "subnet-1")]));
        let volume = volume::Volume {
            size_gib: 8,
            volume_type: crate::cloud::VolumeType::Gp3,
            encrypted: true,
            kms_key: None,
            existing_subnet: Some("subnet-1".into()),
        };
        let expected = [("encrypted", "true"), ("kms_key", ""), ("size_gib", "8"), ("volume_type", "gp3")];
        assert_eq!(pairs(Spec::Volume(volume)), owned(&expected));
        let script = std::env::temp_dir().join(format!("amiplan-spec-format-{}.sh", std::process::id()));
        std::fs::write(&script, "true\n").unwrap();
        let job = crate::job::prepare_test("demo", &script, None).unwrap();
        std::fs::remove_file(&script).unwrap();
        let helper = helper::Helper {
            ami: crate::manifest::raw::HelperAmi::Filter(AmiFilter { owner: "amazon".into(), name: "al2023-*".into() }),
            instance_type: "t3.small".into(),
            spot: false,
            job: job.clone(),
            existing_subnet: None,
            scratch_gib: 16,
        };
        let expected = [
            ("ami", "owner=amazon name=al2023-*"),
            ("instance_type", "t3.small"),
            ("job", job.id.as_str()),
            ("spot", "false"),
        ];
        assert_eq!(pairs(Spec::Helper(helper)), owned(&expected));
        let job_id = job.id.clone();
        let test = test::BootTest {
            image_node: "image/x@r".into(),
            job,
            instance_type: "t3.small".into(),
            timeout: std::time::Duration::from_secs(60),
            subnet: None,
            reports_bucket: None,
        };
        assert_eq!(pairs(Spec::Test(test)), owned(&[("instance_type", "t3.small"), ("job", job_id.as_str())]));
    }
}
