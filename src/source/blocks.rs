//! One sequential pass over the image a source file holds, as EBS's 512 KiB blocks.
//!
//! Only blocks with data come out: EBS reads unwritten blocks as zeros, so zero blocks need
//! neither a digest nor a request. Raw files are read around their holes (`SEEK_DATA` and
//! `SEEK_HOLE`), so an 8 GiB file with 300 MiB of data costs 300 MiB of reading; compressed files
//! are decompressed as a stream and qcow2 images read through imago, so no raw copy is written.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::format::Format;
use super::pool::BlockPool;
use super::{BLOCK_SIZE, Sink, is_zero};

/// How much compressed input is read at once: large sequential reads, few system calls (a
/// 600 MiB `.raw.xz` is 600 reads), and little memory taken from the upload's 64 MiB.
const INPUT_BUFFER: usize = 1024 * 1024;

/// What a pass learned besides the blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The image's size (decompressed or converted).
    pub size_bytes: u64,
    /// SHA-256 of the file as it is on disk, when asked for.
    pub file_sha256: Option<String>,
}

/// Reads the image in `path` (held as `format`) once, handing every block with data to `each`.
/// With `file_digest`, the file's own bytes are hashed on the way (then holes are read too:
/// the digest covers every byte).
pub fn read_blocks(path: &Path, format: Format, file_digest: bool, each: &mut Sink) -> io::Result<Pass> {
    let file = File::open(path)?;
    let pool = BlockPool::new();
    match format {
        Format::Raw if !file_digest => {
            let size_bytes = raw_around_holes(&file, &pool, each)?;
            Ok(Pass { size_bytes, file_sha256: None })
        }
        Format::Qcow2 => {
            let size_bytes = super::qcow2::read_blocks(path, &pool, each)?;
            let file_sha256 = if file_digest { Some(hash_file(file)?) } else { None };
            Ok(Pass { size_bytes, file_sha256 })
        }
        Format::Raw | Format::Xz | Format::Zstd | Format::Gzip => {
            let hasher = file_digest.then(Sha256::new);
            let mut input = BufReader::with_capacity(INPUT_BUFFER, HashingReader { inner: file, hasher });
            let size_bytes = match format {
                Format::Xz => stream(super::xz::XzStreams::new(&mut input)?, &pool, each)?,
                Format::Zstd => stream(zstd::stream::read::Decoder::with_buffer(&mut input)?, &pool, each)?,
                Format::Gzip => stream(flate2::read::MultiGzDecoder::new(&mut input), &pool, each)?,
                _ => stream(&mut input, &pool, each)?,
            };
            if format != Format::Raw {
                trailing_garbage(&mut input)?;
            }
            let file_sha256 = input.into_inner().hasher.map(|h| hex::encode(h.finalize()));
            Ok(Pass { size_bytes, file_sha256 })
        }
    }
}

/// The file's first bytes, as many as it has up to `head.len()`.
pub fn read_head(path: &Path, head: &mut [u8]) -> io::Result<usize> {
    read_full(&mut File::open(path)?, head)
}

/// Blocks from a stream, in order: read in whole blocks, the last one padded with zeros.
fn stream(mut input: impl Read, pool: &BlockPool, each: &mut Sink) -> io::Result<u64> {
    let mut size = 0u64;
    let mut block = pool.take();
    for index in 0.. {
        let filled = read_full(&mut input, &mut block)?;
        if filled == 0 {
            break;
        }
        size += filled as u64;
        block[filled..].fill(0);
        if !is_zero(&block) {
            each(index, pool.share(std::mem::replace(&mut block, pool.take())))?;
        }
        if filled < BLOCK_SIZE {
            break;
        }
    }
    Ok(size)
}

/// A raw file, reading only what its file system holds data for.
fn raw_around_holes(file: &File, pool: &BlockPool, each: &mut Sink) -> io::Result<u64> {
    let size = file.metadata()?.len();
    let block_size = BLOCK_SIZE as u64;
    let mut block = pool.take();
    data_runs(file, size, |run| {
        for index in run {
            let offset = index * block_size;
            let length = (size - offset).min(block_size) as usize;
            file.read_exact_at(&mut block[..length], offset)?;
            block[length..].fill(0);
            if !is_zero(&block) {
                each(index, pool.share(std::mem::replace(&mut block, pool.take())))?;
            }
        }
        Ok(())
    })?;
    Ok(size)
}

/// What a raw file may hold in blocks with data, without reading it: the whole blocks its file
/// system holds data for (all of them where holes cannot be found). Written zeros count too.
pub fn raw_data_bytes_at_most(file: &File) -> io::Result<u64> {
    let mut blocks = 0;
    data_runs(file, file.metadata()?.len(), |run| {
        blocks += run.end - run.start;
        Ok(())
    })?;
    Ok(blocks * BLOCK_SIZE as u64)
}

/// The runs of whole blocks, in order, that hold data in a raw file of `size` bytes.
fn data_runs(file: &File, size: u64, mut each: impl FnMut(Range<u64>) -> io::Result<()>) -> io::Result<()> {
    let block_size = BLOCK_SIZE as u64;
    let mut position = 0u64;
    while position < size {
        let Some(data) = next_data(file, position)? else { break };
        let hole = next_hole(file, data)?.min(size);
        let run = data / block_size..hole.div_ceil(block_size);
        position = run.end * block_size;
        each(run)?;
    }
    Ok(())
}

/// Where data starts at or after `offset`; `None` when only a hole follows. File systems
/// without `SEEK_DATA` get treated as all data.
fn next_data(file: &File, offset: u64) -> io::Result<Option<u64>> {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(offset)) {
        Ok(at) => Ok(Some(at)),
        Err(rustix::io::Errno::NXIO) => Ok(None),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => Ok(Some(offset)),
        Err(errno) => Err(errno.into()),
    }
}

/// Where the data run at `offset` ends (the end of the file at the latest).
fn next_hole(file: &File, offset: u64) -> io::Result<u64> {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(offset)) {
        Ok(at) => Ok(at),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => Ok(u64::MAX),
        Err(errno) => Err(errno.into()),
    }
}

/// Fills `buffer` as far as the stream goes; fewer bytes only at its end.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Bytes after the last compressed stream mean a damaged or mislabelled file.
fn trailing_garbage(input: &mut impl Read) -> io::Result<()> {
    let mut rest = [0u8; 1];
    if read_full(input, &mut rest)? != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "data after the end of the compressed stream"));
    }
    Ok(())
}

/// The SHA-256 of the whole file, read in large pieces.
pub fn hash_file(file: File) -> io::Result<String> {
    let mut input = BufReader::with_capacity(INPUT_BUFFER, HashingReader { inner: file, hasher: Some(Sha256::new()) });
    io::copy(&mut input, &mut io::sink())?;
    Ok(hex::encode(input.into_inner().hasher.expect("set above").finalize()))
}

/// Hashes what passes through it, when asked to.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buffer[..read]);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn collect(path: &Path, format: Format, file_digest: bool) -> io::Result<(Vec<(u64, Bytes)>, Pass)> {
        let mut blocks = Vec::new();
        let pass = read_blocks(path, format, file_digest, &mut |index, data| {
            blocks.push((index, data));
            Ok(())
        })?;
        Ok((blocks, pass))
    }

    #[test]
    fn zero_blocks_are_skipped_and_the_tail_is_padded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.raw");
        let mut data = vec![0u8; BLOCK_SIZE];
        data.extend_from_slice(b"tail");
        std::fs::write(&path, &data).unwrap();
        for file_digest in [false, true] {
            let (blocks, pass) = collect(&path, Format::Raw, file_digest).unwrap();
            assert_eq!(pass.size_bytes, data.len() as u64);
            assert_eq!(blocks.len(), 1);
            let (index, tail) = &blocks[0];
            assert_eq!((*index, tail.len(), &tail[..4], is_zero(&tail[4..])), (1, BLOCK_SIZE, &b"tail"[..], true));
            assert_eq!(pass.file_sha256.is_some(), file_digest);
        }
    }

    #[test]
    fn holes_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.raw");
        let file = File::create(&path).unwrap();
        file.set_len(64 * 1024 * 1024 * 1024).unwrap();
        file.write_all_at(b"data", 40 * 1024 * 1024 * 1024 + 5).unwrap();
        // What this process read (`rchar`: every read and pread, whatever the page cache held).
        // Other tests read meanwhile too, but not gigabytes.
        let read_so_far = || -> u64 {
            let io = std::fs::read_to_string("/proc/self/io").unwrap();
            io.lines().find_map(|l| l.strip_prefix("rchar: ")).unwrap().trim().parse().unwrap()
        };
        let before = read_so_far();
        let (blocks, pass) = collect(&path, Format::Raw, false).unwrap();
        let read = read_so_far() - before;
        assert!(read < 1 << 30, "{read} bytes read for one block of data in a 64 GiB file");
        assert_eq!(pass.size_bytes, 64 * 1024 * 1024 * 1024);
        assert_eq!(blocks.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![40 * 2048]);
        assert_eq!(&blocks[0].1[5..9], b"data");
        // Known without reading it: the one block the file system holds data for.
        assert_eq!(raw_data_bytes_at_most(&File::open(&path).unwrap()).unwrap(), BLOCK_SIZE as u64);
    }

    #[test]
    fn a_truncated_or_damaged_stream_fails() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = (0..3 * BLOCK_SIZE).map(|i| (i % 251) as u8).collect();
        let compressed = zstd::encode_all(&raw[..], 3).unwrap();
        let path = dir.path().join("a.raw.zst");
        std::fs::write(&path, &compressed[..compressed.len() - 100]).unwrap();
        assert!(collect(&path, Format::Zstd, false).is_err());
        let mut trailing = compressed.clone();
        trailing.extend_from_slice(b"junk");
        std::fs::write(&path, &trailing).unwrap();
        assert!(collect(&path, Format::Zstd, false).is_err());
        std::fs::write(&path, &compressed).unwrap();
        let (blocks, pass) = collect(&path, Format::Zstd, true).unwrap();
        assert_eq!((blocks.len(), pass.size_bytes), (3, raw.len() as u64));
        assert_eq!(pass.file_sha256, Some(hex::encode(Sha256::digest(&compressed))));
    }
}
