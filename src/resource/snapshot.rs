//! The EBS snapshot behind a stack's AMIs: uploaded from a local image, taken of a helper's
//! target volume, or an encrypted copy of the plain one.

use std::path::PathBuf;
use std::time::Duration;

use super::{Pairs, or_empty};

pub const TRANSIENT: bool = false;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub source_sha256: String,
    pub volume_size_gib: u32,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub made_by: MadeBy,
}

/// How the snapshot is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadeBy {
    /// Direct upload of a local raw image (EBS direct APIs).
    Upload { source: PathBuf, size_bytes: u64 },
    /// Wait for the helper's job, then snapshot the target volume.
    Capture { job_id: String, timeout: Duration },
    /// An encrypted copy of the plain snapshot this one depends on (CopySnapshot).
    EncryptCopy,
}

impl Snapshot {
    pub(super) fn immutable(&self) -> Pairs {
        let mut pairs = vec![
            ("source_sha256", self.source_sha256.clone()),
            ("volume_size_gib", self.volume_size_gib.to_string()),
            ("encrypted", self.encrypted.to_string()),
            ("kms_key", or_empty(self.kms_key.as_deref())),
        ];
        if !matches!(self.made_by, MadeBy::Upload { .. }) {
            pairs.push(("method", "helper".into()));
        }
        pairs
    }

    pub fn is_upload(&self) -> bool {
        matches!(self.made_by, MadeBy::Upload { .. })
    }

    /// Made by a helper build (not an encrypted copy of another snapshot).
    pub fn is_capture(&self) -> bool {
        matches!(self.made_by, MadeBy::Capture { .. })
    }
}
