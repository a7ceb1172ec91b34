//! An in-process cloud behind amiplan's `Cloud` trait, for what moto cannot show: it keeps every
//! attribute of RegisterImage and CopyImage, applies description changes, refuses duplicate AMI
//! names, reports resources as pending and not-yet-visible for a while after creation, and fails
//! chosen operations on purpose. Every call is recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use amiplan::cloud::Sharing;
use amiplan::cloud::aws::aws_error;
use amiplan::cloud::{
    Account, BuildHosts, BuildResource, CloudError, Discovery, DiscoveryQuery, ErrorClass, HeldLock, HelperLaunch,
    ImageCopy, ImageParameter, ImageRegistration, Images, Locks, Objects, Parameters, Permissions, Placement, Progress,
    ResourceStatus, SnapshotUpload, Snapshots, State as LiveState, StoredObject, Tagging,
};
use amiplan::cloud::{LiveResource, ResourceKind};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub enum Made {
    Registered(ImageRegistration),
    Copied(ImageCopy),
    Uploaded(SnapshotUpload),
}

#[derive(Default)]
struct State {
    next_id: u32,
    resources: BTreeMap<(String, String), LiveResource>,
    /// Status polls left before a new resource shows up (NotFound) and then becomes ready (pending).
    invisible: HashMap<String, u32>,
    pending: HashMap<String, u32>,
    made: Vec<(String, String, Made)>,
    calls: Vec<(String, &'static str)>,
    /// (operation, region) → error code to answer with, for every such call.
    failures: HashMap<(&'static str, String), String>,
    /// Copies in flight per region now, and the most ever seen at once.
    copying: HashMap<String, usize>,
    most_copying: HashMap<String, usize>,
    locks: HashMap<(String, String), BTreeMap<String, String>>,
    /// createVolumePermission per (region, snapshot).
    snapshot_sharing: HashMap<(String, String), Sharing>,
    /// The version of each parameter (region, name).
    parameter_versions: HashMap<(String, String), i64>,
    /// S3 objects by (bucket, key): content and tags.
    objects: BTreeMap<(String, String), StoredBody>,
}

/// An S3 object's content and tags.
type StoredBody = (Vec<u8>, BTreeMap<String, String>);

#[derive(Default)]
pub struct FakeCloud {
    state: Mutex<State>,
    /// Polls a new resource answers NotFound, then pending, before it is ready.
    pub lag: u32,
    /// How long CopyImage takes to answer, so that concurrent copies overlap.
    pub copy_latency: std::time::Duration,
}

impl FakeCloud {
    pub fn with_copy_latency(copy_latency: std::time::Duration) -> FakeCloud {
        FakeCloud { copy_latency, ..FakeCloud::default() }
    }

    pub fn with_lag(lag: u32) -> FakeCloud {
        FakeCloud { lag, ..FakeCloud::default() }
    }

    /// The most CopyImage calls seen in flight at once in `region`.
    pub fn most_concurrent_copies(&self, region: &str) -> usize {
        self.state.lock().unwrap().most_copying.get(region).copied().unwrap_or(0)
    }

    pub fn fail(&self, operation: &'static str, region: &str, code: &str) {
        self.state.lock().unwrap().failures.insert((operation, region.to_string()), code.to_string());
    }

    /// The stack locks held now, by (region, name).
    pub fn locks(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().locks.keys().cloned().collect()
    }

    /// Another run takes the lock `name` in `region`, labelled with `labels`.
    pub fn hold_lock(&self, region: &str, name: &str, labels: BTreeMap<String, String>) {
        self.state.lock().unwrap().locks.insert((region.to_string(), name.to_string()), labels);
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().failures.clear();
    }

    pub fn made(&self) -> Vec<(String, String, Made)> {
        self.state.lock().unwrap().made.clone()
    }

    pub fn calls(&self, operation: &str) -> usize {
        self.state.lock().unwrap().calls.iter().filter(|(_, op)| *op == operation).count()
    }

    /// The value of parameter `name` in `region`, and its tags.
    pub fn parameter(&self, region: &str, name: &str) -> Option<(String, BTreeMap<String, String>)> {
        let state = self.state.lock().unwrap();
        let live = state.resources.get(&(region.to_string(), name.to_string()))?;
        Some((live.value.clone()?, live.tags.clone()))
    }

    /// The description of parameter `name` in `region`.
    pub fn parameter_description(&self, region: &str, name: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state.resources.get(&(region.to_string(), name.to_string()))?.description.clone()
    }

    /// Every parameter in `region`, by name → value.
    pub fn parameters(&self, region: &str) -> BTreeMap<String, String> {
        let state = self.state.lock().unwrap();
        state
            .resources
            .values()
            .filter(|r| r.region == region && r.kind == ResourceKind::Parameter)
            .map(|r| (r.id.clone(), r.value.clone().unwrap_or_default()))
            .collect()
    }

    /// Someone else's parameter, untagged.
    pub fn put_foreign_parameter(&self, region: &str, name: &str, value: &str) {
        let mut state = self.state.lock().unwrap();
        let mut live = LiveResource::new(region, ResourceKind::Parameter, name, LiveState::Ready, BTreeMap::new());
        live.name = Some(name.to_string());
        live.value = Some(value.to_string());
        state.resources.insert((region.to_string(), name.to_string()), live);
    }

    pub fn images(&self, region: &str) -> Vec<LiveResource> {
        self.resources(region, ResourceKind::Image)
    }

    pub fn snapshots(&self, region: &str) -> Vec<LiveResource> {
        self.resources(region, ResourceKind::Snapshot)
    }

    fn resources(&self, region: &str, kind: ResourceKind) -> Vec<LiveResource> {
        let state = self.state.lock().unwrap();
        state.resources.values().filter(|r| r.region == region && r.kind == kind).cloned().collect()
    }

    fn call(&self, operation: &'static str, region: &str) -> Result<(), CloudError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push((region.to_string(), operation));
        match state.failures.get(&(operation, region.to_string())) {
            Some(code) => Err(aws_error(operation, region, Some(code), "injected failure")),
            None => Ok(()),
        }
    }

    fn create(
        &self,
        region: &str,
        kind: ResourceKind,
        name: Option<String>,
        tags: &BTreeMap<String, String>,
        made: Made,
    ) -> String {
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let prefix = if kind == ResourceKind::Image { "ami" } else { "snap" };
        let id = format!("{prefix}-{:08}", state.next_id);
        let mut snapshot_ids = Vec::new();
        if kind == ResourceKind::Image {
            // Like AWS: every AMI has a snapshot behind it; copies get a new one in their region.
            let snapshot = match &made {
                Made::Registered(r) => r.snapshot_id.clone(),
                _ => format!("snap-copy{:08}", state.next_id),
            };
            snapshot_ids.push(snapshot);
        }
        let description = match &made {
            Made::Registered(r) => r.description.clone(),
            Made::Copied(c) => c.description.clone(),
            Made::Uploaded(_) => None,
        };
        let live = LiveResource {
            region: region.to_string(),
            kind,
            id: id.clone(),
            name,
            state: LiveState::Ready,
            description,
            tags: tags.clone(),
            public: false,
            snapshot_ids,
            created: Some(format!("{:08}", state.next_id)),
            deprecation: None,
            protection: Default::default(),
            sharing: None,
            snapshot_sharing: vec![],
            value: None,
            files: Default::default(),
            size_bytes: None,
        };
        state.resources.insert((region.to_string(), id.clone()), live);
        state.invisible.insert(id.clone(), self.lag);
        state.pending.insert(id.clone(), self.lag);
        state.made.push((region.to_string(), id.clone(), made));
        id
    }

    fn status(
        &self,
        operation: &'static str,
        region: &str,
        id: &str,
        missing: &str,
    ) -> Result<ResourceStatus, CloudError> {
        self.call(operation, region)?;
        let mut state = self.state.lock().unwrap();
        let gone = || aws_error(operation, region, Some(missing), "not found");
        if let Some(left) = state.invisible.get_mut(id).filter(|l| **l > 0) {
            *left -= 1;
            return Err(gone());
        }
        let still_pending = state.pending.get_mut(id).filter(|l| **l > 0).map(|left| *left -= 1).is_some();
        let live = state.resources.get(&(region.to_string(), id.to_string())).ok_or_else(gone)?;
        let state_name = if still_pending { LiveState::Pending } else { live.state.clone() };
        let (snapshot_ids, deprecation) = (live.snapshot_ids.clone(), live.deprecation.clone());
        Ok(ResourceStatus { state: state_name, reason: None, snapshot_ids, deprecation, progress: None })
    }

    fn modify(&self, region: &str, id: &str, change: impl FnOnce(&mut LiveResource)) -> Result<(), CloudError> {
        let mut state = self.state.lock().unwrap();
        match state.resources.get_mut(&(region.to_string(), id.to_string())) {
            Some(live) => {
                change(live);
                Ok(())
            }
            None => Err(aws_error("Modify", region, Some("InvalidID.NotFound"), "not found")),
        }
    }
}

impl Account for FakeCloud {
    async fn account_id(&self) -> Result<String, CloudError> {
        Ok("000000000000".into())
    }

    async fn regions(&self, _via: &str) -> Result<Vec<String>, CloudError> {
        Ok(["us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"].map(String::from).to_vec())
    }

    async fn encryption_by_default(&self, region: &str) -> Result<bool, CloudError> {
        self.call("GetEbsEncryptionByDefault", region)?;
        Ok(false)
    }

    async fn vpc_count(&self, region: &str) -> Result<usize, CloudError> {
        Err(no_builds("DescribeVpcs", region))
    }

    async fn instance_type_zones(&self, region: &str, _instance_type: &str) -> Result<Vec<String>, CloudError> {
        Err(no_builds("DescribeInstanceTypeOfferings", region))
    }

    async fn instance_type_traits(
        &self,
        region: &str,
        _instance_types: &[String],
    ) -> Result<std::collections::BTreeMap<String, amiplan::cloud::InstanceTypeTraits>, CloudError> {
        Err(no_builds("DescribeInstanceTypes", region))
    }

    async fn image_block_public_access(&self, _region: &str) -> Option<amiplan::cloud::PublicAccess> {
        None
    }

    async fn snapshot_block_public_access(&self, _region: &str) -> Option<amiplan::cloud::PublicAccess> {
        None
    }

    async fn public_image_count(&self, region: &str) -> Result<usize, CloudError> {
        self.call("DescribeImages", region)?;
        let state = self.state.lock().unwrap();
        Ok(state.resources.values().filter(|r| r.region == region && r.kind == ResourceKind::Image && r.public).count())
    }

    // The fake plays no Service Quotas: quotas are unknown, as where Service Quotas does not answer.
    async fn quota(&self, _region: &str, _quota: amiplan::cloud::Quota) -> Option<u32> {
        None
    }
}

impl Discovery for FakeCloud {
    async fn discover(&self, region: &str, query: &DiscoveryQuery) -> Result<Vec<LiveResource>, CloudError> {
        self.call("Discover", region)?;
        let state = self.state.lock().unwrap();
        Ok(state
            .resources
            .values()
            .filter(|r| r.region == region)
            .filter(|r| {
                let by_stack = r.tags.get("amiplan:stack").is_some_and(|s| {
                    // As the tag-key filter: parameters and catalogue files are found by stack only.
                    query.stacks.contains(s) || !matches!(r.kind, ResourceKind::Parameter | ResourceKind::CatalogFiles)
                });
                let by_name =
                    r.kind == ResourceKind::Image && r.name.as_ref().is_some_and(|n| query.image_names.contains(n));
                let parameter = r.kind == ResourceKind::Parameter && query.parameter_names.contains(&r.id);
                by_stack || by_name || parameter
            })
            .cloned()
            .map(|mut r| {
                // As Parameter Store's discovery: a parameter's stack (from the tag filter), no
                // other tag.
                if r.kind == ResourceKind::Parameter {
                    r.tags.retain(|key, _| key == "amiplan:stack");
                    // DescribeParameters (by tag) tells the description of owned ones only.
                    if r.tags.is_empty() {
                        r.description = None;
                    }
                }
                r
            })
            .collect())
    }

    async fn stack_images(&self, region: &str, stacks: &[String]) -> Result<Vec<LiveResource>, CloudError> {
        self.call("DescribeImages", region)?;
        let state = self.state.lock().unwrap();
        Ok(state
            .resources
            .values()
            .filter(|r| r.region == region && r.kind == ResourceKind::Image)
            .filter(|r| r.tags.get("amiplan:stack").is_some_and(|s| stacks.contains(s)))
            .cloned()
            .collect())
    }

    async fn launch_template_images(&self, region: &str) -> Result<BTreeMap<String, String>, CloudError> {
        self.call("DescribeLaunchTemplateVersions", region)?;
        Ok(BTreeMap::new())
    }

    async fn newest_image(&self, region: &str, _owner: &str, _name: &str) -> Result<Option<String>, CloudError> {
        Err(no_builds("DescribeImages", region))
    }

    async fn existing_subnet(
        &self,
        region: &str,
        _subnet: &str,
    ) -> Result<Option<amiplan::cloud::ExistingSubnet>, CloudError> {
        Err(no_builds("DescribeSubnets", region))
    }
}

impl Images for FakeCloud {
    async fn register_image(&self, region: &str, image: &ImageRegistration) -> Result<String, CloudError> {
        self.call("RegisterImage", region)?;
        if self.images(region).iter().any(|i| i.name.as_deref() == Some(&image.name)) {
            return Err(aws_error("RegisterImage", region, Some("InvalidAMIName.Duplicate"), "name in use"));
        }
        Ok(self.create(
            region,
            ResourceKind::Image,
            Some(image.name.clone()),
            &image.tags,
            Made::Registered(image.clone()),
        ))
    }

    async fn copy_image(&self, region: &str, copy: &ImageCopy) -> Result<String, CloudError> {
        self.call("CopyImage", region)?;
        {
            let mut state = self.state.lock().unwrap();
            let now = state.copying.entry(region.to_string()).or_default();
            *now += 1;
            let now = *now;
            let most = state.most_copying.entry(region.to_string()).or_default();
            *most = (*most).max(now);
        }
        tokio::time::sleep(self.copy_latency).await;
        *self.state.lock().unwrap().copying.get_mut(region).unwrap() -= 1;
        if self.images(region).iter().any(|i| i.name.as_deref() == Some(&copy.name)) {
            return Err(aws_error("CopyImage", region, Some("InvalidAMIName.Duplicate"), "name in use"));
        }
        Ok(self.create(region, ResourceKind::Image, Some(copy.name.clone()), &copy.tags, Made::Copied(copy.clone())))
    }

    async fn image_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        self.status("DescribeImages", region, id, "InvalidAMIID.NotFound")
    }

    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<String>, CloudError> {
        Ok(self.images(region).into_iter().find(|i| i.name.as_deref() == Some(name)).map(|i| i.id))
    }

    async fn set_image_description(&self, region: &str, id: &str, description: &str) -> Result<(), CloudError> {
        self.call("ModifyImageAttribute", region)?;
        self.modify(region, id, |live| live.description = Some(description.to_string()))
    }

    async fn set_image_deprecation(&self, region: &str, id: &str, at: Option<&str>) -> Result<(), CloudError> {
        self.call(if at.is_some() { "EnableImageDeprecation" } else { "DisableImageDeprecation" }, region)?;
        self.modify(region, id, |live| live.deprecation = at.map(str::to_string))
    }

    async fn set_image_protection(
        &self,
        region: &str,
        id: &str,
        protection: Option<amiplan::cloud::Protection>,
    ) -> Result<(), CloudError> {
        use amiplan::cloud::{LiveProtection, Protection};
        let on = protection.is_some();
        self.call(
            if on { "EnableImageDeregistrationProtection" } else { "DisableImageDeregistrationProtection" },
            region,
        )?;
        self.modify(region, id, |live| {
            live.protection = match (protection, &live.protection) {
                (Some(protection), _) => LiveProtection::On(protection),
                (None, LiveProtection::On(Protection::WithCooldown)) => LiveProtection::CoolingDown { until: None },
                (None, _) => LiveProtection::Off,
            }
        })
    }

    async fn root_device(&self, region: &str, _image: &str) -> Result<amiplan::cloud::RootDevice, CloudError> {
        Err(no_builds("DescribeImages", region))
    }

    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), CloudError> {
        self.call("DeregisterImage", region)?;
        let key = (region.to_string(), id.to_string());
        if self.state.lock().unwrap().resources.get(&key).is_some_and(|live| !live.protection.is_off()) {
            return Err(CloudError::new("DeregisterImage", region, ErrorClass::Fatal, "the AMI is protected"));
        }
        self.state.lock().unwrap().resources.remove(&(region.to_string(), id.to_string()));
        Ok(())
    }
}

impl Snapshots for FakeCloud {
    async fn upload_snapshot(
        &self,
        region: &str,
        upload: &SnapshotUpload,
        _progress: &dyn Progress,
    ) -> Result<String, CloudError> {
        self.call("UploadSnapshot", region)?;
        // As the real upload does: an image not read before planning is read (and its address
        // learned) by its upload.
        if upload.source.blocks().is_none() {
            let mut blocks = Vec::new();
            let read = upload.source.read_blocks(&mut |index, block| {
                blocks.push((index, Sha256::digest(&block).into()));
                Ok(())
            });
            read.map_err(|e| CloudError::new("PutSnapshotBlock", region, ErrorClass::Fatal, e.to_string()))?;
            upload.source.read(blocks);
        }
        Ok(self.create(region, ResourceKind::Snapshot, None, &upload.tags, Made::Uploaded(upload.clone())))
    }

    async fn snapshot_status(&self, region: &str, id: &str) -> Result<ResourceStatus, CloudError> {
        self.status("DescribeSnapshots", region, id, "InvalidSnapshot.NotFound")
    }

    async fn encrypt_snapshot(
        &self,
        region: &str,
        _source: &str,
        _kms_key: Option<&str>,
        _description: &str,
        _tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        Err(no_builds("CopySnapshot", region))
    }

    async fn snapshot_volume(
        &self,
        region: &str,
        _volume: &str,
        _description: &str,
        _tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        Err(no_builds("CreateSnapshot", region))
    }

    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), CloudError> {
        self.call("DeleteSnapshot", region)?;
        self.state.lock().unwrap().resources.remove(&(region.to_string(), id.to_string()));
        Ok(())
    }
}

impl Permissions for FakeCloud {
    async fn image_sharing(&self, region: &str, id: &str) -> Result<Sharing, CloudError> {
        self.call("DescribeImageAttribute", region)?;
        let state = self.state.lock().unwrap();
        let live = state.resources.get(&(region.to_string(), id.to_string()));
        Ok(live
            .map(|l| l.sharing.clone().unwrap_or(Sharing { public: l.public, ..Sharing::default() }))
            .unwrap_or_default())
    }

    async fn change_image_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        self.call("ModifyImageAttribute", region)?;
        self.modify(region, id, |live| {
            let have = live.sharing.clone().unwrap_or(Sharing { public: live.public, ..Sharing::default() });
            let now = changed(&have, add, remove);
            live.public = now.public;
            live.sharing = Some(now);
        })
    }

    async fn snapshot_sharing(&self, region: &str, id: &str) -> Result<Sharing, CloudError> {
        self.call("DescribeSnapshotAttribute", region)?;
        let state = self.state.lock().unwrap();
        Ok(state.snapshot_sharing.get(&(region.to_string(), id.to_string())).cloned().unwrap_or_default())
    }

    async fn change_snapshot_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        self.call("ModifySnapshotAttribute", region)?;
        let mut state = self.state.lock().unwrap();
        let have = state.snapshot_sharing.entry((region.to_string(), id.to_string())).or_default();
        *have = changed(have, add, remove);
        Ok(())
    }
}

impl FakeCloud {
    /// The objects of `bucket`, by key.
    pub fn objects(&self, bucket: &str) -> BTreeMap<String, Vec<u8>> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .filter(|((b, _), _)| b == bucket)
            .map(|((_, k), (body, _))| (k.clone(), body.clone()))
            .collect()
    }

    /// Puts an object as someone else would: untagged.
    pub fn put_foreign_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let mut state = self.state.lock().unwrap();
        state.objects.insert((bucket.to_string(), key.to_string()), (body.to_vec(), BTreeMap::new()));
    }
}

impl Objects for FakeCloud {
    async fn list_objects(&self, region: &str, bucket: &str, prefix: &str) -> Result<Vec<StoredObject>, CloudError> {
        self.call("ListObjectsV2", region)?;
        let state = self.state.lock().unwrap();
        Ok(state
            .objects
            .iter()
            .filter(|((b, key), _)| b == bucket && key.starts_with(prefix))
            .map(|((_, key), (body, _))| StoredObject {
                key: key.clone(),
                etag: amiplan::resource::catalog_files::etag(body),
            })
            .collect())
    }

    async fn put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &[u8],
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        self.call("PutObject", region)?;
        let mut state = self.state.lock().unwrap();
        state.objects.insert((bucket.to_string(), key.to_string()), (body.to_vec(), tags.clone()));
        Ok(amiplan::resource::catalog_files::etag(body))
    }

    async fn object_tags(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CloudError> {
        self.call("GetObjectTagging", region)?;
        let state = self.state.lock().unwrap();
        Ok(state.objects.get(&(bucket.to_string(), key.to_string())).map(|(_, tags)| tags.clone()))
    }

    async fn presign_put(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String, CloudError> {
        self.call("PresignPutObject", region)?;
        Ok(format!("https://{bucket}.s3.{region}.amazonaws.com/{key}?expires={}", expires_in.as_secs()))
    }

    async fn get_object(&self, region: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        self.call("GetObject", region)?;
        let state = self.state.lock().unwrap();
        Ok(state.objects.get(&(bucket.to_string(), key.to_string())).map(|(body, _)| body.clone()))
    }

    async fn delete_object(&self, region: &str, bucket: &str, key: &str) -> Result<(), CloudError> {
        self.call("DeleteObject", region)?;
        self.state.lock().unwrap().objects.remove(&(bucket.to_string(), key.to_string()));
        Ok(())
    }
}

impl Parameters for FakeCloud {
    async fn put_image_parameter(&self, region: &str, parameter: &ImageParameter) -> Result<i64, CloudError> {
        self.call("PutParameter", region)?;
        let mut state = self.state.lock().unwrap();
        let key = (region.to_string(), parameter.name.clone());
        let image = (region.to_string(), parameter.value.clone());
        let available = state.resources.get(&image).is_some_and(|i| i.kind == ResourceKind::Image);
        if !available {
            // As Parameter Store: aws:ec2:image is checked after the answer; a value that is no
            // AMI of the region is never stored.
            return Ok(state.parameter_versions.get(&key).copied().unwrap_or(0) + 1);
        }
        match state.resources.get_mut(&key) {
            Some(_) if !parameter.overwrite => {
                return Err(aws_error("PutParameter", region, Some("ParameterAlreadyExists"), "exists"));
            }
            Some(live) => {
                live.value = Some(parameter.value.clone());
                live.description = parameter.description.clone();
            }
            None => {
                let tags = parameter.tags.clone();
                let mut live =
                    LiveResource::new(region, ResourceKind::Parameter, &parameter.name, LiveState::Ready, tags);
                live.name = Some(parameter.name.clone());
                live.value = Some(parameter.value.clone());
                live.description = parameter.description.clone();
                state.resources.insert(key.clone(), live);
            }
        }
        let version = state.parameter_versions.entry(key).or_default();
        *version += 1;
        Ok(*version)
    }

    async fn parameters_under(&self, region: &str, path: &str) -> Result<Vec<LiveResource>, CloudError> {
        self.call("GetParametersByPath", region)?;
        let state = self.state.lock().unwrap();
        let under = format!("{}/", path.trim_end_matches('/'));
        Ok(state
            .resources
            .values()
            .filter(|r| r.region == region && r.kind == ResourceKind::Parameter && r.id.starts_with(&under))
            .map(|r| {
                let mut found = r.clone();
                found.tags.clear();
                found
            })
            .collect())
    }

    async fn parameter(&self, region: &str, name: &str) -> Result<Option<(String, i64)>, CloudError> {
        self.call("GetParameter", region)?;
        let state = self.state.lock().unwrap();
        let key = (region.to_string(), name.to_string());
        let version = state.parameter_versions.get(&key).copied().unwrap_or(1);
        Ok(state.resources.get(&key).and_then(|live| Some((live.value.clone()?, version))))
    }

    async fn tag_parameter(&self, region: &str, name: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        self.call("AddTagsToResource", region)?;
        let mut state = self.state.lock().unwrap();
        if let Some(live) = state.resources.get_mut(&(region.to_string(), name.to_string())) {
            live.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn delete_parameter(&self, region: &str, name: &str) -> Result<(), CloudError> {
        self.call("DeleteParameter", region)?;
        self.state.lock().unwrap().resources.remove(&(region.to_string(), name.to_string()));
        Ok(())
    }
}

impl Tagging for FakeCloud {
    async fn set_tags(&self, region: &str, ids: &[String], tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        self.call("CreateTags", region)?;
        for id in ids {
            // The fake does not track the snapshots behind copies: tagging them changes nothing.
            let _ = self.modify(region, id, |live| live.tags.extend(tags.clone()));
        }
        Ok(())
    }

    async fn remove_tags(&self, region: &str, ids: &[String], keys: &[String]) -> Result<(), CloudError> {
        self.call("DeleteTags", region)?;
        for id in ids {
            self.modify(region, id, |live| live.tags.retain(|k, _| !keys.contains(k)))?;
        }
        Ok(())
    }
}

// Helper builds are verified against moto behind the fault proxy (tests/integration/helper.rs),
// not here: the fake answers them with an error so that a test reaching them by mistake fails.
impl BuildHosts for FakeCloud {
    async fn default_subnet(&self, region: &str, _zones: &[String]) -> Result<Option<String>, CloudError> {
        Err(no_builds("DescribeSubnets", region))
    }

    async fn subnet_placement(&self, region: &str, _subnet: &str) -> Result<Placement, CloudError> {
        Err(no_builds("DescribeSubnets", region))
    }

    async fn create_build_resource(
        &self,
        region: &str,
        _resource: &BuildResource,
        _tags: &BTreeMap<String, String>,
        _client_token: &str,
    ) -> Result<String, CloudError> {
        Err(no_builds("Create", region))
    }

    async fn launch_helper(&self, region: &str, _launch: &HelperLaunch) -> Result<String, CloudError> {
        Err(no_builds("RunInstances", region))
    }

    async fn attach_volume(
        &self,
        region: &str,
        _volume: &str,
        _instance: &str,
        _device: &str,
    ) -> Result<(), CloudError> {
        Err(no_builds("AttachVolume", region))
    }

    async fn instance_status(&self, region: &str, _id: &str) -> Result<ResourceStatus, CloudError> {
        Err(no_builds("DescribeInstances", region))
    }

    async fn console_output(&self, region: &str, _id: &str) -> Result<String, CloudError> {
        Err(no_builds("GetConsoleOutput", region))
    }

    async fn delete_build_resource(&self, region: &str, _kind: ResourceKind, _id: &str) -> Result<(), CloudError> {
        Err(no_builds("Delete", region))
    }
}

impl Locks for FakeCloud {
    async fn try_lock(
        &self,
        region: &str,
        name: &str,
        holder: &BTreeMap<String, String>,
    ) -> Result<Option<HeldLock>, CloudError> {
        self.call("CreateKeyPair", region)?;
        let mut state = self.state.lock().unwrap();
        let key = (region.to_string(), name.to_string());
        if let Some(other) = state.locks.get(&key) {
            return Ok(Some(HeldLock { id: Some(name.to_string()), labels: other.clone() }));
        }
        state.locks.insert(key, holder.clone());
        Ok(None)
    }

    async fn relabel_lock(
        &self,
        region: &str,
        name: &str,
        key: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, CloudError> {
        self.call("CreateTags", region)?;
        let mut state = self.state.lock().unwrap();
        match state.locks.get_mut(&(region.to_string(), name.to_string())) {
            Some(held) if held.get(key) == labels.get(key) => {
                *held = labels.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn break_lock(&self, region: &str, name: &str, held: &HeldLock) -> Result<(), CloudError> {
        self.call("DeleteKeyPair", region)?;
        let mut state = self.state.lock().unwrap();
        let key = (region.to_string(), name.to_string());
        if state.locks.get(&key) == Some(&held.labels) {
            state.locks.remove(&key);
        }
        Ok(())
    }

    async fn unlock(&self, region: &str, name: &str) -> Result<(), CloudError> {
        self.call("DeleteKeyPair", region)?;
        self.state.lock().unwrap().locks.remove(&(region.to_string(), name.to_string()));
        Ok(())
    }
}

/// `have` with `remove` revoked and `add` granted, as ModifyImageAttribute and
/// ModifySnapshotAttribute apply them.
fn changed(have: &Sharing, add: &Sharing, remove: &Sharing) -> Sharing {
    let mut now = have.minus(remove);
    now.public |= add.public;
    now.accounts.extend(add.accounts.iter().cloned());
    now.organizations.extend(add.organizations.iter().cloned());
    now.organizational_units.extend(add.organizational_units.iter().cloned());
    now
}

fn no_builds(operation: &'static str, region: &str) -> CloudError {
    CloudError::new(operation, region, ErrorClass::Fatal, "the in-process fake does not model helper builds")
}
