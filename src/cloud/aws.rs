//! The AWS SDK implementation of [`Cloud`]: the only module that talks to AWS. Honors the standard
//! credential chain, profiles and `AWS_ENDPOINT_URL` (how tests reach the local emulator).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    ArchitectureValues, AttributeValue, BlockDeviceMapping, BootModeValues, EbsBlockDevice, Filter, Image,
    ImdsSupportValues, KeyType, ResourceType, Snapshot, Tag, TagSpecification, TpmSupportValues, VolumeType,
};
use aws_smithy_types::date_time::Format;

use super::Sharing;
use super::error::classify;
use super::retry::RetryPolicy;
use super::tags;
use super::{
    BuildResource, Cloud, CloudError, DiscoveryQuery, ExistingSubnet, HeldLock, HelperLaunch, ImageCopy,
    ImageRegistration, Placement, ResourceStatus, RootDevice, SnapshotUpload, upload,
};
use super::{LiveResource, ResourceKind};

/// How to reach AWS (or an emulator speaking its API).
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Overrides `AWS_ENDPOINT_URL` and the per-service endpoints.
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// Region for calls that are not about a manifest region (STS).
    pub home_region: String,
}

/// Tuning of the SDK-backed cloud.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub retry: RetryPolicy,
    /// PutSnapshotBlock requests in flight per upload. coldsnap uses 64; EBS allows 1,000 requests
    /// per second per snapshot, and 16 keeps a single upload well inside that while still
    /// filling a typical uplink.
    pub upload_concurrency: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { retry: RetryPolicy::default(), upload_concurrency: 16 }
    }
}

pub struct AwsCloud {
    config: SdkConfig,
    tuning: Tuning,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    ebs: Mutex<HashMap<String, aws_sdk_ebs::Client>>,
    /// Instances whose live console EC2 refused (not Nitro): read buffered from then on.
    pub(super) buffered_consoles: Mutex<std::collections::HashSet<String>>,
}

impl AwsCloud {
    pub async fn connect(connection: &Connection, tuning: Tuning) -> AwsCloud {
        // amiplan's RetryPolicy is the one layer that retries (it knows which errors are worth
        // it, and for how long); the SDK's own retries would multiply its attempts. The SDK
        // still enforces the attempt timeout and the overall deadline of every call.
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(tuning.retry.attempt_timeout)
            .operation_timeout(tuning.retry.attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(connection.home_region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(url) = &connection.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &connection.profile {
            loader = loader.profile_name(profile);
        }
        let config = loader.load().await;
        AwsCloud { config, tuning, ec2: Mutex::default(), ebs: Mutex::default(), buffered_consoles: Mutex::default() }
    }

    pub(super) fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let mut clients = self.ec2.lock().expect("client cache lock");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config =
                    aws_sdk_ec2::config::Builder::from(&self.config).region(Region::new(region.to_string())).build();
                aws_sdk_ec2::Client::from_conf(config)
            })
            .clone()
    }

    fn ebs(&self, region: &str) -> aws_sdk_ebs::Client {
        let mut clients = self.ebs.lock().expect("client cache lock");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let config =
                    aws_sdk_ebs::config::Builder::from(&self.config).region(Region::new(region.to_string())).build();
                aws_sdk_ebs::Client::from_conf(config)
            })
            .clone()
    }

    /// The retry policy this client was made with; the executor waits by the same one.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.tuning.retry
    }

    pub(super) fn policy(&self) -> &RetryPolicy {
        &self.tuning.retry
    }

    async fn describe_images(&self, region: &str, filter: Filter) -> Result<Vec<Image>, CloudError> {
        let ec2 = self.ec2(region);
        self.policy()
            .run(false, || async {
                let pages =
                    ec2.describe_images().owners("self").filters(filter.clone()).into_paginator().items().send();
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeImages", region, e))
            })
            .await
    }

    async fn describe_snapshots(&self, region: &str, filter: Filter) -> Result<Vec<Snapshot>, CloudError> {
        let ec2 = self.ec2(region);
        self.policy()
            .run(false, || async {
                let pages =
                    ec2.describe_snapshots().owner_ids("self").filters(filter.clone()).into_paginator().items().send();
                pages.collect::<Result<Vec<_>, _>>().await.map_err(|e| sdk_error("DescribeSnapshots", region, e))
            })
            .await
    }
}

/// Converts any SDK error into a classified [`CloudError`]. Messages come from AWS's answer or the
/// SDK's error chain, neither of which carries credentials.
pub(super) fn sdk_error<E, R>(operation: &'static str, region: &str, error: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let status = match &error {
        SdkError::ServiceError(context) => Some(context.raw().status_code()),
        SdkError::ResponseError(context) => Some(context.raw().status_code()),
        _ => None,
    };
    let code = error.code().map(str::to_string);
    let message = error.message().map(str::to_string).unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    let class = classify(code.as_deref(), status);
    CloudError::new(operation, region, code, message).with_class(class)
}

/// The HTTP status of a raw response, whatever its type.
pub(super) trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub(super) fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(ec2_tags(tags))).build()
}

pub(super) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default()))).collect()
}

fn live_image(region: &str, image: &Image) -> LiveResource {
    LiveResource {
        region: region.to_string(),
        kind: ResourceKind::Image,
        id: image.image_id.clone().unwrap_or_default(),
        name: image.name.clone(),
        state: image.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default(),
        description: image.description.clone().filter(|d| !d.is_empty()),
        tags: tag_map(image.tags()),
        public: image.public.unwrap_or(false),
        snapshot_ids: image_snapshots(image),
        created: image.creation_date.clone(),
        deprecation: image.deprecation_time.clone(),
        sharing: None,
        snapshot_sharing: vec![],
    }
}

fn image_snapshots(image: &Image) -> Vec<String> {
    image.block_device_mappings().iter().filter_map(|m| m.ebs.as_ref()?.snapshot_id.clone()).collect()
}

fn live_snapshot(region: &str, snapshot: &Snapshot) -> LiveResource {
    LiveResource {
        region: region.to_string(),
        kind: ResourceKind::Snapshot,
        id: snapshot.snapshot_id.clone().unwrap_or_default(),
        name: None,
        state: snapshot.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default(),
        description: snapshot.description.clone().filter(|d| !d.is_empty()),
        tags: tag_map(snapshot.tags()),
        public: false,
        snapshot_ids: vec![],
        created: snapshot.start_time.and_then(|t| t.fmt(Format::DateTime).ok()),
        deprecation: None,
        sharing: None,
        snapshot_sharing: vec![],
    }
}

impl AwsCloud {
    /// The lock key pair `name`, if it exists.
    async fn find_lock(&self, region: &str, name: &str) -> Result<Option<HeldLock>, CloudError> {
        let ec2 = self.ec2(region);
        let found = self
            .policy()
            .run(false, || async {
                ec2.describe_key_pairs()
                    .key_names(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeKeyPairs", region, e).on(name))
            })
            .await;
        let out = match found {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        Ok(out.key_pairs().first().map(|k| HeldLock { id: k.key_pair_id.clone(), labels: tag_map(k.tags()) }))
    }
}

fn not_found(operation: &'static str, region: &str, code: &str, id: &str) -> CloudError {
    CloudError::new(operation, region, Some(code.to_string()), format!("{id} does not exist")).on(id)
}

impl Cloud for AwsCloud {
    async fn account_id(&self) -> Result<String, CloudError> {
        let region = self.config.region().map(|r| r.to_string()).unwrap_or_default();
        let sts = aws_sdk_sts::Client::new(&self.config);
        let identity = self
            .policy()
            .run(false, || async {
                sts.get_caller_identity().send().await.map_err(|e| sdk_error("GetCallerIdentity", &region, e))
            })
            .await?;
        Ok(identity.account.unwrap_or_default())
    }

    async fn regions(&self, via: &str) -> Result<Vec<String>, CloudError> {
        let ec2 = self.ec2(via);
        let out = self
            .policy()
            .run(false, || async {
                ec2.describe_regions().send().await.map_err(|e| sdk_error("DescribeRegions", via, e))
            })
            .await?;
        Ok(out.regions().iter().filter_map(|r| r.region_name.clone()).collect())
    }

    async fn discover(&self, region: &str, query: &DiscoveryQuery) -> Result<Vec<LiveResource>, CloudError> {
        // All three listings are independent: one round trip per region, not three.
        let by_stack =
            Filter::builder().name(format!("tag:{}", tags::STACK)).set_values(Some(query.stacks.clone())).build();
        let tagged_images = async {
            if query.stacks.is_empty() { Ok(vec![]) } else { self.describe_images(region, by_stack.clone()).await }
        };
        let tagged_snapshots = async {
            if query.stacks.is_empty() { Ok(vec![]) } else { self.describe_snapshots(region, by_stack.clone()).await }
        };
        // EC2 accepts up to 200 values per filter.
        let named_images = futures::future::try_join_all(query.image_names.chunks(200).map(|names| {
            let by_name = Filter::builder().name("name").set_values(Some(names.to_vec())).build();
            self.describe_images(region, by_name)
        }));
        let build_resources = async {
            if query.build_resources { self.discover_build_resources(region, &query.stacks).await } else { Ok(vec![]) }
        };
        let (images, snapshots, named, mut found) =
            futures::try_join!(tagged_images, tagged_snapshots, named_images, build_resources)?;
        found.extend(images.iter().chain(named.iter().flatten()).map(|i| live_image(region, i)));
        found.extend(snapshots.iter().map(|s| live_snapshot(region, s)));
        Ok(found)
    }

    async fn upload_snapshot(&self, region: &str, request: &SnapshotUpload) -> Result<String, CloudError> {
        upload::upload(&self.ebs(region), region, request, self.policy(), self.tuning.upload_concurrency).await
    }

    async fn snapshot_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        let out = self
            .ec2(region)
            .describe_snapshots()
            .snapshot_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeSnapshots", region, e).on(id))?;
        let snapshot = out
            .snapshots()
            .first()
            .ok_or_else(|| not_found("DescribeSnapshots", region, "InvalidSnapshot.NotFound", id))?;
        Ok(ResourceStatus {
            state: snapshot.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default(),
            reason: snapshot.state_message.clone(),
            snapshot_ids: vec![],
        })
    }

    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let result = self
            .policy()
            .run(false, || async {
                ec2.delete_snapshot()
                    .snapshot_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteSnapshot", region, e).on(id))
            })
            .await;
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }

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
        let registered = self
            .policy()
            .run(false, || async { request.clone().send().await.map_err(|e| sdk_error("RegisterImage", region, e)) })
            .await;
        let id = match registered {
            Ok(out) => out.image_id.unwrap_or_default(),
            Err(e) if e.code.as_deref() == Some("InvalidAMIName.Duplicate") => {
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
        let out = self
            .policy()
            .run(false, || async { request.clone().send().await.map_err(|e| sdk_error("CopyImage", region, e)) })
            .await?;
        let id = out.image_id.unwrap_or_default();
        self.set_tags(region, std::slice::from_ref(&id), &copy.tags).await?;
        Ok(id)
    }

    async fn image_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        let out = self
            .ec2(region)
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", region, e).on(id))?;
        let image =
            out.images().first().ok_or_else(|| not_found("DescribeImages", region, "InvalidAMIID.NotFound", id))?;
        Ok(ResourceStatus {
            state: image.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default(),
            reason: image.state_reason.as_ref().and_then(|r| r.message.clone()),
            snapshot_ids: image_snapshots(image),
        })
    }

    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<String>, CloudError> {
        let by_name = Filter::builder().name("name").values(name).build();
        let images = self.describe_images(region, by_name).await?;
        Ok(images.iter().filter_map(|i| i.image_id.clone()).min())
    }

    async fn set_image_description(&self, region: &str, id: &str, description: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let value = AttributeValue::builder().value(description).build();
        self.policy()
            .run(true, || async {
                ec2.modify_image_attribute()
                    .image_id(id)
                    .description(value.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("ModifyImageAttribute", region, e).on(id))
            })
            .await
            .map(|_| ())
    }

    async fn set_image_deprecation(&self, region: &str, id: &str, at: Option<&str>) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let time = match at {
            Some(at) => Some(
                aws_smithy_types::DateTime::from_str(at, Format::DateTime)
                    .map_err(|e| CloudError::new("EnableImageDeprecation", region, None, e.to_string()))?,
            ),
            None => None,
        };
        self.policy()
            .run(true, || async {
                match time {
                    Some(time) => ec2
                        .enable_image_deprecation()
                        .image_id(id)
                        .deprecate_at(time)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| sdk_error("EnableImageDeprecation", region, e).on(id)),
                    None => ec2
                        .disable_image_deprecation()
                        .image_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| sdk_error("DisableImageDeprecation", region, e).on(id)),
                }
            })
            .await
    }

    async fn image_block_public_access(&self, region: &str) -> Option<String> {
        let ec2 = self.ec2(region);
        match ec2.get_image_block_public_access_state().send().await {
            Ok(out) => out.image_block_public_access_state().map(str::to_string),
            Err(error) => {
                let error = sdk_error("GetImageBlockPublicAccessState", region, error);
                tracing::debug!(%error, "image block public access state unknown");
                None
            }
        }
    }

    async fn snapshot_block_public_access(&self, region: &str) -> Option<String> {
        let ec2 = self.ec2(region);
        match ec2.get_snapshot_block_public_access_state().send().await {
            Ok(out) => out.state().map(|s| s.as_str().to_string()),
            Err(error) => {
                let error = sdk_error("GetSnapshotBlockPublicAccessState", region, error);
                tracing::debug!(%error, "snapshot block public access state unknown");
                None
            }
        }
    }

    async fn launch_template_images(&self, region: &str) -> Result<BTreeMap<String, String>, CloudError> {
        let ec2 = self.ec2(region);
        let versions = self
            .policy()
            .run(false, || async {
                let pages = ec2
                    .describe_launch_template_versions()
                    .versions("$Latest")
                    .versions("$Default")
                    .into_paginator()
                    .items()
                    .send();
                pages
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .map_err(|e| sdk_error("DescribeLaunchTemplateVersions", region, e))
            })
            .await?;
        Ok(versions
            .iter()
            .filter_map(|v| {
                let image = v.launch_template_data()?.image_id()?;
                Some((image.to_string(), v.launch_template_name().unwrap_or_default().to_string()))
            })
            .collect())
    }

    async fn image_sharing(&self, region: &str, id: &str) -> Result<Sharing, CloudError> {
        self.read_image_sharing(region, id).await
    }

    async fn change_image_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        self.modify_image_sharing(region, id, add, remove).await
    }

    async fn snapshot_sharing(&self, region: &str, id: &str) -> Result<Sharing, CloudError> {
        self.read_snapshot_sharing(region, id).await
    }

    async fn change_snapshot_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        self.modify_snapshot_sharing(region, id, add, remove).await
    }

    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let result = self
            .policy()
            .run(false, || async {
                ec2.deregister_image()
                    .image_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeregisterImage", region, e).on(id))
            })
            .await;
        match result {
            Err(e) if e.is_not_found() || e.code.as_deref() == Some("InvalidAMIID.Unavailable") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn set_tags(&self, region: &str, ids: &[String], tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        if ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let ec2 = self.ec2(region);
        // Right after a create, CreateTags may not see the new ID yet: NotFound is retried.
        self.policy()
            .run(true, || async {
                ec2.create_tags()
                    .set_resources(Some(ids.to_vec()))
                    .set_tags(Some(ec2_tags(tags)))
                    .send()
                    .await
                    .map_err(|e| sdk_error("CreateTags", region, e).on(ids.join(",")))
            })
            .await
            .map(|_| ())
    }

    async fn remove_tags(&self, region: &str, ids: &[String], keys: &[String]) -> Result<(), CloudError> {
        if ids.is_empty() || keys.is_empty() {
            return Ok(());
        }
        let ec2 = self.ec2(region);
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        self.policy()
            .run(true, || async {
                ec2.delete_tags()
                    .set_resources(Some(ids.to_vec()))
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteTags", region, e).on(ids.join(",")))
            })
            .await
            .map(|_| ())
    }

    async fn newest_image(&self, region: &str, owner: &str, name_pattern: &str) -> Result<Option<String>, CloudError> {
        self.newest_image_by_name(region, owner, name_pattern).await
    }

    async fn subnet_placement(&self, region: &str, subnet: &str) -> Result<Placement, CloudError> {
        self.placement_of(region, subnet).await
    }

    async fn default_subnet(&self, region: &str, zones: &[String]) -> Result<Option<String>, CloudError> {
        self.first_default_subnet(region, zones).await
    }

    async fn encryption_by_default(&self, region: &str) -> Result<bool, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .policy()
            .run(false, || async {
                ec2.get_ebs_encryption_by_default()
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetEbsEncryptionByDefault", region, e))
            })
            .await?;
        Ok(out.ebs_encryption_by_default().unwrap_or(false))
    }

    async fn vpc_count(&self, region: &str) -> Result<usize, CloudError> {
        self.count_vpcs(region).await
    }

    async fn instance_type_zones(&self, region: &str, instance_type: &str) -> Result<Vec<String>, CloudError> {
        self.zones_offering(region, instance_type).await
    }

    async fn create_build_resource(
        &self,
        region: &str,
        resource: &BuildResource,
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> Result<String, CloudError> {
        self.create_transient(region, resource, tags, client_token).await
    }

    async fn existing_subnet(&self, region: &str, subnet: &str) -> Result<Option<ExistingSubnet>, CloudError> {
        self.existing_subnet_of(region, subnet).await
    }

    async fn root_device(&self, region: &str, image: &str) -> Result<RootDevice, CloudError> {
        self.root_device_of(region, image).await
    }

    async fn launch_helper(&self, region: &str, launch: &HelperLaunch) -> Result<String, CloudError> {
        self.run_helper(region, launch).await
    }

    async fn attach_volume(&self, region: &str, volume: &str, instance: &str, device: &str) -> Result<(), CloudError> {
        self.attach(region, volume, instance, device).await
    }

    async fn instance_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        self.instance_state(region, id).await
    }

    async fn console_output(&self, region: &str, id: &str) -> Result<String, CloudError> {
        self.console(region, id).await
    }

    async fn encrypt_snapshot(
        &self,
        region: &str,
        source: &str,
        kms_key: Option<&str>,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        self.encrypted_copy(region, source, kms_key, description, tags).await
    }

    async fn snapshot_volume(
        &self,
        region: &str,
        volume: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        self.snapshot_of(region, volume, description, tags).await
    }

    async fn delete_build_resource(&self, region: &str, kind: ResourceKind, id: &str) -> Result<(), CloudError> {
        self.delete_transient(region, kind, id).await
    }

    async fn try_lock(
        &self,
        region: &str,
        name: &str,
        holder: &BTreeMap<String, String>,
    ) -> Result<Option<HeldLock>, CloudError> {
        let ec2 = self.ec2(region);
        // Key pair names are unique per region, so creating one is an atomic test-and-set. The
        // private key in the answer is dropped unread: nobody can ever use this key pair.
        let created = self
            .policy()
            .run(false, || async {
                ec2.create_key_pair()
                    .key_name(name)
                    .key_type(KeyType::Ed25519)
                    .tag_specifications(tag_spec(ResourceType::KeyPair, holder))
                    .send()
                    .await
                    .map_err(|e| sdk_error("CreateKeyPair", region, e).on(name))
            })
            .await;
        match created {
            Ok(_) => Ok(None),
            Err(e) if e.code.as_deref() == Some("InvalidKeyPair.Duplicate") => {
                Ok(Some(self.find_lock(region, name).await?.unwrap_or(HeldLock { id: None, labels: BTreeMap::new() })))
            }
            Err(e) => Err(e),
        }
    }

    async fn relabel_lock(
        &self,
        region: &str,
        name: &str,
        key: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, CloudError> {
        let Some(found) = self.find_lock(region, name).await? else { return Ok(false) };
        let (Some(id), true) = (found.id, found.labels.get(key) == labels.get(key)) else { return Ok(false) };
        self.set_tags(region, std::slice::from_ref(&id), labels).await?;
        Ok(true)
    }

    async fn break_lock(&self, region: &str, name: &str, held: &HeldLock) -> Result<(), CloudError> {
        // Only the stale key pair goes: if the lock was taken over meanwhile, it has another ID.
        // (DeleteKeyPair takes a KeyPairId on AWS, but the emulator honours only the name, so the
        // ID is checked right before deleting by name; the race narrows to that moment.)
        match self.find_lock(region, name).await? {
            Some(found) if found.id == held.id => self.unlock(region, name).await,
            _ => Ok(()),
        }
    }

    async fn unlock(&self, region: &str, name: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        let result = self
            .policy()
            .run(false, || async {
                ec2.delete_key_pair()
                    .key_name(name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteKeyPair", region, e).on(name))
            })
            .await;
        match result {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
