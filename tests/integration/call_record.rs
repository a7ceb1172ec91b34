//! The suite's call record and the check of `amiplan policy` against it.
//!
//! Every amiplan run against an endpoint registers the IAM policy `amiplan policy` prints for
//! the same manifests ([`register_run`]); every proxy writes the calls amiplan made through it,
//! with those policies, into `target/tmp/call-record/` when it is dropped ([`write`]). After the
//! whole suite, `scripts/test` runs [`every_call_is_allowed_and_every_allowed_action_used`]
//! (ignored otherwise: it needs the whole record), which evaluates each recorded call against
//! its scenario's policies the way IAM does for the statements amiplan writes (action, resource
//! ARN pattern, `aws:RequestedRegion`, `aws:ResourceTag/amiplan:stack`), and checks that every
//! action some policy grants was used by some scenario.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::proxy::Call;

/// The policy of each run against each endpoint so far, by run.
static POLICIES: Mutex<BTreeMap<String, BTreeMap<String, Value>>> = Mutex::new(BTreeMap::new());
static RUNS: AtomicUsize = AtomicUsize::new(0);
/// Off in the benchmarks, which share the proxy.
static RECORDING: AtomicBool = AtomicBool::new(true);

/// Records nothing from now on in this process.
#[allow(dead_code)]
pub fn stop_recording() {
    RECORDING.store(false, Ordering::Relaxed);
}

/// Commands that call AWS and change something: they get the whole policy.
const CONVERGING: &[&str] = &["apply", "destroy", "unlock"];
/// Flags whose value is a file or directory but no manifest.
const NOT_MANIFESTS: &[&str] = &["--out", "--events", "--reports-dir", "--from"];
/// Commands that call AWS and only read: they get the read-only policy.
const READING: &[&str] = &["plan", "output", "catalog", "resolve", "serve"];

fn record_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("call-record")
}

/// Names a run of amiplan with `args` in `dir` against `endpoint` (what it passes as its
/// application name), and registers the policy for its manifests: `amiplan policy` with the
/// same manifest paths (those of a saved plan for `apply --plan`), `--read-only` for the
/// commands that only read.
pub fn register_run(endpoint: &str, dir: &Path, args: &[&str]) -> String {
    let run = format!("amiplan-run-{}", RUNS.fetch_add(1, Ordering::Relaxed));
    if !RECORDING.load(Ordering::Relaxed) {
        return run;
    }
    let Some(command) = args.first().filter(|c| CONVERGING.contains(c) || READING.contains(c)) else {
        return run;
    };
    // Manifest files and directories among the arguments; the values of flags that name other
    // files are not manifests, and a saved plan names its own.
    let mut paths: Vec<String> = Vec::new();
    let mut previous = *command;
    for arg in &args[1..] {
        let path = dir.join(arg);
        if previous == "--plan" {
            paths.extend(saved_plan_paths(&path));
        } else if !arg.starts_with('-')
            && !NOT_MANIFESTS.contains(&previous)
            && (path.is_dir() || arg.ends_with(".yaml") || arg.ends_with(".yml"))
            && path.exists()
        {
            paths.push(arg.to_string());
        }
        previous = arg;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_amiplan"))
        .arg("policy")
        .args(READING.contains(command).then_some("--read-only"))
        .args((CONVERGING.contains(command) && args.contains(&"--prune")).then_some("--prune"))
        .args(&paths)
        .current_dir(dir)
        // A cache of its own: the run's plan says whether it read a source or remembered it.
        .env("AMIPLAN_CACHE_DIR", dir.join(".amiplan-policy-cache"))
        .env("NO_COLOR", "1")
        .output()
        .expect("amiplan policy runs");
    // A manifest a test made broken on purpose has no policy: amiplan makes no call for it.
    if let Ok(policy) = serde_json::from_slice::<Value>(&output.stdout) {
        POLICIES.lock().unwrap().entry(endpoint.to_string()).or_default().insert(run.clone(), policy);
    }
    run
}

/// The manifest paths a saved plan was made from.
fn saved_plan_paths(plan: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(plan) else {
        return vec![];
    };
    let saved: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    saved["paths"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_string)).collect()
}

/// The `amiplan:stack` tag of each EC2 resource a changing EC2 call names, as moto has it now
/// (before the call is forwarded): what IAM compares `aws:ResourceTag/amiplan:stack` with. A
/// resource moto does not know (gone already) has no entry.
pub async fn resource_stacks(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    call: &Call,
) -> Vec<(String, Option<String>)> {
    if !RECORDING.load(Ordering::Relaxed) || !call.by_amiplan || call.service != "ec2" || !call.is_mutating() {
        return vec![];
    }
    let ids: Vec<&str> = call
        .params
        .iter()
        .filter(|(k, _)| k.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.').ends_with("Id"))
        .map(|(_, v)| v.as_str())
        .filter(|v| {
            ["ami-", "snap-", "i-", "vol-", "sg-", "vpc-", "subnet-", "igw-", "rtb-"].iter().any(|p| v.starts_with(p))
        })
        .collect();
    let mut stacks = Vec::new();
    for id in ids {
        // Snapshots made through EBS direct APIs carry their tags in moto, but not in its
        // DescribeTags: read snapshots and images themselves.
        let (query, found) = match id.split('-').next() {
            Some("snap") => {
                (vec![("Action", "DescribeSnapshots"), ("SnapshotId.1", id)], format!("<snapshotId>{id}</snapshotId>"))
            }
            Some("ami") => (vec![("Action", "DescribeImages"), ("ImageId.1", id)], format!("<imageId>{id}</imageId>")),
            _ => (
                vec![("Action", "DescribeTags"), ("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", id)],
                format!("<resourceId>{id}</resourceId>"),
            ),
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .append_pair("Version", "2016-11-15")
            .finish();
        let request = hyper::Request::post(upstream)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0",
                    call.region
                ),
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let Ok(answer) = client.request(request).await else { continue };
        let text = answer.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        // moto makes a snapshot of its own for every AMI it registers (moto/ec2/models/amis.py,
        // described so), where AWS registers the AMI on the snapshot it is given: not a resource
        // that exists on AWS.
        if !text.contains(&found) || text.contains("Auto-created snapshot for AMI") {
            continue;
        }
        let stack = text
            .split("<key>amiplan:stack</key>")
            .nth(1)
            .and_then(|rest| crate::proxy::between(rest, "<value>", "</value>"));
        stacks.push((id.to_string(), stack));
    }
    stacks
}

/// Writes amiplan's calls through the proxy at `endpoint`, with the policies of the runs
/// against it, into the record.
pub fn write(endpoint: &str, scenario: &str, calls: &[Call]) {
    if !RECORDING.load(Ordering::Relaxed) {
        return;
    }
    let policies = POLICIES.lock().unwrap().remove(endpoint).unwrap_or_default();
    let calls: Vec<Value> = calls
        .iter()
        .filter(|c| c.by_amiplan)
        .map(|c| {
            json!({
                "service": c.service,
                "operation": c.operation,
                "app": c.app,
                "region": c.region,
                "params": c.params.iter().filter(|(k, _)| is_name(k)).collect::<Vec<_>>(),
                // Tags at creation: S3's header, Parameter Store's and EC2's parameters.
                "tagging": c.tagging || c.params.iter().any(|(k, _)| k.starts_with("Tags.") || k.starts_with("TagSpecification.")),
                "resource_stacks": c.resource_stacks,
            })
        })
        .collect();
    if calls.is_empty() && policies.is_empty() {
        return;
    }
    let dir = record_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let port = endpoint.rsplit(':').next().unwrap_or("0");
    let file = dir.join(format!("{}-{port}.json", scenario.replace("::", "-")));
    let record = json!({"scenario": scenario, "policies": policies, "calls": calls});
    std::fs::write(file, serde_json::to_vec(&record).unwrap()).unwrap();
}

/// The parameters that name what a call acts on (resource IDs, buckets, keys, parameter names):
/// what the check reads, and what a report of a denied call shows.
fn is_name(key: &str) -> bool {
    let base = key.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    base.ends_with("Id") || ["Bucket", "Key", "Name", "Names", "Path"].contains(&base)
}

/// The IAM actions a recorded call needs.
fn needed_actions(call: &Value) -> Vec<String> {
    let operation = call["operation"].as_str().unwrap_or_default();
    // STS answers GetCallerIdentity whatever the policy says (its API reference: "No
    // permissions are required to perform this operation").
    if operation == "GetCallerIdentity" {
        return vec![];
    }
    let mut actions = vec![amiplan::cloud::aws::iam_action(operation)];
    // Tagging at creation is authorized as tagging too (PutObject's page; "Grant permission to
    // tag resources during creation" for EC2; PutParameter with tags needs AddTagsToResource).
    if call["tagging"].as_bool() == Some(true) {
        match call["service"].as_str() {
            Some("s3") => actions.push("s3:PutObjectTagging".to_string()),
            Some("ssm") => actions.push("ssm:AddTagsToResource".to_string()),
            Some("ec2") => actions.push("ec2:CreateTags".to_string()),
            _ => {}
        }
    }
    actions
}

/// The ARNs a recorded call acts on, as IAM matches them against `Resource` (one account stands
/// for any: the policies name none).
fn resources(call: &Value, action: &str) -> Vec<String> {
    let param = |name: &str| -> Vec<String> {
        call["params"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p[0].as_str().is_some_and(|k| k == name || k.starts_with(&format!("{name}."))))
            .filter_map(|p| p[1].as_str().map(str::to_string))
            .collect()
    };
    let region = call["region"].as_str().unwrap_or_default();
    match call["service"].as_str().unwrap_or_default() {
        "s3" if action == "s3:ListBucket" => param("Bucket").iter().map(|b| format!("arn:aws:s3:::{b}")).collect(),
        "s3" => {
            let (bucket, key) = (param("Bucket").concat(), param("Key").concat());
            vec![format!("arn:aws:s3:::{bucket}/{key}")]
        }
        "ssm" if action != "ssm:DescribeParameters" => ["Name", "Names", "Path", "ResourceId"]
            .iter()
            .flat_map(|name| param(name))
            .map(|name| format!("arn:aws:ssm:{region}:123456789012:parameter/{}", name.trim_start_matches('/')))
            .collect(),
        // EC2, EBS and DescribeParameters: amiplan's statements for them name no resource.
        service => vec![format!("arn:aws:{service}:{region}:123456789012:any")],
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one.
fn matches(pattern: &str, text: &str) -> bool {
    match (pattern.chars().next(), text.chars().next()) {
        (None, None) => true,
        (Some('*'), _) => {
            matches(&pattern[1..], text)
                || (!text.is_empty() && matches(pattern, &text[text.chars().next().unwrap().len_utf8()..]))
        }
        (Some('?'), Some(t)) => matches(&pattern[1..], &text[t.len_utf8()..]),
        (Some(p), Some(t)) if p == t => matches(&pattern[p.len_utf8()..], &text[t.len_utf8()..]),
        _ => false,
    }
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// Whether `statement` allows `action` for `call`, evaluated as IAM does for what amiplan's
/// policies use; any other condition fails closed.
fn allows(statement: &Value, action: &str, call: &Value) -> bool {
    if statement["Effect"] != "Allow" || !strings(&statement["Action"]).iter().any(|a| matches(a, action)) {
        return false;
    }
    let patterns = strings(&statement["Resource"]);
    let arns = resources(call, action);
    if arns.is_empty() || !arns.iter().all(|arn| patterns.iter().any(|p| matches(p, arn))) {
        return false;
    }
    let Some(conditions) = statement.get("Condition") else {
        return true;
    };
    // The stack tag of every EC2 resource the call names (one already gone has no tags to
    // compare, and the call cannot do anything to it either).
    let named = call["resource_stacks"].as_array().cloned().unwrap_or_default();
    let stacks: Vec<Option<&str>> = named.iter().map(|pair| pair[1].as_str()).collect();
    conditions.as_object().unwrap().iter().all(|(operator, keys)| match operator.as_str() {
        // `"false"`: the key is present.
        "Null" => keys.as_object().unwrap().iter().all(|(key, value)| {
            key == "aws:ResourceTag/amiplan:stack" && value == "false" && stacks.iter().all(Option::is_some)
        }),
        "StringEquals" => keys.as_object().unwrap().iter().all(|(key, values)| {
            let values = strings(values);
            match key.as_str() {
                "aws:RequestedRegion" => values.contains(&call["region"].as_str().unwrap_or_default()),
                "aws:ResourceTag/amiplan:stack" => stacks.iter().all(|s| s.is_some_and(|s| values.contains(&s))),
                _ => false,
            }
        }),
        _ => false,
    })
}

#[test]
#[ignore = "reads the whole suite's call record: scripts/test runs it after the suite"]
fn every_call_is_allowed_and_every_allowed_action_used() {
    let dir = record_dir();
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!("no call record in {} ({e}): run the whole suite first, as scripts/test does", dir.display())
        })
        .map(|entry| entry.unwrap().path())
        .collect();
    let (mut denied, mut unchecked) = (BTreeMap::new(), BTreeSet::new());
    let (mut used, mut granted) = (BTreeSet::new(), BTreeSet::new());
    for file in &files {
        let record: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let scenario = record["scenario"].as_str().unwrap_or_default().to_string();
        let policies = record["policies"].as_object().unwrap();
        let of = |policy: &'_ Value| -> Vec<Value> { policy["Statement"].as_array().unwrap().clone() };
        let every: Vec<Value> = policies.values().flat_map(of).collect();
        for statement in &every {
            granted.extend(strings(&statement["Action"]).into_iter().map(str::to_string));
        }
        for call in record["calls"].as_array().unwrap() {
            // A call is judged by the policy of the run that made it; a presigned URL's (the
            // instance's upload) by the scenario's. A scenario without amiplan runs presigned
            // its URLs itself.
            let statements = match call["app"].as_str() {
                Some(run) => policies.get(run).map(of).unwrap_or_default(),
                None if policies.is_empty() => continue,
                None => every.clone(),
            };
            for action in needed_actions(call) {
                if statements.is_empty() {
                    unchecked.insert(format!("{scenario}: {action} by {}", call["app"]));
                } else if statements.iter().any(|s| allows(s, &action, call)) {
                    used.insert(action);
                } else {
                    // One example per action and scenario.
                    denied.entry(format!("{action} ({scenario})")).or_insert_with(|| {
                        format!("in {} on {} {}", call["region"], call["params"], call["resource_stacks"])
                    });
                }
            }
        }
    }
    let denied: BTreeSet<String> = denied.into_iter().map(|(what, example)| format!("{what}: {example}")).collect();
    // KMS is called by EC2 and EBS with amiplan's credentials, not by amiplan: no proxy sees it.
    let indirect: BTreeSet<String> = amiplan::cloud::aws::KEY_ACTIONS.iter().map(|a| a.to_string()).collect();
    let unused: BTreeSet<&String> = granted.difference(&used).filter(|a| !indirect.contains(*a)).collect();
    assert!(
        unchecked.is_empty() && denied.is_empty() && unused.is_empty(),
        "amiplan called AWS with no manifest to make a policy of:\n{}\n\ncalls the generated policy does not allow:\n{}\n\nactions a generated policy grants that no scenario used: {unused:?}",
        lines(&unchecked),
        lines(&denied)
    );
    // A partial record (a filtered run) would leave actions unused: the whole suite records
    // more than 50 scenarios.
    assert!(
        files.len() > 50,
        "only {} scenarios in the call record {}: run the whole suite first",
        files.len(),
        dir.display()
    );
}

fn lines(set: &BTreeSet<String>) -> String {
    set.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
}
