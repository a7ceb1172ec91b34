//! What waits on a disabled AMI: nothing new is made or tested from it. AWS launches no disabled
//! AMI (so its boot test cannot run), and its owner disabled it to stop its use, which copies
//! into more regions would undo.

use std::collections::HashMap;

use super::{Action, Change, Reason};
use crate::graph::DesiredGraph;

/// Holds every change that would make or run something from a disabled AMI, directly or through
/// another held change, and says so. `changes` are in dependency order, so one pass sees each
/// node's dependencies before the node. The warnings, one per held change.
pub(super) fn hold_behind_disabled(desired: &DesiredGraph, changes: &mut [Change]) -> Vec<String> {
    let mut held: HashMap<String, String> = changes
        .iter()
        .filter_map(|change| {
            change.reasons.iter().find_map(|reason| match reason {
                Reason::Disabled { id } => Some((change.node.clone(), id.clone())),
                _ => None,
            })
        })
        .collect();
    let mut warnings = Vec::new();
    for change in changes.iter_mut() {
        if held.is_empty() {
            break;
        }
        if !matches!(change.action, Action::Create | Action::Replace) {
            continue;
        }
        let dependencies = desired.dependencies(&change.node);
        let Some(image) = dependencies.iter().find_map(|d| held.get(*d)).cloned() else { continue };
        change.action = Action::NoOp;
        change.diffs.clear();
        let why = Reason::BehindDisabled { image: image.clone() };
        warnings.push(format!("{}: {why}", change.node));
        change.reasons.push(why);
        held.insert(change.node.clone(), image);
    }
    warnings
}
