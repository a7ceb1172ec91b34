//! The helper instance: boots a stock AMI, runs the build job against the target volume, and
//! powers off.

use std::time::Duration;

use tokio::time::Instant;

use super::steps::{Inputs, Resolved, StepError, Steps, input, subnet_of};
use super::{Node, NodeKind, Pairs, Reason};
use crate::cloud::retry::{Poll, WaitError, wait_until};
use crate::cloud::{BuildHosts, Images};
use crate::cloud::{HelperLaunch, LiveResource, RootDevice, State};
use crate::job::{self, Job, JobResult};
use crate::manifest::raw::HelperAmi;

/// Key in the plan's resolved values: the base AMI the helper boots (resolved from a filter).
pub const RESOLVED_AMI: &str = "ami";
/// Key in the plan's resolved values: `true` when the helper must ask for a public address to
/// reach its image's URL through an internet gateway.
pub const RESOLVED_PUBLIC_ADDRESS: &str = "public_address";
/// Console lines shown when a job fails.
const LOG_LINES: usize = 40;

pub const TRANSIENT: bool = true;

#[derive(Debug, Clone)]
pub struct Helper {
    pub ami: HelperAmi,
    pub instance_type: String,
    pub spot: bool,
    pub job: Job,
    pub existing_subnet: Option<String>,
    /// Scratch space the job needs on the helper's root volume, in GiB, beyond what the helper
    /// AMI's own root volume brings.
    pub scratch_gib: u32,
}

impl Helper {
    /// The AMI selector as the spec names it: an ID, or `owner=… name=…`.
    pub fn ami_selector(&self) -> String {
        match &self.ami {
            HelperAmi::Id(id) => id.clone(),
            HelperAmi::Filter(filter) => format!("owner={} name={}", filter.owner, filter.name),
        }
    }

    pub(super) fn immutable(&self) -> Pairs {
        vec![
            ("ami", self.ami_selector()),
            ("instance_type", self.instance_type.clone()),
            ("spot", self.spot.to_string()),
            ("job", self.job.id.clone()),
        ]
    }
}

impl Helper {
    /// Launches the helper with its job as user-data, on a root volume large enough for the
    /// job's scratch space, and waits until it runs.
    pub(super) async fn create<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        inputs: &Inputs,
        resolved: &Resolved,
    ) -> Result<String, StepError> {
        let region = node.region.as_str();
        let Some(image_id) = resolved.get(RESOLVED_AMI) else {
            let message = match &self.ami {
                HelperAmi::Filter(filter) => format!(
                    "no AMI for the helper: no AMI owned by {} matches `{}` in {region}",
                    filter.owner, filter.name
                ),
                HelperAmi::Id(id) => format!("no AMI for the helper: the plan did not resolve {id}"),
            };
            return Err(StepError { resource: None, message });
        };
        let volume = input(inputs, NodeKind::Volume, node)?;
        // The job downloads (and unpacks) on the helper's root volume, which is only as large as
        // the AMI's root snapshot (8 GiB for the usual Linux AMIs): grow it by what the job
        // needs, so that any image fits on a stock helper AMI.
        let root = steps.cloud().root_device(region, image_id).await?;
        let root_volume = RootDevice { size_gib: root.size_gib + self.scratch_gib, ..root };
        let mut launch = HelperLaunch {
            image_id: image_id.clone(),
            instance_type: self.instance_type.clone(),
            subnet: subnet_of(inputs, &self.existing_subnet, node)?,
            security_group: input(inputs, NodeKind::SecurityGroup, node)?,
            user_data: self.job.script(&volume),
            spot: self.spot,
            // The temporary subnet maps no public addresses: without one the helper could not
            // reach the image's URL through the internet gateway. The plan decided this from
            // the subnet's route out.
            public_address: resolved.get(RESOLVED_PUBLIC_ADDRESS).is_some_and(|p| p == "true"),
            root_volume: Some(root_volume),
            tags: node.desired_tags(),
            client_token: String::new(),
        };
        launch.client_token = steps.client_token(node, &launch);
        let id = steps.cloud().launch_helper(region, &launch).await?;
        wait_started(steps, region, &id).await?;
        Ok(id)
    }
}

/// A helper that stopped has run its job already: a new one builds again.
pub(super) fn stale(live: &LiveResource) -> Option<Reason> {
    let ended = !matches!(live.state, State::Running | State::Pending);
    ended.then(|| Reason::JobEnded { id: live.id.clone(), state: live.state.to_string() })
}

/// Waits until the instance runs (an adopted one may still be `pending`).
pub async fn wait_started<S: Steps>(steps: &S, region: &str, id: &str) -> Result<(), StepError> {
    let what = format!("helper {id} in {region}");
    let result = wait_until(steps.policy(), steps.progress(), steps.deadlines().transient, &what, || async {
        let status = steps.cloud().instance_status(region, id).await?;
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
            Err(StepError { resource: Some(id.to_string()), message: format!("{what} is {}{reason}", status.state) })
        }
        Err(error) => Err(StepError { resource: Some(id.to_string()), message: error.to_string() }),
    }
}

/// The instance (a helper, or a test instance: `who`) reports on its console and powers off; a
/// helper's volume is consistent only once both happened.
pub async fn wait_for_job<S: Steps>(
    steps: &S,
    region: &str,
    who: &str,
    instance: &str,
    job_id: &str,
    timeout: Duration,
) -> Result<(), StepError> {
    let cloud = steps.cloud();
    let what = format!("the job of {who} {instance}");
    // When the instance first read as powered off without a result line: EC2 may post the
    // console buffered at the stop only a while later, so that is not yet a failure.
    let ended_at: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let grace = steps.deadlines().console_grace;
    let result = wait_until(steps.policy(), steps.progress(), timeout + grace, &what, || async {
        let status = cloud.instance_status(region, instance).await?;
        let console = cloud.console_output(region, instance).await?;
        let ended = status.state.has_ended();
        let silent_for = if ended {
            ended_at.lock().expect("ended_at lock").get_or_insert_with(Instant::now).elapsed()
        } else {
            Duration::ZERO
        };
        Ok(match job::read_result(&console, job_id) {
            Some(JobResult::Failed(reason)) => Poll::Ready(Err(format!(
                "the {who}'s job failed: {reason}\n{}",
                log(who, job::up_to_result(&console, job_id))
            ))),
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
            let console = cloud.console_output(region, instance).await.unwrap_or_default();
            format!("the {who}'s job did not finish within {}\n{}", humanize(timeout), log(who, &console))
        }
        Err(WaitError::Failed(error)) => error.to_string(),
    };
    Err(StepError { resource: Some(instance.to_string()), message })
}

fn log(who: &str, console: &str) -> String {
    format!("--- {who} console, last lines ---\n{}", job::log_tail(console, LOG_LINES))
}

fn humanize(duration: Duration) -> String {
    let minutes = duration.as_secs() / 60;
    if minutes > 0 { format!("{minutes}m") } else { format!("{}s", duration.as_secs()) }
}
