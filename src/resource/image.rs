//! An AMI registered from a snapshot in the build region.

use super::{Pairs, or_empty};
use crate::cloud::ImageAttrs;

pub const TRANSIENT: bool = false;

/// What every AMI of a variant is, in whichever region: registered or copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ami {
    pub attrs: ImageAttrs,
    pub volume_size_gib: u32,
    /// The digest of the source the AMI's snapshot was made from.
    pub source_sha256: String,
    /// The KMS key its snapshots are encrypted with in this region (encrypted variants only).
    pub kms_key: Option<String>,
}

impl Ami {
    pub(super) fn immutable(&self) -> Pairs {
        let attrs = &self.attrs;
        vec![
            ("architecture", attrs.architecture.as_str().into()),
            ("virtualization", attrs.virtualization.as_str().into()),
            ("volume_type", attrs.volume_type.as_str().into()),
            ("volume_size_gib", self.volume_size_gib.to_string()),
            ("encrypted", attrs.encrypted.to_string()),
            ("boot_mode", or_empty(attrs.boot_mode.map(|m| m.as_str()))),
            ("ena", attrs.ena.to_string()),
            ("imds", or_empty(attrs.imds.map(|_| "v2.0"))),
            ("tpm", attrs.tpm.to_string()),
            ("root_device", attrs.root_device.clone()),
            ("kernel_id", or_empty(attrs.kernel_id.as_deref())),
            ("ramdisk_id", or_empty(attrs.ramdisk_id.as_deref())),
            ("source_sha256", self.source_sha256.clone()),
            ("kms_key", or_empty(self.kms_key.as_deref())),
        ]
    }
}

/// The AMI of the build region, registered from the snapshot it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub ami: Ami,
}

impl Image {
    pub(super) fn immutable(&self) -> Pairs {
        self.ami.immutable()
    }
}
