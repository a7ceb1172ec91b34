//! What the plan adds to and removes from the monthly bill for snapshot storage, per region.
//! AMIs cost nothing of their own: their snapshots are what AWS bills, by the bytes written to
//! them (EBS stores no empty block). A direct upload knows exactly how many blocks hold data;
//! a helper build knows only its volume's size, an upper bound.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Action, Change};
use crate::cloud::LiveResource;
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::resource::Spec;
use crate::resource::snapshot::MadeBy;

/// EBS snapshot storage, Standard tier, in US dollars per GB-month: AWS's published price for
/// US East (N. Virginia) on https://aws.amazon.com/ebs/pricing/. This table was written on
/// 2026-12-05 from sources quoting that page (the page itself was not reachable from the machine
/// it was written on); check it there before relying on it. Every region is priced at it: it is
/// the lowest, and other regions cost the same or somewhat more.
pub const USD_PER_GB_MONTH: f64 = 0.05;
/// Where [`USD_PER_GB_MONTH`] comes from, as plans say it.
pub const PRICE_SOURCE: &str = "amiplan's price table of 2026-12-05: EBS snapshot storage (Standard tier) at $0.05 per GB-month, AWS's published US East (N. Virginia) price (aws.amazon.com/ebs/pricing); other regions may cost more";

/// The change in snapshot storage in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCost {
    pub region: String,
    /// Bytes of snapshot storage the plan adds.
    pub added_bytes: u64,
    /// Bytes of snapshot storage the plan removes.
    pub removed_bytes: u64,
    /// Whether a size is an upper bound (a helper build's volume size) rather than the bytes
    /// with data.
    pub at_most: bool,
}

impl RegionCost {
    /// Dollars per month added (positive) or saved (negative).
    pub fn usd_per_month(&self) -> f64 {
        (self.added_bytes as f64 - self.removed_bytes as f64) / 1e9 * USD_PER_GB_MONTH
    }
}

/// The snapshot storage `changes` add and remove, by region; regions without any left out.
pub(super) fn estimate(changes: &[Change], desired: &DesiredGraph, observed: &[LiveResource]) -> Vec<RegionCost> {
    let live: HashMap<(&str, &str), &LiveResource> =
        observed.iter().map(|r| ((r.region.as_str(), r.id.as_str()), r)).collect();
    let mut regions: BTreeMap<String, RegionCost> = BTreeMap::new();
    for change in changes {
        let cost = regions
            .entry(change.region.clone())
            .or_insert_with(|| RegionCost { region: change.region.clone(), ..RegionCost::default() });
        // The copies' source that is not kept is gone again by the end of the run.
        if matches!(change.action, Action::Create | Action::Replace)
            && !change.until_copied
            && let Some((bytes, at_most)) = desired.get(&change.node).and_then(|node| stored(node, desired))
        {
            cost.added_bytes += bytes;
            cost.at_most |= at_most;
        }
        if matches!(change.action, Action::Delete | Action::Replace) && !change.transient {
            let mut gone: Vec<&str> = change.with_snapshots.iter().map(String::as_str).collect();
            if change.kind == NodeKind::Snapshot {
                gone.extend(change.live_id.as_deref());
            }
            for id in gone {
                if let Some(size) = live.get(&(change.region.as_str(), id)).and_then(|s| s.size_bytes) {
                    cost.removed_bytes += size;
                }
            }
        }
    }
    regions.into_values().filter(|c| c.added_bytes > 0 || c.removed_bytes > 0).collect()
}

/// The snapshot bytes a node's resource is billed for once made, and whether that is an upper
/// bound. An image registered from a snapshot node adds nothing (the snapshot is counted);
/// a copy copies its snapshot, so it adds as much again.
fn stored(node: &Node, desired: &DesiredGraph) -> Option<(u64, bool)> {
    match &node.spec {
        Spec::Snapshot(snapshot) => match &snapshot.made_by {
            // An image not read yet stores at most what it may hold in blocks with data.
            MadeBy::Upload { source } => Some((source.data_bytes_at_most(), source.data_bytes().is_none())),
            MadeBy::Capture { .. } => Some((u64::from(snapshot.volume_size_gib) << 30, true)),
            // An encrypted copy of the plain snapshot it depends on: as large.
            MadeBy::EncryptCopy => desired
                .dependency_of_kind(&node.id, NodeKind::Snapshot)
                .and_then(|plain| stored(plain, desired))
                .or(Some((u64::from(snapshot.volume_size_gib) << 30, true))),
        },
        Spec::Copy(_) => {
            let image = desired.dependency_of_kind(&node.id, NodeKind::Image)?;
            let snapshot = desired.dependency_of_kind(&image.id, NodeKind::Snapshot)?;
            stored(snapshot, desired)
        }
        _ => None,
    }
}
