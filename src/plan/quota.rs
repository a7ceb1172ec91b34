//! AWS's quotas that an apply would run into half-way, checked by the plan against what was
//! read: the VPCs helper builds make, the AMIs made public, and whom one AMI is shared with.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Action, Change};
use crate::cloud::aws::quota_code;
use crate::cloud::{Quota, Sharing};
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

/// Where AMIs are to be shared with more accounts, organizations and OUs each than the account's
/// "AMI sharing" quota allows: AWS refuses the launch permissions past it, after the AMIs are
/// made. Only AMIs that gain an entity count; where Service Quotas did not answer, AWS's default
/// is assumed, and said to be.
pub(super) fn sharing_quota_warnings(changes: &[Change], desired: &DesiredGraph, observed: &Observed) -> Vec<String> {
    let live_sharing: HashMap<(&str, &str), &Sharing> = observed
        .resources
        .iter()
        .filter_map(|r| Some(((r.region.as_str(), r.id.as_str()), r.sharing.as_ref()?)))
        .collect();
    // Per region: the AMIs past the quota, and the most entities one of them is to be shared with.
    let mut over: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for change in changes.iter().filter(|c| c.kind.is_image() && !c.until_copied && c.action != Action::Delete) {
        let Some(wanted) = desired.get(&change.node).map(|n| &n.sharing) else { continue };
        let quota = observed.sharing_quotas.get(&change.region).copied();
        let allowed = quota.map_or(Sharing::DEFAULT_ENTITY_QUOTA, |q| q as usize);
        if wanted.entities() <= allowed {
            continue;
        }
        let live = change.live_id.as_deref().and_then(|id| live_sharing.get(&(change.region.as_str(), id)));
        let gains = match change.action {
            Action::Create | Action::Replace => true,
            _ => live.is_none_or(|live| wanted.minus(live).entities() > 0),
        };
        if gains {
            let (amis, most) = over.entry(change.region.as_str()).or_default();
            *amis += 1;
            *most = (*most).max(wanted.entities());
        }
    }
    let (service, code) = quota_code(Quota::ImageSharing);
    over.into_iter()
        .map(|(region, (amis, most))| {
            let known = match observed.sharing_quotas.get(region) {
                Some(quota) => format!("the account's quota there is {quota} per AMI"),
                None => format!("AWS's default quota is {} per AMI unless it was raised", Sharing::DEFAULT_ENTITY_QUOTA),
            };
            format!(
                "{region}: {amis} AMI(s) are to be shared with {most} accounts, organizations and OUs each: {known} (Service Quotas: Amazon EC2, \"AMI sharing\"), and AWS refuses the launch permissions past it once the AMIs are made; share with organizations or OUs instead (the accounts in them do not count), or raise the quota (`aws service-quotas request-service-quota-increase --service-code {service} --quota-code {code} --desired-value N --region {region}`)"
            )
        })
        .collect()
}
