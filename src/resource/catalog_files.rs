//! A stack's catalogue files in an S3 bucket (`catalog.s3`): the same tree `amiplan catalog`
//! writes, under one prefix, published after the stack's AMIs and parameters in the same apply.
//!
//! The files are one resource: they are read with one listing (whose entity tags are the MD5
//! of each file, for objects written in one part without SSE-KMS), compared file by file, and
//! written whole. Each object is tagged with its node; only objects so tagged are ever deleted.
//! As in a local tree, a version's file is written once, and the index is written last.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use super::steps::{StepError, Steps};
use super::{AttrDiff, Attribute, Node, Pairs};
use crate::cloud::{CloudError, LiveResource, Objects, ResourceKind, State, StoredObject};
use crate::tags;

pub const TRANSIENT: bool = false;

/// The paths of the tree that every stack's catalogue has, whatever its AMIs.
pub const INDEX: &str = "streams/v1/index.json";
pub const FLAT: &str = "amis.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFiles {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

/// The node of a stack's files at `s3://bucket/prefix` (in the bucket's region).
pub fn node_id(bucket: &str, prefix: &str, region: &str) -> String {
    format!("catalog-files/s3://{bucket}/{prefix}@{region}")
}

/// How the files' live resource is named.
pub fn live_id(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}")
}

/// The bucket and prefix of a live ID.
pub fn location(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// Whether `path` is one amiplan writes for `stack`: only these are compared or removed.
pub fn in_layout(stack: &str, path: &str) -> bool {
    path == INDEX
        || path == FLAT
        || path == products_path(stack)
        || path.strip_prefix(&format!("streams/{stack}/")).is_some_and(|rest| rest.ends_with(".json"))
        || path.strip_prefix(&format!("versions/{stack}/")).is_some_and(|rest| rest.ends_with(".json"))
}

/// The simplestreams products file of `stack`.
pub fn products_path(stack: &str) -> String {
    format!("streams/v1/amiplan:{stack}:aws.json")
}

/// The entity tag S3 gives a file written in one part without SSE-KMS.
pub fn etag(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

impl CatalogFiles {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("bucket", self.bucket.clone()), ("prefix", self.prefix.clone())]
    }

    /// Renders the stack's catalogue as it is now and writes what differs; removes the files
    /// of versions that are gone.
    pub(super) async fn publish<S: Steps>(&self, steps: &S, node: &Node) -> Result<String, StepError> {
        let files = steps.catalogue_files(&node.stack).await?;
        let region = node.region.as_str();
        let cloud = steps.cloud();
        let live = self.listing(steps, region).await?;
        let diffs = file_diffs(&node.stack, &files, &live);
        let tags = object_tags(node);
        // The index last: a reader that finds it finds everything it names.
        let mut writes: Vec<&str> = diffs.iter().filter(|d| d.after.is_some()).filter_map(file_of).collect();
        writes.sort_by_key(|path| *path == INDEX);
        for path in writes {
            let Some(bytes) = files.get(path) else { continue };
            let key = format!("{}{path}", self.prefix);
            cloud.put_object(region, &self.bucket, &key, bytes, &tags).await?;
        }
        for diff in diffs.iter().filter(|d| d.after.is_none()) {
            let Some(path) = file_of(diff) else { continue };
            self.remove_if_ours(steps, node, path).await?;
        }
        Ok(live_id(&self.bucket, &self.prefix))
    }

    async fn listing<S: Steps>(&self, steps: &S, region: &str) -> Result<BTreeMap<String, String>, CloudError> {
        Ok(self.relative(steps.cloud().list_objects(region, &self.bucket, &self.prefix).await?))
    }

    /// A listing of the prefix as paths under it → entity tags.
    pub fn relative(&self, objects: Vec<StoredObject>) -> BTreeMap<String, String> {
        objects
            .into_iter()
            .filter_map(|object| Some((object.key.strip_prefix(&self.prefix)?.to_string(), object.etag)))
            .collect()
    }

    async fn remove_if_ours<S: Steps>(&self, steps: &S, node: &Node, path: &str) -> Result<(), CloudError> {
        let key = format!("{}{path}", self.prefix);
        let cloud = steps.cloud();
        let owner = cloud.object_tags(&node.region, &self.bucket, &key).await?;
        if owner.as_ref().and_then(|t| t.get(tags::NODE)) == Some(&node.id) {
            cloud.delete_object(&node.region, &self.bucket, &key).await?;
        }
        Ok(())
    }
}

/// The tags of every object: who owns it, and nothing else (S3 allows ten per object).
fn object_tags(node: &Node) -> BTreeMap<String, String> {
    node.desired_tags()
        .into_iter()
        .filter(|(key, _)| [tags::STACK, tags::NODE, tags::SPEC].contains(&key.as_str()))
        .collect()
}

fn file_of(diff: &AttrDiff) -> Option<&str> {
    match &diff.attribute {
        Attribute::File(path) => Some(path),
        _ => None,
    }
}

/// The files that differ between what was rendered and what is live (path → entity tag),
/// among those in the stack's layout: written (`after` is the new entity tag) or removed
/// (`after` is `None`). A version's file that exists is never rewritten.
pub fn file_diffs(stack: &str, files: &BTreeMap<String, Vec<u8>>, live: &BTreeMap<String, String>) -> Vec<AttrDiff> {
    let mut diffs = Vec::new();
    for (path, bytes) in files {
        let after = etag(bytes);
        let before = live.get(path);
        let written_once = path.starts_with("versions/") && before.is_some();
        if before != Some(&after) && !written_once {
            diffs.push(AttrDiff {
                attribute: Attribute::File(path.clone()),
                before: before.cloned(),
                after: Some(after),
            });
        }
    }
    for (path, before) in live {
        if in_layout(stack, path) && !files.contains_key(path) {
            diffs.push(AttrDiff {
                attribute: Attribute::File(path.clone()),
                before: Some(before.clone()),
                after: None,
            });
        }
    }
    diffs
}

/// The files' live resource as discovery makes it from the files amiplan wrote under the
/// prefix (path → entity tag); none means there is nothing.
pub fn from_listing(node: &Node, spec: &CatalogFiles, owned: BTreeMap<String, String>) -> Option<LiveResource> {
    if owned.is_empty() {
        return None;
    }
    let id = live_id(&spec.bucket, &spec.prefix);
    let mut live = LiveResource::new(&node.region, ResourceKind::CatalogFiles, &id, State::Ready, object_tags(node));
    live.files = owned;
    Some(live)
}

/// Removes every object under the files' prefix tagged as this node's.
pub(super) async fn delete<S: Steps>(steps: &S, region: &str, id: &str) -> Result<(), CloudError> {
    let Some((bucket, prefix)) = location(id) else { return Ok(()) };
    let node = node_id(bucket, prefix, region);
    let cloud = steps.cloud();
    let mut keys: Vec<String> = cloud.list_objects(region, bucket, prefix).await?.into_iter().map(|o| o.key).collect();
    // The index first: a reader stops finding the products before they go.
    keys.sort_by_key(|key| !key.ends_with(INDEX));
    for key in keys {
        let owner = cloud.object_tags(region, bucket, &key).await?;
        if owner.as_ref().and_then(|t| t.get(tags::NODE)) == Some(&node) {
            cloud.delete_object(region, bucket, &key).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_differs_is_written_and_version_files_only_once() {
        let files: BTreeMap<String, Vec<u8>> = [
            (INDEX, &b"index"[..]),
            ("amis.json", b"amis"),
            ("versions/s/2.json", b"v2"),
            ("versions/s/1.json", b"v1 now"),
        ]
        .into_iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
        let live: BTreeMap<String, String> = [
            (INDEX, etag(b"index")),
            ("amis.json", etag(b"old")),
            ("versions/s/1.json", etag(b"v1 then")),
            ("versions/s/0.json", etag(b"v0")),
            ("versions/other/0.json", etag(b"x")),
            ("README", etag(b"someone's")),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_string(), e))
        .collect();
        let diffs = file_diffs("s", &files, &live);
        let shown: Vec<(String, bool)> = diffs.iter().map(|d| (d.attribute.to_string(), d.after.is_some())).collect();
        assert_eq!(
            shown,
            vec![
                ("files.amis.json".to_string(), true),
                ("files.versions/s/2.json".to_string(), true),
                ("files.versions/s/0.json".to_string(), false),
            ]
        );
    }

    #[test]
    fn locations_round_trip() {
        assert_eq!(location(&live_id("b", "images/")), Some(("b", "images/")));
        assert_eq!(location(&live_id("b", "")), Some(("b", "")));
        assert!(in_layout("s", "streams/v1/amiplan:s:aws.json") && !in_layout("s", "streams/v1/amiplan:t:aws.json"));
    }
}
