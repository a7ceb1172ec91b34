//! qcow2 images, read through imago (a qcow2 reader by one of QEMU's block-layer maintainers),
//! compressed clusters included, without converting to a raw file first.

use std::io;
use std::path::Path;

use imago::qcow2::Qcow2;
use imago::{DenyImplicitOpenGate, FormatAccess, FormatDriverBuilder, Storage, StorageOpenOptions};

use super::pool::BlockPool;
use super::{BLOCK_SIZE, Sink, is_zero};

/// Reads the guest disk in block order and hands every block with data to `each`; returns the
/// disk's size. An image with a backing or external data file is refused: it names other files
/// on this machine, which a downloaded image has no business reading.
pub fn read_blocks(path: &Path, pool: &BlockPool, each: &mut Sink) -> io::Result<u64> {
    // Called from blocking threads: imago's reads run on the caller's runtime if there is one,
    // one at a time, and `each` runs outside them (it may block, handing the block on).
    let own;
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle,
        Err(_) => {
            own = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            own.handle().clone()
        }
    };
    let disk = handle.block_on(async {
        let options = StorageOpenOptions::new().filename(path).write(false);
        let file = imago::file::File::open(options).await?;
        let image = Qcow2::<imago::file::File>::builder(file)
            .write(false)
            .open(DenyImplicitOpenGate::default())
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("not a qcow2 image amiplan can read alone: {e}")))?;
        Ok::<_, io::Error>(FormatAccess::new(image))
    })?;
    let size = disk.size();
    let mut block = pool.take();
    for index in 0..size.div_ceil(BLOCK_SIZE as u64) {
        let offset = index * BLOCK_SIZE as u64;
        let length = (size - offset).min(BLOCK_SIZE as u64) as usize;
        handle.block_on(disk.read(&mut block[..length], offset))?;
        block[length..].fill(0);
        if !is_zero(&block) {
            each(index, pool.share(std::mem::replace(&mut block, pool.take())))?;
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// qemu-img is on every machine of this kind (qemu-utils); the test fails loudly without it.
    #[test]
    fn a_compressed_qcow2_reads_as_its_raw_image() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a.raw");
        let mut data = vec![0u8; 3 * BLOCK_SIZE + 1024];
        data[10..15].copy_from_slice(b"first");
        data[2 * BLOCK_SIZE + 7..2 * BLOCK_SIZE + 11].copy_from_slice(b"last");
        *data.last_mut().unwrap() = 9;
        std::fs::write(&raw, &data).unwrap();
        let qcow2 = dir.path().join("a.qcow2");
        let status = std::process::Command::new("qemu-img")
            .args(["convert", "-c", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow2)
            .status()
            .expect("qemu-img (qemu-utils) is installed");
        assert!(status.success());
        let mut blocks = Vec::new();
        let size = read_blocks(&qcow2, &BlockPool::new(), &mut |index, block| {
            blocks.push((index, block));
            Ok(())
        })
        .unwrap();
        assert_eq!(size, data.len() as u64);
        let indexes: Vec<u64> = blocks.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [0, 2, 3]);
        assert_eq!(&blocks[0].1[..BLOCK_SIZE], &data[..BLOCK_SIZE]);
        assert_eq!(&blocks[2].1[..1024], &data[3 * BLOCK_SIZE..]);
    }
}
