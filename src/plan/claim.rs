//! Claiming live resources for desired nodes: by `amiplan:node` tag, or by an AMI's name.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::cloud::{LiveResource, ResourceKind, State};
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::observe::Observed;
use crate::tags;

pub(super) struct Claims<'a> {
    pub(super) by_node: HashMap<&'a str, Vec<&'a LiveResource>>,
    pub(super) orphans: Vec<&'a LiveResource>,
}

/// Decides which live resources belong to which desired node: by `amiplan:node` tag, or for AMIs
/// carrying no amiplan tags at all, by their deterministic name (adoption after a crash).
pub(super) fn claim<'a>(desired: &'a DesiredGraph, observed: &'a Observed, stacks: &BTreeSet<String>) -> Claims<'a> {
    let mut claims = Claims { by_node: HashMap::new(), orphans: Vec::new() };
    // Snapshots made by CopyImage carry their AMI's tags; they live and die with that AMI.
    let behind_images: HashSet<(&str, &str)> = observed
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Image)
        .flat_map(|image| image.snapshot_ids.iter().map(|s| (image.region.as_str(), s.as_str())))
        .collect();
    for live in &observed.resources {
        let owned = live.stack().is_some_and(|s| stacks.contains(s));
        // Test nodes own nothing: an instance left by an interrupted test is an orphan.
        let tagged_node = live
            .node()
            .and_then(|id| desired.get(id))
            .filter(|n| n.region == live.region && n.kind() != NodeKind::Test);
        let expected_kind = |node: &Node| node.kind().resource_kind() == Some(live.kind);
        if owned {
            match tagged_node.filter(|n| expected_kind(n) && Some(n.stack.as_str()) == live.stack()) {
                Some(node) => claims.by_node.entry(node.id.as_str()).or_default().push(live),
                None if live.kind == ResourceKind::Snapshot && behind_images.contains(&(&live.region, &live.id)) => {}
                None => claims.orphans.push(live),
            }
        } else if live.stack().is_none() && live.kind == ResourceKind::Image {
            let named = live.name.as_deref().and_then(|name| desired.image_named(&live.region, name));
            if let Some(node) = named {
                claims.by_node.entry(node.id.as_str()).or_default().push(live);
            }
        }
    }
    claims
}

/// Sort key among several live resources for one node: the healthiest, matching, oldest first.
/// A disabled AMI is not broken, but an available one serves the node better.
pub(super) fn preference<'a>(node: &Node, live: &'a LiveResource) -> (bool, bool, bool, Option<&'a str>, &'a str) {
    let broken = node.spec.failed(live).is_some() || live.state == State::Disabled;
    let mismatch = live.tags.get(tags::SPEC).is_some_and(|h| *h != node.spec_hash_for(live));
    let untagged = live.node().is_none();
    (broken, mismatch, untagged, live.created.as_deref(), live.id.as_str())
}
