//! The desired graph: every resource a set of stacks needs, with stable IDs and real dependency
//! edges (snapshot → image → copies). Apply walks it in topological order, destroy in reverse.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cloud::ResourceKind;
use crate::cloud::Sharing;
use crate::deprecation::Deprecation;
use crate::job::Job;
use crate::manifest::raw::{HelperAmi, VolumeType};
use crate::model::{HelperSpec, ImageAttrs, Origin, Stack, TestSpec, Variant};
use crate::source::Prepared;
use crate::tags;

/// What kind of AWS resource a node becomes, and how it is made.
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
        }
    }

    /// Whether the live resource is an AMI (as opposed to a snapshot).
    pub fn is_image(self) -> bool {
        matches!(self, NodeKind::Image | NodeKind::ImageCopy)
    }

    /// Created for a build and removed once its snapshot exists.
    pub fn is_transient(self) -> bool {
        !matches!(self, NodeKind::Snapshot | NodeKind::Image | NodeKind::ImageCopy | NodeKind::Test)
    }

    /// The kind of live resource that realises nodes of this kind.
    pub fn resource_kind(self) -> ResourceKind {
        match self {
            NodeKind::Snapshot => ResourceKind::Snapshot,
            NodeKind::Image | NodeKind::ImageCopy => ResourceKind::Image,
            NodeKind::Vpc => ResourceKind::Vpc,
            NodeKind::Subnet => ResourceKind::Subnet,
            NodeKind::InternetGateway => ResourceKind::InternetGateway,
            NodeKind::RouteTable => ResourceKind::RouteTable,
            NodeKind::SecurityGroup => ResourceKind::SecurityGroup,
            NodeKind::Volume => ResourceKind::Volume,
            NodeKind::Helper | NodeKind::Test => ResourceKind::Instance,
        }
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
        }
    }

    /// Deletes run in this order (lowest first): what depends on something goes before it.
    pub fn delete_rank(self) -> u8 {
        match self {
            NodeKind::Image | NodeKind::ImageCopy => 0,
            NodeKind::Snapshot => 1,
            NodeKind::Helper | NodeKind::Test => 2,
            NodeKind::Volume => 3,
            NodeKind::SecurityGroup => 4,
            NodeKind::RouteTable => 5,
            NodeKind::InternetGateway => 6,
            NodeKind::Subnet => 7,
            NodeKind::Vpc => 8,
        }
    }
}

/// How a node is created; carries what the executor needs and nothing it could choose itself.
#[derive(Debug, Clone)]
pub enum Work {
    Upload {
        source: PathBuf,
        size_bytes: u64,
        volume_size_gib: u32,
        encrypted: bool,
        kms_key: Option<String>,
    },
    Register {
        attrs: ImageAttrs,
        volume_size_gib: u32,
    },
    Copy {
        source_region: String,
        encrypted: bool,
        kms_key: Option<String>,
    },
    Vpc {
        cidr: String,
    },
    Subnet {
        cidr: String,
    },
    InternetGateway,
    RouteTable,
    SecurityGroup {
        existing_subnet: Option<String>,
    },
    Volume {
        size_gib: u32,
        volume_type: VolumeType,
        encrypted: bool,
        kms_key: Option<String>,
        existing_subnet: Option<String>,
    },
    Helper {
        ami: HelperAmi,
        instance_type: String,
        spot: bool,
        job: Job,
        existing_subnet: Option<String>,
        /// Scratch space the job needs on the helper's root volume, in GiB, beyond what the
        /// helper AMI's own root volume brings.
        scratch_gib: u32,
    },
    /// An encrypted copy of the snapshot node this one depends on (CopySnapshot).
    EncryptCopy {
        kms_key: Option<String>,
    },
    /// Wait for the helper's job, then snapshot the target volume.
    Capture {
        job_id: String,
        timeout: Duration,
    },
    /// Boot-test the AMI of `image_node`, then publish it.
    Test {
        image_node: String,
        job: Job,
        instance_type: String,
        timeout: Duration,
        subnet: Option<String>,
    },
}

/// One desired resource.
#[derive(Debug, Clone)]
pub struct Node {
    /// Stable identity, e.g. `image/fedora-40-x86_64-gp3@eu-west-1`; tagged as `amiplan:node`.
    pub id: String,
    pub stack: String,
    pub region: String,
    pub kind: NodeKind,
    /// AMI name (images only): unique per region, so also an identity.
    pub name: Option<String>,
    /// Attributes AWS cannot change after creation; any difference means replacement.
    pub spec: BTreeMap<String, String>,
    /// Attributes that can change in place.
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Launch permissions (images only).
    pub sharing: Sharing,
    /// When the AMI is deprecated (images only).
    pub deprecation: Option<Deprecation>,
    /// Images with a boot test: shared and deprecated only once the test passed.
    pub gated: bool,
    pub work: Work,
}

impl Node {
    /// Short hash of the spec, tagged as `amiplan:spec`.
    pub fn spec_hash(&self) -> String {
        spec_hash(&self.spec)
    }

    /// Every tag the live resource should carry: user tags plus ownership tags.
    pub fn desired_tags(&self) -> BTreeMap<String, String> {
        let mut all = self.tags.clone();
        all.insert(tags::STACK.into(), self.stack.clone());
        all.insert(tags::NODE.into(), self.id.clone());
        all.insert(tags::SPEC.into(), self.spec_hash());
        if let Some(digest) = self.spec.get("source_sha256") {
            all.insert(tags::SOURCE.into(), digest.clone());
        }
        if let Some(attrs) = tags::encode_spec(&self.spec) {
            all.insert(tags::ATTRS.into(), attrs);
        }
        if self.sharing.names_anyone() {
            all.insert(tags::SHARED.into(), "true".into());
        }
        all
    }
}

pub fn spec_hash(spec: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in spec {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// The desired graph of a set of stacks.
#[derive(Debug, Default)]
pub struct DesiredGraph {
    graph: DiGraph<Node, ()>,
    by_id: HashMap<String, NodeIndex>,
    /// Stacks with retention: their current version and how many versions to keep.
    retention: BTreeMap<String, (String, u32)>,
}

impl DesiredGraph {
    /// Expands stacks into nodes. `prepared` holds each stack's inspected source or helper job.
    pub fn build(stacks: &[Stack], prepared: &HashMap<String, Prepared>) -> DesiredGraph {
        DesiredGraph::build_with_tests(stacks, prepared, &HashMap::new())
    }

    /// Like [`DesiredGraph::build`], with the boot-test job of each stack that has a `test`.
    pub fn build_with_tests(
        stacks: &[Stack],
        prepared: &HashMap<String, Prepared>,
        tests: &HashMap<String, Job>,
    ) -> DesiredGraph {
        let mut graph = DesiredGraph::default();
        for stack in stacks {
            graph.add_stack(stack, &prepared[&stack.name], tests.get(&stack.name));
        }
        graph
    }

    /// The boot test of one AMI: an instance from it must pass before anything depends on it.
    fn add_test(&mut self, stack: &Stack, variant: &Variant, region: &str, spec: &TestSpec, job: &Job) -> NodeIndex {
        let image_node = format!("image/{}@{region}", variant.name);
        self.add(Node {
            id: format!("test/{}@{region}", variant.name),
            stack: stack.name.clone(),
            region: region.to_string(),
            kind: NodeKind::Test,
            name: None,
            spec: BTreeMap::from([
                ("job".to_string(), job.id.clone()),
                ("instance_type".to_string(), spec.instance_type.clone()),
            ]),
            description: None,
            tags: stack.tags.clone(),
            sharing: Sharing::default(),
            deprecation: None,
            gated: false,
            work: Work::Test {
                image_node,
                job: job.clone(),
                instance_type: spec.instance_type.clone(),
                timeout: spec.timeout,
                subnet: spec.subnet.clone(),
            },
        })
    }

    fn add_stack(&mut self, stack: &Stack, prepared: &Prepared, test_job: Option<&Job>) {
        let test = stack.test.as_ref();
        if let (Some(version), Some(keep)) = (&stack.version, stack.keep_versions) {
            self.retention.insert(stack.name.clone(), (version.clone(), keep));
        }
        let (volume_size_gib, digest) = match (prepared, &stack.source) {
            (Prepared::Upload(source), _) => {
                (stack.volume_size_gib.unwrap_or_else(|| source.min_volume_gib()), source.sha256.clone())
            }
            (Prepared::Helper(job), origin) => (stack.volume_size_gib.unwrap_or(8), helper_digest(origin, job)),
        };
        let build = &stack.build_region;
        // Each version has its own snapshot: older AMIs kept by retention still use theirs.
        let versioned = stack.version.as_ref().map(|v| format!("-{v}")).unwrap_or_default();
        let mut snapshots: BTreeMap<bool, NodeIndex> = BTreeMap::new();
        // Unencrypted first: with a helper, the encrypted snapshot is a copy of the plain one.
        let encryptions: BTreeSet<bool> = stack.variants.iter().map(|v| v.attrs.encrypted).collect();
        for encrypted in encryptions {
            let plain = snapshots.get(&false).copied();
            let kms_key = stack.kms_key(build).filter(|_| encrypted).map(str::to_string);
            let suffix = if encrypted { "-encrypted" } else { "" };
            let mut spec = BTreeMap::new();
            spec.insert("source_sha256".to_string(), digest.clone());
            spec.insert("volume_size_gib".to_string(), volume_size_gib.to_string());
            spec.insert("encrypted".to_string(), encrypted.to_string());
            spec.insert("kms_key".to_string(), kms_key.clone().unwrap_or_default());
            let mut node_tags = stack.tags.clone();
            node_tags.entry("Name".into()).or_insert_with(|| format!("{} root", stack.name));
            if let Some(version) = &stack.version {
                node_tags.insert(tags::VERSION.into(), version.clone());
            }
            let work = match (prepared, &stack.source, &stack.helper) {
                (Prepared::Upload(source), Origin::File { path, .. }, _) => Work::Upload {
                    source: path.clone(),
                    size_bytes: source.size_bytes,
                    volume_size_gib,
                    encrypted,
                    kms_key: kms_key.clone(),
                },
                // A helper writes one volume; the other encryption is a copy of its snapshot.
                (Prepared::Helper(_), _, Some(_)) if encrypted && plain.is_some() => {
                    spec.insert("method".into(), "helper".into());
                    Work::EncryptCopy { kms_key: kms_key.clone() }
                }
                (Prepared::Helper(job), _, Some(helper)) => {
                    spec.insert("method".into(), "helper".into());
                    Work::Capture { job_id: job.id.clone(), timeout: helper.timeout }
                }
                _ => unreachable!("validation pairs helper jobs with helper settings"),
            };
            let snapshot = self.add(Node {
                id: format!("snapshot/{}{versioned}-root{suffix}@{build}", stack.name),
                stack: stack.name.clone(),
                region: build.clone(),
                kind: NodeKind::Snapshot,
                name: None,
                spec,
                description: None,
                tags: node_tags,
                sharing: Sharing::default(),
                deprecation: None,
                gated: false,
                work,
            });
            match (prepared, &stack.helper, plain) {
                (Prepared::Helper(_), Some(_), Some(plain)) if encrypted => {
                    self.graph.add_edge(plain, snapshot, ());
                }
                (Prepared::Helper(job), Some(helper), _) => {
                    let target = TargetVolume { size_gib: volume_size_gib, encrypted, kms_key };
                    self.add_helper_build(stack, helper, job, target, snapshot);
                }
                _ => {}
            }
            snapshots.insert(encrypted, snapshot);
        }
        for variant in &stack.variants {
            let encrypted = variant.attrs.encrypted;
            let snapshot = snapshots[&encrypted];
            let mut image_tags = stack.tags.clone();
            image_tags.entry("Name".into()).or_insert_with(|| variant.name.clone());
            if let Some(version) = &stack.version {
                image_tags.insert(tags::VERSION.into(), version.clone());
            }
            let mut primary = None;
            let mut primary_test = None;
            for region in &stack.regions {
                let kms_key = stack.kms_key(region).filter(|_| encrypted).map(str::to_string);
                let mut spec = image_spec(&variant.attrs, volume_size_gib, &digest);
                spec.insert("kms_key".into(), kms_key.clone().unwrap_or_default());
                let (kind, work) = if region == build {
                    (NodeKind::Image, Work::Register { attrs: variant.attrs.clone(), volume_size_gib })
                } else {
                    let work = Work::Copy { source_region: build.clone(), encrypted, kms_key };
                    (NodeKind::ImageCopy, work)
                };
                let tested_here = test.is_some_and(|t| region == build || t.all_regions);
                let index = self.add(Node {
                    id: format!("image/{}@{region}", variant.name),
                    stack: stack.name.clone(),
                    region: region.clone(),
                    kind,
                    name: Some(variant.name.clone()),
                    spec,
                    description: stack.description.clone(),
                    tags: image_tags.clone(),
                    sharing: stack.sharing.clone(),
                    deprecation: stack.deprecation,
                    gated: tested_here,
                    work,
                });
                match primary {
                    None => {
                        self.graph.add_edge(snapshot, index, ());
                        primary = Some(index);
                    }
                    Some(primary) => {
                        self.graph.add_edge(primary, index, ());
                        // Nothing is copied before the build region's AMI passed its test.
                        if let Some(gate) = primary_test {
                            self.graph.add_edge(gate, index, ());
                        }
                    }
                }
                if let (Some(spec), Some(job), true) = (test, test_job, tested_here) {
                    let gate = self.add_test(stack, variant, region, spec, job);
                    self.graph.add_edge(index, gate, ());
                    primary_test.get_or_insert(gate);
                }
            }
        }
    }

    /// The transient nodes of a helper build, feeding `snapshot`: network (unless an existing
    /// subnet is used) → security group → target volume → helper.
    fn add_helper_build(
        &mut self,
        stack: &Stack,
        helper: &HelperSpec,
        job: &Job,
        target: TargetVolume,
        snapshot: NodeIndex,
    ) {
        let region = stack.build_region.clone();
        let node = |kind: NodeKind, spec: BTreeMap<String, String>, work: Work| {
            let mut tags = stack.tags.clone();
            tags.insert("Name".into(), format!("amiplan {} {}", stack.name, kind.as_str()));
            Node {
                id: format!("{}/{}@{region}", kind.as_str(), stack.name),
                stack: stack.name.clone(),
                region: region.clone(),
                kind,
                name: None,
                spec,
                description: None,
                tags,
                sharing: Sharing::default(),
                deprecation: None,
                gated: false,
                work,
            }
        };
        let existing = helper.subnet.clone();
        let network = match &existing {
            Some(subnet) => {
                let spec = BTreeMap::from([("subnet".to_string(), subnet.clone())]);
                let group = self.add(node(
                    NodeKind::SecurityGroup,
                    spec,
                    Work::SecurityGroup { existing_subnet: existing.clone() },
                ));
                vec![group]
            }
            None => {
                let cidr = |c: &str| BTreeMap::from([("cidr".to_string(), c.to_string())]);
                let vpc = self.add(node(NodeKind::Vpc, cidr(VPC_CIDR), Work::Vpc { cidr: VPC_CIDR.into() }));
                let subnet =
                    self.add(node(NodeKind::Subnet, cidr(SUBNET_CIDR), Work::Subnet { cidr: SUBNET_CIDR.into() }));
                let gateway = self.add(node(NodeKind::InternetGateway, BTreeMap::new(), Work::InternetGateway));
                let routes = self.add(node(NodeKind::RouteTable, cidr("0.0.0.0/0"), Work::RouteTable));
                let group = self.add(node(
                    NodeKind::SecurityGroup,
                    BTreeMap::new(),
                    Work::SecurityGroup { existing_subnet: None },
                ));
                self.graph.add_edge(vpc, subnet, ());
                self.graph.add_edge(vpc, gateway, ());
                self.graph.add_edge(subnet, routes, ());
                self.graph.add_edge(gateway, routes, ());
                self.graph.add_edge(subnet, group, ());
                vec![subnet, routes, group]
            }
        };
        let volume_spec = BTreeMap::from([
            ("size_gib".to_string(), target.size_gib.to_string()),
            ("volume_type".to_string(), helper.volume_type.as_str().to_string()),
            ("encrypted".to_string(), target.encrypted.to_string()),
            ("kms_key".to_string(), target.kms_key.clone().unwrap_or_default()),
        ]);
        let volume = self.add(node(
            NodeKind::Volume,
            volume_spec,
            Work::Volume {
                size_gib: target.size_gib,
                volume_type: helper.volume_type,
                encrypted: target.encrypted,
                kms_key: target.kms_key,
                existing_subnet: existing.clone(),
            },
        ));
        let ami = match &helper.ami {
            HelperAmi::Id(id) => id.clone(),
            HelperAmi::Filter(filter) => format!("owner={} name={}", filter.owner, filter.name),
        };
        let helper_spec = BTreeMap::from([
            ("ami".to_string(), ami),
            ("instance_type".to_string(), helper.instance_type.clone()),
            ("spot".to_string(), helper.spot.to_string()),
            ("job".to_string(), job.id.clone()),
        ]);
        let instance = self.add(node(
            NodeKind::Helper,
            helper_spec,
            Work::Helper {
                ami: helper.ami.clone(),
                instance_type: helper.instance_type.clone(),
                spot: helper.spot,
                job: job.clone(),
                existing_subnet: existing,
                scratch_gib: match stack.source {
                    // The tarball and the unpacked tree, each up to the volume's size.
                    crate::model::Origin::Bootstrap(_) => 2 * target.size_gib,
                    // The downloaded image, at most the volume's size.
                    _ => target.size_gib,
                },
            },
        ));
        // The subnet (or, for an existing one, the security group) places the volume.
        self.graph.add_edge(network[0], volume, ());
        for index in network {
            self.graph.add_edge(index, instance, ());
        }
        self.graph.add_edge(volume, instance, ());
        self.graph.add_edge(instance, snapshot, ());
        self.graph.add_edge(volume, snapshot, ());
    }

    /// The ID of this node's dependency of `kind`, if it has one.
    pub fn dependency_of_kind(&self, id: &str, kind: NodeKind) -> Option<&Node> {
        self.dependencies(id).into_iter().filter_map(|d| self.get(d)).find(|n| n.kind == kind)
    }

    fn add(&mut self, node: Node) -> NodeIndex {
        let id = node.id.clone();
        let index = self.graph.add_node(node);
        self.by_id.insert(id, index);
        index
    }

    /// The current version of `stack` and how many versions it keeps, if it has retention.
    pub fn retention(&self, stack: &str) -> Option<(&str, u32)> {
        self.retention.get(stack).map(|(version, keep)| (version.as_str(), *keep))
    }

    pub fn get(&self, id: &str) -> Option<&Node> {
        self.by_id.get(id).map(|&i| &self.graph[i])
    }

    /// Nodes in an order where every node comes after the nodes it depends on; ties broken by ID
    /// so that plans are deterministic.
    pub fn topological(&self) -> Vec<&Node> {
        let order = toposort(&self.graph, None).expect("the desired graph is built acyclic");
        let mut rank: HashMap<NodeIndex, usize> = HashMap::new();
        for index in &order {
            let depth =
                self.graph.neighbors_directed(*index, petgraph::Incoming).map(|d| rank[&d] + 1).max().unwrap_or(0);
            rank.insert(*index, depth);
        }
        let mut nodes: Vec<_> = order.into_iter().collect();
        nodes.sort_by(|a, b| (rank[a], &self.graph[*a].id).cmp(&(rank[b], &self.graph[*b].id)));
        nodes.into_iter().map(|i| &self.graph[i]).collect()
    }

    /// IDs of the nodes `id` depends on.
    pub fn dependencies(&self, id: &str) -> Vec<&str> {
        let Some(&index) = self.by_id.get(id) else {
            return vec![];
        };
        self.graph.neighbors_directed(index, petgraph::Incoming).map(|d| self.graph[d].id.as_str()).collect()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.graph.node_weights()
    }

    /// The desired image node with this AMI name in this region, if any.
    pub fn image_named(&self, region: &str, name: &str) -> Option<&Node> {
        self.nodes().find(|n| n.kind.is_image() && n.region == region && n.name.as_deref() == Some(name))
    }

    /// Every region any node lives in.
    pub fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self.nodes().map(|n| n.region.clone()).collect();
        regions.sort();
        regions.dedup();
        regions
    }

    /// A digest of everything desired; a saved plan is only valid for the same digest.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for node in self.topological() {
            hasher.update(node.id.as_bytes());
            hasher.update(node.spec_hash().as_bytes());
            for (key, value) in node.desired_tags() {
                hasher.update(format!("\0{key}={value}").as_bytes());
            }
            let sharing = node.sharing.describe();
            hasher.update(format!("\0{:?}\0{sharing}\0{:?}\n", node.description, node.deprecation).as_bytes());
        }
        hex::encode(&hasher.finalize()[..16])
    }
}

/// The temporary network's address ranges: private, and the same for every build (each build
/// has its own VPC).
const VPC_CIDR: &str = "10.213.0.0/16";
const SUBNET_CIDR: &str = "10.213.0.0/24";

struct TargetVolume {
    size_gib: u32,
    encrypted: bool,
    kms_key: Option<String>,
}

/// What identifies a helper build's output: the image's digest, or for a bootstrap, the tarball's
/// digest together with the job (which embeds the scripts and files).
fn helper_digest(origin: &Origin, job: &Job) -> String {
    match origin {
        Origin::Url { sha256, .. } => sha256.clone(),
        Origin::Bootstrap(bootstrap) => {
            hex::encode(Sha256::digest(format!("{}\0{}", bootstrap.sha256, job.id).as_bytes()))
        }
        Origin::File { sha256, .. } => sha256.clone().unwrap_or_default(),
    }
}

fn image_spec(attrs: &ImageAttrs, volume_size_gib: u32, sha256: &str) -> BTreeMap<String, String> {
    let optional = |value: Option<&str>| value.unwrap_or("").to_string();
    BTreeMap::from([
        ("architecture".into(), attrs.architecture.as_str().into()),
        ("virtualization".into(), attrs.virtualization.as_str().into()),
        ("volume_type".into(), attrs.volume_type.as_str().into()),
        ("volume_size_gib".into(), volume_size_gib.to_string()),
        ("encrypted".into(), attrs.encrypted.to_string()),
        ("boot_mode".into(), optional(attrs.boot_mode.map(|m| m.as_str()))),
        ("ena".into(), attrs.ena.to_string()),
        ("imds".into(), optional(attrs.imds.map(|_| "v2.0"))),
        ("tpm".into(), attrs.tpm.to_string()),
        ("root_device".into(), attrs.root_device.clone()),
        ("kernel_id".into(), optional(attrs.kernel_id.as_deref())),
        ("ramdisk_id".into(), optional(attrs.ramdisk_id.as_deref())),
        ("source_sha256".into(), sha256.to_string()),
    ])
}
