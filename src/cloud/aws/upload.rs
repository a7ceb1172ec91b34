//! EBS direct upload: a local image into a new snapshot, block by block, without an instance.
//!
//! One thread reads the image (raw around its holes, compressed ones decompressed as a stream,
//! qcow2 through imago) and hands blocks with data to the requests through a short queue; each
//! block goes with the digest the inspection found, so nothing is hashed twice, or, for an image
//! not read before planning, with the digest the reading thread computes; EBS checks every
//! block against it. Memory is bounded by the blocks in flight and queued.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};

use super::AwsCloud;
use crate::cloud::{BlockDigest, BlockSource, CloudError, EBS_BLOCK_SIZE, ErrorClass, Progress, SnapshotUpload};

/// Minutes a started snapshot may stay without a block before EBS marks it `error`; a run killed
/// mid-upload therefore leaves a snapshot that fails on its own, and the next plan replaces it.
const START_SNAPSHOT_TIMEOUT_MINUTES: i32 = 60;

/// EBS allows 1,000 PutSnapshotBlock requests per second per snapshot ("Amazon EBS quotas",
/// https://docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html); requests are
/// spaced to stay under it whatever the latency, so a fast link is not throttled into retries.
pub(super) const PUT_INTERVAL: Duration = Duration::from_micros(1_100);

/// Blocks read ahead of the requests: enough to keep them fed while the reader decompresses.
const QUEUED_BLOCKS: usize = 8;

/// How many blocks an upload sends at once: the tuned number, less the blocks' worth of memory
/// the reader needs for itself (at most half of them), so that decoding a compressed image does
/// not raise the upload's peak memory. A trade of speed for memory: xz's 12 MiB leave 24 of 48,
/// about 240 blocks a second at the 100 ms per request AWS's guide counts, where two cores
/// decode about 360 (`bench/README.md`).
fn blocks_in_flight(tuned: usize, reader_memory: u64) -> usize {
    let reader_blocks = usize::try_from(reader_memory.div_ceil(EBS_BLOCK_SIZE as u64)).unwrap_or(usize::MAX);
    (tuned - reader_blocks.min(tuned / 2)).max(1)
}

/// A written block's index, or the failed index and why.
type BlockResult = Result<u64, (u64, CloudError)>;

impl AwsCloud {
    pub(super) async fn upload(
        &self,
        region: &str,
        upload: &SnapshotUpload,
        progress: &dyn Progress,
    ) -> Result<String, CloudError> {
        let ebs = self.ebs(region);
        unchanged(region, upload.source.as_ref())?;
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
        let reporting = Reporting { progress, work: &upload.label };
        let blocks = self
            .upload_blocks(region, &upload.source, &snapshot_id, reporting)
            .await
            .map_err(|e| e.on(&snapshot_id))?;
        self.complete(region, &blocks, &snapshot_id).await?;
        Ok(snapshot_id)
    }

    /// Sends every block with data and returns their digests; fails, before CompleteSnapshot, if
    /// any block failed or the image could not be read as it was inspected.
    async fn upload_blocks(
        &self,
        region: &str,
        source: &Arc<dyn BlockSource>,
        snapshot_id: &str,
        reporting: Reporting<'_>,
    ) -> Result<Vec<BlockDigest>, CloudError> {
        let client = self.ebs(region);
        let ebs = &client;
        let (sender, mut receiver) = mpsc::channel::<(u64, Bytes, [u8; 32])>(QUEUED_BLOCKS);
        // Decided once: another upload of the same image may finish reading it meanwhile.
        let inspected = source.blocks().map(<[BlockDigest]>::len);
        let reading = Arc::clone(source);
        let hash = inspected.is_none();
        let reader = tokio::task::spawn_blocking(move || read_and_digest(reading.as_ref(), hash, &sender));
        let pace = Arc::new(Pace::new(self.tuning.block_interval));
        // A block waits for its turn before it takes a place among the requests in flight: where
        // the rate, not the answers, sets the pace (a fast link), only the blocks being sent are
        // held, not every place's worth.
        let turns = Arc::clone(&pace);
        let blocks = futures::stream::poll_fn(|cx| receiver.poll_recv(cx)).then(move |queued| {
            let pace = Arc::clone(&turns);
            async move {
                pace.wait().await;
                queued
            }
        });
        // Bytes of data when the blocks are known, else the image's bytes, reported as they pass.
        let total = inspected.map_or(source.size_bytes(), |blocks| blocks as u64 * EBS_BLOCK_SIZE as u64);
        reporting.bytes(0, total);
        let mut results = Box::pin(
            blocks
                .map(|(index, block, digest)| {
                    let pace = &pace;
                    async move {
                        let checksum = BASE64.encode(digest);
                        let mut attempts = 0u32;
                        self.call("PutSnapshotBlock", region)
                            .on(snapshot_id)
                            .fresh()
                            .send(|| {
                                attempts += 1;
                                let retry = attempts > 1;
                                let put = ebs
                                    .put_snapshot_block()
                                    .snapshot_id(snapshot_id)
                                    .block_index(index as i32)
                                    .block_data(ByteStream::from(block.clone()))
                                    .data_length(EBS_BLOCK_SIZE as i32)
                                    .checksum(&checksum)
                                    .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256);
                                // Every attempt counts against the snapshot's rate: the first
                                // waited for its turn in the queue, a retry waits here.
                                async move {
                                    if retry {
                                        pace.wait().await;
                                    }
                                    put.send().await
                                }
                            })
                            .await
                            .map_err(|e| (index, e))?;
                        BlockResult::Ok(index)
                    }
                })
                .buffer_unordered(blocks_in_flight(self.tuning.upload_concurrency, source.reader_memory())),
        );
        let mut failed = Vec::new();
        let (mut written, mut done) = (0usize, 0u64);
        while let Some(result) = results.next().await {
            match result {
                Ok(index) if failed.is_empty() => {
                    written += 1;
                    done = match inspected {
                        Some(_) => written as u64 * EBS_BLOCK_SIZE as u64,
                        // Blocks finish out of order: the whole image is sent only once all are.
                        None => done.max((index + 1) * EBS_BLOCK_SIZE as u64).min(total.saturating_sub(1)),
                    };
                    reporting.bytes(done, total);
                }
                Ok(_) => written += 1,
                Err(failure) => failed.push(failure),
            }
        }
        drop(results);
        let read = reader.await.expect("the block reader does not panic");
        if let Some((_, first)) = failed.first() {
            let blocks: Vec<String> = failed.iter().take(10).map(|(i, _)| i.to_string()).collect();
            let message =
                format!("{} block(s) failed (blocks {}…); first error: {first}", failed.len(), blocks.join(", "));
            return Err(CloudError::new("PutSnapshotBlock", region, first.class, message).with_code(first.code.clone()));
        }
        let sent = read.map_err(|error| {
            let message = format!("reading {}: {error}", source.describe());
            CloudError::new("PutSnapshotBlock", region, ErrorClass::Fatal, message)
        })?;
        if written != sent.len() || inspected.is_some_and(|blocks| blocks != sent.len()) {
            return Err(changed(region, source.as_ref()));
        }
        unchanged(region, source.as_ref())?;
        if inspected.is_none() {
            source.read(sent.clone());
            reporting.bytes(total, total);
        }
        Ok(sent)
    }

    async fn complete(&self, region: &str, blocks: &[BlockDigest], snapshot_id: &str) -> Result<(), CloudError> {
        let ebs = self.ebs(region);
        let checksum = linear_checksum(blocks.iter().map(|(_, digest)| digest));
        self.call("CompleteSnapshot", region)
            .on(snapshot_id)
            .fresh()
            .send(|| {
                ebs.complete_snapshot()
                    .snapshot_id(snapshot_id)
                    .changed_blocks_count(blocks.len() as i32)
                    .checksum(&checksum)
                    .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
                    .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear)
                    .send()
            })
            .await?;
        Ok(())
    }
}

/// The reading thread: every block with data, with its digest, into the requests' queue; the
/// digests sent, in order. An inspected image's blocks go with the digests the plan was made
/// from (EBS refuses a block that no longer matches); with `hash`, for an image read only now,
/// each block is hashed here, once, while the requests run on the other threads.
fn read_and_digest(
    source: &dyn BlockSource,
    hash: bool,
    queue: &mpsc::Sender<(u64, Bytes, [u8; 32])>,
) -> io::Result<Vec<BlockDigest>> {
    let mut sent = Vec::new();
    source.read_blocks(&mut |index, block| {
        let digest = match hash {
            true => Sha256::digest(&block).into(),
            false => source.digest(index).ok_or_else(|| io::Error::other(source.changed_message()))?,
        };
        sent.push((index, digest));
        queue.blocking_send((index, block, digest)).map_err(|_| io::Error::other("the upload stopped"))
    })?;
    Ok(sent)
}

/// Where an upload reports the bytes it has sent.
#[derive(Clone, Copy)]
struct Reporting<'a> {
    progress: &'a dyn Progress,
    work: &'a str,
}

impl Reporting<'_> {
    fn bytes(&self, done: u64, total: u64) {
        self.progress.bytes(self.work, done, total);
    }
}

/// Spaces requests at least `every` apart, however many are waiting: the next one starts a
/// full interval after the previous one, late or not.
struct Pace(Mutex<tokio::time::Interval>);

impl Pace {
    fn new(every: Duration) -> Pace {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pace(Mutex::new(interval))
    }

    async fn wait(&self) {
        self.0.lock().await.tick().await;
    }
}

/// The file must still be the one the plan was made from.
fn unchanged(region: &str, source: &dyn BlockSource) -> Result<(), CloudError> {
    source.unchanged().map_err(|why| CloudError::new("PutSnapshotBlock", region, ErrorClass::Fatal, why))
}

fn changed(region: &str, source: &dyn BlockSource) -> CloudError {
    CloudError::new("PutSnapshotBlock", region, ErrorClass::Fatal, source.changed_message())
}

/// EBS's LINEAR aggregate: SHA-256 over the written blocks' raw digests in block order, base64.
pub fn linear_checksum<'a>(digests: impl Iterator<Item = &'a [u8; 32]>) -> String {
    let mut hasher = Sha256::new();
    for digest in digests {
        hasher.update(digest);
    }
    BASE64.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoding_reader_takes_its_memory_from_the_blocks_in_flight() {
        const MIB: u64 = 1024 * 1024;
        // xz's decoder threads may use 12 MiB, 24 blocks' worth: 48 in flight become 24.
        assert_eq!(blocks_in_flight(48, 12 * MIB), 24);
        assert_eq!(blocks_in_flight(48, 0), 48);
        assert_eq!(blocks_in_flight(48, 12 * MIB + 1), 24, "never below half");
        assert_eq!(blocks_in_flight(4, 12 * MIB), 2);
        assert_eq!(blocks_in_flight(1, 12 * MIB), 1);
        assert_eq!(blocks_in_flight(0, 0), 1);
    }

    #[tokio::test]
    async fn requests_are_paced_under_the_per_snapshot_limit() {
        let pace = Arc::new(Pace::new(PUT_INTERVAL));
        let started = std::time::Instant::now();
        let waiters: Vec<_> = (0..201)
            .map(|_| {
                let pace = Arc::clone(&pace);
                tokio::spawn(async move { pace.wait().await })
            })
            .collect();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        // The first tick is immediate; 200 more intervals follow, whatever the concurrency.
        assert!(started.elapsed() >= PUT_INTERVAL * 200, "{:?}", started.elapsed());
        assert!(1_000_000 / PUT_INTERVAL.as_micros() < 1_000, "under 1,000 requests per second");
    }

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
}
