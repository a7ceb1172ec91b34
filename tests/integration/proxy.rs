//! A fault-injecting HTTP proxy between amiplan and moto, for the failures moto never shows:
//! throttling, server errors, dropped connections, latency, eventual consistency (new IDs answer
//! `*.NotFound`, new AMIs and snapshots report `pending`), and a kill switch after the k-th
//! mutating call. Faults are drawn from a seeded generator, so a failing run can be replayed;
//! every call is recorded (operation, region, parameters).
//!
//! It also plays what moto lacks: the console of helper instances (a test sets what
//! GetConsoleOutput answers, as the helper's job would print it), image deprecation
//! (Enable/DisableImageDeprecation, with DeprecationTime added to DescribeImages answers) and the
//! image block public access state.
//!
//! Faults are decided before a request is forwarded: a throttled or failed request never reaches
//! moto, as with AWS, which does no work for a request it refuses.
//!
//! Beyond faults, the proxy enforces AWS's rules that moto ignores (client tokens, console
//! buffering, deprecation limits, …): see `rules.rs`, and `enforce.rs` for how. They are on
//! unless a test turns one off. The services' wire formats are read and written in `wire.rs`.

#[path = "enforce.rs"]
mod enforce;
#[path = "holds.rs"]
mod holds;
#[path = "launches.rs"]
mod launches;
#[path = "rules.rs"]
pub mod rules;
#[path = "wire.rs"]
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

use enforce::{
    Protected, enforce_rules, makes_public, placement_refusal, revoke_disabled_permissions, unchecked_image_parameter,
};
use rules::{Console, Rule, Rules, TokenUse};
pub(crate) use wire::between;
use wire::{
    AMI_SHARING, PUBLIC_AMIS, VPCS, console_answer, error, error_with, identify, ok_answer, quota_answer,
    without_images,
};

/// What to inject. Rates are probabilities per call.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub throttle: f64,
    pub server_error: f64,
    pub drop: f64,
    pub latency: Duration,
    /// How long a new AMI or snapshot ID answers `*.NotFound` to direct references.
    pub not_found_for: Duration,
    /// How long a new AMI or snapshot reports `pending` when described by ID.
    pub pending_for: Duration,
    /// Throttle in bursts: of every `every` calls, the first `length` are throttled.
    pub burst: Option<Burst>,
    /// Latency for particular operations, instead of `latency`.
    pub latency_by_operation: HashMap<String, Duration>,
    /// Answer GetImageBlockPublicAccessState with this state (moto lacks the API).
    pub block_public_access: Option<String>,
    /// Answer GetSnapshotBlockPublicAccessState with this state (moto lacks it too).
    pub snapshot_block_public_access: Option<String>,
    /// Answer StartSnapshot with AWS's block size (524288) instead of moto's 512, so that clients
    /// which trust the field (coldsnap) can be compared fairly.
    pub aws_block_size: bool,
    /// Answer PutSnapshotBlock here, after checking its checksum and once the faults and rules
    /// let it through (a new snapshot's not-found window included), instead of sending the
    /// block to moto: a sink as fast as the checks, so that the client's own cost is what a
    /// benchmark measures. StartSnapshot and CompleteSnapshot (checked too) still go to moto.
    pub ebs_sink: bool,
    /// AWS's rules, all on by default.
    pub rules: Rules,
    /// Operations whose first request moto carries out but whose answer is lost (the
    /// connection drops after the work is done).
    pub lose_first_answer_of: Vec<&'static str>,
    /// Operations answered with an error instead, every time: (operation, HTTP status, code,
    /// message), as AWS answers them (an expired token, a denied action).
    pub answer_with: Vec<(&'static str, u16, &'static str, &'static str)>,
    /// Operations answered with an error only their first so many times, then let through (a
    /// shortage that passes): (operation, times, HTTP status, code, message).
    pub answer_first_with: Vec<(&'static str, usize, u16, &'static str, &'static str)>,
}

#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub every: usize,
    pub length: usize,
}

/// One call amiplan made.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub region: String,
    pub params: Vec<(String, String)>,
    /// When the proxy received it (the fan-out benchmark reads it).
    #[allow(dead_code)]
    pub at: Instant,
    /// Made by amiplan (its user agent says `app/amiplan…`, or a URL it presigned), not by a
    /// test's own checks.
    pub by_amiplan: bool,
    /// The application its user agent names (`amiplan-run-7`: the tests name each run).
    pub app: Option<String>,
    /// An S3 PUT with tags (`x-amz-tagging`), which IAM checks as `s3:PutObjectTagging` too.
    pub tagging: bool,
    /// The EC2 resources the call names and the stack each was tagged with when it came (for
    /// the calls IAM scopes by the resource's tag: see `call_record.rs`).
    pub resource_stacks: Vec<(String, Option<String>)>,
}

impl Call {
    fn new(service: String, operation: String, region: String, params: Vec<(String, String)>) -> Call {
        Call {
            service,
            operation,
            region,
            params,
            at: Instant::now(),
            by_amiplan: false,
            app: None,
            tagging: false,
            resource_stacks: Vec::new(),
        }
    }

    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether the service speaks JSON (EBS direct, Parameter Store) rather than EC2's query
    /// protocol: its errors are JSON, and named differently.
    pub fn json(&self) -> bool {
        matches!(self.service.as_str(), "ebs" | "ssm" | "servicequotas")
    }

    /// Anything but Describe/Get/List changes something.
    pub fn is_mutating(&self) -> bool {
        !["Describe", "Get", "List"].iter().any(|p| self.operation.starts_with(p))
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Injected {
    pub throttled: usize,
    pub server_errors: usize,
    pub dropped: usize,
    pub not_found: usize,
    pub pending: usize,
}

struct State {
    faults: Faults,
    rng: fastrand::Rng,
    calls: Vec<Call>,
    created: HashMap<String, Instant>,
    injected: Injected,
    mutating: usize,
    kill_after: Option<(usize, oneshot::Sender<()>)>,
    /// Calls in flight now, and the most at once, per (operation, region).
    in_flight: HashMap<(String, String), usize>,
    most_in_flight: HashMap<(String, String), usize>,
    /// What GetConsoleOutput answers per instance, instead of moto's canned boot log.
    consoles: HashMap<String, Console>,
    /// Deprecation times set through the proxy (moto has no deprecation API), per AMI.
    deprecations: HashMap<String, String>,
    /// Deregistration protection set through the proxy (moto has no such API), per AMI.
    protections: HashMap<String, Protected>,
    /// Client tokens' first uses (rule `client-tokens`).
    tokens: HashMap<String, TokenUse>,
    /// Instance types of the instances launched through the proxy.
    instance_types: HashMap<String, String>,
    /// When AMIs made through the proxy were created, and which are public.
    image_created: HashMap<String, SystemTime>,
    public_images: HashSet<String>,
    /// Operations already stalled once (rule `stalled-connection`).
    stalled: HashSet<String>,
    /// How many times each rule refused or changed a request.
    enforced: HashMap<&'static str, usize>,
    /// Snapshots started with the EBS direct APIs and not yet completed (rule
    /// `started-snapshots-pending`).
    started_snapshots: HashSet<String>,
    /// The volume size in GiB of each snapshot started (rule `snapshot-volume-bounds`).
    snapshot_volumes: HashMap<String, u64>,
    /// SHA-256 of each block written, per snapshot (rule `block-checksums`).
    block_digests: HashMap<String, std::collections::BTreeMap<u64, [u8; 32]>>,
    /// When each PutSnapshotBlock of the last second was accepted, per snapshot (rule
    /// `snapshot-block-rate`).
    block_puts: HashMap<String, std::collections::VecDeque<Instant>>,
    /// The RunInstances request behind each instance.
    launches: HashMap<String, Call>,
    /// The RegisterImage or CopyImage request behind each AMI (moto shows a made-up root
    /// snapshot instead of the one registered).
    image_requests: HashMap<String, Call>,
    /// Mutating calls that reached moto (not those a fault or a rule answered), in order.
    forwarded_mutating: Vec<String>,
    /// Operations whose first answer was lost already.
    answers_lost: HashSet<String>,
    /// How often each operation of `Faults::answer_first_with` was answered with its error.
    answered_first: HashMap<String, usize>,
    /// Instances a TerminateInstances forwarded to moto terminated, and when it answered.
    terminated: HashMap<String, Instant>,
    /// The instance each volume was last attached to through the proxy (rule `instance-holds`).
    attachments: HashMap<String, String>,
    /// What each AMI registered (or copied) through the proxy was registered with (rule
    /// `instance-type-fits-image`): moto keeps none of it.
    registered: HashMap<String, launches::Registered>,
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
    /// Held for reading while a TerminateInstances is with moto, and for writing by a test
    /// powering an instance off: see [`Proxy::hold_terminations`].
    terminations: tokio::sync::RwLock<()>,
    /// Held by a request making an AMI public from its check against the quota to its answer,
    /// so that two at once are counted one after the other (rule `public-ami-quota`).
    publishing: tokio::sync::Mutex<()>,
}

pub struct Proxy {
    pub endpoint: String,
    /// The test that started it (its thread's name), for the call record.
    scenario: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
        let calls = std::mem::take(&mut self.shared.state.lock().unwrap().calls);
        crate::call_record::write(&self.endpoint, &self.scenario, &calls);
    }
}

impl Proxy {
    pub async fn start(upstream: &str, faults: Faults, seed: u64) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = State {
            faults,
            rng: fastrand::Rng::with_seed(seed),
            calls: Vec::new(),
            created: HashMap::new(),
            injected: Injected::default(),
            mutating: 0,
            kill_after: None,
            in_flight: HashMap::new(),
            most_in_flight: HashMap::new(),
            consoles: HashMap::new(),
            deprecations: HashMap::new(),
            protections: HashMap::new(),
            tokens: HashMap::new(),
            instance_types: HashMap::new(),
            image_created: HashMap::new(),
            public_images: HashSet::new(),
            stalled: HashSet::new(),
            enforced: HashMap::new(),
            block_digests: HashMap::new(),
            snapshot_volumes: HashMap::new(),
            block_puts: HashMap::new(),
            started_snapshots: HashSet::new(),
            launches: HashMap::new(),
            image_requests: HashMap::new(),
            forwarded_mutating: Vec::new(),
            answers_lost: HashSet::new(),
            answered_first: HashMap::new(),
            terminated: HashMap::new(),
            attachments: HashMap::new(),
            registered: HashMap::new(),
        };
        let client = Client::builder(TokioExecutor::new()).build_http();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            client,
            state: Mutex::new(state),
            terminations: tokio::sync::RwLock::default(),
            publishing: tokio::sync::Mutex::default(),
        });
        let server_shared = Arc::clone(&shared);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = Arc::clone(&server_shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        let scenario = std::thread::current().name().unwrap_or("unnamed").to_string();
        Proxy { endpoint, scenario, shared, server }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.state.lock().unwrap().calls.clone()
    }

    pub fn injected(&self) -> Injected {
        self.shared.state.lock().unwrap().injected
    }

    /// The most calls of `operation` that arrived within one second (a refused call included).
    pub fn busiest_second(&self, operation: &str) -> usize {
        let state = self.shared.state.lock().unwrap();
        let mut arrivals: Vec<Instant> =
            state.calls.iter().filter(|c| c.operation == operation).map(|c| c.at).collect();
        arrivals.sort();
        let mut first = 0;
        let mut most = 0;
        for (last, at) in arrivals.iter().enumerate() {
            while at.duration_since(arrivals[first]) >= Duration::from_secs(1) {
                first += 1;
            }
            most = most.max(last + 1 - first);
        }
        most
    }

    /// The most `operation` calls that were in flight at once in `region`, added latency
    /// included (the fan-out benchmark checks the per-region copy limit with it, a test the
    /// upload's blocks in flight).
    pub fn most_in_flight(&self, operation: &str, region: &str) -> usize {
        let state = self.shared.state.lock().unwrap();
        state.most_in_flight.get(&(operation.to_string(), region.to_string())).copied().unwrap_or(0)
    }

    /// What `instance` has printed on its console so far (its helper's or test's job). With the
    /// `console-output` rule, GetConsoleOutput shows it live only with `Latest` on a Nitro
    /// type; otherwise only once the instance powered off (see [`Proxy::power_off`]).
    #[allow(dead_code)] // the benchmarks include this file and play no helper
    pub fn set_console(&self, instance: &str, text: &str) {
        self.shared.state.lock().unwrap().consoles.entry(instance.to_string()).or_default().live = text.to_string();
    }

    /// The player powered `instance` off (it stopped or terminated it in moto): EC2 buffers the
    /// console of this transition and posts it `console_delay` later.
    #[allow(dead_code)]
    pub fn power_off(&self, instance: &str) {
        let mut state = self.shared.state.lock().unwrap();
        let console = state.consoles.entry(instance.to_string()).or_default();
        console.buffered = Some((Instant::now(), console.live.clone()));
    }

    /// Keeps amiplan's TerminateInstances away from moto until the guard drops, once those moto
    /// has already started are done: a test powering an instance off decides between stopping it
    /// and leaving it alone by [`Proxy::terminated`], and a termination landing between that
    /// decision and the stop would let moto turn the terminated instance back into a stopped one
    /// (EC2 refuses to stop a terminated instance).
    #[allow(dead_code)]
    pub async fn hold_terminations(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.shared.terminations.write().await
    }

    /// Whether a TerminateInstances that moto carried out named `instance`.
    #[allow(dead_code)]
    pub fn terminated(&self, instance: &str) -> bool {
        self.shared.state.lock().unwrap().terminated.contains_key(instance)
    }

    /// The mutating calls that reached moto since the last [`Proxy::clear_calls`]: what
    /// [`Proxy::kill_after`] counts (calls a fault or a rule answered never reach moto).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().forwarded_mutating.clone()
    }

    /// The rules this proxy enforces.
    #[allow(dead_code)]
    pub fn rules(&self) -> Rules {
        self.shared.state.lock().unwrap().faults.rules.clone()
    }

    /// Changes the rules in force from the next request on (a quota raised during a test).
    pub fn set_rules(&self, rules: Rules) {
        self.shared.state.lock().unwrap().faults.rules = rules;
    }

    /// amiplan's RunInstances request that launched `instance`.
    #[allow(dead_code)]
    pub fn launch_of(&self, instance: &str) -> Option<Call> {
        self.shared.state.lock().unwrap().launches.get(instance).cloned()
    }

    /// amiplan's RegisterImage or CopyImage request that made `image`.
    #[allow(dead_code)]
    pub fn image_request(&self, image: &str) -> Option<Call> {
        self.shared.state.lock().unwrap().image_requests.get(image).cloned()
    }

    /// How many requests each AWS rule refused or answered differently from moto.
    #[allow(dead_code)]
    pub fn enforced(&self, rule: Rule) -> usize {
        self.shared.state.lock().unwrap().enforced.get(rule.name()).copied().unwrap_or(0)
    }

    pub fn clear_calls(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.calls.clear();
        state.forwarded_mutating.clear();
        state.mutating = 0;
    }

    /// After the `k`-th mutating call (1-based) has reached moto, its answer is held back forever
    /// and the returned receiver fires: the caller then kills the client.
    pub fn kill_after(&self, k: usize) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut state = self.shared.state.lock().unwrap();
        state.mutating = 0;
        state.kill_after = Some((k, sender));
        receiver
    }
}

enum Verdict {
    /// Forward to moto; `pending` rewrites ready states in the answer to `pending`.
    Forward {
        pending: bool,
    },
    Answer(Response<Full<Bytes>>),
    Drop,
    /// Accept the request and never answer it.
    Stall,
}

/// A call counted as in flight from its arrival (its added latency included) to its answer, as
/// the client sees it.
struct InFlight {
    shared: Arc<Shared>,
    key: (String, String),
}

impl InFlight {
    fn enter(shared: &Arc<Shared>, call: &Call) -> InFlight {
        let key = (call.operation.clone(), call.region.clone());
        let mut state = shared.state.lock().unwrap();
        let now = *state.in_flight.entry(key.clone()).and_modify(|n| *n += 1).or_insert(1);
        let most = state.most_in_flight.entry(key.clone()).or_default();
        *most = (*most).max(now);
        InFlight { shared: Arc::clone(shared), key }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            *state.in_flight.get_mut(&self.key).expect("entered") -= 1;
        }
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut call = identify(&parts, &body);
    call.resource_stacks = crate::call_record::resource_stacks(&shared.client, &shared.upstream, &call).await;
    let publishing = match makes_public(&call) {
        true => Some(shared.publishing.lock().await),
        false => None,
    };
    if let Some((rule, code, refusal)) = placement_refusal(&shared, &call, &parts).await {
        let mut state = shared.state.lock().unwrap();
        state.calls.push(call.clone());
        *state.enforced.entry(rule.name()).or_default() += 1;
        return Ok(error_with(&call, StatusCode::BAD_REQUEST, code, &refusal));
    }
    if let Some(answer) = throttled_block(&shared, &call) {
        return Ok(answer);
    }
    if let Some(answer) = checked_blocks(&shared, &call, &parts, &body) {
        return Ok(answer);
    }
    if let Some(answer) = unchecked_image_parameter(&shared, &call, &parts).await {
        let mut state = shared.state.lock().unwrap();
        state.calls.push(call.clone());
        *state.enforced.entry(Rule::ImageParameterValidation.name()).or_default() += 1;
        return Ok(answer);
    }
    let (verdict, latency, kill) = judge(&shared, &call);
    let _in_flight = InFlight::enter(&shared, &call);
    tokio::time::sleep(latency).await;
    let pending = match verdict {
        Verdict::Answer(response) => return Ok(response),
        Verdict::Drop => return Err(std::io::Error::other("connection dropped on purpose")),
        Verdict::Stall => std::future::pending().await,
        Verdict::Forward { pending } => pending,
    };
    if call.operation == "PutSnapshotBlock" && shared.state.lock().unwrap().faults.ebs_sink {
        return Ok(sunk_block(&parts));
    }

    let terminating =
        if call.operation == "TerminateInstances" { Some(shared.terminations.read().await) } else { None };
    let forwarded = forward(&shared, &parts, body).await;
    if terminating.is_some() && forwarded.as_ref().is_ok_and(|(answer, _)| answer.status.is_success()) {
        let mut state = shared.state.lock().unwrap();
        for instance in referenced_ids(&call) {
            // Terminating a terminated instance again does not start its termination over.
            state.terminated.entry(instance).or_insert_with(Instant::now);
        }
    }
    drop(terminating);
    // moto made it public (or refused): the next one is counted against what it holds now.
    drop(publishing);
    let (mut answer_parts, mut bytes) = forwarded?;

    let rules = shared.state.lock().unwrap().faults.rules.clone();
    if call.operation == "DisableImage" && answer_parts.status.is_success() && rules.on(Rule::DisabledAmis) {
        revoke_disabled_permissions(&shared, &call, &parts).await;
    }
    remember_created(&shared, &call, &bytes);
    if answer_parts.status.is_success() {
        remember_snapshot_volume(&shared, &call, &bytes);
        holds::remember(&shared, &call);
        launches::remember(&shared, &call, &bytes);
        bytes = started_snapshots_pending(&shared, &call, bytes);
        bytes = holds::show_shutting_down(&shared, &call, bytes);
    }
    remember_answer(&shared, &call, &answer_parts, &bytes);
    {
        let mut state = shared.state.lock().unwrap();
        if state.faults.lose_first_answer_of.contains(&call.operation.as_str())
            && state.answers_lost.insert(call.operation.clone())
        {
            state.injected.dropped += 1;
            return Err(std::io::Error::other("answer lost on purpose"));
        }
    }
    if call.operation == "DescribeImages" {
        let (deprecations, protections) = {
            let state = shared.state.lock().unwrap();
            (state.deprecations.clone(), state.protections.clone())
        };
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if rules.on(Rule::DisabledAmis) && call.param("IncludeDisabled") != Some("true") {
            text = without_images(&text, |image| image.contains("<imageState>disabled</imageState>"));
        }
        for (image, at) in deprecations {
            let id = format!("<imageId>{image}</imageId>");
            text = text.replace(&id, &format!("{id}<deprecationTime>{at}</deprecationTime>"));
        }
        for (image, protected) in protections {
            let Some(word) = protected.word() else { continue };
            let id = format!("<imageId>{image}</imageId>");
            text = text.replace(&id, &format!("{id}<deregistrationProtection>{word}</deregistrationProtection>"));
        }
        bytes = Bytes::from(text);
    }
    if call.operation == "StartSnapshot" && shared.state.lock().unwrap().faults.aws_block_size {
        let text = String::from_utf8_lossy(&bytes).replace("\"BlockSize\": 512,", "\"BlockSize\": 524288,");
        bytes = Bytes::from(text.replace("\"BlockSize\":512,", "\"BlockSize\":524288,"));
    }
    if pending {
        let text = String::from_utf8_lossy(&bytes);
        let rewritten = text
            .replace("<imageState>available</imageState>", "<imageState>pending</imageState>")
            .replace("<status>completed</status>", "<status>pending</status>");
        if rewritten != text {
            shared.state.lock().unwrap().injected.pending += 1;
            bytes = Bytes::from(rewritten);
        }
    }
    answer_parts.headers.remove(hyper::header::CONTENT_LENGTH);
    answer_parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    if let Some(signal) = kill {
        let _ = signal.send(());
        std::future::pending::<()>().await;
    }
    Ok(Response::from_parts(answer_parts, Full::new(bytes)))
}

/// Rule `snapshot-block-rate`: a PutSnapshotBlock beyond the per-snapshot rate in the last second
/// is refused before anything else looks at it (the sink included), and is not counted: a
/// refused request costs the snapshot none of its rate.
fn throttled_block(shared: &Shared, call: &Call) -> Option<Response<Full<Bytes>>> {
    let mut state = shared.state.lock().unwrap();
    if call.operation != "PutSnapshotBlock" || !state.faults.rules.on(Rule::SnapshotBlockRate) {
        return None;
    }
    let limit = state.faults.rules.blocks_per_second;
    let snapshot = call.param("SnapshotId").unwrap_or_default().to_string();
    let now = Instant::now();
    let accepted = state.block_puts.entry(snapshot.clone()).or_default();
    while accepted.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1)) {
        accepted.pop_front();
    }
    if accepted.len() < limit {
        accepted.push_back(now);
        return None;
    }
    state.calls.push(call.clone());
    *state.enforced.entry(Rule::SnapshotBlockRate.name()).or_default() += 1;
    let body = serde_json::json!({
        "__type": "RequestThrottledException",
        "message": format!("More than {limit} PutSnapshotBlock requests a second for {snapshot}"),
        "Reason": "RESOURCE_LEVEL_THROTTLE",
    });
    let answer = Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", "RequestThrottledException")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    Some(answer)
}

/// Rule `block-checksums`, which the sink always applies: each block's checksum is checked
/// against its data, and CompleteSnapshot's count and linear aggregate against the blocks
/// written.
fn checked_blocks(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Option<Response<Full<Bytes>>> {
    use base64::Engine;
    use sha2::Digest;
    let base64 = base64::engine::general_purpose::STANDARD;
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut state = shared.state.lock().unwrap();
    let (check, sink) = (state.faults.rules.on(Rule::BlockChecksums), state.faults.ebs_sink);
    if !(check || sink) {
        return None;
    }
    let snapshot = call.param("SnapshotId")?.to_string();
    let refuse = |state: &mut State, message: String| {
        state.calls.push(call.clone());
        *state.enforced.entry(Rule::BlockChecksums.name()).or_default() += 1;
        Some(error_with(call, StatusCode::BAD_REQUEST, "ValidationException", &message))
    };
    match call.operation.as_str() {
        "PutSnapshotBlock" => {
            let index: u64 = parts.uri.path().rsplit('/').next()?.parse().ok()?;
            let digest: [u8; 32] = sha2::Sha256::digest(body).into();
            let checksum = base64.encode(digest);
            if checksum != header("x-amz-checksum") {
                let message = format!("The checksum of block {index} does not match its data ({checksum})");
                return refuse(&mut state, message);
            }
            state.block_digests.entry(snapshot).or_default().insert(index, digest);
        }
        "CompleteSnapshot" => {
            let written = state.block_digests.get(&snapshot).cloned().unwrap_or_default();
            let linear = base64.encode(sha2::Sha256::digest(written.values().flatten().copied().collect::<Vec<u8>>()));
            let claimed = header("x-amz-checksum");
            if header("x-amz-changedblockscount") != written.len().to_string() {
                let message = format!(
                    "ChangedBlocksCount is {}, but {} blocks were written",
                    header("x-amz-changedblockscount"),
                    written.len()
                );
                return refuse(&mut state, message);
            }
            if !claimed.is_empty() && claimed != linear {
                return refuse(
                    &mut state,
                    format!("The aggregated checksum {claimed} does not match the blocks written ({linear})"),
                );
            }
        }
        _ => {}
    }
    None
}

/// The sink's answer to a PutSnapshotBlock that the faults and rules let through, as EBS gives
/// it once the block is stored: its checksum (checked against the data already).
fn sunk_block(parts: &hyper::http::request::Parts) -> Response<Full<Bytes>> {
    let checksum = parts.headers.get("x-amz-checksum").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let body = serde_json::json!({ "Checksum": checksum, "ChecksumAlgorithm": "SHA256" }).to_string();
    let answer = Response::builder().status(StatusCode::CREATED).header("content-type", "application/json");
    answer.body(Full::new(Bytes::from(body))).unwrap()
}

async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(hyper::http::response::Parts, Bytes), std::io::Error> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = Request::builder().method(parts.method.clone()).uri(format!("{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(body)).unwrap();
    let answer = shared.client.request(request).await.map_err(std::io::Error::other)?;
    let (answer_parts, answer_body) = answer.into_parts();
    let bytes = answer_body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    Ok((answer_parts, bytes))
}

/// Decides the fate of one call; returns the latency to add and, for the k-th mutating call,
/// the kill signal to fire once moto has done the work.
fn judge(shared: &Shared, call: &Call) -> (Verdict, Duration, Option<oneshot::Sender<()>>) {
    let mut state = shared.state.lock().unwrap();
    state.calls.push(call.clone());
    let faults = state.faults.clone();
    let latency = faults.latency_by_operation.get(&call.operation).copied().unwrap_or(faults.latency);
    let in_burst = faults.burst.is_some_and(|b| (state.calls.len() - 1) % b.every < b.length);
    let roll = state.rng.f64();
    if let Some((_, status, code, message)) = faults.answer_with.iter().find(|(op, ..)| *op == call.operation) {
        let status = StatusCode::from_u16(*status).unwrap();
        return (Verdict::Answer(error_with(call, status, code, message)), latency, None);
    }
    if let Some((_, times, status, code, message)) =
        faults.answer_first_with.iter().find(|(op, ..)| *op == call.operation)
    {
        let answered = state.answered_first.entry(call.operation.clone()).or_default();
        if *answered < *times {
            *answered += 1;
            let status = StatusCode::from_u16(*status).unwrap();
            return (Verdict::Answer(error_with(call, status, code, message)), latency, None);
        }
    }
    if in_burst || roll < faults.throttle {
        state.injected.throttled += 1;
        let code = if call.json() { "ThrottlingException" } else { "RequestLimitExceeded" };
        return (Verdict::Answer(error(call, StatusCode::SERVICE_UNAVAILABLE, code)), latency, None);
    }
    if roll < faults.throttle + faults.server_error {
        state.injected.server_errors += 1;
        let code = match call.service.as_str() {
            "ebs" => "InternalServerException",
            "ssm" => "InternalServerError",
            _ => "InternalError",
        };
        return (Verdict::Answer(error(call, StatusCode::INTERNAL_SERVER_ERROR, code)), latency, None);
    }
    if roll < faults.throttle + faults.server_error + faults.drop {
        state.injected.dropped += 1;
        return (Verdict::Drop, latency, None);
    }
    if let Some(verdict) = enforce_rules(&mut state, call) {
        return (verdict, latency, None);
    }
    let param = |name: &str| call.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match call.operation.as_str() {
        "EnableImageDeprecation" | "DisableImageDeprecation" => {
            let image = param("ImageId").unwrap_or_default();
            match param("DeprecateAt") {
                Some(at) => state.deprecations.insert(image, at),
                None => state.deprecations.remove(&image),
            };
            return (Verdict::Answer(ok_answer(&call.operation, "<return>true</return>")), latency, None);
        }
        "EnableImageDeregistrationProtection" => {
            let cooldown = param("WithCooldown").is_some_and(|v| v == "true");
            state.protections.insert(param("ImageId").unwrap_or_default(), Protected::On { cooldown });
            return (Verdict::Answer(ok_answer(&call.operation, "<return>true</return>")), latency, None);
        }
        "DisableImageDeregistrationProtection" => {
            let image = param("ImageId").unwrap_or_default();
            let lifted = match state.protections.remove(&image) {
                Some(Protected::On { cooldown: true }) => {
                    Some(Protected::CoolingDown(SystemTime::now() + state.faults.rules.protection_cooldown))
                }
                Some(Protected::On { cooldown: false }) | None => None,
                cooling => cooling,
            };
            if let Some(lifted) = lifted {
                state.protections.insert(image, lifted);
            }
            return (Verdict::Answer(ok_answer(&call.operation, "<return>true</return>")), latency, None);
        }
        "GetSnapshotBlockPublicAccessState" if faults.snapshot_block_public_access.is_some() => {
            let value = faults.snapshot_block_public_access.clone().unwrap_or_default();
            return (Verdict::Answer(ok_answer(&call.operation, &format!("<state>{value}</state>"))), latency, None);
        }
        // moto's Service Quotas knows only VPC quotas: the proxy answers EC2's AMI quotas from
        // its rules. A quota left at its default has no applied value (the API reference allows
        // GetServiceQuota to answer so: NoSuchResourceException), so that clients are seen to
        // fall back to GetAWSDefaultServiceQuota.
        "GetServiceQuota" | "GetAWSDefaultServiceQuota" if param("ServiceCode").as_deref() == Some("ec2") => {
            let code = param("QuotaCode").unwrap_or_default();
            let (name, quota, default_quota) = match code.as_str() {
                PUBLIC_AMIS => ("Public AMIs", faults.rules.public_ami_quota, rules::DEFAULT_PUBLIC_AMI_QUOTA),
                AMI_SHARING => ("AMI sharing", faults.rules.ami_sharing_quota, rules::DEFAULT_AMI_SHARING_QUOTA),
                _ => {
                    let message = format!("The proxy plays no EC2 quota {code}.");
                    let answer = error_with(call, StatusCode::BAD_REQUEST, "NoSuchResourceException", &message);
                    return (Verdict::Answer(answer), latency, None);
                }
            };
            let default = call.operation == "GetAWSDefaultServiceQuota";
            if !default && quota == default_quota {
                let message = "The request failed because the specified service does not exist.";
                let answer = error_with(call, StatusCode::BAD_REQUEST, "NoSuchResourceException", message);
                return (Verdict::Answer(answer), latency, None);
            }
            let value = if default { default_quota } else { quota };
            return (Verdict::Answer(quota_answer("ec2", &code, name, value)), latency, None);
        }
        // moto answers the VPC quota's default (5); a test that raised it gets the raised value.
        "GetServiceQuota"
            if param("ServiceCode").as_deref() == Some("vpc")
                && param("QuotaCode").as_deref() == Some(VPCS)
                && faults.rules.vpc_quota != 5 =>
        {
            let answer = quota_answer("vpc", VPCS, "VPCs per Region", faults.rules.vpc_quota);
            return (Verdict::Answer(answer), latency, None);
        }
        "GetImageBlockPublicAccessState" if faults.block_public_access.is_some() => {
            let value = faults.block_public_access.clone().unwrap_or_default();
            let body = format!("<imageBlockPublicAccessState>{value}</imageBlockPublicAccessState>");
            return (Verdict::Answer(ok_answer(&call.operation, &body)), latency, None);
        }
        _ => {}
    }
    let fresh = |id: &str, window: Duration| state.created.get(id).is_some_and(|t| t.elapsed() < window);
    let referenced = referenced_ids(call);
    // Calls that name a resource created moments ago, and may not see it yet. Deletes are left
    // out: AWS answers them consistently enough, and amiplan takes NotFound there as "gone".
    let may_be_unseen = call.operation.starts_with("Describe")
        || call.operation == "GetConsoleOutput"
        || matches!(
            call.operation.as_str(),
            "CreateTags"
                | "DeleteTags"
                | "ModifyImageAttribute"
                | "PutSnapshotBlock"
                | "CompleteSnapshot"
                | "CreateSubnet"
                | "AttachInternetGateway"
                | "CreateRouteTable"
                | "CreateRoute"
                | "AssociateRouteTable"
                | "CreateSecurityGroup"
                | "RunInstances"
                | "AttachVolume"
                | "CreateSnapshot"
        );
    if may_be_unseen && let Some(id) = referenced.iter().find(|id| fresh(id, faults.not_found_for)) {
        state.injected.not_found += 1;
        let code = match id.split('-').next() {
            Some("ami") => "InvalidAMIID.NotFound",
            Some("snap") if call.service == "ebs" => "ResourceNotFoundException",
            Some("snap") => "InvalidSnapshot.NotFound",
            Some("vpc") => "InvalidVpcID.NotFound",
            Some("subnet") => "InvalidSubnetID.NotFound",
            Some("igw") => "InvalidInternetGatewayID.NotFound",
            Some("rtb") => "InvalidRouteTableID.NotFound",
            Some("vol") => "InvalidVolume.NotFound",
            Some("i") => "InvalidInstanceID.NotFound",
            _ => "InvalidGroup.NotFound",
        };
        let status = if call.service == "ebs" { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
        return (Verdict::Answer(error(call, status, code)), latency, None);
    }
    let pending = matches!(call.operation.as_str(), "DescribeImages" | "DescribeSnapshots")
        && referenced.iter().any(|id| fresh(id, faults.pending_for));
    let mut kill = None;
    if call.is_mutating() {
        state.mutating += 1;
        state.forwarded_mutating.push(call.operation.clone());
        let due = state.kill_after.as_ref().is_some_and(|(k, _)| *k == state.mutating);
        if due {
            kill = state.kill_after.take().map(|(_, sender)| sender);
        }
    }
    (Verdict::Forward { pending }, latency, kill)
}

/// IDs of the kinds amiplan creates that a call names (EC2 parameters, or the EBS path).
fn referenced_ids(call: &Call) -> Vec<String> {
    const PREFIXES: &[&str] = &["ami-", "snap-", "vpc-", "subnet-", "igw-", "rtb-", "sg-", "vol-", "i-"];
    let looks_like_id = |v: &str| PREFIXES.iter().any(|p| v.starts_with(p));
    call.params.iter().map(|(_, v)| v.clone()).filter(|v| looks_like_id(v)).collect()
}

/// What the rules need from moto's answers: the first answer to a client token, the types of
/// instances, the creation times of AMIs.
fn remember_answer(shared: &Shared, call: &Call, parts: &hyper::http::response::Parts, body: &Bytes) {
    let mut state = shared.state.lock().unwrap();
    if !parts.status.is_success() {
        return;
    }
    if let Some(key) = rules::token_key(call)
        && let Some(first) = state.tokens.get_mut(&key)
        && first.answer.is_none()
    {
        let content_type =
            parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("text/xml").to_string();
        first.answer = Some((parts.status.as_u16(), content_type, body.clone()));
    }
    let text = String::from_utf8_lossy(body);
    match call.operation.as_str() {
        "RunInstances" => {
            let instance_type = call.param("InstanceType").unwrap_or("m1.small").to_string();
            for chunk in text.split("<instanceId>").skip(1) {
                if let Some(id) = chunk.split("</instanceId>").next() {
                    state.instance_types.insert(id.to_string(), instance_type.clone());
                    state.launches.insert(id.to_string(), call.clone());
                }
            }
        }
        "RegisterImage" | "CopyImage" => {
            if let Some(id) = between(&text, "<imageId>", "</imageId>") {
                state.image_created.entry(id.clone()).or_insert_with(SystemTime::now);
                state.image_requests.insert(id, call.clone());
            }
        }
        _ => {}
    }
}

fn remember_created(shared: &Shared, call: &Call, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    let id = match call.operation.as_str() {
        "RegisterImage" | "CopyImage" => between(&text, "<imageId>", "</imageId>"),
        "CreateVpc" => between(&text, "<vpcId>", "</vpcId>"),
        "CreateSubnet" => between(&text, "<subnetId>", "</subnetId>"),
        "CreateInternetGateway" => between(&text, "<internetGatewayId>", "</internetGatewayId>"),
        "CreateRouteTable" => between(&text, "<routeTableId>", "</routeTableId>"),
        "CreateSecurityGroup" => between(&text, "<groupId>", "</groupId>"),
        "CreateVolume" => between(&text, "<volumeId>", "</volumeId>"),
        "RunInstances" => between(&text, "<instanceId>", "</instanceId>"),
        "StartSnapshot" => serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["SnapshotId"].as_str().map(str::to_string)),
        _ => None,
    };
    if let Some(id) = id {
        shared.state.lock().unwrap().created.insert(id, Instant::now());
    }
}

/// The volume a started snapshot stands for, from StartSnapshot's answer (rule
/// `snapshot-volume-bounds`).
fn remember_snapshot_volume(shared: &Shared, call: &Call, body: &[u8]) {
    if call.operation != "StartSnapshot" {
        return;
    }
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    if let (Some(id), Some(gib)) = (answer["SnapshotId"].as_str(), answer["VolumeSize"].as_u64()) {
        shared.state.lock().unwrap().snapshot_volumes.insert(id.to_string(), gib);
    }
}

/// Rule `started-snapshots-pending`: what StartSnapshot made is pending until CompleteSnapshot,
/// in every DescribeSnapshots answer.
fn started_snapshots_pending(shared: &Shared, call: &Call, bytes: Bytes) -> Bytes {
    let mut state = shared.state.lock().unwrap();
    if !state.faults.rules.on(Rule::StartedSnapshotsPending) {
        return bytes;
    }
    match call.operation.as_str() {
        "StartSnapshot" => {
            let answer = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
            if let Some(id) = answer.as_ref().and_then(|v| v["SnapshotId"].as_str()) {
                state.started_snapshots.insert(id.to_string());
            }
        }
        "CompleteSnapshot" => {
            if let Some(id) = call.param("SnapshotId") {
                state.started_snapshots.remove(id);
            }
        }
        "DescribeSnapshots" if !state.started_snapshots.is_empty() => {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            let mut rewritten = false;
            for id in &state.started_snapshots {
                let Some(at) = text.find(&format!("<snapshotId>{id}</snapshotId>")) else { continue };
                let end = text[at + 1..].find("<snapshotId>").map_or(text.len(), |next| at + 1 + next);
                if let Some(status) = text[at..end].find("<status>completed</status>") {
                    let start = at + status;
                    text.replace_range(start..start + "<status>completed</status>".len(), "<status>pending</status>");
                    rewritten = true;
                }
            }
            if rewritten {
                *state.enforced.entry(Rule::StartedSnapshotsPending.name()).or_default() += 1;
                return Bytes::from(text);
            }
        }
        _ => {}
    }
    bytes
}
