//! A read-only kind: the account's block public access settings for AMIs and snapshots, in a
//! region where a manifest makes AMIs public. Nothing is made or changed; the plan says, before
//! anything is sent, when AWS would refuse the sharing.

use super::Pairs;
use crate::cloud::PublicAccess;

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
}
