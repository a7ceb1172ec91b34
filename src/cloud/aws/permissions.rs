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
    /// AWS's, and this one is also the one the emulator understands.
    async fn change_snapshot_sharing(
        &self,
        region: &str,
        id: &str,
        add: &Sharing,
        remove: &Sharing,
    ) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        for (operation, sharing) in [(OperationType::Add, add), (OperationType::Remove, remove)] {
            if !sharing.public && sharing.accounts.is_empty() {
                continue;
            }
            let groups = if sharing.public { vec!["all".to_string()] } else { vec![] };
            let accounts: Vec<String> = sharing.accounts.iter().cloned().collect();
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
        Ok(())
    }
}
