//! The helper instance: boots a stock AMI, runs the build job against the target volume, and
//! powers off.

use super::Pairs;
use crate::job::Job;
use crate::manifest::raw::HelperAmi;

pub const TRANSIENT: bool = true;

#[derive(Debug, Clone)]
pub struct Helper {
    pub ami: HelperAmi,
    pub instance_type: String,
    pub spot: bool,
    pub job: Job,
    pub existing_subnet: Option<String>,
    /// Scratch space the job needs on the helper's root volume, in GiB, beyond what the helper
    /// AMI's own root volume brings.
    pub scratch_gib: u32,
}

impl Helper {
    /// The AMI selector as the spec names it: an ID, or `owner=… name=…`.
    pub fn ami_selector(&self) -> String {
        match &self.ami {
            HelperAmi::Id(id) => id.clone(),
            HelperAmi::Filter(filter) => format!("owner={} name={}", filter.owner, filter.name),
        }
    }

    pub(super) fn immutable(&self) -> Pairs {
        vec![
            ("ami", self.ami_selector()),
            ("instance_type", self.instance_type.clone()),
            ("spot", self.spot.to_string()),
            ("job", self.job.id.clone()),
        ]
    }
}
