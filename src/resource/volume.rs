//! The target volume a helper writes the image to; its snapshot is the build's output.

use super::{Pairs, or_empty};
use crate::cloud::VolumeType;

pub const TRANSIENT: bool = true;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    /// The manifest's subnet (whose zone places the volume), when the build makes no network.
    pub existing_subnet: Option<String>,
}

impl Volume {
    pub(super) fn immutable(&self) -> Pairs {
        vec![
            ("size_gib", self.size_gib.to_string()),
            ("volume_type", self.volume_type.as_str().to_string()),
            ("encrypted", self.encrypted.to_string()),
            ("kms_key", or_empty(self.kms_key.as_deref())),
        ]
    }
}
