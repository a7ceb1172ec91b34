//! The temporary network of a helper build: a VPC, a subnet, an internet gateway and a route
//! table with the default route through it. Made for the build, removed after it.

use super::Pairs;

pub const TRANSIENT: bool = true;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub cidr: String,
}

impl Vpc {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("cidr", self.cidr.clone())]
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway;

impl Gateway {
    pub(super) fn immutable(&self) -> Pairs {
        vec![]
    }
}

/// The default route out, through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable;

impl RouteTable {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("cidr", "0.0.0.0/0".into())]
    }
}
