//! What the EBS direct upload needs from a local image, as a trait: the `source` module reads
//! files and knows their formats, the cloud layer only sends blocks.

use std::io;

use bytes::Bytes;

/// EBS snapshots store 512 KiB blocks. StartSnapshot reports the size too, but emulators report
/// other numbers (moto says 512 bytes while storing 512 KiB blocks); AWS documents this value as
/// fixed.
pub const EBS_BLOCK_SIZE: usize = 512 * 1024;

/// A block with data: its index in the image and its SHA-256.
pub type BlockDigest = (u64, [u8; 32]);

/// An inspected image, ready to be sent block by block.
///
/// Its `Debug` form must name only what identifies the image: client tokens are derived from a
/// request's debug form.
pub trait BlockSource: std::fmt::Debug + Send + Sync {
    /// The blocks with data, in block order, with the digests the inspection found; `None` when
    /// the image was not read before the upload, which then hashes each block itself.
    fn blocks(&self) -> Option<&[BlockDigest]>;

    /// The image's size in bytes.
    fn size_bytes(&self) -> u64;

    /// The memory reading the image needs beyond the blocks it hands on (a decoder's threads):
    /// the upload holds that much less in blocks, to keep its peak memory the same.
    fn reader_memory(&self) -> u64 {
        0
    }

    /// Reads the image once, handing every block with data (whole, [`EBS_BLOCK_SIZE`] bytes) to
    /// `each` in block order; an error from `each` stops the reading.
    fn read_blocks(&self, each: &mut dyn FnMut(u64, Bytes) -> io::Result<()>) -> io::Result<()>;

    /// Told what an upload that hashed the blocks itself found, once it has read the whole image
    /// and the file is unchanged.
    fn read(&self, blocks: Vec<BlockDigest>);

    /// Fails, saying why, when the file is no longer the one that was inspected.
    fn unchanged(&self) -> Result<(), String>;

    /// How messages name it: the file and its format.
    fn describe(&self) -> String;

    /// What an upload says when the file is not the one inspected.
    fn changed_message(&self) -> String {
        format!("{} changed after it was inspected; plan again", self.describe())
    }

    /// The digest the inspection found for block `index`, `None` for a block without data or
    /// an image not inspected.
    fn digest(&self, index: u64) -> Option<[u8; 32]> {
        let blocks = self.blocks()?;
        let at = blocks.binary_search_by_key(&index, |(i, _)| *i).ok()?;
        Some(blocks[at].1)
    }
}
