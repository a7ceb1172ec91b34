//! The plan's part of helper builds and instances: whether a build must run, the helper's AMI,
//! how it reaches its image, and where instances are placed.

use std::collections::BTreeSet;

use super::claim::{Claims, preference};
use super::compare::compare;
use super::seed::Seeds;
use super::{Action, Change, RESOLVED_AMI, RESOLVED_PUBLIC_ADDRESS, RESOLVED_ZONE, Reason};
use crate::cloud::RouteOut;
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::manifest::raw::HelperAmi;
use crate::observe::{Observed, helper_ami_key};
use crate::resource::Spec;

/// Stacks whose helper build must run: the snapshot it feeds has no usable live resource (and,
/// for the copies' source of a stack that does not keep it, some copy needs it).
pub(super) fn stacks_building(
    desired: &DesiredGraph,
    claims: &Claims<'_>,
    seeds: &Seeds,
    now: i64,
) -> BTreeSet<String> {
    desired
        .nodes()
        .filter(|node| node.spec.is_capture())
        .filter(|node| {
            let exists = claims.by_node.get(node.id.as_str()).is_some_and(|live| !live.is_empty());
            !desired.is_seed(node) || seeds.wanted(&node.id, exists)
        })
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

/// Shows (and pins for apply) the AMI a helper will boot.
pub(super) fn resolve_helper_ami(node: &Node, observed: &Observed, change: &mut Change) {
    let Spec::Helper(helper) = &node.spec else { return };
    let resolved = match &helper.ami {
        HelperAmi::Id(id) => Some(id.clone()),
        HelperAmi::Filter(filter) => {
            let selector = format!("owner={} name={}", filter.owner, filter.name);
            let found = observed.helper_amis.get(&helper_ami_key(&selector, &node.region)).cloned();
            if found.is_none() {
                change.reasons.push(Reason::NoHelperAmi {
                    owner: filter.owner.clone(),
                    name: filter.name.clone(),
                    region: node.region.clone(),
                });
            }
            found
        }
    };
    if let Some(id) = resolved {
        if change.action != Action::NoOp {
            change.reasons.push(Reason::Boots { image: id.clone() });
        }
        change.resolved.insert(RESOLVED_AMI.into(), id);
    }
}

/// Shows how a helper that will start reaches its image's URL, pins whether it needs a public
/// address, and returns a warning when its existing subnet has no way out.
pub(super) fn resolve_helper_network(node: &Node, observed: &Observed, change: &mut Change) -> Option<String> {
    let Spec::Helper(helper) = &node.spec else { return None };
    let existing_subnet = &helper.existing_subnet;
    if !matches!(change.action, Action::Create | Action::Replace) {
        return None;
    }
    let (public_address, through) = match existing_subnet {
        None => (true, "the temporary internet gateway".to_string()),
        Some(subnet) => match observed.routes_out.get(&helper_ami_key(subnet, &node.region)) {
            Some(Some(RouteOut::InternetGateway(gateway))) => (true, format!("{gateway} ({subnet}'s default route)")),
            Some(Some(RouteOut::Nat(nat))) => (false, format!("{nat} ({subnet}'s default route)")),
            Some(None) => {
                change.reasons.push(Reason::NoRouteOut { subnet: subnet.clone() });
                return Some(format!(
                    "{}: {subnet} has no 0.0.0.0/0 route to an attached internet gateway or a NAT gateway, so the helper cannot reach its image's URL; give the subnet a route out or use `network: create`",
                    node.id
                ));
            }
            None => return None,
        },
    };
    change.reasons.push(Reason::ReachesOut { through, public_address });
    change.resolved.insert(RESOLVED_PUBLIC_ADDRESS.into(), public_address.to_string());
    None
}

/// Places what runs an instance in an Availability Zone that offers its type (AWS refuses
/// RunInstances elsewhere with `Unsupported`): the temporary subnet of a helper build is made in
/// the first such zone, a boot test picks a default subnet in one; an existing subnet in a zone
/// without the type is a warning.
pub(super) fn resolve_placement(
    node: &Node,
    desired: &DesiredGraph,
    observed: &Observed,
    change: &mut Change,
) -> Option<String> {
    if !matches!(change.action, Action::Create | Action::Replace) {
        return None;
    }
    let (instance_type, subnet) = match &node.spec {
        Spec::Subnet(_) => {
            let helper = desired
                .nodes()
                .find(|n| n.stack == node.stack && n.region == node.region && n.kind() == NodeKind::Helper)?;
            (helper.spec.instance()?.0, None)
        }
        Spec::Helper(helper) => (helper.instance_type.as_str(), Some(helper.existing_subnet.as_deref()?)),
        Spec::Test(test) => (test.instance_type.as_str(), test.subnet.as_deref()),
        _ => return None,
    };
    let zones = observed.zones.get(&helper_ami_key(instance_type, &node.region))?;
    if zones.is_empty() {
        let offered = instance_type.to_string();
        change.reasons.push(Reason::NoZoneOffers { region: node.region.clone(), instance_type: offered });
        return Some(format!(
            "{}: no Availability Zone of {} offers {instance_type}; choose another instance type",
            node.id, node.region
        ));
    }
    match subnet {
        Some(subnet) => {
            let zone = observed.subnet_zones.get(&helper_ami_key(subnet, &node.region))?;
            if !zones.contains(zone) {
                change.reasons.push(Reason::SubnetZoneLacks {
                    subnet: subnet.to_string(),
                    zone: zone.clone(),
                    instance_type: instance_type.to_string(),
                });
                return Some(format!(
                    "{}: {subnet} is in {zone}, where {instance_type} is not offered (AWS refuses the launch); it is offered in {}",
                    node.id,
                    zones.join(", ")
                ));
            }
        }
        None if node.kind() == NodeKind::Subnet => {
            change.reasons.push(Reason::InZone { zone: zones[0].clone(), instance_type: instance_type.to_string() });
            change.resolved.insert(RESOLVED_ZONE.into(), zones[0].clone());
        }
        None => {
            change
                .reasons
                .push(Reason::InDefaultSubnet { zones: zones.clone(), instance_type: instance_type.to_string() });
            change.resolved.insert(RESOLVED_ZONE.into(), zones.join(","));
        }
    }
    None
}

/// A boot test's instance type must launch the AMI it tests: EC2 refuses RunInstances of an AMI
/// whose architecture, virtualization, boot mode, ENA or NitroTPM the type lacks, and the test
/// would fail only once the AMI is made. A type EC2 does not describe is left to the offerings'
/// warning.
pub(super) fn check_test_type(
    node: &Node,
    desired: &DesiredGraph,
    observed: &Observed,
    change: &Change,
) -> Option<String> {
    if !matches!(change.action, Action::Create | Action::Replace) {
        return None;
    }
    let Spec::Test(test) = &node.spec else { return None };
    let attrs = &desired.get(&test.image_node)?.spec.ami()?.attrs;
    let traits = observed.instance_types.get(&helper_ami_key(&test.instance_type, &node.region))?;
    let why = traits.refusal(attrs)?;
    Some(format!(
        "{}: {} cannot launch the AMI it tests, as {why}: EC2 refuses the launch and the test fails; set test.instance_type to a type that launches it",
        node.id, test.instance_type
    ))
}
