//! The executor: one attempt to realise a plan. Deletes run first (AMIs before the snapshots
//! behind them), then creates and updates in topological order; independent nodes run
//! concurrently, bounded per region. A failure stops only the nodes that depend on it; every
//! node's outcome is reported.
//!
//! Invariant: never two operations on the same node at once (each node is one future, awaited
//! by its dependents through a shared handle).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared, join_all};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;

mod build;
mod test;

use crate::cloud::retry::{Poll, RetryPolicy, WaitError, wait_until};
use crate::cloud::{
    Cloud, CloudError, ErrorClass, ImageCopy, ImageRegistration, ResourceStatus, SnapshotUpload, State,
};
use crate::deprecation;
use crate::events::{self, Event, Events, Phase};
use crate::graph::{DesiredGraph, Node, NodeKind};
use crate::plan::{Action, Change, Plan};
use crate::resource::Spec;
use crate::resource::snapshot::{MadeBy, Snapshot};
use crate::tags;

/// How long each kind of resource may take to become ready. Defaults follow what AWS needs in
/// practice (cross-region copies of large images take well over half an hour) rather than the
/// short waits users of other tools keep raising.
#[derive(Debug, Clone)]
pub struct Deadlines {
    pub snapshot: Duration,
    pub image: Duration,
    pub copy: Duration,
    /// Starting a helper, and removing a transient resource still held by another.
    pub transient: Duration,
    /// How long an instance that stopped without a result line is still polled: without
    /// `Latest`, EC2 posts the console buffered at the stop some time after the instance reads
    /// `stopped`.
    pub console_grace: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            snapshot: Duration::from_secs(60 * 60),
            image: Duration::from_secs(40 * 60),
            copy: Duration::from_secs(90 * 60),
            transient: Duration::from_secs(15 * 60),
            console_grace: Duration::from_secs(5 * 60),
        }
    }
}

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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 4,
            deadlines: Deadlines::default(),
            policy: RetryPolicy::default(),
            keep_on_failure: false,
            events: None,
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
    };
    let failed_deletes = executor.delete_phase().await;
    executor.create_phase(&failed_deletes).await;
    executor.retire_phase().await;
    let mut nodes = executor.reports.into_inner().expect("report lock");
    nodes.sort_by(|a, b| (&a.stack, &a.node, &a.resource).cmp(&(&b.stack, &b.node, &b.resource)));
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
        let (phase, error) = match &outcome {
            Outcome::Failed(error) => (Phase::Failed, Some(error.as_str())),
            Outcome::Skipped(why) => (Phase::Skipped, Some(why.as_str())),
            _ => (Phase::Succeeded, None),
        };
        self.emit(change, phase, resource.as_deref(), Some(seconds), error);
        let report = NodeReport {
            stack: change.stack.clone(),
            node: change.node.clone(),
            region: change.region.clone(),
            action: change.action,
            resource,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        };
        match &report.outcome {
            Outcome::Failed(error) => tracing::error!(node = %report.node, %error, "failed"),
            outcome => {
                tracing::info!(node = %report.node, resource = ?report.resource, ?outcome, "done")
            }
        }
        self.reports.lock().expect("report lock").push(report);
    }

    fn emit(&self, change: &Change, event: Phase, resource: Option<&str>, seconds: Option<f64>, error: Option<&str>) {
        let Some(events) = &self.options.events else { return };
        let action = serde_json::to_value(change.action).ok();
        events.emit(&Event {
            time: events::now(),
            stack: &change.stack,
            node: &change.node,
            region: &change.region,
            action: action.as_ref().and_then(|a| a.as_str()).unwrap_or_default(),
            event,
            resource,
            seconds,
            error,
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
        let unfinished: BTreeMap<String, String> = self
            .reports
            .lock()
            .expect("report lock")
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::Skipped(_)))
            .map(|r| (r.stack.clone(), r.node.clone()))
            .collect();
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

    async fn delete(&self, change: &Change) -> bool {
        let started = Instant::now();
        let id = change.live_id.clone().expect("deletes have a live resource");
        if self.stopping() {
            self.record(change, Some(id), Outcome::Skipped("interrupted before it started".into()), started);
            return false;
        }
        let _slot = self.slot(&change.region).await;
        let started = Instant::now();
        self.emit(change, Phase::Started, Some(&id), None, None);
        let result = if change.kind.is_image() {
            self.delete_image(change, &id).await
        } else if change.kind == NodeKind::Snapshot {
            self.delete_snapshot_after_images(&change.region, &id).await
        } else {
            self.delete_transient(&change.region, change.kind, &id).await
        };
        match result {
            // A replace reports once, after its create half.
            Ok(()) if change.action == Action::Replace => true,
            Ok(()) => {
                self.record(change, Some(id), Outcome::Deleted, started);
                true
            }
            Err(error) => {
                self.record(change, Some(id), Outcome::Failed(error.to_string()), started);
                false
            }
        }
    }

    async fn delete_image(&self, change: &Change, id: &str) -> Result<(), CloudError> {
        self.cloud.deregister_image(&change.region, id).await?;
        for snapshot in &change.with_snapshots {
            self.delete_snapshot_after_images(&change.region, snapshot).await?;
        }
        Ok(())
    }

    /// Right after DeregisterImage, EBS may still count the snapshot as in use for a moment. The
    /// cloud already retries throttling and transient faults; this layer retries only that.
    async fn delete_snapshot_after_images(&self, region: &str, id: &str) -> Result<(), CloudError> {
        self.options
            .policy
            .run(false, || async {
                self.cloud.delete_snapshot(region, id).await.map_err(|e| {
                    let class = if e.class == ErrorClass::InUse { ErrorClass::Transient } else { ErrorClass::Fatal };
                    e.with_class(class)
                })
            })
            .await
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
                .filter_map(|d| Some((self.graph.get(d)?.kind, handles.get(d)?.clone())))
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
        dependencies: Vec<(NodeKind, Handle<'_>)>,
        delete_failed: bool,
    ) -> NodeResult {
        let started = Instant::now();
        let live = change.live_id.clone();
        match change.action {
            Action::NoOp => {
                self.record(change, live.clone(), Outcome::Unchanged, started);
                return live.ok_or(());
            }
            Action::Delete => return Err(()),
            Action::Create | Action::Replace | Action::Update => {}
        }
        if delete_failed {
            self.record(change, live, Outcome::Skipped("deleting the old resource failed".into()), started);
            return Err(());
        }
        let mut inputs = Inputs::new();
        if change.action != Action::Update {
            for (kind, dependency) in dependencies {
                match dependency.await {
                    Ok(id) => {
                        inputs.insert(kind, id);
                    }
                    Err(()) => {
                        let skipped = Outcome::Skipped("a dependency failed or was skipped".into());
                        // Its time is its own, none: not the wait for the failed dependency.
                        self.record(change, None, skipped, Instant::now());
                        return Err(());
                    }
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
        self.emit(change, Phase::Started, change.live_id.as_deref(), None, None);
        let result = match (change.action, live) {
            (Action::Update, Some(id)) => self.update(node, change, &id).await.map(|_| (id, Outcome::Updated)),
            _ => self.create(node, change, &inputs).await.map(|id| (id, Outcome::Created)),
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
    fn client_token(&self, node: &Node, request: &impl std::fmt::Debug) -> String {
        let digest = Sha256::digest(format!("{}\0{}\0{request:?}", self.attempt, node.id).as_bytes());
        hex::encode(&digest[..16])
    }

    async fn create(&self, node: &Node, change: &Change, inputs: &Inputs) -> Result<String, StepError> {
        let region = node.region.as_str();
        let tags = node.desired_tags();
        match &node.spec {
            Spec::Snapshot(Snapshot {
                made_by: MadeBy::Upload { source, size_bytes },
                volume_size_gib,
                encrypted,
                kms_key,
                ..
            }) => {
                let mut upload = SnapshotUpload {
                    source: source.clone(),
                    size_bytes: *size_bytes,
                    volume_size_gib: *volume_size_gib,
                    encrypted: *encrypted,
                    kms_key: kms_key.clone(),
                    tags,
                    client_token: String::new(),
                    description: format!("amiplan {}", node.id),
                };
                upload.client_token = self.client_token(node, &upload);
                let id = self.cloud.upload_snapshot(region, &upload).await?;
                let done = BTreeMap::from([(tags::UPLOADED.to_string(), "true".to_string())]);
                self.cloud
                    .set_tags(region, std::slice::from_ref(&id), &done)
                    .await
                    .map_err(|e| StepError::from(e).on(&id))?;
                self.wait_snapshot(region, &id).await?;
                Ok(id)
            }
            Spec::Image(image) => {
                let registration = ImageRegistration {
                    name: node.name.clone().unwrap_or_default(),
                    description: node.description.clone(),
                    attrs: image.ami.attrs.clone(),
                    snapshot_id: input(inputs, NodeKind::Snapshot, node)?,
                    volume_size_gib: image.ami.volume_size_gib,
                    tags,
                };
                let id = self.cloud.register_image(region, &registration).await?;
                let status = self.wait_image(region, &id, self.options.deadlines.image).await?;
                if !node.gated {
                    self.publish(node, &id, &status).await?;
                }
                Ok(id)
            }
            Spec::Copy(spec) => {
                let mut copy = ImageCopy {
                    name: node.name.clone().unwrap_or_default(),
                    description: node.description.clone(),
                    source_region: spec.source_region.clone(),
                    source_image_id: input(inputs, NodeKind::Image, node)?,
                    encrypted: spec.ami.attrs.encrypted,
                    kms_key: spec.ami.kms_key.clone(),
                    tags: tags.clone(),
                    client_token: String::new(),
                };
                copy.client_token = self.client_token(node, &copy);
                let id = self.cloud.copy_image(region, &copy).await?;
                let status = self.wait_image(region, &id, self.options.deadlines.copy).await?;
                self.tag_copy_snapshots(region, &status, &tags).await;
                if !node.gated {
                    self.publish(node, &id, &status).await?;
                }
                Ok(id)
            }
            _ => self.create_for_build(node, change, inputs).await,
        }
    }

    /// CopyImage's TagSpecifications should tag the new snapshots; where the API ignores them
    /// (the emulator does), tag them here. A snapshot that cannot be tagged is not worth failing
    /// the copy for: it is found and deleted through its AMI.
    async fn tag_copy_snapshots(&self, region: &str, status: &ResourceStatus, tags: &BTreeMap<String, String>) {
        // The spec tags describe the AMI; on its snapshots they would only confuse the planner.
        let snapshot_tags: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, _)| k.as_str() != tags::SPEC && k.as_str() != tags::ATTRS)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for snapshot in &status.snapshot_ids {
            if let Err(error) = self.cloud.set_tags(region, std::slice::from_ref(snapshot), &snapshot_tags).await {
                tracing::warn!(%error, snapshot, "could not tag the snapshot of a copied AMI");
            }
        }
    }

    /// Brings the AMI's launch permissions, and its snapshots' createVolumePermission, to what
    /// the node wants: grants what is missing, revokes what is not wanted.
    async fn share(&self, node: &Node, id: &str, snapshots: &[String]) -> Result<(), StepError> {
        let region = node.region.as_str();
        let fail = |e: CloudError| StepError::from(e).on(id);
        let want = &node.sharing;
        let have = self.cloud.image_sharing(region, id).await.map_err(fail)?;
        self.cloud.change_image_sharing(region, id, &want.minus(&have), &have.minus(want)).await.map_err(fail)?;
        let want = want.for_snapshots();
        for snapshot in snapshots {
            let have = self.cloud.snapshot_sharing(region, snapshot).await.map_err(fail)?;
            self.cloud
                .change_snapshot_sharing(region, snapshot, &want.minus(&have), &have.minus(&want))
                .await
                .map_err(fail)?;
        }
        Ok(())
    }

    /// A new AMI is private and not deprecated: only what the node wants beyond that needs calls.
    async fn publish(&self, node: &Node, id: &str, status: &ResourceStatus) -> Result<(), StepError> {
        if !node.sharing.is_private() {
            self.share(node, id, &status.snapshot_ids).await?;
        }
        if let Some(deprecation) = node.deprecation {
            let at = deprecation::format(deprecation.for_image(None));
            self.cloud
                .set_image_deprecation(&node.region, id, Some(&at))
                .await
                .map_err(|e| StepError::from(e).on(id))?;
        }
        Ok(())
    }

    async fn update(&self, node: &Node, change: &Change, id: &str) -> Result<(), StepError> {
        let region = node.region.as_str();
        if node.kind.is_transient() {
            return Ok(());
        }
        let status = if node.kind == NodeKind::Snapshot {
            self.wait_snapshot(region, id).await?
        } else {
            self.wait_image(region, id, self.options.deadlines.copy).await?
        };
        let ids = [id.to_string()];
        let mut set = BTreeMap::new();
        let mut remove = Vec::new();
        let mut shared = false;
        for diff in &change.diffs {
            let fail = |e: CloudError| StepError::from(e).on(id);
            match (diff.attribute.strip_prefix("tags."), &diff.after) {
                (Some(key), Some(value)) => {
                    set.insert(key.to_string(), value.clone());
                }
                (Some(key), None) => remove.push(key.to_string()),
                (None, after) if diff.attribute == "description" => {
                    let description = after.clone().unwrap_or_default();
                    self.cloud.set_image_description(region, id, &description).await.map_err(fail)?;
                }
                (None, at) if diff.attribute == "deprecation" => {
                    self.cloud.set_image_deprecation(region, id, at.as_deref()).await.map_err(fail)?;
                }
                (None, _) if matches!(diff.attribute.as_str(), "launch_permission" | "create_volume_permission") => {
                    if !shared {
                        self.share(node, id, &status.snapshot_ids).await?;
                        shared = true;
                    }
                }
                (None, _) => {}
            }
        }
        self.cloud.set_tags(region, &ids, &set).await.map_err(|e| StepError::from(e).on(id))?;
        self.cloud.remove_tags(region, &ids, &remove).await.map_err(|e| StepError::from(e).on(id))?;
        Ok(())
    }

    async fn wait_snapshot(&self, region: &str, id: &str) -> Result<ResourceStatus, StepError> {
        let what = format!("snapshot {id} in {region}");
        let deadline = self.options.deadlines.snapshot;
        let result = wait_until(&self.options.policy, deadline, &what, || async {
            let status = self.cloud.snapshot_status(region, id).await?;
            Ok(match status.state {
                State::Ready => Poll::Ready(Ok(status)),
                State::Failed(_) => Poll::Ready(Err(status)),
                other => Poll::Pending(other.to_string()),
            })
        })
        .await;
        settle(result, id, &what)
    }

    async fn wait_image(&self, region: &str, id: &str, deadline: Duration) -> Result<ResourceStatus, StepError> {
        let what = format!("AMI {id} in {region}");
        let result = wait_until(&self.options.policy, deadline, &what, || async {
            let status = self.cloud.image_status(region, id).await?;
            Ok(match status.state {
                State::Ready => Poll::Ready(Ok(status)),
                State::Pending => Poll::Pending("pending".into()),
                _ => Poll::Ready(Err(status)),
            })
        })
        .await;
        settle(result, id, &what)
    }
}

fn settle(
    result: Result<Result<ResourceStatus, ResourceStatus>, WaitError>,
    id: &str,
    what: &str,
) -> Result<ResourceStatus, StepError> {
    match result {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(status)) => {
            let reason = status.reason.map(|r| format!(": {r}")).unwrap_or_default();
            Err(StepError {
                resource: Some(id.to_string()),
                message: format!("{what} ended in state `{}`{reason}", status.state),
            })
        }
        Err(error) => Err(StepError { resource: Some(id.to_string()), message: error.to_string() }),
    }
}

/// The resources a node's dependencies resolved to, by kind (a node has at most one of each).
type Inputs = BTreeMap<NodeKind, String>;

fn input(inputs: &Inputs, kind: NodeKind, node: &Node) -> Result<String, StepError> {
    inputs.get(&kind).cloned().ok_or_else(|| StepError {
        resource: None,
        message: format!("{} has no resolved {} dependency", node.id, kind.as_str()),
    })
}

/// A failed step: the message, and the resource it left behind (if one was made).
#[derive(Debug)]
struct StepError {
    resource: Option<String>,
    message: String,
}

impl StepError {
    fn on(mut self, id: &str) -> StepError {
        self.resource.get_or_insert_with(|| id.to_string());
        self
    }
}

impl From<CloudError> for StepError {
    fn from(error: CloudError) -> Self {
        StepError { resource: error.resource.clone(), message: error.to_string() }
    }
}
