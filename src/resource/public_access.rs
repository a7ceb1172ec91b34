//! A read-only kind: the account's block public access settings for AMIs and snapshots, and its
//! public AMIs against their quota, in a region where a manifest makes AMIs public. Nothing is
//! made or changed; the plan says, before anything is sent, when AWS would refuse the sharing.

use serde::{Deserialize, Serialize};

use super::Pairs;
use crate::cloud::PublicAccess;
use crate::cloud::Quota;
use crate::cloud::aws::quota_code;

/// The account's public AMIs in a region, and how many AWS allows it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicImages {
    /// Public AMIs the account owns there now, amiplan's or not.
    pub count: usize,
    /// Its "Public AMIs" quota there, or `None` where Service Quotas did not answer.
    pub quota: Option<u32>,
}

pub const TRANSIENT: bool = false;

/// AMIs are to be public in the node's region: the account's settings there must allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSharing;

impl PublicSharing {
    pub(super) fn immutable(&self) -> Pairs {
        vec![]
    }

    /// What AWS will refuse in `region`, given the settings read there (`None`: not answered).
    pub fn refusals(
        &self,
        region: &str,
        images: Option<&PublicAccess>,
        snapshots: Option<&PublicAccess>,
    ) -> Vec<String> {
        let images = images.filter(|state| state.blocks()).map(|state| {
            format!(
                "image block public access is `{state}` in {region}: AWS refuses to make AMIs public there until it is disabled (`aws ec2 disable-image-block-public-access --region {region}`)"
            )
        });
        let snapshots = snapshots.filter(|state| state.blocks()).map(|state| {
            format!(
                "snapshot block public access is `{state}` in {region}: AWS refuses to make the public AMIs' snapshots public there (createVolumePermission for all) until it is disabled (`aws ec2 disable-snapshot-block-public-access --region {region}`)"
            )
        });
        images.into_iter().chain(snapshots).collect()
    }

    /// Whether making `adding` more AMIs public in `region`, once `freeing` public ones are
    /// removed, takes the account past its quota of public AMIs there, which AWS enforces when
    /// an AMI is made public (ModifyImageAttribute answers `ResourceLimitExceeded`). Older
    /// versions count until they go: retention removes them only once the new AMIs are public.
    pub fn over_quota(
        &self,
        region: &str,
        public: Option<&PublicImages>,
        adding: usize,
        freeing: usize,
    ) -> Option<String> {
        let PublicImages { count, quota: Some(quota) } = public? else { return None };
        let peak = count.saturating_sub(freeing) + adding;
        (adding > 0 && peak > *quota as usize).then(|| {
            let freed = if freeing > 0 { format!(" ({freeing} of them removed first)") } else { String::new() };
            let (service, code) = quota_code(Quota::PublicImages);
            format!(
                "{region} has {count} public AMI(s){freed} and this apply makes {adding} more public: the account's quota there is {quota} (Service Quotas: Amazon EC2, \"Public AMIs\"), and AWS refuses to make an AMI public past it (ResourceLimitExceeded); older versions are removed only after the new ones are public. Raise the quota (`aws service-quotas request-service-quota-increase --service-code {service} --quota-code {code} --desired-value N --region {region}`), keep fewer versions (`retention.keep`), or make some AMIs private"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocking_settings_are_refusals() {
        let unblocked = Some(&PublicAccess::Unblocked);
        assert!(PublicSharing.refusals("us-east-1", unblocked, unblocked).is_empty());
        assert!(PublicSharing.refusals("us-east-1", None, None).is_empty(), "not answered: nothing to say");
        let found = PublicSharing.refusals(
            "eu-west-1",
            Some(&PublicAccess::BlockNewSharing),
            Some(&PublicAccess::BlockAllSharing),
        );
        assert_eq!(found.len(), 2);
        assert!(found[0].starts_with("image block public access is `block-new-sharing` in eu-west-1"));
        assert!(found[1].starts_with("snapshot block public access is `block-all-sharing` in eu-west-1"));
    }

    #[test]
    fn the_quota_is_judged_on_what_the_apply_adds_to_what_is_public() {
        let public = |count, quota| Some(PublicImages { count, quota });
        let over = |images: Option<PublicImages>, adding, freeing| {
            PublicSharing.over_quota("us-east-1", images.as_ref(), adding, freeing)
        };
        assert_eq!(over(public(3, Some(5)), 2, 0), None, "exactly at the quota is allowed");
        let said = over(public(3, Some(5)), 3, 0).expect("one past the quota");
        assert!(said.starts_with("us-east-1 has 3 public AMI(s) and this apply makes 3 more public"), "{said}");
        assert!(said.contains("quota there is 5") && said.contains("ResourceLimitExceeded"), "{said}");
        assert_eq!(over(public(3, Some(5)), 3, 1), None, "one removed before: within the quota");
        let said = over(public(5, Some(5)), 3, 2).expect("still one past the quota");
        assert!(said.starts_with("us-east-1 has 5 public AMI(s) (2 of them removed first) and"), "{said}");
        assert_eq!(over(public(9, Some(5)), 0, 0), None, "nothing made public: nothing to refuse");
        assert_eq!(over(public(9, None), 3, 0), None, "quota unknown: nothing to say");
        assert_eq!(over(None, 3, 0), None, "not read: nothing to say");
    }
}
