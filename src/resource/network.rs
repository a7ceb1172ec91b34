//! The temporary network of a helper build: a VPC, a subnet, an internet gateway and a route
//! table with the default route through it. Made for the build, removed after it.

use super::steps::{Inputs, Resolved, StepError, Steps, input, make_build_resource, placement};
use super::{Node, NodeKind, Pairs, Reason};
use crate::cloud::{BuildResource, LiveResource, State};

pub const TRANSIENT: bool = true;

/// Key in the plan's resolved values: the Availability Zone a temporary subnet is made in, or
/// (for a boot test in a default subnet) the zones it may run in, comma-separated.
pub const RESOLVED_ZONE: &str = "availability_zone";

/// A run stopped between creating a gateway or route table and attaching or routing it.
pub(super) fn stale(live: &LiveResource) -> Option<Reason> {
    let half_made = matches!(live.state, State::Detached | State::Incomplete);
    half_made.then(|| Reason::HalfMade { id: live.id.clone(), state: live.state.to_string() })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub cidr: String,
}

impl Vpc {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("cidr", self.cidr.clone())]
    }

    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node) -> Result<String, StepError> {
        make_build_resource(steps, node, &BuildResource::Vpc { cidr: self.cidr.clone() }).await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub cidr: String,
}

impl Subnet {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("cidr", self.cidr.clone())]
    }

    /// In the zone the plan chose (one that offers the helper's instance type).
    pub(super) async fn create<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        inputs: &Inputs,
        resolved: &Resolved,
    ) -> Result<String, StepError> {
        let resource = BuildResource::Subnet {
            vpc: input(inputs, NodeKind::Vpc, node)?,
            cidr: self.cidr.clone(),
            availability_zone: resolved.get(RESOLVED_ZONE).cloned(),
        };
        make_build_resource(steps, node, &resource).await
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway;

impl Gateway {
    pub(super) fn immutable(&self) -> Pairs {
        vec![]
    }

    /// Made and attached to the build's VPC.
    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let resource = BuildResource::InternetGateway { vpc: input(inputs, NodeKind::Vpc, node)? };
        make_build_resource(steps, node, &resource).await
    }
}

/// The default route out, through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable;

impl RouteTable {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("cidr", "0.0.0.0/0".into())]
    }

    /// Routed through the gateway and associated with the build's subnet.
    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let subnet = input(inputs, NodeKind::Subnet, node)?;
        let vpc = placement(steps, &node.region, &subnet).await?.vpc;
        let gateway = input(inputs, NodeKind::InternetGateway, node)?;
        make_build_resource(steps, node, &BuildResource::RouteTable { vpc, subnet, gateway }).await
    }
}
