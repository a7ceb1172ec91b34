//! The executor's part of `build.keep_image: false`: once a stack's copies are done, its build
//! region's AMIs and the snapshots behind them go. Only when every node of the stack succeeded:
//! a copy that failed or was skipped needs its source on the next run.

use futures::future::join_all;
use tokio::time::Instant;

use super::{Executor, Outcome};
use crate::cloud::Cloud;
use crate::plan::{Action, Change};
use crate::resource;

impl<C: Cloud> Executor<'_, C> {
    pub(super) async fn remove_copied_sources(&self) {
        let sources: Vec<&Change> =
            self.plan.changes.iter().filter(|c| c.until_copied && c.action != Action::Delete).collect();
        if sources.is_empty() {
            return;
        }
        let unfinished = self.unfinished_stacks();
        let resources = self.resources.lock().expect("resource lock").clone();
        // Snapshots a source AMI's removal leaves to their own change.
        let own: Vec<String> =
            sources.iter().filter(|c| !c.kind.is_image()).filter_map(|c| resources.get(&c.node).cloned()).collect();
        let mut ranks: Vec<u8> = sources.iter().map(|c| c.kind.delete_rank()).collect();
        ranks.sort();
        ranks.dedup();
        let mut failed = false;
        for rank in ranks {
            let batch = sources.iter().filter(|c| c.kind.delete_rank() == rank);
            let results = join_all(batch.map(|change| {
                let (unfinished, own) = (&unfinished, &own);
                let id = resources.get(&change.node).cloned();
                async move {
                    let Some(id) = id else { return true };
                    let removal = Change { action: Action::Delete, live_id: Some(id.clone()), ..(*change).clone() };
                    let started = Instant::now();
                    let kept = if self.stopping() {
                        Some("interrupted: the next apply removes it once the copies are done".to_string())
                    } else if failed {
                        Some("an AMI in front of it could not be removed: the next apply tries again".to_string())
                    } else {
                        unfinished.get(&change.stack).map(|node| {
                            format!("kept as the copies' source: {node} did not succeed, and the next apply needs it")
                        })
                    };
                    if let Some(why) = kept {
                        self.record(&removal, Some(id), Outcome::Skipped(why), started);
                        return true;
                    }
                    let _slot = self.slot(&change.region).await;
                    self.emit(&removal, super::Phase::Started, Some(&id), None, None, None);
                    let result = if change.kind.is_image() {
                        resource::image::remove_source(self, &change.region, &id, own).await
                    } else {
                        // A snapshot: deleted at once, or not.
                        resource::delete(self, change.kind, &change.region, &id, &[], &Default::default())
                            .await
                            .map(drop)
                    };
                    let removed = result.is_ok();
                    let outcome = match result {
                        Ok(()) => Outcome::Deleted,
                        Err(error) => Outcome::Failed(error.to_string()),
                    };
                    self.record(&removal, Some(id), outcome, started);
                    removed
                }
            }))
            .await;
            failed |= results.contains(&false);
        }
    }
}
