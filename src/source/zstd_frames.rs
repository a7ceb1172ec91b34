//! The decompressed size of a zstd file from its frame headers, without decoding: each frame
//! may record its content size (the `zstd` tool does when it compresses a file), and its
//! blocks' headers say how far to skip to the next frame (RFC 8878, section 3.1).

use std::io::{self, BufRead, BufReader, Read, Seek};

const FRAME_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames (RFC 8878, 3.1.2) carry no image data: magic numbers 0x184D2A50 to 5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// The sum of the frames' content sizes, `None` when a frame does not record its size (a
/// stream compressed from a pipe); an error when the file is not well-formed zstd to its end.
pub fn decompressed_size(file: &std::fs::File) -> io::Result<Option<u64>> {
    let mut input = BufReader::new(file);
    let mut total = 0u64;
    while !input.fill_buf()?.is_empty() {
        let magic = u32::from_le_bytes(read_array(&mut input)?);
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let length = u32::from_le_bytes(read_array(&mut input)?);
            skip(&mut input, u64::from(length))?;
            continue;
        }
        if magic != FRAME_MAGIC {
            return Err(damaged("not a zstd frame where one should begin"));
        }
        let Some(size) = frame_content_size(&mut input)? else {
            return Ok(None);
        };
        total = total.checked_add(size).ok_or_else(|| damaged("sizes overflow"))?;
    }
    Ok(Some(total))
}

/// Reads one frame after its magic number: its content size from the header, then over its
/// blocks and checksum to the next frame.
fn frame_content_size(input: &mut BufReader<&std::fs::File>) -> io::Result<Option<u64>> {
    let [descriptor] = read_array(input)?;
    let single_segment = descriptor & 0x20 != 0;
    let has_checksum = descriptor & 0x04 != 0;
    let dictionary_bytes = [0u64, 1, 2, 4][usize::from(descriptor & 0x03)];
    skip(input, u64::from(!single_segment) + dictionary_bytes)?;
    let size = match (descriptor >> 6, single_segment) {
        (0, false) => None,
        (0, true) => Some(u64::from(read_array::<1>(input)?[0])),
        (1, _) => Some(u64::from(u16::from_le_bytes(read_array(input)?)) + 256),
        (2, _) => Some(u64::from(u32::from_le_bytes(read_array(input)?))),
        _ => Some(u64::from_le_bytes(read_array(input)?)),
    };
    loop {
        let header = read_array::<3>(input)?;
        let header = u32::from(header[0]) | u32::from(header[1]) << 8 | u32::from(header[2]) << 16;
        let (last, kind, length) = (header & 1 != 0, (header >> 1) & 3, u64::from(header >> 3));
        match kind {
            0 | 2 => skip(input, length)?,
            1 => skip(input, 1)?,
            _ => return Err(damaged("a reserved block type")),
        }
        if last {
            break;
        }
    }
    skip(input, if has_checksum { 4 } else { 0 })?;
    Ok(size)
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    input.read_exact(&mut bytes).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => damaged("the file ends inside a frame (truncated?)"),
        _ => e,
    })?;
    Ok(bytes)
}

/// Skips `length` bytes that must be in the file.
fn skip(input: &mut BufReader<&std::fs::File>, length: u64) -> io::Result<()> {
    let offset = i64::try_from(length).map_err(|_| damaged("a length out of range"))?;
    input.seek_relative(offset)?;
    let position = input.stream_position()?;
    if position > input.get_ref().metadata()?.len() {
        return Err(damaged("the file ends inside a frame (truncated?)"));
    }
    Ok(())
}

fn damaged(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd frames: {why}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn size_of(file: &[u8]) -> io::Result<Option<u64>> {
        let mut temporary = tempfile::tempfile().unwrap();
        temporary.write_all(file).unwrap();
        temporary.rewind().unwrap();
        decompressed_size(&temporary)
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..len).map(|i| if i % 4 == 0 { rng.u8(..) } else { (i % 11) as u8 }).collect()
    }

    /// A frame as the `zstd` tool writes a file: the content size in its header.
    fn frame(data: &[u8], checksum: bool) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.set_pledged_src_size(Some(data.len() as u64)).unwrap();
        encoder.include_checksum(checksum).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn frame_headers_give_the_size_without_decoding() {
        let (first, second) = (sample(700 * 1024 + 5), sample(100));
        assert_eq!(size_of(&frame(&first, true)).unwrap(), Some(first.len() as u64));
        let mut both = frame(&first, false);
        both.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        both.extend_from_slice(&3u32.to_le_bytes());
        both.extend_from_slice(b"abc");
        both.extend(frame(&second, true));
        assert_eq!(size_of(&both).unwrap(), Some((first.len() + second.len()) as u64), "frames and a skippable one");
        assert_eq!(size_of(&frame(&[], false)).unwrap(), Some(0));

        // Compressed from a pipe: no size recorded, so none can be given.
        let streamed = zstd::stream::encode_all(&first[..], 3).unwrap();
        assert_eq!(size_of(&streamed).unwrap(), None);

        let whole = frame(&first, true);
        assert!(size_of(&whole[..whole.len() - 10]).is_err(), "truncated");
        assert!(size_of(&[&whole[..], b"junk"].concat()).is_err(), "trailing bytes");
        assert!(size_of(b"not zstd").is_err());
    }
}
