//! The executor's part of helper builds: creating the temporary network, target volume and helper,
//! waiting for the helper's job and snapshotting its volume, then tearing the transient resources
//! down in reverse dependency order as soon as the build is over.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::{Executor, Handle, Inputs, Outcome, StepError, input};
use crate::cloud::ResourceKind;
use crate::cloud::retry::{Poll, WaitError, wait_until};
use crate::cloud::{BuildResource, Cloud, CloudError, ErrorClass, HelperLaunch, RootDevice, State};
use crate::graph::{Node, NodeKind};
use crate::job::{self, JobResult};
use crate::plan::{Action, Change, RESOLVED_AMI, RESOLVED_PUBLIC_ADDRESS, RESOLVED_ZONE};
use crate::resource::snapshot::{MadeBy, Snapshot};
use crate::resource::{Spec, helper};

/// Where the target volume is attached on the helper (NVMe instances show it by volume ID).
const HELPER_DEVICE: &str = "/dev/sdf";
/// Console lines shown when a helper fails.
const LOG_LINES: usize = 40;

impl<'a, C: Cloud> Executor<'a, C> {
    pub(super) async fn create_for_build(
        &self,
        node: &Node,
        change: &Change,
        inputs: &Inputs,
    ) -> Result<String, StepError> {
        let region = node.region.as_str();
        let tags = node.desired_tags();
        let resource = match &node.spec {
            Spec::Vpc(vpc) => BuildResource::Vpc { cidr: vpc.cidr.clone() },
            Spec::Subnet(subnet) => BuildResource::Subnet {
                vpc: input(inputs, NodeKind::Vpc, node)?,
                cidr: subnet.cidr.clone(),
                availability_zone: change.resolved.get(RESOLVED_ZONE).cloned(),
            },
            Spec::InternetGateway(_) => BuildResource::InternetGateway { vpc: input(inputs, NodeKind::Vpc, node)? },
            Spec::RouteTable(_) => {
                let subnet = input(inputs, NodeKind::Subnet, node)?;
                let vpc = self.placement(region, &subnet).await?.vpc;
                BuildResource::RouteTable { vpc, subnet, gateway: input(inputs, NodeKind::InternetGateway, node)? }
            }
            Spec::SecurityGroup(group) => {
                let subnet = subnet_of(inputs, &group.existing_subnet, node)?;
                BuildResource::SecurityGroup {
                    vpc: self.placement(region, &subnet).await?.vpc,
                    name: format!("amiplan-{}-helper", node.stack),
                    description: format!("amiplan helper of stack {}: no inbound rules", node.stack),
                }
            }
            Spec::Volume(volume) => {
                let subnet = subnet_of(inputs, &volume.existing_subnet, node)?;
                BuildResource::Volume {
                    availability_zone: self.placement(region, &subnet).await?.availability_zone,
                    size_gib: volume.size_gib,
                    volume_type: volume.volume_type,
                    encrypted: volume.encrypted,
                    kms_key: volume.kms_key.clone(),
                }
            }
            Spec::Helper(helper::Helper { instance_type, spot, job, existing_subnet, scratch_gib, .. }) => {
                let Some(image_id) = change.resolved.get(RESOLVED_AMI) else {
                    let why = change.reasons.last().cloned().unwrap_or_default();
                    return Err(StepError { resource: None, message: format!("no AMI for the helper: {why}") });
                };
                let volume = input(inputs, NodeKind::Volume, node)?;
                // The job downloads (and unpacks) on the helper's root volume, which is only as
                // large as the AMI's root snapshot (8 GiB for the usual Linux AMIs): grow it by
                // what the job needs, so that any image fits on a stock helper AMI.
                let root = self.cloud.root_device(region, image_id).await?;
                let root_volume = RootDevice { size_gib: root.size_gib + scratch_gib, ..root };
                let mut launch = HelperLaunch {
                    image_id: image_id.clone(),
                    instance_type: instance_type.clone(),
                    subnet: subnet_of(inputs, existing_subnet, node)?,
                    security_group: input(inputs, NodeKind::SecurityGroup, node)?,
                    user_data: job.script(&volume),
                    spot: *spot,
                    // The temporary subnet maps no public addresses: without one the helper
                    // could not reach the image's URL through the internet gateway. The plan
                    // decided this from the subnet's route out.
                    public_address: change.resolved.get(RESOLVED_PUBLIC_ADDRESS).is_some_and(|p| p == "true"),
                    root_volume: Some(root_volume),
                    tags,
                    client_token: String::new(),
                };
                launch.client_token = self.client_token(node, &launch);
                let id = self.cloud.launch_helper(region, &launch).await?;
                self.wait_started(region, &id).await?;
                return Ok(id);
            }
            Spec::Snapshot(Snapshot { made_by: MadeBy::Capture { job_id, timeout }, .. }) => {
                return self.capture(node, inputs, job_id, *timeout).await;
            }
            Spec::Snapshot(Snapshot { made_by: MadeBy::EncryptCopy, kms_key, .. }) => {
                let source = input(inputs, NodeKind::Snapshot, node)?;
                let description = format!("amiplan {}", node.id);
                let id = self.cloud.encrypt_snapshot(region, &source, kms_key.as_deref(), &description, &tags).await?;
                self.wait_snapshot(region, &id).await?;
                return Ok(id);
            }
            Spec::Test(test) => return self.boot_test(node, change, inputs, test).await,
            Spec::Snapshot(Snapshot { made_by: MadeBy::Upload { .. }, .. }) | Spec::Image(_) | Spec::Copy(_) => {
                unreachable!("uploads and AMIs are not build work")
            }
        };
        let token = self.client_token(node, &resource);
        Ok(self.cloud.create_build_resource(region, &resource, &tags, &token).await?)
    }

    pub(super) async fn placement(&self, region: &str, subnet: &str) -> Result<crate::cloud::Placement, StepError> {
        Ok(self.cloud.subnet_placement(region, subnet).await?)
    }

    /// Waits until the helper runs (an adopted one may still be `pending`).
    pub(super) async fn wait_started(&self, region: &str, id: &str) -> Result<(), StepError> {
        let what = format!("helper {id} in {region}");
        let result = wait_until(&self.options.policy, self.options.deadlines.transient, &what, || async {
            let status = self.cloud.instance_status(region, id).await?;
            Ok(match status.state {
                State::Pending => Poll::Pending(status.state.to_string()),
                State::Running => Poll::Ready(Ok(())),
                _ => Poll::Ready(Err(status)),
            })
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(status)) => {
                let reason = status.reason.map(|r| format!(": {r}")).unwrap_or_default();
                Err(StepError {
                    resource: Some(id.to_string()),
                    message: format!("{what} is {}{reason}", status.state),
                })
            }
            Err(error) => Err(StepError { resource: Some(id.to_string()), message: error.to_string() }),
        }
    }

    /// Attaches the target volume, waits for the job's result, and snapshots the volume.
    async fn capture(
        &self,
        node: &Node,
        inputs: &Inputs,
        job_id: &str,
        timeout: std::time::Duration,
    ) -> Result<String, StepError> {
        let region = node.region.as_str();
        let helper = input(inputs, NodeKind::Helper, node)?;
        let volume = input(inputs, NodeKind::Volume, node)?;
        self.wait_started(region, &helper).await?;
        self.cloud.attach_volume(region, &volume, &helper, HELPER_DEVICE).await?;
        tracing::info!(%helper, %volume, job = job_id, "waiting for the helper's job");
        self.wait_for_job(region, "helper", &helper, job_id, timeout).await?;
        let description = format!("amiplan {}", node.id);
        let id = self.cloud.snapshot_volume(region, &volume, &description, &node.desired_tags()).await?;
        self.wait_snapshot(region, &id).await?;
        Ok(id)
    }

    /// The instance (a helper, or a test instance: `who`) reports on its console and powers off;
    /// a helper's volume is consistent only once both happened.
    pub(super) async fn wait_for_job(
        &self,
        region: &str,
        who: &str,
        instance: &str,
        job_id: &str,
        timeout: std::time::Duration,
    ) -> Result<(), StepError> {
        let what = format!("the job of {who} {instance}");
        // When the instance first read as powered off without a result line: EC2 may post the
        // console buffered at the stop only a while later, so that is not yet a failure.
        let ended_at: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        let grace = self.options.deadlines.console_grace;
        let result = wait_until(&self.options.policy, timeout + grace, &what, || async {
            let status = self.cloud.instance_status(region, instance).await?;
            let console = self.cloud.console_output(region, instance).await?;
            let ended = status.state.has_ended();
            let silent_for = if ended {
                ended_at.lock().expect("ended_at lock").get_or_insert_with(Instant::now).elapsed()
            } else {
                std::time::Duration::ZERO
            };
            Ok(match job::read_result(&console, job_id) {
                Some(JobResult::Failed(reason)) => {
                    Poll::Ready(Err(format!("the {who}'s job failed: {reason}\n{}", log(who, &console))))
                }
                Some(JobResult::Succeeded) if ended => Poll::Ready(Ok(())),
                Some(JobResult::Succeeded) => Poll::Pending(format!("job done, waiting for the {who} to power off")),
                None if ended && silent_for >= grace => Poll::Ready(Err(format!(
                    "{who} {instance} is {} and its console still shows no result {} after it powered off{}: the job \
                     stopped before reporting (or EC2 never posted its console)\n{}",
                    status.state,
                    humanize(grace),
                    status.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
                    log(who, &console)
                ))),
                None if ended => {
                    Poll::Pending(format!("{who} {} without a result yet; EC2 posts the console late", status.state))
                }
                None => Poll::Pending(format!("{who} {}", status.state)),
            })
        })
        .await;
        let message = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(message)) => message,
            Err(WaitError::Timeout { .. }) => {
                let console = self.cloud.console_output(region, instance).await.unwrap_or_default();
                format!("the {who}'s job did not finish within {}\n{}", humanize(timeout), log(who, &console))
            }
            Err(WaitError::Failed(error)) => error.to_string(),
        };
        Err(StepError { resource: Some(instance.to_string()), message })
    }

    /// Deletes one transient resource, waiting out what still holds it (a volume is attached
    /// until its instance has terminated; a security group is in use until then too).
    pub(super) async fn delete_transient(&self, region: &str, kind: NodeKind, id: &str) -> Result<(), CloudError> {
        let resource = kind.resource_kind();
        let what = format!("{} {id} in {region}", kind.as_str());
        let deadline = self.options.deadlines.transient;
        let result = wait_until(&self.options.policy, deadline, &what, || async {
            match self.cloud.delete_build_resource(region, resource, id).await {
                Ok(()) => Ok(Poll::Ready(())),
                // Still held by something being deleted (a volume by its instance): wait it out.
                Err(e) if matches!(e.class, ErrorClass::InUse | ErrorClass::NotReady) => {
                    Ok(Poll::Pending(e.to_string()))
                }
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
            let terminated = wait_until(&self.options.policy, deadline, &what, || async {
                match self.cloud.instance_status(region, id).await {
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

    /// One future per build in this plan: once its snapshot node has finished, either way, the
    /// transient resources go, dependents first.
    pub(super) fn teardowns<'h>(&'h self, handles: &HashMap<&str, Handle<'h>>) -> Vec<BoxFuture<'h, ()>> {
        let mut teardowns = Vec::new();
        for capture in self.graph.nodes().filter(|n| n.spec.is_capture()) {
            let Some(capture_handle) = handles.get(capture.id.as_str()).cloned() else { continue };
            let transient: Vec<(&Change, Handle<'h>)> = self
                .plan
                .changes
                .iter()
                .filter(|c| c.transient && c.stack == capture.stack && c.action != Action::Delete)
                .filter_map(|c| Some((c, handles.get(c.node.as_str())?.clone())))
                .collect();
            if transient.is_empty() {
                continue;
            }
            teardowns.push(
                async move {
                    let built = capture_handle.await.is_ok();
                    let mut ranked = Vec::new();
                    for (change, handle) in transient {
                        let _ = handle.await;
                        ranked.push(change);
                    }
                    ranked.sort_by_key(|c| c.kind.delete_rank());
                    self.tear_down(&ranked, built).await;
                }
                .boxed(),
            );
        }
        teardowns
    }

    async fn tear_down(&self, changes: &[&Change], built: bool) {
        let resources = self.resources.lock().expect("resource lock").clone();
        let keep = if self.stopping() {
            Some("interrupted: the next apply or destroy removes it".to_string())
        } else if !built && self.options.keep_on_failure {
            Some("kept for debugging (--keep-on-failure); `amiplan destroy` or the next apply removes it".to_string())
        } else {
            None
        };
        let mut failed = false;
        for change in changes {
            let Some(id) = resources.get(&change.node) else { continue };
            let mut teardown = (*change).clone();
            teardown.action = Action::Delete;
            teardown.live_id = Some(id.clone());
            let started = Instant::now();
            if let Some(why) = &keep {
                self.record(&teardown, Some(id.clone()), Outcome::Skipped(why.clone()), started);
                continue;
            }
            if failed {
                self.record(
                    &teardown,
                    Some(id.clone()),
                    Outcome::Skipped("an earlier teardown failed".into()),
                    started,
                );
                continue;
            }
            let _slot = self.slot(&change.region).await;
            self.emit(&teardown, super::Phase::Started, Some(id), None, None);
            match self.delete_transient(&change.region, change.kind, id).await {
                Ok(()) => self.record(&teardown, Some(id.clone()), Outcome::Deleted, started),
                Err(error) => {
                    failed = true;
                    self.record(&teardown, Some(id.clone()), Outcome::Failed(error.to_string()), started);
                }
            }
        }
    }
}

fn subnet_of(inputs: &Inputs, existing: &Option<String>, node: &Node) -> Result<String, StepError> {
    match existing {
        Some(subnet) => Ok(subnet.clone()),
        None => input(inputs, NodeKind::Subnet, node),
    }
}

fn log(who: &str, console: &str) -> String {
    format!("--- {who} console, last lines ---\n{}", job::log_tail(console, LOG_LINES))
}

fn humanize(duration: std::time::Duration) -> String {
    let minutes = duration.as_secs() / 60;
    if minutes > 0 { format!("{minutes}m") } else { format!("{}s", duration.as_secs()) }
}
