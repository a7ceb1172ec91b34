//! One node against the live resource claimed for it: the change that takes one to the other.

use super::{Action, AttrDiff, Attribute, Change, Reason};
use crate::cloud::{LiveResource, Sharing, State};
use crate::graph::Node;
use crate::tags;

/// The change that takes `live` to `node`.
pub(super) fn compare(node: &Node, live: &LiveResource, now: i64) -> Change {
    judge(node, live, now).0
}

/// The change that takes `live` to `node`, and what of the manifest the plan leaves undone
/// because AWS would refuse it (said in the change's reasons too, and warned about).
pub(super) fn judge(node: &Node, live: &LiveResource, now: i64) -> (Change, Option<Reason>) {
    if node.gated && !live.tags.contains_key(tags::TESTED) {
        // Until its test passes, an AMI stays private, is not deprecated and is not protected.
        let untested =
            Node { gated: false, sharing: Sharing::default(), deprecation: None, protection: None, ..node.clone() };
        return judge(&untested, live, now);
    }
    let mut change = Change::new(&node.stack, &node.id, node.kind(), &node.region, Action::NoOp, Some(&live.id));
    if let Some(why) = node.spec.failed(live).or_else(|| node.spec.stale(live)) {
        change.action = Action::Replace;
        change.reasons.push(why);
        return (change, None);
    }
    if let Some(live_hash) = live.tags.get(tags::SPEC)
        && *live_hash != node.spec_hash_for(live)
    {
        change.action = Action::Replace;
        change.diffs = spec_diffs(node, live);
        change.reasons.push(if change.diffs.is_empty() {
            Reason::SpecChanged { live: live_hash.clone(), wanted: node.spec_hash() }
        } else {
            Reason::CannotChangeInPlace { attributes: change.diffs.iter().map(|d| d.attribute.to_string()).collect() }
        });
        return (change, None);
    }
    if node.kind().is_transient() {
        // Never updated in place: adopted as they are (a running helper keeps running).
        return (change, None);
    }
    if live.state == State::Disabled {
        // Its owner stopped its launches on purpose, and AWS refuses to share it: neither
        // replaced nor changed, and said so.
        let why = Reason::Disabled { id: live.id.clone() };
        change.reasons.push(why.clone());
        return (change, Some(why));
    }
    if live.node().is_none() {
        change.reasons.push(Reason::Adopt { id: live.id.clone() });
    }
    if live.state == State::Pending {
        change.reasons.push(Reason::StillPending { id: live.id.clone() });
    }
    change.diffs = node.spec.in_place(node, live, now);
    if !change.diffs.is_empty() || !change.reasons.is_empty() {
        change.action = Action::Update;
    }
    let refused = node.spec.refused(node, live, now);
    change.reasons.extend(refused.clone());
    (change, refused)
}

pub(super) fn spec_diffs(node: &Node, live: &LiveResource) -> Vec<AttrDiff> {
    let before = live.tags.get(tags::ATTRS).map(|t| tags::decode_spec(t)).unwrap_or_default();
    let mut diffs = Vec::new();
    for (key, after) in &node.spec.immutable() {
        let before = match key.as_str() {
            "source_sha256" => live.tags.get(tags::SOURCE).filter(|s| node.spec.source_alias() != Some(s.as_str())),
            _ => before.get(key),
        };
        if before.is_some_and(|b| b != after) {
            let attribute = Attribute::Immutable(key.clone());
            diffs.push(AttrDiff { attribute, before: before.cloned(), after: Some(after.clone()) });
        }
    }
    diffs
}
