//! Local source images: size and digest, read once before planning.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::job::Job;

const GIB: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub sha256: String,
    pub size_bytes: u64,
}

impl SourceInfo {
    /// The smallest EBS volume (whole GiB, at least 1) that holds the image.
    pub fn min_volume_gib(&self) -> u32 {
        self.size_bytes.div_ceil(GIB).max(1) as u32
    }
}

/// A stack's source, read before planning: an inspected local image, or the helper's job.
#[derive(Debug, Clone)]
pub enum Prepared {
    Upload(SourceInfo),
    Helper(Job),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read source image {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("source image {path} is empty")]
    Empty { path: PathBuf },
    #[error("source image {path} is qcow2; amiplan uploads raw images (convert with `qemu-img convert -O raw`)")]
    Qcow2 { path: PathBuf },
    #[error("source image {path} has SHA-256 {actual}, but the manifest expects {expected}")]
    DigestMismatch { path: PathBuf, expected: String, actual: String },
}

/// Reads the whole file once: its size and SHA-256, checked against `expected` when given.
pub fn inspect(path: &Path, expected: Option<&str>) -> Result<SourceInfo, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut size_bytes = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        if size_bytes == 0 && buffer[..read].starts_with(b"QFI\xfb") {
            return Err(SourceError::Qcow2 { path: path.to_path_buf() });
        }
        hasher.update(&buffer[..read]);
        size_bytes += read as u64;
    }
    if size_bytes == 0 {
        return Err(SourceError::Empty { path: path.to_path_buf() });
    }
    let sha256 = hex::encode(hasher.finalize());
    if let Some(expected) = expected
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        let (expected, actual) = (expected.to_string(), sha256);
        return Err(SourceError::DigestMismatch { path: path.to_path_buf(), expected, actual });
    }
    Ok(SourceInfo { sha256, size_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_and_size_are_checked() {
        let dir = std::env::temp_dir().join(format!("amiplan-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.raw");
        std::fs::write(&path, b"abc").unwrap();
        let info = inspect(&path, None).unwrap();
        assert_eq!(info.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!((info.size_bytes, info.min_volume_gib()), (3, 1));
        assert!(matches!(inspect(&path, Some(&"0".repeat(64))), Err(SourceError::DigestMismatch { .. })));
        std::fs::write(&path, b"QFI\xfb\0\0\0\x03").unwrap();
        assert!(matches!(inspect(&path, None), Err(SourceError::Qcow2 { .. })));
    }
}
