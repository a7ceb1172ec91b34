//! The target volume a helper writes the image to; its snapshot is the build's output.

use super::steps::{Inputs, StepError, Steps, make_build_resource, placement, subnet_of};
use super::{Node, Pairs, or_empty};
use crate::cloud::{BuildResource, State, VolumeType};

pub const TRANSIENT: bool = true;

/// A volume in error, or on its way out, will never be the build's target.
pub(super) fn failed(state: &State) -> bool {
    matches!(state, State::Failed(_) | State::Other(_) | State::Deleting | State::Deleted)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub size_gib: u32,
    pub volume_type: VolumeType,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    /// The manifest's subnet (whose zone places the volume), when the build makes no network.
    pub existing_subnet: Option<String>,
}

impl Volume {
    pub(super) fn immutable(&self) -> Pairs {
        vec![
            ("size_gib", self.size_gib.to_string()),
            ("volume_type", self.volume_type.as_str().to_string()),
            ("encrypted", self.encrypted.to_string()),
            ("kms_key", or_empty(self.kms_key.as_deref())),
        ]
    }

    /// In the zone of the subnet the helper runs in.
    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let subnet = subnet_of(inputs, &self.existing_subnet, node)?;
        let resource = BuildResource::Volume {
            availability_zone: placement(steps, &node.region, &subnet).await?.availability_zone,
            size_gib: self.size_gib,
            volume_type: self.volume_type,
            encrypted: self.encrypted,
            kms_key: self.kms_key.clone(),
        };
        make_build_resource(steps, node, &resource).await
    }
}
