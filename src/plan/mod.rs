//! The planner: a pure function of (desired graph, observed state) → an ordered list of changes,
//! each with its reasons. No client, no clock, no randomness: the same inputs give the same plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::cloud::{LiveProtection, LiveResource, ResourceKind};
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::observe::Observed;
use crate::resource::Spec;

mod build;
mod catalog;
mod claim;
mod compare;
pub mod cost;
mod disabled;
mod gate;
mod planned;
mod quota;
mod retention;
mod seed;

use build::{check_test_type, resolve_helper_ami, resolve_helper_network, resolve_placement, stacks_building};
use catalog::{files_change, orphan_parameter, parameter_change, pinned_versions};
use claim::{claim, preference};
use compare::judge;
use gate::test_change;
use quota::{public_image_quota_warnings, sharing_quota_warnings, vpc_quota_warnings};
use retention::{Retention, retention};
use seed::Seeds;

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

pub use crate::resource::{AttrDiff, Attribute, Reason};

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
    pub reasons: Vec<Reason>,
    pub diffs: Vec<AttrDiff>,
    /// With AMI deletes: the snapshots behind the AMI that go with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with_snapshots: Vec<String>,
    /// With AMI deletes: the deregistration protection the AMI has, lifted before it goes.
    #[serde(default, skip_serializing_if = "LiveProtection::is_off")]
    pub protection: LiveProtection,
    /// A resource created for a build and removed after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// A build region's AMI or snapshot that is only the copies' source (`build.keep_image:
    /// false`): removed once the stack's copies are done (by apply after them, or by a delete
    /// when every copy exists).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_copied: bool,
    /// A delete that waits until the stack's new version is available and published (retention).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retire: bool,
    /// Values looked up while planning that apply must use as they were shown (e.g. the helper's
    /// base AMI resolved from a name filter).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolved: BTreeMap<String, String>,
    /// What a create (or a replace's new resource) will be, attribute by attribute, for the
    /// reader of the plan; apply does not use it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub planned: BTreeMap<String, String>,
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
            protection: LiveProtection::Off,
            transient: kind.is_transient(),
            until_copied: false,
            retire: false,
            resolved: BTreeMap::new(),
            planned: BTreeMap::new(),
        }
    }
}

pub use crate::resource::helper::{RESOLVED_AMI, RESOLVED_PUBLIC_ADDRESS};
pub use crate::resource::image::REFUSED;
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
    /// What each stack that tracks an upstream resolved it to for this plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<crate::manifest::upstream::Resolution>,
    /// Stacks that own resources but that no manifest given declares: reported, not planned
    /// (see `--prune`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphaned: Vec<OrphanedStack>,
    /// The snapshot storage the plan adds and removes, by region (see [`cost`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cost: Vec<cost::RegionCost>,
}

/// A stack no manifest declares, and what it owns where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanedStack {
    pub stack: String,
    /// Resources per region.
    pub regions: BTreeMap<String, usize>,
    /// Resources per kind (`image`, `snapshot`, …).
    pub kinds: BTreeMap<String, usize>,
}

/// The stacks `foreign` resources belong to, with what each owns where.
pub fn orphaned_stacks(foreign: &[LiveResource]) -> Vec<OrphanedStack> {
    let mut stacks: BTreeMap<&str, OrphanedStack> = BTreeMap::new();
    for live in foreign {
        let Some(stack) = live.stack() else { continue };
        let entry = stacks.entry(stack).or_insert_with(|| OrphanedStack {
            stack: stack.to_string(),
            regions: BTreeMap::new(),
            kinds: BTreeMap::new(),
        });
        *entry.regions.entry(live.region.clone()).or_default() += 1;
        *entry.kinds.entry(NodeKind::of_resource(live.kind).as_str().to_string()).or_default() += 1;
    }
    stacks.into_values().collect()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    /// How many of `changes` do what.
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Summary {
        let mut summary = Summary::default();
        for change in changes {
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
}

impl Plan {
    pub fn summary(&self) -> Summary {
        Summary::of(&self.changes)
    }

    /// The changes as apply carries them out, as written (a saved plan's reasons are read back
    /// as their text): two plans with the same binding do the same. What a create will be
    /// (`planned`) is left out: it follows from the manifests, whose digest is compared
    /// separately, and from the clock (a relative deprecation's time), and a plan applied an
    /// hour after it was made is the same plan.
    pub fn binding(&self) -> serde_json::Value {
        let changes: Vec<Change> =
            self.changes.iter().map(|c| Change { planned: BTreeMap::new(), ..c.clone() }).collect();
        serde_json::to_value(&changes).expect("plans serialize")
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }
}

/// The desired nodes that live resources are claimed by: those the plan compares with
/// something that exists.
pub fn claimed_nodes<'a>(
    desired: &'a DesiredGraph,
    observed: &'a Observed,
    stacks: &BTreeSet<String>,
) -> BTreeSet<&'a str> {
    claim(desired, observed, stacks).by_node.into_keys().collect()
}

/// Plans `stacks` (the stacks whose tagged resources count as owned) towards `desired`, or
/// towards nothing at all when `destroy` is set. `now` (seconds since the epoch) is the only
/// time the planner knows: it reads no clock.
pub fn plan(desired: &DesiredGraph, observed: &Observed, stacks: &BTreeSet<String>, destroy: bool, now: i64) -> Plan {
    let claims = claim(desired, observed, stacks);
    let seeds = if destroy { Seeds::default() } else { Seeds::of(desired, &claims, now) };
    let building = if destroy { BTreeSet::new() } else { stacks_building(desired, &claims, &seeds, now) };
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
        if matches!(node.kind(), NodeKind::Parameter | NodeKind::CatalogFiles) && !destroy {
            // Judged once every AMI it may name is (below).
            continue;
        }
        if node.kind() == NodeKind::Test {
            // A test has nothing to destroy: its record is a tag on the AMI.
            if !destroy && seed_wanted(desired, &seeds, &claims, node) {
                let mut change = test_change(node, desired, &claims, now);
                if let Some(warning) = resolve_placement(node, desired, observed, &mut change) {
                    network_warnings.push(warning);
                }
                network_warnings.extend(check_test_type(node, desired, observed, &change));
                changes.push(change);
            }
            continue;
        }
        let mut candidates = claims.by_node.get(node.id.as_str()).cloned().unwrap_or_default();
        candidates.sort_by_key(|live| preference(node, live));
        if destroy {
            changes.extend(
                candidates
                    .iter()
                    .map(|live| delete(node.stack.clone(), node.id.clone(), node.kind(), live, Reason::Destroy)),
            );
            continue;
        }
        let seed = desired.is_seed(node);
        if seed && !seeds.wanted(&node.id, !candidates.is_empty()) {
            // Every copy exists: the copies' source goes (or stays unmade).
            changes.extend(candidates.iter().map(|live| Change {
                until_copied: true,
                ..delete(node.stack.clone(), node.id.clone(), node.kind(), live, Reason::CopiesExist)
            }));
            continue;
        }
        if node.kind().is_transient() && !building.contains(&node.stack) {
            // The snapshot exists: the build's leftovers go, and nothing is built.
            changes.extend(
                candidates
                    .iter()
                    .map(|live| delete(node.stack.clone(), node.id.clone(), node.kind(), live, Reason::BuildFinished)),
            );
            continue;
        }
        let mut candidates = candidates.into_iter();
        let (mut change, refused) = match candidates.next() {
            None => (Change::new(&node.stack, &node.id, node.kind(), &node.region, Action::Create, None), None),
            Some(live) => judge(node, live, now),
        };
        if node.kind().is_transient() {
            change.reasons.insert(0, Reason::ForTheBuild);
        }
        if seed {
            change.until_copied = true;
            change.reasons.insert(0, Reason::UntilCopied);
        }
        resolve_helper_ami(node, observed, &mut change);
        if let Some(warning) = resolve_helper_network(node, observed, &mut change) {
            network_warnings.push(warning);
        }
        if let Some(warning) = resolve_placement(node, desired, observed, &mut change) {
            network_warnings.push(warning);
        }
        network_warnings.extend(refused.map(|why| format!("{}: {why}", change.node)));
        changes.push(change);
        for duplicate in candidates {
            let kept = changes.last().and_then(|c| c.live_id.clone()).unwrap_or_default();
            let reason = Reason::DuplicateOf { kept };
            changes.push(delete(node.stack.clone(), node.id.clone(), node.kind(), duplicate, reason));
        }
    }
    if !destroy {
        network_warnings.extend(disabled::hold_behind_disabled(desired, &mut changes));
    }
    let mut catalog_warnings = Vec::new();
    if !destroy {
        // A parameter waits only for images and tests, never for another parameter: one index
        // of the changes so far serves them all.
        let index: HashMap<&str, &Change> = changes.iter().map(|c| (c.node.as_str(), c)).collect();
        let mut parameters = Vec::new();
        for node in desired.topological().into_iter().filter(|n| n.kind() == NodeKind::Parameter) {
            let (change, warning) = parameter_change(node, desired, observed, &claims, &index);
            catalog_warnings.extend(warning);
            parameters.push(change);
        }
        changes.extend(parameters);
    }
    let pinned = pinned_versions(desired, observed, &changes);
    let verdicts = if destroy { HashMap::new() } else { retention(desired, &claims.orphans, &pinned) };
    for live in &claims.orphans {
        let reason = if destroy { Reason::Destroy } else { Reason::NoLongerWanted };
        let kind = NodeKind::of_resource(live.kind);
        let node =
            live.node().map(str::to_string).unwrap_or_else(|| format!("{}/{}@{}", kind.as_str(), live.id, live.region));
        let mut change = delete(live.stack().unwrap_or_default().to_string(), node, kind, live, reason);
        let parameter = (live.kind == ResourceKind::Parameter && !destroy)
            .then(|| orphan_parameter(live, desired, observed, &verdicts))
            .flatten();
        match parameter.as_ref().or_else(|| verdicts.get(&(live.region.as_str(), live.id.as_str()))) {
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
            change.reasons = vec![Reason::KeptForLaunchTemplate { template: template.clone() }];
        }
        changes.push(change);
    }
    if !destroy {
        // The files name every AMI and channel of the stack: judged after all of them.
        let mut files = Vec::new();
        for node in desired.nodes() {
            if node.kind() == NodeKind::CatalogFiles {
                files.push(files_change(node, desired, observed, &claims, &changes));
            }
        }
        changes.extend(files);
    }
    assign_snapshots(&mut changes, observed);
    note_protection(&mut changes, observed, destroy, now);
    for change in changes.iter_mut().filter(|c| matches!(c.action, Action::Create | Action::Replace)) {
        if let Some(node) = desired.get(&change.node) {
            change.planned = planned::planned(node, desired, change, now);
        }
    }
    let cost = cost::estimate(&changes, desired, &observed.resources);
    let mut warnings = account_warnings;
    warnings.extend(network_warnings);
    // A removal AWS holds back shows no change; it is said rather than left unseen.
    warnings.extend(
        changes
            .iter()
            .filter(|c| c.action == Action::NoOp && matches!(c.protection, LiveProtection::CoolingDown { .. }))
            .map(|c| format!("{}: {}", c.node, Reason::Protected(c.protection.clone()))),
    );
    warnings.extend(catalog_warnings);
    warnings.extend(vpc_quota_warnings(&changes, observed));
    if !destroy {
        warnings.extend(public_image_quota_warnings(&changes, desired, observed, now));
        warnings.extend(sharing_quota_warnings(&changes, desired, observed));
    }
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
        upstream: vec![],
        orphaned: vec![],
        cost,
    }
}

/// Whether a node is wanted as far as `build.keep_image: false` goes: every node but a seed the
/// copies do not need. A seed test is wanted when its AMI is.
fn seed_wanted(desired: &DesiredGraph, seeds: &Seeds, claims: &claim::Claims<'_>, node: &Node) -> bool {
    if !desired.is_seed(node) {
        return true;
    }
    let subject = match &node.spec {
        Spec::Test(test) => test.image_node.as_str(),
        _ => node.id.as_str(),
    };
    seeds.wanted(&node.id, claims.by_node.get(subject).is_some_and(|live| !live.is_empty()))
}

fn delete(stack: String, node: String, kind: NodeKind, live: &LiveResource, reason: Reason) -> Change {
    let mut change = Change::new(&stack, &node, kind, &live.region, Action::Delete, Some(&live.id));
    change.reasons.push(reason);
    change
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

/// Gives each AMI delete (or replace) the deregistration protection it has, to be lifted first,
/// and says so: with a cooldown, AWS keeps the AMI 24 hours more, and a later run removes it.
/// Until then, an apply leaves an AMI whose cooldown runs as it is (nothing can be done to it:
/// a scheduled plan shows no change), and the snapshots behind an AMI that stays this run are
/// kept too, rather than waited on until their delete's deadline.
fn note_protection(changes: &mut [Change], observed: &Observed, destroy: bool, now: i64) {
    let live: HashMap<(&str, &str), &LiveResource> =
        observed.resources.iter().map(|r| ((r.region.as_str(), r.id.as_str()), r)).collect();
    let removed = |c: &Change| matches!(c.action, Action::Delete | Action::Replace);
    let mut staying: HashMap<(String, String), String> = HashMap::new();
    for change in changes.iter_mut().filter(|c| c.kind.is_image() && removed(c)) {
        let Some(image) = change.live_id.as_deref().and_then(|id| live.get(&(change.region.as_str(), id))) else {
            continue;
        };
        if !image.protection.outlasts_run(now) {
            continue;
        }
        let cooling_until = image.protection.cooldown_end();
        for snapshot in &image.snapshot_ids {
            staying.insert((change.region.clone(), snapshot.clone()), image.id.clone());
        }
        change.with_snapshots.clear();
        if !destroy && change.action == Action::Delete && cooling_until.is_some() {
            change.action = Action::NoOp;
            change.retire = false;
            change.reasons.clear();
        }
    }
    for change in changes.iter_mut().filter(|c| c.kind.is_image() && c.live_id.is_some()) {
        let Some(image) = change.live_id.as_deref().and_then(|id| live.get(&(change.region.as_str(), id))) else {
            continue;
        };
        if !image.protection.is_off() && (removed(change) || staying.values().any(|id| *id == image.id)) {
            change.protection = image.protection.clone();
            change.reasons.push(Reason::Protected(image.protection.clone()));
        }
    }
    for change in changes.iter_mut().filter(|c| c.kind == NodeKind::Snapshot && c.action == Action::Delete) {
        let Some(image) = change.live_id.as_ref().and_then(|id| staying.get(&(change.region.clone(), id.clone())))
        else {
            continue;
        };
        change.action = Action::NoOp;
        change.retire = false;
        change.reasons = vec![Reason::BehindProtected { image: image.clone() }];
    }
}

#[cfg(test)]
mod tests;
