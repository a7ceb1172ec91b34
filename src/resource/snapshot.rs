//! The EBS snapshot behind a stack's AMIs: uploaded from a local image, taken of a helper's
//! target volume, or an encrypted copy of the plain one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::helper::{wait_for_job, wait_started};
use super::steps::{Inputs, StepError, Steps, input, settle};
use super::{Node, NodeKind, Pairs, Reason, or_empty};
use crate::cloud::retry::{Poll, wait_until};
use crate::cloud::{BlockSource, CloudError, ErrorClass, LiveResource, ResourceStatus, SnapshotUpload, State};
use crate::cloud::{BuildHosts, Snapshots, Tagging};
use crate::source::{SourceAddress, SourceInfo};
use crate::tags;

/// Where the target volume is attached on the helper (NVMe instances show it by volume ID).
const HELPER_DEVICE: &str = "/dev/sdf";

pub const TRANSIENT: bool = false;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub source_sha256: SourceAddress,
    /// The whole file's SHA-256 where it is known: what amiplan wrote into `amiplan:source`
    /// before content addresses. A resource tagged with it was made from this image too, and is
    /// re-tagged rather than replaced (see [`super::Node::spec_hash_for`]).
    pub source_alias: Option<String>,
    pub volume_size_gib: u32,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub made_by: MadeBy,
}

/// How the snapshot is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadeBy {
    /// Direct upload of a local image (EBS direct APIs).
    Upload { source: Arc<SourceInfo> },
    /// Wait for the helper's job, then snapshot the target volume.
    Capture { job_id: String, timeout: Duration },
    /// An encrypted copy of the plain snapshot this one depends on (CopySnapshot).
    EncryptCopy,
}

impl Snapshot {
    pub(super) fn immutable(&self) -> Pairs {
        let mut pairs = vec![
            ("source_sha256", self.source_sha256.planned().to_string()),
            ("volume_size_gib", self.volume_size_gib.to_string()),
            ("encrypted", self.encrypted.to_string()),
            ("kms_key", or_empty(self.kms_key.as_deref())),
        ];
        if !matches!(self.made_by, MadeBy::Upload { .. }) {
            pairs.push(("method", "helper".into()));
        }
        pairs
    }

    pub fn is_upload(&self) -> bool {
        matches!(self.made_by, MadeBy::Upload { .. })
    }

    /// A `pending` upload that never reached CompleteSnapshot will never complete.
    pub(super) fn stale(&self, live: &LiveResource) -> Option<Reason> {
        let interrupted = self.is_upload() && live.state == State::Pending && !live.tags.contains_key(tags::UPLOADED);
        interrupted.then(|| Reason::UploadInterrupted { id: live.id.clone() })
    }

    /// Made by a helper build (not an encrypted copy of another snapshot).
    pub fn is_capture(&self) -> bool {
        matches!(self.made_by, MadeBy::Capture { .. })
    }
}

impl Snapshot {
    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        match &self.made_by {
            MadeBy::Upload { source } => self.upload(steps, node, source).await,
            MadeBy::Capture { job_id, timeout } => capture(steps, node, inputs, job_id, *timeout).await,
            MadeBy::EncryptCopy => self.encrypt_copy(steps, node, inputs).await,
        }
    }

    /// Uploads the image (idempotently, by client token), marks the upload complete, and waits.
    async fn upload<S: Steps>(&self, steps: &S, node: &Node, source: &Arc<SourceInfo>) -> Result<String, StepError> {
        let region = node.region.as_str();
        let mut upload = SnapshotUpload {
            source: Arc::clone(source) as Arc<dyn BlockSource>,
            label: format!("{} upload", node.id),
            volume_size_gib: self.volume_size_gib,
            encrypted: self.encrypted,
            kms_key: self.kms_key.clone(),
            tags: node.desired_tags(),
            client_token: String::new(),
            description: format!("amiplan {}", node.id),
        };
        upload.client_token = steps.client_token(node, &upload);
        let id = steps.cloud().upload_snapshot(region, &upload, steps.progress()).await?;
        // An image read only by its upload has its address now; StartSnapshot tagged the
        // snapshot with the placeholder, and a spec hash made with it.
        let mut done: BTreeMap<String, String> =
            node.desired_tags().into_iter().filter(|(key, value)| upload.tags.get(key) != Some(value)).collect();
        done.insert(tags::UPLOADED.to_string(), "true".to_string());
        steps
            .cloud()
            .set_tags(region, std::slice::from_ref(&id), &done)
            .await
            .map_err(|e| StepError::from(e).on(&id))?;
        wait(steps, region, &id).await?;
        Ok(id)
    }

    /// An encrypted copy of the plain snapshot a helper made.
    async fn encrypt_copy<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let region = node.region.as_str();
        let source = input(inputs, NodeKind::Snapshot, node)?;
        let description = format!("amiplan {}", node.id);
        let tags = node.desired_tags();
        let cloud = steps.cloud();
        let id = cloud.encrypt_snapshot(region, &source, self.kms_key.as_deref(), &description, &tags).await?;
        wait(steps, region, &id).await?;
        Ok(id)
    }
}

/// Attaches the target volume, waits for the helper job's result, and snapshots the volume.
async fn capture<S: Steps>(
    steps: &S,
    node: &Node,
    inputs: &Inputs,
    job_id: &str,
    timeout: Duration,
) -> Result<String, StepError> {
    let region = node.region.as_str();
    let helper = input(inputs, NodeKind::Helper, node)?;
    let volume = input(inputs, NodeKind::Volume, node)?;
    wait_started(steps, region, &helper).await?;
    steps.cloud().attach_volume(region, &volume, &helper, HELPER_DEVICE).await?;
    tracing::info!(%helper, %volume, job = job_id, "waiting for the helper's job");
    wait_for_job(steps, region, "helper", &helper, job_id, timeout).await?;
    let description = format!("amiplan {}", node.id);
    let id = steps.cloud().snapshot_volume(region, &volume, &description, &node.desired_tags()).await?;
    wait(steps, region, &id).await?;
    Ok(id)
}

/// Waits until the snapshot is complete (or failed).
pub async fn wait<S: Steps>(steps: &S, region: &str, id: &str) -> Result<ResourceStatus, StepError> {
    let what = format!("snapshot {id} in {region}");
    let result = wait_until(steps.policy(), steps.progress(), steps.deadlines().snapshot, &what, || async {
        let status = steps.cloud().snapshot_status(region, id).await?;
        Ok(match status.state {
            State::Ready => Poll::Ready(Ok(status)),
            State::Failed(_) => Poll::Ready(Err(status)),
            other => Poll::Pending(match &status.progress {
                Some(progress) => format!("{other}, {progress}"),
                None => other.to_string(),
            }),
        })
    })
    .await;
    settle(result, id, &what)
}

/// Changes a snapshot in place (its tags), once it is complete.
pub async fn update<S: Steps>(steps: &S, node: &Node, diffs: &[super::AttrDiff], id: &str) -> Result<(), StepError> {
    wait(steps, &node.region, id).await?;
    super::update_tags(steps, &node.region, id, diffs).await
}

/// Right after DeregisterImage, EBS may still count the snapshot as in use for a moment. The
/// cloud already retries throttling and transient faults; this retries only that.
pub async fn delete_after_images<S: Steps>(steps: &S, region: &str, id: &str) -> Result<(), CloudError> {
    steps
        .policy()
        .run(false, || async {
            steps.cloud().delete_snapshot(region, id).await.map_err(|e| {
                let class = if e.class == ErrorClass::InUse { ErrorClass::Transient } else { ErrorClass::Fatal };
                e.with_class(class)
            })
        })
        .await
}
