//! Stack locks as EC2 key pairs: names are unique per region, so creating one is an atomic
//! test-and-set, and its tags carry the holder's lease.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{KeyType, ResourceType};

use super::{AwsCloud, Missing, tag_map, tag_spec};
use crate::cloud::{CloudError, ErrorClass, HeldLock, Locks, Tagging};

impl AwsCloud {
    /// The lock key pair `name`, if it exists.
    async fn find_lock(&self, region: &str, name: &str) -> Result<Option<HeldLock>, CloudError> {
        let ec2 = self.ec2(region);
        let found = self
            .call("DescribeKeyPairs", region)
            .on(name)
            .send(|| ec2.describe_key_pairs().key_names(name).send())
            .await
            .or_none()?;
        let first = found.as_ref().and_then(|out| out.key_pairs().first());
        Ok(first.map(|k| HeldLock { id: k.key_pair_id.clone(), labels: tag_map(k.tags()) }))
    }
}

impl Locks for AwsCloud {
    async fn try_lock(
        &self,
        region: &str,
        name: &str,
        holder: &BTreeMap<String, String>,
    ) -> Result<Option<HeldLock>, CloudError> {
        let ec2 = self.ec2(region);
        // The private key in the answer is dropped unread: nobody can ever use this key pair.
        let created = self
            .call("CreateKeyPair", region)
            .on(name)
            .send(|| {
                ec2.create_key_pair()
                    .key_name(name)
                    .key_type(KeyType::Ed25519)
                    .tag_specifications(tag_spec(ResourceType::KeyPair, holder))
                    .send()
            })
            .await;
        match created {
            Ok(_) => Ok(None),
            Err(e) if e.class == ErrorClass::Duplicate => {
                Ok(Some(self.find_lock(region, name).await?.unwrap_or(HeldLock { id: None, labels: BTreeMap::new() })))
            }
            Err(e) => Err(e),
        }
    }

    async fn relabel_lock(
        &self,
        region: &str,
        name: &str,
        key: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<bool, CloudError> {
        let Some(found) = self.find_lock(region, name).await? else { return Ok(false) };
        let (Some(id), true) = (found.id, found.labels.get(key) == labels.get(key)) else { return Ok(false) };
        self.set_tags(region, std::slice::from_ref(&id), labels).await?;
        Ok(true)
    }

    async fn break_lock(&self, region: &str, name: &str, held: &HeldLock) -> Result<(), CloudError> {
        // Only the stale key pair goes: if the lock was taken over meanwhile, it has another ID.
        // (DeleteKeyPair takes a KeyPairId on AWS, but the emulator honours only the name, so the
        // ID is checked right before deleting by name; the race narrows to that moment.)
        match self.find_lock(region, name).await? {
            Some(found) if found.id == held.id => self.unlock(region, name).await,
            _ => Ok(()),
        }
    }

    async fn unlock(&self, region: &str, name: &str) -> Result<(), CloudError> {
        let ec2 = self.ec2(region);
        self.call("DeleteKeyPair", region).on(name).send(|| ec2.delete_key_pair().key_name(name).send()).await.or_gone()
    }
}
