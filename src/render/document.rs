//! The plan as a documented JSON document (`plan --json`, `show --json`): format described in
//! docs/plan-format.md, its JSON Schema checked in as schema/plan.schema.json.
//!
//! Within a major `format_version`, changes only add: new fields, new values of `action`-like
//! strings never. A consumer that ignores fields it does not know keeps working. The saved plan
//! (`plan --out`) is a different, internal file that only amiplan reads.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::{Action, Change, Plan};

/// `MAJOR.MINOR` of the document below.
pub const FORMAT_VERSION: &str = "1.2";

/// A plan: what apply (or destroy) would do, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "amiplan plan")]
pub struct PlanDocument {
    /// `MAJOR.MINOR`: a new major version may change or remove fields; a new minor one only
    /// adds them.
    #[schemars(regex(pattern = r"^1\.[0-9]+$"))]
    pub format_version: String,
    /// The amiplan that made the plan.
    pub amiplan_version: String,
    /// The AWS account planned against.
    pub account: String,
    /// Whether this is a plan to destroy everything the stacks own.
    pub destroy: bool,
    pub summary: SummaryDocument,
    /// In the order apply carries them out (dependencies first; dependents first for deletes).
    pub changes: Vec<ChangeDocument>,
    /// Findings that do not stop the plan but will make part of it fail or surprise.
    pub warnings: Vec<String>,
    /// What each stack that follows an upstream image resolved it to.
    pub upstream: Vec<UpstreamDocument>,
    /// Stacks that own resources but that no manifest given declares (`plan --prune` plans
    /// their deletion).
    pub orphaned_stacks: Vec<OrphanedDocument>,
    /// The estimated change in the monthly bill for snapshot storage.
    pub storage_cost: CostDocument,
}

/// Snapshot storage the plan adds and removes, and what that costs a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostDocument {
    /// The price used, and where it comes from.
    pub price_source: String,
    pub usd_per_gb_month: f64,
    /// The change in US dollars per month over all regions (negative: a saving).
    pub usd_per_month: f64,
    pub regions: Vec<RegionCostDocument>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegionCostDocument {
    pub region: String,
    pub added_bytes: u64,
    pub removed_bytes: u64,
    pub usd_per_month: f64,
    /// A size that is an upper bound (a helper build's volume, or an image not read yet: the
    /// blocks its file holds data for), not the bytes with data.
    pub at_most: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrphanedDocument {
    pub stack: String,
    /// Resources per region.
    pub regions: BTreeMap<String, usize>,
    /// Resources per kind.
    pub kinds: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryDocument {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// What happens to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeDocument {
    pub stack: String,
    /// The node's identity, e.g. `image/fedora-41-x86_64-gp3@eu-west-1` (tagged as
    /// `amiplan:node`).
    pub node: String,
    /// The resource kind: `snapshot`, `image`, `image-copy`, `helper`, `parameter`, …
    pub kind: String,
    pub region: String,
    pub action: ActionDocument,
    /// The live resource acted on (`ami-…`, `snap-…`, a parameter name); absent for creates.
    pub id: Option<String>,
    /// Why, in words, one entry per reason.
    pub reasons: Vec<String>,
    /// The attributes that force a replacement (with `action: replace`).
    pub replaced_because: Vec<String>,
    /// Attributes as they are: for updates and replaces those that change, for deletes the
    /// resource's ID; `null` for creates and resources without a change. A `null` value is
    /// an attribute that is not set.
    pub before: Option<BTreeMap<String, Option<String>>>,
    /// Attributes as they will be: for creates and replaces everything the new resource will
    /// have, for updates those that change; `null` for deletes and resources without a change.
    pub after: Option<BTreeMap<String, Option<String>>>,
    /// A resource that exists only for a build and is removed after it.
    pub transient: bool,
    /// A build region's AMI or snapshot that is only the copies' source (`build.keep_image:
    /// false`): with a create, removed once the copies are done; with a delete, every copy
    /// exists. Since format 1.1.
    pub until_copied: bool,
    /// A delete that waits until the stack's new version is available and published.
    pub retire: bool,
    /// With AMI deletes: the snapshots deleted with the AMI.
    pub with_snapshots: Vec<String>,
    /// With AMI deletes: the deregistration protection lifted first (`with-cooldown`,
    /// `without-cooldown`, or a cooldown already under way), `null` for none. With a cooldown
    /// AWS keeps the AMI 24 hours more, and the delete is done by a later run. Since format 1.2.
    #[serde(default)]
    pub deregistration_protection: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActionDocument {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpstreamDocument {
    pub stack: String,
    /// The image file's name and where it is downloaded from.
    pub file: String,
    pub url: String,
    pub sha256: String,
    pub version: String,
}

impl PlanDocument {
    pub fn of(plan: &Plan) -> PlanDocument {
        let summary = plan.summary();
        PlanDocument {
            format_version: FORMAT_VERSION.into(),
            amiplan_version: env!("CARGO_PKG_VERSION").into(),
            account: plan.account.clone(),
            destroy: plan.destroy,
            summary: SummaryDocument {
                create: summary.create,
                update: summary.update,
                replace: summary.replace,
                delete: summary.delete,
                unchanged: summary.unchanged,
            },
            changes: plan.changes.iter().map(ChangeDocument::of).collect(),
            warnings: plan.warnings.clone(),
            upstream: plan
                .upstream
                .iter()
                .map(|u| UpstreamDocument {
                    stack: u.stack.clone(),
                    file: u.file.clone(),
                    url: u.url.clone(),
                    sha256: u.sha256.clone(),
                    version: u.version.clone(),
                })
                .collect(),
            orphaned_stacks: plan
                .orphaned
                .iter()
                .map(|o| OrphanedDocument {
                    stack: o.stack.clone(),
                    regions: o.regions.clone(),
                    kinds: o.kinds.clone(),
                })
                .collect(),
            storage_cost: CostDocument {
                price_source: crate::plan::cost::PRICE_SOURCE.into(),
                usd_per_gb_month: crate::plan::cost::USD_PER_GB_MONTH,
                usd_per_month: plan.cost.iter().map(|c| c.usd_per_month()).sum(),
                regions: plan
                    .cost
                    .iter()
                    .map(|c| RegionCostDocument {
                        region: c.region.clone(),
                        added_bytes: c.added_bytes,
                        removed_bytes: c.removed_bytes,
                        usd_per_month: c.usd_per_month(),
                        at_most: c.at_most,
                    })
                    .collect(),
            },
        }
    }
}

impl ChangeDocument {
    fn of(change: &Change) -> ChangeDocument {
        let changed = |pick: fn(&crate::plan::AttrDiff) -> &Option<String>| {
            change.diffs.iter().map(|d| (d.attribute.to_string(), pick(d).clone())).collect::<BTreeMap<_, _>>()
        };
        let planned = || change.planned.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let (before, after) = match change.action {
            Action::Create => (None, Some(planned())),
            Action::Update => (Some(changed(|d| &d.before)), Some(changed(|d| &d.after))),
            Action::Replace => (Some(changed(|d| &d.before)), Some(planned())),
            Action::Delete => (Some(BTreeMap::from([("id".to_string(), change.live_id.clone())])), None),
            Action::NoOp => (None, None),
        };
        let replaced_because = match change.action {
            Action::Replace => change.diffs.iter().map(|d| d.attribute.to_string()).collect(),
            _ => vec![],
        };
        ChangeDocument {
            stack: change.stack.clone(),
            node: change.node.clone(),
            kind: change.kind.as_str().to_string(),
            region: change.region.clone(),
            action: match change.action {
                Action::NoOp => ActionDocument::NoOp,
                Action::Create => ActionDocument::Create,
                Action::Update => ActionDocument::Update,
                Action::Replace => ActionDocument::Replace,
                Action::Delete => ActionDocument::Delete,
            },
            id: change.live_id.clone(),
            reasons: change.reasons.iter().map(ToString::to_string).collect(),
            replaced_because,
            before,
            after,
            transient: change.transient,
            until_copied: change.until_copied,
            retire: change.retire,
            with_snapshots: change.with_snapshots.clone(),
            deregistration_protection: (!change.protection.is_off()).then(|| change.protection.to_string()),
        }
    }
}

/// The document as printed: pretty JSON and a final newline.
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(&PlanDocument::of(plan)).expect("a plan always serializes");
    text.push('\n');
    text
}

/// The JSON Schema of [`PlanDocument`], as checked in.
pub fn json_schema() -> String {
    let mut text =
        serde_json::to_string_pretty(&schemars::schema_for!(PlanDocument)).expect("a schema always serializes");
    text.push('\n');
    text
}
