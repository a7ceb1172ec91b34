//! EBS direct upload: a local raw image into a new snapshot, block by block, without an instance.
//! Memory is bounded by `concurrency` blocks in flight plus one 32-byte digest per written block.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::AwsCloud;
use crate::cloud::{CloudError, ErrorClass, SnapshotUpload};

/// EBS snapshots store 512 KiB blocks. StartSnapshot reports the size too, but emulators report
/// other numbers (moto says 512 bytes while storing 512 KiB blocks), and a client that trusts the
/// field sends a thousand times more requests; AWS documents this value as fixed.
pub const BLOCK_SIZE: usize = 512 * 1024;

/// Minutes a started snapshot may stay without a block before EBS marks it `error`; a run killed
/// mid-upload therefore leaves a snapshot that fails on its own, and the next plan replaces it.
const START_SNAPSHOT_TIMEOUT_MINUTES: i32 = 60;

/// A written block's index and digest, `None` for a skipped zero block, or the failed index.
type BlockResult = Result<Option<(u64, [u8; 32])>, (u64, CloudError)>;

impl AwsCloud {
    pub(super) async fn upload(&self, region: &str, upload: &SnapshotUpload) -> Result<String, CloudError> {
        let ebs = self.ebs(region);
        let file = File::open(&upload.source).map_err(|e| local_error(region, &upload.source, e))?;
        let file = Arc::new(file);
        let tags: Vec<Tag> = upload.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let mut start = ebs
            .start_snapshot()
            .volume_size(i64::from(upload.volume_size_gib))
            .client_token(&upload.client_token)
            .description(&upload.description)
            .timeout(START_SNAPSHOT_TIMEOUT_MINUTES)
            .set_tags(Some(tags));
        if upload.encrypted {
            start = start.encrypted(true).set_kms_key_arn(upload.kms_key.clone());
        }
        let started = self.call("StartSnapshot", region).send(|| start.clone().send()).await?;
        let snapshot_id = started.snapshot_id.ok_or_else(|| {
            CloudError::new("StartSnapshot", region, ErrorClass::Fatal, "no snapshot id in the answer")
        })?;
        self.upload_blocks(region, upload, file, snapshot_id).await
    }

    async fn upload_blocks(
        &self,
        region: &str,
        upload: &SnapshotUpload,
        file: Arc<File>,
        snapshot_id: String,
    ) -> Result<String, CloudError> {
        let client = self.ebs(region);
        let ebs = &client;
        let concurrency = self.tuning.upload_concurrency;
        let block_count = upload.size_bytes.div_ceil(BLOCK_SIZE as u64);
        let results: Vec<BlockResult> = futures::stream::iter(0..block_count)
            .map(|index| {
                let file = Arc::clone(&file);
                let snapshot_id = snapshot_id.clone();
                async move {
                    let block = read_block(file, index, upload.size_bytes)
                        .await
                        .map_err(|e| (index, local_error(region, &upload.source, e)))?;
                    let Some(block) = block else { return Ok(None) };
                    let digest: [u8; 32] = Sha256::digest(&block).into();
                    let checksum = BASE64.encode(digest);
                    self.call("PutSnapshotBlock", region)
                        .on(&snapshot_id)
                        .fresh()
                        .send(|| {
                            ebs.put_snapshot_block()
                                .snapshot_id(&snapshot_id)
                                .block_index(index as i32)
                                .block_data(ByteStream::from(block.clone()))
                                .data_length(BLOCK_SIZE as i32)
                                .checksum(&checksum)
                                .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                                .send()
                        })
                        .await
                        .map_err(|e| (index, e))?;
                    Ok(Some((index, digest)))
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;

        let mut digests = BTreeMap::new();
        let mut failed = Vec::new();
        for result in results {
            match result {
                Ok(Some((index, digest))) => {
                    digests.insert(index, digest);
                }
                Ok(None) => {}
                Err(failure) => failed.push(failure),
            }
        }
        if let Some((_, first)) = failed.first() {
            let blocks: Vec<String> = failed.iter().take(10).map(|(i, _)| i.to_string()).collect();
            let message =
                format!("{} block(s) failed (blocks {}…); first error: {first}", failed.len(), blocks.join(", "));
            let error = CloudError::new("PutSnapshotBlock", region, first.class, message).with_code(first.code.clone());
            return Err(error.on(&snapshot_id));
        }

        let checksum = linear_checksum(digests.values());
        self.call("CompleteSnapshot", region)
            .on(&snapshot_id)
            .fresh()
            .send(|| {
                ebs.complete_snapshot()
                    .snapshot_id(&snapshot_id)
                    .changed_blocks_count(digests.len() as i32)
                    .checksum(&checksum)
                    .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                    .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
                    .send()
            })
            .await?;
        Ok(snapshot_id)
    }
}

/// Reads block `index`, zero-padded to a full block; `None` when it is all zeros (EBS reads
/// unwritten blocks as zeros, so they need no request).
async fn read_block(file: Arc<File>, index: u64, size: u64) -> std::io::Result<Option<Vec<u8>>> {
    tokio::task::spawn_blocking(move || {
        let offset = index * BLOCK_SIZE as u64;
        let len = (size - offset).min(BLOCK_SIZE as u64) as usize;
        let mut block = vec![0u8; BLOCK_SIZE];
        file.read_exact_at(&mut block[..len], offset)?;
        Ok(if is_zero(&block) { None } else { Some(block) })
    })
    .await
    .expect("block reads do not panic")
}

fn is_zero(block: &[u8]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// EBS's LINEAR aggregate: SHA-256 over the written blocks' raw digests in block order, base64.
pub fn linear_checksum<'a>(digests: impl Iterator<Item = &'a [u8; 32]>) -> String {
    let mut hasher = Sha256::new();
    for digest in digests {
        hasher.update(digest);
    }
    BASE64.encode(hasher.finalize())
}

fn local_error(region: &str, path: &std::path::Path, error: std::io::Error) -> CloudError {
    CloudError::new("PutSnapshotBlock", region, ErrorClass::Fatal, format!("reading {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_checksum_hashes_digests_in_order() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let mut concatenated = Vec::new();
        concatenated.extend_from_slice(&a);
        concatenated.extend_from_slice(&b);
        assert_eq!(linear_checksum([&a, &b].into_iter()), BASE64.encode(Sha256::digest(&concatenated)));
        assert_ne!(linear_checksum([&a, &b].into_iter()), linear_checksum([&b, &a].into_iter()));
    }

    #[tokio::test]
    async fn zero_blocks_are_skipped_and_the_tail_is_padded() {
        let path = std::env::temp_dir().join(format!("amiplan-blocks-{}", std::process::id()));
        let mut data = vec![0u8; BLOCK_SIZE];
        data.extend_from_slice(b"tail");
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let size = data.len() as u64;
        assert_eq!(read_block(Arc::clone(&file), 0, size).await.unwrap(), None);
        let tail = read_block(file, 1, size).await.unwrap().unwrap();
        assert_eq!((tail.len(), &tail[..4], is_zero(&tail[4..])), (BLOCK_SIZE, &b"tail"[..], true));
    }
}
