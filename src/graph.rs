//! The desired graph: every resource a set of stacks needs, with stable IDs and real dependency
//! edges (snapshot → image → copies). Apply walks it in topological order, destroy in reverse.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ImageAttrs, Stack};
use crate::source::SourceInfo;
use crate::tags;

/// What kind of AWS resource a node becomes, and how it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// An EBS snapshot uploaded from the source image.
    Snapshot,
    /// An AMI registered from a snapshot in the build region.
    Image,
    /// An AMI copied from the build region's image.
    ImageCopy,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Snapshot => "snapshot",
            NodeKind::Image => "image",
            NodeKind::ImageCopy => "image-copy",
        }
    }

    /// Whether the live resource is an AMI (as opposed to a snapshot).
    pub fn is_image(self) -> bool {
        matches!(self, NodeKind::Image | NodeKind::ImageCopy)
    }
}

/// How a node is created; carries what the executor needs and nothing it could choose itself.
#[derive(Debug, Clone)]
pub enum Work {
    Upload { source: PathBuf, size_bytes: u64, volume_size_gib: u32, encrypted: bool, kms_key: Option<String> },
    Register { attrs: ImageAttrs, volume_size_gib: u32 },
    Copy { source_region: String, encrypted: bool, kms_key: Option<String> },
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
    pub public: bool,
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
}

impl DesiredGraph {
    /// Expands stacks into nodes. `sources` holds each stack's inspected source image.
    pub fn build(stacks: &[Stack], sources: &HashMap<String, SourceInfo>) -> DesiredGraph {
        let mut graph = DesiredGraph::default();
        for stack in stacks {
            let source = &sources[&stack.name];
            graph.add_stack(stack, source);
        }
        graph
    }

    fn add_stack(&mut self, stack: &Stack, source: &SourceInfo) {
        let volume_size_gib = stack.volume_size_gib.unwrap_or_else(|| source.min_volume_gib());
        let build = &stack.build_region;
        let mut snapshots: BTreeMap<bool, NodeIndex> = BTreeMap::new();
        for variant in &stack.variants {
            let encrypted = variant.attrs.encrypted;
            let snapshot = *snapshots.entry(encrypted).or_insert_with(|| {
                let kms_key = stack.kms_key(build).filter(|_| encrypted).map(str::to_string);
                let suffix = if encrypted { "-encrypted" } else { "" };
                let mut spec = BTreeMap::new();
                spec.insert("source_sha256".to_string(), source.sha256.clone());
                spec.insert("volume_size_gib".to_string(), volume_size_gib.to_string());
                spec.insert("encrypted".to_string(), encrypted.to_string());
                spec.insert("kms_key".to_string(), kms_key.clone().unwrap_or_default());
                let mut node_tags = stack.tags.clone();
                node_tags.entry("Name".into()).or_insert_with(|| format!("{} root", stack.name));
                self.add(Node {
                    id: format!("snapshot/{}-root{suffix}@{build}", stack.name),
                    stack: stack.name.clone(),
                    region: build.clone(),
                    kind: NodeKind::Snapshot,
                    name: None,
                    spec,
                    description: None,
                    tags: node_tags,
                    public: false,
                    work: Work::Upload {
                        source: stack.source.clone(),
                        size_bytes: source.size_bytes,
                        volume_size_gib,
                        encrypted,
                        kms_key,
                    },
                })
            });
            let mut image_tags = stack.tags.clone();
            image_tags.entry("Name".into()).or_insert_with(|| variant.name.clone());
            let mut primary = None;
            for region in &stack.regions {
                let kms_key = stack.kms_key(region).filter(|_| encrypted).map(str::to_string);
                let mut spec = image_spec(&variant.attrs, volume_size_gib, &source.sha256);
                spec.insert("kms_key".into(), kms_key.clone().unwrap_or_default());
                let (kind, work) = if region == build {
                    (NodeKind::Image, Work::Register { attrs: variant.attrs.clone(), volume_size_gib })
                } else {
                    let work = Work::Copy { source_region: build.clone(), encrypted, kms_key };
                    (NodeKind::ImageCopy, work)
                };
                let index = self.add(Node {
                    id: format!("image/{}@{region}", variant.name),
                    stack: stack.name.clone(),
                    region: region.clone(),
                    kind,
                    name: Some(variant.name.clone()),
                    spec,
                    description: stack.description.clone(),
                    tags: image_tags.clone(),
                    public: stack.public,
                    work,
                });
                match primary {
                    None => {
                        self.graph.add_edge(snapshot, index, ());
                        primary = Some(index);
                    }
                    Some(primary) => {
                        self.graph.add_edge(primary, index, ());
                    }
                }
            }
        }
    }

    fn add(&mut self, node: Node) -> NodeIndex {
        let id = node.id.clone();
        let index = self.graph.add_node(node);
        self.by_id.insert(id, index);
        index
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
            hasher.update(format!("\0{:?}\0{}\n", node.description, node.public).as_bytes());
        }
        hex::encode(&hasher.finalize()[..16])
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
