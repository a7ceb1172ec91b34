//! An AMI registered from a snapshot in the build region.

use std::time::Duration;

use super::steps::{Inputs, StepError, Steps, input, settle};
use super::{AttrDiff, Attribute, Node, NodeKind, Pairs, Removal, or_empty, update_tags};
use crate::cloud::retry::{Poll, wait_until};
use crate::cloud::{
    CloudError, ImageAttrs, ImageRegistration, LiveProtection, LiveResource, Protection, ResourceStatus, Sharing, State,
};
use crate::cloud::{Images, Permissions};
use crate::deprecation;
use crate::source::SourceAddress;

pub const TRANSIENT: bool = false;

/// What every AMI of a variant is, in whichever region: registered or copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ami {
    pub attrs: ImageAttrs,
    pub volume_size_gib: u32,
    /// The digest of the source the AMI's snapshot was made from.
    pub source_sha256: SourceAddress,
    /// The whole file's SHA-256 where it is known: what amiplan wrote into `amiplan:source`
    /// before content addresses. A resource tagged with it was made from this image too, and is
    /// re-tagged rather than replaced (see [`super::Node::spec_hash_for`]).
    pub source_alias: Option<String>,
    /// The KMS key its snapshots are encrypted with in this region (encrypted variants only).
    pub kms_key: Option<String>,
}

impl Ami {
    pub(super) fn immutable(&self) -> Pairs {
        let attrs = &self.attrs;
        vec![
            ("architecture", attrs.architecture.as_str().into()),
            ("virtualization", attrs.virtualization.as_str().into()),
            ("volume_type", attrs.volume_type.as_str().into()),
            ("volume_size_gib", self.volume_size_gib.to_string()),
            ("encrypted", attrs.encrypted.to_string()),
            ("boot_mode", or_empty(attrs.boot_mode.map(|m| m.as_str()))),
            ("ena", attrs.ena.to_string()),
            ("imds", or_empty(attrs.imds.map(|_| "v2.0"))),
            ("tpm", attrs.tpm.to_string()),
            ("root_device", attrs.root_device.clone()),
            ("kernel_id", or_empty(attrs.kernel_id.as_deref())),
            ("ramdisk_id", or_empty(attrs.ramdisk_id.as_deref())),
            ("source_sha256", self.source_sha256.planned().to_string()),
            ("kms_key", or_empty(self.kms_key.as_deref())),
        ]
    }
}

/// The AMI of the build region, registered from the snapshot it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub ami: Ami,
}

impl Image {
    pub(super) fn immutable(&self) -> Pairs {
        self.ami.immutable()
    }
}

impl Image {
    /// Registers the AMI from the snapshot it depends on, waits for it, and publishes it unless
    /// a boot test must pass first.
    pub(super) async fn create<S: Steps>(&self, steps: &S, node: &Node, inputs: &Inputs) -> Result<String, StepError> {
        let region = node.region.as_str();
        let registration = ImageRegistration {
            name: node.name.clone().unwrap_or_default(),
            description: node.description.clone(),
            attrs: self.ami.attrs.clone(),
            snapshot_id: input(inputs, NodeKind::Snapshot, node)?,
            volume_size_gib: self.ami.volume_size_gib,
            tags: node.desired_tags(),
        };
        let id = steps.cloud().register_image(region, &registration).await?;
        let status = wait(steps, region, &id, steps.deadlines().image).await?;
        if !node.gated {
            publish(steps, node, &id, &status).await?;
        }
        Ok(id)
    }
}

/// Waits until the AMI is available (or ends otherwise).
pub async fn wait<S: Steps>(
    steps: &S,
    region: &str,
    id: &str,
    deadline: Duration,
) -> Result<ResourceStatus, StepError> {
    let what = format!("AMI {id} in {region}");
    let result = wait_until(steps.policy(), steps.progress(), deadline, &what, || async {
        let status = steps.cloud().image_status(region, id).await?;
        Ok(match status.state {
            State::Ready => Poll::Ready(Ok(status)),
            State::Pending => Poll::Pending("pending".into()),
            _ => Poll::Ready(Err(status)),
        })
    })
    .await;
    settle(result, id, &what)
}

/// Brings the AMI's launch permissions, and its snapshots' createVolumePermission, to what
/// the node wants: grants what is missing, revokes what is not wanted.
async fn share<S: Steps>(steps: &S, node: &Node, id: &str, snapshots: &[String]) -> Result<(), StepError> {
    let region = node.region.as_str();
    let cloud = steps.cloud();
    let fail = |e: CloudError| StepError::from(e).on(id);
    let want = &node.sharing;
    let have = cloud.image_sharing(region, id).await.map_err(fail)?;
    cloud.change_image_sharing(region, id, &want.minus(&have), &have.minus(want)).await.map_err(fail)?;
    let want = want.for_snapshots();
    for snapshot in snapshots {
        let have = cloud.snapshot_sharing(region, snapshot).await.map_err(fail)?;
        cloud.change_snapshot_sharing(region, snapshot, &want.minus(&have), &have.minus(&want)).await.map_err(fail)?;
    }
    Ok(())
}

/// A new AMI is private, not deprecated and not protected: only what the node wants beyond that
/// needs calls.
pub async fn publish<S: Steps>(steps: &S, node: &Node, id: &str, status: &ResourceStatus) -> Result<(), StepError> {
    if !node.sharing.is_private() {
        share(steps, node, id, &status.snapshot_ids).await?;
    }
    if let Some(deprecation) = node.deprecation {
        let at = deprecation::format(deprecation.for_image(None, deprecation::now()));
        steps
            .cloud()
            .set_image_deprecation(&node.region, id, Some(&at))
            .await
            .map_err(|e| StepError::from(e).on(id))?;
    }
    if let Some(protection) = node.protection {
        let cloud = steps.cloud();
        cloud.set_image_protection(&node.region, id, Some(protection)).await.map_err(|e| StepError::from(e).on(id))?;
    }
    Ok(())
}

/// Changes an AMI in place: tags, description, deprecation and sharing, as `diffs` say (an AMI
/// still pending is waited for first).
pub async fn update<S: Steps>(steps: &S, node: &Node, diffs: &[AttrDiff], id: &str) -> Result<(), StepError> {
    let region = node.region.as_str();
    let cloud = steps.cloud();
    let status = wait(steps, region, id, steps.deadlines().copy).await?;
    let fail = |e: CloudError| StepError::from(e).on(id);
    let mut shared = false;
    for diff in diffs {
        match &diff.attribute {
            Attribute::Description => {
                let description = diff.after.clone().unwrap_or_default();
                cloud.set_image_description(region, id, &description).await.map_err(fail)?;
            }
            Attribute::Deprecation => {
                cloud.set_image_deprecation(region, id, diff.after.as_deref()).await.map_err(fail)?
            }
            Attribute::Protection => cloud.set_image_protection(region, id, node.protection).await.map_err(fail)?,
            Attribute::LaunchPermission | Attribute::CreateVolumePermission if !shared => {
                share(steps, node, id, &status.snapshot_ids).await?;
                shared = true;
            }
            // Tags are set after the loop; what AWS fixes at creation is never updated; an AMI
            // has no value.
            Attribute::LaunchPermission
            | Attribute::CreateVolumePermission
            | Attribute::Tag(_)
            | Attribute::File(_)
            | Attribute::Immutable(_)
            | Attribute::Value => {}
        }
    }
    update_tags(steps, region, id, diffs).await
}

/// Deregisters the AMI, then deletes the snapshots behind it that go with it. Protection the
/// plan found is lifted first; while a cooldown runs AWS refuses the deregistration, which is
/// then left to a later run, and the answer says from when.
pub async fn delete<S: Steps>(
    steps: &S,
    region: &str,
    id: &str,
    with_snapshots: &[String],
    protection: &LiveProtection,
) -> Result<Removal, CloudError> {
    let after_cooldown = |until: Option<String>| {
        let until = until.map_or("24 hours after protection was lifted".into(), |t| format!("until {t}"));
        Removal::AfterCooldown(format!(
            "deregistration protection is lifted, and its cooldown keeps the AMI {until}: a run after that removes it"
        ))
    };
    match protection {
        LiveProtection::Off => {}
        LiveProtection::On(Protection::WithoutCooldown) => steps.cloud().set_image_protection(region, id, None).await?,
        LiveProtection::On(Protection::WithCooldown) => {
            steps.cloud().set_image_protection(region, id, None).await?;
            let until = deprecation::format(deprecation::now() + 24 * 3600);
            return Ok(after_cooldown(Some(format!("about {until}"))));
        }
        LiveProtection::CoolingDown { until } => {
            let ended = protection.cooldown_end().is_some_and(|end| end <= deprecation::now());
            if !ended {
                return Ok(after_cooldown(until.clone()));
            }
        }
    }
    steps.cloud().deregister_image(region, id).await?;
    for snapshot in with_snapshots {
        super::snapshot::delete_after_images(steps, region, snapshot).await?;
    }
    Ok(Removal::Done)
}

/// Removes an AMI that was only the source of copies, with the snapshots behind it except those
/// in `removed_apart` (snapshot nodes deleted by their own change).
pub async fn remove_source<S: Steps>(
    steps: &S,
    region: &str,
    id: &str,
    removed_apart: &[String],
) -> Result<(), CloudError> {
    let status = steps.cloud().image_status(region, id).await?;
    let behind: Vec<String> = status.snapshot_ids.into_iter().filter(|s| !removed_apart.contains(s)).collect();
    // The copies' source is never protected (see graph): it goes at once.
    delete(steps, region, id, &behind, &LiveProtection::Off).await.map(drop)
}

/// What of an AMI can change in place and differs: description, launch permissions,
/// deprecation and its snapshots' createVolumePermission.
pub(super) fn in_place(node: &Node, live: &LiveResource, now: i64) -> Vec<AttrDiff> {
    let mut diffs = Vec::new();
    if node.description.is_some() && node.description != live.description {
        diffs.push(AttrDiff {
            attribute: Attribute::Description,
            before: live.description.clone(),
            after: node.description.clone(),
        });
    }
    // Without a read of the permissions (see observe), only the public flag is known.
    let have = live.sharing.clone().unwrap_or_else(|| Sharing { public: live.public, ..node.sharing.clone() });
    if have != node.sharing {
        diffs.push(AttrDiff {
            attribute: Attribute::LaunchPermission,
            before: Some(have.describe()),
            after: Some(node.sharing.describe()),
        });
    }
    if let Some(deprecation) = node.deprecation
        && !deprecation.matches(live.deprecation.as_deref(), live.created.as_deref(), now)
        && refused_deprecation(node, live, now).is_none()
    {
        let at = deprecation::format(deprecation.for_image(live.created.as_deref(), now));
        diffs.push(AttrDiff { attribute: Attribute::Deprecation, before: live.deprecation.clone(), after: Some(at) });
    } else if node.deprecation.is_none() && live.deprecation.is_some() && !node.sharing.public {
        // A public AMI is deprecated by AWS itself (two years after its creation, unless
        // told an earlier time) and cannot be undeprecated: without a declared time, AWS's
        // default stands. Any other AMI's deprecation the manifest does not ask for goes.
        diffs.push(AttrDiff { attribute: Attribute::Deprecation, before: live.deprecation.clone(), after: None });
    }
    if !live.protection.is(node.protection) {
        diffs.push(AttrDiff {
            attribute: Attribute::Protection,
            before: Some(live.protection.to_string()),
            after: Some(node.protection.map_or("off", Protection::as_str).to_string()),
        });
    }
    let want = node.sharing.for_snapshots();
    if let Some((snapshot, have)) = live.snapshot_sharing.iter().find(|(_, have)| *have != want) {
        diffs.push(AttrDiff {
            attribute: Attribute::CreateVolumePermission,
            before: Some(format!("{snapshot}: {}", have.describe())),
            after: Some(want.describe()),
        });
    }
    diffs
}

/// Marks a reason the plan gives for not doing what the manifest asks, because AWS would refuse.
pub const REFUSED: &str = "AWS would refuse";

/// A public AMI cannot be deprecated more than two years after its creation (EC2 user guide,
/// "Deprecate an AMI"). Validation catches times that are too late for any new AMI; an AMI
/// created long ago has an earlier limit, known only from its creation date.
pub(super) fn refused_deprecation(node: &Node, live: &LiveResource, now: i64) -> Option<String> {
    const TWO_YEARS: i64 = 730 * 24 * 3600;
    let deprecation = node.deprecation?;
    let created = deprecation::parse(live.created.as_deref()?)?;
    let at = deprecation.for_image(live.created.as_deref(), now);
    (node.sharing.public && at > created + TWO_YEARS).then(|| {
        format!(
            "{REFUSED} to deprecate public AMI {} at {}, more than 2 years after its creation ({}): its deprecation is left as it is",
            live.id,
            deprecation::format(at),
            deprecation::format(created)
        )
    })
}
