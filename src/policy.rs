//! What the manifests need of AWS, read off their desired graph: the input of `amiplan policy`.
//! Which IAM actions that means is the cloud layer's knowledge ([`crate::cloud::aws::iam_policy`]).

use crate::cloud::needs::{Capability, Needs, ObjectPlace, ObjectPurpose};
use crate::graph::DesiredGraph;
use crate::resource::snapshot::MadeBy;
use crate::resource::{NodeKind, Spec};

/// The capabilities, regions, keys, buckets and parameter names `graph`'s stacks need for
/// `plan`, `apply` and `destroy`.
pub fn needs(graph: &DesiredGraph) -> Needs {
    let mut needs = Needs::default();
    for node in graph.nodes() {
        needs.stacks.insert(node.stack.clone());
        let capability = match &node.spec {
            Spec::Snapshot(snapshot) => match snapshot.made_by {
                MadeBy::Upload { .. } => Some(Capability::Upload),
                MadeBy::Capture { .. } => Some(Capability::HelperBuild),
                MadeBy::EncryptCopy => Some(Capability::EncryptSnapshot),
            },
            Spec::Copy(_) => Some(Capability::Copies),
            Spec::Vpc(_) | Spec::Subnet(_) | Spec::InternetGateway(_) | Spec::RouteTable(_) => {
                Some(Capability::OwnNetwork)
            }
            Spec::SecurityGroup(_) | Spec::Volume(_) | Spec::Helper(_) => Some(Capability::HelperBuild),
            Spec::Test(test) => {
                needs.objects.extend(test.reports_bucket.as_ref().map(|bucket| ObjectPlace {
                    bucket: bucket.bucket.clone(),
                    prefix: bucket.prefix.clone(),
                    purpose: ObjectPurpose::TestReports,
                }));
                Some(Capability::BootTest)
            }
            Spec::PublicAccess(_) => Some(Capability::PublicImages),
            Spec::CatalogFiles(files) => {
                needs.objects.insert(ObjectPlace {
                    bucket: files.bucket.clone(),
                    prefix: files.prefix.clone(),
                    purpose: ObjectPurpose::Catalogue,
                });
                None
            }
            Spec::Parameter(_) => {
                needs.parameter_prefixes.extend(graph.catalog(&node.stack).map(|(catalog, _)| catalog.prefix.clone()));
                None
            }
            Spec::Image(_) => None,
        };
        needs.capabilities.extend(capability);
        // Catalogue files and reports live in their bucket's region, which amiplan only reads
        // and writes objects in: no EC2 resource is made there.
        if !matches!(node.kind(), NodeKind::CatalogFiles) {
            needs.regions.insert(node.region.clone());
        }
        if node.kind().is_image() {
            if node.sharing.public || node.sharing.names_anyone() {
                needs.capabilities.insert(Capability::Sharing);
            }
            if node.sharing.entities() > crate::cloud::Sharing::DEFAULT_ENTITY_QUOTA {
                needs.capabilities.insert(Capability::WideSharing);
            }
            if node.deprecation.is_some() {
                needs.capabilities.insert(Capability::Deprecation);
            }
            if node.protection.is_some() {
                needs.capabilities.insert(Capability::Protection);
            }
        }
        let key = match &node.spec {
            Spec::Snapshot(snapshot) => snapshot.kms_key.as_ref(),
            Spec::Volume(volume) => volume.kms_key.as_ref(),
            _ => node.spec.ami().and_then(|ami| ami.kms_key.as_ref()),
        };
        needs.keys.extend(key.cloned());
    }
    needs
}
