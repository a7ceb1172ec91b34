//! How long work says how far it has got. The library only reports; whoever runs it decides how
//! to show it (the CLI: a bar on a terminal, plain lines in a pipeline's log), as coldsnap's
//! uploader takes its progress bar from its caller.

/// Receives the progress of long work, from any task.
pub trait Progress: std::fmt::Debug + Send + Sync {
    /// `work` (a node's ID and what it does, e.g. `snapshot/root@us-east-1 upload`) has done
    /// `done` of `total` bytes. Called with `done == 0` when the work starts and with
    /// `done == total` when it is complete; a failed work stops being reported.
    fn bytes(&self, work: &str, done: u64, total: u64);

    /// A node's work began: `what` it does (`create`, `delete`, …).
    fn started(&self, _node: &str, _what: &str) {}

    /// A node's work ended: `outcome` in words (`created ami-…`, `failed: …`), after `seconds`.
    fn finished(&self, _node: &str, _outcome: &str, _seconds: f64) {}

    /// `work` (e.g. `snapshot snap-… in us-east-1`) is still not done, as AWS says: `state`,
    /// with AWS's own progress where it reports one. Called at every poll.
    fn waiting(&self, _work: &str, _state: &str) {}

    /// The wait for `work` is over, however it ended.
    fn waited(&self, _work: &str) {}

    /// The run entered a phase before any node's work (taking locks, reading live state).
    fn phase(&self, _what: &str) {}
}

/// Progress that goes nowhere, for runs nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn bytes(&self, _work: &str, _done: u64, _total: u64) {}
}
