//! AMIs: RegisterImage, CopyImage, their attributes, deprecation and deregistration.

use aws_sdk_ec2::types::{
    ArchitectureValues, AttributeValue, BlockDeviceMapping, BootModeValues, EbsBlockDevice, Filter, ImdsSupportValues,
    ResourceType, TpmSupportValues, VolumeType,
};
use aws_smithy_types::date_time::Format;

use super::discovery::image_snapshots;
use super::{AwsCloud, Missing, missing, states, tag_spec};
use crate::cloud::{
    CloudError, ErrorClass, ImageCopy, ImageRegistration, Images, Protection, ResourceStatus, RootDevice, Tagging,
};

impl Images for AwsCloud {
    async fn register_image(&self, region: &str, image: &ImageRegistration) -> Result<String, CloudError> {
        let attrs = &image.attrs;
        let root = BlockDeviceMapping::builder()
            .device_name(&attrs.root_device)
            .ebs(
                EbsBlockDevice::builder()
                    .snapshot_id(&image.snapshot_id)
                    .volume_type(VolumeType::from(attrs.volume_type.as_str()))
                    .volume_size(image.volume_size_gib as i32)
                    .delete_on_termination(true)
                    .build(),
            )
            .build();
        let mut request = self
            .ec2(region)
            .register_image()
            .name(&image.name)
            .set_description(image.description.clone())
            .architecture(ArchitectureValues::from(attrs.architecture.as_str()))
            .virtualization_type(attrs.virtualization.as_str())
            .root_device_name(&attrs.root_device)
            .block_device_mappings(root)
            .ena_support(attrs.ena)
            .set_kernel_id(attrs.kernel_id.clone())
            .set_ramdisk_id(attrs.ramdisk_id.clone())
            .tag_specifications(tag_spec(ResourceType::Image, &image.tags));
        if let Some(mode) = attrs.boot_mode {
            request = request.boot_mode(BootModeValues::from(mode.as_str()));
        }
        if attrs.tpm {
            request = request.tpm_support(TpmSupportValues::V20);
        }
        if attrs.imds.is_some() {
            request = request.imds_support(ImdsSupportValues::V20);
        }
        // RegisterImage takes no client token: a retry after a lost answer meets
        // InvalidAMIName.Duplicate, and the image with that name is the one just made.
        let id = match self.call("RegisterImage", region).send(|| request.clone().send()).await {
            Ok(out) => out.image_id.unwrap_or_default(),
            Err(e) if e.class == ErrorClass::Duplicate => {
                self.find_image_by_name(region, &image.name).await?.ok_or(e)?
            }
            Err(e) => return Err(e),
        };
        // Some implementations (the emulator among them) drop TagSpecifications on RegisterImage.
        self.set_tags(region, std::slice::from_ref(&id), &image.tags).await?;
        Ok(id)
    }

    async fn copy_image(&self, region: &str, copy: &ImageCopy) -> Result<String, CloudError> {
        let mut request = self
            .ec2(region)
            .copy_image()
            .name(&copy.name)
            .set_description(copy.description.clone())
            .source_region(&copy.source_region)
            .source_image_id(&copy.source_image_id)
            .client_token(&copy.client_token)
            .tag_specifications(tag_spec(ResourceType::Image, &copy.tags))
            .tag_specifications(tag_spec(ResourceType::Snapshot, &copy.tags));
        if copy.encrypted {
            request = request.encrypted(true).set_kms_key_id(copy.kms_key.clone());
        }
        let out = self.call("CopyImage", region).send(|| request.clone().send()).await?;
        let id = out.image_id.unwrap_or_default();
        self.set_tags(region, std::slice::from_ref(&id), &copy.tags).await?;
        Ok(id)
    }

    async fn image_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        let ec2 = self.ec2(region);
        let request = ec2.describe_images().image_ids(id).include_disabled(true);
        let out = self.call("DescribeImages", region).on(id).send(|| request.clone().send()).await?;
        let image =
            out.images().first().ok_or_else(|| missing("DescribeImages", region, "InvalidAMIID.NotFound", id))?;
        Ok(ResourceStatus {
            state: states::image(image.state.as_ref().map(|s| s.as_str()).unwrap_or_default()),
            reason: image.state_reason.as_ref().and_then(|r| r.message.clone()),
            snapshot_ids: image_snapshots(image),
            deprecation: image.deprecation_time.clone(),
            progress: None,
        })
    }

    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<String>, CloudError> {
        let by_name = Filter::builder().name("name").values(name).build();
        let images = self.describe_images(region, vec![by_name]).await?;
        Ok(images.iter().filter_map(|i| i.image_id.clone()).min())
    }

    async fn set_image_description(&self, region: &str, id: &str, description: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let value = AttributeValue::builder().value(description).build();
        self.call("ModifyImageAttribute", region)
            .on(id)
            .fresh()
            .send(|| ec2.modify_image_attribute().image_id(id).description(value.clone()).send())
            .await
            .map(|_| ())
    }

    async fn set_image_deprecation(&self, region: &str, id: &str, at: Option<&str>) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let Some(at) = at else {
            return self
                .call("DisableImageDeprecation", region)
                .on(id)
                .fresh()
                .send(|| ec2.disable_image_deprecation().image_id(id).send())
                .await
                .map(|_| ());
        };
        let time = aws_smithy_types::DateTime::from_str(at, Format::DateTime)
            .map_err(|e| CloudError::new("EnableImageDeprecation", region, ErrorClass::Fatal, e.to_string()))?;
        self.call("EnableImageDeprecation", region)
            .on(id)
            .fresh()
            .send(|| ec2.enable_image_deprecation().image_id(id).deprecate_at(time).send())
            .await
            .map(|_| ())
    }

    async fn set_image_protection(
        &self,
        region: &str,
        id: &str,
        protection: Option<Protection>,
    ) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let Some(protection) = protection else {
            return self
                .call("DisableImageDeregistrationProtection", region)
                .on(id)
                .fresh()
                .send(|| ec2.disable_image_deregistration_protection().image_id(id).send())
                .await
                .map(|_| ());
        };
        let cooldown = protection == Protection::WithCooldown;
        self.call("EnableImageDeregistrationProtection", region)
            .on(id)
            .fresh()
            .send(|| ec2.enable_image_deregistration_protection().image_id(id).with_cooldown(cooldown).send())
            .await
            .map(|_| ())
    }

    async fn root_device(&self, region: &str, image: &str) -> Result<RootDevice, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeImages", region)
            .on(image)
            .send(|| ec2.describe_images().image_ids(image).send())
            .await?;
        let found =
            out.images().first().ok_or_else(|| missing("DescribeImages", region, "InvalidAMIID.NotFound", image))?;
        let name = found.root_device_name().unwrap_or("/dev/xvda").to_string();
        let size = found
            .block_device_mappings()
            .iter()
            .find(|m| m.device_name() == Some(name.as_str()))
            .and_then(|m| m.ebs()?.volume_size())
            // AWS's own Linux AMIs have 8 GiB roots; an AMI that does not say is taken as that.
            .unwrap_or(8);
        Ok(RootDevice { name, size_gib: size.max(1) as u32 })
    }

    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let result = self
            .call("DeregisterImage", region)
            .on(id)
            .send(|| ec2.deregister_image().image_id(id).send())
            .await
            .or_gone();
        match result {
            // Deregistered already, and still listed for a while.
            Err(e) if e.code.as_deref() == Some("InvalidAMIID.Unavailable") => Ok(()),
            other => other,
        }
    }
}
