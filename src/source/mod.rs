//! Local source images: what they hold, read once (before planning, or by the upload) and
//! remembered.
//!
//! One pass over the image yields everything the plan and the upload need: its size, which
//! 512 KiB blocks hold data, each such block's SHA-256 (what PutSnapshotBlock sends), and the
//! image's *content address* derived from those digests (see [`content_address`]). A cache keyed
//! by the file's path and identity spares later plans the pass (see [`cache`]).

pub mod blocks;
pub mod cache;
pub mod format;
mod pool;
mod qcow2;
mod xz;
mod zstd_frames;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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

/// How content addresses begin, which tells them from the whole-file SHA-256 that amiplan
/// wrote before content addresses into `amiplan:source` (64 hex digits, no prefix).
pub const ADDRESS_PREFIX: &str = "sha256-blocks:";

/// A source's content address, shared by the snapshot and every AMI made from it: known when
/// the image was read before planning, otherwise set by the upload's pass over it (see
/// [`inspect_or_defer`]). Plans made before that show [`COMPUTED_DURING_UPLOAD`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceAddress(Arc<OnceLock<String>>);

/// What a plan shows, and a snapshot is tagged with while its upload runs, for an address not
/// computed yet. A run that stops before the real one is tagged leaves a snapshot whose tag
/// matches no image, which the next plan replaces.
pub const COMPUTED_DURING_UPLOAD: &str = "computed-during-the-upload";

impl SourceAddress {
    pub fn known(address: String) -> SourceAddress {
        SourceAddress(Arc::new(OnceLock::from(address)))
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// The address, or [`COMPUTED_DURING_UPLOAD`] before it is known.
    pub fn planned(&self) -> &str {
        self.get().unwrap_or(COMPUTED_DURING_UPLOAD)
    }
}

impl std::fmt::Debug for SourceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.planned())
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub path: PathBuf,
    pub format: Format,
    /// The image's size: the disk amiplan uploads, decompressed or converted.
    pub size_bytes: u64,
    /// [`content_address`] of the image, once read.
    pub address: SourceAddress,
    /// SHA-256 of the file as it is on disk, when it was needed (a declared `source.sha256`,
    /// or snapshots that older amiplan tagged with it).
    pub file_sha256: Option<String>,
    /// The blocks with data, in order, once read (set before `address`).
    blocks: Arc<OnceLock<Vec<BlockDigest>>>,
    /// Before it is read, at most how many bytes of blocks with data the image has: for a raw
    /// file, the whole blocks its file system holds data for; for others, the image's size.
    data_at_most: u64,
    /// The file as it was read; the upload refuses a file that has changed since.
    pub identity: FileIdentity,
    /// Whether this came from the cache, without reading the image.
    pub from_cache: bool,
    /// Where the upload remembers what it read, for a source it reads first.
    cache_dir: Option<PathBuf>,
}

/// Only what identifies the image: client tokens are derived from a request's debug form, and
/// must not change with the cache or the file's timestamps. An image not read yet is named by
/// its file's identity instead, so that a changed file gets a new token.
impl std::fmt::Debug for SourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("SourceInfo");
        out.field("path", &self.path).field("format", &self.format).field("size_bytes", &self.size_bytes);
        match self.address.get() {
            Some(address) => out.field("address", &address),
            None => out.field("identity", &self.identity),
        };
        out.finish()
    }
}

impl SourceInfo {
    /// The smallest EBS volume (whole GiB, at least 1) that holds the image.
    pub fn min_volume_gib(&self) -> u32 {
        crate::cloud::attrs::volume_gib_for(self.size_bytes)
    }

    /// The blocks with data, once the image has been read.
    pub fn data_blocks(&self) -> Option<&[BlockDigest]> {
        self.blocks.get().map(Vec::as_slice)
    }

    /// What a snapshot of the image stores, its blocks with data, once the image has been read.
    pub fn data_bytes(&self) -> Option<u64> {
        self.data_blocks().map(|blocks| blocks.len() as u64 * BLOCK_SIZE as u64)
    }

    /// [`data_bytes`](Self::data_bytes) once the image has been read; before that, an upper
    /// bound known without reading it.
    pub fn data_bytes_at_most(&self) -> u64 {
        self.data_bytes().unwrap_or(self.data_at_most)
    }

    /// A source made of the given blocks, as the tests and benchmarks describe images.
    pub fn from_blocks(path: &Path, format: Format, size_bytes: u64, blocks: Vec<BlockDigest>) -> SourceInfo {
        let info = SourceInfo::unread(path, format, size_bytes, FileIdentity::default());
        info.record(blocks);
        info
    }

    /// Stands for the image in `path` where a command needs none of it (destroy, output, …):
    /// nothing is read, not even its size, and the file may be gone. Such a source is never
    /// uploaded.
    pub fn not_read(path: &Path) -> SourceInfo {
        let format = Format::named(path).unwrap_or(Format::Raw);
        SourceInfo::unread(path, format, 0, FileIdentity::default())
    }

    /// A source whose size is known but whose blocks are read only by its upload.
    fn unread(path: &Path, format: Format, size_bytes: u64, identity: FileIdentity) -> SourceInfo {
        SourceInfo {
            path: path.to_path_buf(),
            format,
            size_bytes,
            address: SourceAddress::default(),
            file_sha256: None,
            blocks: Arc::default(),
            data_at_most: size_bytes,
            identity,
            from_cache: false,
            cache_dir: None,
        }
    }

    /// Sets the blocks and, from them, the address; a source read already keeps what it had.
    fn record(&self, blocks: Vec<BlockDigest>) {
        let address = content_address(self.size_bytes, &blocks);
        if self.blocks.set(blocks).is_ok() {
            let _ = self.address.0.set(address);
        }
    }

    /// Reads a source left for its upload now, because the plan must compare its address
    /// with what exists (remembered in the cache it was looked up in); a file changed since it
    /// was first looked at is refused.
    pub fn read_now(&self) -> Result<(), SourceError> {
        if self.data_blocks().is_some() {
            return Ok(());
        }
        let read = inspect_with(&self.path, None, self.cache_dir.as_deref())?;
        if read.identity != self.identity {
            return Err(SourceError::Changed { path: self.path.clone() });
        }
        if read.size_bytes != self.size_bytes {
            let why = format!("it holds {} bytes, its headers say {}", read.size_bytes, self.size_bytes);
            let source = std::io::Error::new(std::io::ErrorKind::InvalidData, why);
            return Err(SourceError::Damaged { path: self.path.clone(), format: self.format, source });
        }
        self.record(read.data_blocks().expect("inspected").to_vec());
        Ok(())
    }
}

impl BlockSource for SourceInfo {
    fn blocks(&self) -> Option<&[BlockDigest]> {
        self.data_blocks()
    }

    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn reader_memory(&self) -> u64 {
        match self.format {
            Format::Xz => xz::THREADING_MEMORY_LIMIT,
            _ => 0,
        }
    }

    fn read_blocks(&self, each: &mut dyn FnMut(u64, Bytes) -> std::io::Result<()>) -> std::io::Result<()> {
        let pass = blocks::read_blocks(&self.path, self.format, false, each)?;
        if pass.size_bytes != self.size_bytes {
            let message =
                format!("it holds {} bytes, not the {} it was inspected with", pass.size_bytes, self.size_bytes);
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
        }
        Ok(())
    }

    /// The upload's pass, for a source it read first: the address is set and the reading
    /// remembered, so that the next plan does not read the file again.
    fn read(&self, blocks: Vec<BlockDigest>) {
        self.record(blocks);
        remember(self.cache_dir.as_deref(), self);
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

/// What the image in `path` holds, from the cache in `cache_dir` when the file has not changed
/// since it was last read, else by one pass over it. With `expected`, the file's SHA-256 is
/// checked too.
pub fn inspect_with(path: &Path, expected: Option<&str>, cache_dir: Option<&Path>) -> Result<SourceInfo, SourceError> {
    look(path, expected, cache_dir, false)
}

/// [`inspect_with`] the default cache, except that a raw, xz or zstd image the cache does not
/// know (and whose file digest the manifest does not declare) is not read now: its size comes
/// from the file, the xz index or the zstd frame headers, and the upload, if the plan makes
/// one, reads it once and computes its address on the way. An image uploaded for the first time
/// has no snapshot to compare an address with, so reading it before planning would only read
/// it twice (for a 2 GiB raw image, half a second before the first request; for a compressed
/// one, a whole second decoding); where it has one, the pipeline reads it before planning after
/// all ([`SourceInfo::read_now`]). A raw file's plan still bounds its upload by the blocks its
/// file system holds data for.
pub fn inspect_or_defer(path: &Path, expected: Option<&str>) -> Result<SourceInfo, SourceError> {
    look(path, expected, cache::default_dir().as_deref(), true)
}

fn look(path: &Path, expected: Option<&str>, cache_dir: Option<&Path>, defer: bool) -> Result<SourceInfo, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let identity = FileIdentity::of(path).map_err(io)?;
    let cached = cache_dir.and_then(|dir| cache::load(dir, path, &identity));
    let info = match cached {
        Some(info) if expected.is_none() || info.file_sha256.is_some() => info,
        _ => {
            // A declared file digest is checked before anything is planned: no deferring then.
            if defer
                && expected.is_none()
                && let Some(mut info) = unread(path, identity)?
            {
                info.cache_dir = cache_dir.map(Path::to_path_buf);
                return Ok(info);
            }
            let info = read(path, identity, expected.is_some())?;
            remember(cache_dir, &info);
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

/// Stores what `info` holds in the cache, if there is one; a cache that cannot be written costs
/// only a second read later, so it is a warning.
fn remember(cache_dir: Option<&Path>, info: &SourceInfo) {
    if let Some(dir) = cache_dir
        && let Err(error) = cache::store(dir, info)
    {
        tracing::warn!("cannot remember what {} holds in {}: {error}", info.path.display(), dir.display());
    }
}

/// A raw, xz or zstd image known by its size alone, where its file or headers give the size
/// (zstd written from a pipe does not record it: that image is read now, as gzip and qcow2
/// are); a damaged xz index or zstd frame is refused before anything is planned.
fn unread(path: &Path, identity: FileIdentity) -> Result<Option<SourceInfo>, SourceError> {
    let format = detect(path)?;
    let damaged = |source| SourceError::Damaged { path: path.to_path_buf(), format, source };
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size_bytes = match format {
        Format::Raw => file.metadata().map_err(io)?.len(),
        Format::Xz => xz::decompressed_size(&file).map_err(damaged)?,
        Format::Zstd => match zstd_frames::decompressed_size(&file).map_err(damaged)? {
            Some(size) => size,
            None => return Ok(None),
        },
        Format::Gzip | Format::Qcow2 => return Ok(None),
    };
    if size_bytes == 0 {
        return Err(SourceError::Empty { path: path.to_path_buf() });
    }
    let mut info = SourceInfo::unread(path, format, size_bytes, identity);
    if format == Format::Raw {
        info.data_at_most = blocks::raw_data_bytes_at_most(&file).map_err(io)?;
    }
    Ok(Some(info))
}

/// The format the file's first bytes say, refused when its name promises another.
fn detect(path: &Path) -> Result<Format, SourceError> {
    let mut head = [0u8; 8];
    let head_length =
        blocks::read_head(path, &mut head).map_err(|source| SourceError::Io { path: path.into(), source })?;
    let format = Format::detect(&head[..head_length]);
    match Format::named(path) {
        Some(named) if named != format && named != Format::Raw => {
            Err(SourceError::Mislabelled { path: path.to_path_buf(), named, found: format })
        }
        _ => Ok(format),
    }
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

/// The SHA-256 of the file as it is on disk, without decoding it.
pub fn hash_file(path: &Path) -> Result<String, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    blocks::hash_file(file).map_err(io)
}

/// One pass over the file.
fn read(path: &Path, identity: FileIdentity, file_digest: bool) -> Result<SourceInfo, SourceError> {
    let io = |source| SourceError::Io { path: path.to_path_buf(), source };
    let format = detect(path)?;
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
    let mut info = SourceInfo::unread(path, format, pass.size_bytes, identity);
    info.record(digests);
    info.file_sha256 = pass.file_sha256;
    Ok(info)
}

#[cfg(test)]
mod tests;
