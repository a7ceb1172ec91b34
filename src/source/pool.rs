//! Block buffers for one pass over an image, reused once the requests are done with them.
//!
//! A pass hands each block with data on as `Bytes`, which a request and its retries share
//! without copying. A block's buffer comes back here when the last holder of its `Bytes` drops
//! it, so a pass allocates only as many as are alive at once. On its own that measured no
//! different from a fresh allocation per block; what it buys is a cheap fixed malloc threshold
//! (below), which took the peak of an xz upload against moto from 61–63 to 57 MiB
//! (`bench/README.md`).

use std::sync::{Arc, Mutex, Once, PoisonError, Weak};

use bytes::Bytes;

use super::BLOCK_SIZE;

/// Free buffers kept at most: more than an upload ever holds at once (its requests in flight and
/// its queue), so that none is freed while the pass runs; any beyond are freed.
const MOST_KEPT: usize = 64;

type Free = Mutex<Vec<Box<[u8]>>>;

/// The buffers of one pass.
pub struct BlockPool {
    free: Arc<Free>,
}

impl BlockPool {
    pub fn new() -> BlockPool {
        static FIXED: Once = Once::new();
        FIXED.call_once(fix_mmap_threshold);
        BlockPool { free: Arc::new(Mutex::new(Vec::new())) }
    }

    /// A block-sized buffer, holding whatever an earlier block left in it: every reader writes
    /// all of a block before handing it on.
    pub fn take(&self) -> Box<[u8]> {
        let reused = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        reused.unwrap_or_else(|| vec![0u8; BLOCK_SIZE].into_boxed_slice())
    }

    /// `buffer` as a block to hand on; it returns to the pool when the block is dropped, or is
    /// freed if the pass is over.
    pub fn share(&self, buffer: Box<[u8]>) -> Bytes {
        Bytes::from_owner(Pooled { buffer, home: Arc::downgrade(&self.free) })
    }
}

/// Allocations this large or larger get mappings of their own, returned when freed.
const MMAP_THRESHOLD: usize = 256 * 1024;

/// glibc's malloc maps large allocations of their own until the first is freed, then raises its
/// threshold to that size and serves them from its heaps, where freed ones keep their pages:
/// liblzma's per-block buffers (1 to 3 MiB while an xz image is decoded) then leave about 5 MiB
/// of freed pages behind. A fixed threshold returns them. Blocks come from the pool, so they
/// are mapped once each, not once per block (which cost about two fifths more CPU for a dense
/// image). It is set when the first pass starts, so only processes that read images (plan,
/// apply) run with it; `serve` keeps glibc's default.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters, under its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// A buffer lent out as a block.
struct Pooled {
    buffer: Box<[u8]>,
    home: Weak<Free>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(home) = self.home.upgrade() else { return };
        let mut free = home.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < MOST_KEPT {
            free.push(std::mem::take(&mut self.buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_block_lends_its_buffer_again() {
        let pool = BlockPool::new();
        let mut buffer = pool.take();
        buffer[0] = 7;
        let address = buffer.as_ptr();
        let block = pool.share(buffer);
        let retry = block.clone();
        drop(block);
        // Still held by the retry: a new buffer.
        let other = pool.take();
        assert_ne!(other.as_ptr(), address);
        drop(retry);
        let again = pool.take();
        assert_eq!((again.as_ptr(), again.len(), again[0]), (address, BLOCK_SIZE, 7));
    }

    /// Whether glibc gave the allocation at `data` a mapping of its own: the IS_MMAPPED bit of the
    /// size word in front of it (malloc/malloc.c, "chunk representations").
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn mapped_apart(data: *const u8) -> bool {
        // SAFETY: every glibc allocation has its chunk's size word just before it.
        unsafe { data.cast::<usize>().sub(1).read() & 0x2 != 0 }
    }

    /// With glibc's own rule, freeing a 4 MiB mapping would raise the threshold to 4 MiB and the
    /// 1 MiB after it would come from the heap; with the threshold fixed it is still mapped, so
    /// its pages go back when it is freed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn once_a_pass_starts_large_allocations_keep_mappings_of_their_own() {
        // Run alone, in a process of its own: glibc serves even a large allocation from free
        // space its arena already holds, and other tests leave some behind.
        const ALONE: &str = "AMIPLAN_TEST_ALONE";
        if std::env::var_os(ALONE).is_none() {
            let name = "source::pool::tests::once_a_pass_starts_large_allocations_keep_mappings_of_their_own";
            let test = std::env::current_exe().expect("the test binary");
            let run = std::process::Command::new(test).args(["--exact", name]).env(ALONE, "1").output();
            let run = run.expect("the test binary runs");
            let said = String::from_utf8_lossy(&run.stdout);
            assert!(run.status.success() && said.contains("1 passed"), "{said}");
            return;
        }
        let _pool = BlockPool::new();
        let large = vec![1u8; 4 << 20];
        assert!(mapped_apart(large.as_ptr()));
        drop(large);
        let after = vec![1u8; 1 << 20];
        assert!(mapped_apart(after.as_ptr()), "1 MiB after a freed 4 MiB is still mapped apart");
        let small = vec![1u8; 64 << 10];
        assert!(!mapped_apart(small.as_ptr()), "smaller ones come from the heap");
    }

    #[test]
    fn blocks_outliving_their_pass_are_freed() {
        let pool = BlockPool::new();
        let block = pool.share(pool.take());
        let home = Arc::downgrade(&pool.free);
        drop(pool);
        assert_eq!(block.len(), BLOCK_SIZE);
        drop(block);
        assert!(home.upgrade().is_none());
    }
}
