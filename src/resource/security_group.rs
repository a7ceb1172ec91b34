//! The helper's security group: no inbound rules at all.

use super::steps::{Inputs, StepError, Steps, make_build_resource, placement, subnet_of};
use super::{Node, Pairs};
use crate::cloud::BuildResource;

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

    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let subnet = subnet_of(inputs, &self.existing_subnet, node)?;
        let resource = BuildResource::SecurityGroup {
            vpc: placement(steps, &node.region, &subnet).await?.vpc,
            name: format!("amiplan-{}-helper", node.stack),
            description: format!("amiplan helper of stack {}: no inbound rules", node.stack),
        };
        make_build_resource(steps, node, &resource).await
    }
}
