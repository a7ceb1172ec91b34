//! The executor's part of helper builds: tearing the transient resources down in reverse
//! dependency order as soon as the build is over (their creation is each kind's, in `resource`).

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::{Executor, Handle, Outcome};
use crate::cloud::Cloud;
use crate::plan::{Action, Change};
use crate::resource::steps::remove_build_resource;

impl<'a, C: Cloud> Executor<'a, C> {
    /// One future per build in this plan: once its snapshot node has finished, either way, the
    /// transient resources go, dependents first.
    pub(super) fn teardowns<'h>(&'h self, handles: &HashMap<&str, Handle<'h>>) -> Vec<BoxFuture<'h, ()>> {
        let mut teardowns = Vec::new();
        for capture in self.graph.nodes().filter(|n| n.spec.is_capture()) {
            let Some(capture_handle) = handles.get(capture.id.as_str()).cloned() else { continue };
            let transient: Vec<(&Change, Handle<'h>)> = self
                .plan
                .changes
                .iter()
                .filter(|c| c.transient && c.stack == capture.stack && c.action != Action::Delete)
                .filter_map(|c| Some((c, handles.get(c.node.as_str())?.clone())))
                .collect();
            if transient.is_empty() {
                continue;
            }
            teardowns.push(
                async move {
                    let built = capture_handle.await.is_ok();
                    let mut ranked = Vec::new();
                    for (change, handle) in transient {
                        let _ = handle.await;
                        ranked.push(change);
                    }
                    ranked.sort_by_key(|c| c.kind.delete_rank());
                    self.tear_down(&ranked, built).await;
                }
                .boxed(),
            );
        }
        teardowns
    }

    async fn tear_down(&self, changes: &[&Change], built: bool) {
        let resources = self.resources.lock().expect("resource lock").clone();
        let keep = if self.stopping() {
            Some("interrupted: the next apply or destroy removes it".to_string())
        } else if !built && self.options.keep_on_failure {
            Some("kept for debugging (--keep-on-failure); `amiplan destroy` or the next apply removes it".to_string())
        } else {
            None
        };
        let mut failed = false;
        for change in changes {
            let Some(id) = resources.get(&change.node) else { continue };
            let mut teardown = (*change).clone();
            teardown.action = Action::Delete;
            teardown.live_id = Some(id.clone());
            let started = Instant::now();
            if let Some(why) = &keep {
                self.record(&teardown, Some(id.clone()), Outcome::Skipped(why.clone()), started);
                continue;
            }
            if failed {
                self.record(
                    &teardown,
                    Some(id.clone()),
                    Outcome::Skipped("an earlier teardown failed".into()),
                    started,
                );
                continue;
            }
            let _slot = self.slot(&change.region).await;
            self.emit(&teardown, super::Phase::Started, Some(id), None, None, None);
            match remove_build_resource(self, &change.region, change.kind, id).await {
                Ok(()) => self.record(&teardown, Some(id.clone()), Outcome::Deleted, started),
                Err(error) => {
                    failed = true;
                    self.record(&teardown, Some(id.clone()), Outcome::Failed(error.to_string()), started);
                }
            }
        }
    }
}
