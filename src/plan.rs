//! The planner: a pure function of (desired graph, observed state) → an ordered list of changes,
//! each with its reasons. No client, no clock, no randomness: the same inputs give the same plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::cloud::Sharing;
use crate::cloud::{LiveResource, ResourceKind, State};
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::manifest::raw::HelperAmi;
use crate::observe::{Observed, helper_ami_key};
use crate::resource::Spec;
use crate::tags;

/// Version of the saved-plan format; a plan file of another version is refused.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NoOp,
    Create,
    /// Change tags, description or launch permissions in place (or wait for a pending resource).
    Update,
    /// Delete the live resource and create it again: something AWS cannot change differs.
    Replace,
    Delete,
}

pub use crate::resource::{AttrDiff, Attribute};

/// What happens to one node (or one owned resource no node wants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub stack: String,
    pub node: String,
    pub kind: NodeKind,
    pub region: String,
    pub action: Action,
    /// The live resource acted on (absent for creates).
    pub live_id: Option<String>,
    pub reasons: Vec<String>,
    pub diffs: Vec<AttrDiff>,
    /// With AMI deletes: the snapshots behind the AMI that go with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_snapshots: Vec<String>,
    /// A resource created for a build and removed after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// A delete that waits until the stack's new version is available and published (retention).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retire: bool,
    /// Values looked up while planning that apply must use as they were shown (e.g. the helper's
    /// base AMI resolved from a name filter).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolved: BTreeMap<String, String>,
}

impl Change {
    fn new(stack: &str, node: &str, kind: NodeKind, region: &str, action: Action, live_id: Option<&str>) -> Change {
        Change {
            stack: stack.to_string(),
            node: node.to_string(),
            kind,
            region: region.to_string(),
            action,
            live_id: live_id.map(str::to_string),
            reasons: vec![],
            diffs: vec![],
            with_snapshots: vec![],
            transient: kind.is_transient(),
            retire: false,
            resolved: BTreeMap::new(),
        }
    }
}

pub use crate::resource::helper::{RESOLVED_AMI, RESOLVED_PUBLIC_ADDRESS};
pub use crate::resource::network::RESOLVED_ZONE;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub account: String,
    pub destroy: bool,
    /// Digest of the desired graph the plan was made for.
    pub desired: String,
    /// Fingerprint of the live state the plan was made against.
    pub observed: String,
    pub changes: Vec<Change>,
    /// Preflight findings that do not stop the plan but will make part of it fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::NoOp => summary.unchanged += 1,
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Replace => summary.replace += 1,
                Action::Delete => summary.delete += 1,
            }
        }
        summary
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }
}

/// Plans `stacks` (the stacks whose tagged resources count as owned) towards `desired`, or
/// towards nothing at all when `destroy` is set. `now` (seconds since the epoch) is the only
/// time the planner knows: it reads no clock.
pub fn plan(desired: &DesiredGraph, observed: &Observed, stacks: &BTreeSet<String>, destroy: bool, now: i64) -> Plan {
    let claims = claim(desired, observed, stacks);
    let building = if destroy { BTreeSet::new() } else { stacks_building(desired, &claims, now) };
    let mut changes = Vec::new();
    // Destroy lists (and runs) dependents before what they depend on.
    let mut order = desired.topological();
    if destroy {
        order.reverse();
    }
    let mut network_warnings = Vec::new();
    let mut account_warnings = Vec::new();
    for node in order {
        if let Spec::PublicAccess(sharing) = &node.spec {
            // Read-only: judged against what was read, never a change.
            if !destroy {
                let images = observed.block_public_access.get(&node.region);
                let snapshots = observed.snapshot_block_public_access.get(&node.region);
                account_warnings.extend(sharing.refusals(&node.region, images, snapshots));
            }
            continue;
        }
        if node.kind == NodeKind::Test {
            // A test has nothing to destroy: its record is a tag on the AMI.
            if !destroy {
                let mut change = test_change(node, desired, &claims, now);
                if let Some(warning) = resolve_placement(node, desired, observed, &mut change) {
                    network_warnings.push(warning);
                }
                changes.push(change);
            }
            continue;
        }
        let mut candidates = claims.by_node.get(node.id.as_str()).cloned().unwrap_or_default();
        candidates.sort_by_key(|live| preference(node, live));
        if destroy {
            changes.extend(
                candidates.iter().map(|live| delete(node.stack.clone(), node.id.clone(), node.kind, live, "destroy")),
            );
            continue;
        }
        if node.kind.is_transient() && !building.contains(&node.stack) {
            // The snapshot exists: the build's leftovers go, and nothing is built.
            changes.extend(candidates.iter().map(|live| {
                delete(
                    node.stack.clone(),
                    node.id.clone(),
                    node.kind,
                    live,
                    "transient: the build it served is finished",
                )
            }));
            continue;
        }
        let mut candidates = candidates.into_iter();
        let mut change = match candidates.next() {
            None => Change::new(&node.stack, &node.id, node.kind, &node.region, Action::Create, None),
            Some(live) if node.gated && !live.tags.contains_key(tags::TESTED) => {
                // Until its test passes, an AMI stays private and is not deprecated.
                let untested = Node { sharing: Sharing::default(), deprecation: None, ..node.clone() };
                compare(&untested, live, now)
            }
            Some(live) => compare(node, live, now),
        };
        if node.kind.is_transient() {
            change.reasons.insert(0, "transient: created for the build, removed after".into());
        }
        resolve_helper_ami(node, observed, &mut change);
        if let Some(warning) = resolve_helper_network(node, observed, &mut change) {
            network_warnings.push(warning);
        }
        if let Some(warning) = resolve_placement(node, desired, observed, &mut change) {
            network_warnings.push(warning);
        }
        network_warnings
            .extend(change.reasons.iter().filter(|r| r.starts_with(REFUSED)).map(|r| format!("{}: {r}", change.node)));
        changes.push(change);
        for duplicate in candidates {
            let reason = format!("duplicate of {}", changes.last().and_then(|c| c.live_id.clone()).unwrap_or_default());
            changes.push(delete(node.stack.clone(), node.id.clone(), node.kind, duplicate, &reason));
        }
    }
    let verdicts = if destroy { HashMap::new() } else { retention(desired, &claims.orphans) };
    for live in claims.orphans {
        let reason = if destroy { "destroy" } else { "no longer in the manifests" };
        let kind = NodeKind::of_resource(live.kind);
        let node =
            live.node().map(str::to_string).unwrap_or_else(|| format!("{}/{}@{}", kind.as_str(), live.id, live.region));
        let mut change = delete(live.stack().unwrap_or_default().to_string(), node, kind, live, reason);
        match verdicts.get(&(live.region.as_str(), live.id.as_str())) {
            Some(Retention::Keep(why)) => {
                change.action = Action::NoOp;
                change.reasons = vec![why.clone()];
            }
            Some(Retention::Retire(why)) => {
                change.retire = true;
                change.reasons = vec![why.clone()];
            }
            None => {}
        }
        if change.action == Action::Delete
            && live.kind == ResourceKind::Image
            && let Some(template) = observed.launch_templates.get(&live.region).and_then(|t| t.get(&live.id))
        {
            change.action = Action::NoOp;
            change.retire = false;
            change.reasons = vec![format!("kept: launch template `{template}` still uses it")];
        }
        changes.push(change);
    }
    assign_snapshots(&mut changes, observed);
    let mut warnings = account_warnings;
    warnings.extend(network_warnings);
    warnings.extend(vpc_quota_warnings(&changes, observed));
    warnings.extend(observed.encrypted_by_default.iter().map(|region| {
        format!(
            "EBS encryption by default is on in {region}: the `unencrypted` AMIs made there will be encrypted with the account's default key, and AWS refuses to make such AMIs public or to share them with other accounts; turn it off for the build (`aws ec2 disable-ebs-encryption-by-default --region {region}`) or publish encrypted variants with a customer managed key"
        )
    }));
    warnings.extend(observed.denied_regions.iter().map(|(region, why)| {
        format!("{region} was skipped: access is denied there ({why}); no manifest targets it, so nothing amiplan owns can be found or removed there")
    }));
    Plan {
        format: PLAN_FORMAT,
        account: observed.account.clone(),
        destroy,
        desired: desired.digest(),
        observed: observed.fingerprint(),
        changes,
        warnings,
    }
}

/// Stacks whose helper build must run: the snapshot it feeds has no usable live resource.
fn stacks_building(desired: &DesiredGraph, claims: &Claims<'_>, now: i64) -> BTreeSet<String> {
    desired
        .nodes()
        .filter(|node| node.spec.is_capture())
        .filter(|node| {
            let mut candidates = claims.by_node.get(node.id.as_str()).cloned().unwrap_or_default();
            candidates.sort_by_key(|live| preference(node, live));
            candidates
                .first()
                .is_none_or(|live| matches!(compare(node, live, now).action, Action::Create | Action::Replace))
        })
        .map(|node| node.stack.clone())
        .collect()
}

enum Retention {
    Keep(String),
    Retire(String),
}

/// For stacks with retention: which owned resources of earlier versions stay (the newest `keep`
/// − 1 versions, by their newest creation time) and which go once the new version is out.
fn retention<'a>(desired: &DesiredGraph, orphans: &[&'a LiveResource]) -> HashMap<(&'a str, &'a str), Retention> {
    let mut versions: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
    for live in orphans {
        let (Some(stack), Some(version)) = (live.stack(), live.tags.get(tags::VERSION)) else { continue };
        if desired.retention(stack).is_some_and(|(current, _)| current != version) {
            let newest = versions.entry((stack, version.as_str())).or_default();
            *newest = (*newest).max(live.created.as_deref());
        }
    }
    let mut verdicts = HashMap::new();
    for live in orphans {
        let (Some(stack), Some(version)) = (live.stack(), live.tags.get(tags::VERSION)) else { continue };
        let Some((current, keep)) = desired.retention(stack) else { continue };
        if current == version {
            continue;
        }
        let mut older: Vec<(Option<&str>, &str)> =
            versions.iter().filter(|((s, _), _)| *s == stack).map(|((_, v), created)| (*created, *v)).collect();
        older.sort_by(|a, b| b.cmp(a));
        let rank = older.iter().position(|(_, v)| *v == version.as_str()).unwrap_or(usize::MAX);
        let verdict = if rank + 1 < keep as usize {
            Retention::Keep(format!("kept by retention: version {version} is one of the {keep} newest"))
        } else {
            Retention::Retire(format!(
                "retention keeps {keep} version(s): {version} goes once {current} is available and published"
            ))
        };
        verdicts.insert((live.region.as_str(), live.id.as_str()), verdict);
    }
    verdicts
}

/// A test runs when the AMI it gates is new, replaced, or has never passed it.
fn test_change(node: &Node, desired: &DesiredGraph, claims: &Claims<'_>, now: i64) -> Change {
    let Spec::Test(test) = &node.spec else { unreachable!("test nodes carry test specs") };
    let image_node = &test.image_node;
    let image = desired.get(image_node).expect("a test gates an image of the same graph");
    let mut candidates = claims.by_node.get(image_node.as_str()).cloned().unwrap_or_default();
    candidates.sort_by_key(|live| preference(image, live));
    let kept = candidates.first().filter(|live| !matches!(compare(image, live, now).action, Action::Replace));
    match kept {
        Some(live) if live.tags.contains_key(tags::TESTED) => {
            Change::new(&node.stack, &node.id, node.kind, &node.region, Action::NoOp, Some(&live.id))
        }
        kept => {
            let mut change = Change::new(&node.stack, &node.id, node.kind, &node.region, Action::Create, None);
            let what = kept.map_or("the new AMI".to_string(), |live| live.id.clone());
            change.reasons.push(format!("boot test of {what}: copies and publication wait for it to pass"));
            change
        }
    }
}

/// Shows (and pins for apply) the AMI a helper will boot.
fn resolve_helper_ami(node: &Node, observed: &Observed, change: &mut Change) {
    let Spec::Helper(helper) = &node.spec else { return };
    let resolved = match &helper.ami {
        HelperAmi::Id(id) => Some(id.clone()),
        HelperAmi::Filter(filter) => {
            let selector = format!("owner={} name={}", filter.owner, filter.name);
            let found = observed.helper_amis.get(&helper_ami_key(&selector, &node.region)).cloned();
            if found.is_none() {
                change.reasons.push(format!(
                    "no AMI owned by {} matches `{}` in {}: the helper cannot start",
                    filter.owner, filter.name, node.region
                ));
            }
            found
        }
    };
    if let Some(id) = resolved {
        if change.action != Action::NoOp {
            change.reasons.push(format!("boots {id}"));
        }
        change.resolved.insert(RESOLVED_AMI.into(), id);
    }
}

/// Shows how a helper that will start reaches its image's URL, pins whether it needs a public
/// address, and returns a warning when its existing subnet has no way out.
fn resolve_helper_network(node: &Node, observed: &Observed, change: &mut Change) -> Option<String> {
    let Spec::Helper(helper) = &node.spec else { return None };
    let existing_subnet = &helper.existing_subnet;
    if !matches!(change.action, Action::Create | Action::Replace) {
        return None;
    }
    let (public, reason) = match existing_subnet {
        None => {
            (true, "reaches the image URL with a public address through the temporary internet gateway".to_string())
        }
        Some(subnet) => match observed.routes_out.get(&helper_ami_key(subnet, &node.region)) {
            Some(Some(gateway)) if gateway.starts_with("igw-") => (
                true,
                format!("reaches the image URL with a public address through {gateway} ({subnet}'s default route)"),
            ),
            Some(Some(nat)) => (false, format!("reaches the image URL through {nat} ({subnet}'s default route)")),
            Some(None) => {
                change.reasons.push(format!("{subnet} has no route out: the helper cannot download its image"));
                return Some(format!(
                    "{}: {subnet} has no 0.0.0.0/0 route to an attached internet gateway or a NAT gateway, so the helper cannot reach its image's URL; give the subnet a route out or use `network: create`",
                    node.id
                ));
            }
            None => return None,
        },
    };
    change.reasons.push(reason);
    change.resolved.insert(RESOLVED_PUBLIC_ADDRESS.into(), public.to_string());
    None
}

/// Places what runs an instance in an Availability Zone that offers its type (AWS refuses
/// RunInstances elsewhere with `Unsupported`): the temporary subnet of a helper build is made in
/// the first such zone, a boot test picks a default subnet in one; an existing subnet in a zone
/// without the type is a warning.
fn resolve_placement(node: &Node, desired: &DesiredGraph, observed: &Observed, change: &mut Change) -> Option<String> {
    if !matches!(change.action, Action::Create | Action::Replace) {
        return None;
    }
    let (instance_type, subnet) = match &node.spec {
        Spec::Subnet(_) => {
            let helper = desired
                .nodes()
                .find(|n| n.stack == node.stack && n.region == node.region && n.kind == NodeKind::Helper)?;
            (helper.spec.instance()?.0, None)
        }
        Spec::Helper(helper) => (helper.instance_type.as_str(), Some(helper.existing_subnet.as_deref()?)),
        Spec::Test(test) => (test.instance_type.as_str(), test.subnet.as_deref()),
        _ => return None,
    };
    let zones = observed.zones.get(&helper_ami_key(instance_type, &node.region))?;
    if zones.is_empty() {
        change.reasons.push(format!("no Availability Zone of {} offers {instance_type}", node.region));
        return Some(format!(
            "{}: no Availability Zone of {} offers {instance_type}; choose another instance type",
            node.id, node.region
        ));
    }
    match subnet {
        Some(subnet) => {
            let zone = observed.subnet_zones.get(&helper_ami_key(subnet, &node.region))?;
            if !zones.contains(zone) {
                change.reasons.push(format!("{subnet} is in {zone}, which does not offer {instance_type}"));
                return Some(format!(
                    "{}: {subnet} is in {zone}, where {instance_type} is not offered (AWS refuses the launch); it is offered in {}",
                    node.id,
                    zones.join(", ")
                ));
            }
        }
        None if node.kind == NodeKind::Subnet => {
            change.reasons.push(format!("in {}, which offers {instance_type}", zones[0]));
            change.resolved.insert(RESOLVED_ZONE.into(), zones[0].clone());
        }
        None => {
            change
                .reasons
                .push(format!("in a default subnet of a zone that offers {instance_type} ({})", zones.join(", ")));
            change.resolved.insert(RESOLVED_ZONE.into(), zones.join(","));
        }
    }
    None
}

/// AWS allows 5 VPCs per region by default (a quota that can be raised): warn before a build's
/// temporary VPCs would exceed it, rather than fail half-way.
fn vpc_quota_warnings(changes: &[Change], observed: &Observed) -> Vec<String> {
    const DEFAULT_QUOTA: usize = 5;
    let mut new: BTreeMap<&str, usize> = BTreeMap::new();
    for change in changes.iter().filter(|c| c.kind == NodeKind::Vpc && c.action == Action::Create) {
        *new.entry(change.region.as_str()).or_default() += 1;
    }
    new.into_iter()
        .filter_map(|(region, added)| {
            let existing = *observed.vpc_counts.get(region)?;
            (existing + added > DEFAULT_QUOTA).then(|| {
                format!(
                    "{region} has {existing} VPCs and the helper builds would add {added}: AWS's default quota is {DEFAULT_QUOTA} per region (VpcLimitExceeded) unless it was raised; free one, raise the quota, or use `network: {{ subnet: … }}`"
                )
            })
        })
        .collect()
}

struct Claims<'a> {
    by_node: HashMap<&'a str, Vec<&'a LiveResource>>,
    orphans: Vec<&'a LiveResource>,
}

/// Decides which live resources belong to which desired node: by `amiplan:node` tag, or for AMIs
/// carrying no amiplan tags at all, by their deterministic name (adoption after a crash).
fn claim<'a>(desired: &'a DesiredGraph, observed: &'a Observed, stacks: &BTreeSet<String>) -> Claims<'a> {
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
        let tagged_node =
            live.node().and_then(|id| desired.get(id)).filter(|n| n.region == live.region && n.kind != NodeKind::Test);
        let expected_kind = |node: &Node| node.kind.resource_kind() == Some(live.kind);
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
fn preference<'a>(node: &Node, live: &'a LiveResource) -> (bool, bool, bool, Option<&'a str>, &'a str) {
    let broken = node.spec.failed(live).is_some();
    let mismatch = live.tags.get(tags::SPEC).is_some_and(|h| *h != node.spec_hash());
    let untagged = live.node().is_none();
    (broken, mismatch, untagged, live.created.as_deref(), live.id.as_str())
}

fn delete(stack: String, node: String, kind: NodeKind, live: &LiveResource, reason: &str) -> Change {
    let mut change = Change::new(&stack, &node, kind, &live.region, Action::Delete, Some(&live.id));
    change.reasons.push(reason.to_string());
    change
}

/// The change that takes `live` to `node`.
fn compare(node: &Node, live: &LiveResource, now: i64) -> Change {
    let mut change = Change::new(&node.stack, &node.id, node.kind, &node.region, Action::NoOp, Some(&live.id));
    if let Some(why) = node.spec.failed(live).or_else(|| node.spec.stale(live)) {
        change.action = Action::Replace;
        change.reasons.push(why);
        return change;
    }
    if let Some(live_hash) = live.tags.get(tags::SPEC)
        && *live_hash != node.spec_hash()
    {
        change.action = Action::Replace;
        change.diffs = spec_diffs(node, live);
        change.reasons.push(if change.diffs.is_empty() {
            format!("attributes changed (spec {live_hash} → {})", node.spec_hash())
        } else {
            let names: Vec<String> = change.diffs.iter().map(|d| d.attribute.to_string()).collect();
            format!("{} cannot change in place", names.join(", "))
        });
        return change;
    }
    if node.kind.is_transient() {
        // Never updated in place: adopted as they are (a running helper keeps running).
        return change;
    }
    if live.node().is_none() {
        change.reasons.push(format!("adopt {} found by its name without amiplan tags", live.id));
    }
    if live.state == State::Pending {
        change.reasons.push(format!("{} is still pending: apply waits for it", live.id));
    }
    change.diffs = node.spec.in_place(node, live, now);
    if !change.diffs.is_empty() || !change.reasons.is_empty() {
        change.action = Action::Update;
    }
    if let Some(why) = node.spec.refused(node, live, now) {
        change.reasons.push(why);
    }
    change
}

pub use crate::resource::image::REFUSED;

fn spec_diffs(node: &Node, live: &LiveResource) -> Vec<AttrDiff> {
    let before = live.tags.get(tags::ATTRS).map(|t| tags::decode_spec(t)).unwrap_or_default();
    let mut diffs = Vec::new();
    for (key, after) in &node.spec.immutable() {
        let before = if key == "source_sha256" { live.tags.get(tags::SOURCE) } else { before.get(key) };
        if before.is_some_and(|b| b != after) {
            let attribute = Attribute::Immutable(key.clone());
            diffs.push(AttrDiff { attribute, before: before.cloned(), after: Some(after.clone()) });
        }
    }
    diffs
}

/// Gives each AMI delete (or replace) the snapshots behind it that nothing else keeps or deletes:
/// not a snapshot node that stays, not one another remaining AMI uses, not one deleted on its own.
fn assign_snapshots(changes: &mut [Change], observed: &Observed) {
    let live: HashMap<(&str, &str), &LiveResource> =
        observed.resources.iter().map(|r| ((r.region.as_str(), r.id.as_str()), r)).collect();
    let removed = |c: &Change| matches!(c.action, Action::Delete | Action::Replace);
    let mut keep: HashSet<(String, String)> = HashSet::new();
    for change in changes.iter() {
        let Some(id) = &change.live_id else { continue };
        let key = (change.region.clone(), id.clone());
        if change.kind == NodeKind::Snapshot {
            // Kept snapshots stay; removed ones are deleted by their own change.
            keep.insert(key);
        } else if !removed(change)
            && let Some(image) = live.get(&(change.region.as_str(), id.as_str()))
        {
            keep.extend(image.snapshot_ids.iter().map(|s| (change.region.clone(), s.clone())));
        }
    }
    for change in changes.iter_mut().filter(|c| c.kind.is_image() && removed(c)) {
        let Some(image) = change.live_id.as_deref().and_then(|id| live.get(&(change.region.as_str(), id))) else {
            continue;
        };
        for snapshot in &image.snapshot_ids {
            if keep.insert((change.region.clone(), snapshot.clone())) {
                change.with_snapshots.push(snapshot.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    /// The planner's clock in these tests: 2026-06-01.
    const NOW: i64 = 1_780_272_000;
    use crate::manifest::raw::{Architecture, BootMode, Virtualization, VolumeType};
    use crate::model::{ImageAttrs, Origin, Stack, Variant};
    use crate::source::{Prepared, SourceInfo};

    fn stack(volume_types: &[VolumeType], regions: &[&str]) -> Stack {
        let variants = volume_types
            .iter()
            .map(|&volume_type| Variant {
                name: format!("demo-{}", volume_type.as_str()),
                attrs: ImageAttrs {
                    architecture: Architecture::X86_64,
                    virtualization: Virtualization::Hvm,
                    volume_type,
                    encrypted: false,
                    boot_mode: Some(BootMode::Uefi),
                    ena: true,
                    imds: None,
                    tpm: false,
                    root_device: "/dev/xvda".into(),
                    kernel_id: None,
                    ramdisk_id: None,
                },
            })
            .collect();
        Stack {
            name: "demo".into(),
            manifest: PathBuf::from("demo.yaml"),
            source: Origin::File { path: PathBuf::from("demo.raw"), sha256: None },
            helper: None,
            build_region: regions[0].into(),
            volume_size_gib: None,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            variants,
            description: Some("Demo".into()),
            tags: BTreeMap::from([("team".into(), "os".into())]),
            kms_keys: BTreeMap::new(),
            sharing: Sharing::default(),
            deprecation: None,
            test: None,
            version: None,
            keep_versions: None,
        }
    }

    fn graph(stack: &Stack, sha: &str) -> DesiredGraph {
        let sources =
            HashMap::from([(stack.name.clone(), Prepared::Upload(SourceInfo { sha256: sha.into(), size_bytes: 10 }))]);
        DesiredGraph::build(std::slice::from_ref(stack), &sources)
    }

    /// What amiplan would have left in AWS after creating every node of `graph`.
    fn applied(graph: &DesiredGraph) -> Vec<LiveResource> {
        let mut snapshots: HashMap<String, String> = HashMap::new();
        let mut resources = Vec::new();
        // A test node owns nothing: its pass is a tag on the AMI; read-only nodes own nothing.
        let nodes = graph.topological().into_iter().filter(|n| n.kind != NodeKind::Test && !n.kind.is_read_only());
        for (i, node) in nodes.enumerate() {
            let is_image = node.kind.is_image();
            let id = format!("{}-{i:03}", if is_image { "ami" } else { "snap" });
            let mut tags = node.desired_tags();
            if !is_image {
                snapshots.insert(node.region.clone(), id.clone());
                tags.insert(tags::UPLOADED.into(), "true".into());
            }
            resources.push(LiveResource {
                region: node.region.clone(),
                kind: if is_image { ResourceKind::Image } else { ResourceKind::Snapshot },
                id: id.clone(),
                name: node.name.clone(),
                state: State::Ready,
                description: node.description.clone(),
                tags,
                public: false,
                snapshot_ids: if is_image { vec![format!("snap-of-{id}")] } else { vec![] },
                created: Some(format!("2026-01-01T00:00:{i:02}Z")),
                deprecation: None,
                sharing: None,
                snapshot_sharing: vec![],
            });
        }
        resources
    }

    fn observed(resources: Vec<LiveResource>) -> Observed {
        Observed {
            account: "1".into(),
            regions: vec![],
            resources,
            helper_amis: BTreeMap::new(),
            block_public_access: BTreeMap::new(),
            snapshot_block_public_access: BTreeMap::new(),
            launch_templates: BTreeMap::new(),
            routes_out: BTreeMap::new(),
            zones: BTreeMap::new(),
            subnet_zones: BTreeMap::new(),
            vpc_counts: BTreeMap::new(),
            encrypted_by_default: BTreeSet::new(),
            denied_regions: BTreeMap::new(),
        }
    }

    fn stacks() -> BTreeSet<String> {
        BTreeSet::from(["demo".to_string()])
    }

    fn action_of<'a>(plan: &'a Plan, node: &str) -> Vec<&'a Change> {
        plan.changes.iter().filter(|c| c.node == node).collect()
    }

    /// Live resources carry the hash of their spec: a new version of amiplan must hash the same
    /// spec to the same value, or it would replace every AMI it made. Pinned from the version
    /// whose specs were string maps.
    #[test]
    fn spec_hashes_are_stable_across_versions() {
        let mut pinned = stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1", "eu-west-1"]);
        pinned.variants[1].attrs.encrypted = true;
        pinned.kms_keys.insert("eu-west-1".into(), "arn:aws:kms:eu-west-1:111122223333:key/abc".into());
        let desired = graph(&pinned, "feedface");
        let hashes: Vec<(String, String)> =
            desired.topological().iter().map(|n| (n.id.clone(), n.spec_hash())).collect();
        let expected = [
            ("snapshot/demo-root-encrypted@us-east-1", "640a8bef2ee9cba0"),
            ("snapshot/demo-root@us-east-1", "290e321db57e9b71"),
            ("image/demo-gp3@us-east-1", "d8bc7d7b85d08fe4"),
            ("image/demo-standard@us-east-1", "ca43e5cbe2ceceae"),
            ("image/demo-gp3@eu-west-1", "d8bc7d7b85d08fe4"),
            ("image/demo-standard@eu-west-1", "bedbba916b92d656"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
        assert_eq!(hashes, expected);
        let copy = desired.get("image/demo-standard@eu-west-1").unwrap();
        assert_eq!(
            tags::encode_spec(&copy.spec.immutable()).unwrap(),
            "architecture=x86_64;boot_mode=uefi;ena=true;encrypted=true;imds=;kernel_id=;kms_key=arn:aws:kms:eu-west-1:111122223333:key/abc;ramdisk_id=;root_device=/dev/xvda;tpm=false;virtualization=hvm;volume_size_gib=1;volume_type=standard"
        );
    }

    /// Regression: a public AMI created long ago cannot take a deprecation time more than two
    /// years after its creation; the plan explains instead of planning a call AWS refuses.
    #[test]
    fn a_deprecation_aws_would_refuse_for_an_old_public_ami_is_explained_not_planned() {
        let stack = Stack {
            sharing: Sharing { public: true, ..Sharing::default() },
            deprecation: Some(crate::deprecation::Deprecation::At(
                crate::deprecation::parse("2027-06-01T00:00:00Z").unwrap(),
            )),
            ..stack(&[VolumeType::Gp3], &["us-east-1"])
        };
        let desired = graph(&stack, "abc");
        let node = desired.nodes().find(|n| n.kind == NodeKind::Image).unwrap().clone();
        let mut live = applied(&desired).into_iter().find(|r| r.kind == ResourceKind::Image).unwrap();
        live.public = true;
        live.deprecation = Some("2026-06-01T00:00:00Z".into());
        live.created = Some("2024-01-01T00:00:00.000Z".into());
        let change = compare(&node, &live, NOW);
        assert_eq!(change.action, Action::NoOp, "{change:?}");
        assert!(change.reasons.iter().any(|r| r.starts_with(REFUSED) && r.contains("more than 2 years")), "{change:?}");
        live.created = Some("2026-01-01T00:00:00.000Z".into());
        assert_eq!(compare(&node, &live, NOW).action, Action::Update, "within two years it is planned");
    }

    #[test]
    fn nothing_live_means_create_everything_in_dependency_order() {
        let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]), "aa");
        let plan = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
        let order: Vec<(&str, Action)> = plan.changes.iter().map(|c| (c.node.as_str(), c.action)).collect();
        assert_eq!(
            order,
            vec![
                ("snapshot/demo-root@us-east-1", Action::Create),
                ("image/demo-gp3@us-east-1", Action::Create),
                ("image/demo-gp3@eu-west-1", Action::Create),
            ]
        );
    }

    #[test]
    fn applied_state_plans_no_changes_deterministically() {
        let desired = graph(&stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1", "eu-west-1"]), "aa");
        let live = observed(applied(&desired));
        let first = plan(&desired, &live, &stacks(), false, NOW);
        assert!(!first.has_changes(), "{first:#?}");
        assert_eq!(first, plan(&desired, &live, &stacks(), false, NOW));
    }

    #[test]
    fn immutable_changes_replace_with_reasons_and_mutable_ones_update() {
        let before = stack(&[VolumeType::Gp3], &["us-east-1"]);
        let live = observed(applied(&graph(&before, "aa")));
        let mut after = before.clone();
        after.variants[0].attrs.boot_mode = Some(BootMode::LegacyBios);
        after.description = Some("New".into());
        let plan = plan(&graph(&after, "aa"), &live, &stacks(), false, NOW);
        let image = action_of(&plan, "image/demo-gp3@us-east-1")[0];
        assert_eq!(image.action, Action::Replace);
        assert_eq!(image.reasons, vec!["boot_mode cannot change in place"]);
        assert_eq!(image.diffs[0].before.as_deref(), Some("uefi"));
        assert_eq!(image.with_snapshots, vec!["snap-of-ami-001"], "the replaced AMI's own snapshot goes too");

        let mut described = before.clone();
        described.description = Some("New".into());
        let plan = super::plan(&graph(&described, "aa"), &live, &stacks(), false, NOW);
        let image = action_of(&plan, "image/demo-gp3@us-east-1")[0];
        assert_eq!(image.action, Action::Update);
        assert_eq!(image.diffs[0].attribute, "description");
    }

    #[test]
    fn a_new_source_digest_replaces_snapshot_and_image() {
        let desired = stack(&[VolumeType::Gp3], &["us-east-1"]);
        let live = observed(applied(&graph(&desired, "aa")));
        let plan = plan(&graph(&desired, "bb"), &live, &stacks(), false, NOW);
        assert!(plan.changes.iter().all(|c| c.action == Action::Replace), "{plan:#?}");
        assert!(plan.changes[0].diffs.iter().any(|d| d.attribute == "source_sha256"));
    }

    #[test]
    fn untagged_ami_with_the_desired_name_is_adopted() {
        let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
        let mut live = applied(&desired);
        live[1].tags.clear();
        let plan = plan(&desired, &observed(live), &stacks(), false, NOW);
        let image = action_of(&plan, "image/demo-gp3@us-east-1")[0];
        assert_eq!(image.action, Action::Update);
        assert!(image.reasons[0].starts_with("adopt ami-001"));
        assert!(image.diffs.iter().any(|d| d.attribute == "tags.amiplan:node"));
    }

    #[test]
    fn duplicates_keep_the_oldest_and_delete_the_rest() {
        let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
        let mut live = applied(&desired);
        let mut twin = live[1].clone();
        twin.id = "ami-999".into();
        twin.created = Some("2026-02-01T00:00:00Z".into());
        live.push(twin);
        let plan = plan(&desired, &observed(live), &stacks(), false, NOW);
        let changes = action_of(&plan, "image/demo-gp3@us-east-1");
        assert_eq!((changes[0].action, changes[0].live_id.as_deref()), (Action::NoOp, Some("ami-001")));
        assert_eq!((changes[1].action, changes[1].live_id.as_deref()), (Action::Delete, Some("ami-999")));
        assert_eq!(changes[1].reasons, vec!["duplicate of ami-001"]);
    }

    #[test]
    fn removed_variants_are_deleted_and_foreign_resources_ignored() {
        let both = graph(&stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1"]), "aa");
        let mut live = applied(&both);
        let mut foreign = live[1].clone();
        foreign.id = "ami-other".into();
        foreign.name = Some("someone-else".into());
        foreign.tags = BTreeMap::from([(tags::STACK.into(), "other-stack".into())]);
        live.push(foreign);
        let only_gp3 = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
        let plan = plan(&only_gp3, &observed(live), &stacks(), false, NOW);
        let deletes: Vec<_> = plan.changes.iter().filter(|c| c.action == Action::Delete).collect();
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0].node, "image/demo-standard@us-east-1");
        assert_eq!(deletes[0].reasons, vec!["no longer in the manifests"]);
    }

    #[test]
    fn destroy_deletes_everything_owned_dependents_first() {
        let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]), "aa");
        let plan = plan(&desired, &observed(applied(&desired)), &stacks(), true, NOW);
        let order: Vec<&str> = plan.changes.iter().map(|c| c.node.as_str()).collect();
        assert_eq!(order, vec!["image/demo-gp3@eu-west-1", "image/demo-gp3@us-east-1", "snapshot/demo-root@us-east-1"]);
        assert!(plan.changes.iter().all(|c| c.action == Action::Delete));
    }

    #[test]
    fn an_interrupted_upload_is_replaced_but_a_finished_pending_one_is_awaited() {
        let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
        let mut live = applied(&desired);
        live[0].state = State::Pending;
        let awaited = plan(&desired, &observed(live.clone()), &stacks(), false, NOW);
        assert_eq!(awaited.changes[0].action, Action::Update);
        live[0].tags.remove(tags::UPLOADED);
        let replaced = plan(&desired, &observed(live), &stacks(), false, NOW);
        assert_eq!(replaced.changes[0].action, Action::Replace);
    }

    #[test]
    fn retention_keeps_the_newest_versions_and_spares_launch_template_amis() {
        let mut versioned = stack(&[VolumeType::Gp3], &["us-east-1"]);
        versioned.version = Some("3".into());
        versioned.keep_versions = Some(2);
        let desired = graph(&versioned, "c");
        let old = |version: &str, id: &str, day: u32| {
            let tags = BTreeMap::from([
                (tags::STACK.to_string(), "demo".to_string()),
                (tags::NODE.to_string(), format!("image/demo-{version}-gp3@us-east-1")),
                (tags::VERSION.to_string(), version.to_string()),
            ]);
            let mut live = LiveResource::new("us-east-1", ResourceKind::Image, id, State::Ready, tags);
            live.created = Some(format!("2026-01-{day:02}T00:00:00Z"));
            live
        };
        let mut state = observed(vec![old("1", "ami-v1", 1), old("2", "ami-v2", 2), old("0", "ami-v0", 3)]);
        let verdict = |plan: &Plan, id: &str| {
            let change = plan.changes.iter().find(|c| c.live_id.as_deref() == Some(id)).unwrap();
            (change.action, change.retire)
        };
        let plan = plan(&desired, &state, &BTreeSet::from(["demo".to_string()]), false, NOW);
        // Ranked by creation, newest first: 0 (day 3) stays as the one older version kept.
        assert_eq!(verdict(&plan, "ami-v0"), (Action::NoOp, false));
        assert_eq!(verdict(&plan, "ami-v2"), (Action::Delete, true));
        assert_eq!(verdict(&plan, "ami-v1"), (Action::Delete, true));

        state.launch_templates.insert("us-east-1".into(), BTreeMap::from([("ami-v1".into(), "web".into())]));
        let plan = super::plan(&desired, &state, &BTreeSet::from(["demo".to_string()]), false, NOW);
        assert_eq!(verdict(&plan, "ami-v1"), (Action::NoOp, false));
        let kept = plan.changes.iter().find(|c| c.live_id.as_deref() == Some("ami-v1")).unwrap();
        assert_eq!(kept.reasons, ["kept: launch template `web` still uses it"]);
    }

    #[test]
    fn an_untested_ami_is_kept_private_and_tested_before_anything_else() {
        let dir = std::env::temp_dir().join(format!("amiplan-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.sh"), "true\n").unwrap();
        let mut gated = stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]);
        gated.sharing = Sharing { public: true, ..Sharing::default() };
        gated.test = Some(crate::model::TestSpec {
            script: dir.join("t.sh"),
            instance_type: "t3.small".into(),
            timeout: std::time::Duration::from_secs(600),
            all_regions: false,
            subnet: None,
        });
        let job = crate::job::prepare_test("demo", &dir.join("t.sh")).unwrap();
        let sources =
            HashMap::from([(gated.name.clone(), Prepared::Upload(SourceInfo { sha256: "a".into(), size_bytes: 10 }))]);
        let desired = DesiredGraph::build_with_tests(
            std::slice::from_ref(&gated),
            &sources,
            &HashMap::from([("demo".to_string(), job)]),
        );
        let copy = "image/demo-gp3@eu-west-1";
        assert!(desired.dependencies(copy).contains(&"test/demo-gp3@us-east-1"), "copies wait for the test");

        // Built, copied, but never tested: the test runs, and the AMI is wanted private meanwhile.
        let mut live = applied(&desired);
        for resource in &mut live {
            resource.public = true;
        }
        let stacks = BTreeSet::from(["demo".to_string()]);
        let untested = plan(&desired, &observed(live.clone()), &stacks, false, NOW);
        let change = |plan: &Plan, node: &str| plan.changes.iter().find(|c| c.node == node).unwrap().clone();
        assert_eq!(change(&untested, "test/demo-gp3@us-east-1").action, Action::Create);
        let build = change(&untested, "image/demo-gp3@us-east-1");
        assert!(
            build.diffs.iter().any(|d| d.attribute == "launch_permission" && d.after.as_deref() == Some("private"))
        );

        for resource in &mut live {
            resource.tags.insert(tags::TESTED.into(), "job".into());
        }
        let tested = plan(&desired, &observed(live), &stacks, false, NOW);
        assert!(!tested.has_changes(), "{tested:#?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
