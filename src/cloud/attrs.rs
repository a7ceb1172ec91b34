//! The attributes of an AMI that AWS fixes at registration: the vocabulary manifests, plans and
//! the cloud share.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything about an AMI that AWS cannot change after registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAttrs {
    pub architecture: Architecture,
    pub virtualization: Virtualization,
    pub volume_type: VolumeType,
    pub encrypted: bool,
    pub boot_mode: Option<BootMode>,
    pub ena: bool,
    pub imds: Option<Imds>,
    pub tpm: bool,
    pub root_device: String,
    pub kernel_id: Option<String>,
    pub ramdisk_id: Option<String>,
}

#[cfg(test)]
impl ImageAttrs {
    /// An x86_64 HVM gp3 AMI with ENA and nothing else asked for: what unit tests start from.
    pub fn plain() -> ImageAttrs {
        ImageAttrs {
            architecture: Architecture::X86_64,
            virtualization: Virtualization::Hvm,
            volume_type: VolumeType::Gp3,
            encrypted: false,
            boot_mode: None,
            ena: true,
            imds: None,
            tpm: false,
            root_device: "/dev/xvda".into(),
            kernel_id: None,
            ramdisk_id: None,
        }
    }
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

/// Deregistration protection of the stack's AMIs (EC2 user guide, "Protect an AMI from
/// deregistration"): while it is on, AWS refuses to deregister the AMI. With a cooldown, AWS
/// still refuses for 24 hours after protection is lifted; without, not at all.
// No doc comment per variant: the schema then lists the words, and a wrong one is reported as
// "not one of" them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    WithCooldown,
    WithoutCooldown,
}

impl Protection {
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::WithCooldown => "with-cooldown",
            Protection::WithoutCooldown => "without-cooldown",
        }
    }
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

    /// The largest root volume of this type an AMI may name, in GiB (EC2 API reference,
    /// EbsBlockDevice, VolumeSize: gp2 and gp3 1-16,384, standard 1-1,024). CreateVolume now
    /// takes larger gp3 volumes, but the block device mappings of AMIs and launch templates
    /// still document 16,384, so that is what amiplan allows.
    pub fn max_size_gib(self) -> u32 {
        match self {
            VolumeType::Standard => 1024,
            VolumeType::Gp2 | VolumeType::Gp3 => 16_384,
        }
    }
}

/// The smallest EBS volume (whole GiB, at least 1) that holds `bytes`. The model checks
/// manifests with it and the source sizes volumes with it, so both round alike.
pub fn volume_gib_for(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1 << 30).max(1)).unwrap_or(u32::MAX)
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
