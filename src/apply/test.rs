//! The boot test of a new AMI: an instance launched from it (IMDSv2, no key, a security group
//! without inbound rules) runs the test job; its result is read from the console like a helper's.
//! The instance and group go either way; only a pass tags the AMI as tested and publishes it.

use std::collections::BTreeMap;

use super::{Executor, Inputs, StepError};
use crate::cloud::{BuildResource, Cloud, HelperLaunch};
use crate::graph::{Node, NodeKind};
use crate::plan::{Change, RESOLVED_ZONE};
use crate::resource::test::BootTest;
use crate::tags;

impl<'a, C: Cloud> Executor<'a, C> {
    pub(super) async fn boot_test(
        &self,
        node: &Node,
        change: &Change,
        inputs: &Inputs,
        test: &BootTest,
    ) -> Result<String, StepError> {
        let region = node.region.as_str();
        let image_id = inputs
            .get(&NodeKind::Image)
            .or(inputs.get(&NodeKind::ImageCopy))
            .cloned()
            .ok_or_else(|| StepError { resource: None, message: format!("{} has no AMI to test", node.id) })?;
        let subnet = match &test.subnet {
            Some(subnet) => subnet.to_string(),
            None => {
                // The plan chose the zones that offer the test's instance type.
                let zones: Vec<String> = change
                    .resolved
                    .get(RESOLVED_ZONE)
                    .map(|z| z.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                self.cloud.default_subnet(region, &zones).await?.ok_or_else(|| StepError {
                    resource: Some(image_id.clone()),
                    message: format!(
                        "{region} has no default subnet to test in (in a zone offering {}): set test.subnet",
                        test.instance_type
                    ),
                })?
            }
        };
        let vpc = self.placement(region, &subnet).await?.vpc;
        let tags = node.desired_tags();
        let group = BuildResource::SecurityGroup {
            vpc,
            name: format!("amiplan-{}-test-{image_id}", node.stack),
            description: format!("amiplan boot test of {image_id}: no inbound rules"),
        };
        let token = self.client_token(node, &group);
        let group = self.cloud.create_build_resource(region, &group, &tags, &token).await?;
        let mut launch = HelperLaunch {
            image_id: image_id.clone(),
            instance_type: test.instance_type.to_string(),
            subnet,
            security_group: group.clone(),
            user_data: test.job.script(""),
            spot: false,
            // The test needs no way out: it only boots and reports on its console.
            public_address: false,
            root_volume: None,
            tags,
            client_token: String::new(),
        };
        launch.client_token = self.client_token(node, &launch);
        let outcome = match self.cloud.launch_helper(region, &launch).await {
            Ok(instance) => {
                let ran = async {
                    self.wait_started(region, &instance).await?;
                    self.wait_for_job(region, "test instance", &instance, &test.job.id, test.timeout).await
                };
                let result = ran.await;
                let cleaned = self.delete_transient(region, NodeKind::Helper, &instance).await;
                result.and(cleaned.map_err(StepError::from))
            }
            Err(error) => Err(StepError::from(error)),
        };
        // The group goes whatever happened; a failure to remove it is worth reporting only when
        // the test itself passed (the next apply removes a left-over group anyway).
        let removed = self.delete_transient(region, NodeKind::SecurityGroup, &group).await;
        if let Err(mut failure) = outcome {
            failure.message = format!("boot test of {image_id} failed: {}", failure.message);
            failure.resource = Some(image_id);
            return Err(failure);
        }
        removed.map_err(|e| StepError::from(e).on(&image_id))?;

        let passed = BTreeMap::from([(tags::TESTED.to_string(), test.job.id.clone())]);
        self.cloud
            .set_tags(region, std::slice::from_ref(&image_id), &passed)
            .await
            .map_err(|e| StepError::from(e).on(&image_id))?;
        let image = self.graph.get(&test.image_node).expect("a test gates an image of the same graph");
        let status = self.cloud.image_status(region, &image_id).await.map_err(|e| StepError::from(e).on(&image_id))?;
        self.publish(image, &image_id, &status).await?;
        Ok(image_id)
    }
}
