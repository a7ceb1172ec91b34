//! The boot test of an AMI: an instance from it must run the test job and report a pass before
//! the AMI is copied, shared or deprecated. It owns no resource: its pass is a tag on the AMI.

use std::time::Duration;

use super::Pairs;
use crate::job::Job;

pub const TRANSIENT: bool = false;

#[derive(Debug, Clone)]
pub struct BootTest {
    /// The node of the AMI it tests.
    pub image_node: String,
    pub job: Job,
    pub instance_type: String,
    pub timeout: Duration,
    pub subnet: Option<String>,
}

impl BootTest {
    pub(super) fn immutable(&self) -> Pairs {
        vec![("job", self.job.id.clone()), ("instance_type", self.instance_type.clone())]
    }
}
