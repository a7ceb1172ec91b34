//! Raw manifest types: what a YAML file says, mirrored as-is and rejected on unknown fields.
//! `model` turns these into validated desired state; schemars derives `schema/` from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::cloud::attrs::{Architecture, BootMode, Imds, Virtualization, VolumeType};

/// One stack: an image source, image attributes, a variant matrix and target regions.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "amiplan manifest")]
pub struct Manifest {
    /// Stack name. Every resource amiplan creates is tagged `amiplan:stack=<stack>`.
    pub stack: String,
    pub source: Source,
    pub build: Build,
    pub image: Image,
    /// Lists per axis; their cartesian product gives one AMI per region each.
    #[serde(default)]
    pub variants: Variants,
    /// Every region that gets the AMIs. The build region is included unless
    /// `build.keep_image` is false.
    pub regions: Vec<String>,
    #[serde(default)]
    pub publish: Publish,
    /// Deprecate every AMI and copy: `365d` after its creation, or on a date (`2027-06-01`).
    #[serde(default)]
    pub deprecate_after: Option<String>,
    /// Protect every AMI and copy from deregistration (by anyone: amiplan lifts it before it
    /// deregisters one, and the plan says so). `with-cooldown`: once lifted, AWS still refuses
    /// deregistration for 24 hours.
    #[serde(default)]
    pub deregistration_protection: Option<crate::cloud::Protection>,
    /// Boot-test every new AMI before it is copied or published.
    #[serde(default)]
    pub test: Option<Test>,
    /// This build's version (e.g. `41-1.4`), for `{version}` in image.name: each version is a
    /// new set of AMIs, and earlier ones are kept or retired by `retention`.
    #[serde(default)]
    pub version: Option<String>,
    /// How many versions of the stack to keep, the current one included; older AMIs and their
    /// snapshots are deregistered once the new version is available and published.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Where users find the AMIs: channels, and Parameter Store parameters naming each AMI in
    /// every region.
    #[serde(default)]
    pub catalog: Option<Catalog>,
}

/// The stack's catalogue: which version each channel points at, and the parameters naming the
/// AMIs of versions and channels. It lives in Parameter Store, in every region of the stack.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Channel name → the version it points at, e.g. `stable: "40-1.14"`. A channel moves to a
    /// version only once its AMIs are available, tested and published in every region.
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    /// Parameter Store settings (default prefix `/amiplan/<stack>`).
    #[serde(default)]
    pub ssm: Option<Ssm>,
    /// Also publish the catalogue files (the tree `amiplan catalog` writes) to an S3 bucket,
    /// after the stack's AMIs and parameters, in every apply.
    #[serde(default)]
    pub s3: Option<S3>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    /// An existing bucket; amiplan never creates or changes buckets.
    pub bucket: String,
    /// Key prefix, e.g. `images/fedora/` (default: the bucket's root).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The bucket's region (default: the build region).
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssm {
    /// Path every parameter name starts with, e.g. `/acme/fedora-cloud`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Name templates under the prefix, each with `{version}` (one parameter per version) or
    /// `{channel}` (one per channel), and the image name placeholders that tell variants apart.
    /// Default: `{version}/{arch}/…/image_id` and `{channel}/{arch}/…/image_id`, with one level
    /// per variant axis that has more than one value.
    #[serde(default)]
    pub parameters: Option<Vec<String>>,
    /// Take over parameters of these names that amiplan does not own (otherwise they are left
    /// alone and the plan says so).
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep: u32,
}

/// An instance launched from the new AMI runs `script`; copies and publication wait for it to
/// pass, and a failure keeps the AMI private.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Test {
    /// Local script (relative to the manifest) run as the instance's user-data; exit 0 passes.
    pub script: String,
    /// Default: t3.small (x86_64) or t4g.small (arm64).
    #[serde(default)]
    pub instance_type: Option<String>,
    /// e.g. `20m` (default 30m).
    #[serde(default)]
    pub timeout: Option<String>,
    /// `build` (default): test the AMI in the build region; `all`: every copy too.
    #[serde(default)]
    pub regions: TestRegions,
    /// Subnet for the test instances; default: the default VPC's default subnet.
    #[serde(default)]
    pub subnet: Option<String>,
    /// A directory in the instance: what the test script leaves there is collected after it
    /// ends, pass or fail, and stored locally (through the console, up to 24 KiB compressed).
    #[serde(default)]
    pub reports: Option<String>,
    /// Collect `reports` through this existing bucket instead of the console, for reports of any
    /// size: the instance uploads them to a presigned URL (no instance role), to
    /// `<prefix>amiplan-reports/<stack>/<ami>.tar.gz`, and amiplan removes them once stored
    /// locally. The test instance then needs a way out: it gets a public address.
    #[serde(default)]
    pub reports_bucket: Option<S3>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestRegions {
    #[default]
    Build,
    All,
}

/// Where the disk image comes from: exactly one of `file`, `url` and `bootstrap`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A local raw disk image, relative to the manifest's directory (`build.method: direct`).
    #[serde(default)]
    pub file: Option<String>,
    /// An http(s) URL of a disk image the helper instance downloads (`build.method: helper`).
    #[serde(default)]
    pub url: Option<String>,
    /// Format of `url`; by default taken from its suffix (.raw/.img, .raw.xz, .raw.zst, .qcow2).
    #[serde(default)]
    pub format: Option<ImageFormat>,
    /// Expected SHA-256 (hex) of `file` or of the downloaded `url` (required for URLs). Checked
    /// before a single byte is written.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Build a system from a root file system tarball on the helper (`build.method: helper`).
    #[serde(default)]
    pub bootstrap: Option<Bootstrap>,
    /// Find the newest upstream file at plan time instead of naming it: it becomes `url` (or
    /// `bootstrap.tarball`) and its digest `sha256` (or `bootstrap.sha256`).
    #[serde(default)]
    pub upstream: Option<Upstream>,
}

/// Where the upstream publishes its newest file and its digest, read at every plan.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// http(s) URL of a list naming the newest file, one `path [size]` per line, relative to
    /// the list's directory (Gentoo's `latest-stage3-amd64-openrc.txt`). Without it, the file is
    /// the one entry of `checksums` that `file` matches.
    #[serde(default)]
    pub index: Option<String>,
    /// http(s) URL of a checksum file listing the file's SHA-256, in `sha256sum` or BSD form
    /// (Fedora's `CHECKSUM`). `{url}` stands for the file's URL (Gentoo: `"{url}.sha256"`).
    pub checksums: String,
    /// The file's name with `{version}` where its version is, e.g.
    /// `Fedora-Cloud-Base-Generic-{version}.x86_64.raw.xz`. Without a top-level `version`, the
    /// stack's version is the part `{version}` matched.
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ImageFormat {
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "raw.xz")]
    RawXz,
    #[serde(rename = "raw.zst")]
    RawZst,
    #[serde(rename = "qcow2")]
    Qcow2,
}

/// A stage3 (or any root file system) tarball, unpacked and provisioned on the helper, then
/// written to the target volume as one ext4 file system covering the whole volume.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// http(s) URL of the tarball (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2); found by
    /// `source.upstream` when that is given.
    #[serde(default)]
    pub tarball: Option<String>,
    /// Expected SHA-256 (hex) of the tarball; found by `source.upstream` when that is given.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Local script (relative to the manifest) run on the helper with the unpacked root in
    /// `$AMIPLAN_ROOT`, before anything is written: hostname, networking, kernel, fstab.
    pub script: String,
    /// Optional local script run after the file system is written, with the target device in
    /// `$AMIPLAN_DEVICE` and the file system mounted at `$AMIPLAN_ROOT` (e.g. to install a
    /// boot loader).
    #[serde(default)]
    pub finalize: Option<String>,
    /// Extra local files copied into the root before the script runs: target path → file.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Label of the ext4 file system.
    #[serde(default = "default_label")]
    pub label: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Region where the snapshot is uploaded and the first image registered.
    pub region: String,
    #[serde(default)]
    pub method: BuildMethod,
    /// Root volume size in GiB, at least the image's size; defaults to the image size rounded
    /// up (required for helper builds, which cannot see the image before they run). At most
    /// 1,024 with a `standard` volume type, 16,384 otherwise.
    #[serde(default)]
    pub volume_size: Option<u32>,
    /// Where the helper instance runs (`method: helper`): `create` (default) makes a temporary
    /// VPC, subnet, internet gateway and route table, removed after the build; `{ subnet: … }`
    /// uses an existing subnet, never modified or deleted.
    #[serde(default)]
    pub network: Option<Network>,
    /// The helper instance (`method: helper`).
    #[serde(default)]
    pub helper: Option<Helper>,
    /// Keep the build region's AMIs when the build region is not one of `regions` (default:
    /// true). `false`: there they are only the copies' source, made (with their snapshots)
    /// when a copy must be made and removed once every copy exists; never shared, deprecated
    /// or catalogued there.
    #[serde(default = "default_true")]
    pub keep_image: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Network {
    /// `create`: a temporary network for the build.
    Create(NetworkCreate),
    Existing(ExistingNetwork),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkCreate {
    Create,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistingNetwork {
    /// An existing subnet with a route to the internet (or to the image's host).
    pub subnet: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Helper {
    /// The helper's own AMI: an ID, or `{ owner, name }` resolved to the newest match at plan time.
    pub ami: HelperAmi,
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// Type of the target volume the image is written to.
    #[serde(default)]
    pub volume_type: Option<VolumeType>,
    /// Run the helper as a one-time spot instance.
    #[serde(default)]
    pub spot: bool,
    /// How long the helper's job may take, e.g. `45m`, `2h` (default 60m).
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HelperAmi {
    Id(String),
    Filter(AmiFilter),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmiFilter {
    /// Account ID, `self` or `amazon`.
    pub owner: String,
    /// Name pattern (`*` and `?` wildcards); the newest match wins.
    pub name: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildMethod {
    /// Upload the image (raw, .raw.xz, .raw.zst, .raw.gz or qcow2) into a snapshot with the EBS direct APIs; no instance at all.
    #[default]
    Direct,
    /// A helper instance writes the image to a volume, which is snapshotted.
    Helper,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// AMI name template. Placeholders: {stack} {arch} {virtualization} {volume_type}
    /// {encryption} {boot_mode}. Names are unique per region, so every variant needs its own.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub architecture: Architecture,
    /// Default virtualization; `variants.virtualization` lists several instead.
    #[serde(default)]
    pub virtualization: Option<Virtualization>,
    #[serde(default = "default_root_device")]
    pub root_device: String,
    #[serde(default)]
    pub boot_mode: Option<BootMode>,
    #[serde(default = "default_true")]
    pub ena: bool,
    #[serde(default)]
    pub imds: Option<Imds>,
    #[serde(default)]
    pub tpm: bool,
    /// Kernel image for paravirtual variants (AKI id).
    #[serde(default)]
    pub kernel_id: Option<String>,
    #[serde(default)]
    pub ramdisk_id: Option<String>,
    /// KMS key per region for encrypted variants; regions not listed use the default EBS key.
    #[serde(default)]
    pub kms_keys: BTreeMap<String, String>,
    /// Tags put on every AMI and snapshot (keys starting with `amiplan:` or `aws:` are reserved).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    #[serde(default)]
    pub volume_type: Option<Vec<VolumeType>>,
    #[serde(default)]
    pub encrypted: Option<Vec<bool>>,
    #[serde(default)]
    pub virtualization: Option<Vec<Virtualization>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Make every AMI in every region launchable by everyone. Off unless said.
    #[serde(default)]
    pub public: bool,
    /// Account IDs (12 digits) that may launch the AMIs and create volumes from their snapshots.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Organization ARNs (arn:aws:organizations::<account>:organization/o-…) that may launch them.
    #[serde(default)]
    pub organizations: Vec<String>,
    /// Organizational unit ARNs (arn:aws:organizations::<account>:ou/o-…/ou-…).
    #[serde(default)]
    pub organizational_units: Vec<String>,
}

fn default_root_device() -> String {
    "/dev/xvda".to_string()
}

fn default_label() -> String {
    "root".to_string()
}

fn default_instance_type() -> String {
    "t3.small".to_string()
}

fn default_true() -> bool {
    true
}

/// The JSON Schema of a manifest, as checked in at `schema/amiplan.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}
