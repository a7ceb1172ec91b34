//! The boot test of an AMI: an instance from it must run the test job and report a pass before
//! the AMI is copied, shared or deprecated. It owns no resource: its pass is a tag on the AMI.

use std::collections::BTreeMap;
use std::time::Duration;

use super::helper::{wait_for_job, wait_started};
use super::image::publish;
use super::network::RESOLVED_ZONE;
use super::steps::{Inputs, Resolved, StepError, Steps, placement, remove_build_resource};
use super::{Node, NodeKind, Pairs};
use crate::cloud::{BuildHosts, Images, Objects, Tagging};
use crate::cloud::{BuildResource, HelperLaunch};
use crate::job::Job;
use crate::model::S3Target;
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
    /// The bucket the reports are uploaded to, when not sent on the console.
    pub reports_bucket: Option<S3Target>,
}

/// How long a presigned reports URL stays valid beyond the test's timeout: the instance's boot
/// and the upload itself. SigV4 presigned URLs live at most seven days.
const REPORTS_URL_MARGIN: Duration = Duration::from_secs(30 * 60);
/// Reports are read into memory before they are checked and unpacked.
const MAX_BUCKET_REPORTS: u64 = 1 << 30;
const MAX_PRESIGNED: Duration = Duration::from_secs(7 * 24 * 3600);

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
        let reports_url = match &self.reports_bucket {
            Some(bucket) => {
                let key = reports_key(bucket, &node.stack, &image_id);
                let valid = (self.timeout + REPORTS_URL_MARGIN).min(MAX_PRESIGNED);
                let url = steps.cloud().presign_put(&bucket.region, &bucket.bucket, &key, valid).await;
                // The group is removed whatever happens next.
                match url {
                    Ok(url) => Some(url),
                    Err(error) => {
                        let _ = remove_build_resource(steps, region, NodeKind::SecurityGroup, &group).await;
                        return Err(StepError::from(error).on(&image_id));
                    }
                }
            }
            None => None,
        };
        let mut launch = HelperLaunch {
            image_id: image_id.clone(),
            instance_type: self.instance_type.to_string(),
            subnet,
            security_group: group.clone(),
            user_data: self.job.test_script(reports_url.as_deref()),
            spot: false,
            // Without a reports bucket the test needs no way out: it only boots and reports on
            // its console. With one, it uploads them to S3 over the internet.
            public_address: self.reports_bucket.is_some(),
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
                let collected = match &self.reports_bucket {
                    Some(bucket) => {
                        fetch_reports(steps, node, region, &instance, &self.job.id, bucket, &image_id).await
                    }
                    None => collect_reports(steps, node, region, &instance, &self.job.id).await,
                };
                if let Err(problem) = collected {
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
    store_reports(steps, node, &archive)
}

/// Where the reports of the test of `image_id` are uploaded: one key per AMI, so a rerun of the
/// test overwrites what an interrupted one left.
fn reports_key(bucket: &S3Target, stack: &str, image_id: &str) -> String {
    format!("{}amiplan-reports/{stack}/{image_id}.tar.gz", bucket.prefix)
}

/// Reads the reports the test job uploaded to the bucket, checks them against the size and
/// digest it named on the console, stores them and removes them from the bucket.
async fn fetch_reports<S: Steps>(
    steps: &S,
    node: &Node,
    region: &str,
    instance: &str,
    job_id: &str,
    bucket: &S3Target,
    image_id: &str,
) -> Result<(), String> {
    let Ok(console) = steps.cloud().console_output(region, instance).await else {
        return Ok(()); // as for reports on the console: the result was read, the rest is a bonus
    };
    let (size, digest) = match crate::job::uploaded_reports(&console, job_id) {
        None => return Ok(()),
        Some(Ok(sent)) => sent,
        Some(Err(why)) => return Err(format!("the test's reports were not uploaded: {why}")),
    };
    if size > MAX_BUCKET_REPORTS {
        return Err(format!(
            "the test's reports take {size} bytes compressed, more than amiplan reads ({MAX_BUCKET_REPORTS})"
        ));
    }
    let key = reports_key(bucket, &node.stack, image_id);
    let archive = steps
        .cloud()
        .get_object(&bucket.region, &bucket.bucket, &key)
        .await
        .map_err(|e| format!("the test's reports could not be read from s3://{}/{key}: {e}", bucket.bucket))?
        .ok_or_else(|| format!("the test said it uploaded its reports, but s3://{}/{key} is empty", bucket.bucket))?;
    let found = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&archive));
    if archive.len() as u64 != size || found != digest {
        return Err(format!(
            "the reports in s3://{}/{key} ({} bytes, SHA-256 {found}) are not what the test uploaded ({size} bytes, {digest})",
            bucket.bucket,
            archive.len()
        ));
    }
    store_reports(steps, node, &archive)?;
    steps
        .cloud()
        .delete_object(&bucket.region, &bucket.bucket, &key)
        .await
        .map_err(|e| format!("the test's reports were stored but not removed from the bucket: {e}"))
}

/// Stores a gzipped tar of reports under the run's reports directory: the archive and its files.
fn store_reports<S: Steps>(steps: &S, node: &Node, archive: &[u8]) -> Result<(), String> {
    let dir = steps.reports_dir(node);
    let stored = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("reports.tar.gz"), archive))
        .and_then(|()| tar::Archive::new(flate2::read::GzDecoder::new(archive)).unpack(dir.join("files")));
    stored.map_err(|e| format!("the test's reports could not be stored in {}: {e}", dir.display()))?;
    steps.collected_reports(node, &dir);
    Ok(())
}
