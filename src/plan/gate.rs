//! The boot-test gate: a test runs when the AMI it gates is new, replaced, or never passed it.

use super::claim::{Claims, preference};
use super::compare::compare;
use super::{Action, Change, Reason};
use crate::graph::{DesiredGraph, Node};
use crate::resource::Spec;
use crate::tags;

/// A test runs when the AMI it gates is new, replaced, or has never passed it.
pub(super) fn test_change(node: &Node, desired: &DesiredGraph, claims: &Claims<'_>, now: i64) -> Change {
    let Spec::Test(test) = &node.spec else { unreachable!("test nodes carry test specs") };
    let image_node = &test.image_node;
    let image = desired.get(image_node).expect("a test gates an image of the same graph");
    let mut candidates = claims.by_node.get(image_node.as_str()).cloned().unwrap_or_default();
    candidates.sort_by_key(|live| preference(image, live));
    let kept = candidates.first().filter(|live| !matches!(compare(image, live, now).action, Action::Replace));
    match kept {
        Some(live) if live.tags.contains_key(tags::TESTED) => {
            Change::new(&node.stack, &node.id, node.kind(), &node.region, Action::NoOp, Some(&live.id))
        }
        kept => {
            let mut change = Change::new(&node.stack, &node.id, node.kind(), &node.region, Action::Create, None);
            change.reasons.push(Reason::BootTest { of: kept.map(|live| live.id.clone()) });
            change
        }
    }
}
