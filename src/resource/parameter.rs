//! A Parameter Store parameter naming one AMI: a version's (`…/41-1.4/x86_64/image_id`) or a
//! channel's (`…/stable/x86_64/image_id`), in every region of the stack.
//!
//! Written with `DataType: aws:ec2:image`, which Parameter Store checks after PutParameter has
//! answered: a value it refuses never appears. So every write is read back until the version it
//! made holds the AMI.

use std::collections::BTreeMap;

use super::steps::{Inputs, Resolved, StepError, Steps};
use super::{AttrDiff, Attribute, Node, Pairs};
use crate::cloud::retry::{Poll, wait_until};
use crate::cloud::{ErrorClass, ImageParameter, Images, LiveResource, Parameters, Permissions};
pub use crate::model::VariantKey;

pub const TRANSIENT: bool = false;

/// Where the plan puts the AMI a parameter is to name, when it is known before apply.
pub const RESOLVED_AMI: &str = "ami";

/// The node of the parameter `name` in `region`: amiplan tags each parameter with it at
/// creation, and discovery (which reads no tags of parameters) knows it from the name.
pub fn node_id(name: &str, region: &str) -> String {
    format!("parameter{name}@{region}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The full name, e.g. `/acme/fedora/41-1.4/x86_64/image_id`.
    pub name: String,
    /// The channel the parameter is the pointer of; `None` for a version's own parameter.
    pub channel: Option<String>,
    /// The version whose AMI it names.
    pub version: String,
    pub variant: VariantKey,
    /// The image node of the AMI, when the version is the stack's current one; an earlier
    /// version's AMI is found among live AMIs while planning.
    pub image_node: Option<String>,
    /// Take over a parameter of that name that amiplan does not own.
    pub overwrite: bool,
}

impl Parameter {
    /// Every amiplan parameter is a String naming an AMI: a parameter of another type at the
    /// same name is not one amiplan made.
    pub(super) fn immutable(&self) -> Pairs {
        vec![("data_type", "aws:ec2:image".to_string())]
    }

    /// What the parameter says of itself: whose AMI of which version and variant, and when AWS
    /// deprecates that AMI (Parameter Store has no deprecation of its own: this is the mark).
    pub fn description(&self, node: &Node, deprecation: Option<&str>) -> String {
        let variant = self.variant.describe();
        let what = match &self.channel {
            Some(channel) => format!("{} {variant}, channel {channel}: {}", node.stack, self.version),
            None => format!("{} {} {variant}", node.stack, self.version),
        };
        match deprecation {
            Some(at) => format!("{what}; deprecated from {at}"),
            None => what,
        }
    }

    /// The description change of an owned parameter whose AMI stays, once its AMI's deprecation
    /// (`None`: none) is known.
    pub fn description_diff(&self, node: &Node, live: &LiveResource, deprecation: Option<&str>) -> Option<AttrDiff> {
        let after = self.description(node, deprecation);
        (live.description.as_deref() != Some(after.as_str())).then(|| AttrDiff {
            attribute: Attribute::Description,
            before: live.description.clone(),
            after: Some(after),
        })
    }

    /// The AMI to name: the one the image node made or kept in this run, or the one the plan
    /// found among live AMIs.
    fn ami(&self, node: &Node, inputs: &Inputs, resolved: &Resolved) -> Result<String, StepError> {
        let made = self.image_node.as_deref().and_then(|image| inputs.of_node(image));
        made.or_else(|| resolved.get(RESOLVED_AMI)).cloned().ok_or_else(|| StepError {
            resource: None,
            message: format!(
                "{}: no AMI of {} {} is known to point at",
                node.id,
                self.version,
                self.variant.describe()
            ),
        })
    }

    /// Creates the parameter, tagged, pointing at the AMI.
    pub(super) async fn create<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        inputs: &Inputs,
        resolved: &Resolved,
    ) -> Result<String, StepError> {
        let ami = self.ami(node, inputs, resolved)?;
        self.write(steps, node, &ami, false).await?;
        Ok(self.name.clone())
    }

    /// Points the parameter at the AMI (and, when taking over one amiplan does not own, tags
    /// it as amiplan's).
    pub(super) async fn update<S: Steps>(
        &self,
        steps: &S,
        node: &Node,
        diffs: &[AttrDiff],
        inputs: &Inputs,
        resolved: &Resolved,
    ) -> Result<(), StepError> {
        if diffs.iter().any(|d| d.attribute == Attribute::Value || d.attribute == Attribute::Description) {
            let ami = self.ami(node, inputs, resolved)?;
            self.write(steps, node, &ami, true).await?;
        }
        if diffs.iter().any(|d| matches!(d.attribute, Attribute::Tag(_))) {
            let cloud = steps.cloud();
            cloud.tag_parameter(&node.region, &self.name, &node.desired_tags()).await.map_err(StepError::from)?;
        }
        Ok(())
    }

    /// Writes `ami` after checking who may launch it, then reads it back.
    async fn write<S: Steps>(&self, steps: &S, node: &Node, ami: &str, overwrite: bool) -> Result<(), StepError> {
        let region = node.region.as_str();
        let cloud = steps.cloud();
        let image = cloud.image_sharing(region, ami).await?;
        // An AMI gone since the plan: Parameter Store refuses it, which the read-back reports.
        let deprecation = match cloud.image_status(region, ami).await {
            Ok(status) => status.deprecation,
            Err(error) if error.is_not_found() => None,
            Err(error) => return Err(error.into()),
        };
        let missing = node.sharing.minus(&image);
        if !missing.is_private() {
            return Err(StepError {
                resource: None,
                message: format!(
                    "{}: refused to point at {ami}, which is not shared with {} as the manifest publishes it",
                    node.id,
                    missing.describe()
                ),
            });
        }
        let parameter = ImageParameter {
            name: self.name.clone(),
            value: ami.to_string(),
            description: Some(self.description(node, deprecation.as_deref())),
            tags: node.desired_tags(),
            overwrite,
        };
        let version = match cloud.put_image_parameter(region, &parameter).await {
            Ok(version) => version,
            // A lost answer to our own create: the parameter is there, naming this AMI.
            Err(error) if error.class == ErrorClass::Duplicate && !overwrite => {
                match cloud.parameter(region, &self.name).await? {
                    Some((value, version)) if value == ami => version,
                    _ => {
                        return Err(StepError {
                            resource: None,
                            message: format!(
                                "{}: {} appeared since the plan was made, naming something else; it is left as it is",
                                node.id, self.name
                            ),
                        });
                    }
                }
            }
            Err(error) => return Err(error.into()),
        };
        self.read_back(steps, region, ami, version).await
    }

    /// Waits until Parameter Store shows `version` (or a later one) naming `ami`.
    async fn read_back<S: Steps>(&self, steps: &S, region: &str, ami: &str, version: i64) -> Result<(), StepError> {
        let cloud = steps.cloud();
        let what = format!("parameter {} in {region}", self.name);
        let shown = wait_until(steps.policy(), steps.progress(), steps.deadlines().parameter, &what, || async {
            Ok(match cloud.parameter(region, &self.name).await? {
                Some((value, shown)) if shown >= version && value == ami => Poll::Ready(()),
                Some((value, shown)) => Poll::Pending(format!("version {shown} names {value}")),
                None => Poll::Pending("not there yet".to_string()),
            })
        })
        .await;
        shown.map_err(|error| StepError {
            resource: None,
            message: format!(
                "Parameter Store did not take {ami} for {} in {region} ({error}): it checks aws:ec2:image values after the call returns and drops AMIs that are not available there",
                self.name
            ),
        })
    }
}

/// Deletes the parameter `name`.
pub(super) async fn delete<S: Steps>(steps: &S, region: &str, name: &str) -> Result<(), crate::cloud::CloudError> {
    steps.cloud().delete_parameter(region, name).await
}

/// The value diff of a parameter whose desired AMI is `after` (`None`: known once apply made it).
pub fn value_diff(live: &LiveResource, after: Option<&str>, version: &str) -> Option<AttrDiff> {
    let after = after.map(str::to_string).unwrap_or_else(|| format!("the AMI of {version} (made by this apply)"));
    (live.value.as_deref() != Some(after.as_str())).then(|| AttrDiff {
        attribute: Attribute::Value,
        before: live.value.clone(),
        after: Some(after),
    })
}

/// The tags a parameter taken over from someone else gets.
pub fn ownership_diffs(node: &Node) -> Vec<AttrDiff> {
    let tags: BTreeMap<String, String> = node.desired_tags();
    tags.into_iter()
        .map(|(key, value)| AttrDiff { attribute: Attribute::Tag(key), before: None, after: Some(value) })
        .collect()
}
