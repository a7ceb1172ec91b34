//! xz files decoded by as many threads as there are cores.
//!
//! Images are published as `.raw.xz` made with `xz -T0`, which cuts the stream into blocks that
//! can be decoded independently; liblzma's multi-threaded decoder hands those blocks to its
//! threads (a file of one block, as single-threaded `xz` writes, is decoded by one thread as
//! before). That decoder reads one stream, so the streams of a concatenated file (`cat a.xz
//! b.xz`, which `xz -d` accepts) are decoded one after the other, skipping the stream padding
//! between them.

use std::io::{self, BufRead, Read};

use liblzma::bufread::XzDecoder;
use liblzma::stream::{MtStreamBuilder, Stream};

/// The memory the decoder's threads may use, decompressed blocks waiting for the upload
/// included; where one thread per core would need more, it uses fewer (one at the least). 12 MiB
/// gives two threads the 3 MiB blocks of `xz -T2 -1`; the upload holds fewer blocks in flight
/// while it decodes (see `BlockSource::reader_memory`), so that the whole upload stays within
/// 64 MiB when the sink is slow and blocks queue (24 MiB took it to 77 MiB: see
/// `bench/README.md`). Blocks of `xz -T0 -6` (24 MiB) get one thread.
pub(super) const THREADING_MEMORY_LIMIT: u64 = 12 * 1024 * 1024;

/// The decompressed bytes of every xz stream in `input`, in order.
pub struct XzStreams<R: BufRead> {
    /// The current stream's decoder; `None` once the input has no stream left.
    decoder: Option<XzDecoder<R>>,
}

impl<R: BufRead> XzStreams<R> {
    pub fn new(input: R) -> io::Result<XzStreams<R>> {
        Ok(XzStreams { decoder: Some(XzDecoder::new_stream(input, decoder()?)) })
    }
}

impl<R: BufRead> Read for XzStreams<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        while let Some(current) = self.decoder.as_mut() {
            let read = current.read(buffer)?;
            if read > 0 {
                return Ok(read);
            }
            // One stream ended; another may follow its padding.
            let mut input = self.decoder.take().expect("set: it was just read").into_inner();
            skip_padding(&mut input)?;
            if !input.fill_buf()?.is_empty() {
                self.decoder = Some(XzDecoder::new_stream(input, decoder()?));
            }
        }
        Ok(0)
    }
}

fn decoder() -> io::Result<Stream> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    MtStreamBuilder::new()
        .threads(threads)
        .memlimit_threading(THREADING_MEMORY_LIMIT)
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)
}

/// Stream padding: null bytes in multiples of four (the xz file format, section 2.2).
fn skip_padding(input: &mut impl BufRead) -> io::Result<()> {
    let mut skipped = 0usize;
    loop {
        let available = input.fill_buf()?;
        let zeros = available.iter().take_while(|&&b| b == 0).count();
        let done = zeros < available.len() || available.is_empty();
        input.consume(zeros);
        skipped += zeros;
        if done {
            break;
        }
    }
    if !skipped.is_multiple_of(4) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "xz stream padding is not a multiple of four bytes"));
    }
    Ok(())
}

/// The decompressed size of an xz file, from the indexes at the end of its streams, without
/// decoding anything: every xz stream ends with an index that records each block's sizes (the
/// xz file format, sections 2.1.2 and 4). Streams are walked from the last to the first, over
/// their padding; a file without a well-formed footer and index (truncated, or not xz) is an
/// error. The sizes are checked again when the file is decoded.
pub fn decompressed_size(file: &std::fs::File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let damaged = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("xz index: {why}"));
    let read_at = |length: u64, offset: u64| -> io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; length as usize];
        file.read_exact_at(&mut bytes, offset)?;
        Ok(bytes)
    };
    let mut end = file.metadata()?.len();
    let mut total = 0u64;
    while end > 0 {
        while end >= 4 && read_at(4, end - 4)? == [0; 4] {
            end -= 4;
        }
        if end < HEADER_SIZE * 2 {
            return Err(damaged("the file ends without a stream footer (truncated?)"));
        }
        let footer = read_at(HEADER_SIZE, end - HEADER_SIZE)?;
        if footer[10..12] != *b"YZ" {
            return Err(damaged("the file ends without a stream footer (truncated?)"));
        }
        let backward = (u64::from(u32::from_le_bytes(footer[4..8].try_into().expect("4 bytes"))) + 1) * 4;
        let index_start = (end - HEADER_SIZE).checked_sub(backward).ok_or_else(|| damaged("index out of the file"))?;
        let index = read_at(backward, index_start)?;
        let (blocks_size, uncompressed) = parse_index(&index).ok_or_else(|| damaged("malformed index"))?;
        let start =
            index_start.checked_sub(blocks_size + HEADER_SIZE).ok_or_else(|| damaged("blocks out of the file"))?;
        if read_at(6, start)? != *b"\xfd7zXZ\0" {
            return Err(damaged("no stream header where the index places it"));
        }
        total = total.checked_add(uncompressed).ok_or_else(|| damaged("sizes overflow"))?;
        end = start;
    }
    Ok(total)
}

/// Stream headers and footers are 12 bytes.
const HEADER_SIZE: u64 = 12;

/// The blocks' total size in the file (each padded to four bytes) and their decompressed size,
/// from one stream's index (indicator, record count, records, padding, CRC32).
fn parse_index(index: &[u8]) -> Option<(u64, u64)> {
    let (&indicator, mut rest) = index.split_first()?;
    if indicator != 0 {
        return None;
    }
    let records = varint(&mut rest)?;
    let (mut blocks, mut uncompressed) = (0u64, 0u64);
    for _ in 0..records {
        let unpadded = varint(&mut rest)?;
        blocks = blocks.checked_add(unpadded.checked_add(3)? / 4 * 4)?;
        uncompressed = uncompressed.checked_add(varint(&mut rest)?)?;
    }
    // What is left is the padding to four bytes and the CRC32.
    (rest.len() >= 4 && rest.len() < 8).then_some((blocks, uncompressed))
}

/// xz's multibyte integer: seven bits per byte, least significant first, at most nine bytes.
fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (position, &byte) in input.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7f) << (7 * position);
        if byte & 0x80 == 0 {
            *input = &input[position + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn compress(data: &[u8], threads: u32) -> Vec<u8> {
        let stream = MtStreamBuilder::new().threads(threads).preset(1).block_size(64 * 1024).encoder().unwrap();
        let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn decode(file: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut streams = XzStreams::new(file)?;
        streams.read_to_end(&mut out)?;
        Ok(out)
    }

    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..len).map(|i| if i % 3 == 0 { rng.u8(..) } else { (i % 7) as u8 }).collect()
    }

    #[test]
    fn a_file_of_many_blocks_decodes_whole() {
        let data = sample(1024 * 1024, 1);
        assert_eq!(decode(&compress(&data, 2)).unwrap(), data);
    }

    #[test]
    fn concatenated_streams_with_padding_decode_in_order() {
        let (first, second) = (sample(300 * 1024, 2), sample(200 * 1024, 3));
        let mut file = compress(&first, 2);
        file.extend_from_slice(&[0; 8]);
        file.extend(compress(&second, 1));
        file.extend_from_slice(&[0; 4]);
        assert_eq!(decode(&file).unwrap(), [first, second].concat());
    }

    #[test]
    fn damage_padding_and_trailing_bytes_are_errors() {
        let data = sample(400 * 1024, 4);
        let file = compress(&data, 2);
        assert!(decode(&file[..file.len() / 2]).is_err(), "truncated");
        let mut flipped = file.clone();
        flipped[file.len() / 2] ^= 0x55;
        assert!(decode(&flipped).is_err(), "damaged");
        assert!(decode(&[&file[..], &[0; 3]].concat()).is_err(), "padding of three bytes");
        assert!(decode(&[&file[..], b"junk"].concat()).is_err(), "trailing bytes");
        assert!(decode(&[]).is_err(), "no stream at all");
    }

    fn size_of(file: &[u8]) -> io::Result<u64> {
        let mut temporary = tempfile::tempfile().unwrap();
        temporary.write_all(file).unwrap();
        decompressed_size(&temporary)
    }

    #[test]
    fn the_indexes_give_the_size_without_decoding() {
        let (first, second) = (sample(300 * 1024 + 7, 5), sample(200 * 1024, 6));
        let one = compress(&first, 2);
        assert_eq!(size_of(&one).unwrap(), first.len() as u64, "one stream of many blocks");
        let mut single = liblzma::write::XzEncoder::new(Vec::new(), 1);
        single.write_all(&second).unwrap();
        assert_eq!(size_of(&single.finish().unwrap()).unwrap(), second.len() as u64, "one block");
        let mut both = one.clone();
        both.extend_from_slice(&[0; 8]);
        both.extend(compress(&second, 1));
        both.extend_from_slice(&[0; 4]);
        assert_eq!(size_of(&both).unwrap(), (first.len() + second.len()) as u64, "concatenated, padded");
        assert!(size_of(&one[..one.len() - 5]).is_err(), "truncated");
        assert!(size_of(&one[1..]).is_err(), "its start cut off");
        assert!(size_of(b"not xz at all, not at all").is_err());
        assert!(size_of(&[]).unwrap() == 0, "an empty file holds nothing (inspection refuses it)");
    }
}
