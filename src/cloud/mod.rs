//! The one seam between amiplan and a cloud: discover, create, wait and delete per resource kind.
//! `aws` implements it with the AWS SDK; nothing else in the crate imports `aws_sdk_*`.

pub mod aws;
mod error;
pub mod retry;
mod upload;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

pub use error::{CloudError, ErrorClass};

use crate::model::ImageAttrs;
use crate::observe::LiveResource;

/// What to look for in one region: everything tagged with one of `stacks`, plus AMIs with one of
/// `image_names` (an AMI registered just before a crash may carry no tags yet).
#[derive(Debug, Clone, Default)]
pub struct DiscoveryQuery {
    pub stacks: Vec<String>,
    pub image_names: Vec<String>,
}

/// State of an AMI or snapshot as a wait sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    /// AWS's own word: `pending`, `available`, `completed`, `failed`, `error`, …
    pub state: String,
    /// Why it failed, when AWS says.
    pub reason: Option<String>,
    /// For AMIs: the snapshots behind their block devices.
    pub snapshot_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SnapshotUpload {
    pub source: PathBuf,
    pub size_bytes: u64,
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

/// A cloud amiplan can reconcile against. Every method is one logical operation in one region;
/// implementations retry throttling and transient faults themselves (see [`retry`]).
///
/// Guarantees expected of implementations: creates tag at creation where the API allows it,
/// deletes of something already gone succeed, and no method logs credentials.
pub trait Cloud: Sync {
    /// The account the credentials belong to.
    fn account_id(&self) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Every region enabled for the account, asked in `via`.
    fn regions(&self, via: &str) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
    /// Owned AMIs and snapshots matching `query`: one paginated Describe per kind (and per filter).
    fn discover(
        &self,
        region: &str,
        query: &DiscoveryQuery,
    ) -> impl Future<Output = Result<Vec<LiveResource>, CloudError>> + Send;

    /// Uploads a local raw image into a new snapshot; returns its ID once the upload is complete
    /// (the snapshot may still be `pending`).
    fn upload_snapshot(
        &self,
        region: &str,
        upload: &SnapshotUpload,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn snapshot_status(
        &self,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<ResourceStatus, CloudError>> + Send;
    fn delete_snapshot(&self, region: &str, id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

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
    fn set_image_public(
        &self,
        region: &str,
        id: &str,
        public: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    fn deregister_image(&self, region: &str, id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

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

    /// Atomically creates the lock `name` in `region`, labelled with `holder`. Returns `None` when
    /// this call took it, or the current holder's labels when someone else holds it.
    fn try_lock(
        &self,
        region: &str,
        name: &str,
        holder: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, CloudError>> + Send;
    /// Removes the lock `name`; removing a lock that does not exist succeeds.
    fn unlock(&self, region: &str, name: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
