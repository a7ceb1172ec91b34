//! The helper's security group: no inbound rules at all.

use super::Pairs;

pub const TRANSIENT: bool = true;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// The manifest's subnet, when the build does not make its own network.
    pub existing_subnet: Option<String>,
}

impl SecurityGroup {
    pub(super) fn immutable(&self) -> Pairs {
        self.existing_subnet.iter().map(|subnet| ("subnet", subnet.clone())).collect()
    }
}
