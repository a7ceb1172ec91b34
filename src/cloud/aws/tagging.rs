//! Tags on any resource: CreateTags and DeleteTags.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Tag;

use super::{AwsCloud, ec2_tags};
use crate::cloud::{CloudError, Tagging};

impl Tagging for AwsCloud {
    async fn set_tags(&self, region: &str, ids: &[String], tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let ec2 = self.ec2(region);
        let on = ids.join(",");
        // Right after a create, CreateTags may not see the new ID yet: NotFound is retried.
        self.call("CreateTags", region)
            .on(&on)
            .fresh()
            .send(|| ec2.create_tags().set_resources(Some(ids.to_vec())).set_tags(Some(ec2_tags(tags))).send())
            .await
            .map(|_| ())
    }

    async fn remove_tags(&self, region: &str, ids: &[String], keys: &[String]) -> Result<(), CloudError> {
        if ids.is_empty() || keys.is_empty() {
            return Ok(());
        }
        let ec2 = self.ec2(region);
        let on = ids.join(",");
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        self.call("DeleteTags", region)
            .on(&on)
            .fresh()
            .send(|| ec2.delete_tags().set_resources(Some(ids.to_vec())).set_tags(Some(tags.clone())).send())
            .await
            .map(|_| ())
    }
}
