//! AWS's rules that moto does not enforce, enforced by the proxy on the traffic between amiplan
//! and moto, and by the tests' players of helper and test instances. Each rule is named, cites
//! the AWS page it comes from, and is on unless a test switches it off ([`Rules::without`]):
//! `Faults::default()` carries every rule, and so does the proxy `Moto::start` puts in front of
//! every moto (see `support.rs`).
//!
//! Durations that are minutes on AWS are seconds here: the rules keep the order of events, not
//! the wall time.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::types::Instance;

use super::Call;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    ClientTokens,
    ConsoleOutput,
    HelperNetwork,
    HelperScratch,
    DeprecationLimits,
    SnapshotNotFoundWindow,
    AttachNeedsAvailable,
    StalledConnection,
    RegionDenied,
    StartSnapshotKeyArn,
    TagLimits,
    InstanceTypeOfferings,
    VpcQuota,
    EbsEncryptionByDefault,
    ImageParameterValidation,
    PresignedUrls,
    BlockChecksums,
    StartedSnapshotsPending,
    SnapshotBlockRate,
    DeregistrationProtection,
    PublicAmiQuota,
    AmiSharingQuota,
    SnapshotPermissionBatch,
    DisabledAmis,
    SnapshotVolumeBounds,
    AmiNameDuplicate,
    InstanceHolds,
    InstanceTypeFitsImage,
}

impl Rule {
    pub const ALL: [Rule; 28] = [
        Rule::ClientTokens,
        Rule::ConsoleOutput,
        Rule::HelperNetwork,
        Rule::HelperScratch,
        Rule::DeprecationLimits,
        Rule::SnapshotNotFoundWindow,
        Rule::AttachNeedsAvailable,
        Rule::StalledConnection,
        Rule::RegionDenied,
        Rule::StartSnapshotKeyArn,
        Rule::TagLimits,
        Rule::InstanceTypeOfferings,
        Rule::VpcQuota,
        Rule::EbsEncryptionByDefault,
        Rule::ImageParameterValidation,
        Rule::PresignedUrls,
        Rule::BlockChecksums,
        Rule::StartedSnapshotsPending,
        Rule::SnapshotBlockRate,
        Rule::DeregistrationProtection,
        Rule::PublicAmiQuota,
        Rule::AmiSharingQuota,
        Rule::SnapshotPermissionBatch,
        Rule::DisabledAmis,
        Rule::SnapshotVolumeBounds,
        Rule::AmiNameDuplicate,
        Rule::InstanceHolds,
        Rule::InstanceTypeFitsImage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::ClientTokens => "client-tokens",
            Rule::ConsoleOutput => "console-output",
            Rule::HelperNetwork => "helper-network",
            Rule::HelperScratch => "helper-scratch",
            Rule::DeprecationLimits => "deprecation-limits",
            Rule::SnapshotNotFoundWindow => "snapshot-not-found-window",
            Rule::AttachNeedsAvailable => "attach-needs-available",
            Rule::StalledConnection => "stalled-connection",
            Rule::RegionDenied => "region-denied",
            Rule::StartSnapshotKeyArn => "start-snapshot-key-arn",
            Rule::TagLimits => "tag-limits",
            Rule::InstanceTypeOfferings => "instance-type-offerings",
            Rule::VpcQuota => "vpc-quota",
            Rule::EbsEncryptionByDefault => "ebs-encryption-by-default",
            Rule::ImageParameterValidation => "image-parameter-validation",
            Rule::PresignedUrls => "presigned-urls",
            Rule::BlockChecksums => "block-checksums",
            Rule::StartedSnapshotsPending => "started-snapshots-pending",
            Rule::SnapshotBlockRate => "snapshot-block-rate",
            Rule::DeregistrationProtection => "deregistration-protection",
            Rule::PublicAmiQuota => "public-ami-quota",
            Rule::AmiSharingQuota => "ami-sharing-quota",
            Rule::SnapshotPermissionBatch => "snapshot-permission-batch",
            Rule::DisabledAmis => "disabled-amis",
            Rule::SnapshotVolumeBounds => "snapshot-volume-bounds",
            Rule::AmiNameDuplicate => "ami-name-duplicate",
            Rule::InstanceHolds => "instance-holds",
            Rule::InstanceTypeFitsImage => "instance-type-fits-image",
        }
    }

    /// Where AWS says so.
    pub fn citation(self) -> &'static str {
        match self {
            Rule::ClientTokens => {
                "EC2 API reference, Ensuring idempotency (Run_Instance_Idempotency.html): same token + other parameters → IdempotentParameterMismatch; a token is kept at least 24 hours after the instance ends"
            }
            Rule::ConsoleOutput => {
                "EC2 API reference, GetConsoleOutput: buffered output posted shortly after a state transition, the latest 64 KB; Latest only on Nitro instance types"
            }
            Rule::HelperNetwork => {
                "VPC user guide, Internet gateways (VPC_Internet_Gateway.html): an instance needs a public IPv4 address and a 0.0.0.0/0 route to an attached internet gateway"
            }
            Rule::HelperScratch => {
                "EC2 user guide, Block device mappings: the root volume is the size of the AMI's root snapshot unless the launch maps a larger one"
            }
            Rule::DeprecationLimits => {
                "EC2 user guide, Deprecate an AMI (ami-deprecate.html): up to 10 years ahead; public AMIs at most 2 years after creation, deprecated by default 2 years after creation"
            }
            Rule::SnapshotNotFoundWindow => {
                "EBS direct APIs reference, StartSnapshot / PutSnapshotBlock: a new snapshot may answer ResourceNotFoundException until it is visible (coldsnap#43: up to 2 minutes)"
            }
            Rule::AttachNeedsAvailable => {
                "EC2 API reference, AttachVolume: the volume must be in the available state (IncorrectState otherwise)"
            }
            Rule::StalledConnection => {
                "AWS SDKs and Tools reference guide, Timeouts: a request may be accepted and never answered; clients must time out attempts"
            }
            Rule::RegionDenied => {
                "Organizations user guide, SCP examples (Deny access to AWS based on the requested Region): every call answers UnauthorizedOperation"
            }
            Rule::StartSnapshotKeyArn => {
                "EBS direct APIs reference, StartSnapshot: KmsKeyArn takes the key's ARN (pattern arn:aws[\\w:/-]+)"
            }
            Rule::EbsEncryptionByDefault => {
                "EBS user guide, Encryption by default (encryption-by-default.html): every new volume and snapshot is encrypted; AMIs with encrypted snapshots cannot be public, and the default key cannot be shared"
            }
            Rule::VpcQuota => {
                "VPC user guide, Amazon VPC quotas (amazon-vpc-limits.html): 5 VPCs per Region by default; CreateVpc answers VpcLimitExceeded"
            }
            Rule::InstanceTypeOfferings => {
                "EC2 API reference, DescribeInstanceTypeOfferings; RunInstances answers Unsupported for an instance type the subnet's Availability Zone does not offer (t3.small is not offered in us-east-1e)"
            }
            Rule::ImageParameterValidation => {
                "Systems Manager user guide, Native parameter support for Amazon Machine Image IDs (parameter-store-ec2-aliases.html): with DataType aws:ec2:image, PutParameter answers success and checks the AMI afterwards; a value that is not an AMI available in the Region is never stored"
            }
            Rule::PresignedUrls => {
                "S3 API reference, Authenticating Requests: Using Query Parameters (sigv4-query-string-auth.html): X-Amz-Expires is 1 to 604800 seconds (7 days); a request after X-Amz-Date + X-Amz-Expires answers 403 AccessDenied (Request has expired)"
            }
            Rule::BlockChecksums => {
                "EBS user guide, Use EBS direct APIs checksums to validate snapshot data (ebsapis-using-checksums.html): EBS checks each PutSnapshotBlock's SHA-256 against the data and the request fails if they differ; CompleteSnapshot's linear aggregate is over the written blocks' checksums in block-index order"
            }
            Rule::StartedSnapshotsPending => {
                "EBS user guide, Write snapshots with EBS direct APIs (writesnapshots.html): StartSnapshot makes a snapshot in the pending state, and only CompleteSnapshot seals it (completed); moto shows it completed at once"
            }
            Rule::SnapshotBlockRate => {
                "EBS user guide, Quotas for Amazon EBS (ebs-resource-quotas.html): PutSnapshotBlock requests per snapshot, 1,000 per second; beyond it EBS answers RequestThrottledException (EBS direct APIs reference, Errors: reason RESOURCE_LEVEL_THROTTLE)"
            }
            Rule::DeregistrationProtection => {
                "EC2 API reference, EnableImageDeregistrationProtection and DisableImageDeregistrationProtection: while protection is enabled the AMI can't be deregistered; with WithCooldown it stays protected for 24 hours after protection is disabled"
            }
            Rule::PublicAmiQuota => {
                "EC2 user guide, AMI quotas (ami-quotas.html): public AMIs per Region, 5 by default, adjustable (Service Quotas code L-0E3CBAB9); making one more AMI public answers ResourceLimitExceeded (You have reached your quota of N for the number of public images allowed in this Region)"
            }
            Rule::AmiSharingQuota => {
                "EC2 user guide, AMI quotas (ami-quotas.html): AMI sharing, the entities (organizations, OUs and accounts; not the accounts in them) one AMI can be shared with in a Region, 1,000 by default, adjustable (Service Quotas code L-70015FFA). The page names no error: the proxy answers as for the public AMI quota, ResourceLimitExceeded"
            }
            Rule::SnapshotPermissionBatch => {
                "EC2 API reference, ModifySnapshotAttribute (API_ModifySnapshotAttribute.html): up to 500 modifications to a snapshot in a single operation, and accounts are added or removed, not both, in one operation. The page names no error: the proxy answers InvalidParameterValue and InvalidParameterCombination"
            }
            Rule::DisabledAmis => {
                "EC2 API reference, DisableImage (API_DisableImage.html), and EC2 user guide, Disable an AMI (disable-an-ami.html): a disabled AMI loses every launch permission, can't be shared, and does not appear in DescribeImages unless IncludeDisabled is set. The pages name no error for sharing one: the proxy answers OperationNotPermitted"
            }
            Rule::SnapshotVolumeBounds => {
                "EBS API reference, StartSnapshot (API_StartSnapshot.html: VolumeSize, the size of the volume in GiB) and PutSnapshotBlock (API_PutSnapshotBlock.html: BlockIndex, the logical offset of the data in the volume divided by 524,288): a block starts inside the volume or is not in it. The pages name no error for one past its end: the proxy answers ValidationException, the EBS direct APIs' error for input outside their constraints (reason INVALID_BLOCK among those listed)"
            }
            Rule::AmiNameDuplicate => {
                "EC2 API reference, Error codes (errors-overview.html): InvalidAMIName.Duplicate, the specified AMI name is already in use by another AMI (of the account, in the Region); RegisterImage and CopyImage name the new AMI. A repeated CopyImage client token is answered with its first AMI instead (rule client-tokens)"
            }
            Rule::InstanceHolds => {
                "EC2 API reference: DeleteSecurityGroup (a group associated with an instance or network interface → DependencyViolation), DeleteSubnet (terminate all running instances in the subnet first), DetachInternetGateway (the VPC must not contain running instances with public IPv4 addresses), DeleteVolume (the volume must be available, not attached); EC2 user guide, State change events for Amazon EC2 instances (monitoring-instance-state-changes.html): a terminated instance is shutting-down before it is terminated. Only DeleteSecurityGroup's page names its error: the proxy answers DependencyViolation for subnets and gateways as well, and VolumeInUse (moto's own answer for an attached volume) for volumes"
            }
            Rule::InstanceTypeFitsImage => {
                "EC2 user guide: Linux AMI virtualization types (virtualization_types.html: current generation instance types run HVM AMIs only), Boot modes (ami-boot.html: UEFI needs an instance type built on the Nitro System, Graviton types boot UEFI only), Enable enhanced networking with ENA (enhanced-networking-ena.html: current generation types require an AMI with ENA enabled), NitroTPM requirements (enable-nitrotpm-prerequisites.html: a supported instance type); DescribeInstanceTypes (API_InstanceTypeInfo.html) says which a type has. The messages for an architecture, virtualization, UEFI and ENA mismatch are EC2's as its users report them (InvalidParameterValue, InvalidParameterCombination); for legacy BIOS on a UEFI-only type and for NitroTPM no message is documented: the proxy answers InvalidParameterValue and InvalidParameterCombination in its own words. RegisterImage's defaults (i386, paravirtual, no ENA) apply to what a request leaves out"
            }
            Rule::TagLimits => {
                "EC2 user guide, Tag restrictions: keys up to 128 and values up to 256 characters (EBS direct APIs: 127 and 255)"
            }
        }
    }
}

/// AWS's default quota of public AMIs per region.
pub const DEFAULT_PUBLIC_AMI_QUOTA: usize = 5;

/// AWS's default quota of entities one AMI can be shared with.
pub const DEFAULT_AMI_SHARING_QUOTA: usize = 1_000;

/// The rules in force and their parameters.
#[derive(Debug, Clone)]
pub struct Rules {
    off: HashSet<Rule>,
    /// How long after a stop EC2 posts the buffered console (minutes on AWS).
    pub console_delay: Duration,
    /// How long a new snapshot answers ResourceNotFoundException to PutSnapshotBlock.
    pub snapshot_unseen_for: Duration,
    /// How long a new volume stays `creating` for AttachVolume.
    pub volume_creating_for: Duration,
    /// Operations whose first request is accepted and never answered.
    pub stall: Vec<&'static str>,
    /// Regions an organization policy denies.
    pub denied_regions: Vec<String>,
    /// VPCs per region the account may have (its "VPCs per Region" quota; 5 by default).
    pub vpc_quota: usize,
    /// Public AMIs per region the account may have (its "Public AMIs" quota).
    pub public_ami_quota: usize,
    /// Accounts, organizations and OUs one AMI can be shared with (its "AMI sharing" quota).
    pub ami_sharing_quota: usize,
    /// PutSnapshotBlock requests EBS accepts per snapshot in any second.
    pub blocks_per_second: usize,
    /// How long an AMI protected with a cooldown stays protected once protection is lifted
    /// (24 hours on AWS).
    pub protection_cooldown: Duration,
    /// How long an instance reads `shutting-down` after TerminateInstances (a minute or two
    /// on AWS), holding what it uses.
    pub shutting_down_for: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            off: HashSet::new(),
            console_delay: Duration::from_secs(3),
            snapshot_unseen_for: Duration::from_millis(1500),
            volume_creating_for: Duration::from_millis(800),
            // Every run asks STS who it is once, first: a stall there costs each run one attempt
            // timeout and changes no count of EC2 calls that other tests assert.
            stall: vec!["GetCallerIdentity"],
            // Listed by moto's DescribeRegions, used by no test manifest.
            denied_regions: vec!["me-central-1".to_string()],
            vpc_quota: 5,
            public_ami_quota: DEFAULT_PUBLIC_AMI_QUOTA,
            ami_sharing_quota: DEFAULT_AMI_SHARING_QUOTA,
            blocks_per_second: 1_000,
            protection_cooldown: Duration::from_secs(4),
            shutting_down_for: Duration::from_secs(2),
        }
    }
}

impl Rules {
    /// Every rule off: moto as it is (for benchmarks against other tools, which must not pay
    /// for amiplan's test world).
    #[allow(dead_code)]
    pub fn none() -> Rules {
        Rules { off: Rule::ALL.into_iter().collect(), ..Rules::default() }
    }

    #[allow(dead_code)]
    pub fn without(mut self, rule: Rule) -> Rules {
        self.off.insert(rule);
        self
    }

    pub fn on(&self, rule: Rule) -> bool {
        !self.off.contains(&rule)
    }
}

/// A client token's first use: the request's parameters and, once moto answered, the answer.
#[derive(Debug, Clone)]
pub struct TokenUse {
    pub parameters: String,
    pub answer: Option<(u16, String, bytes::Bytes)>,
}

/// The key of a client token: tokens are per account, region and API.
pub fn token_key(call: &Call) -> Option<String> {
    let token = call.param("ClientToken")?;
    Some(format!("{}/{}/{}/{token}", call.service, call.operation, call.region))
}

/// A request's parameters without its token, in a stable order.
pub fn token_parameters(call: &Call) -> String {
    let mut params: Vec<&(String, String)> = call.params.iter().filter(|(k, _)| k != "ClientToken").collect();
    params.sort();
    format!("{params:?}")
}

/// An instance's console as the player writes it and EC2 buffers it.
#[derive(Debug, Clone, Default)]
pub struct Console {
    pub live: String,
    /// What was buffered at the last power-off, and when.
    pub buffered: Option<(std::time::Instant, String)>,
}

/// The most recent 64 KB, as GetConsoleOutput keeps.
pub fn console_tail(text: &str) -> &str {
    const KEEP: usize = 64 * 1024;
    if text.len() <= KEEP {
        return text;
    }
    let mut start = text.len() - KEEP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Instance families on the Xen hypervisor, where `Latest` console output is not offered.
pub fn is_nitro(instance_type: &str) -> bool {
    const XEN: &[&str] = &[
        "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "d2", "x1", "x1e", "p2", "p3", "g3",
        "h1", "f1",
    ];
    let family = instance_type.split('.').next().unwrap_or_default();
    !XEN.contains(&family)
}

/// Why EnableImageDeprecation at `at` is refused for an AMI created at `created`, if it is.
pub fn deprecation_refusal(at: SystemTime, created: SystemTime, public: bool) -> Option<String> {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let now = SystemTime::now();
    if at < now {
        return Some("The deprecation time must be in the future".into());
    }
    if at > now + 10 * YEAR {
        return Some("The deprecation time cannot be more than 10 years in the future".into());
    }
    if public && at > created + 2 * YEAR {
        return Some("A public AMI cannot be deprecated more than 2 years after its creation date".into());
    }
    None
}

/// AWS's deprecation time of a public AMI nobody deprecated: two years after its creation.
pub fn default_public_deprecation(created: SystemTime) -> SystemTime {
    created + Duration::from_secs(2 * 365 * 24 * 3600)
}

pub fn rfc3339(time: SystemTime) -> String {
    use aws_smithy_types::date_time::Format;
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    // AWS keeps deprecation times to the minute.
    let secs = (secs + 59) / 60 * 60;
    aws_smithy_types::DateTime::from_secs(secs).fmt(Format::DateTime).unwrap()
}

/// The longest a SigV4 presigned URL may be valid.
pub const MAX_PRESIGNED_SECS: u64 = 604_800;

/// SigV4's `X-Amz-Date` (`20261124T061200Z`).
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 || !text.is_char_boundary(8) {
        return None;
    }
    let (d, t) = (&text[..8], &text[9..15]);
    parse_rfc3339(&format!("{}-{}-{}T{}:{}:{}Z", &d[..4], &d[4..6], &d[6..], &t[..2], &t[2..4], &t[4..]))
}

pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    use aws_smithy_types::date_time::Format;
    let time = aws_smithy_types::DateTime::from_str(text, Format::DateTime).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(time.secs().max(0) as u64))
}

/// Why a helper launched by `launch` (amiplan's RunInstances request) in `instance`'s subnet
/// cannot reach the internet, if it cannot: no public address, or no route out to an attached
/// internet gateway (or a NAT gateway).
#[allow(dead_code)] // the benchmarks include this file and play no helper
pub async fn no_way_out(ec2: &aws_sdk_ec2::Client, launch: &Call, instance: &Instance) -> Option<String> {
    use aws_sdk_ec2::types::Filter;
    let subnet_id = instance.subnet_id()?.to_string();
    let out = ec2.describe_subnets().subnet_ids(&subnet_id).send().await.ok()?;
    let subnet = out.subnets().first()?;
    let vpc = subnet.vpc_id()?.to_string();
    let asked = launch
        .params
        .iter()
        .find(|(k, _)| k.starts_with("NetworkInterface.") && k.ends_with(".AssociatePublicIpAddress"))
        .map(|(_, v)| v == "true");
    let public = asked.unwrap_or(subnet.map_public_ip_on_launch() == Some(true));
    if !public {
        return Some(format!(
            "no public IPv4 address ({subnet_id} maps none and the launch asked for none): the download cannot leave the VPC"
        ));
    }
    let associated = Filter::builder().name("association.subnet-id").values(&subnet_id).build();
    let mut tables = ec2.describe_route_tables().filters(associated).send().await.ok()?.route_tables().to_vec();
    if tables.is_empty() {
        let main = Filter::builder().name("association.main").values("true").build();
        let in_vpc = Filter::builder().name("vpc-id").values(&vpc).build();
        tables = ec2.describe_route_tables().filters(main).filters(in_vpc).send().await.ok()?.route_tables().to_vec();
    }
    let attached = Filter::builder().name("attachment.vpc-id").values(&vpc).build();
    let gateways = ec2.describe_internet_gateways().filters(attached).send().await.ok()?;
    let gateway_ids: Vec<&str> = gateways.internet_gateways().iter().filter_map(|g| g.internet_gateway_id()).collect();
    let out = tables.iter().flat_map(|t| t.routes()).any(|route| {
        route.destination_cidr_block() == Some("0.0.0.0/0")
            && (route.gateway_id().is_some_and(|g| gateway_ids.contains(&g)) || route.nat_gateway_id().is_some())
    });
    if !out {
        let seen: Vec<String> = tables
            .iter()
            .map(|t| {
                let routes: Vec<String> = t
                    .routes()
                    .iter()
                    .map(|r| format!("{:?}→{:?}", r.destination_cidr_block(), r.gateway_id()))
                    .collect();
                format!("{:?} [{}]", t.route_table_id(), routes.join(", "))
            })
            .collect();
        return Some(format!(
            "{subnet_id} has no 0.0.0.0/0 route to an internet gateway attached to {vpc} (route tables: {}; gateways: {gateway_ids:?})",
            seen.join("; ")
        ));
    }
    None
}

/// The size in GiB of the root volume `launch` gives an instance of an AMI whose root device is
/// `root_device` with a `snapshot_gib` snapshot.
#[allow(dead_code)] // the benchmarks include this file and play no helper
pub fn root_volume_gib(launch: &Call, root_device: &str, snapshot_gib: i32) -> i32 {
    let mapping = launch
        .params
        .iter()
        .find(|(k, v)| k.starts_with("BlockDeviceMapping.") && k.ends_with(".DeviceName") && v == root_device)
        .map(|(k, _)| k.trim_end_matches(".DeviceName").to_string());
    mapping
        .and_then(|prefix| launch.param(&format!("{prefix}.Ebs.VolumeSize")))
        .and_then(|size| size.parse().ok())
        .unwrap_or(snapshot_gib)
        .max(snapshot_gib)
}

/// Why a helper's job runs out of scratch space, if it does: it downloads (and, for a whole-disk bootstrap,
/// unpacks) on the helper's root volume, of which the system itself takes about 2 GiB.
#[allow(dead_code)] // the benchmarks include this file and play no helper
pub fn scratch_refusal(root_gib: i32, target_gib: i32, bootstrap: bool) -> Option<String> {
    const SYSTEM_GIB: i32 = 2;
    let needed = if bootstrap { 2 * target_gib } else { target_gib };
    let free = root_gib - SYSTEM_GIB;
    (free < needed).then(|| {
        format!("No space left on device: the job needs up to {needed} GiB of scratch, the {root_gib} GiB root volume has {free} GiB free")
    })
}
