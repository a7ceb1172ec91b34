//! What amiplan learned about a source file, kept between runs so that planning an unchanged
//! multi-GiB image reads none of it.
//!
//! One small JSON file per source path under `$AMIPLAN_CACHE_DIR` (default
//! `$XDG_CACHE_HOME/amiplan/sources`, else `~/.cache/amiplan/sources`). An entry counts only
//! while the file's size, modification time, change time, inode and device are those it was
//! read with; anything else reads the file again. Losing the cache costs one read, never a
//! wrong plan: the digests it holds are the ones EBS checks each block against.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BlockDigest, Format, SourceInfo};

/// Bumped whenever the entry's meaning changes; older entries are then ignored.
const VERSION: u32 = 1;

/// The file as the file system describes it: when any of it changes, the content may have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub size: u64,
    pub modified_ns: i128,
    pub changed_ns: i128,
    pub inode: u64,
    pub device: u64,
}

impl FileIdentity {
    pub fn of(path: &Path) -> io::Result<FileIdentity> {
        let meta = std::fs::metadata(path)?;
        let ns = |seconds: i64, nanos: i64| i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        Ok(FileIdentity {
            size: meta.len(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
            changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    version: u32,
    path: PathBuf,
    identity: FileIdentity,
    format: Format,
    size_bytes: u64,
    address: String,
    file_sha256: Option<String>,
    /// Base64 of each block with data: index (8 bytes, little-endian), then its SHA-256.
    blocks: String,
}

/// Where the cache lives unless told otherwise; `None` without a home directory.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("AMIPLAN_CACHE_DIR") {
        return Some(dir);
    }
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|home| home.join(".cache")))?;
    Some(base.join("amiplan").join("sources"))
}

fn entry_path(dir: &Path, source: &Path) -> PathBuf {
    let absolute = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
    let key = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.json", hex::encode(&key[..16])))
}

/// The remembered reading of `source`, if the file is still the one that was read.
pub fn load(dir: &Path, source: &Path, identity: &FileIdentity) -> Option<SourceInfo> {
    let text = std::fs::read(entry_path(dir, source)).ok()?;
    let entry: Entry = serde_json::from_slice(&text).ok()?;
    if entry.version != VERSION || entry.identity != *identity {
        return None;
    }
    let raw = BASE64.decode(entry.blocks).ok()?;
    if raw.len() % 40 != 0 {
        return None;
    }
    let blocks: Vec<BlockDigest> = raw
        .chunks(40)
        .map(|chunk| {
            let index = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
            (index, chunk[8..].try_into().expect("32 bytes"))
        })
        .collect();
    // A damaged entry must not stand for the image.
    if super::content_address(entry.size_bytes, &blocks) != entry.address {
        return None;
    }
    let mut info = SourceInfo::unread(source, entry.format, entry.size_bytes, entry.identity);
    info.record(blocks);
    info.file_sha256 = entry.file_sha256;
    info.from_cache = true;
    Some(info)
}

/// Remembers a reading, replacing the entry whole (write, then rename); a source not read yet
/// has nothing to remember.
pub fn store(dir: &Path, info: &SourceInfo) -> io::Result<()> {
    let (Some(blocks), Some(address)) = (info.data_blocks(), info.address.get()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    let mut raw = Vec::with_capacity(blocks.len() * 40);
    for (index, digest) in blocks {
        raw.extend_from_slice(&index.to_le_bytes());
        raw.extend_from_slice(digest);
    }
    let entry = Entry {
        version: VERSION,
        path: std::path::absolute(&info.path)?,
        identity: info.identity,
        format: info.format,
        size_bytes: info.size_bytes,
        address: address.to_string(),
        file_sha256: info.file_sha256.clone(),
        blocks: BASE64.encode(raw),
    };
    let path = entry_path(dir, &info.path);
    let partial = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&partial, serde_json::to_vec(&entry)?)?;
    std::fs::rename(partial, path)
}
