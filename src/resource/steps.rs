//! What every kind's executor steps share: the run they are part of ([`Steps`], implemented by
//! the executor), their error, their inputs, and the waits common to several kinds.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Node, NodeKind};
use crate::cloud::BuildHosts;
use crate::cloud::retry::{Poll, RetryPolicy, WaitError, wait_until};
use crate::cloud::{
    BuildResource, Cause, Cloud, CloudError, ErrorClass, Placement, ResourceKind, ResourceStatus, State,
};

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
    /// How long Parameter Store may take to show a value it accepted (it checks AMI IDs after
    /// PutParameter answered).
    pub parameter: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            snapshot: Duration::from_secs(60 * 60),
            image: Duration::from_secs(40 * 60),
            copy: Duration::from_secs(90 * 60),
            transient: Duration::from_secs(15 * 60),
            console_grace: Duration::from_secs(5 * 60),
            parameter: Duration::from_secs(2 * 60),
        }
    }
}

/// The run a step is part of: the cloud, how patient to be, and what it knows of the graph.
pub trait Steps: Sync {
    type Cloud: Cloud;
    fn cloud(&self) -> &Self::Cloud;
    fn policy(&self) -> &RetryPolicy;
    fn deadlines(&self) -> &Deadlines;
    /// Where long work (uploads) reports how far it has got.
    fn progress(&self) -> &dyn crate::cloud::Progress;
    /// Where the reports of `node`'s boot test go in this run.
    fn reports_dir(&self, node: &Node) -> std::path::PathBuf;
    /// Records that `node` stored reports in `dir`, for the run's report and events.
    fn collected_reports(&self, node: &Node, dir: &std::path::Path);
    /// The client token of one create of `node` with `request` (built with an empty token): the
    /// same request of the same attempt gets the same token, anything else a new one.
    fn client_token(&self, node: &Node, request: &dyn std::fmt::Debug) -> String;
    /// The desired node `id`.
    fn node(&self, id: &str) -> Option<&Node>;
    /// The catalogue files of `stack` (path → bytes), rendered from AWS as it is now.
    fn catalogue_files(
        &self,
        stack: &str,
    ) -> impl std::future::Future<Output = Result<BTreeMap<String, Vec<u8>>, StepError>> + Send;
}

/// What the plan resolved for a node and apply must use as shown (see `plan::Change::resolved`).
pub type Resolved = BTreeMap<String, String>;

/// The resources a node's dependencies resolved to: by kind (most nodes depend on at most one
/// of each), and by node.
#[derive(Debug, Default)]
pub struct Inputs {
    by_kind: BTreeMap<NodeKind, String>,
    by_node: BTreeMap<String, String>,
}

impl Inputs {
    /// Records that dependency `node`, of `kind`, resolved to `resource`.
    pub fn add(&mut self, node: &str, kind: NodeKind, resource: String) {
        self.by_kind.insert(kind, resource.clone());
        self.by_node.insert(node.to_string(), resource);
    }

    /// The resource of the dependency of `kind`.
    pub fn get(&self, kind: &NodeKind) -> Option<&String> {
        self.by_kind.get(kind)
    }

    /// The resource of dependency `node`.
    pub fn of_node(&self, node: &str) -> Option<&String> {
        self.by_node.get(node)
    }
}

pub fn input(inputs: &Inputs, kind: NodeKind, node: &Node) -> Result<String, StepError> {
    inputs.get(&kind).cloned().ok_or_else(|| StepError {
        resource: None,
        message: format!("{} has no resolved {} dependency", node.id, kind.as_str()),
    })
}

/// A failed step: the message, and the resource it left behind (if one was made).
#[derive(Debug)]
pub struct StepError {
    pub resource: Option<String>,
    pub message: String,
}

impl StepError {
    pub fn on(mut self, id: &str) -> StepError {
        self.resource.get_or_insert_with(|| id.to_string());
        self
    }
}

impl From<CloudError> for StepError {
    fn from(error: CloudError) -> Self {
        let mut message = error.to_string();
        if error.cause == Some(Cause::NoCapacity) {
            // AWS's message names the type and the zone; what to change is for amiplan to say.
            message.push_str(
                " (EC2 had none free until the call's deadline: run again later, or choose another `build.helper.instance_type` or `test.instance_type`)",
            );
        }
        StepError { resource: error.resource.clone(), message }
    }
}

/// The outcome of a wait for `id` that ends ready, failed (with AWS's reason) or timed out.
pub(super) fn settle(
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

pub(super) async fn placement<S: Steps>(steps: &S, region: &str, subnet: &str) -> Result<Placement, StepError> {
    Ok(steps.cloud().subnet_placement(region, subnet).await?)
}

/// The subnet a build resource goes in: the manifest's, or the build's own.
pub(super) fn subnet_of(inputs: &Inputs, existing: &Option<String>, node: &Node) -> Result<String, StepError> {
    match existing {
        Some(subnet) => Ok(subnet.clone()),
        None => input(inputs, NodeKind::Subnet, node),
    }
}

/// Deletes one transient resource, waiting out what still holds it (a volume is attached until
/// its instance has terminated; a security group is in use until then too); an instance is
/// waited for until it has terminated.
pub async fn remove_build_resource<S: Steps>(
    steps: &S,
    region: &str,
    kind: NodeKind,
    id: &str,
) -> Result<(), CloudError> {
    let what = format!("{} {id} in {region}", kind.as_str());
    let Some(resource) = kind.resource_kind() else {
        return Err(CloudError::new("Delete", region, ErrorClass::Fatal, format!("{what} is read-only")));
    };
    let deadline = steps.deadlines().transient;
    let cloud = steps.cloud();
    let result = wait_until(steps.policy(), steps.progress(), deadline, &what, || async {
        match cloud.delete_build_resource(region, resource, id).await {
            Ok(()) => Ok(Poll::Ready(())),
            // Still held by something being deleted (a volume by its instance): wait it out.
            Err(e) if matches!(e.class, ErrorClass::InUse | ErrorClass::NotReady) => Ok(Poll::Pending(e.to_string())),
            Err(e) => Err(e),
        }
    })
    .await;
    let as_cloud = |error: WaitError| match error {
        WaitError::Failed(error) => error,
        timeout => CloudError::new("Delete", region, ErrorClass::Transient, timeout.to_string()).on(id),
    };
    result.map_err(as_cloud)?;
    if resource == ResourceKind::Instance {
        let terminated = wait_until(steps.policy(), steps.progress(), deadline, &what, || async {
            match cloud.instance_status(region, id).await {
                Ok(status) if status.state == State::Terminated => Ok(Poll::Ready(())),
                Ok(status) => Ok(Poll::Pending(status.state.to_string())),
                Err(e) if e.is_not_found() => Ok(Poll::Ready(())),
                Err(e) => Err(e),
            }
        })
        .await;
        terminated.map_err(as_cloud)?;
    }
    Ok(())
}

/// Creates one transient resource of a build, tagged for `node`, with its client token.
pub(super) async fn make_build_resource<S: Steps>(
    steps: &S,
    node: &Node,
    resource: &BuildResource,
) -> Result<String, StepError> {
    let token = steps.client_token(node, resource);
    Ok(steps.cloud().create_build_resource(&node.region, resource, &node.desired_tags(), &token).await?)
}
