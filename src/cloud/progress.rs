//! How long work says how far it has got. The library only reports; whoever runs it decides how
//! to show it (the CLI: a bar on a terminal, plain lines in a pipeline's log), as coldsnap's
//! uploader takes its progress bar from its caller.

/// Receives the progress of long work, from any task.
pub trait Progress: std::fmt::Debug + Send + Sync {
    /// `work` (a node's ID and what it does, e.g. `snapshot/root@us-east-1 upload`) has done
    /// `done` of `total` bytes. Called with `done == 0` when the work starts and with
    /// `done == total` when it is complete; a failed work stops being reported.
    fn bytes(&self, work: &str, done: u64, total: u64);
}

/// Progress that goes nowhere, for runs nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn bytes(&self, _work: &str, _done: u64, _total: u64) {}
}
