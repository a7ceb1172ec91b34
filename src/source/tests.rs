use std::io::Write;
use std::os::unix::fs::FileExt;

use super::*;

/// Two data blocks in three, and a short tail: 3 blocks and 4 bytes.
fn image() -> Vec<u8> {
    let mut data = vec![0u8; 3 * BLOCK_SIZE + 4];
    data[..5].copy_from_slice(b"first");
    data[2 * BLOCK_SIZE..2 * BLOCK_SIZE + 6].copy_from_slice(b"second");
    data[3 * BLOCK_SIZE..].copy_from_slice(b"tail");
    data
}

/// What the upload does with an image not read before planning: one pass, hashing each block
/// on the way, then what it found is recorded.
fn read_as_the_upload_does(unread: &SourceInfo) {
    let mut blocks = Vec::new();
    unread
        .read_blocks(&mut |index, block| {
            blocks.push((index, Sha256::digest(&block).into()));
            Ok(())
        })
        .unwrap();
    BlockSource::read(unread, blocks);
}

#[test]
fn the_content_address_is_stable_and_documented() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.raw");
    std::fs::write(&path, image()).unwrap();
    let info = inspect_with(&path, None, None).unwrap();
    assert_eq!(
        (info.size_bytes, info.format, info.data_blocks().unwrap().len(), info.from_cache),
        (3 * 524288 + 4, Format::Raw, 3, false)
    );
    // Computed by hand from the definition in `content_address`'s documentation; a change here
    // re-uploads every user's images.
    let mut by_hand = Sha256::new();
    by_hand.update(b"amiplan-blocks-v1\0");
    by_hand.update((3 * 524288u64 + 4).to_le_bytes());
    let data = image();
    for index in [0u64, 2, 3] {
        let mut block = vec![0u8; BLOCK_SIZE];
        let start = index as usize * BLOCK_SIZE;
        let end = (start + BLOCK_SIZE).min(data.len());
        block[..end - start].copy_from_slice(&data[start..end]);
        by_hand.update(index.to_le_bytes());
        by_hand.update(Sha256::digest(&block));
    }
    assert_eq!(info.address.get().unwrap(), format!("sha256-blocks:{}", hex::encode(by_hand.finalize())));
    assert_eq!(
        info.address.get().unwrap(),
        "sha256-blocks:a63cd07f3122a013b817a5b9c64d97ecb45ec6141e6a83fd9234e1e332db90a6"
    );
}

#[test]
fn a_changed_block_or_size_changes_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.raw");
    std::fs::write(&path, image()).unwrap();
    let before = inspect_with(&path, None, None).unwrap().address;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"X", BLOCK_SIZE as u64 + 7).unwrap();
    let changed = inspect_with(&path, None, None).unwrap().address;
    assert_ne!(before, changed);
    file.write_all_at(&[0], BLOCK_SIZE as u64 + 7).unwrap();
    assert_eq!(inspect_with(&path, None, None).unwrap().address, before);
    file.set_len(4 * BLOCK_SIZE as u64).unwrap();
    assert_ne!(inspect_with(&path, None, None).unwrap().address, before, "trailing zeros still change the size");
}

#[test]
fn every_format_has_the_address_of_its_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = image();
    let raw = dir.path().join("a.raw");
    std::fs::write(&raw, &data).unwrap();
    let address = inspect_with(&raw, None, None).unwrap().address;
    let zst = dir.path().join("a.raw.zst");
    std::fs::write(&zst, zstd::encode_all(&data[..], 3).unwrap()).unwrap();
    let xz = dir.path().join("a.raw.xz");
    let mut encoder = liblzma::write::XzEncoder::new(std::fs::File::create(&xz).unwrap(), 6);
    encoder.write_all(&data).unwrap();
    encoder.finish().unwrap();
    let gz = dir.path().join("a.raw.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    encoder.write_all(&data).unwrap();
    encoder.finish().unwrap();
    for (path, format) in [(zst, Format::Zstd), (xz, Format::Xz), (gz, Format::Gzip)] {
        let info = inspect_with(&path, None, None).unwrap();
        assert_eq!((info.format, info.size_bytes, &info.address), (format, data.len() as u64, &address), "{format}");
    }
}

#[test]
fn the_cache_answers_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = dir.path().join("a.raw");
    std::fs::write(&path, image()).unwrap();
    let first = inspect_with(&path, None, Some(&cache)).unwrap();
    let second = inspect_with(&path, None, Some(&cache)).unwrap();
    assert!(!first.from_cache && second.from_cache);
    assert_eq!((&first.address, first.data_blocks()), (&second.address, second.data_blocks()));

    // A declared digest the entry does not know means one more read; then it knows.
    let digest = hex::encode(Sha256::digest(image()));
    assert!(!inspect_with(&path, Some(&digest), Some(&cache)).unwrap().from_cache);
    assert!(inspect_with(&path, Some(&digest), Some(&cache)).unwrap().from_cache);
    assert_eq!(file_sha256(&path, Some(&cache)).unwrap(), digest);

    // Modification time alone (same size, same bytes).
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)).unwrap();
    assert!(!inspect_with(&path, None, Some(&cache)).unwrap().from_cache);
    assert!(inspect_with(&path, None, Some(&cache)).unwrap().from_cache);
    // Size.
    file.set_len(4 * BLOCK_SIZE as u64).unwrap();
    let grown = inspect_with(&path, None, Some(&cache)).unwrap();
    assert!(!grown.from_cache);
    assert_ne!(grown.address, first.address);
    // Inode: the same bytes under the same name, written anew.
    let replacement = dir.path().join("b.raw");
    std::fs::write(&replacement, image()).unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    let renamed = inspect_with(&path, None, Some(&cache)).unwrap();
    assert!(!renamed.from_cache);
    assert_eq!(renamed.address, first.address);
    // A damaged entry is ignored, not trusted.
    for entry in std::fs::read_dir(&cache).unwrap() {
        let entry = entry.unwrap().path();
        let text = std::fs::read_to_string(&entry).unwrap().replace("sha256-blocks:", "sha256-blocks:0");
        std::fs::write(&entry, text).unwrap();
    }
    assert!(!inspect_with(&path, None, Some(&cache)).unwrap().from_cache);
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.raw");
    std::fs::write(&path, b"abc").unwrap();
    let info = inspect_with(&path, None, None).unwrap();
    assert_eq!((info.size_bytes, info.min_volume_gib(), info.data_bytes()), (3, 1, Some(BLOCK_SIZE as u64)));
    let wrong = "0".repeat(64);
    let error = inspect_with(&path, Some(&wrong), None).unwrap_err();
    assert!(matches!(error, SourceError::DigestMismatch { .. }), "{error}");
    assert!(error.to_string().contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

    let named = dir.path().join("a.raw.xz");
    std::fs::write(&named, image()).unwrap();
    let error = inspect_with(&named, None, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("source image {} is named as xz but holds raw; rename it or fix the download", named.display())
    );

    let empty = dir.path().join("empty.raw");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(inspect_with(&empty, None, None), Err(SourceError::Empty { .. })));

    let truncated = dir.path().join("t.raw.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&image()).unwrap();
    let gz = encoder.finish().unwrap();
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    let error = inspect_with(&truncated, None, None).unwrap_err();
    assert!(matches!(error, SourceError::Damaged { format: Format::Gzip, .. }), "{error}");
}

#[test]
fn an_xz_image_is_read_once_by_its_upload_and_then_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = dir.path().join("a.raw.xz");
    let mut encoder = liblzma::write::XzEncoder::new(std::fs::File::create(&path).unwrap(), 1);
    encoder.write_all(&image()).unwrap();
    encoder.finish().unwrap();
    let unread = look(&path, None, Some(&cache), true).unwrap();
    assert_eq!(
        (unread.size_bytes, unread.format, unread.data_blocks(), unread.address.get()),
        (image().len() as u64, Format::Xz, None, None)
    );
    assert_eq!(unread.address.planned(), COMPUTED_DURING_UPLOAD);
    assert_eq!(unread.reader_memory(), xz::THREADING_MEMORY_LIMIT, "its decoder's memory is counted");
    assert!(format!("{unread:?}").contains("identity"), "a token of an unread image changes with its file");

    read_as_the_upload_does(&unread);
    let raw = dir.path().join("a.raw");
    std::fs::write(&raw, image()).unwrap();
    assert_eq!(unread.address, inspect_with(&raw, None, None).unwrap().address, "the image's address");
    let again = look(&path, None, Some(&cache), true).unwrap();
    assert!(again.from_cache, "remembered: the next plan does not read it");
    assert_eq!(again.address, unread.address);

    // Read before planning instead, when something exists to compare with: the same address.
    let other = look(&path, None, None, true).unwrap();
    other.read_now().unwrap();
    assert_eq!(other.address, unread.address);

    // Declared file digests are checked before anything is uploaded: no deferring then.
    let digest = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    let checked = look(&path, Some(&digest), None, true).unwrap();
    assert!(checked.data_blocks().is_some());
}

#[test]
fn an_unread_source_refuses_a_file_that_lies_about_its_size_or_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.raw.xz");
    let write = |data: &[u8]| {
        let mut encoder = liblzma::write::XzEncoder::new(std::fs::File::create(&path).unwrap(), 1);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap();
    };
    write(&image());
    let unread = look(&path, None, None, true).unwrap();
    let identity = FileIdentity::of(&path).unwrap();
    let lying = SourceInfo::unread(&path, Format::Xz, unread.size_bytes + 1, identity);
    let error = lying.read_now().unwrap_err();
    assert!(error.to_string().contains("its headers say 1572869"), "{error}");
    write(&image()[..BLOCK_SIZE]);
    let error = unread.read_blocks(&mut |_, _| Ok(())).unwrap_err();
    assert!(error.to_string().contains("not the 1572868 it was inspected with"), "{error}");
    assert!(matches!(unread.read_now(), Err(SourceError::Changed { .. })));
    assert!(unread.unchanged().is_err());

    std::fs::write(&path, b"\xfd7zXZ\0 but cut short").unwrap();
    let error = look(&path, None, None, true).unwrap_err();
    assert!(error.to_string().contains("a.raw.xz (xz): xz index"), "{error}");
}

#[test]
fn a_zstd_image_is_left_for_its_upload_only_when_its_frames_record_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.raw.zst");
    let mut encoder = zstd::stream::write::Encoder::new(std::fs::File::create(&path).unwrap(), 3).unwrap();
    encoder.set_pledged_src_size(Some(image().len() as u64)).unwrap();
    encoder.write_all(&image()).unwrap();
    encoder.finish().unwrap();
    let unread = look(&path, None, None, true).unwrap();
    assert_eq!((unread.size_bytes, unread.format, unread.data_blocks()), (image().len() as u64, Format::Zstd, None));

    // From a pipe, zstd records no size: the image is read before planning.
    std::fs::write(&path, zstd::stream::encode_all(&image()[..], 3).unwrap()).unwrap();
    let read = look(&path, None, None, true).unwrap();
    assert_eq!((read.size_bytes, read.data_blocks().map(<[_]>::len)), (image().len() as u64, Some(3)));
}

#[test]
fn a_raw_image_is_left_for_its_upload_its_plan_bounded_by_the_blocks_holding_data() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // 64 blocks, mostly holes: data in blocks 3 and 40, zeros written over block 10.
    let path = dir.path().join("a.raw");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(64 * BLOCK_SIZE as u64).unwrap();
    file.write_all_at(b"three", 3 * BLOCK_SIZE as u64).unwrap();
    file.write_all_at(&[0u8; BLOCK_SIZE], 10 * BLOCK_SIZE as u64).unwrap();
    file.write_all_at(b"forty", 40 * BLOCK_SIZE as u64 + 7).unwrap();
    let unread = look(&path, None, Some(&cache), true).unwrap();
    assert_eq!(
        (unread.size_bytes, unread.format, unread.data_blocks(), unread.address.get()),
        (64 * BLOCK_SIZE as u64, Format::Raw, None, None)
    );
    assert_eq!(unread.data_bytes_at_most(), 3 * BLOCK_SIZE as u64, "the written zeros count, the holes do not");
    let said = crate::render::sources(std::iter::once(("s", &unread)));
    assert!(said.contains("(raw, 32.0 MiB image, at most 1.5 MiB to upload), not read yet"), "{said}");
    assert_eq!(unread.reader_memory(), 0);

    // Read by its upload: then the address is the image's, the bound is exact, and the next
    // plan reads nothing.
    read_as_the_upload_does(&unread);
    assert_eq!(unread.address, inspect_with(&path, None, None).unwrap().address);
    assert_eq!(unread.data_bytes_at_most(), 2 * BLOCK_SIZE as u64);
    assert!(look(&path, None, Some(&cache), true).unwrap().from_cache);

    let empty = dir.path().join("empty.raw");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(look(&empty, None, None, true), Err(SourceError::Empty { .. })));
}
