//! What a create (or the new half of a replace) will make, attribute by attribute: a reviewer
//! reads the AMI in the plan before it exists. Build resources that exist only for a build get
//! no attributes: one line each says enough.

use std::collections::BTreeMap;

use super::{Change, RESOLVED_AMI};
use crate::deprecation::{self, Deprecation};
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::resource::Spec;
use crate::resource::snapshot::MadeBy;

/// The attributes of what `change` creates for `node`, named as plans name attributes.
pub(super) fn planned(node: &Node, desired: &DesiredGraph, change: &Change, now: i64) -> BTreeMap<String, String> {
    let mut planned = BTreeMap::new();
    if node.kind().is_transient() || node.kind() == NodeKind::Test {
        return planned;
    }
    for (key, value) in node.spec.immutable() {
        if !value.is_empty() {
            planned.insert(key, value);
        }
    }
    if let Some(name) = &node.name {
        planned.insert("name".into(), name.clone());
    }
    if let Some(description) = &node.description {
        planned.insert("description".into(), description.clone());
    }
    match &node.spec {
        Spec::Image(_) | Spec::Copy(_) => {
            let gate = if node.gated { ", once its boot test passes" } else { "" };
            planned.insert("launch_permission".into(), format!("{}{gate}", node.sharing.describe()));
            if let Some(at) = node.deprecation {
                planned.insert("deprecation".into(), format!("{}{gate}", deprecation_text(at, now)));
            }
            if let Some(protection) = node.protection {
                planned.insert("deregistration_protection".into(), format!("{}{gate}", protection.as_str()));
            }
        }
        Spec::Snapshot(snapshot) => {
            if let MadeBy::Upload { source } = &snapshot.made_by {
                planned.insert("source".into(), source.path.display().to_string());
                match source.data_bytes() {
                    Some(bytes) => planned.insert("upload_bytes".into(), bytes.to_string()),
                    None => planned.insert("upload_bytes_at_most".into(), source.data_bytes_at_most().to_string()),
                };
            }
        }
        Spec::Parameter(parameter) => {
            planned.insert("name".into(), parameter.name.clone());
            let value = match (change.resolved.get(RESOLVED_AMI), &parameter.image_node) {
                (Some(ami), _) => ami.clone(),
                (None, Some(image)) => format!("the AMI of {image}, known after apply"),
                (None, None) => "known after apply".into(),
            };
            planned.insert("value".into(), value);
        }
        _ => {}
    }
    if let Spec::Copy(copy) = &node.spec {
        let source = desired.dependency_of_kind(&node.id, NodeKind::Image).map(|n| n.id.clone());
        planned.insert("copy_of".into(), source.unwrap_or_else(|| format!("the AMI in {}", copy.source_region)));
    }
    for (key, value) in &node.tags {
        planned.insert(format!("tags.{key}"), value.clone());
    }
    planned
}

/// A deprecation as a time: the manifest's date, or the time a relative one gives an AMI made
/// now (the executor computes it again from the AMI's creation).
fn deprecation_text(deprecation: Deprecation, now: i64) -> String {
    match deprecation {
        Deprecation::At(at) => deprecation::format(at),
        Deprecation::After(after) => {
            let days = after / (24 * 3600);
            format!("{} ({days} days after creation)", deprecation::format(deprecation.for_image(None, now)))
        }
    }
}
