//! AWS's error codes, and what each means to amiplan: the only place that knows them.

use aws_config::profile::credentials::ProfileFileError;
use aws_credential_types::provider::error::CredentialsError;
use std::error::Error as _;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::{Cause, CloudError, ErrorClass};

/// An error AWS answered with `code` (or, without one, a fault on the way: `None`).
pub fn aws_error(operation: &'static str, region: &str, code: Option<&str>, message: impl Into<String>) -> CloudError {
    CloudError::new(operation, region, classify(code, None), message).with_code(code.map(str::to_string))
}

/// Converts any SDK error into a classified [`CloudError`]. Messages come from AWS's answer or the
/// SDK's error chain, neither of which carries credentials.
pub(super) fn sdk_error<E, R>(operation: &'static str, region: &str, error: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let status = match &error {
        SdkError::ServiceError(context) => Some(context.raw().status_code()),
        SdkError::ResponseError(context) => Some(context.raw().status_code()),
        _ => None,
    };
    let code = error.code().map(str::to_string);
    let message = error.message().map(str::to_string).unwrap_or_else(|| chain(&error.to_string(), error.source()));
    let cause = cause_of(&error, code.as_deref());
    let class = match cause {
        // Retrying cannot find credentials or make them valid.
        Some(Cause::NoCredentials | Cause::UnknownProfile | Cause::ExpiredCredentials | Cause::InvalidCredentials) => {
            ErrorClass::Denied
        }
        // EC2 has none of the instance type free in that zone now: a server error in EC2's list
        // of error codes, which AWS advises waiting out (or trying another type).
        Some(Cause::NoCapacity) => ErrorClass::Throttling,
        Some(Cause::Unreachable) | None => classify(code.as_deref(), status),
    };
    CloudError::new(operation, region, class, message).with_code(code).with_cause(cause)
}

/// The error's own message and its sources', each once: the SDK's display of the whole context
/// ends with a debug dump of the same chain, which is no message for a person.
fn chain(first: &str, source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut parts: Vec<String> = vec![first.to_string()];
    let mut next = source;
    while let Some(current) = next {
        let text = current.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// Credentials and connection failures, from AWS's code or from the SDK's error chain.
fn cause_of<E, R>(error: &SdkError<E, R>, code: Option<&str>) -> Option<Cause>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match code {
        Some("ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired") => {
            return Some(Cause::ExpiredCredentials);
        }
        Some(
            "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "IncompleteSignature",
        ) => return Some(Cause::InvalidCredentials),
        Some("InsufficientInstanceCapacity") => return Some(Cause::NoCapacity),
        _ => {}
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = next {
        if let Some(profile) = current.downcast_ref::<ProfileFileError>() {
            return Some(match profile {
                ProfileFileError::MissingProfile { .. } => Cause::UnknownProfile,
                _ => Cause::NoCredentials,
            });
        }
        if current.downcast_ref::<CredentialsError>().is_some() {
            // Keep looking: a profile problem behind it says more.
            let inner = current.source().and_then(|s| s.downcast_ref::<ProfileFileError>());
            if let Some(ProfileFileError::MissingProfile { .. }) = inner {
                return Some(Cause::UnknownProfile);
            }
            return Some(Cause::NoCredentials);
        }
        next = current.source();
    }
    match error {
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => Some(Cause::Unreachable),
        _ => None,
    }
}

/// The HTTP status of a raw response, whatever its type.
pub(super) trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The IAM action that allows `operation` (as amiplan names its calls), for people told that
/// AWS denied one.
pub fn iam_action(operation: &str) -> String {
    let service = match operation {
        "GetCallerIdentity" => "sts",
        "StartSnapshot" | "PutSnapshotBlock" | "CompleteSnapshot" | "ListSnapshotBlocks" | "GetSnapshotBlock" => "ebs",
        "AddTagsToResource"
        | "DeleteParameter"
        | "DescribeParameters"
        | "GetParameter"
        | "GetParameters"
        | "GetParametersByPath"
        | "PutParameter"
        | "ListTagsForResource" => "ssm",
        "DeleteObject" | "GetObject" | "GetObjectTagging" | "ListObjectsV2" | "PresignPutObject" | "PutObject" => "s3",
        "GetServiceQuota" | "GetAWSDefaultServiceQuota" => "servicequotas",
        _ => "ec2",
    };
    let action = match operation {
        // S3's actions are not its operations' names.
        "ListObjectsV2" => "ListBucket",
        "PresignPutObject" => "PutObject",
        other => other,
    };
    format!("{service}:{action}")
}

/// Classifies an AWS error code (and HTTP status when there is no code).
pub fn classify(code: Option<&str>, http_status: Option<u16>) -> ErrorClass {
    match code {
        Some(
            "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "SnapshotCreationPerVolumeRateExceeded"
            // Parameter Store: another update of the same parameter is under way.
            | "TooManyUpdates"
            // EBS direct (StartSnapshot): too many of the account's requests at once.
            | "ConcurrentLimitExceededException",
        ) => ErrorClass::Throttling,
        Some(
            "InternalError"
            | "InternalFailure"
            | "InternalServerException"
            // Parameter Store's.
            | "InternalServerError"
            | "ServiceUnavailable"
            | "Unavailable"
            | "RequestTimeout"
            | "RequestTimeoutException",
        ) => ErrorClass::Transient,
        Some("IncorrectState") => ErrorClass::NotReady,
        Some("DependencyViolation" | "VolumeInUse" | "InvalidVolume.InUse" | "InvalidSnapshot.InUse") => {
            ErrorClass::InUse
        }
        Some(
            "InvalidAMIName.Duplicate"
            | "InvalidKeyPair.Duplicate"
            | "InvalidGroup.Duplicate"
            | "ParameterAlreadyExists",
        ) => {
            ErrorClass::Duplicate
        }
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AuthFailure"
            | "OptInRequired"
            | "UnauthorizedAccess",
        ) => ErrorClass::Denied,
        Some(code)
            if code.ends_with(".NotFound")
                || code.ends_with("NotFound")
                || code == "ResourceNotFoundException"
                // Service Quotas': no value of that quota applies to the account.
                || code == "NoSuchResourceException"
                // S3's.
                || code == "NoSuchKey"
                || code == "NoSuchBucket" =>
        {
            ErrorClass::NotFound
        }
        // A code amiplan does not know: a server error (HTTP 5xx) is AWS's to get over, the
        // rest the request's.
        Some(_) if http_status.is_some_and(|status| status >= 500) => ErrorClass::Transient,
        Some(_) => ErrorClass::Fatal,
        None => match http_status {
            Some(429) => ErrorClass::Throttling,
            Some(404) => ErrorClass::NotFound,
            Some(status) if status >= 500 => ErrorClass::Transient,
            Some(_) => ErrorClass::Fatal,
            // No response at all: connection refused, reset, timed out.
            None => ErrorClass::Transient,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(classify(Some("RequestLimitExceeded"), Some(503)), ErrorClass::Throttling);
        assert_eq!(classify(Some("InvalidAMIID.NotFound"), Some(400)), ErrorClass::NotFound);
        assert_eq!(classify(Some("InvalidSnapshot.NotFound"), Some(400)), ErrorClass::NotFound);
        assert_eq!(classify(Some("AccessDenied"), Some(403)), ErrorClass::Denied);
        assert_eq!(classify(Some("UnauthorizedOperation"), Some(403)), ErrorClass::Denied);
        assert_eq!(classify(Some("IncorrectState"), Some(400)), ErrorClass::NotReady);
        assert_eq!(classify(Some("InvalidSnapshot.InUse"), Some(400)), ErrorClass::InUse);
        assert_eq!(classify(Some("DependencyViolation"), Some(400)), ErrorClass::InUse);
        assert_eq!(classify(Some("InvalidAMIName.Duplicate"), Some(400)), ErrorClass::Duplicate);
        assert_eq!(classify(Some("ParameterAlreadyExists"), Some(400)), ErrorClass::Duplicate);
        assert_eq!(classify(Some("ParameterNotFound"), Some(400)), ErrorClass::NotFound);
        assert_eq!(classify(Some("NoSuchKey"), Some(404)), ErrorClass::NotFound);
        assert_eq!(classify(Some("NoSuchResourceException"), Some(400)), ErrorClass::NotFound);
        assert_eq!(classify(Some("SlowDown"), Some(503)), ErrorClass::Throttling);
        assert_eq!(classify(Some("TooManyUpdates"), Some(400)), ErrorClass::Throttling);
        assert_eq!(classify(Some("InternalServerError"), Some(500)), ErrorClass::Transient);
        assert_eq!(classify(Some("InvalidParameterValue"), Some(400)), ErrorClass::Fatal);
        assert_eq!(classify(Some("ValidationException"), Some(400)), ErrorClass::Fatal);
        assert_eq!(classify(Some("ConcurrentLimitExceededException"), Some(400)), ErrorClass::Throttling);
        assert_eq!(classify(Some("InsufficientHostCapacity"), Some(500)), ErrorClass::Transient);
        assert_eq!(classify(Some("SomethingNew"), Some(400)), ErrorClass::Fatal);
        assert_eq!(classify(None, Some(503)), ErrorClass::Transient);
        assert_eq!(classify(None, None), ErrorClass::Transient);
    }

    #[test]
    fn operations_name_their_iam_actions() {
        assert_eq!(iam_action("RegisterImage"), "ec2:RegisterImage");
        assert_eq!(iam_action("PutSnapshotBlock"), "ebs:PutSnapshotBlock");
        assert_eq!(iam_action("GetCallerIdentity"), "sts:GetCallerIdentity");
        assert_eq!(iam_action("PutParameter"), "ssm:PutParameter");
        assert_eq!(iam_action("ListObjectsV2"), "s3:ListBucket");
    }
}
