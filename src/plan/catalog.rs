//! The catalogue's parameters: which AMI each names, whether a channel may move, what is not
//! amiplan's to change, and which catalogue entries go with the versions retention retires.

use std::collections::{BTreeMap, HashMap};

use super::claim::Claims;
use super::retention::Retention;
use super::{Action, Change, Reason};
use crate::cloud::{LiveResource, ResourceKind, State};
use crate::distribution::Catalogue;
use crate::distribution::files::render;
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::observe::Observed;
use crate::resource::Spec;
use crate::resource::catalog_files;
use crate::resource::parameter::{self, Parameter, RESOLVED_AMI, VariantKey};
use crate::tags;

/// The AMI a parameter is to name.
enum Target {
    /// Known now: an AMI that exists and stays as it is.
    Known(String),
    /// Made, tested or published by this apply first.
    AfterApply,
    /// Not out everywhere: the channel stays where it is.
    Held(String),
}

/// The change of one parameter node, and a warning when the plan leaves it short of the
/// manifest (a channel held back, a parameter that is not amiplan's).
pub(super) fn parameter_change(
    node: &Node,
    desired: &DesiredGraph,
    observed: &Observed,
    claims: &Claims<'_>,
    changes: &HashMap<&str, &Change>,
) -> (Change, Option<String>) {
    let Spec::Parameter(spec) = &node.spec else { unreachable!("parameter nodes carry parameter specs") };
    let target = target(node, spec, desired, observed, changes);
    let owned = claims.by_node.get(node.id.as_str()).and_then(|found| found.first().copied());
    let foreign = observed.resources.iter().find(|live| {
        live.kind == ResourceKind::Parameter
            && live.stack().is_none()
            && live.region == node.region
            && live.id == spec.name
    });
    let mut change = Change::new(&node.stack, &node.id, node.kind(), &node.region, Action::NoOp, None);
    let mut warning = None;
    if let (Some(channel), Target::Held(why)) = (&spec.channel, &target) {
        let reason = Reason::HeldBack { channel: channel.clone(), version: spec.version.clone(), why: why.clone() };
        warning = Some(format!("{}: {reason}", node.id));
        change.reasons.push(reason);
    }
    if let (Some(channel), Target::AfterApply) = (&spec.channel, &target) {
        change.reasons.push(Reason::MovesAfterApply { channel: channel.clone(), version: spec.version.clone() });
    }
    let after = match &target {
        Target::Known(ami) => Some(ami.as_str()),
        Target::AfterApply => None,
        Target::Held(_) => {
            change.live_id = owned.map(|live| live.id.clone());
            return (change, warning);
        }
    };
    if let Target::Known(ami) = &target {
        change.resolved.insert(RESOLVED_AMI.to_string(), ami.clone());
    }
    match (owned, foreign) {
        (Some(live), _) => {
            change.live_id = Some(live.id.clone());
            change.diffs.extend(parameter::value_diff(live, after, &spec.version));
            if let Some(ami) = after.filter(|_| change.diffs.is_empty()) {
                let image = observed
                    .resources
                    .iter()
                    .find(|r| r.kind == ResourceKind::Image && r.region == node.region && r.id == ami);
                let deprecation = image.and_then(|i| i.deprecation.as_deref());
                change.diffs.extend(spec.description_diff(node, live, deprecation));
            }
        }
        (None, Some(live)) if spec.overwrite => {
            change.live_id = Some(live.id.clone());
            change.reasons.push(Reason::TakeOver);
            change.diffs.extend(parameter::value_diff(live, after, &spec.version));
            change.diffs.extend(parameter::ownership_diffs(node));
        }
        (None, Some(live)) => {
            let reason = Reason::NotOwned { value: live.value.clone().unwrap_or_default() };
            warning = Some(format!("{} in {}: {reason}", spec.name, node.region));
            change.reasons = vec![reason];
            change.resolved.clear();
            return (change, warning);
        }
        (None, None) => change.action = Action::Create,
    }
    if change.action == Action::NoOp && !change.diffs.is_empty() {
        change.action = Action::Update;
    }
    (change, warning)
}

/// Which AMI the parameter names: the current version's, once this run is done with it (or now,
/// when nothing is left to do), or an earlier version's that is out in every region.
fn target(
    node: &Node,
    spec: &Parameter,
    desired: &DesiredGraph,
    observed: &Observed,
    changes: &HashMap<&str, &Change>,
) -> Target {
    let Some(image_node) = &spec.image_node else {
        return earlier_version(node, spec, desired, observed);
    };
    // A channel waits for every AMI of the version; a version's parameter for its own AMI. The
    // copies' source that is not kept is not one of them: the copies wait for it.
    let waits_for: Vec<&str> = if spec.channel.is_some() {
        desired
            .nodes()
            .filter(|n| n.stack == node.stack && (n.kind().is_image() || n.kind() == NodeKind::Test))
            .filter(|n| !desired.is_seed(n))
            .map(|n| n.id.as_str())
            .collect()
    } else {
        desired.dependencies(&node.id)
    };
    let settled = waits_for.iter().all(|id| changes.get(id).is_some_and(|c| c.action == Action::NoOp));
    let image = changes.get(image_node.as_str());
    if let Some(change) = image
        && let Some(why) =
            change.reasons.iter().find(|r| matches!(r, Reason::Disabled { .. } | Reason::BehindDisabled { .. }))
    {
        // Parameter Store never stores an AMI that cannot be launched, and no one should be
        // pointed at it: the parameter keeps what it names.
        return Target::Held(why.to_string());
    }
    match image.and_then(|c| c.live_id.as_ref()) {
        Some(ami) if settled => Target::Known(ami.clone()),
        _ => Target::AfterApply,
    }
}

/// A channel pointing at an earlier version: its AMI of the parameter's variant here, if every
/// AMI the channel names (each variant, each region) is available, tested and published.
fn earlier_version(node: &Node, spec: &Parameter, desired: &DesiredGraph, observed: &Observed) -> Target {
    let mut own = None;
    let siblings = desired.nodes().filter_map(|n| match &n.spec {
        Spec::Parameter(other) if n.stack == node.stack && other.channel == spec.channel => Some((n, other)),
        _ => None,
    });
    for (sibling, other) in siblings {
        let found = ami_of(observed, &node.stack, &spec.version, &other.variant, &sibling.region);
        let what = format!("{} in {}", other.variant.describe(), sibling.region);
        let Some(ami) = found else {
            return Target::Held(format!("no AMI of it for {what}"));
        };
        if ami.state != State::Ready {
            return Target::Held(format!("{} ({what}) is {}", ami.id, ami.state));
        }
        let tested = desired.nodes().any(|n| n.stack == node.stack && n.region == sibling.region && n.gated);
        if tested && !ami.tags.contains_key(tags::TESTED) {
            return Target::Held(format!("{} ({what}) has not passed its boot test", ami.id));
        }
        // Grants to accounts are read only for AMIs shared that way; where they were not read,
        // the public flag is judged here and the grants when the parameter is written.
        let shared =
            ami.sharing.clone().unwrap_or_else(|| crate::cloud::Sharing { public: ami.public, ..node.sharing.clone() });
        let missing = sibling.sharing.minus(&shared);
        if !missing.is_private() {
            return Target::Held(format!("{} ({what}) is not shared with {}", ami.id, missing.describe()));
        }
        if sibling.id == node.id {
            own = Some(ami.id.clone());
        }
    }
    match own {
        Some(ami) => Target::Known(ami),
        None => Target::Held(format!("no AMI of it for {} in {}", spec.variant.describe(), node.region)),
    }
}

/// The live AMI of `stack`'s `version` for `variant` in `region`, the newest if several.
fn ami_of<'a>(
    observed: &'a Observed,
    stack: &str,
    version: &str,
    variant: &VariantKey,
    region: &str,
) -> Option<&'a LiveResource> {
    observed
        .resources
        .iter()
        .filter(|live| live.kind == ResourceKind::Image && live.region == region && live.stack() == Some(stack))
        .filter(|live| live.tags.get(tags::VERSION).map(String::as_str) == Some(version))
        .filter(|live| VariantKey::of_live(live).as_ref() == Some(variant))
        .max_by(|a, b| a.created.cmp(&b.created))
}

/// Versions each stack's channels point at and keep, whatever retention says: those the
/// manifest names, and those a channel held back still names.
pub(super) fn pinned_versions(
    desired: &DesiredGraph,
    observed: &Observed,
    changes: &[Change],
) -> BTreeMap<(String, String), String> {
    let mut pinned = BTreeMap::new();
    for node in desired.nodes() {
        if let Spec::Parameter(Parameter { channel: Some(channel), version, .. }) = &node.spec {
            pinned.insert((node.stack.clone(), version.clone()), channel.clone());
        }
    }
    let amis: HashMap<(&str, &str), &LiveResource> = observed
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Image)
        .map(|r| ((r.region.as_str(), r.id.as_str()), r))
        .collect();
    for change in changes.iter().filter(|c| c.kind == NodeKind::Parameter && c.action == Action::NoOp) {
        let Some(Spec::Parameter(Parameter { channel: Some(channel), .. })) =
            desired.get(&change.node).map(|n| &n.spec)
        else {
            continue;
        };
        let live = change.live_id.as_deref().and_then(|id| {
            observed
                .resources
                .iter()
                .find(|r| r.kind == ResourceKind::Parameter && r.region == change.region && r.id == id)
        });
        let ami = live.and_then(|p| p.value.as_deref()).and_then(|id| amis.get(&(change.region.as_str(), id)));
        if let Some(version) = ami.and_then(|a| a.tags.get(tags::VERSION)) {
            pinned.insert((change.stack.clone(), version.clone()), channel.clone());
        }
    }
    pinned
}

/// What becomes of a parameter no node wants: it stays while the AMI it names stays as a kept
/// version's (under the name the manifest gives that version), and goes with that AMI when
/// retention retires it (first: `Parameter` deletes rank before AMIs).
pub(super) fn orphan_parameter(
    live: &LiveResource,
    desired: &DesiredGraph,
    observed: &Observed,
    verdicts: &HashMap<(&str, &str), Retention>,
) -> Option<Retention> {
    let ami_id = live.value.as_deref()?;
    let ami = observed
        .resources
        .iter()
        .find(|r| r.kind == ResourceKind::Image && r.region == live.region && r.id == ami_id)?;
    match verdicts.get(&(ami.region.as_str(), ami.id.as_str()))? {
        Retention::Retire(why) => Some(Retention::Retire(why.clone())),
        Retention::Keep(why) => {
            let stack = live.stack()?;
            let (catalog, _) = desired.catalog(stack)?;
            let version = ami.tags.get(tags::VERSION)?;
            let variant = VariantKey::of_live(ami)?;
            let named = catalog
                .version_templates
                .iter()
                .any(|template| variant.render(template, stack, version, None) == live.id);
            named.then(|| Retention::Keep(why.clone()))
        }
    }
}

/// The change of a stack's catalogue files: rewritten after this run's changes to its AMIs and
/// parameters, or else compared file by file with what the catalogue is now.
pub(super) fn files_change(
    node: &Node,
    desired: &DesiredGraph,
    observed: &Observed,
    claims: &Claims,
    changes: &[Change],
) -> Change {
    let live = claims.by_node.get(node.id.as_str()).and_then(|found| found.first());
    let if_any = if live.is_some() { Action::Update } else { Action::Create };
    let mut change =
        Change::new(&node.stack, &node.id, node.kind(), &node.region, Action::NoOp, live.map(|l| l.id.as_str()));
    let catalogued =
        |kind: NodeKind| matches!(kind, NodeKind::Image | NodeKind::ImageCopy | NodeKind::Test | NodeKind::Parameter);
    // The copies' source that is not kept is never in the files.
    if changes
        .iter()
        .any(|c| c.stack == node.stack && c.action != Action::NoOp && catalogued(c.kind) && !c.until_copied)
    {
        change.action = if_any;
        change.reasons.push(Reason::RenderedAfterApply);
        return change;
    }
    let mine: Vec<LiveResource> = observed
        .resources
        .iter()
        .filter(|r| r.kind != ResourceKind::Image || r.stack() == Some(node.stack.as_str()))
        .cloned()
        .collect();
    let files = render(&Catalogue::from_live(desired, &mine));
    let before = live.map(|l| l.files.clone()).unwrap_or_default();
    change.diffs = catalog_files::file_diffs(&node.stack, &files, &before);
    if !change.diffs.is_empty() {
        change.action = if_any;
    }
    change
}
