//! Parameter Store: parameters naming AMIs, found by their `amiplan:stack` tag.
//!
//! DescribeParameters answers names and metadata but no tags and no values, and
//! ListTagsForResource takes one parameter at a time. So discovery asks once per stack (the tag
//! filter says whose each parameter is) and reads values ten at a time with GetParameters: the
//! other tags of a parameter are never read, and amiplan sets them only when it creates one.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType, ResourceTypeForTagging, Tag};

use super::{AwsCloud, Missing};
use crate::cloud::{CloudError, ErrorClass, ImageParameter, LiveResource, Parameters, ResourceKind, State, tags};

/// What AWS calls the data type that makes Parameter Store check the value is an AMI ID.
const IMAGE_DATA_TYPE: &str = "aws:ec2:image";

/// GetParameters takes at most ten names.
const NAMES_PER_READ: usize = 10;

impl AwsCloud {
    /// Parameters tagged with one of `stacks`, and any parameter at `names`, with their values.
    pub(super) async fn discover_parameters(
        &self,
        region: &str,
        stacks: &[String],
        names: &[String],
    ) -> Result<Vec<LiveResource>, CloudError> {
        let owned = futures::future::try_join_all(stacks.iter().map(|stack| self.parameters_of(region, stack)));
        let owned = match owned.await {
            Ok(owned) => owned.into_iter().flatten().collect::<BTreeMap<String, (String, Option<String>)>>(),
            // Without a catalogue here, a run need not read Parameter Store at all; a catalogue
            // that is wanted must be readable.
            Err(error) if error.class == ErrorClass::Denied && names.is_empty() => {
                tracing::warn!(%error, region, "Parameter Store is not readable: amiplan's parameters are not looked for");
                return Ok(vec![]);
            }
            Err(error) => return Err(error),
        };
        let wanted: BTreeSet<&String> = owned.keys().chain(names).collect();
        let wanted: Vec<&String> = wanted.into_iter().collect();
        let reads =
            futures::future::try_join_all(wanted.chunks(NAMES_PER_READ).map(|chunk| self.read_values(region, chunk)));
        let values: BTreeMap<String, String> = reads.await?.into_iter().flatten().collect();
        Ok(values
            .into_iter()
            .map(|(name, value)| {
                let mut found_tags = BTreeMap::new();
                let mut description = None;
                if let Some((stack, said)) = owned.get(&name) {
                    found_tags.insert(tags::STACK.to_string(), stack.clone());
                    description = said.clone();
                }
                let mut live = LiveResource::new(region, ResourceKind::Parameter, &name, State::Ready, found_tags);
                live.description = description;
                live.name = Some(name);
                live.value = Some(value);
                live
            })
            .collect())
    }

    /// Names of the parameters tagged `amiplan:stack=stack`, each with the stack and its
    /// description.
    async fn parameters_of(
        &self,
        region: &str,
        stack: &str,
    ) -> Result<Vec<(String, (String, Option<String>))>, CloudError> {
        let ssm = self.ssm(region);
        let by_stack = ParameterStringFilter::builder()
            .key(format!("tag:{}", tags::STACK))
            .option("Equals")
            .values(stack)
            .build()
            .expect("a filter with a key builds");
        let pages = self
            .call("DescribeParameters", region)
            .send(|| {
                let request = ssm.describe_parameters().parameter_filters(by_stack.clone()).max_results(50);
                request.into_paginator().send().collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(pages
            .iter()
            .flat_map(|page| page.parameters())
            .filter_map(|p| Some((p.name()?.to_string(), (stack.to_string(), p.description().map(str::to_string)))))
            .collect())
    }

    async fn read_values(&self, region: &str, names: &[&String]) -> Result<Vec<(String, String)>, CloudError> {
        let ssm = self.ssm(region);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let read = self
            .call("GetParameters", region)
            .send(|| ssm.get_parameters().set_names(Some(names.clone())).send())
            .await?;
        Ok(read
            .parameters()
            .iter()
            .filter_map(|p| Some((p.name()?.to_string(), p.value().unwrap_or_default().to_string())))
            .collect())
    }
}

impl Parameters for AwsCloud {
    async fn put_image_parameter(&self, region: &str, parameter: &ImageParameter) -> Result<i64, CloudError> {
        let ssm = self.ssm(region);
        // Tags go with the create only: AWS refuses tags together with Overwrite.
        let tags: Option<Vec<Tag>> = (!parameter.overwrite).then(|| {
            parameter.tags.iter().filter_map(|(key, value)| Tag::builder().key(key).value(value).build().ok()).collect()
        });
        let request = ssm
            .put_parameter()
            .name(&parameter.name)
            .value(&parameter.value)
            .r#type(ParameterType::String)
            .data_type(IMAGE_DATA_TYPE)
            .overwrite(parameter.overwrite)
            .set_description(parameter.description.clone())
            .set_tags(tags);
        let written = self.call("PutParameter", region).on(&parameter.name).send(|| request.clone().send()).await?;
        Ok(written.version())
    }

    async fn parameters_under(&self, region: &str, path: &str) -> Result<Vec<LiveResource>, CloudError> {
        let ssm = self.ssm(region);
        let pages = self
            .call("GetParametersByPath", region)
            .send(|| {
                let request = ssm.get_parameters_by_path().path(path).recursive(true).max_results(10);
                request.into_paginator().send().collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(pages
            .iter()
            .flat_map(|page| page.parameters())
            .filter_map(|p| {
                let name = p.name()?;
                let mut live = LiveResource::new(region, ResourceKind::Parameter, name, State::Ready, BTreeMap::new());
                live.name = Some(name.to_string());
                live.value = p.value().map(str::to_string);
                Some(live)
            })
            .collect())
    }

    async fn parameter(&self, region: &str, name: &str) -> Result<Option<(String, i64)>, CloudError> {
        let ssm = self.ssm(region);
        let read = self.call("GetParameter", region).on(name).send(|| ssm.get_parameter().name(name).send()).await;
        Ok(read.or_none()?.and_then(|answer| {
            let parameter = answer.parameter?;
            Some((parameter.value.unwrap_or_default(), parameter.version))
        }))
    }

    async fn tag_parameter(&self, region: &str, name: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        if tags.is_empty() {
            return Ok(());
        }
        let ssm = self.ssm(region);
        let tags: Vec<Tag> = tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
        self.call("AddTagsToResource", region)
            .on(name)
            .send(|| {
                ssm.add_tags_to_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await
            .map(|_| ())
    }

    async fn delete_parameter(&self, region: &str, name: &str) -> Result<(), CloudError> {
        let ssm = self.ssm(region);
        self.call("DeleteParameter", region).on(name).send(|| ssm.delete_parameter().name(name).send()).await.or_gone()
    }
}
