//! Retention: which owned resources of a stack's earlier versions stay, and which go once the
//! new version is out.

use std::collections::{BTreeMap, HashMap};

use super::Reason;
use crate::cloud::LiveResource;
use crate::graph::DesiredGraph;
use crate::tags;

pub(super) enum Retention {
    Keep(Reason),
    Retire(Reason),
}

/// For stacks with retention: which owned resources of earlier versions stay (the newest `keep`
/// − 1 versions, by their newest creation time) and which go once the new version is out.
/// Versions a channel points at (`pinned`: (stack, version) → channel) are kept whatever their
/// age.
pub(super) fn retention<'a>(
    desired: &DesiredGraph,
    orphans: &[&'a LiveResource],
    pinned: &BTreeMap<(String, String), String>,
) -> HashMap<(&'a str, &'a str), Retention> {
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
        let verdict = if let Some(channel) = pinned.get(&(stack.to_string(), version.clone())) {
            Retention::Keep(Reason::KeptForChannel { channel: channel.clone() })
        } else if rank + 1 < keep as usize {
            Retention::Keep(Reason::KeptByRetention { version: version.clone(), keep })
        } else {
            Retention::Retire(Reason::Retired { version: version.clone(), keep, current: current.to_string() })
        };
        verdicts.insert((live.region.as_str(), live.id.as_str()), verdict);
    }
    verdicts
}
