//! Raw manifest types: what a YAML file says, mirrored as-is and rejected on unknown fields.
//! `model` turns these into validated desired state; schemars derives `schema/` from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Every region that gets the AMIs. The build region is always included.
    pub regions: Vec<String>,
    #[serde(default)]
    pub publish: Publish,
}

/// Where the disk image comes from.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A local raw disk image, relative to the manifest's directory.
    pub file: String,
    /// Expected SHA-256 of the file (hex). Checked before anything is uploaded.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Region where the snapshot is uploaded and the first image registered.
    pub region: String,
    #[serde(default)]
    pub method: BuildMethod,
    /// Root volume size in GiB; defaults to the image size rounded up.
    #[serde(default)]
    pub volume_size: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildMethod {
    /// Upload the raw image into a snapshot with the EBS direct APIs; no instance at all.
    #[default]
    Direct,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Virtualization {
    Hvm,
    Paravirtual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Standard,
    Gp2,
    Gp3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    LegacyBios,
    Uefi,
    UefiPreferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
pub enum Imds {
    /// Instances launched from the AMI require IMDSv2 tokens.
    #[serde(rename = "v2.0")]
    V2,
}

fn default_root_device() -> String {
    "/dev/xvda".to_string()
}

fn default_true() -> bool {
    true
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

impl Virtualization {
    pub fn as_str(self) -> &'static str {
        match self {
            Virtualization::Hvm => "hvm",
            Virtualization::Paravirtual => "paravirtual",
        }
    }
}

impl VolumeType {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Standard => "standard",
            VolumeType::Gp2 => "gp2",
            VolumeType::Gp3 => "gp3",
        }
    }
}

impl BootMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::LegacyBios => "legacy-bios",
            BootMode::Uefi => "uefi",
            BootMode::UefiPreferred => "uefi-preferred",
        }
    }
}

/// The JSON Schema of a manifest, as checked in at `schema/amiplan.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serializes");
    text.push('\n');
    text
}
