//! Resources as the cloud reports them: what discovery finds and the planner judges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Sharing, tags};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Image,
    Snapshot,
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Volume,
    Instance,
    /// A Parameter Store parameter, identified by its name.
    Parameter,
    /// The catalogue files under one S3 prefix, identified as `s3://bucket/prefix`: the files
    /// are one resource, read with one listing.
    CatalogFiles,
}

/// Where a resource is in its life, in amiplan's terms; `cloud::aws` maps AWS's state words to
/// these, and nothing else knows them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Being made: an AMI or snapshot `pending`, a volume `creating`, an instance starting.
    Pending,
    /// Usable: an AMI `available`, a snapshot `completed`, a volume `available` or `in-use`, a
    /// VPC or subnet `available`, a gateway attached, a route table routed, a security group.
    Ready,
    /// An instance that runs.
    Running,
    /// An instance on its way down, or down (and still there to read).
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    /// An internet gateway a run made but never attached.
    Detached,
    /// A route table a run made but never routed or associated.
    Incomplete,
    /// Being deleted, or deleted (a volume `deleting`, an AMI `deregistered`).
    Deleting,
    Deleted,
    /// An AMI its owner disabled: it cannot be launched or shared until it is enabled again,
    /// and it still holds its name and its snapshots.
    Disabled,
    /// Failed for good, in AWS's word (`failed`, `error`, `invalid`, …).
    Failed(String),
    /// A state word this version does not know: treated as not usable, shown as AWS said it.
    Other(String),
}

impl State {
    /// The state of an instance that has stopped running its job.
    pub fn has_ended(&self) -> bool {
        matches!(self, State::Stopped | State::Terminated | State::ShuttingDown)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Pending => "pending",
            State::Ready => "available",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::ShuttingDown => "shutting-down",
            State::Terminated => "terminated",
            State::Detached => "detached",
            State::Incomplete => "incomplete",
            State::Disabled => "disabled",
            State::Deleting => "deleting",
            State::Deleted => "deleted",
            State::Failed(word) | State::Other(word) => word,
        })
    }
}

/// An AMI, snapshot or transient build resource as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LiveResource {
    pub region: String,
    pub kind: ResourceKind,
    pub id: String,
    pub name: Option<String>,
    pub state: State,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub public: bool,
    /// For AMIs: the snapshots behind their block devices.
    pub snapshot_ids: Vec<String>,
    /// Creation time as AWS reports it (ISO 8601), for choosing among duplicates.
    pub created: Option<String>,
    /// For AMIs: when AWS deprecates them (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<String>,
    /// For AMIs: their deregistration protection.
    #[serde(default, skip_serializing_if = "LiveProtection::is_off")]
    pub protection: LiveProtection,
    /// For AMIs whose launch permissions were read: who may launch them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    /// For the same AMIs: the createVolumePermission of each snapshot behind them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_sharing: Vec<(String, Sharing)>,
    /// For parameters: the value (an AMI ID, for amiplan's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// For catalogue files: each file's path under the prefix → its etag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// For snapshots: the bytes written to them (AWS's full snapshot size), or their volume's
    /// size where AWS does not say; what storage they are billed for, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

impl LiveResource {
    /// A resource with only what every kind has; the rest empty.
    pub fn new(
        region: &str,
        kind: ResourceKind,
        id: &str,
        state: State,
        tags: BTreeMap<String, String>,
    ) -> LiveResource {
        LiveResource {
            region: region.to_string(),
            kind,
            id: id.to_string(),
            name: None,
            state,
            description: None,
            tags,
            public: false,
            snapshot_ids: vec![],
            created: None,
            deprecation: None,
            protection: LiveProtection::Off,
            sharing: None,
            snapshot_sharing: vec![],
            value: None,
            files: BTreeMap::new(),
            size_bytes: None,
        }
    }
}

impl LiveResource {
    pub fn stack(&self) -> Option<&str> {
        self.tags.get(tags::STACK).map(String::as_str)
    }

    pub fn node(&self) -> Option<&str> {
        self.tags.get(tags::NODE).map(String::as_str)
    }
}

/// An AMI's deregistration protection as AWS reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveProtection {
    #[default]
    Off,
    /// AWS refuses to deregister the AMI.
    On(super::Protection),
    /// Lifted, but AWS refuses deregistration until the cooldown ends: at `until` (RFC 3339),
    /// where AWS says.
    CoolingDown { until: Option<String> },
}

impl LiveProtection {
    pub fn is_off(&self) -> bool {
        *self == LiveProtection::Off
    }

    /// When a cooldown under way ends (seconds since the epoch), where AWS said a time.
    pub fn cooldown_end(&self) -> Option<i64> {
        match self {
            LiveProtection::CoolingDown { until: Some(until) } => {
                until.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
            }
            _ => None,
        }
    }

    /// Whether AWS keeps the AMI past a run at `now` (seconds since the epoch) that deletes it:
    /// protection lifted with a cooldown, or a cooldown not yet over (one whose end AWS does not
    /// say is over when AWS says the protection is `disabled`). Protection without a cooldown is
    /// lifted and the AMI deregistered in the same run.
    pub fn outlasts_run(&self, now: i64) -> bool {
        match self {
            LiveProtection::Off | LiveProtection::On(super::Protection::WithoutCooldown) => false,
            LiveProtection::On(super::Protection::WithCooldown) => true,
            LiveProtection::CoolingDown { .. } => self.cooldown_end().is_none_or(|until| until > now),
        }
    }

    /// Whether it is what a manifest's setting asks for (`None`: no protection).
    pub fn is(&self, wanted: Option<super::Protection>) -> bool {
        match (self, wanted) {
            (LiveProtection::On(have), Some(want)) => *have == want,
            // Lifted already: what remains of a cooldown is AWS's to end.
            (LiveProtection::Off | LiveProtection::CoolingDown { .. }, None) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for LiveProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveProtection::Off => f.write_str("off"),
            LiveProtection::On(protection) => f.write_str(protection.as_str()),
            LiveProtection::CoolingDown { until: Some(until) } => write!(f, "lifted, cooling down until {until}"),
            LiveProtection::CoolingDown { until: None } => f.write_str("lifted, cooling down"),
        }
    }
}

/// The account's block public access setting for AMIs or snapshots in a region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublicAccess {
    /// Public sharing is allowed.
    Unblocked,
    /// Nothing new may be made public (what is public stays).
    BlockNewSharing,
    /// Nothing may be public (snapshots only).
    BlockAllSharing,
    /// A setting this version does not know, in AWS's word: taken as blocking.
    Other(String),
}

impl PublicAccess {
    pub fn blocks(&self) -> bool {
        *self != PublicAccess::Unblocked
    }
}

impl std::fmt::Display for PublicAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PublicAccess::Unblocked => "unblocked",
            PublicAccess::BlockNewSharing => "block-new-sharing",
            PublicAccess::BlockAllSharing => "block-all-sharing",
            PublicAccess::Other(word) => word,
        })
    }
}
