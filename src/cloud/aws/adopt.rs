//! Creates through APIs without client tokens, made safe by tags: before every retry, what an
//! attempt whose answer was lost made is looked for and adopted.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use super::AwsCloud;
use crate::cloud::{CloudError, ErrorClass, ResourceKind, tags};

impl AwsCloud {
    /// Runs `create` (one attempt, unretried) until it succeeds or the policy says stop. Before
    /// every retry, the resource of `kind` tagged for the same node (at creation) and matching
    /// `extra` is looked for: if an earlier attempt made it, it is adopted instead.
    pub(super) async fn create_once<F, Fut>(
        &self,
        region: &str,
        kind: ResourceKind,
        tags: &BTreeMap<String, String>,
        extra: Option<Filter>,
        mut create: F,
    ) -> Result<String, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<String, CloudError>>,
    {
        let policy = self.retry_policy();
        let started = tokio::time::Instant::now();
        let mut attempt = 1;
        let mut transient_failures = 0;
        loop {
            if attempt > 1
                && let Some(node) = tags.get(tags::NODE)
                && let Some(id) = self.find_by_node(region, kind, node, extra.clone()).await?
            {
                tracing::debug!(%id, node, "adopted what a create whose answer was lost made");
                return Ok(id);
            }
            match create().await {
                Ok(id) => return Ok(id),
                Err(error) => {
                    if error.class == ErrorClass::Transient {
                        transient_failures += 1;
                    }
                    if !policy.should_retry(&error, transient_failures, started.elapsed(), true) {
                        return Err(error);
                    }
                    tracing::debug!(%error, attempt, "retrying a create");
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}
