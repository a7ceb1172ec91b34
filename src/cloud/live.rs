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
}

/// An AMI, snapshot or transient build resource as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LiveResource {
    pub region: String,
    pub kind: ResourceKind,
    pub id: String,
    pub name: Option<String>,
    pub state: String,
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
    /// For AMIs whose launch permissions were read: who may launch them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    /// For the same AMIs: the createVolumePermission of each snapshot behind them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_sharing: Vec<(String, Sharing)>,
}

impl LiveResource {
    /// A resource with only what every kind has; the rest empty.
    pub fn new(
        region: &str,
        kind: ResourceKind,
        id: &str,
        state: &str,
        tags: BTreeMap<String, String>,
    ) -> LiveResource {
        LiveResource {
            region: region.to_string(),
            kind,
            id: id.to_string(),
            name: None,
            state: state.to_string(),
            description: None,
            tags,
            public: false,
            snapshot_ids: vec![],
            created: None,
            deprecation: None,
            sharing: None,
            snapshot_sharing: vec![],
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
