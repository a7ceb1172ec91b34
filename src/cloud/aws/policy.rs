//! The least-privilege IAM policy for what manifests need ([`Needs`]): only the actions their
//! features make amiplan call, creation scoped to their regions, removal and changes scoped to
//! resources tagged with their stacks, objects and parameters to their buckets and prefixes.
//!
//! Sources: the Service Authorization Reference's pages for Amazon EC2, Amazon EBS direct APIs, AWS
//! Systems Manager, Amazon S3, Service Quotas and AWS KMS (which actions take which resources and
//! condition keys); "Control access to EC2 resources using resource tags" (`aws:ResourceTag/…` on
//! the delete, modify and deprecation actions below); "Grant permission to tag resources during
//! creation" (tagging at creation needs `ec2:CreateTags`); PutObject's page (a `Tagging` header
//! needs `s3:PutObjectTagging`); "Permissions for IAM users" in the EBS encryption guide (the KMS
//! actions EC2 and EBS call with the caller's credentials for a customer managed key).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cloud::needs::{Access, Capability, Needs, ObjectPurpose};
use crate::cloud::tags;

/// Reads every stack needs: discovery of images and snapshots (every stack's, to report
/// orphans), the lock's key pair, the regions, launch templates (before an old AMI is
/// deregistered) and sharing (an AMI once shared stays tagged so, and is read until it is not).
const BASE_READS: &[&str] = &[
    "ec2:DescribeImageAttribute",
    "ec2:DescribeImages",
    "ec2:DescribeKeyPairs",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeRegions",
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeSnapshots",
    // Parameters are found by their stack tag, whether a manifest asks for any or not.
    "ssm:DescribeParameters",
];

/// Made in the manifests' regions by every stack: the lock, the image, tags at creation.
const BASE_MAKES: &[&str] = &["ec2:CreateKeyPair", "ec2:CreateTags", "ec2:DeleteKeyPair", "ec2:RegisterImage"];

/// Changed or removed by every stack, on its own resources only: retention and `destroy`
/// remove images and snapshots (lifting their deregistration protection first); sharing,
/// deprecation and protection a manifest no longer asks for are undone.
const BASE_OWN: &[&str] = &[
    "ec2:DeleteSnapshot",
    "ec2:DeleteTags",
    "ec2:DeregisterImage",
    "ec2:DisableImageDeprecation",
    "ec2:DisableImageDeregistrationProtection",
    "ec2:ModifyImageAttribute",
    "ec2:ModifySnapshotAttribute",
];

/// What an instance of amiplan's (a helper, a boot test) needs read: discovery of the build
/// resources, instance type offerings, the default subnet, the console.
const INSTANCE_READS: [&str; 9] = [
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVolumes",
    "ec2:DescribeVpcs",
    "ec2:GetConsoleOutput",
];

/// A boot test's reads: an instance's, and what its instance type launches (the plan checks
/// the tested AMI against it).
const BOOT_TEST_READS: [&str; 10] = {
    let mut reads = [""; 10];
    let mut i = 0;
    while i < INSTANCE_READS.len() {
        reads[i] = INSTANCE_READS[i];
        i += 1;
    }
    reads[9] = "ec2:DescribeInstanceTypes";
    reads
};

/// The IAM actions of one capability: (reads, makes in the manifests' regions, changes to own
/// resources).
fn actions(capability: Capability) -> (&'static [&'static str], &'static [&'static str], &'static [&'static str]) {
    match capability {
        Capability::Upload => (&[], &["ebs:CompleteSnapshot", "ebs:PutSnapshotBlock", "ebs:StartSnapshot"], &[]),
        Capability::HelperBuild => (
            &INSTANCE_READS,
            &[
                "ec2:AttachVolume",
                "ec2:CreateSecurityGroup",
                "ec2:CreateSnapshot",
                "ec2:CreateVolume",
                "ec2:RunInstances",
            ],
            &["ec2:DeleteSecurityGroup", "ec2:DeleteVolume", "ec2:TerminateInstances"],
        ),
        Capability::OwnNetwork => (
            // The VPC quota the plan checks a build's temporary VPC against.
            &["servicequotas:GetAWSDefaultServiceQuota", "servicequotas:GetServiceQuota"],
            // A route table's association is no resource IAM can tag: disassociating it is
            // scoped by region.
            &[
                "ec2:AssociateRouteTable",
                "ec2:AttachInternetGateway",
                "ec2:CreateInternetGateway",
                "ec2:CreateRoute",
                "ec2:CreateRouteTable",
                "ec2:CreateSubnet",
                "ec2:CreateVpc",
                "ec2:DisassociateRouteTable",
            ],
            &[
                "ec2:DeleteInternetGateway",
                "ec2:DeleteRouteTable",
                "ec2:DeleteSubnet",
                "ec2:DeleteVpc",
                "ec2:DetachInternetGateway",
            ],
        ),
        Capability::EncryptSnapshot => (&[], &["ec2:CopySnapshot"], &[]),
        Capability::Copies => (&[], &["ec2:CopyImage"], &[]),
        Capability::Sharing => (&["ec2:GetEbsEncryptionByDefault"], &[], &[]),
        Capability::PublicImages => (
            &[
                "ec2:GetImageBlockPublicAccessState",
                "ec2:GetSnapshotBlockPublicAccessState",
                "servicequotas:GetAWSDefaultServiceQuota",
                "servicequotas:GetServiceQuota",
            ],
            &[],
            &[],
        ),
        // The "AMI sharing" quota the plan checks the manifest's launch permissions against.
        Capability::WideSharing => {
            (&["servicequotas:GetAWSDefaultServiceQuota", "servicequotas:GetServiceQuota"], &[], &[])
        }
        Capability::Deprecation => (&[], &[], &["ec2:EnableImageDeprecation"]),
        Capability::Protection => (&[], &[], &["ec2:EnableImageDeregistrationProtection"]),
        Capability::BootTest => (
            &BOOT_TEST_READS,
            &["ec2:CreateSecurityGroup", "ec2:RunInstances"],
            &["ec2:DeleteSecurityGroup", "ec2:TerminateInstances"],
        ),
    }
}

/// Parameter Store actions on the manifests' parameters: reads, and changes.
const PARAMETER_READS: &[&str] = &["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"];
const PARAMETER_CHANGES: &[&str] = &["ssm:AddTagsToResource", "ssm:DeleteParameter", "ssm:PutParameter"];

/// S3 actions on catalogue files: reads, and changes (a `Tagging` header needs
/// `s3:PutObjectTagging`).
const CATALOGUE_READS: &[&str] = &["s3:GetObject", "s3:GetObjectTagging"];
const CATALOGUE_CHANGES: &[&str] = &["s3:DeleteObject", "s3:PutObject", "s3:PutObjectTagging"];
/// Test reports: the instance's upload is signed with amiplan's credentials.
const REPORT_ACTIONS: &[&str] = &["s3:DeleteObject", "s3:GetObject", "s3:PutObject"];

/// What EC2 and EBS ask KMS for, with the caller's credentials, to use a customer managed key.
pub const KEY_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// The IAM policy document (JSON) that allows what `needs` asks for, and nothing else; with
/// [`Access::ReadOnly`], only its reads.
pub fn iam_policy(needs: &Needs, access: Access) -> Value {
    let converge = access != Access::ReadOnly;
    let prune = access == Access::ConvergeAndPrune;
    let mut reads: BTreeSet<&str> = BASE_READS.iter().copied().collect();
    let mut makes: BTreeSet<&str> = BASE_MAKES.iter().copied().collect();
    let mut own: BTreeSet<&str> = BASE_OWN.iter().copied().collect();
    for capability in &needs.capabilities {
        let (r, m, o) = actions(*capability);
        reads.extend(r);
        makes.extend(m);
        own.extend(o);
    }
    if prune {
        // Another stack's leftovers may come from any build.
        for capability in <Capability as strum::IntoEnumIterator>::iter() {
            own.extend(actions(capability).2);
        }
    }
    let partition = partition(needs.regions.iter().next().map_or("", String::as_str));
    let stacks: Vec<&str> = needs.stacks.iter().map(String::as_str).collect();
    let regions: Vec<&str> = needs.regions.iter().map(String::as_str).collect();
    let mut statements = vec![json!({"Sid": "Discover", "Effect": "Allow", "Action": reads, "Resource": "*"})];
    if converge {
        statements.push(json!({
            "Sid": "MakeInTheManifestsRegions",
            "Effect": "Allow",
            "Action": makes,
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": regions}},
        }));
        // Not scoped by region: a region removed from a manifest is cleaned up too. Pruning
        // removes any stack's: anything that carries the stack tag.
        let tag = format!("aws:ResourceTag/{}", tags::STACK);
        let (sid, condition) = if prune {
            ("ChangeAndRemoveAnyStacksResources", json!({"Null": {tag: "false"}}))
        } else {
            ("ChangeAndRemoveTheStacksOwnResources", json!({"StringEquals": {tag: stacks}}))
        };
        statements.push(json!({"Sid": sid, "Effect": "Allow", "Action": own, "Resource": "*", "Condition": condition}));
    }
    if !needs.parameter_prefixes.is_empty() {
        let names: Vec<String> = needs
            .parameter_prefixes
            .iter()
            .flat_map(|prefix| {
                // The path itself (GetParametersByPath names it) and every name under it.
                let path = prefix.trim_matches('/');
                [
                    format!("arn:{partition}:ssm:*:*:parameter/{path}"),
                    format!("arn:{partition}:ssm:*:*:parameter/{path}/*"),
                ]
            })
            .collect();
        let actions = if converge { [PARAMETER_READS, PARAMETER_CHANGES].concat() } else { PARAMETER_READS.to_vec() };
        statements.push(
            json!({"Sid": "TheManifestsParameters", "Effect": "Allow", "Action": sorted(actions), "Resource": names}),
        );
    }
    let catalogue = if converge { [CATALOGUE_READS, CATALOGUE_CHANGES].concat() } else { CATALOGUE_READS.to_vec() };
    let reports = if converge { REPORT_ACTIONS.to_vec() } else { vec![] };
    for (purpose, sid, actions) in [
        (ObjectPurpose::Catalogue, "CatalogueFiles", catalogue),
        (ObjectPurpose::TestReports, "BootTestReports", reports),
    ] {
        let places: Vec<_> = needs.objects.iter().filter(|p| p.purpose == purpose).collect();
        if places.is_empty() || actions.is_empty() {
            continue;
        }
        let objects: BTreeSet<String> =
            places.iter().map(|p| format!("arn:{partition}:s3:::{}/{}*", p.bucket, p.prefix)).collect();
        statements.push(json!({"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": objects}));
        if purpose == ObjectPurpose::Catalogue {
            let buckets: BTreeSet<String> =
                places.iter().map(|p| format!("arn:{partition}:s3:::{}", p.bucket)).collect();
            statements.push(json!({"Sid": "ListCatalogueFiles", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": buckets}));
        }
    }
    if converge && !needs.keys.is_empty() {
        // A key named by ID is a key ARN in any account; one named by alias cannot be scoped
        // (IAM matches the key's ARN, not the alias).
        let keys: BTreeSet<String> = needs
            .keys
            .iter()
            .map(|key| match key {
                arn if arn.starts_with("arn:") => arn.clone(),
                alias if alias.starts_with("alias/") => "*".to_string(),
                id => format!("arn:{partition}:kms:*:*:key/{id}"),
            })
            .collect();
        let keys: Vec<String> = if keys.contains("*") { vec!["*".into()] } else { keys.into_iter().collect() };
        statements
            .push(json!({"Sid": "UseTheManifestsKeys", "Effect": "Allow", "Action": KEY_ACTIONS, "Resource": keys}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn sorted(mut actions: Vec<&str>) -> Vec<&str> {
    actions.sort_unstable();
    actions
}

/// The ARN partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}
