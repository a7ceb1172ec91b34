//! `build.keep_image: false`: the build region's AMIs, their boot tests and the snapshots behind
//! them are only the copies' source. They are made when some copy must be made, kept while some
//! copy is still to change, and removed once every copy exists (by apply, right after the
//! copies; by the next plan otherwise).

use std::collections::BTreeSet;

use super::Action;
use super::claim::{Claims, preference};
use super::compare::compare;
use crate::graph::{DesiredGraph, Node, NodeKind};

/// The seed nodes this plan needs.
#[derive(Debug, Default)]
pub(super) struct Seeds {
    /// Needed to make a copy: made when missing.
    make: BTreeSet<String>,
    /// Behind a copy that is still to change (pending, or being updated): kept if they exist.
    keep: BTreeSet<String>,
}

impl Seeds {
    pub(super) fn of(desired: &DesiredGraph, claims: &Claims<'_>, now: i64) -> Seeds {
        let mut seeds = Seeds::default();
        for copy in desired.nodes().filter(|n| n.kind() == NodeKind::ImageCopy) {
            if desired.seed_region(&copy.stack).is_none() {
                continue;
            }
            let action = copy_action(copy, claims, now);
            if action == Action::NoOp {
                continue;
            }
            let sources = seed_ancestors(desired, &copy.id);
            if matches!(action, Action::Create | Action::Replace) {
                seeds.make.extend(sources.iter().cloned());
            }
            seeds.keep.extend(sources);
        }
        seeds
    }

    /// Whether the plan wants seed node `id`, given whether what it is (for a test: the AMI it
    /// tests) exists: made when a copy needs it, kept while a copy is still to change.
    pub(super) fn wanted(&self, id: &str, exists: bool) -> bool {
        self.make.contains(id) || (exists && self.keep.contains(id))
    }
}

/// The action the main plan takes on a copy, as far as its source is concerned.
fn copy_action(copy: &Node, claims: &Claims<'_>, now: i64) -> Action {
    let mut candidates = claims.by_node.get(copy.id.as_str()).cloned().unwrap_or_default();
    candidates.sort_by_key(|live| preference(copy, live));
    candidates.first().map_or(Action::Create, |live| compare(copy, live, now).action)
}

/// The seed nodes `id` depends on, directly or through other seed nodes.
fn seed_ancestors(desired: &DesiredGraph, id: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(next) = stack.pop() {
        for dependency in desired.dependencies(&next) {
            let Some(node) = desired.get(dependency) else { continue };
            if desired.is_seed(node) && found.insert(node.id.clone()) {
                stack.push(node.id.clone());
            }
        }
    }
    found
}
