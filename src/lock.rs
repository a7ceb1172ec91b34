//! Stack locks, so that two runs never change one stack at once. A lock is an EC2 key pair named
//! `amiplan-lock-<stack>` in the stack's build region: AWS refuses a second key pair with the
//! same name, which makes taking the lock atomic without any other service. Its tags say who
//! holds it and until when.
//!
//! A lock is a lease: its holder renews it (`amiplan:lock-expires`) well inside its length while
//! it runs. A run killed with the lock held (kill -9, a CI job's timeout) therefore blocks the
//! next run only until its lease expires, or not at all when the next run is on the same host and
//! sees that the holder's process is gone. A live holder is never overridden. Taking over
//! deletes the stale key pair only if it still is the one that was judged stale (same key pair
//! ID, checked right before the delete), so of two runs taking over at once, the second one's
//! delete finds a new lock and leaves it, and its create meets that lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cloud::{Cloud, CloudError, HeldLock};
use crate::console::errln;

pub const HOLDER: &str = "amiplan:lock-holder";
pub const SINCE: &str = "amiplan:lock-since";
pub const LOCK_OF: &str = "amiplan:lock";
/// Unix time after which the lock is stale unless renewed.
pub const EXPIRES: &str = "amiplan:lock-expires";
/// The holder's host and process, to tell a dead holder on this host.
pub const HOST: &str = "amiplan:lock-host";
pub const PID: &str = "amiplan:lock-pid";
/// A random ID of the holding run: a run recognises its own lock after a lost answer.
pub const RUN: &str = "amiplan:lock-run";

/// How long a lock stays valid without renewal. Long enough to ride out an AWS hiccup in the
/// renewals (every [`RENEW_EVERY`]); short enough that a killed CI job blocks the next one for
/// minutes, not until somebody notices.
pub const LEASE: Duration = Duration::from_secs(10 * 60);
pub const RENEW_EVERY: Duration = Duration::from_secs(2 * 60);

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
        "stack `{stack}` is locked by {holder} (since {since}, lease until {until}; key pair {key} in {region}); wait with --lock-timeout, or if that run is dead, break the lock with `amiplan unlock`"
    )]
    Held { stack: String, holder: String, since: String, until: String, key: String, region: String },
    #[error("taking the lock of stack `{stack}`: {source}")]
    Cloud { stack: String, source: CloudError },
    #[error("interrupted while waiting for the lock of stack `{stack}`")]
    Interrupted { stack: String },
}

/// Locks taken by this run; keep them with [`Locks::keep_alive`], release them with
/// [`Locks::release`].
#[derive(Debug)]
pub struct Locks {
    held: Vec<LockSite>,
    holder: BTreeMap<String, String>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "unknown-host".into())
}

/// Who this run is, as other runs will see it; `run` names this run's attempt.
pub fn this_holder(run: &str) -> BTreeMap<String, String> {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = hostname();
    let pid = std::process::id();
    BTreeMap::from([
        (HOLDER.to_string(), format!("{user}@{host} pid {pid}")),
        (SINCE.to_string(), crate::deprecation::format(now() as i64)),
        (EXPIRES.to_string(), (now() + LEASE.as_secs()).to_string()),
        (HOST.to_string(), host),
        (PID.to_string(), pid.to_string()),
        (RUN.to_string(), run.to_string()),
    ])
}

/// Why the lock `held` may be taken over, if it may: its lease expired, or its holder was a
/// process on this host that is no longer running. `alive` says whether a pid of this host runs.
pub fn stale(labels: &BTreeMap<String, String>, now: u64, host: &str, alive: impl Fn(u32) -> bool) -> Option<String> {
    if let Some(expires) = labels.get(EXPIRES).and_then(|e| e.parse::<u64>().ok())
        && expires < now
    {
        return Some(format!("its lease expired {} s ago", now - expires));
    }
    if labels.get(HOST).map(String::as_str) == Some(host)
        && let Some(pid) = labels.get(PID).and_then(|p| p.parse::<u32>().ok())
        && !alive(pid)
    {
        return Some(format!("its process {pid} on this host is no longer running"));
    }
    None
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
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
    let holder = this_holder(&format!("{:016x}", fastrand::u64(..)));
    let mut locks = Locks { held: Vec::new(), holder };
    for site in sites {
        match acquire_one(cloud, &site, &locks.holder, timeout, interrupted).await {
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
    holder: &BTreeMap<String, String>,
    timeout: Duration,
    interrupted: &AtomicBool,
) -> Result<(), LockError> {
    let started = tokio::time::Instant::now();
    let mut holder = holder.clone();
    holder.insert(LOCK_OF.to_string(), site.stack.clone());
    let cloud_error = |source| LockError::Cloud { stack: site.stack.clone(), source };
    // A lock that vanishes between the create and the read (its holder released it) is tried
    // again at once, a bounded number of times.
    let mut vanished = 0;
    let mut takeovers = 0;
    loop {
        let Some(other) = cloud.try_lock(&site.region, &site.name(), &holder).await.map_err(cloud_error)? else {
            return Ok(());
        };
        if other.labels.is_empty() && vanished < 5 {
            vanished += 1;
            continue;
        }
        // This run's own lock: an earlier answer to CreateKeyPair was lost and the retry met it.
        if other.labels.get(RUN).is_some_and(|run| Some(run) == holder.get(RUN)) {
            return Ok(());
        }
        // A stale lock is broken, a bounded number of times (another run may take it meanwhile).
        if takeovers < 3
            && let Some(why) = stale(&other.labels, now(), &hostname(), process_alive)
        {
            takeovers += 1;
            let label = other.labels.get(HOLDER).cloned().unwrap_or_else(|| "an unknown run".into());
            errln!("warning: taking over the lock of stack `{}` from {label}: {why}", site.stack);
            cloud.break_lock(&site.region, &site.name(), &other).await.map_err(cloud_error)?;
            continue;
        }
        if started.elapsed() >= timeout {
            return Err(held(site, &other));
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

/// A lock label's time as a time: leases are kept as seconds since the epoch, and older
/// amiplan wrote `unix time N` for the start.
fn as_time(label: &str) -> String {
    match label.trim_start_matches("unix time ").parse::<i64>() {
        Ok(seconds) => crate::deprecation::format(seconds),
        Err(_) => label.to_string(),
    }
}

fn held(site: &LockSite, other: &HeldLock) -> LockError {
    let label = |key: &str| other.labels.get(key).cloned().unwrap_or_else(|| "unknown".into());
    let until =
        other.labels.get(EXPIRES).map(|e| as_time(e)).unwrap_or_else(|| "no lease: an older amiplan's lock".into());
    LockError::Held {
        stack: site.stack.clone(),
        holder: label(HOLDER),
        since: as_time(&label(SINCE)),
        until,
        key: site.name(),
        region: site.region.clone(),
    }
}

impl Locks {
    /// Renews every lease each [`RENEW_EVERY`], forever: run it beside the work and drop it when
    /// the work ends. A lock found taken over (this run was presumed dead) is reported loudly.
    pub async fn keep_alive<C: Cloud>(&self, cloud: &C) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let mut labels = self.holder.clone();
            labels.insert(EXPIRES.to_string(), (now() + LEASE.as_secs()).to_string());
            for site in &self.held {
                labels.insert(LOCK_OF.to_string(), site.stack.clone());
                match cloud.relabel_lock(&site.region, &site.name(), RUN, &labels).await {
                    Ok(true) => tracing::debug!(stack = %site.stack, "lock renewed"),
                    Ok(false) => errln!(
                        "warning: the lock of stack `{}` was taken over by another run: this run no longer holds it",
                        site.stack
                    ),
                    Err(error) => errln!("warning: could not renew the lock of stack `{}`: {error}", site.stack),
                }
            }
        }
    }

    /// Releases every lock; a failure is reported but does not hide the run's own result.
    pub async fn release<C: Cloud>(self, cloud: &C) {
        for site in self.held {
            if let Err(error) = cloud.unlock(&site.region, &site.name()).await {
                errln!("warning: could not release the lock of stack `{}`: {error}; run `amiplan unlock`", site.stack);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(expires: u64, host: &str, pid: u32) -> BTreeMap<String, String> {
        BTreeMap::from([
            (EXPIRES.to_string(), expires.to_string()),
            (HOST.to_string(), host.to_string()),
            (PID.to_string(), pid.to_string()),
        ])
    }

    #[test]
    fn a_lock_is_stale_when_its_lease_expired_or_its_local_holder_died() {
        let alive = |pid: u32| pid == 7;
        assert!(stale(&labels(100, "ci-1", 7), 200, "ci-2", alive).unwrap().contains("lease expired 100 s ago"));
        assert!(stale(&labels(300, "ci-1", 8), 200, "ci-1", alive).unwrap().contains("process 8 on this host"));
        assert_eq!(stale(&labels(300, "ci-1", 7), 200, "ci-1", alive), None, "a live local holder");
        assert_eq!(stale(&labels(300, "ci-1", 8), 200, "ci-2", alive), None, "another host's pid is not ours to judge");
        assert_eq!(stale(&BTreeMap::new(), 200, "ci-1", alive), None, "an older amiplan's lock has no lease");
    }

    #[test]
    fn a_held_lock_says_its_times_as_times() {
        let site = LockSite { stack: "web".into(), region: "us-east-1".into() };
        let mut other = labels(1_780_272_600, "ci-1", 7);
        other.insert(SINCE.to_string(), "unix time 1780272000".to_string());
        let said = held(&site, &HeldLock { id: Some("key-1".into()), labels: other }).to_string();
        assert!(said.contains("since 2026-06-01T00:00:00Z, lease until 2026-06-01T00:10:00Z"), "{said}");
    }
}
