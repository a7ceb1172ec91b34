//! The proxy's enforcement of AWS's rules (see `rules.rs`): what it answers itself instead of
//! forwarding to moto, judged on the request, on what the proxy remembers, or on what moto holds.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};

use super::rules::{self, Rule, TokenUse};
use super::{Call, Shared, State, Verdict, between, console_answer, error_with, ok_answer};

/// The rules judged on what moto holds, asked of moto itself: the VPC, public AMI and AMI
/// sharing quotas, sharing a disabled AMI, AMI names in use, what an instance type launches,
/// sharing under encryption by default, and instance type offerings (a RunInstances in a subnet whose Availability Zone does
/// not offer the instance type is refused, as AWS does; moto's offerings data is AWS's). The
/// rule, AWS's error code and its message.
pub(super) async fn placement_refusal(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
) -> Option<(Rule, &'static str, String)> {
    let rules = shared.state.lock().unwrap().faults.rules.clone();
    if call.operation == "CreateVpc" && rules.on(Rule::VpcQuota) {
        let vpcs = ask_moto(shared, parts, "Action=DescribeVpcs&Version=2016-11-15".into()).await?;
        let count = vpcs.matches("<vpcId>").count();
        return (count >= rules.vpc_quota).then(|| {
            let message =
                format!("The maximum number of VPCs has been reached ({} in {}).", rules.vpc_quota, call.region);
            (Rule::VpcQuota, "VpcLimitExceeded", message)
        });
    }
    if rules.on(Rule::PublicAmiQuota) && makes_public(call) {
        let question =
            "Action=DescribeImages&Version=2016-11-15&Owner.1=self&Filter.1.Name=is-public&Filter.1.Value.1=true";
        let public = ask_moto(shared, parts, question.into()).await?;
        let image = call.param("ImageId").unwrap_or_default();
        let already = public.contains(&format!("<imageId>{image}</imageId>"));
        let count = public.matches("<imageId>").count();
        if !already && count >= rules.public_ami_quota {
            let message = format!(
                "You have reached your quota of {} for the number of public images allowed in this Region. Deregister unused public images or make them private, or request an increase in your public AMIs quota.",
                rules.public_ami_quota
            );
            return Some((Rule::PublicAmiQuota, "ResourceLimitExceeded", message));
        }
    }
    if rules.on(Rule::AmiSharingQuota)
        && let Some(refusal) = sharing_past_quota(shared, call, parts, rules.ami_sharing_quota).await
    {
        return Some(refusal);
    }
    if rules.on(Rule::DisabledAmis)
        && let Some(refusal) = sharing_a_disabled_image(shared, call, parts).await
    {
        return Some(refusal);
    }
    if rules.on(Rule::InstanceHolds)
        && let Some(refusal) = super::holds::held_by_an_instance(shared, call, parts).await
    {
        return Some(refusal);
    }
    if rules.on(Rule::AmiNameDuplicate)
        && let Some(refusal) = duplicate_ami_name(shared, call, parts).await
    {
        return Some(refusal);
    }
    if rules.on(Rule::InstanceTypeFitsImage)
        && let Some(refusal) = super::launches::type_refuses_image(shared, call, parts).await
    {
        return Some(refusal);
    }
    let shares = |prefix: &str| call.params.iter().any(|(k, _)| k.starts_with(prefix));
    if rules.on(Rule::EbsEncryptionByDefault)
        && match call.operation.as_str() {
            "ModifyImageAttribute" => shares("LaunchPermission.Add."),
            "ModifySnapshotAttribute" => {
                shares("CreateVolumePermission.Add.") || call.param("OperationType") == Some("add")
            }
            _ => false,
        }
    {
        // In an account with encryption by default, every new volume and snapshot is encrypted
        // with the default key, which can be neither public nor shared with other accounts.
        let setting = ask_moto(shared, parts, "Action=GetEbsEncryptionByDefault&Version=2016-11-15".into()).await?;
        return setting.contains("<ebsEncryptionByDefault>true</ebsEncryptionByDefault>").then(|| {
            let message = format!(
                "{} cannot be shared: its snapshots are encrypted with the account's default EBS key (encryption by default is on in {})",
                call.param("ImageId").or(call.param("SnapshotId")).unwrap_or("the resource"),
                call.region
            );
            (Rule::EbsEncryptionByDefault, "InvalidParameter", message)
        });
    }
    if call.operation != "RunInstances" || !rules.on(Rule::InstanceTypeOfferings) {
        return None;
    }
    let subnet = call.param("SubnetId").or_else(|| call.param("NetworkInterface.1.SubnetId"))?;
    let instance_type = call.param("InstanceType").unwrap_or("m1.small");
    let subnets =
        ask_moto(shared, parts, format!("Action=DescribeSubnets&Version=2016-11-15&SubnetId.1={subnet}")).await?;
    let zone = between(&subnets, "<availabilityZone>", "</availabilityZone>")?;
    let offerings = ask_moto(
        shared,
        parts,
        format!(
            "Action=DescribeInstanceTypeOfferings&Version=2016-11-15&LocationType=availability-zone&Filter.1.Name=instance-type&Filter.1.Value.1={instance_type}&Filter.2.Name=location&Filter.2.Value.1={zone}"
        ),
    )
    .await?;
    (!offerings.contains(&format!("<location>{zone}</location>"))).then(|| {
        let message = format!(
            "Your requested instance type ({instance_type}) is not supported in your requested Availability Zone ({zone})."
        );
        (Rule::InstanceTypeOfferings, "Unsupported", message)
    })
}

/// PutParameter of an `aws:ec2:image` value that is no AMI available in the region: AWS answers
/// success and never stores it. So does the proxy, without asking moto to store it.
pub(super) async fn unchecked_image_parameter(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
) -> Option<Response<Full<Bytes>>> {
    let rules = shared.state.lock().unwrap().faults.rules.clone();
    if call.operation != "PutParameter"
        || call.param("DataType") != Some("aws:ec2:image")
        || !rules.on(Rule::ImageParameterValidation)
    {
        return None;
    }
    let image = call.param("Value").unwrap_or_default();
    let question = format!("Action=DescribeImages&Version=2016-11-15&ImageId.1={image}");
    let images = ask_moto(shared, parts, question).await.unwrap_or_default();
    if images.contains("<imageState>available</imageState>") {
        return None;
    }
    let body = serde_json::json!({ "Version": 1, "Tier": "Standard" }).to_string();
    Some(
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
}

/// Rule `ami-sharing-quota`: a ModifyImageAttribute that would leave the AMI shared with more
/// accounts, organizations and OUs than `quota`, counted on what moto holds for it.
async fn sharing_past_quota(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
    quota: usize,
) -> Option<(Rule, &'static str, String)> {
    const ENTITIES: [&str; 3] = ["UserId", "OrganizationArn", "OrganizationalUnitArn"];
    let named = |change: &str| -> BTreeSet<String> {
        let prefix = format!("LaunchPermission.{change}.");
        call.params
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && ENTITIES.iter().any(|e| k.ends_with(&format!(".{e}"))))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let adding = named("Add");
    if call.operation != "ModifyImageAttribute" || adding.is_empty() {
        return None;
    }
    let image = call.param("ImageId")?;
    let question =
        format!("Action=DescribeImageAttribute&Version=2016-11-15&Attribute=launchPermission&ImageId={image}");
    let held = ask_moto(shared, parts, question).await?;
    let mut entities: BTreeSet<String> = ENTITIES
        .iter()
        .flat_map(|entity| {
            let tag = format!("{}{}", entity[..1].to_lowercase(), &entity[1..]);
            all_between(&held, &format!("<{tag}>"), &format!("</{tag}>"))
        })
        .collect();
    entities.extend(adding);
    for removed in named("Remove") {
        entities.remove(&removed);
    }
    (entities.len() > quota).then(|| {
        let message = format!(
            "You have reached your quota of {quota} for the number of entities that an AMI can be shared with in this Region ({image} would be shared with {}).",
            entities.len()
        );
        (Rule::AmiSharingQuota, "ResourceLimitExceeded", message)
    })
}

/// Rule `disabled-amis`: a ModifyImageAttribute granting launch permissions to a disabled AMI.
async fn sharing_a_disabled_image(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
) -> Option<(Rule, &'static str, String)> {
    let grants = call.params.iter().any(|(k, _)| k.starts_with("LaunchPermission.Add."));
    if call.operation != "ModifyImageAttribute" || !grants {
        return None;
    }
    let image = call.param("ImageId")?;
    let held = ask_moto(shared, parts, format!("Action=DescribeImages&Version=2016-11-15&ImageId.1={image}")).await?;
    held.contains("<imageState>disabled</imageState>").then(|| {
        let message = format!("{image} is disabled: a disabled AMI can't be shared");
        (Rule::DisabledAmis, "OperationNotPermitted", message)
    })
}

/// Rule `disabled-amis`, once moto has disabled an AMI: AWS removes every launch permission of
/// a disabled AMI, and moto keeps them, so the proxy revokes them.
pub(super) async fn revoke_disabled_permissions(shared: &Shared, call: &Call, parts: &hyper::http::request::Parts) {
    let Some(image) = call.param("ImageId") else { return };
    let question =
        format!("Action=DescribeImageAttribute&Version=2016-11-15&Attribute=launchPermission&ImageId={image}");
    let Some(held) = ask_moto(shared, parts, question).await else { return };
    let mut revoke = format!("Action=ModifyImageAttribute&Version=2016-11-15&ImageId={image}");
    let mut n = 0;
    for (tag, field) in [
        ("group", "Group"),
        ("userId", "UserId"),
        ("organizationArn", "OrganizationArn"),
        ("organizationalUnitArn", "OrganizationalUnitArn"),
    ] {
        for value in all_between(&held, &format!("<{tag}>"), &format!("</{tag}>")) {
            n += 1;
            revoke.push_str(&format!("&LaunchPermission.Remove.{n}.{field}={value}"));
        }
    }
    if n > 0 {
        ask_moto(shared, parts, revoke).await;
    }
}

/// Every value between `open` and `close` in `text`.
fn all_between(text: &str, open: &str, close: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(value) = between(rest, open, close) {
        let end = rest.find(open).expect("found") + open.len() + value.len() + close.len();
        found.push(value);
        rest = &rest[end..];
    }
    found
}

/// A ModifyImageAttribute that grants everyone launch permission.
pub(super) fn makes_public(call: &Call) -> bool {
    call.operation == "ModifyImageAttribute"
        && call
            .params
            .iter()
            .any(|(k, v)| k.starts_with("LaunchPermission.Add.") && k.ends_with(".Group") && v == "all")
}

/// Rule `snapshot-permission-batch`: a ModifySnapshotAttribute with more than 500 grants or
/// revocations, or with both, in either of AWS's two forms (OperationType with UserId.N and
/// UserGroup.N, or CreateVolumePermission.Add.N / .Remove.N).
fn snapshot_permission_batch(call: &Call) -> Option<(&'static str, String)> {
    let listed = |prefix: &str| call.params.iter().filter(|(k, _)| k.starts_with(prefix)).count();
    let (adds, removes) = (listed("CreateVolumePermission.Add."), listed("CreateVolumePermission.Remove."));
    let (direct, operation) = (listed("UserId.") + listed("UserGroup."), call.param("OperationType"));
    let adding = adds > 0 || (direct > 0 && operation == Some("add"));
    let removing = removes > 0 || (direct > 0 && operation == Some("remove"));
    if adding && removing {
        let message = "You cannot both add and remove create volume permissions in a single operation".to_string();
        return Some(("InvalidParameterCombination", message));
    }
    let modifications = adds + removes + direct;
    (modifications > 500).then(|| {
        let message =
            format!("You can make up to 500 modifications to a snapshot in a single operation ({modifications} asked)");
        ("InvalidParameterValue", message)
    })
}

/// Asks moto an EC2 question of its own, in the region of the request being judged.
pub(super) async fn ask_moto(shared: &Shared, parts: &hyper::http::request::Parts, body: String) -> Option<String> {
    let mut request = Request::builder().method("POST").uri(format!("{}/", shared.upstream));
    for name in ["authorization", "host", "x-amz-date"] {
        if let Some(value) = parts.headers.get(name) {
            // moto serves the service the credential scope names: make it EC2's (moto checks
            // no signature).
            let value = value.to_str().unwrap_or_default().replace("/ssm/aws4_request", "/ec2/aws4_request");
            request = request.header(name, value);
        }
    }
    let request =
        request.header("content-type", "application/x-www-form-urlencoded").body(Full::new(Bytes::from(body))).unwrap();
    let answer = shared.client.request(request).await.ok()?;
    let bytes = answer.into_body().collect().await.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// AWS's rules (see `rules.rs`): an answer of the proxy's own, a stall, or `None` to go on.
pub(super) fn enforce_rules(state: &mut State, call: &Call) -> Option<Verdict> {
    let rules = state.faults.rules.clone();
    let enforced = |state: &mut State, rule: Rule, verdict: Verdict| {
        *state.enforced.entry(rule.name()).or_default() += 1;
        Some(verdict)
    };
    // EC2 and EBS both answer a refused request with 400.
    let refuse = |code: &str, message: &str| Verdict::Answer(error_with(call, StatusCode::BAD_REQUEST, code, message));
    if rules.on(Rule::RegionDenied) && rules.denied_regions.contains(&call.region) {
        let code = if call.json() { "AccessDeniedException" } else { "UnauthorizedOperation" };
        let message =
            format!("You are not authorized to perform this operation in {} (organization policy)", call.region);
        return enforced(
            state,
            Rule::RegionDenied,
            Verdict::Answer(error_with(call, StatusCode::FORBIDDEN, code, &message)),
        );
    }
    if rules.on(Rule::StalledConnection)
        && rules.stall.contains(&call.operation.as_str())
        && state.stalled.insert(call.operation.clone())
    {
        return enforced(state, Rule::StalledConnection, Verdict::Stall);
    }
    if rules.on(Rule::ClientTokens)
        && let Some(key) = rules::token_key(call)
    {
        let parameters = rules::token_parameters(call);
        match state.tokens.get(&key) {
            Some(first) if first.parameters != parameters => {
                let (code, message) = if call.service == "ebs" {
                    (
                        "ConflictException",
                        "The request uses the same client token as a previous, but non-identical request",
                    )
                } else {
                    ("IdempotentParameterMismatch", "The client token was already used with different parameters")
                };
                let status = if call.service == "ebs" { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
                return enforced(state, Rule::ClientTokens, Verdict::Answer(error_with(call, status, code, message)));
            }
            Some(TokenUse { answer: Some((status, content_type, body)), .. }) => {
                let answer = Response::builder()
                    .status(*status)
                    .header("content-type", content_type.as_str())
                    .body(Full::new(body.clone()))
                    .unwrap();
                return enforced(state, Rule::ClientTokens, Verdict::Answer(answer));
            }
            Some(_) => {}
            None => {
                state.tokens.insert(key, TokenUse { parameters, answer: None });
            }
        }
    }
    if call.operation == "GetConsoleOutput"
        && let Some(instance) = call.param("InstanceId")
        && let Some(console) = state.consoles.get(instance).cloned()
    {
        if !rules.on(Rule::ConsoleOutput) {
            return Some(Verdict::Answer(console_answer(instance, &console.live)));
        }
        let instance_type = state.instance_types.get(instance).cloned().unwrap_or_default();
        if call.param("Latest") == Some("true") {
            if !rules::is_nitro(&instance_type) {
                let message = format!("Latest console output is not supported for {instance_type} instances");
                return enforced(state, Rule::ConsoleOutput, refuse("UnsupportedOperation", &message));
            }
            return Some(Verdict::Answer(console_answer(instance, rules::console_tail(&console.live))));
        }
        let posted = match &console.buffered {
            Some((at, text)) if at.elapsed() >= rules.console_delay => text.clone(),
            // Nothing posted since the instance started: its job's lines are not buffered yet.
            _ => String::new(),
        };
        return enforced(
            state,
            Rule::ConsoleOutput,
            Verdict::Answer(console_answer(instance, rules::console_tail(&posted))),
        );
    }
    let fresh = |state: &State, id: &str, window: Duration| state.created.get(id).is_some_and(|t| t.elapsed() < window);
    if call.operation == "PutSnapshotBlock"
        && rules.on(Rule::SnapshotVolumeBounds)
        && let Some(message) = past_the_volume(state, call)
    {
        return enforced(state, Rule::SnapshotVolumeBounds, refuse("ValidationException", &message));
    }
    match call.operation.as_str() {
        "PutSnapshotBlock" if rules.on(Rule::SnapshotNotFoundWindow) => {
            let snapshot = call.param("SnapshotId").unwrap_or_default();
            if fresh(state, snapshot, rules.snapshot_unseen_for) {
                let message = format!("The snapshot '{snapshot}' does not exist.");
                let answer = error_with(call, StatusCode::NOT_FOUND, "ResourceNotFoundException", &message);
                return enforced(state, Rule::SnapshotNotFoundWindow, Verdict::Answer(answer));
            }
        }
        "AttachVolume" if rules.on(Rule::AttachNeedsAvailable) => {
            let volume = call.param("VolumeId").unwrap_or_default();
            if fresh(state, volume, rules.volume_creating_for) {
                let message = format!("vol '{volume}' is not 'available'.");
                return enforced(state, Rule::AttachNeedsAvailable, refuse("IncorrectState", &message));
            }
        }
        "ModifySnapshotAttribute" if rules.on(Rule::SnapshotPermissionBatch) => {
            if let Some((code, message)) = snapshot_permission_batch(call) {
                return enforced(state, Rule::SnapshotPermissionBatch, refuse(code, &message));
            }
        }
        "StartSnapshot" if rules.on(Rule::StartSnapshotKeyArn) => {
            if let Some(key) = call.param("KmsKeyArn")
                && !key.starts_with("arn:aws")
            {
                let message = format!(
                    "1 validation error detected: Value '{key}' at 'kmsKeyArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws[a-z\\-]*:kms:.*"
                );
                return enforced(state, Rule::StartSnapshotKeyArn, refuse("ValidationException", &message));
            }
        }
        _ => {}
    }
    if call.service == "s3"
        && rules.on(Rule::PresignedUrls)
        && let Some(signed) = call.param("X-Amz-Date")
    {
        let expires: u64 = call.param("X-Amz-Expires").and_then(|e| e.parse().ok()).unwrap_or(0);
        let s3_error = |status: StatusCode, code: &str, message: &str| {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            );
            let answer = Response::builder().status(status).header("content-type", "application/xml");
            Verdict::Answer(answer.body(Full::new(Bytes::from(body))).unwrap())
        };
        if !(1..=rules::MAX_PRESIGNED_SECS).contains(&expires) {
            let message = "X-Amz-Expires must be less than a week (in seconds) that is 604800";
            let answer = s3_error(StatusCode::BAD_REQUEST, "AuthorizationQueryParametersError", message);
            return enforced(state, Rule::PresignedUrls, answer);
        }
        let signed_at = rules::parse_amz_date(signed);
        if signed_at.is_none_or(|at| at + Duration::from_secs(expires) < SystemTime::now()) {
            let answer = s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
            return enforced(state, Rule::PresignedUrls, answer);
        }
    }
    if rules.on(Rule::TagLimits) {
        let (key_limit, value_limit) = if call.service == "ebs" { (127, 255) } else { (128, 256) };
        for (name, value) in &call.params {
            let too_long = (name.ends_with(".Key") && value.chars().count() > key_limit)
                || (name.ends_with(".Value") && name.contains("Tag") && value.chars().count() > value_limit);
            if too_long {
                let message =
                    format!("{name} is longer than AWS allows ({key_limit}/{value_limit} characters): {value}");
                let code = if call.json() { "ValidationException" } else { "InvalidParameterValue" };
                return enforced(state, Rule::TagLimits, refuse(code, &message));
            }
        }
    }
    if rules.on(Rule::DeregistrationProtection)
        && call.operation == "DeregisterImage"
        && let Some(word) = state.protections.get(call.param("ImageId").unwrap_or_default()).and_then(Protected::word)
    {
        let message = format!("The AMI has deregistration protection ({word}): disable it before deregistering");
        return enforced(state, Rule::DeregistrationProtection, refuse("OperationNotPermitted", &message));
    }
    if rules.on(Rule::DeprecationLimits) {
        return deprecation_rules(state, call);
    }
    None
}

/// An AMI's deregistration protection as the proxy plays it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Protected {
    On {
        cooldown: bool,
    },
    /// Lifted; protected still until then (rule `deregistration-protection`).
    CoolingDown(SystemTime),
}

impl Protected {
    /// What DescribeImages says of it, while it protects the AMI.
    pub(super) fn word(&self) -> Option<String> {
        use aws_smithy_types::date_time::Format;
        match self {
            Protected::On { cooldown: true } => Some("enabled-with-cooldown".into()),
            Protected::On { cooldown: false } => Some("enabled-without-cooldown".into()),
            Protected::CoolingDown(until) if *until > SystemTime::now() => {
                // Rounded up: a client that waits until the time said must find it over.
                let since = until.duration_since(SystemTime::UNIX_EPOCH).unwrap();
                let secs = since.as_secs() as i64 + i64::from(since.subsec_nanos() > 0);
                Some(format!(
                    "disabled-until {}",
                    aws_smithy_types::DateTime::from_secs(secs).fmt(Format::DateTime).ok()?
                ))
            }
            Protected::CoolingDown(_) => None,
        }
    }
}

/// The deprecation API as AWS enforces it (moto has none): limits on the time, and public AMIs
/// deprecated two years after their creation unless told otherwise.
fn deprecation_rules(state: &mut State, call: &Call) -> Option<Verdict> {
    let image = call.param("ImageId").unwrap_or_default().to_string();
    let created = state.image_created.get(&image).copied().unwrap_or_else(SystemTime::now);
    let public = state.public_images.contains(&image);
    let refuse = |state: &mut State, message: &str| {
        *state.enforced.entry(Rule::DeprecationLimits.name()).or_default() += 1;
        Some(Verdict::Answer(error_with(call, StatusCode::BAD_REQUEST, "InvalidParameterValue", message)))
    };
    match call.operation.as_str() {
        "EnableImageDeprecation" => {
            let at = call.param("DeprecateAt").and_then(rules::parse_rfc3339)?;
            if let Some(why) = rules::deprecation_refusal(at, created, public) {
                return refuse(state, &why);
            }
            state.deprecations.insert(image, rules::rfc3339(at));
            Some(Verdict::Answer(ok_answer(&call.operation, "<return>true</return>")))
        }
        "DisableImageDeprecation" if public => refuse(
            state,
            "The deprecation of a public AMI cannot be cancelled: public AMIs are deprecated within 2 years",
        ),
        "ModifyImageAttribute" => {
            let to_all = |prefix: &str| {
                call.params.iter().any(|(k, v)| k.starts_with(prefix) && k.ends_with(".Group") && v == "all")
            };
            if to_all("LaunchPermission.Add.") {
                state.public_images.insert(image.clone());
                state
                    .deprecations
                    .entry(image)
                    .or_insert_with(|| rules::rfc3339(rules::default_public_deprecation(created)));
            } else if to_all("LaunchPermission.Remove.") {
                state.public_images.remove(&image);
            }
            None
        }
        _ => None,
    }
}

/// Rule `snapshot-volume-bounds`: why a block is not in its snapshot's volume, if it is not.
fn past_the_volume(state: &State, call: &Call) -> Option<String> {
    let snapshot = call.param("SnapshotId")?;
    let index: u64 = call.param("BlockIndex")?.parse().ok()?;
    let gib = *state.snapshot_volumes.get(snapshot)?;
    // 2,048 blocks of 512 KiB to the GiB.
    let blocks = gib * 2048;
    (index >= blocks).then(|| {
        format!(
            "Block index {index} is past the end of the volume of {snapshot} ({gib} GiB: blocks 0 to {})",
            blocks - 1
        )
    })
}

/// Rule `ami-name-duplicate`: a new AMI (RegisterImage, CopyImage) may not take a name one of the
/// account's AMIs in the Region has, disabled ones included; a CopyImage repeating a client token
/// is left to rule `client-tokens`, which answers it with the first AMI as AWS does.
async fn duplicate_ami_name(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
) -> Option<(Rule, &'static str, String)> {
    if !matches!(call.operation.as_str(), "RegisterImage" | "CopyImage") {
        return None;
    }
    let name = call.param("Name")?;
    if let Some(key) = rules::token_key(call)
        && shared.state.lock().unwrap().tokens.contains_key(&key)
    {
        return None;
    }
    let value: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let question = format!(
        "Action=DescribeImages&Version=2016-11-15&Owner.1=self&IncludeDisabled=true&Filter.1.Name=name&Filter.1.Value.1={value}"
    );
    let images = ask_moto(shared, parts, question).await?;
    let id = between(&images, "<imageId>", "</imageId>")?;
    Some((Rule::AmiNameDuplicate, "InvalidAMIName.Duplicate", format!("AMI name {name} is already in use by AMI {id}")))
}
