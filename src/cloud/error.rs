//! Cloud errors, classified once (by `cloud::aws`, which knows AWS's codes) so that every retry
//! and every decision of the executor is a plain match on the class.

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
    /// The resource is still held by another (a snapshot by the AMI being deregistered, a
    /// volume by its instance, a VPC by its subnets): wait for the holder to go.
    InUse,
    /// A resource with this unique name exists already (perhaps made by an attempt whose answer
    /// was lost): find it rather than retry.
    Duplicate,
    /// The caller may not do this here (IAM, an organization policy denying the region, a
    /// region not opted in): never retried.
    Denied,
    /// Invalid parameters and everything else: retrying cannot help.
    Fatal,
}

/// A failed call: which operation, where, on what, and what the cloud said.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CloudError {
    pub operation: &'static str,
    pub region: String,
    pub resource: Option<String>,
    /// The cloud's own name for the error, shown to people (never matched outside `cloud::aws`).
    pub code: Option<String>,
    pub message: String,
    pub class: ErrorClass,
    /// What a person can do about it, where the cloud layer can tell.
    pub cause: Option<Cause>,
}

/// Failures a person fixes outside amiplan, told apart so the command line can say how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No source of credentials had any (classed `Denied`: never retried).
    NoCredentials,
    /// A named profile the shared config and credentials files do not define.
    UnknownProfile,
    /// The credentials were valid once and have expired (`Denied`).
    ExpiredCredentials,
    /// The service does not know the credentials, or the signature does not match (`Denied`).
    InvalidCredentials,
    /// No connection to the endpoint: refused, unresolvable or timed out (`Transient`).
    Unreachable,
    /// EC2 has none of the instance type free in the zone now, `InsufficientInstanceCapacity`
    /// (`Throttling`: waited out until the call's deadline).
    NoCapacity,
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
    pub fn new(operation: &'static str, region: &str, class: ErrorClass, message: impl Into<String>) -> CloudError {
        CloudError {
            operation,
            region: region.to_string(),
            resource: None,
            code: None,
            message: message.into(),
            class,
            cause: None,
        }
    }

    pub fn on(mut self, resource: impl Into<String>) -> CloudError {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_code(mut self, code: Option<String>) -> CloudError {
        self.code = code;
        self
    }

    pub fn with_cause(mut self, cause: Option<Cause>) -> CloudError {
        self.cause = cause;
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
