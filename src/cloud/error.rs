//! Cloud errors, classified once so that every retry decision is a plain match.

use std::fmt;

/// How to treat a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Rate limited: back off and retry.
    Throttling,
    /// Server errors, timeouts and dropped connections: retry.
    Transient,
    /// The resource is not (yet) visible: retry only right after it was created.
    NotFound,
    /// The resource exists but is not yet in a state for this call (a volume still `creating`
    /// answers AttachVolume with `IncorrectState`): retry within the consistency window.
    NotReady,
    /// The caller may not do this here (IAM, an organization policy denying the region, a
    /// region not opted in): never retried.
    Denied,
    /// Invalid parameters and everything else: retrying cannot help.
    Fatal,
}

/// A failed call: which operation, where, on what, and what AWS said.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CloudError {
    pub operation: &'static str,
    pub region: String,
    pub resource: Option<String>,
    pub code: Option<String>,
    pub message: String,
    pub class: ErrorClass,
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.operation, self.region)?;
        if let Some(resource) = &self.resource {
            write!(f, " on {resource}")?;
        }
        write!(f, " failed: ")?;
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl CloudError {
    pub fn new(operation: &'static str, region: &str, code: Option<String>, message: impl Into<String>) -> CloudError {
        let class = classify(code.as_deref(), None);
        CloudError { operation, region: region.to_string(), resource: None, code, message: message.into(), class }
    }

    pub fn on(mut self, resource: impl Into<String>) -> CloudError {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_class(mut self, class: ErrorClass) -> CloudError {
        self.class = class;
        self
    }

    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }
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
            | "SnapshotCreationPerVolumeRateExceeded",
        ) => ErrorClass::Throttling,
        Some(
            "InternalError"
            | "InternalFailure"
            | "InternalServerException"
            | "ServiceUnavailable"
            | "Unavailable"
            | "RequestTimeout"
            | "RequestTimeoutException",
        ) => ErrorClass::Transient,
        Some("IncorrectState") => ErrorClass::NotReady,
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AuthFailure"
            | "OptInRequired"
            | "UnauthorizedAccess",
        ) => ErrorClass::Denied,
        Some(code)
            if code.ends_with(".NotFound") || code.ends_with("NotFound") || code == "ResourceNotFoundException" =>
        {
            ErrorClass::NotFound
        }
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
        assert_eq!(classify(Some("InvalidParameterValue"), Some(400)), ErrorClass::Fatal);
        assert_eq!(classify(Some("ValidationException"), Some(400)), ErrorClass::Fatal);
        assert_eq!(classify(None, Some(503)), ErrorClass::Transient);
        assert_eq!(classify(None, None), ErrorClass::Transient);
    }
}
