//! The AWS SDK implementation of every capability of [`Cloud`](super::Cloud): the only module that
//! talks to AWS. Honors the standard credential chain, profiles and `AWS_ENDPOINT_URL` (how tests
//! reach the local emulator).
//!
//! Every SDK call goes through [`AwsCloud::call`]: one place maps SDK errors to classified
//! [`CloudError`]s and retries them by the [`RetryPolicy`].

/// Every page of a filtered Describe, through the call helper: `describe!(cloud, region,
/// "DescribeVpcs", ec2.describe_vpcs(), filters)`.
macro_rules! describe {
    ($cloud:expr, $region:expr, $operation:literal, $request:expr, $filters:expr) => {
        async {
            let request = $request;
            let filters: Vec<aws_sdk_ec2::types::Filter> = $filters;
            $cloud
                .call($operation, $region)
                .send(|| {
                    let request = request.clone().set_filters(Some(filters.clone()));
                    request.into_paginator().items().send().collect::<Result<Vec<_>, _>>()
                })
                .await
        }
    };
}

mod account;
mod adopt;
mod build_hosts;
mod discovery;
mod errors;
mod images;
mod locks;
mod network;
mod objects;
mod parameters;
mod permissions;
mod policy;
mod snapshots;
mod states;
mod tagging;
mod upload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

pub use account::quota_code;
use errors::{HasStatus, sdk_error};
pub use errors::{aws_error, classify, iam_action};
pub use policy::{KEY_ACTIONS, iam_policy};

use super::CloudError;
use super::retry::RetryPolicy;

/// How to reach AWS (or an emulator speaking its API).
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Overrides `AWS_ENDPOINT_URL` and the per-service endpoints.
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// Region for calls that are not about a manifest region (STS).
    pub home_region: String,
}

/// Refuses a profile the shared config and credentials files do not define: the SDK would say
/// only that no credentials were found.
async fn check_profile(profile: &str, region: &str) -> Result<(), CloudError> {
    let (fs, env) = (aws_types::os_shim_internal::Fs::real(), aws_types::os_shim_internal::Env::real());
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let known: Vec<String> = match aws_config::profile::load(&fs, &env, &files, None).await {
        Ok(set) => set.profiles().map(str::to_string).collect(),
        Err(_) => vec![],
    };
    if known.iter().any(|p| p == profile) {
        return Ok(());
    }
    let mut known = known;
    known.sort();
    let listed = if known.is_empty() { "none at all".to_string() } else { format!("only {}", known.join(", ")) };
    // `crate::spelling` says this for the rest of amiplan; the cloud layer uses nothing of it.
    let guess = known
        .iter()
        .filter(|k| strsim::damerau_levenshtein(k, profile) <= 2)
        .min_by_key(|k| strsim::damerau_levenshtein(k, profile))
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let message =
        format!("AWS profile `{profile}` not found{guess}: the shared config and credentials files define {listed}");
    Err(CloudError::new("LoadProfile", region, super::ErrorClass::Denied, message)
        .with_cause(Some(super::Cause::UnknownProfile)))
}

/// Tuning of the SDK-backed cloud.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub retry: RetryPolicy,
    /// PutSnapshotBlock requests in flight per upload. AWS's own guide to EBS direct API
    /// performance counts about 100 ms per PutSnapshotBlock; 48 in flight is then about 480
    /// requests (240 MiB) a second, half of EBS's 1,000 per second per snapshot, and 24 MiB of
    /// blocks in memory, which keeps amiplan's peak RSS under 64 MiB during an upload. A source
    /// whose reading needs memory of its own (xz's decoder threads) gets fewer.
    pub upload_concurrency: usize,
    /// The least time between two PutSnapshotBlock requests of one upload, retries included:
    /// by default 1.1 ms, under EBS's per-snapshot rate (`upload.rs`). Tests set a longer one to see
    /// the pacing apart from the machine's speed.
    pub block_interval: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { retry: RetryPolicy::default(), upload_concurrency: 48, block_interval: upload::PUT_INTERVAL }
    }
}

pub struct AwsCloud {
    config: SdkConfig,
    tuning: Tuning,
    ec2: Mutex<HashMap<String, aws_sdk_ec2::Client>>,
    ebs: Mutex<HashMap<String, aws_sdk_ebs::Client>>,
    ssm: Mutex<HashMap<String, aws_sdk_ssm::Client>>,
    s3: Mutex<HashMap<String, aws_sdk_s3::Client>>,
    /// Instances whose live console EC2 refused (not Nitro): read buffered from then on.
    buffered_consoles: Mutex<HashSet<String>>,
}

impl AwsCloud {
    pub async fn connect(connection: &Connection, tuning: Tuning) -> Result<AwsCloud, CloudError> {
        let named = connection.profile.clone().or_else(|| std::env::var("AWS_PROFILE").ok());
        if let Some(profile) = named {
            check_profile(&profile, &connection.home_region).await?;
        }
        // amiplan's RetryPolicy is the one layer that retries (it knows which errors are worth
        // it, and for how long); the SDK's own retries would multiply its attempts. The SDK
        // still enforces the attempt timeout and the overall deadline of every call.
        let timeouts = TimeoutConfig::builder()
            .operation_attempt_timeout(tuning.retry.attempt_timeout)
            .operation_timeout(tuning.retry.attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(connection.home_region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(url) = &connection.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = &connection.profile {
            loader = loader.profile_name(profile);
        }
        let mut config = loader.load().await;
        // Requests say they are amiplan's (`app/amiplan` in the user agent, which CloudTrail
        // records) unless the user named the application (`AWS_SDK_UA_APP_ID`, or
        // `sdk_ua_app_id` in the profile). The tests' call record tells amiplan's calls from
        // their own checks by it, and each run's from the others'.
        if config.app_name().is_none() {
            config =
                config.into_builder().app_name(aws_config::AppName::new("amiplan").expect("a valid app name")).build();
        }
        Ok(AwsCloud::from_config(config, tuning))
    }

    /// A cloud on an SDK configuration made elsewhere (the tests' configuration for moto). The
    /// SDK's retries are switched off whatever that configuration says, as in [`AwsCloud::connect`]:
    /// a retry inside the SDK would also pass by the upload's pacing of PutSnapshotBlock.
    pub fn from_config(config: aws_types::SdkConfig, tuning: Tuning) -> AwsCloud {
        AwsCloud {
            config: config.into_builder().retry_config(RetryConfig::disabled()).build(),
            tuning,
            ec2: Mutex::default(),
            ebs: Mutex::default(),
            ssm: Mutex::default(),
            s3: Mutex::default(),
            buffered_consoles: Mutex::default(),
        }
    }

    fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        cached(&self.ec2, region, |region| {
            aws_sdk_ec2::Client::from_conf(aws_sdk_ec2::config::Builder::from(&self.config).region(region).build())
        })
    }

    fn ebs(&self, region: &str) -> aws_sdk_ebs::Client {
        cached(&self.ebs, region, |region| {
            aws_sdk_ebs::Client::from_conf(aws_sdk_ebs::config::Builder::from(&self.config).region(region).build())
        })
    }

    fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        cached(&self.ssm, region, |region| {
            aws_sdk_ssm::Client::from_conf(aws_sdk_ssm::config::Builder::from(&self.config).region(region).build())
        })
    }

    fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        cached(&self.s3, region, |region| {
            // Buckets are found by host name on AWS; an endpoint of one host (an emulator, a
            // proxy) can only serve them by path.
            let by_path = self.config.endpoint_url().is_some();
            let config = aws_sdk_s3::config::Builder::from(&self.config).region(region).force_path_style(by_path);
            aws_sdk_s3::Client::from_conf(config.build())
        })
    }

    /// The retry policy this client was made with; the executor waits by the same one.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.tuning.retry
    }

    /// One logical call: `operation` in `region`, retried by the policy.
    fn call<'a>(&'a self, operation: &'static str, region: &'a str) -> Call<'a> {
        Call { policy: &self.tuning.retry, operation, region, resource: None, just_created: false }
    }
}

/// What the SDK's operation errors have in common.
trait ServiceError: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {}

impl<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static> ServiceError for E {}

/// The client of `region` from `cache`, made on first use.
fn cached<C: Clone>(cache: &Mutex<HashMap<String, C>>, region: &str, make: impl FnOnce(Region) -> C) -> C {
    let mut clients = cache.lock().expect("client cache lock");
    clients.entry(region.to_string()).or_insert_with(|| make(Region::new(region.to_string()))).clone()
}

/// One SDK operation as amiplan makes it: named in errors, classified, retried.
struct Call<'a> {
    policy: &'a RetryPolicy,
    operation: &'static str,
    region: &'a str,
    resource: Option<&'a str>,
    just_created: bool,
}

impl<'a> Call<'a> {
    /// The resource the call is about, named in its error.
    fn on(mut self, resource: &'a str) -> Call<'a> {
        self.resource = Some(resource);
        self
    }

    /// The resource was made moments ago: `NotFound` and `NotReady` are retried for the
    /// consistency window.
    fn fresh(mut self) -> Call<'a> {
        self.just_created = true;
        self
    }

    /// Sends the request `attempt` builds, as often as the policy allows.
    async fn send<T, E, R, F, Fut>(self, mut attempt: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ServiceError,
        R: std::fmt::Debug + HasStatus,
    {
        let policy = self.policy;
        let just_created = self.just_created;
        let this = &self;
        policy
            .run(just_created, || {
                let answer = attempt();
                async move { answer.await.map_err(|error| this.error(error)) }
            })
            .await
    }

    /// One attempt, its error classified but not retried: for creates whose retries must look
    /// for what the lost attempt made first (see [`AwsCloud::create_once`]).
    async fn once<T, E, R, Fut>(self, attempt: impl FnOnce() -> Fut) -> Result<T, CloudError>
    where
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ServiceError,
        R: std::fmt::Debug + HasStatus,
    {
        attempt().await.map_err(|error| self.error(error))
    }

    fn error<E, R>(&self, error: SdkError<E, R>) -> CloudError
    where
        E: ServiceError,
        R: std::fmt::Debug + HasStatus,
    {
        let error = sdk_error(self.operation, self.region, error);
        match self.resource {
            Some(resource) => error.on(resource),
            None => error,
        }
    }
}

/// What a not-found answer means to the caller.
trait Missing<T> {
    /// For deletes: a resource already gone counts as deleted.
    fn or_gone(self) -> Result<(), CloudError>;
    /// For reads of one resource: one that does not exist is `None`.
    fn or_none(self) -> Result<Option<T>, CloudError>;
}

impl<T> Missing<T> for Result<T, CloudError> {
    fn or_gone(self) -> Result<(), CloudError> {
        match self {
            Err(error) if error.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn or_none(self) -> Result<Option<T>, CloudError> {
        match self {
            Err(error) if error.is_not_found() => Ok(None),
            other => other.map(Some),
        }
    }
}

/// The error of a Describe that answered without the one resource it was asked for.
fn missing(operation: &'static str, region: &str, code: &str, id: &str) -> CloudError {
    aws_error(operation, region, Some(code), format!("{id} does not exist")).on(id)
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(ec2_tags(tags))).build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key.clone()?, t.value.clone().unwrap_or_default()))).collect()
}
