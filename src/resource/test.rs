//! The boot test of an AMI: an instance from it must run the test job and report a pass before
//! the AMI is copied, shared or deprecated. It owns no resource: its pass is a tag on the AMI.

use std::collections::BTreeMap;
use std::time::Duration;

use super::helper::{wait_for_job, wait_started};
use super::image::publish;
use super::network::RESOLVED_ZONE;
use super::steps::{Inputs, Resolved, StepError, Steps, placement, remove_build_resource};
use super::{Node, NodeKind, Pairs};
use crate::cloud::{BuildHosts, Images, Tagging};
use crate::cloud::{BuildResource, HelperLaunch};
use crate::job::Job;
use crate::tags;

pub const TRANSIENT: bool = false;

#[derive(Debug, Clone)]
pub struct BootTest {
    /// The node of the AMI it tests.
    pub image_node: String,
    pub job: Job,
    pub instance_type: String,
    pub timeout: Duration,
    pub subnet: Option<String>,
}

impl BootTest {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("job", self.job.id.clone()), ("instance_type", self.instance_type.clone())]
    }
}

impl BootTest {
    /// An instance launched from the AMI (IMDSv2, no key, a security group without inbound
    /// rules) runs the test job; its result is read from the console like a helper's. The
    /// instance and group go either way; only a pass tags the AMI as tested and publishes it.
    pub(super) async fn run<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        inputs: &Inputs,
        resolved: &Resolved,
    ) -> Result<String, StepError> {
        let region = node.region.as_str();
        let image_id = inputs
            .get(&NodeKind::Image)
            .or(inputs.get(&NodeKind::ImageCopy))
            .cloned()
            .ok_or_else(|| StepError { resource: None, message: format!("{} has no AMI to test", node.id) })?;
        let subnet = match &self.subnet {
            Some(subnet) => subnet.to_string(),
            None => {
                // The plan chose the zones that offer the test's instance type.
                let zones: Vec<String> =
                    resolved.get(RESOLVED_ZONE).map(|z| z.split(',').map(str::to_string).collect()).unwrap_or_default();
                steps.cloud().default_subnet(region, &zones).await?.ok_or_else(|| StepError {
                    resource: Some(image_id.clone()),
                    message: format!(
                        "{region} has no default subnet to test in (in a zone offering {}): set test.subnet",
                        self.instance_type
                    ),
                })?
            }
        };
        let vpc = placement(steps, region, &subnet).await?.vpc;
        let tags = node.desired_tags();
        let group = BuildResource::SecurityGroup {
            vpc,
            name: format!("amiplan-{}-test-{image_id}", node.stack),
            description: format!("amiplan boot test of {image_id}: no inbound rules"),
        };
        let token = steps.client_token(node, &group);
        let group = steps.cloud().create_build_resource(region, &group, &tags, &token).await?;
        let mut launch = HelperLaunch {
            image_id: image_id.clone(),
            instance_type: self.instance_type.to_string(),
            subnet,
            security_group: group.clone(),
            user_data: self.job.script(""),
            spot: false,
            // The test needs no way out: it only boots and reports on its console.
            public_address: false,
            root_volume: None,
            tags,
            client_token: String::new(),
        };
        launch.client_token = steps.client_token(node, &launch);
        let outcome = match steps.cloud().launch_helper(region, &launch).await {
            Ok(instance) => {
                let ran = async {
                    wait_started(steps, region, &instance).await?;
                    wait_for_job(steps, region, "test instance", &instance, &self.job.id, self.timeout).await
                };
                let mut result = ran.await;
                if let Err(problem) = collect_reports(steps, node, region, &instance, &self.job.id).await {
                    // Reports that cannot be stored fail the test: the user asked for them.
                    result = result.and(Err(StepError { resource: Some(instance.clone()), message: problem }));
                }
                let cleaned = remove_build_resource(steps, region, NodeKind::Helper, &instance).await;
                result.and(cleaned.map_err(StepError::from))
            }
            Err(error) => Err(StepError::from(error)),
        };
        // The group goes whatever happened; a failure to remove it is worth reporting only when
        // the test itself passed (the next apply removes a left-over group anyway).
        let removed = remove_build_resource(steps, region, NodeKind::SecurityGroup, &group).await;
        if let Err(mut failure) = outcome {
            failure.message = format!("boot test of {image_id} failed: {}", failure.message);
            failure.resource = Some(image_id);
            return Err(failure);
        }
        removed.map_err(|e| StepError::from(e).on(&image_id))?;

        let passed = BTreeMap::from([(tags::TESTED.to_string(), self.job.id.clone())]);
        steps
            .cloud()
            .set_tags(region, std::slice::from_ref(&image_id), &passed)
            .await
            .map_err(|e| StepError::from(e).on(&image_id))?;
        let image = steps.node(&self.image_node).expect("a test gates an image of the same graph");
        let status =
            steps.cloud().image_status(region, &image_id).await.map_err(|e| StepError::from(e).on(&image_id))?;
        publish(steps, image, &image_id, &status).await?;
        Ok(image_id)
    }
}

/// Stores the reports the test job sent on the console, if it sent any, as files under the run's
/// reports directory (the archive itself too). Read once the job has ended, pass or fail.
async fn collect_reports<S: Steps>(
    steps: &S,
    node: &Node,
    region: &str,
    instance: &str,
    job_id: &str,
) -> Result<(), String> {
    let Ok(console) = steps.cloud().console_output(region, instance).await else {
        return Ok(()); // the result was read; the reports are a bonus the console may have lost
    };
    let archive = match crate::job::read_reports(&console, job_id) {
        None => return Ok(()),
        Some(Ok(archive)) => archive,
        Some(Err(problem)) => return Err(format!("the test's reports could not be collected: {problem}")),
    };
    let dir = steps.reports_dir(node);
    let stored = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("reports.tar.gz"), &archive))
        .and_then(|()| tar::Archive::new(flate2::read::GzDecoder::new(archive.as_slice())).unpack(dir.join("files")));
    stored.map_err(|e| format!("the test's reports could not be stored in {}: {e}", dir.display()))?;
    steps.collected_reports(node, &dir);
    Ok(())
}
