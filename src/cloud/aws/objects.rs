//! S3: the catalogue files under a prefix of a bucket. One listing (ListObjectsV2, paginated)
//! reads every file's entity tag; tags are read one object at a time, and only before a delete.
//! Boot tests' reports come through a bucket too: a presigned PUT, read back and deleted.

use std::collections::BTreeMap;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use md5::{Digest, Md5};

use super::{AwsCloud, Missing};
use crate::cloud::{CloudError, ErrorClass, Objects, StoredObject};

/// Catalogue files are JSON.
const CONTENT_TYPE: &str = "application/json";

impl Objects for AwsCloud {
    async fn list_objects(&self, region: &str, bucket: &str, prefix: &str) -> Result<Vec<StoredObject>, CloudError> {
        let s3 = self.s3(region);
        let pages = self
            .call("ListObjectsV2", region)
            .on(bucket)
            .send(|| {
                let request = s3.list_objects_v2().bucket(bucket).prefix(prefix);
                request.into_paginator().send().collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(pages
            .iter()
            .flat_map(|page| page.contents())
            .filter_map(|object| {
                let etag = object.e_tag().unwrap_or_default().trim_matches('"').to_string();
                Some(StoredObject { key: object.key()?.to_string(), etag })
            })
            .collect())
    }

    async fn put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &[u8],
        tags: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let s3 = self.s3(region);
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
        let tagging = form_urlencoded::Serializer::new(String::new()).extend_pairs(tags).finish();
        let answer = self
            .call("PutObject", region)
            .on(key)
            .send(|| {
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body.to_vec()))
                    .content_type(CONTENT_TYPE)
                    .content_md5(&md5)
                    .tagging(&tagging)
                    .send()
            })
            .await?;
        Ok(answer.e_tag().unwrap_or_default().trim_matches('"').to_string())
    }

    async fn object_tags(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CloudError> {
        let s3 = self.s3(region);
        let answer = self
            .call("GetObjectTagging", region)
            .on(key)
            .send(|| s3.get_object_tagging().bucket(bucket).key(key).send())
            .await
            .or_none()?;
        Ok(answer
            .map(|found| found.tag_set().iter().map(|tag| (tag.key().to_string(), tag.value().to_string())).collect()))
    }

    async fn presign_put(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String, CloudError> {
        let s3 = self.s3(region);
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| CloudError::new("PresignPutObject", region, ErrorClass::Fatal, e.to_string()).on(key))?;
        let presigned = self
            .call("PresignPutObject", region)
            .on(key)
            .send(|| s3.put_object().bucket(bucket).key(key).presigned(config.clone()))
            .await?;
        Ok(presigned.uri().to_string())
    }

    async fn get_object(&self, region: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        let s3 = self.s3(region);
        let Some(answer) = self
            .call("GetObject", region)
            .on(key)
            .send(|| s3.get_object().bucket(bucket).key(key).send())
            .await
            .or_none()?
        else {
            return Ok(None);
        };
        let body = answer.body.collect().await.map_err(|e| {
            CloudError::new("GetObject", region, ErrorClass::Transient, format!("the body was cut off: {e}")).on(key)
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn delete_object(&self, region: &str, bucket: &str, key: &str) -> Result<(), CloudError> {
        let s3 = self.s3(region);
        self.call("DeleteObject", region)
            .on(key)
            .send(|| s3.delete_object().bucket(bucket).key(key).send())
            .await
            .or_gone()
    }
}
