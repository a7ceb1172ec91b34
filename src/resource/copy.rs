//! An AMI copied from the build region's AMI into another region.

use std::collections::BTreeMap;

use super::image::{Ami, publish, wait};
use super::steps::{Inputs, StepError, Steps, input};
use super::{Node, NodeKind, Pairs};
use crate::cloud::{ImageCopy, ResourceStatus};
use crate::cloud::{Images, Tagging};
use crate::tags;

pub const TRANSIENT: bool = false;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub ami: Ami,
    pub source_region: String,
}

impl Copy {
    /// The same attributes as the AMI it copies: a copy is that AMI in another region.
    pub(super) fn immutable(&self) -> Pairs {
        self.ami.immutable()
    }

    /// Copies the build region's AMI (idempotently, by client token), waits for the copy, tags
    /// its snapshots, and publishes it unless a boot test must pass first.
    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let region = node.region.as_str();
        let tags = node.desired_tags();
        let mut copy = ImageCopy {
            name: node.name.clone().unwrap_or_default(),
            description: node.description.clone(),
            source_region: self.source_region.clone(),
            source_image_id: input(inputs, NodeKind::Image, node)?,
            encrypted: self.ami.attrs.encrypted,
            kms_key: self.ami.kms_key.clone(),
            tags: tags.clone(),
            client_token: String::new(),
        };
        copy.client_token = steps.client_token(node, &copy);
        let id = steps.cloud().copy_image(region, &copy).await?;
        let status = wait(steps, region, &id, steps.deadlines().copy).await?;
        tag_snapshots(steps, region, &status, &tags).await;
        if !node.gated {
            publish(steps, node, &id, &status).await?;
        }
        Ok(id)
    }
}

/// CopyImage's TagSpecifications should tag the new snapshots; where the API ignores them (the
/// emulator does), tag them here. A snapshot that cannot be tagged is not worth failing the copy
/// for: it is found and deleted through its AMI.
async fn tag_snapshots<S: Steps>(steps: &S, region: &str, status: &ResourceStatus, tags: &BTreeMap<String, String>) {
    // The spec tags describe the AMI; on its snapshots they would only confuse the planner.
    let snapshot_tags: BTreeMap<String, String> = tags
        .iter()
        .filter(|(k, _)| k.as_str() != tags::SPEC && k.as_str() != tags::ATTRS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for snapshot in &status.snapshot_ids {
        if let Err(error) = steps.cloud().set_tags(region, std::slice::from_ref(snapshot), &snapshot_tags).await {
            tracing::warn!(%error, snapshot, "could not tag the snapshot of a copied AMI");
        }
    }
}
