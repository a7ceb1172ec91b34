//! Stack locks, so that two runs never change one stack at once. A lock is an EC2 key pair named
//! `amiplan-lock-<stack>` in the stack's build region: AWS refuses a second key pair with the
//! same name, which makes taking the lock atomic without any other service. Its tags say who
//! holds it. A run killed with the lock held leaves it behind; `amiplan unlock` breaks it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cloud::{Cloud, CloudError};

pub const HOLDER: &str = "amiplan:lock-holder";
pub const SINCE: &str = "amiplan:lock-since";
pub const LOCK_OF: &str = "amiplan:lock";

/// A stack and the region its lock lives in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockSite {
    pub stack: String,
    pub region: String,
}

impl LockSite {
    pub fn name(&self) -> String {
        format!("amiplan-lock-{}", self.stack)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "stack `{stack}` is locked by {holder} (since {since}; key pair {key} in {region}); wait with --lock-timeout, or if that run is dead, break the lock with `amiplan unlock`"
    )]
    Held { stack: String, holder: String, since: String, key: String, region: String },
    #[error("taking the lock of stack `{stack}`: {source}")]
    Cloud { stack: String, source: CloudError },
    #[error("interrupted while waiting for the lock of stack `{stack}`")]
    Interrupted { stack: String },
}

/// Locks taken by this run; release them with [`Locks::release`].
#[derive(Debug)]
pub struct Locks {
    held: Vec<LockSite>,
}

/// Who this run is, as other runs will see it.
pub fn this_holder() -> BTreeMap<String, String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    BTreeMap::from([
        (HOLDER.to_string(), format!("{user}@{host} pid {}", std::process::id())),
        (SINCE.to_string(), format!("unix time {since}")),
    ])
}

/// Takes every lock in a fixed order (so two runs over overlapping stacks cannot deadlock),
/// waiting up to `timeout` for each, and giving up as soon as `interrupted` is set. On failure,
/// the locks already taken are released.
pub async fn acquire<C: Cloud>(
    cloud: &C,
    sites: &[LockSite],
    timeout: Duration,
    interrupted: &AtomicBool,
) -> Result<Locks, LockError> {
    let mut sites = sites.to_vec();
    sites.sort();
    sites.dedup();
    let mut locks = Locks { held: Vec::new() };
    for site in sites {
        match acquire_one(cloud, &site, timeout, interrupted).await {
            Ok(()) => locks.held.push(site),
            Err(error) => {
                locks.release(cloud).await;
                return Err(error);
            }
        }
    }
    Ok(locks)
}

async fn acquire_one<C: Cloud>(
    cloud: &C,
    site: &LockSite,
    timeout: Duration,
    interrupted: &AtomicBool,
) -> Result<(), LockError> {
    let started = tokio::time::Instant::now();
    let mut holder = this_holder();
    holder.insert(LOCK_OF.to_string(), site.stack.clone());
    loop {
        let attempt = cloud.try_lock(&site.region, &site.name(), &holder).await;
        let held_by = attempt.map_err(|source| LockError::Cloud { stack: site.stack.clone(), source })?;
        let Some(other) = held_by else { return Ok(()) };
        if started.elapsed() >= timeout {
            let label = |key: &str| other.get(key).cloned().unwrap_or_else(|| "unknown".into());
            return Err(LockError::Held {
                stack: site.stack.clone(),
                holder: label(HOLDER),
                since: label(SINCE),
                key: site.name(),
                region: site.region.clone(),
            });
        }
        tracing::info!(stack = %site.stack, "waiting for the stack lock");
        let pause =
            Duration::from_secs(2).min(timeout.saturating_sub(started.elapsed())).max(Duration::from_millis(100));
        // Look at the interrupt flag often: a waiting run must stop promptly on Ctrl-C.
        let until = tokio::time::Instant::now() + pause;
        while tokio::time::Instant::now() < until {
            if interrupted.load(Ordering::SeqCst) {
                return Err(LockError::Interrupted { stack: site.stack.clone() });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Locks {
    /// Releases every lock; a failure is reported but does not hide the run's own result.
    pub async fn release<C: Cloud>(self, cloud: &C) {
        for site in self.held {
            if let Err(error) = cloud.unlock(&site.region, &site.name()).await {
                eprintln!(
                    "warning: could not release the lock of stack `{}`: {error}; run `amiplan unlock`",
                    site.stack
                );
            }
        }
    }
}
