//! Retry and wait policy: exponential backoff with full jitter, bounded by attempts or deadlines.
//! The decision to retry is a pure function of the error class and the situation.
//!
//! This is the one layer that retries: the SDK's own retries are switched off (see
//! `cloud::aws`), so attempts never multiply. Every attempt has a timeout (the SDK's attempt
//! timeout, from [`RetryPolicy::attempt_timeout`]) and every call an overall deadline
//! ([`RetryPolicy::call_deadline`]): a stalled connection costs one attempt, never the run.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{CloudError, ErrorClass, Progress};

/// How persistent calls and waits are.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call for transient faults (throttling is retried until the call deadline).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long a resource may stay invisible (`*.NotFound`) or not ready after amiplan created
    /// it. Retries of those are bounded by this time, not by `max_attempts`: EBS answers that a
    /// new snapshot does not exist for up to two minutes after StartSnapshot.
    pub consistency_window: Duration,
    /// How long one attempt may take before it is abandoned and retried (a connection that is
    /// accepted and never answered).
    pub attempt_timeout: Duration,
    /// How long one call may take, all attempts and pauses included.
    pub call_deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Eight attempts over about a minute rides out the throttling bursts AWS documents for
        // EC2's per-account token buckets without hiding a real outage for long.
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            // AWS documents up to two minutes of `ResourceNotFound` after StartSnapshot; a little
            // more leaves room for the first attempt's own time.
            consistency_window: Duration::from_secs(150),
            // A PutSnapshotBlock of 512 KiB over a slow uplink still fits in a minute.
            attempt_timeout: Duration::from_secs(60),
            call_deadline: Duration::from_secs(10 * 60),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests against an emulator: same logic, millisecond delays.
    pub fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(100),
            consistency_window: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            call_deadline: Duration::from_secs(60),
        }
    }

    /// Delay before retry number `attempt` (1-based): full jitter over an exponential ceiling.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay);
        ceiling.mul_f64(fastrand::f64()).max(self.base_delay / 2)
    }

    /// Whether a failure, `elapsed` after the call began and after `transient_failures` transient
    /// faults (this one included), deserves another try. `just_created` allows `NotFound` and
    /// `NotReady`, for the consistency window.
    pub fn should_retry(
        &self,
        error: &CloudError,
        transient_failures: u32,
        elapsed: Duration,
        just_created: bool,
    ) -> bool {
        if elapsed >= self.call_deadline {
            return false;
        }
        match error.class {
            // Throttling says "later", not "broken": it is retried with backoff until the
            // call's deadline, however many attempts a burst of it takes. (With the SDK's own
            // retries switched off, eight attempts could all land in one burst.)
            ErrorClass::Throttling => true,
            // Only transient faults spend the attempt budget: a call that first waited out the
            // consistency window and a throttling burst must still survive one dropped
            // connection (a soak run lost a CreateTags that way).
            ErrorClass::Transient => transient_failures < self.max_attempts,
            ErrorClass::NotFound | ErrorClass::NotReady => just_created && elapsed < self.consistency_window,
            // Held by another, or made already: waiting and adopting are the caller's to decide.
            ErrorClass::InUse | ErrorClass::Duplicate | ErrorClass::Denied | ErrorClass::Fatal => false,
        }
    }

    /// Runs `call` until it succeeds or `should_retry` says stop.
    pub async fn run<T, F, Fut>(&self, just_created: bool, mut call: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let start = Instant::now();
        let mut attempt = 1;
        let mut transient_failures = 0;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    if error.class == ErrorClass::Transient {
                        transient_failures += 1;
                    }
                    if !self.should_retry(&error, transient_failures, start.elapsed(), just_created) {
                        return Err(error);
                    }
                    tracing::debug!(%error, attempt, "retrying");
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// What a poll saw.
pub enum Poll<T> {
    Ready(T),
    Pending(String),
}

/// Polls `check` with backoff until it is ready, fails, or `deadline` passes. `NotFound` counts as
/// pending for the policy's consistency window; throttling and transient faults are pending too.
pub async fn wait_until<T, F, Fut>(
    policy: &RetryPolicy,
    progress: &dyn Progress,
    deadline: Duration,
    what: &str,
    check: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, CloudError>>,
{
    let result = poll_until(policy, progress, deadline, what, check).await;
    progress.waited(what);
    result
}

async fn poll_until<T, F, Fut>(
    policy: &RetryPolicy,
    progress: &dyn Progress,
    deadline: Duration,
    what: &str,
    mut check: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, CloudError>>,
{
    let start = Instant::now();
    let mut attempt = 1;
    let mut last: String;
    loop {
        match check().await {
            Ok(Poll::Ready(value)) => return Ok(value),
            Ok(Poll::Pending(state)) => {
                progress.waiting(what, &state);
                last = state
            }
            Err(error) => match error.class {
                ErrorClass::Throttling | ErrorClass::Transient => last = error.to_string(),
                ErrorClass::NotFound | ErrorClass::NotReady if start.elapsed() < policy.consistency_window => {
                    last = error.to_string()
                }
                _ => return Err(WaitError::Failed(error)),
            },
        }
        if start.elapsed() >= deadline {
            return Err(WaitError::Timeout { what: what.to_string(), after: deadline, last });
        }
        // Waits poll less eagerly than calls retry: state changes take seconds to minutes.
        let delay = policy.delay(attempt).max(policy.base_delay * 2);
        tokio::time::sleep(delay.min(deadline.saturating_sub(start.elapsed()))).await;
        attempt = (attempt + 1).min(16);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "{what} was still not ready after {after:?} (last seen: {last}); AWS may still finish it: a re-run adopts it"
    )]
    Timeout { what: String, after: Duration, last: String },
    #[error(transparent)]
    Failed(CloudError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn error(code: &str) -> CloudError {
        crate::cloud::aws::aws_error("DescribeImages", "us-east-1", Some(code), "x")
    }

    #[test]
    fn fatal_errors_are_never_retried() {
        let policy = RetryPolicy::default();
        let soon = Duration::from_secs(1);
        assert!(!policy.should_retry(&error("AccessDenied"), 1, soon, true));
        assert!(!policy.should_retry(&error("UnauthorizedOperation"), 1, soon, true));
        assert!(!policy.should_retry(&error("InvalidParameterValue"), 1, soon, true));
        assert!(policy.should_retry(&error("RequestLimitExceeded"), 1, soon, false));
        assert!(policy.should_retry(&error("RequestLimitExceeded"), policy.max_attempts * 3, soon, false));
        assert!(!policy.should_retry(&error("InternalError"), policy.max_attempts, soon, false));
        assert!(policy.should_retry(&error("InvalidAMIID.NotFound"), 1, soon, true));
        assert!(!policy.should_retry(&error("InvalidAMIID.NotFound"), 1, soon, false));
        assert!(policy.should_retry(&error("IncorrectState"), 1, soon, true));
        assert!(!policy.should_retry(&error("RequestLimitExceeded"), 1, policy.call_deadline, false));
    }

    /// Regression: EBS may answer that a new snapshot does not exist for up to two minutes after
    /// StartSnapshot (coldsnap#43). Eight quick attempts gave up long before that.
    #[test]
    fn not_found_after_a_create_is_retried_for_the_whole_consistency_window_whatever_the_attempts() {
        let policy = RetryPolicy::default();
        let missing = error("ResourceNotFoundException");
        for elapsed in [1, 30, 90, 119, 140] {
            assert!(policy.should_retry(&missing, 40, Duration::from_secs(elapsed), true), "{elapsed}s");
        }
        assert!(!policy.should_retry(&missing, 2, policy.consistency_window, true));
        assert!(policy.consistency_window >= Duration::from_secs(120));
    }

    #[test]
    fn delays_grow_but_stay_bounded() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            let delay = policy.delay(attempt);
            assert!(delay <= policy.max_delay && delay >= policy.base_delay / 2);
        }
    }

    #[tokio::test]
    async fn run_retries_throttling_then_succeeds_and_stops_on_access_denied() {
        let calls = AtomicU32::new(0);
        let result = RetryPolicy::fast()
            .run(false, || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(error("Throttling")),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = RetryPolicy::fast()
            .run(true, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(error("AccessDenied"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// Regression (fault soak): a CreateTags that first saw the new image as missing, then a
    /// throttling burst, gave up on the first dropped connection because every earlier failure
    /// had spent the transient budget.
    #[tokio::test]
    async fn only_transient_faults_spend_the_attempt_budget() {
        let policy = RetryPolicy::fast();
        let calls = AtomicU32::new(0);
        let earlier = policy.max_attempts * 2;
        let result = policy
            .run(true, || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                match n {
                    n if n < policy.max_attempts => Err(error("InvalidAMIID.NotFound")),
                    n if n < earlier => Err(error("RequestLimitExceeded")),
                    n if n < earlier + policy.max_attempts - 1 => Err(error("InternalError")),
                    _ => Ok(n),
                }
            })
            .await;
        assert_eq!(result.unwrap(), earlier + policy.max_attempts - 1);

        // Transient faults alone still stop after `max_attempts`.
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run(false, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(error("InternalError"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), policy.max_attempts);
    }

    #[tokio::test]
    async fn waits_treat_early_not_found_as_pending_and_time_out() {
        let calls = AtomicU32::new(0);
        let ready =
            wait_until(&RetryPolicy::fast(), &crate::cloud::NoProgress, Duration::from_secs(5), "ami-1", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(error("InvalidAMIID.NotFound")),
                    1 => Ok(Poll::Pending("pending".into())),
                    _ => Ok(Poll::Ready("available")),
                }
            })
            .await;
        assert_eq!(ready.unwrap(), "available");

        let timeout =
            wait_until(&RetryPolicy::fast(), &crate::cloud::NoProgress, Duration::from_millis(50), "ami-2", || async {
                Ok::<Poll<()>, CloudError>(Poll::Pending("pending".into()))
            })
            .await;
        assert!(matches!(timeout, Err(WaitError::Timeout { .. })));
    }
}
