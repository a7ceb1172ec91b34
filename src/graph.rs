//! The desired graph: every resource a set of stacks needs, with stable IDs and real dependency
//! edges (snapshot → image → copies). Apply walks it in topological order, destroy in reverse.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use sha2::{Digest, Sha256};

use crate::cloud::Sharing;
use crate::job::Job;
use crate::model::{CatalogSpec, DiskLayout, HelperSpec, Origin, Stack, TestSpec, Variant};
use crate::resource::catalog_files::{self, CatalogFiles};
use crate::resource::parameter::{self, Parameter, VariantKey};
use crate::resource::snapshot::{MadeBy, Snapshot};
pub use crate::resource::{Node, NodeKind, spec_hash};
use crate::resource::{Spec, copy, helper, image, network, public_access, security_group, test, volume};
use crate::source::{Prepared, SourceAddress};
use crate::tags;

/// The desired graph of a set of stacks.
#[derive(Debug, Default)]
pub struct DesiredGraph {
    graph: DiGraph<Node, ()>,
    by_id: HashMap<String, NodeIndex>,
    /// Stacks with retention: their current version and how many versions to keep.
    retention: BTreeMap<String, (String, u32)>,
    /// Stacks with a catalogue, and their current version.
    catalogs: BTreeMap<String, (CatalogSpec, String)>,
    /// Stacks whose build region's AMIs are only the copies' source (`build.keep_image:
    /// false`), and that region.
    seeds: BTreeMap<String, String>,
}

/// The nodes of one AMI of the stack's current version: what a catalogue parameter waits for.
struct Published<'a> {
    variant: &'a Variant,
    region: &'a str,
    image: NodeIndex,
    test: Option<NodeIndex>,
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
        let test = test::BootTest {
            image_node,
            job: job.clone(),
            instance_type: spec.instance_type.clone(),
            timeout: spec.timeout,
            subnet: spec.subnet.clone(),
            reports_bucket: spec.reports_bucket.clone(),
        };
        self.add(Node {
            id: format!("test/{}@{region}", variant.name),
            stack: stack.name.clone(),
            region: region.to_string(),
            name: None,
            spec: Spec::Test(test),
            description: None,
            tags: stack.tags.clone(),
            sharing: Sharing::default(),
            deprecation: None,
            protection: None,
            gated: false,
        })
    }

    fn add_stack(&mut self, stack: &Stack, prepared: &Prepared, test_job: Option<&Job>) {
        let test = stack.test.as_ref();
        if let (Some(version), Some(keep)) = (&stack.version, stack.keep_versions) {
            self.retention.insert(stack.name.clone(), (version.clone(), keep));
        }
        let (volume_size_gib, digest, alias) = match (prepared, &stack.source) {
            (Prepared::Upload(source), _) => {
                let size = stack.volume_size_gib.unwrap_or_else(|| source.min_volume_gib());
                (size, source.address.clone(), source.file_sha256.clone())
            }
            (Prepared::Helper(job), origin) => {
                (stack.volume_size_gib.unwrap_or(8), SourceAddress::known(helper_digest(origin, job)), None)
            }
        };
        let build = &stack.build_region;
        if !stack.keep_build_image {
            self.seeds.insert(stack.name.clone(), build.clone());
        }
        // Each version has its own snapshot: older AMIs kept by retention still use theirs.
        let versioned = stack.version.as_ref().map(|v| format!("-{v}")).unwrap_or_default();
        let mut snapshots: BTreeMap<bool, NodeIndex> = BTreeMap::new();
        // Unencrypted first: with a helper, the encrypted snapshot is a copy of the plain one.
        let encryptions: BTreeSet<bool> = stack.variants.iter().map(|v| v.attrs.encrypted).collect();
        for encrypted in encryptions {
            let plain = snapshots.get(&false).copied();
            let kms_key = stack.kms_key(build).filter(|_| encrypted).map(str::to_string);
            let suffix = if encrypted { "-encrypted" } else { "" };
            let mut node_tags = stack.tags.clone();
            node_tags.entry("Name".into()).or_insert_with(|| format!("{} root", stack.name));
            if let Some(version) = &stack.version {
                node_tags.insert(tags::VERSION.into(), version.clone());
            }
            let made_by = match (prepared, &stack.source, &stack.helper) {
                (Prepared::Upload(source), Origin::File { .. }, _) => MadeBy::Upload { source: Arc::clone(source) },
                // A helper writes one volume; the other encryption is a copy of its snapshot.
                (Prepared::Helper(_), _, Some(_)) if encrypted && plain.is_some() => MadeBy::EncryptCopy,
                (Prepared::Helper(job), _, Some(helper)) => {
                    MadeBy::Capture { job_id: job.id.clone(), timeout: helper.timeout }
                }
                _ => unreachable!("validation pairs helper jobs with helper settings"),
            };
            let spec = Snapshot {
                source_sha256: digest.clone(),
                source_alias: alias.clone(),
                volume_size_gib,
                encrypted,
                kms_key: kms_key.clone(),
                made_by,
            };
            let snapshot = self.add(Node {
                id: format!("snapshot/{}{versioned}-root{suffix}@{build}", stack.name),
                stack: stack.name.clone(),
                region: build.clone(),
                name: None,
                spec: Spec::Snapshot(spec),
                description: None,
                tags: node_tags,
                sharing: Sharing::default(),
                deprecation: None,
                protection: None,
                gated: false,
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
        let mut published = Vec::new();
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
                let ami = image::Ami {
                    attrs: variant.attrs.clone(),
                    volume_size_gib,
                    source_sha256: digest.clone(),
                    source_alias: alias.clone(),
                    kms_key,
                };
                let spec = if region == build {
                    Spec::Image(image::Image { ami })
                } else {
                    Spec::Copy(copy::Copy { ami, source_region: build.clone() })
                };
                // A source of copies only: private, never deprecated, gone once copied.
                let seed = region == build && !stack.keep_build_image;
                if stack.sharing.public && !seed {
                    self.add_public_access(stack, region);
                }
                let tested_here = test.is_some_and(|t| region == build || t.all_regions);
                let index = self.add(Node {
                    id: format!("image/{}@{region}", variant.name),
                    stack: stack.name.clone(),
                    region: region.clone(),
                    name: Some(variant.name.clone()),
                    spec,
                    description: stack.description.clone(),
                    tags: image_tags.clone(),
                    sharing: if seed { Sharing::default() } else { stack.sharing.clone() },
                    deprecation: stack.deprecation.filter(|_| !seed),
                    protection: stack.protection.filter(|_| !seed),
                    gated: tested_here,
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
                let mut gate = None;
                if let (Some(spec), Some(job), true) = (test, test_job, tested_here) {
                    let test = self.add_test(stack, variant, region, spec, job);
                    self.graph.add_edge(index, test, ());
                    primary_test.get_or_insert(test);
                    gate = Some(test);
                }
                if !seed {
                    published.push(Published { variant, region, image: index, test: gate });
                }
            }
        }
        if let (Some(catalog), Some(version)) = (&stack.catalog, &stack.version) {
            self.catalogs.insert(stack.name.clone(), (catalog.clone(), version.clone()));
            self.add_catalog(stack, catalog, version, &published);
        }
    }

    /// The parameters of the current version's AMIs, each after its AMI (and its test), and the
    /// parameters of each channel: a channel that points at the current version moves only
    /// after every AMI of it, in every region, is done.
    fn add_catalog(&mut self, stack: &Stack, catalog: &CatalogSpec, version: &str, published: &[Published]) {
        let mut tags = stack.tags.clone();
        tags.insert(tags::VERSION.into(), version.to_string());
        let all: Vec<NodeIndex> = published.iter().flat_map(|p| std::iter::once(p.image).chain(p.test)).collect();
        let mut parameters = Vec::new();
        for one in published {
            let variant = VariantKey::of(&one.variant.attrs);
            let image_node = format!("image/{}@{}", one.variant.name, one.region);
            let mut wanted = Vec::new();
            for template in &catalog.version_templates {
                let name = variant.render(template, &stack.name, version, None);
                wanted.push((name, None, version, Some(image_node.clone())));
            }
            for (channel, target) in &catalog.channels {
                let current = target == version;
                for template in &catalog.channel_templates {
                    let name = variant.render(template, &stack.name, target, Some(channel));
                    wanted.push((name, Some(channel.clone()), target.as_str(), current.then(|| image_node.clone())));
                }
            }
            for (name, channel, target, image_node) in wanted {
                let is_channel = channel.is_some();
                let waits_for_all = is_channel && image_node.is_some();
                let spec = Parameter {
                    name: name.clone(),
                    channel,
                    version: target.to_string(),
                    variant: variant.clone(),
                    image_node,
                    overwrite: catalog.overwrite,
                };
                let index = self.add(Node {
                    id: parameter::node_id(&name, one.region),
                    stack: stack.name.clone(),
                    region: one.region.to_string(),
                    name: None,
                    spec: Spec::Parameter(spec),
                    description: None,
                    tags: if is_channel { stack.tags.clone() } else { tags.clone() },
                    sharing: stack.sharing.clone(),
                    deprecation: None,
                    protection: None,
                    gated: false,
                });
                let after: Vec<NodeIndex> = if waits_for_all {
                    all.clone()
                } else if is_channel {
                    // An earlier version's AMIs: found live while planning.
                    vec![]
                } else {
                    std::iter::once(one.image).chain(one.test).collect()
                };
                for dependency in after {
                    self.graph.add_edge(dependency, index, ());
                }
                parameters.push(index);
            }
        }
        if let Some(s3) = &catalog.s3 {
            let index = self.add(Node {
                id: catalog_files::node_id(&s3.bucket, &s3.prefix, &s3.region),
                stack: stack.name.clone(),
                region: s3.region.clone(),
                name: None,
                spec: Spec::CatalogFiles(CatalogFiles { bucket: s3.bucket.clone(), prefix: s3.prefix.clone() }),
                description: None,
                tags: BTreeMap::new(),
                sharing: Sharing::default(),
                deprecation: None,
                protection: None,
                gated: false,
            });
            // The files name every AMI and parameter of the stack: written after all of them.
            for dependency in all.into_iter().chain(parameters) {
                self.graph.add_edge(dependency, index, ());
            }
        }
    }

    /// The account's block public access settings in `region` must allow public AMIs: one
    /// read-only node per region, whichever stack first makes AMIs public there.
    fn add_public_access(&mut self, stack: &Stack, region: &str) {
        let id = format!("public-access@{region}");
        if self.by_id.contains_key(&id) {
            return;
        }
        self.add(Node {
            id,
            stack: stack.name.clone(),
            region: region.to_string(),
            name: None,
            spec: Spec::PublicAccess(public_access::PublicSharing),
            description: None,
            tags: BTreeMap::new(),
            sharing: Sharing::default(),
            deprecation: None,
            protection: None,
            gated: false,
        });
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
        let node = |spec: Spec| {
            let kind = spec.kind();
            let mut tags = stack.tags.clone();
            tags.insert("Name".into(), format!("amiplan {} {}", stack.name, kind.as_str()));
            Node {
                id: format!("{}/{}@{region}", kind.as_str(), stack.name),
                stack: stack.name.clone(),
                region: region.clone(),
                name: None,
                spec,
                description: None,
                tags,
                sharing: Sharing::default(),
                deprecation: None,
                protection: None,
                gated: false,
            }
        };
        let existing = helper.subnet.clone();
        let network = match &existing {
            Some(_) => {
                let group = security_group::SecurityGroup { existing_subnet: existing.clone() };
                vec![self.add(node(Spec::SecurityGroup(group)))]
            }
            None => {
                let vpc = self.add(node(Spec::Vpc(network::Vpc { cidr: VPC_CIDR.into() })));
                let subnet = self.add(node(Spec::Subnet(network::Subnet { cidr: SUBNET_CIDR.into() })));
                let gateway = self.add(node(Spec::InternetGateway(network::Gateway)));
                let routes = self.add(node(Spec::RouteTable(network::RouteTable)));
                let group =
                    self.add(node(Spec::SecurityGroup(security_group::SecurityGroup { existing_subnet: None })));
                self.graph.add_edge(vpc, subnet, ());
                self.graph.add_edge(vpc, gateway, ());
                self.graph.add_edge(subnet, routes, ());
                self.graph.add_edge(gateway, routes, ());
                self.graph.add_edge(subnet, group, ());
                vec![subnet, routes, group]
            }
        };
        let volume = self.add(node(Spec::Volume(volume::Volume {
            size_gib: target.size_gib,
            volume_type: helper.volume_type,
            encrypted: target.encrypted,
            kms_key: target.kms_key,
            existing_subnet: existing.clone(),
        })));
        let instance = self.add(node(Spec::Helper(helper::Helper {
            ami: helper.ami.clone(),
            instance_type: helper.instance_type.clone(),
            spot: helper.spot,
            job: job.clone(),
            existing_subnet: existing,
            scratch_gib: match &stack.source {
                // The tarball and the unpacked tree, each up to the volume's size.
                Origin::Bootstrap(bootstrap) if bootstrap.layout == DiskLayout::WholeDisk => 2 * target.size_gib,
                // The download (image or tarball), at most the volume's size: a partitioned
                // system is unpacked straight onto the volume.
                _ => target.size_gib,
            },
        })));
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
        self.dependencies(id).into_iter().filter_map(|d| self.get(d)).find(|n| n.kind() == kind)
    }

    fn add(&mut self, node: Node) -> NodeIndex {
        let id = node.id.clone();
        let index = self.graph.add_node(node);
        self.by_id.insert(id, index);
        index
    }

    /// The catalogue of `stack` and its current version, if it has one.
    pub fn catalog(&self, stack: &str) -> Option<(&CatalogSpec, &str)> {
        self.catalogs.get(stack).map(|(catalog, version)| (catalog, version.as_str()))
    }

    /// The build region of `stack` when its AMIs there are only the copies' source
    /// (`build.keep_image: false`).
    pub fn seed_region(&self, stack: &str) -> Option<&str> {
        self.seeds.get(stack).map(String::as_str)
    }

    /// Whether `node` is part of the copies' source that is not kept: an AMI of the build
    /// region, its boot test or a snapshot behind it, of a stack with `build.keep_image: false`.
    pub fn is_seed(&self, node: &Node) -> bool {
        self.seed_region(&node.stack) == Some(node.region.as_str())
            && matches!(node.kind(), NodeKind::Image | NodeKind::Snapshot | NodeKind::Test)
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
        self.nodes().find(|n| n.kind().is_image() && n.region == region && n.name.as_deref() == Some(name))
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
            let (description, deprecation, protection) = (&node.description, node.deprecation, node.protection);
            hasher.update(format!("\0{description:?}\0{sharing}\0{deprecation:?}\0{protection:?}\n").as_bytes());
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
