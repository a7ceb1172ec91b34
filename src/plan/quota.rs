//! AWS's quotas that an apply would run into half-way, checked by the plan against what was
//! read: the VPCs helper builds make, and the AMIs made public.

use std::collections::{BTreeMap, HashSet};

use super::{Action, Change};
use crate::graph::{DesiredGraph, NodeKind};
use crate::observe::Observed;
use crate::resource::Spec;

/// Warns before a build's temporary VPCs would take a region past the account's VPC quota,
/// rather than fail half-way. Where Service Quotas did not answer, AWS's default (5 per region)
/// is assumed, and said to be.
pub(super) fn vpc_quota_warnings(changes: &[Change], observed: &Observed) -> Vec<String> {
    const DEFAULT_QUOTA: u32 = 5;
    let mut new: BTreeMap<&str, usize> = BTreeMap::new();
    for change in changes.iter().filter(|c| c.kind == NodeKind::Vpc && c.action == Action::Create) {
        *new.entry(change.region.as_str()).or_default() += 1;
    }
    new.into_iter()
        .filter_map(|(region, added)| {
            let existing = *observed.vpc_counts.get(region)?;
            let (quota, known) = match observed.vpc_quotas.get(region) {
                Some(quota) => (*quota, format!("the account's quota there is {quota}")),
                None => (DEFAULT_QUOTA, format!("AWS's default quota is {DEFAULT_QUOTA} per region unless it was raised")),
            };
            (existing + added > quota as usize).then(|| {
                format!(
                    "{region} has {existing} VPCs and the helper builds would add {added}: {known} (VpcLimitExceeded); free one, raise the quota, or use `network: {{ subnet: … }}`"
                )
            })
        })
        .collect()
}

/// Where the apply makes more AMIs public than the account's quota allows beside those public
/// already. The executor removes what it deletes (the old half of a replace included) before it
/// makes anything, and retires older versions last: at its peak a region holds its public AMIs
/// less those deleted first, plus every AMI the plan makes (or remakes) to be public and every
/// live one it turns public. The copies' source of a stack that does not keep it is never public.
pub(super) fn public_image_quota_warnings(
    changes: &[Change],
    desired: &DesiredGraph,
    observed: &Observed,
    now: i64,
) -> Vec<String> {
    let public: HashSet<(&str, &str)> =
        observed.resources.iter().filter(|r| r.public).map(|r| (r.region.as_str(), r.id.as_str())).collect();
    let public_now =
        |change: &Change| change.live_id.as_deref().is_some_and(|id| public.contains(&(change.region.as_str(), id)));
    // Per region: (made public, public ones removed first).
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for change in changes.iter().filter(|c| c.kind.is_image() && !c.until_copied) {
        let (adding, freeing) = counts.entry(change.region.as_str()).or_default();
        let removed_first = match change.action {
            Action::Replace => true,
            // An AMI AWS keeps through its cooldown stays public until a later run.
            Action::Delete => !change.retire && !change.protection.outlasts_run(now),
            _ => false,
        };
        if removed_first && public_now(change) {
            *freeing += 1;
        }
        let wanted_public = desired.get(&change.node).is_some_and(|n| n.sharing.public);
        let made_public = match change.action {
            Action::Create | Action::Replace => wanted_public,
            Action::Update | Action::NoOp => wanted_public && !public_now(change),
            Action::Delete => false,
        };
        if made_public {
            *adding += 1;
        }
    }
    desired
        .nodes()
        .filter_map(|node| match &node.spec {
            Spec::PublicAccess(sharing) => {
                let (adding, freeing) = counts.get(node.region.as_str()).copied().unwrap_or_default();
                sharing.over_quota(&node.region, observed.public_images.get(&node.region), adding, freeing)
            }
            _ => None,
        })
        .collect()
}
