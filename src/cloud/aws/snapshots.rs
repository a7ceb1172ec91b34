//! EBS snapshots: direct uploads (see `upload`), copies, snapshots of volumes, deletes.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType};

use super::{AwsCloud, Missing, missing, states, tag_spec};
use crate::cloud::{CloudError, Progress, ResourceKind, ResourceStatus, SnapshotUpload, Snapshots};

impl Snapshots for AwsCloud {
    async fn upload_snapshot(
        &self,
        region: &str,
        request: &SnapshotUpload,
        progress: &dyn Progress,
    ) -> Result<String, CloudError> {
        self.upload(region, request, progress).await
    }

    async fn snapshot_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeSnapshots", region)
            .on(id)
            .send(|| ec2.describe_snapshots().snapshot_ids(id).send())
            .await?;
        let snapshot = out
            .snapshots()
            .first()
            .ok_or_else(|| missing("DescribeSnapshots", region, "InvalidSnapshot.NotFound", id))?;
        Ok(ResourceStatus {
            state: states::snapshot(snapshot.state.as_ref().map(|s| s.as_str()).unwrap_or_default()),
            reason: snapshot.state_message.clone(),
            snapshot_ids: vec![],
            deprecation: None,
            progress: snapshot.progress.clone().filter(|p| !p.is_empty()),
        })
    }

    async fn encrypt_snapshot(
        &self,
        region: &str,
        source: &str,
        kms_key: Option<&str>,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("CopySnapshot", region)
            .on(source)
            .fresh()
            .send(|| {
                ec2.copy_snapshot()
                    .source_region(region)
                    .source_snapshot_id(source)
                    .encrypted(true)
                    .set_kms_key_id(kms_key.map(str::to_string))
                    .description(description)
                    .tag_specifications(tag_spec(ResourceType::Snapshot, tags))
                    .send()
            })
            .await?;
        Ok(out.snapshot_id.unwrap_or_default())
    }

    async fn snapshot_volume(
        &self,
        region: &str,
        volume: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let ec2 = self.ec2(region);
        let of_volume = Filter::builder().name("volume-id").values(volume).build();
        self.create_once(region, ResourceKind::Snapshot, tags, Some(of_volume), || async {
            let request = ec2
                .create_snapshot()
                .volume_id(volume)
                .description(description)
                .tag_specifications(tag_spec(ResourceType::Snapshot, tags));
            let out = self.call("CreateSnapshot", region).on(volume).once(|| request.clone().send()).await?;
            Ok(out.snapshot_id.unwrap_or_default())
        })
        .await
    }

    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        self.call("DeleteSnapshot", region).on(id).send(|| ec2.delete_snapshot().snapshot_id(id).send()).await.or_gone()
    }
}
