//! One desired resource: its identity, its typed spec, and what it should look like live.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{NodeKind, Spec};
use crate::cloud::{Protection, Sharing};
use crate::deprecation::Deprecation;
use crate::tags;

/// One desired resource.
#[derive(Debug, Clone)]
pub struct Node {
    /// Stable identity, e.g. `image/fedora-40-x86_64-gp3@eu-west-1`; tagged as `amiplan:node`.
    pub id: String,
    pub stack: String,
    pub region: String,
    /// AMI name (images only): unique per region, so also an identity.
    pub name: Option<String>,
    /// What the resource is, typed by kind; what AWS fixes at creation is in
    /// [`Spec::immutable`].
    pub spec: Spec,
    /// Attributes that can change in place.
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Launch permissions (images only).
    pub sharing: Sharing,
    /// When the AMI is deprecated (images only).
    pub deprecation: Option<Deprecation>,
    /// Deregistration protection (images only).
    pub protection: Option<Protection>,
    /// Images with a boot test: shared and deprecated only once the test passed.
    pub gated: bool,
}

impl Node {
    /// What kind of resource the node is: its spec's.
    pub fn kind(&self) -> NodeKind {
        self.spec.kind()
    }

    /// Short hash of the spec, tagged as `amiplan:spec`.
    pub fn spec_hash(&self) -> String {
        spec_hash(&self.spec.immutable())
    }

    /// The spec hash `live` must carry to be this node as it is: a resource tagged with the
    /// source's older digest (the whole file's SHA-256, see [`Spec::source_alias`]) was made
    /// from the same image, so it is judged by the hash it was given with that digest, and
    /// its tags are then brought up to date in place instead of it being made again.
    pub fn spec_hash_for(&self, live: &crate::cloud::LiveResource) -> String {
        match self.spec.source_alias().filter(|alias| live.tags.get(tags::SOURCE).is_some_and(|s| s == alias)) {
            Some(alias) => {
                let mut spec = self.spec.immutable();
                spec.insert("source_sha256".into(), alias.to_string());
                spec_hash(&spec)
            }
            None => self.spec_hash(),
        }
    }

    /// Every tag the live resource should carry: user tags plus ownership tags.
    pub fn desired_tags(&self) -> BTreeMap<String, String> {
        let mut all = self.tags.clone();
        all.insert(tags::STACK.into(), self.stack.clone());
        all.insert(tags::NODE.into(), self.id.clone());
        all.insert(tags::SPEC.into(), self.spec_hash());
        if let Some(digest) = self.spec.source_digest() {
            all.insert(tags::SOURCE.into(), digest.to_string());
        }
        if let Some(attrs) = tags::encode_spec(&self.spec.immutable()) {
            all.insert(tags::ATTRS.into(), attrs);
        }
        // Only AMIs have launch permissions to read back; a parameter's sharing is its AMI's
        // audience, checked when it is written.
        if self.kind().is_image() && self.sharing.names_anyone() {
            all.insert(tags::SHARED.into(), "true".into());
        }
        all
    }
}

pub fn spec_hash(spec: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in spec {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}
