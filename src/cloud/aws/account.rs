//! The account and what it allows in each region.

use std::collections::BTreeMap;

use aws_config::Region;
use aws_sdk_ec2::types::{Filter, LocationType};

use super::{AwsCloud, Missing, states};
use crate::cloud::{Account, CloudError, InstanceTypeTraits, PublicAccess, Quota};

/// The service and quota codes of a quota in Service Quotas: Amazon EC2's "Public AMIs" (5 by
/// default) and "AMI sharing" (1,000 entities per AMI by default), both in "AMI quotas" of the
/// Amazon EC2 User Guide, and Amazon VPC's "VPCs per Region" (5 by default: "Amazon VPC
/// quotas").
pub fn quota_code(quota: Quota) -> (&'static str, &'static str) {
    match quota {
        Quota::PublicImages => ("ec2", "L-0E3CBAB9"),
        Quota::Vpcs => ("vpc", "L-F678F1CE"),
        Quota::ImageSharing => ("ec2", "L-70015FFA"),
    }
}

impl Account for AwsCloud {
    async fn account_id(&self) -> Result<String, CloudError> {
        let region = self.config.region().map(|r| r.to_string()).unwrap_or_default();
        let sts = aws_sdk_sts::Client::new(&self.config);
        let identity = self.call("GetCallerIdentity", &region).send(|| sts.get_caller_identity().send()).await?;
        Ok(identity.account.unwrap_or_default())
    }

    async fn regions(&self, via: &str) -> Result<Vec<String>, CloudError> {
        let ec2 = self.ec2(via);
        let out = self.call("DescribeRegions", via).send(|| ec2.describe_regions().send()).await?;
        Ok(out.regions().iter().filter_map(|r| r.region_name.clone()).collect())
    }

    async fn encryption_by_default(&self, region: &str) -> Result<bool, CloudError> {
        let ec2 = self.ec2(region);
        let out =
            self.call("GetEbsEncryptionByDefault", region).send(|| ec2.get_ebs_encryption_by_default().send()).await?;
        Ok(out.ebs_encryption_by_default().unwrap_or(false))
    }

    async fn vpc_count(&self, region: &str) -> Result<usize, CloudError> {
        let ec2 = self.ec2(region);
        let vpcs = describe!(self, region, "DescribeVpcs", ec2.describe_vpcs(), vec![]).await?;
        Ok(vpcs.len())
    }

    async fn instance_type_zones(&self, region: &str, instance_type: &str) -> Result<Vec<String>, CloudError> {
        let ec2 = self.ec2(region);
        let of_type = Filter::builder().name("instance-type").values(instance_type).build();
        let request = ec2.describe_instance_type_offerings().location_type(LocationType::AvailabilityZone);
        let offerings = describe!(self, region, "DescribeInstanceTypeOfferings", request, vec![of_type]).await?;
        let mut zones: Vec<String> = offerings.iter().filter_map(|o| o.location.clone()).collect();
        zones.sort();
        zones.dedup();
        Ok(zones)
    }

    async fn instance_type_traits(
        &self,
        region: &str,
        instance_types: &[String],
    ) -> Result<BTreeMap<String, InstanceTypeTraits>, CloudError> {
        let ec2 = self.ec2(region);
        // A filter, not InstanceTypes: a type EC2 does not know is no match, not an error that
        // would keep the plan from saying so itself (no zone offers it).
        let of_types = Filter::builder().name("instance-type").set_values(Some(instance_types.to_vec())).build();
        let request = ec2.describe_instance_types();
        let types = describe!(self, region, "DescribeInstanceTypes", request, vec![of_types]).await?;
        Ok(types
            .iter()
            .filter_map(|info| Some((info.instance_type()?.as_str().to_string(), states::instance_type_traits(info))))
            .collect())
    }

    async fn image_block_public_access(&self, region: &str) -> Option<PublicAccess> {
        let ec2 = self.ec2(region);
        // Asked once, without retries: where the API does not answer, the state is unknown.
        match ec2.get_image_block_public_access_state().send().await {
            Ok(out) => out.image_block_public_access_state().map(states::public_access),
            Err(error) => {
                let error = super::sdk_error("GetImageBlockPublicAccessState", region, error);
                tracing::debug!(%error, "image block public access state unknown");
                None
            }
        }
    }

    async fn snapshot_block_public_access(&self, region: &str) -> Option<PublicAccess> {
        let ec2 = self.ec2(region);
        match ec2.get_snapshot_block_public_access_state().send().await {
            Ok(out) => out.state().map(|s| states::public_access(s.as_str())),
            Err(error) => {
                let error = super::sdk_error("GetSnapshotBlockPublicAccessState", region, error);
                tracing::debug!(%error, "snapshot block public access state unknown");
                None
            }
        }
    }

    async fn public_image_count(&self, region: &str) -> Result<usize, CloudError> {
        let public = Filter::builder().name("is-public").values("true").build();
        Ok(self.describe_images(region, vec![public]).await?.len())
    }

    async fn quota(&self, region: &str, quota: Quota) -> Option<u32> {
        let (service, code) = quota_code(quota);
        let config = aws_sdk_servicequotas::config::Builder::from(&self.config).region(Region::new(region.to_string()));
        let quotas = aws_sdk_servicequotas::Client::from_conf(config.build());
        // Asked once each, without retries, like the block public access states: where Service
        // Quotas does not answer, the quota is unknown, and the plan makes do without it.
        let applied = self
            .call("GetServiceQuota", region)
            .once(|| quotas.get_service_quota().service_code(service).quota_code(code).send())
            .await
            .map(|out| out.quota)
            .or_none();
        let quota = match applied {
            Ok(Some(quota)) => quota,
            // No value applies to the account (the API reference allows it): the default does.
            Ok(None) => self
                .call("GetAWSDefaultServiceQuota", region)
                .once(|| quotas.get_aws_default_service_quota().service_code(service).quota_code(code).send())
                .await
                .map(|out| out.quota)
                .unwrap_or_else(|error| {
                    tracing::debug!(%error, ?quota, "quota unknown");
                    None
                }),
            Err(error) => {
                tracing::debug!(%error, ?quota, "quota unknown");
                None
            }
        };
        // Quotas are whole numbers sent as doubles.
        quota.and_then(|q| q.value).filter(|v| v.is_finite() && *v >= 0.0).map(|v| v.min(f64::from(u32::MAX)) as u32)
    }
}
