//! The wire formats the proxy reads and writes: which service, region and operation a request
//! is, with its parameters, and the answers it makes itself in each service's format.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::Call;

/// The text between the first `open` and the next `close`.
pub(crate) fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].to_string())
}

/// Where the top-level `<item>`s of every `<set>` of an EC2 answer are (an item's own lists
/// hold `<item>`s too; a DescribeInstances answer has one `<instancesSet>` per reservation).
pub(super) fn set_items(text: &str, set: &str) -> Vec<std::ops::Range<usize>> {
    let (open, close) = ("<item>", "</item>");
    let (set_open, set_close) = (format!("<{set}>"), format!("</{set}>"));
    let mut items = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(&set_open).map(|i| i + from + set_open.len()) {
        // No set holds a set of its own name, so the first close ends this one.
        let Some(end) = text[at..].find(&set_close).map(|i| i + at) else { break };
        let (mut depth, mut pos, mut start) = (0usize, at, at);
        loop {
            let next_open = text[pos..end].find(open).map(|i| i + pos);
            let next_close = text[pos..end].find(close).map(|i| i + pos);
            match (next_open, next_close) {
                (Some(o), Some(c)) if o < c => {
                    if depth == 0 {
                        start = o;
                    }
                    depth += 1;
                    pos = o + open.len();
                }
                (_, Some(c)) if depth > 0 => {
                    depth -= 1;
                    pos = c + close.len();
                    if depth == 0 {
                        items.push(start..pos);
                    }
                }
                _ => break,
            }
        }
        from = end + set_close.len();
    }
    items
}

/// A DescribeImages answer without the images whose XML `drop` picks.
pub(super) fn without_images(text: &str, drop: impl Fn(&str) -> bool) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut copied = 0;
    for item in set_items(text, "imagesSet") {
        if drop(&text[item.clone()]) {
            kept.push_str(&text[copied..item.start]);
            copied = item.end;
        }
    }
    kept.push_str(&text[copied..]);
    kept
}

/// A successful EC2 answer to `operation` with `inner` as its body.
pub(super) fn ok_answer(operation: &str, inner: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{operation}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>proxy</requestId>{inner}</{operation}Response>"
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The Service Quotas code of EC2's "Public AMIs" quota.
pub(super) const PUBLIC_AMIS: &str = "L-0E3CBAB9";

/// The Service Quotas code of EC2's "AMI sharing" quota.
pub(super) const AMI_SHARING: &str = "L-70015FFA";

/// The Service Quotas code of VPC's "VPCs per Region" quota.
pub(super) const VPCS: &str = "L-F678F1CE";

/// GetServiceQuota's (or GetAWSDefaultServiceQuota's) answer.
pub(super) fn quota_answer(service: &str, code: &str, name: &str, value: usize) -> Response<Full<Bytes>> {
    let quota = serde_json::json!({
        "ServiceCode": service,
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value as f64,
        "Unit": "None",
        "Adjustable": true,
        "GlobalQuota": false,
    });
    let body = serde_json::json!({ "Quota": quota }).to_string();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// GetConsoleOutput's answer, base64 as EC2 sends it.
pub(super) fn console_answer(instance: &str, text: &str) -> Response<Full<Bytes>> {
    use base64::Engine as _;
    let output = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetConsoleOutputResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>proxy</requestId><instanceId>{instance}</instanceId><timestamp>2026-11-23T00:00:00.000Z</timestamp><output>{output}</output></GetConsoleOutputResponse>"
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// An error answer in the wire format of the call's service.
pub(super) fn error(call: &Call, status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    error_with(call, status, code, &format!("injected by the test proxy into {}", call.operation))
}

pub(super) fn error_with(call: &Call, status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    if call.json() {
        let body = serde_json::json!({ "__type": code, "message": message }).to_string();
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-amzn-errortype", code)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
    }
    let message = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    if call.service == "sts" {
        // STS speaks the query protocol, whose errors are shaped unlike EC2's.
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>proxy</RequestId></ErrorResponse>"
        );
        return Response::builder()
            .status(status)
            .header("content-type", "text/xml")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
    }
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>proxy</RequestID></Response>"
    );
    Response::builder().status(status).header("content-type", "text/xml").body(Full::new(Bytes::from(body))).unwrap()
}

/// Service, region (from the SigV4 credential scope), operation and parameters of a request,
/// and whether amiplan made it.
pub(super) fn identify(parts: &hyper::http::request::Parts, body: &Bytes) -> Call {
    let mut call = identify_operation(parts, body);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let presigned = call.params.iter().any(|(k, _)| k == "X-Amz-Credential");
    call.app = [header("x-amz-user-agent"), header("user-agent")]
        .iter()
        .flat_map(|ua| ua.split(' '))
        .find_map(|token| token.strip_prefix("app/"))
        .map(str::to_string);
    call.by_amiplan = presigned || call.app.as_deref().is_some_and(|app| app.starts_with("amiplan"));
    call.tagging = parts.headers.contains_key("x-amz-tagging");
    call
}

pub(super) fn identify_operation(parts: &hyper::http::request::Parts, body: &Bytes) -> Call {
    let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    // A presigned URL carries its signature in the query instead of a header.
    let query: Vec<(String, String)> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let presigned = query.iter().find(|(k, _)| k == "X-Amz-Credential").map(|(_, v)| v.clone());
    let credential = presigned.clone().unwrap_or_else(|| auth.split("Credential=").nth(1).unwrap_or("").to_string());
    let scope: Vec<&str> = credential.split('/').collect();
    let region = scope.get(2).unwrap_or(&"").to_string();
    let service = scope.get(3).unwrap_or(&"").to_string();
    if service == "s3" {
        // REST: the operation is the method on a bucket (path style) or on a key in it.
        let path = parts.uri.path().trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        let has = |name: &str| query.iter().any(|(k, _)| k == name);
        let operation = match (parts.method.as_str(), key.is_empty()) {
            ("GET", true) if has("list-type") => "ListObjectsV2",
            ("GET", false) if has("tagging") => "GetObjectTagging",
            ("GET", false) => "GetObject",
            ("PUT", false) => "PutObject",
            ("DELETE", false) => "DeleteObject",
            _ => "OtherS3",
        };
        let mut params = vec![("Bucket".to_string(), bucket.to_string()), ("Key".to_string(), key.to_string())];
        if presigned.is_some() {
            params.extend(query.into_iter().filter(|(k, _)| k.starts_with("X-Amz-")));
        }
        return Call::new(service, operation.to_string(), region, params);
    }
    if service == "ebs" {
        let path = parts.uri.path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let operation = match (parts.method.as_str(), segments.as_slice()) {
            ("POST", ["snapshots"]) => "StartSnapshot",
            ("PUT", ["snapshots", _, "blocks", _]) => "PutSnapshotBlock",
            ("POST", ["snapshots", "completion", _]) => "CompleteSnapshot",
            ("GET", ["snapshots", _, "blocks"]) => "ListSnapshotBlocks",
            ("GET", ["snapshots", _, "blocks", _]) => "GetSnapshotBlock",
            ("GET", ["snapshots", _, "changedblocks"]) => "ListChangedBlocks",
            _ => "UnknownEbs",
        };
        let mut params: Vec<(String, String)> = segments
            .iter()
            .filter(|s| s.starts_with("snap-"))
            .map(|s| ("SnapshotId".to_string(), s.to_string()))
            .collect();
        if operation == "PutSnapshotBlock" {
            params.push(("BlockIndex".to_string(), segments[3].to_string()));
        }
        params.extend(json_params(body));
        return Call::new(service, operation.to_string(), region, params);
    }
    if service == "ssm" || service == "servicequotas" {
        // awsJson1_1: `X-Amz-Target: AmazonSSM.PutParameter` and a JSON body.
        let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
        let operation = target.rsplit('.').next().unwrap_or_default().to_string();
        return Call::new(service, operation, region, json_params(body));
    }
    let mut operation = String::new();
    let mut params = Vec::new();
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "Action" => operation = value.into_owned(),
            "Version" => {}
            _ => params.push((key.into_owned(), value.into_owned())),
        }
    }
    Call::new(service, operation, region, params)
}

/// The fields of a JSON request body as `Name`/`List.1.Field` pairs, like the query protocol's.
pub(super) fn json_params(body: &Bytes) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return params;
    };
    for (key, value) in fields {
        match value {
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    match item {
                        serde_json::Value::Object(object) => {
                            for (field, inner) in object {
                                let text = inner.as_str().map(str::to_string).unwrap_or_else(|| inner.to_string());
                                params.push((format!("{key}.{}.{field}", index + 1), text));
                            }
                        }
                        other => {
                            let text = other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string());
                            params.push((format!("{key}.{}", index + 1), text));
                        }
                    }
                }
            }
            serde_json::Value::String(text) => params.push((key, text)),
            other => params.push((key, other.to_string())),
        }
    }
    params
}
