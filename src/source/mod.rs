//! Local source images: what they hold, read once before planning and remembered.
//!
//! One pass over the image yields everything the plan and the upload need: its size, which
//! 512 KiB blocks hold data, each such block's SHA-256 (what PutSnapshotBlock sends), and the
//! image's *content address* derived from those digests (see [`content_address`]). A cache keyed
//! by the file's path and identity spares later plans the pass (see [`cache`]).

pub mod blocks;
pub mod cache;
pub mod format;
mod qcow2;
mod xz;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use cache::FileIdentity;
pub use format::Format;

pub use crate::cloud::BlockDigest;
use crate::cloud::{BlockSource, EBS_BLOCK_SIZE};
use crate::job::Job;

/// Images are read in the blocks EBS stores.
pub const BLOCK_SIZE: usize = EBS_BLOCK_SIZE;

/// Receives each block with data, in block order; an error stops the pass.
pub type Sink<'a> = dyn FnMut(u64, Bytes) -> std::io::Result<()> + 'a;

/// A block of zeros to compare with: slice equality is one `memcmp`, tens of GB/s even in the
/// debug builds the tests run, where a byte-by-byte check manages about 250 MB/s.
static ZERO_BLOCK: [u8; BLOCK_SIZE] = [0; BLOCK_SIZE];

pub fn is_zero(block: &[u8]) -> bool {
    block.chunks(BLOCK_SIZE).all(|chunk| chunk == &ZERO_BLOCK[..chunk.len()])
}

const GIB: u64 = 1024 * 1024 * 1024;

/// How content addresses begin, which tells them from the whole-file SHA-256 that amiplan
/// wrote before content addresses into `amiplan:source` (64 hex digits, no prefix).
pub const ADDRESS_PREFIX: &str = "sha256-blocks:";

#[derive(Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub path: PathBuf,
    pub format: Format,
    /// The image's size: the disk amiplan uploads, decompressed or converted.
    pub size_bytes: u64,
    /// [`content_address`] of the image.
    pub address: String,
    /// SHA-256 of the file as it is on disk, when it was needed (a declared `source.sha256`,
    /// or snapshots that older amiplan tagged with it).
    pub file_sha256: Option<String>,
    /// The blocks with data, in order.
    pub blocks: Arc<Vec<BlockDigest>>,
    /// The file as it was read; the upload refuses a file that has changed since.
    pub identity: FileIdentity,
    /// Whether this came from the cache, without reading the image.
    pub from_cache: bool,
}

/// Only what identifies the image: client tokens are derived from a request's debug form, and
/// must not change with the cache or the file's timestamps.
impl std::fmt::Debug for SourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceInfo")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("size_bytes", &self.size_bytes)
            .field("address", &self.address)
            .finish()
    }
}

impl SourceInfo {
    /// The smallest EBS volume (whole GiB, at least 1) that holds the image.
    pub fn min_volume_gib(&self) -> u32 {
        self.size_bytes.div_ceil(GIB).max(1) as u32
    }

    /// What a snapshot of the image stores: its blocks with data.
    pub fn data_bytes(&self) -> u64 {
        self.blocks.len() as u64 * BLOCK_SIZE as u64
    }

    /// A source made of the given blocks, as the tests and benchmarks describe images.
    pub fn from_blocks(path: &Path, format: Format, size_bytes: u64, blocks: Vec<BlockDigest>) -> SourceInfo {
        SourceInfo {
            path: path.to_path_buf(),
            format,
            size_bytes,
            address: content_address(size_bytes, &blocks),
            file_sha256: None,
            blocks: Arc::new(blocks),
            identity: FileIdentity::default(),
            from_cache: false,
        }
    }
}

impl BlockSource for SourceInfo {
    fn blocks(&self) -> &[BlockDigest] {
        &self.blocks
    }

    fn read_blocks(&self, each: &mut dyn FnMut(u64, Bytes) -> std::io::Result<()>) -> std::io::Result<()> {
        blocks::read_blocks(&self.path, self.format, false, each).map(|_| ())
    }

    fn unchanged(&self) -> Result<(), String> {
        match FileIdentity::of(&self.path) {
            Ok(now) if now == self.identity => Ok(()),
            Ok(_) => Err(self.changed_message()),
            Err(error) => Err(format!("reading {}: {error}", self.path.display())),
        }
    }

    fn describe(&self) -> String {
        format!("{} ({})", self.path.display(), self.format)
    }
}

/// The content address of an image: `sha256-blocks:` and the hex SHA-256 over a version label,
/// the image's size (8 bytes, little-endian), then for each block with data, in order, its
/// index (8 bytes, little-endian) and its SHA-256. Blocks of zeros are left out, as EBS leaves
/// them out of a snapshot. The same image gives the same address however it is stored (raw,
/// sparse, compressed, qcow2); any changed byte, and any change of size, changes it.
pub fn content_address(size_bytes: u64, blocks: &[BlockDigest]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"amiplan-blocks-v1\0");
    hasher.update(size_bytes.to_le_bytes());
    for (index, digest) in blocks {
        hasher.update(index.to_le_bytes());
        hasher.update(digest);
    }
    format!("{ADDRESS_PREFIX}{}", hex::encode(hasher.finalize()))
}

/// A stack's source, read before planning: an inspected local image, or the helper's job.
#[derive(Debug, Clone)]
pub enum Prepared {
    Upload(Arc<SourceInfo>),
    Helper(Job),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read source image {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot read source image {path} ({format}): {source}")]
    Damaged { path: PathBuf, format: Format, source: std::io::Error },
    #[error("source image {path} is empty")]
    Empty { path: PathBuf },
    #[error("source image {path} is named as {named} but holds {found}; rename it or fix the download")]
    Mislabelled { path: PathBuf, named: Format, found: Format },
    #[error("source image {path} changed while amiplan read it; run again once it is written")]
    Changed { path: PathBuf },
    #[error("source image {path} has SHA-256 {actual}, but the manifest expects {expected}")]
    DigestMismatch { path: PathBuf, expected: String, actual: String },
}

/// What the image in `path` holds, from the cache when the file has not changed since it was
/// last read, else by one pass over it. With `expected`, the file's SHA-256 is checked too.
pub fn inspect(path: &Path, expected: Option<&str>) -> Result<SourceInfo, SourceError> {
    inspect_with(path, expected, cache::default_dir().as_deref())
}

/// [`inspect`] with the cache in `cache_dir`, or none.
pub fn inspect_with(path: &Path, expected: Option<&str>, cache_dir: Option<&Path>) -> Result<SourceInfo, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let identity = FileIdentity::of(path).map_err(io)?;
    let cached = cache_dir.and_then(|dir| cache::load(dir, path, &identity));
    let info = match cached {
        Some(info) if expected.is_none() || info.file_sha256.is_some() => info,
        _ => {
            let info = read(path, identity, expected.is_some())?;
            if let Some(dir) = cache_dir
                && let Err(error) = cache::store(dir, &info)
            {
                tracing::warn!("cannot remember what {} holds in {}: {error}", path.display(), dir.display());
            }
            info
        }
    };
    if let (Some(expected), Some(actual)) = (expected, &info.file_sha256)
        && !expected.eq_ignore_ascii_case(actual)
    {
        let (expected, actual) = (expected.to_string(), actual.clone());
        return Err(SourceError::DigestMismatch { path: path.to_path_buf(), expected, actual });
    }
    Ok(info)
}

/// The SHA-256 of the file itself, from the cache or by reading it (with the blocks again, so
/// that the cache then holds both).
pub fn file_sha256(path: &Path, cache_dir: Option<&Path>) -> Result<String, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let identity = FileIdentity::of(path).map_err(io)?;
    if let Some(digest) = cache_dir.and_then(|dir| cache::load(dir, path, &identity)).and_then(|i| i.file_sha256) {
        return Ok(digest);
    }
    let info = read(path, identity, true)?;
    if let Some(dir) = cache_dir {
        let _ = cache::store(dir, &info);
    }
    Ok(info.file_sha256.expect("asked for"))
}

/// One pass over the file.
fn read(path: &Path, identity: FileIdentity, file_digest: bool) -> Result<SourceInfo, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let mut head = [0u8; 8];
    let head_length = blocks::read_head(path, &mut head).map_err(io)?;
    let format = Format::detect(&head[..head_length]);
    if let Some(named) = Format::named(path)
        && named != format
        && named != Format::Raw
    {
        return Err(SourceError::Mislabelled { path: path.to_path_buf(), named, found: format });
    }
    let mut digests = Vec::new();
    let pass = blocks::read_blocks(path, format, file_digest, &mut |index, block| {
        digests.push((index, Sha256::digest(&block).into()));
        Ok(())
    })
    .map_err(|source| match format {
        Format::Raw => SourceError::Io { path: path.to_path_buf(), source },
        _ => SourceError::Damaged { path: path.to_path_buf(), format, source },
    })?;
    if pass.size_bytes == 0 {
        return Err(SourceError::Empty { path: path.to_path_buf() });
    }
    if FileIdentity::of(path).map_err(io)? != identity {
        return Err(SourceError::Changed { path: path.to_path_buf() });
    }
    let mut info = SourceInfo::from_blocks(path, format, pass.size_bytes, digests);
    info.file_sha256 = pass.file_sha256;
    info.identity = identity;
    Ok(info)
}

#[cfg(test)]
mod tests;
