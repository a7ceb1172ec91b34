//! The one seam between amiplan and a cloud, split by capability: the account, discovery,
//! images, snapshots, sharing, tags, build hosts and locks. `aws` implements every capability
//! with the AWS SDK; nothing else in the crate imports `aws_sdk_*`, knows an AWS error code or
//! reads an AWS state word. This module is a leaf: it knows nothing of manifests, graphs or
//! plans.

pub mod attrs;
pub mod aws;
mod blocks;
mod error;
mod instance_types;
mod live;
pub mod needs;
mod progress;
pub mod retry;
mod sharing;
pub mod tags;

use std::collections::BTreeMap;
use std::future::Future;

pub use attrs::{ImageAttrs, Protection, VolumeType};
pub use blocks::{BlockDigest, BlockSource, EBS_BLOCK_SIZE};
pub use error::{Cause, CloudError, ErrorClass};
pub use instance_types::{Ena, InstanceTypeTraits};
pub use live::{LiveProtection, LiveResource, PublicAccess, ResourceKind, State};
pub use progress::{NoProgress, Progress};
pub use sharing::Sharing;

/// What to look for in one region: everything tagged with one of `stacks`, plus AMIs with one of
/// `image_names` (an AMI registered just before a crash may carry no tags yet).
#[derive(Debug, Clone, Default)]
pub struct DiscoveryQuery {
    pub stacks: Vec<String>,
    pub image_names: Vec<String>,
    /// Also look for the transient resources of helper builds (network, volume, instance).
    pub build_resources: bool,
    /// Parameters to read whoever owns them (those the manifests want): an existing one that is
    /// not owned must not be overwritten unasked.
    pub parameter_names: Vec<String>,
}

/// A Parameter Store parameter holding an AMI ID (`DataType: aws:ec2:image`).
#[derive(Debug, Clone)]
pub struct ImageParameter {
    pub name: String,
    /// The AMI ID.
    pub value: String,
    pub description: Option<String>,
    /// Set when the parameter is created; an existing one keeps its tags.
    pub tags: BTreeMap<String, String>,
    /// Replace the value of an existing parameter.
    pub overwrite: bool,
}

/// State of an AMI, snapshot or instance as a wait sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    pub state: State,
    /// Why it failed, when AWS says.
    pub reason: Option<String>,
    /// For AMIs: the snapshots behind their block devices.
    pub snapshot_ids: Vec<String>,
    /// For AMIs: when AWS deprecates them (RFC 3339), as discovery reports it.
    pub deprecation: Option<String>,
    /// How far AWS says it has got, where it says (a snapshot's `Progress`, e.g. `45%`).
    pub progress: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SnapshotUpload {
    /// The image, as inspected: its blocks with data and their digests.
    pub source: std::sync::Arc<dyn BlockSource>,
    /// How progress names this upload (the node's ID).
    pub label: String,
    pub volume_size_gib: u32,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub client_token: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct ImageRegistration {
    pub name: String,
    pub description: Option<String>,
    pub attrs: ImageAttrs,
    pub snapshot_id: String,
    pub volume_size_gib: u32,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct ImageCopy {
    pub name: String,
    pub description: Option<String>,
    pub source_region: String,
    pub source_image_id: String,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub client_token: String,
}

/// A transient resource of a helper build. Each is created tagged; a route table comes with its
/// default route and subnet association, an internet gateway attached to its VPC.
#[derive(Debug, Clone)]
pub enum BuildResource {
    Vpc {
        cidr: String,
    },
    Subnet {
        vpc: String,
        cidr: String,
        /// Where the helper's instance type is offered (AWS picks a zone when `None`).
        availability_zone: Option<String>,
    },
    InternetGateway {
        vpc: String,
    },
    RouteTable {
        vpc: String,
        subnet: String,
        gateway: String,
    },
    /// No inbound rules at all; AWS's default egress rule only.
    SecurityGroup {
        vpc: String,
        name: String,
        description: String,
    },
    Volume {
        availability_zone: String,
        size_gib: u32,
        volume_type: VolumeType,
        encrypted: bool,
        kms_key: Option<String>,
    },
}

/// Where a subnet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub vpc: String,
    pub availability_zone: String,
}

/// A helper instance to launch: IMDSv2 only, no key pair, user-data carrying the job.
#[derive(Debug, Clone)]
pub struct HelperLaunch {
    pub image_id: String,
    pub instance_type: String,
    pub subnet: String,
    pub security_group: String,
    pub user_data: String,
    pub spot: bool,
    /// Ask for a public IPv4 address, whatever the subnet maps: an instance in a subnet that
    /// maps none has no way out through an internet gateway without one.
    pub public_address: bool,
    /// The root volume, when it must be larger than the AMI's own.
    pub root_volume: Option<RootDevice>,
    pub tags: BTreeMap<String, String>,
    pub client_token: String,
}

/// A stack lock as found: which one exactly, and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub id: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// An existing subnet: its zone and where its default route leads, if it leads out of the VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSubnet {
    pub availability_zone: String,
    pub route_out: Option<RouteOut>,
}

/// Where a subnet's default route leads out of its VPC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteOut {
    /// An internet gateway attached to the VPC (its ID): instances need a public address.
    InternetGateway(String),
    /// A NAT gateway (its ID): private addresses get out through it.
    Nat(String),
}

/// An AMI's root device: its name and the size of the snapshot behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDevice {
    pub name: String,
    pub size_gib: u32,
}

/// The account and what it allows, region by region.
pub trait Account: Sync {
    /// The account the credentials belong to.
    fn account_id(&self) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Every region enabled for the account, asked in `via`.
    fn regions(&self, via: &str) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
    /// Whether the account encrypts every new volume and snapshot in the region by default.
    fn encryption_by_default(&self, region: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;
    /// How many VPCs the account has in the region.
    fn vpc_count(&self, region: &str) -> impl Future<Output = Result<usize, CloudError>> + Send;
    /// The Availability Zones of the region that offer the instance type, sorted.
    fn instance_type_zones(
        &self,
        region: &str,
        instance_type: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
    /// What each of `instance_types` can launch, for those EC2 knows in the region: one
    /// paginated DescribeInstanceTypes, filtered by type (a type EC2 does not know is left out).
    fn instance_type_traits(
        &self,
        region: &str,
        instance_types: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, InstanceTypeTraits>, CloudError>> + Send;
    /// The account's image block public access setting in the region, or `None` where the API
    /// does not answer it.
    fn image_block_public_access(&self, region: &str) -> impl Future<Output = Option<PublicAccess>> + Send;
    /// The account's snapshot block public access setting in the region, or `None` where the
    /// API does not answer it.
    fn snapshot_block_public_access(&self, region: &str) -> impl Future<Output = Option<PublicAccess>> + Send;
    /// How many public AMIs the account owns in the region, amiplan's or not.
    fn public_image_count(&self, region: &str) -> impl Future<Output = Result<usize, CloudError>> + Send;
    /// The account's `quota` in the region (its applied value, or the default where none
    /// applies), or `None` where Service Quotas does not answer.
    fn quota(&self, region: &str, quota: Quota) -> impl Future<Output = Option<u32>> + Send;
}

/// A quota of the account's that a plan is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Public AMIs per region.
    PublicImages,
    /// VPCs per region.
    Vpcs,
    /// Accounts, organizations and OUs one AMI may be shared with, per region.
    ImageSharing,
}

/// Finding what exists.
pub trait Discovery: Sync {
    /// Owned AMIs and snapshots matching `query`: one paginated Describe per kind (and per filter).
    fn discover(
        &self,
        region: &str,
        query: &DiscoveryQuery,
    ) -> impl Future<Output = Result<Vec<LiveResource>, CloudError>> + Send;
    /// Owned AMIs tagged with one of `stacks`: one paginated DescribeImages.
    fn stack_images(
        &self,
        region: &str,
        stacks: &[String],
    ) -> impl Future<Output = Result<Vec<LiveResource>, CloudError>> + Send;
    /// AMIs that the latest or default version of a launch template of the account uses, with the
    /// template's name.
    fn launch_template_images(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, CloudError>> + Send;
    /// The newest AMI owned by `owner` (an account, `self` or `amazon`) whose name matches
    /// `name_pattern`, if any.
    fn newest_image(
        &self,
        region: &str,
        owner: &str,
        name_pattern: &str,
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
    /// An existing subnet as a helper or boot test would use it (`None` when it does not exist;
    /// asked without waiting, unlike [`BuildHosts::subnet_placement`] of a subnet just made).
    fn existing_subnet(
        &self,
        region: &str,
        subnet: &str,
    ) -> impl Future<Output = Result<Option<ExistingSubnet>, CloudError>> + Send;
}

/// AMIs: registration, copies, their attributes and their end.
pub trait Images: Sync {
    fn register_image(
        &self,
        region: &str,
        image: &ImageRegistration,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn copy_image(&self, region: &str, copy: &ImageCopy) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn image_status(&self, region: &str, id: &str) -> impl Future<Output = Result<ResourceStatus, CloudError>> + Send;
    /// The ID of the AMI with this name owned by the account, if any (used on name conflicts).
    fn find_image_by_name(
        &self,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
    fn set_image_description(
        &self,
        region: &str,
        id: &str,
        description: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Deprecates the AMI at `at` (RFC 3339), or cancels its deprecation when `None`.
    fn set_image_deprecation(
        &self,
        region: &str,
        id: &str,
        at: Option<&str>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Turns the AMI's deregistration protection on as `protection` says, or lifts it when
    /// `None` (with a cooldown, AWS then refuses deregistration for 24 hours).
    fn set_image_protection(
        &self,
        region: &str,
        id: &str,
        protection: Option<Protection>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// The root device of any AMI the account can see (the helper's base AMI).
    fn root_device(&self, region: &str, image: &str) -> impl Future<Output = Result<RootDevice, CloudError>> + Send;
    fn deregister_image(&self, region: &str, id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// EBS snapshots: direct uploads, copies, snapshots of volumes.
pub trait Snapshots: Sync {
    /// Uploads a local image into a new snapshot; returns its ID once the upload is complete
    /// (the snapshot may still be `pending`). The bytes sent are reported to `progress`.
    fn upload_snapshot(
        &self,
        region: &str,
        upload: &SnapshotUpload,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn snapshot_status(
        &self,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<ResourceStatus, CloudError>> + Send;
    /// An encrypted copy of a snapshot in the same region (with `kms_key`, or the default EBS
    /// key), tagged at creation; returns the copy's ID.
    fn encrypt_snapshot(
        &self,
        region: &str,
        source: &str,
        kms_key: Option<&str>,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Snapshots a volume, tagged at creation; returns the snapshot's ID.
    fn snapshot_volume(
        &self,
        region: &str,
        volume: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Deletes a snapshot; one already gone is deleted. One still used by an AMI being
    /// deregistered fails with [`ErrorClass::InUse`].
    fn delete_snapshot(&self, region: &str, id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Who may launch an AMI and create volumes from its snapshots.
pub trait Permissions: Sync {
    /// Who may launch the AMI (DescribeImageAttribute launchPermission).
    fn image_sharing(&self, region: &str, id: &str) -> impl Future<Output = Result<Sharing, CloudError>> + Send;
    /// Grants `add` and revokes `remove` launch permissions.
    fn change_image_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Who may create volumes from the snapshot (accounts and `public`).
    fn snapshot_sharing(&self, region: &str, id: &str) -> impl Future<Output = Result<Sharing, CloudError>> + Send;
    fn change_snapshot_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Tags on any resource.
pub trait Tagging: Sync {
    /// Adds or overwrites tags on any resources of the region.
    fn set_tags(
        &self,
        region: &str,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    fn remove_tags(
        &self,
        region: &str,
        ids: &[String],
        keys: &[String],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// What helper builds and boot tests run on: networks, volumes, instances and their consoles.
pub trait BuildHosts: Sync {
    /// A default subnet of the region's default VPC in one of `zones` (any zone when empty), if
    /// it has one.
    fn default_subnet(
        &self,
        region: &str,
        zones: &[String],
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
    fn subnet_placement(
        &self,
        region: &str,
        subnet: &str,
    ) -> impl Future<Output = Result<Placement, CloudError>> + Send;
    /// Creates a transient resource, tagged at creation. `client_token` goes with the APIs that
    /// take one (CreateVolume, CreateRouteTable); the others are made safe by their tags: before
    /// a retry, what a lost answer made is found by its `amiplan:node` tag and adopted.
    fn create_build_resource(
        &self,
        region: &str,
        resource: &BuildResource,
        tags: &BTreeMap<String, String>,
        client_token: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn launch_helper(
        &self,
        region: &str,
        launch: &HelperLaunch,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn attach_volume(
        &self,
        region: &str,
        volume: &str,
        instance: &str,
        device: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// State of an instance with AWS's reason.
    fn instance_status(
        &self,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<ResourceStatus, CloudError>> + Send;
    fn console_output(&self, region: &str, id: &str) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Deletes a transient resource (an instance is terminated; a gateway detached first; a route
    /// table disassociated first). Deleting something already gone succeeds; a resource still in
    /// use fails with [`ErrorClass::InUse`] (or [`ErrorClass::NotReady`]) for the caller to wait
    /// out.
    fn delete_build_resource(
        &self,
        region: &str,
        kind: ResourceKind,
        id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Parameter Store parameters naming AMIs: what `resolve:ssm:` and CloudFormation read.
pub trait Parameters: Sync {
    /// Writes the parameter, without waiting for Parameter Store to accept its value; returns
    /// the version written. Creating one that exists fails with [`ErrorClass::Duplicate`].
    fn put_image_parameter(
        &self,
        region: &str,
        parameter: &ImageParameter,
    ) -> impl Future<Output = Result<i64, CloudError>> + Send;
    /// Every parameter under `path` (recursively), whoever owns it, with its value: one
    /// paginated GetParametersByPath.
    fn parameters_under(
        &self,
        region: &str,
        path: &str,
    ) -> impl Future<Output = Result<Vec<LiveResource>, CloudError>> + Send;
    /// The parameter's value and version, or `None` when it does not exist.
    fn parameter(
        &self,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<(String, i64)>, CloudError>> + Send;
    fn tag_parameter(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Deletes the parameter; one already gone is deleted.
    fn delete_parameter(&self, region: &str, name: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// One object of a bucket as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    /// The entity tag without quotes: the MD5 of the content for objects written in one part
    /// without SSE-KMS.
    pub etag: String,
}

/// S3 objects: the catalogue files amiplan publishes to a bucket.
pub trait Objects: Sync {
    /// Every object under `prefix` (ListObjectsV2, paginated).
    fn list_objects(
        &self,
        region: &str,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<StoredObject>, CloudError>> + Send;
    /// Writes one object in one part, tagged (its MD5 sent for S3 to check); returns its etag.
    fn put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &[u8],
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// The object's tags; `None` when it is gone.
    fn object_tags(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, CloudError>> + Send;
    /// A URL that lets whoever holds it PUT one object at `key` until `expires_in` has passed,
    /// signed with amiplan's credentials (no call is made).
    fn presign_put(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// The object's content; `None` when there is none.
    fn get_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, CloudError>> + Send;
    /// Deletes the object; one already gone is deleted.
    fn delete_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Stack locks: one named, labelled marker per region that only one run can create.
pub trait Locks: Sync {
    /// Atomically creates the lock `name` in `region`, labelled with `holder`. Returns `None` when
    /// this call took it, or the lock that exists (possibly this run's own, when an earlier
    /// answer was lost); its labels are empty when it vanished between the two calls.
    fn try_lock(
        &self,
        region: &str,
        name: &str,
        holder: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Option<HeldLock>, CloudError>> + Send;
    /// Relabels the lock `name` (renewing its lease), if it is still the one with `labels[key]`.
    /// Returns false when the lock is gone or held by someone else.
    fn relabel_lock(
        &self,
        region: &str,
        name: &str,
        key: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;
    /// Removes the lock `name` if it is still exactly `held` (the same ID: a lock taken
    /// meanwhile under the same name stays); removing one that is gone succeeds.
    fn break_lock(
        &self,
        region: &str,
        name: &str,
        held: &HeldLock,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Removes the lock `name`; removing a lock that does not exist succeeds.
    fn unlock(&self, region: &str, name: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// A cloud amiplan can reconcile against: every capability. Every method is one logical
/// operation in one region; implementations retry throttling and transient faults themselves
/// (see [`retry`]).
///
/// Guarantees expected of implementations: creates tag at creation where the API allows it,
/// deletes of something already gone succeed, and no method logs credentials.
pub trait Cloud:
    Account + Discovery + Images + Snapshots + Permissions + Tagging + BuildHosts + Locks + Parameters + Objects
{
}

impl<T: Account + Discovery + Images + Snapshots + Permissions + Tagging + BuildHosts + Locks + Parameters + Objects>
    Cloud for T
{
}
