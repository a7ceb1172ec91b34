//! What an instance type can launch. EC2 refuses RunInstances of an AMI whose architecture,
//! virtualization, boot mode, ENA or NitroTPM the instance type does not support; a boot test on
//! such a type fails only once the AMI is made, so the plan asks first.

use serde::{Deserialize, Serialize};

use super::attrs::{Architecture, BootMode, ImageAttrs, Virtualization};

/// Whether an instance type needs ENA, can use it, or has none (DescribeInstanceTypes,
/// `NetworkInfo.EnaSupport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ena {
    Required,
    Supported,
    Unsupported,
}

/// The traits of an instance type that decide which AMIs it launches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTypeTraits {
    /// Of the architectures amiplan builds for (AWS also lists i386 and Mac ones).
    pub architectures: Vec<Architecture>,
    pub virtualizations: Vec<Virtualization>,
    /// `legacy-bios` and `uefi`: `uefi-preferred` is an AMI's choice, which every type honours.
    pub boot_modes: Vec<BootMode>,
    pub ena: Ena,
    pub nitro_tpm: bool,
}

impl InstanceTypeTraits {
    /// Why EC2 refuses to launch an AMI of `attrs` on this type, if it does. Each is a refusal
    /// EC2's users meet (InvalidParameterValue or InvalidParameterCombination from RunInstances).
    pub fn refusal(&self, attrs: &ImageAttrs) -> Option<String> {
        let words = |names: Vec<&str>| if names.is_empty() { "none".to_string() } else { names.join(", ") };
        if !self.architectures.contains(&attrs.architecture) {
            let runs = words(self.architectures.iter().map(|a| a.as_str()).collect());
            return Some(format!("its architecture is {runs}, not {}", attrs.architecture.as_str()));
        }
        if !self.virtualizations.contains(&attrs.virtualization) {
            let runs = words(self.virtualizations.iter().map(|v| v.as_str()).collect());
            return Some(format!("it runs {runs} AMIs, not {}", attrs.virtualization.as_str()));
        }
        match attrs.boot_mode {
            Some(BootMode::Uefi) if !self.boot_modes.contains(&BootMode::Uefi) => {
                return Some("it cannot boot UEFI (only instance types built on the Nitro System can)".into());
            }
            Some(BootMode::LegacyBios) if !self.boot_modes.contains(&BootMode::LegacyBios) => {
                return Some("it boots UEFI only, not legacy BIOS".into());
            }
            _ => {}
        }
        if self.ena == Ena::Required && !attrs.ena {
            return Some("it requires ENA, which the AMI does not enable (image.ena)".into());
        }
        if attrs.tpm && !self.nitro_tpm {
            return Some("it has no NitroTPM, which the AMI asks for (image.tpm)".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn attrs() -> ImageAttrs {
        ImageAttrs::plain()
    }

    /// t3.small, as DescribeInstanceTypes describes it.
    fn nitro() -> InstanceTypeTraits {
        InstanceTypeTraits {
            architectures: vec![Architecture::X86_64],
            virtualizations: vec![Virtualization::Hvm],
            boot_modes: vec![BootMode::LegacyBios, BootMode::Uefi],
            ena: Ena::Required,
            nitro_tpm: true,
        }
    }

    /// m4.large (hvm) and c3.large (hvm and paravirtual), likewise.
    fn xen(virtualizations: Vec<Virtualization>) -> InstanceTypeTraits {
        InstanceTypeTraits {
            architectures: vec![Architecture::X86_64],
            virtualizations,
            boot_modes: vec![BootMode::LegacyBios],
            ena: Ena::Unsupported,
            nitro_tpm: false,
        }
    }

    #[test]
    fn each_trait_an_ami_needs_is_judged() {
        assert_eq!(nitro().refusal(&attrs()), None);
        let arm = ImageAttrs { architecture: Architecture::Arm64, boot_mode: Some(BootMode::Uefi), ..attrs() };
        assert_eq!(nitro().refusal(&arm).unwrap(), "its architecture is x86_64, not arm64");
        let no_ena = ImageAttrs { ena: false, ..attrs() };
        assert!(nitro().refusal(&no_ena).unwrap().contains("requires ENA"));
        let uefi = ImageAttrs { boot_mode: Some(BootMode::Uefi), tpm: true, ..attrs() };
        assert_eq!(nitro().refusal(&uefi), None);
        let m4 = xen(vec![Virtualization::Hvm]);
        assert!(m4.refusal(&uefi).unwrap().contains("cannot boot UEFI"));
        // An AMI that prefers UEFI boots legacy BIOS where UEFI is not there; ENA is optional.
        let preferred = ImageAttrs { boot_mode: Some(BootMode::UefiPreferred), ..attrs() };
        assert_eq!(m4.refusal(&preferred), None);
        let tpm_only = InstanceTypeTraits { boot_modes: vec![BootMode::LegacyBios, BootMode::Uefi], ..m4.clone() };
        assert!(tpm_only.refusal(&uefi).unwrap().contains("no NitroTPM"));
        let paravirtual = ImageAttrs { virtualization: Virtualization::Paravirtual, ena: false, ..attrs() };
        assert_eq!(nitro().refusal(&paravirtual).unwrap(), "it runs hvm AMIs, not paravirtual");
        assert_eq!(xen(vec![Virtualization::Hvm, Virtualization::Paravirtual]).refusal(&paravirtual), None);
        let graviton = InstanceTypeTraits {
            architectures: vec![Architecture::Arm64],
            boot_modes: vec![BootMode::Uefi],
            ..nitro()
        };
        let bios_arm = ImageAttrs { boot_mode: Some(BootMode::LegacyBios), ..arm };
        assert!(graviton.refusal(&bios_arm).unwrap().contains("UEFI only"));
    }
}
