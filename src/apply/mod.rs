//! The executor: one attempt to realise a plan. Deletes run first (AMIs before the snapshots
//! behind them), then creates and updates in topological order; independent nodes run
//! concurrently, bounded per region. A failure stops only the nodes that depend on it; every
//! node's outcome is reported.
//!
//! Invariant: never two operations on the same node at once (each node is one future, awaited
//! by its dependents through a shared handle).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared, join_all};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;

mod build;
mod seed;

use crate::cloud::retry::RetryPolicy;
use crate::cloud::{Cloud, NoProgress, Progress};
use crate::events::{self, Event, Events, Phase};
use crate::graph::{DesiredGraph, NodeKind};
use crate::plan::{Action, Change, Plan};
pub use crate::resource::steps::Deadlines;
use crate::resource::steps::{Inputs, StepError, Steps};
use crate::resource::{self, Node, Removal, Update};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Operations in flight per region (AWS allows 5 concurrent copies into one region).
    pub parallelism: usize,
    pub deadlines: Deadlines,
    pub policy: RetryPolicy,
    /// Keep a failed build's helper, volume and network for debugging.
    pub keep_on_failure: bool,
    /// Where to write run events (JSON lines), if anywhere.
    pub events: Option<Arc<Events>>,
    /// Where uploads report the bytes they have sent.
    pub progress: Arc<dyn Progress>,
    /// Where the reports boot tests collect are stored: `<dir>/<stack>/<node>/<run>/`.
    pub reports: PathBuf,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 4,
            deadlines: Deadlines::default(),
            policy: RetryPolicy::default(),
            keep_on_failure: false,
            events: None,
            progress: Arc::new(NoProgress),
            reports: PathBuf::from("amiplan-reports"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    Failed(String),
    /// Not attempted: a dependency failed, or the run was interrupted.
    Skipped(String),
    /// Done as far as AWS allows now; the rest is left to a run after the time said (an AMI
    /// whose deregistration protection's cooldown keeps it). Not a failure of an apply; a
    /// destroy that leaves anything behind is one.
    Waiting(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub stack: String,
    pub node: String,
    pub region: String,
    pub action: Action,
    pub resource: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub seconds: f64,
    /// Where the reports a boot test collected from its instance were stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub nodes: Vec<NodeReport>,
    pub interrupted: bool,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.nodes.iter().all(|n| !matches!(n.outcome, Outcome::Failed(_) | Outcome::Skipped(_)))
    }

    /// Whether anything is left for a later run (see [`Outcome::Waiting`]).
    pub fn waiting(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n.outcome, Outcome::Waiting(_)))
    }
}

type NodeResult = Result<String, ()>;
type Handle<'f> = Shared<BoxFuture<'f, NodeResult>>;

struct Executor<'a, C> {
    cloud: &'a C,
    plan: &'a Plan,
    graph: &'a DesiredGraph,
    options: &'a ApplyOptions,
    slots: HashMap<String, Arc<Semaphore>>,
    reports: Mutex<Vec<NodeReport>>,
    /// Resource of every node that has one after this run (created, adopted, or left by a failure).
    resources: Mutex<HashMap<String, String>>,
    interrupted: &'a AtomicBool,
    /// Names this run's attempt in client tokens (see [`Executor::client_token`]).
    attempt: String,
    /// When the run started (UTC, `20261124T101500Z`): names its directory of reports.
    started: String,
    /// Reports stored per node.
    collected: Mutex<HashMap<String, PathBuf>>,
}

/// Executes `plan` (made from `graph`). `interrupted` is polled before each node starts: once it
/// is set, no new work begins, in-flight work finishes, and the report says what was not done.
pub async fn apply<C: Cloud>(
    cloud: &C,
    plan: &Plan,
    graph: &DesiredGraph,
    options: &ApplyOptions,
    interrupted: &AtomicBool,
) -> Report {
    let mut regions: Vec<&str> = plan.changes.iter().map(|c| c.region.as_str()).collect();
    regions.sort();
    regions.dedup();
    let slots = regions.iter().map(|r| (r.to_string(), Arc::new(Semaphore::new(options.parallelism.max(1))))).collect();
    let executor = Executor {
        cloud,
        plan,
        graph,
        options,
        slots,
        reports: Mutex::default(),
        resources: Mutex::default(),
        interrupted,
        attempt: format!("{:016x}", fastrand::u64(..)),
        started: jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string(),
        collected: Mutex::default(),
    };
    let failed_deletes = executor.delete_phase().await;
    executor.create_phase(&failed_deletes).await;
    executor.remove_copied_sources().await;
    executor.retire_phase().await;
    let mut nodes = executor.reports.into_inner().expect("report lock");
    // In the plan's order (dependencies first), as people read what happened.
    let order: HashMap<(&str, Option<&str>), usize> =
        plan.changes.iter().enumerate().map(|(i, c)| ((c.node.as_str(), c.live_id.as_deref()), i)).collect();
    let position = |r: &NodeReport| {
        let by_live = order.get(&(r.node.as_str(), r.resource.as_deref()));
        by_live.or_else(|| order.get(&(r.node.as_str(), None))).copied().unwrap_or(usize::MAX)
    };
    nodes.sort_by(|a, b| (position(a), &a.node, &a.resource).cmp(&(position(b), &b.node, &b.resource)));
    Report { nodes, interrupted: interrupted.load(Ordering::SeqCst) }
}

impl<'a, C: Cloud> Executor<'a, C> {
    fn record(&self, change: &Change, resource: Option<String>, outcome: Outcome, started: Instant) {
        if let Some(id) = &resource
            && change.action != Action::Delete
        {
            self.resources.lock().expect("resource lock").insert(change.node.clone(), id.clone());
        }
        let seconds = started.elapsed().as_secs_f64();
        let said = match (&outcome, &resource) {
            (Outcome::Failed(error), _) => format!("failed: {error}"),
            (Outcome::Skipped(why), _) => format!("skipped: {why}"),
            (Outcome::Waiting(why), _) => format!("waiting: {why}"),
            (Outcome::Created, Some(id)) => format!("created {id}"),
            (Outcome::Updated, Some(id)) => format!("updated {id}"),
            (Outcome::Deleted, Some(id)) => format!("deleted {id}"),
            (outcome, _) => format!("{outcome:?}").to_lowercase(),
        };
        self.options.progress.finished(&change.node, &said, seconds);
        let (phase, error) = match &outcome {
            Outcome::Failed(error) => (Phase::Failed, Some(error.as_str())),
            Outcome::Skipped(why) => (Phase::Skipped, Some(why.as_str())),
            Outcome::Waiting(why) => (Phase::Waiting, Some(why.as_str())),
            _ => (Phase::Succeeded, None),
        };
        let reports = self.collected.lock().expect("collected lock").get(&change.node).cloned();
        self.emit(change, phase, resource.as_deref(), Some(seconds), error, reports.as_deref());
        let report = NodeReport {
            stack: change.stack.clone(),
            node: change.node.clone(),
            region: change.region.clone(),
            action: change.action,
            resource,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
            reports,
        };
        match &report.outcome {
            Outcome::Failed(error) => tracing::error!(node = %report.node, %error, "failed"),
            outcome => {
                tracing::info!(node = %report.node, resource = report.resource.as_deref().unwrap_or("-"), ?outcome, "done")
            }
        }
        self.reports.lock().expect("report lock").push(report);
    }

    fn emit(
        &self,
        change: &Change,
        event: Phase,
        resource: Option<&str>,
        seconds: Option<f64>,
        error: Option<&str>,
        reports: Option<&Path>,
    ) {
        let action = serde_json::to_value(change.action).ok();
        let action_word = action.as_ref().and_then(|a| a.as_str()).unwrap_or_default();
        if event == Phase::Started {
            self.options.progress.started(&change.node, action_word);
        }
        let Some(events) = &self.options.events else { return };
        events.emit(&Event {
            time: events::now(),
            stack: &change.stack,
            node: &change.node,
            region: &change.region,
            action: action_word,
            event,
            resource,
            seconds,
            error,
            reports,
        });
    }

    async fn slot(&self, region: &str) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.slots[region]).acquire_owned().await.expect("semaphores are never closed")
    }

    fn stopping(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Deletes and the delete half of replaces: every AMI first, then the snapshots. Returns the
    /// nodes whose delete failed, so their re-creation is not attempted.
    async fn delete_phase(&self) -> Vec<String> {
        let removing =
            |c: &&Change| matches!(c.action, Action::Delete | Action::Replace) && c.live_id.is_some() && !c.retire;
        let mut failed = Vec::new();
        let mut ranks: Vec<u8> = self.plan.changes.iter().filter(removing).map(|c| c.kind.delete_rank()).collect();
        ranks.sort();
        ranks.dedup();
        for rank in ranks {
            let batch = self.plan.changes.iter().filter(removing).filter(|c| c.kind.delete_rank() == rank);
            let results = join_all(batch.map(|change| async move { (change, self.delete(change).await) })).await;
            for (change, ok) in results {
                if !ok {
                    failed.push(change.node.clone());
                }
            }
        }
        failed
    }

    /// Retention's deletes: only for stacks whose every other node succeeded, so that the new
    /// version is available and published before an older one goes.
    async fn retire_phase(&self) {
        let retiring: Vec<&Change> = self.plan.changes.iter().filter(|c| c.retire).collect();
        if retiring.is_empty() {
            return;
        }
        let unfinished = self.unfinished_stacks();
        let mut ranks: Vec<u8> = retiring.iter().map(|c| c.kind.delete_rank()).collect();
        ranks.sort();
        ranks.dedup();
        for rank in ranks {
            let batch = retiring.iter().filter(|c| c.kind.delete_rank() == rank);
            let unfinished = &unfinished;
            join_all(batch.map(|change| async move {
                if let Some(node) = unfinished.get(&change.stack) {
                    let why = format!("kept: the new version is not out ({node} did not succeed)");
                    self.record(change, change.live_id.clone(), Outcome::Skipped(why), Instant::now());
                    return;
                }
                self.delete(change).await;
            }))
            .await;
        }
    }

    /// Stacks with a node that failed or was skipped so far, each with one such node.
    fn unfinished_stacks(&self) -> BTreeMap<String, String> {
        let reports = self.reports.lock().expect("report lock");
        let unfinished = reports.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::Skipped(_)));
        unfinished.map(|r| (r.stack.clone(), r.node.clone())).collect()
    }

    async fn delete(&self, change: &Change) -> bool {
        let started = Instant::now();
        let id = change.live_id.clone().expect("deletes have a live resource");
        if self.stopping() {
            self.record(change, Some(id), Outcome::Skipped("interrupted before it started".into()), started);
            return false;
        }
        let _slot = self.slot(&change.region).await;
        let started = Instant::now();
        self.emit(change, Phase::Started, Some(&id), None, None, None);
        let result =
            resource::delete(self, change.kind, &change.region, &id, &change.with_snapshots, &change.protection).await;
        match result {
            // A replace reports once, after its create half.
            Ok(Removal::Done) if change.action == Action::Replace => true,
            Ok(Removal::Done) => {
                self.record(change, Some(id), Outcome::Deleted, started);
                true
            }
            // The new AMI cannot be made while the old one keeps its name.
            Ok(Removal::AfterCooldown(why)) if change.action == Action::Replace => {
                self.record(change, Some(id), Outcome::Failed(why), started);
                false
            }
            Ok(Removal::AfterCooldown(why)) => {
                self.record(change, Some(id), Outcome::Waiting(why), started);
                true
            }
            Err(error) => {
                self.record(change, Some(id), Outcome::Failed(error.to_string()), started);
                false
            }
        }
    }

    /// Creates, updates and the create half of replaces, in dependency order.
    async fn create_phase(&self, failed_deletes: &[String]) {
        let changes: HashMap<&str, &Change> = self
            .plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Delete && self.graph.get(&c.node).is_some())
            .map(|c| (c.node.as_str(), c))
            .collect();
        let mut handles: HashMap<&str, Handle<'_>> = HashMap::new();
        for node in self.graph.topological() {
            let Some(&change) = changes.get(node.id.as_str()) else {
                continue;
            };
            let dependencies: Vec<_> = self
                .graph
                .dependencies(&node.id)
                .iter()
                .filter_map(|d| {
                    let dependency = self.graph.get(d)?;
                    Some((dependency.id.as_str(), dependency.kind(), handles.get(d)?.clone()))
                })
                .collect();
            let delete_failed = failed_deletes.contains(&node.id);
            let handle = self.run_node(node, change, dependencies, delete_failed).boxed().shared();
            handles.insert(node.id.as_str(), handle);
        }
        let teardowns = self.teardowns(&handles);
        futures::future::join(join_all(handles.into_values()), join_all(teardowns)).await;
    }

    async fn run_node(
        &self,
        node: &Node,
        change: &Change,
        dependencies: Vec<(&str, NodeKind, Handle<'_>)>,
        delete_failed: bool,
    ) -> NodeResult {
        let started = Instant::now();
        let live = change.live_id.clone();
        match change.action {
            Action::NoOp => {
                self.record(change, live.clone(), Outcome::Unchanged, started);
                // A parameter left as it is (someone else's, or a channel held back) holds back
                // nothing: what waits for it (the catalogue files) renders what is there.
                if change.kind == NodeKind::Parameter {
                    return Ok(live.unwrap_or_default());
                }
                return live.ok_or(());
            }
            Action::Delete => return Err(()),
            Action::Create | Action::Replace | Action::Update => {}
        }
        if delete_failed {
            self.record(change, live, Outcome::Skipped("deleting the old resource failed".into()), started);
            return Err(());
        }
        // Updates wait for what they depend on too: a parameter moves to an AMI only once that
        // AMI (and every other its channel waits for) is done.
        let mut inputs = Inputs::default();
        for (dependency_id, kind, dependency) in dependencies {
            match dependency.await {
                Ok(id) => inputs.add(dependency_id, kind, id),
                Err(()) => {
                    let skipped = Outcome::Skipped("a dependency failed or was skipped".into());
                    // Its time is its own, none: not the wait for the failed dependency.
                    self.record(change, None, skipped, Instant::now());
                    return Err(());
                }
            }
        }
        if self.stopping() {
            self.record(change, live, Outcome::Skipped("interrupted before it started".into()), started);
            return Err(());
        }
        let _slot = self.slot(&node.region).await;
        // A node's time is its own work, not the wait for its dependencies or a slot.
        let started = Instant::now();
        self.emit(change, Phase::Started, change.live_id.as_deref(), None, None, None);
        let result = match (change.action, live) {
            (Action::Update, Some(id)) => {
                let update = Update { diffs: &change.diffs, inputs: &inputs, resolved: &change.resolved };
                node.spec.update(self, node, update, &id).await.map(|_| (id, Outcome::Updated))
            }
            _ => {
                let made = node.spec.create(self, node, &inputs, &change.resolved).await;
                made.map(|id| (id, Outcome::Created))
            }
        };
        match result {
            Ok((id, outcome)) => {
                self.record(change, Some(id.clone()), outcome, started);
                Ok(id)
            }
            Err(error) => {
                self.record(change, error.resource.clone(), Outcome::Failed(error.message.clone()), started);
                Err(())
            }
        }
    }

    /// The client token of one create: a digest of this run's attempt, the node and the whole
    /// request (built with an empty token). Re-sending the same request after a lost answer, as
    /// the retry policy does, reuses the token, so AWS answers with the resource it already made.
    /// A new attempt (a later run, or the same node asked for with other parameters: a new
    /// volume, a new security group) gets a new token: AWS keeps a token's first resource for at
    /// least a day, even after it was terminated or deleted, and answers
    /// `IdempotentParameterMismatch` to the same token with other parameters. What a crashed run
    /// made is found by its tags instead, which every create sets atomically.
    fn token(&self, node: &Node, request: &dyn std::fmt::Debug) -> String {
        let digest = Sha256::digest(format!("{}\0{}\0{request:?}", self.attempt, node.id).as_bytes());
        hex::encode(&digest[..16])
    }
}

impl<C: Cloud> Steps for Executor<'_, C> {
    type Cloud = C;

    fn cloud(&self) -> &C {
        self.cloud
    }

    fn policy(&self) -> &RetryPolicy {
        &self.options.policy
    }

    fn deadlines(&self) -> &Deadlines {
        &self.options.deadlines
    }

    fn progress(&self) -> &dyn Progress {
        self.options.progress.as_ref()
    }

    fn client_token(&self, node: &Node, request: &dyn std::fmt::Debug) -> String {
        self.token(node, request)
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.graph.get(id)
    }

    fn reports_dir(&self, node: &Node) -> PathBuf {
        let node_dir: String =
            node.id.chars().map(|c| if c.is_ascii_alphanumeric() || "._-@".contains(c) { c } else { '_' }).collect();
        self.options.reports.join(&node.stack).join(node_dir).join(&self.started)
    }

    fn collected_reports(&self, node: &Node, dir: &Path) {
        self.collected.lock().expect("collected lock").insert(node.id.clone(), dir.to_path_buf());
    }

    async fn catalogue_files(&self, stack: &str) -> Result<BTreeMap<String, Vec<u8>>, StepError> {
        let stacks = [stack.to_string()];
        let mut found = crate::observe::catalogue_state(self.cloud, self.graph, &stacks, &[]).await?;
        // Versions this run retires leave the catalogue before their AMIs go (in the retire
        // phase, after this).
        let retiring: Vec<(&str, &str)> = (self.plan.changes.iter())
            .filter(|c| c.retire && c.kind.is_image())
            .filter_map(|c| Some((c.region.as_str(), c.live_id.as_deref()?)))
            .collect();
        found.retain(|live| !retiring.contains(&(live.region.as_str(), live.id.as_str())));
        Ok(crate::distribution::files::render(&crate::distribution::Catalogue::from_live(self.graph, &found)))
    }
}
