//! AWS's state words, read into [`State`]: the only place that knows them.

use aws_sdk_ec2::types::InstanceTypeInfo;

use crate::cloud::attrs::{Architecture, BootMode, Virtualization};
use crate::cloud::{Ena, InstanceTypeTraits, LiveProtection, Protection, PublicAccess, State};

/// An AMI's state (`pending`, `available`, `invalid`, `deregistered`, `failed`, `error`,
/// `disabled`, …).
pub(super) fn image(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "available" => State::Ready,
        "disabled" => State::Disabled,
        "deregistered" => State::Deleted,
        "invalid" | "failed" | "error" => State::Failed(word.to_string()),
        other => State::Other(other.to_string()),
    }
}

/// An AMI's `DeregistrationProtection`: `disabled`, `enabled-with-cooldown`,
/// `enabled-without-cooldown`, and while a cooldown runs after protection was lifted, `disabled`
/// followed by when it ends (taken as a cooldown whatever follows, with the time where it
/// parses). Absent on AMIs that never had protection.
pub(super) fn protection(word: Option<&str>) -> LiveProtection {
    match word.map(str::trim) {
        None | Some("" | "disabled") => LiveProtection::Off,
        Some("enabled-with-cooldown") => LiveProtection::On(Protection::WithCooldown),
        Some(word) if word.starts_with("enabled") => LiveProtection::On(Protection::WithoutCooldown),
        Some(word) => {
            let rest = word.strip_prefix("disabled").unwrap_or(word);
            let time = rest.trim_start_matches(|c: char| !c.is_ascii_digit());
            let until = time.parse::<jiff::Timestamp>().ok().map(|_| time.to_string());
            LiveProtection::CoolingDown { until }
        }
    }
}

/// A snapshot's state (`pending`, `completed`, `error`, `recoverable`, `recovering`).
pub(super) fn snapshot(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "completed" => State::Ready,
        "error" => State::Failed(word.to_string()),
        other => State::Other(other.to_string()),
    }
}

/// A volume's state (`creating`, `available`, `in-use`, `deleting`, `deleted`, `error`).
pub(super) fn volume(word: &str) -> State {
    match word {
        "creating" => State::Pending,
        "available" | "in-use" => State::Ready,
        "deleting" => State::Deleting,
        "deleted" => State::Deleted,
        "error" => State::Failed(word.to_string()),
        other => State::Other(other.to_string()),
    }
}

/// An instance's state name.
pub(super) fn instance(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "running" => State::Running,
        "stopping" => State::Stopping,
        "stopped" => State::Stopped,
        "shutting-down" => State::ShuttingDown,
        "terminated" => State::Terminated,
        other => State::Other(other.to_string()),
    }
}

/// A VPC's or subnet's state (`pending`, `available`).
pub(super) fn network(word: &str) -> State {
    match word {
        "pending" => State::Pending,
        "available" => State::Ready,
        other => State::Other(other.to_string()),
    }
}

/// An account's image or snapshot block public access state.
pub(super) fn public_access(word: &str) -> PublicAccess {
    match word {
        "unblocked" => PublicAccess::Unblocked,
        "block-new-sharing" => PublicAccess::BlockNewSharing,
        "block-all-sharing" => PublicAccess::BlockAllSharing,
        other => PublicAccess::Other(other.to_string()),
    }
}

/// What DescribeInstanceTypes says an instance type launches. Words amiplan has no use for
/// (i386, Mac architectures) are left out; a missing ENA word is taken as none.
pub(super) fn instance_type_traits(info: &InstanceTypeInfo) -> InstanceTypeTraits {
    let processor = info.processor_info();
    let architectures = processor.map(|p| p.supported_architectures()).unwrap_or_default();
    let ena = info.network_info().and_then(|n| n.ena_support()).map(|e| e.as_str());
    InstanceTypeTraits {
        architectures: architectures
            .iter()
            .filter_map(|a| match a.as_str() {
                "x86_64" => Some(Architecture::X86_64),
                "arm64" => Some(Architecture::Arm64),
                _ => None,
            })
            .collect(),
        virtualizations: info
            .supported_virtualization_types()
            .iter()
            .filter_map(|v| match v.as_str() {
                "hvm" => Some(Virtualization::Hvm),
                "paravirtual" => Some(Virtualization::Paravirtual),
                _ => None,
            })
            .collect(),
        boot_modes: info
            .supported_boot_modes()
            .iter()
            .filter_map(|b| match b.as_str() {
                "legacy-bios" => Some(BootMode::LegacyBios),
                "uefi" => Some(BootMode::Uefi),
                _ => None,
            })
            .collect(),
        ena: match ena {
            Some("required") => Ena::Required,
            Some("supported") => Ena::Supported,
            _ => Ena::Unsupported,
        },
        nitro_tpm: info.nitro_tpm_support().is_some_and(|t| t.as_str() == "supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_words_read_as_states() {
        assert_eq!(image("available"), State::Ready);
        assert_eq!(image("failed"), State::Failed("failed".into()));
        assert_eq!(image("disabled"), State::Disabled);
        assert_eq!(snapshot("completed"), State::Ready);
        assert_eq!(snapshot("recovering"), State::Other("recovering".into()));
        assert_eq!(volume("in-use"), State::Ready);
        assert_eq!(instance("shutting-down"), State::ShuttingDown);
        assert_eq!(network("pending"), State::Pending);
    }

    #[test]
    fn deregistration_protection_reads_every_word_and_takes_an_unknown_disabled_form_as_a_cooldown() {
        assert_eq!(protection(None), LiveProtection::Off);
        assert_eq!(protection(Some("disabled")), LiveProtection::Off);
        assert_eq!(protection(Some("enabled-with-cooldown")), LiveProtection::On(Protection::WithCooldown));
        assert_eq!(protection(Some("enabled-without-cooldown")), LiveProtection::On(Protection::WithoutCooldown));
        let until = Some("2026-12-08T03:00:00Z".to_string());
        assert_eq!(protection(Some("disabled-until 2026-12-08T03:00:00Z")), LiveProtection::CoolingDown { until });
        let until = Some("2026-12-08T03:00:00.000Z".to_string());
        assert_eq!(protection(Some("disabled until 2026-12-08T03:00:00.000Z")), LiveProtection::CoolingDown { until });
        assert_eq!(protection(Some("disabled-pending")), LiveProtection::CoolingDown { until: None });
    }
}
