//! An AMI copied from the build region's AMI into another region.

use super::Pairs;
use super::image::Ami;

pub const TRANSIENT: bool = false;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub ami: Ami,
    pub source_region: String,
}

impl Copy {
    /// The same attributes as the AMI it copies: a copy is that AMI in another region.
    pub(super) fn immutable(&self) -> Pairs {
        self.ami.immutable()
    }
}
