//! Launch permissions and createVolumePermission through the SDK.

use aws_sdk_ec2::types::{
    ImageAttributeName, LaunchPermission, LaunchPermissionModifications, OperationType, PermissionGroup,
    SnapshotAttributeName,
};

use super::AwsCloud;
use crate::cloud::{CloudError, Permissions, Sharing};

fn launch_permissions(sharing: &Sharing) -> Vec<LaunchPermission> {
    let mut all = Vec::new();
    if sharing.public {
        all.push(LaunchPermission::builder().group(PermissionGroup::All).build());
    }
    all.extend(sharing.accounts.iter().map(|a| LaunchPermission::builder().user_id(a).build()));
    all.extend(sharing.organizations.iter().map(|o| LaunchPermission::builder().organization_arn(o).build()));
    all.extend(
        sharing.organizational_units.iter().map(|o| LaunchPermission::builder().organizational_unit_arn(o).build()),
    );
    all
}

/// Who the (group, account) grants of a permission attribute name: everyone, and accounts.
fn granted<'a>(grants: impl Iterator<Item = (Option<&'a PermissionGroup>, Option<&'a str>)>) -> Sharing {
    let mut sharing = Sharing::default();
    for (group, account) in grants {
        sharing.public |= group == Some(&PermissionGroup::All);
        sharing.accounts.extend(account.map(str::to_string));
    }
    sharing
}

impl Permissions for AwsCloud {
    async fn image_sharing(&self, region: &str, id: &str) -> Result<Sharing, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeImageAttribute", region)
            .on(id)
            .fresh()
            .send(|| ec2.describe_image_attribute().image_id(id).attribute(ImageAttributeName::LaunchPermission).send())
            .await?;
        let mut sharing = granted(out.launch_permissions().iter().map(|p| (p.group(), p.user_id())));
        for permission in out.launch_permissions() {
            sharing.organizations.extend(permission.organization_arn().map(str::to_string));
            sharing.organizational_units.extend(permission.organizational_unit_arn().map(str::to_string));
        }
        Ok(sharing)
    }

    async fn change_image_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        if add.is_private() && remove.is_private() {
            return Ok(());
        }
        let ec2 = self.ec2(region);
        let change = LaunchPermissionModifications::builder()
            .set_add(Some(launch_permissions(add)).filter(|a| !a.is_empty()))
            .set_remove(Some(launch_permissions(remove)).filter(|r| !r.is_empty()))
            .build();
        self.call("ModifyImageAttribute", region)
            .on(id)
            .fresh()
            .send(|| ec2.modify_image_attribute().image_id(id).launch_permission(change.clone()).send())
            .await
            .map(|_| ())
    }

    async fn snapshot_sharing(&self, region: &str, id: &str) -> Result<Sharing, CloudError> {
        let ec2 = self.ec2(region);
        let out = self
            .call("DescribeSnapshotAttribute", region)
            .on(id)
            .fresh()
            .send(|| {
                let attribute = SnapshotAttributeName::CreateVolumePermission;
                ec2.describe_snapshot_attribute().snapshot_id(id).attribute(attribute).send()
            })
            .await?;
        Ok(granted(out.create_volume_permissions().iter().map(|p| (p.group(), p.user_id()))))
    }

    /// With OperationType, UserIds and GroupNames rather than CreateVolumePermission: both forms are
    /// AWS's, and this one is also the one the emulator understands. Grants and revocations go
    /// in separate requests of at most [`SNAPSHOT_MODIFICATIONS_PER_CALL`] each, as AWS asks; a
    /// run interrupted between them leaves a part done that the next run's comparison finishes.
    async fn change_snapshot_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        for (operation, sharing) in [(OperationType::Add, add), (OperationType::Remove, remove)] {
            for (groups, accounts) in snapshot_modifications(sharing) {
                self.call("ModifySnapshotAttribute", region)
                    .on(id)
                    .fresh()
                    .send(|| {
                        ec2.modify_snapshot_attribute()
                            .snapshot_id(id)
                            .attribute(SnapshotAttributeName::CreateVolumePermission)
                            .operation_type(operation.clone())
                            .set_user_ids(Some(accounts.clone()).filter(|a| !a.is_empty()))
                            .set_group_names(Some(groups.clone()).filter(|g| !g.is_empty()))
                            .send()
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// How many grants or revocations one ModifySnapshotAttribute may carry: "You can make up to 500
/// modifications to a snapshot in a single operation" (EC2 API reference, ModifySnapshotAttribute).
const SNAPSHOT_MODIFICATIONS_PER_CALL: usize = 500;

/// The (groups, accounts) of each request that grants, or revokes, `sharing` on a snapshot:
/// none when there is nothing to change; `all` counts as one modification.
fn snapshot_modifications(sharing: &Sharing) -> Vec<(Vec<String>, Vec<String>)> {
    // One entry per modification: an account, or `None` for everyone.
    let everyone = sharing.public.then_some(None);
    let entries: Vec<Option<&String>> = everyone.into_iter().chain(sharing.accounts.iter().map(Some)).collect();
    entries
        .chunks(SNAPSHOT_MODIFICATIONS_PER_CALL)
        .map(|chunk| {
            let groups = chunk.iter().filter(|e| e.is_none()).map(|_| "all".to_string()).collect();
            let accounts = chunk.iter().flatten().map(|a| a.to_string()).collect();
            (groups, accounts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(n: usize) -> Sharing {
        Sharing { accounts: (0..n).map(|i| format!("{:012}", 100_000_000_000 + i)).collect(), ..Sharing::default() }
    }

    #[test]
    fn snapshot_permissions_go_in_requests_of_at_most_500() {
        assert!(snapshot_modifications(&Sharing::default()).is_empty());
        let sizes = |sharing: &Sharing| -> Vec<(usize, usize)> {
            snapshot_modifications(sharing).iter().map(|(g, a)| (g.len(), a.len())).collect()
        };
        assert_eq!(sizes(&accounts(500)), [(0, 500)]);
        assert_eq!(sizes(&accounts(1_000)), [(0, 500), (0, 500)]);
        let public = Sharing { public: true, ..accounts(500) };
        assert_eq!(sizes(&public), [(1, 499), (0, 1)], "everyone is one of the 500");
        assert_eq!(sizes(&Sharing { public: true, ..Sharing::default() }), [(1, 0)]);
        let requests = snapshot_modifications(&accounts(1_001));
        let sent: std::collections::BTreeSet<String> = requests.iter().flat_map(|(_, a)| a.clone()).collect();
        assert_eq!(sent, accounts(1_001).accounts, "every account once");
    }
}
