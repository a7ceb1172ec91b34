//! Rule `instance-type-fits-image`: EC2 launches an AMI only on an instance type that has its
//! architecture, its virtualization, its boot mode, ENA where the type requires it and NitroTPM
//! where the AMI asks for it. moto launches anything (its RegisterImage keeps none of these
//! attributes), so a boot test on the wrong type passes against moto and is refused on AWS.
//!
//! The proxy remembers what each RegisterImage it forwarded asked for, and each CopyImage's AMI
//! has its source's; AMIs it did not see registered (a helper's base AMI) are not judged.

use super::enforce::ask_moto;
use super::rules::Rule;
use super::{Call, Shared, between};

/// What RegisterImage fixed about an AMI, in EC2's words, with EC2's defaults where the request
/// left a parameter out (RegisterImage reference: `i386` and `paravirtual` for an EBS-backed
/// AMI, no boot mode, no ENA, no TPM).
#[derive(Debug, Clone)]
pub(super) struct Registered {
    architecture: String,
    virtualization: String,
    boot_mode: Option<String>,
    ena: bool,
    tpm: bool,
}

/// Keeps what a successful RegisterImage or CopyImage made (from its request and answer).
pub(super) fn remember(shared: &Shared, call: &Call, answer: &[u8]) {
    if !matches!(call.operation.as_str(), "RegisterImage" | "CopyImage") {
        return;
    }
    let Some(id) = between(&String::from_utf8_lossy(answer), "<imageId>", "</imageId>") else { return };
    let mut state = shared.state.lock().unwrap();
    let registered = match call.operation.as_str() {
        "RegisterImage" => Registered {
            architecture: call.param("Architecture").unwrap_or("i386").to_string(),
            virtualization: call.param("VirtualizationType").unwrap_or("paravirtual").to_string(),
            boot_mode: call.param("BootMode").map(str::to_string),
            ena: call.param("EnaSupport") == Some("true"),
            tpm: call.param("TpmSupport") == Some("v2.0"),
        },
        "CopyImage" => {
            let Some(source) = call.param("SourceImageId").and_then(|s| state.registered.get(s)) else { return };
            source.clone()
        }
        _ => return,
    };
    state.registered.insert(id, registered);
}

/// The items of one list of a DescribeInstanceTypes answer (`<supportedBootModes>`, …).
fn listed(xml: &str, list: &str) -> Vec<String> {
    let Some(inner) = between(xml, &format!("<{list}>"), &format!("</{list}>")) else { return vec![] };
    inner
        .split("<item>")
        .filter_map(|item| item.split("</item>").next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The refusal of a RunInstances whose instance type cannot launch its AMI: the rule, AWS's
/// error code and its message (as EC2 answers them; the last two the pages do not quote).
pub(super) async fn type_refuses_image(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
) -> Option<(Rule, &'static str, String)> {
    if call.operation != "RunInstances" {
        return None;
    }
    let image = call.param("ImageId")?;
    let ami = shared.state.lock().unwrap().registered.get(image).cloned()?;
    let instance_type = call.param("InstanceType").unwrap_or("m1.small");
    let question = format!(
        "Action=DescribeInstanceTypes&Version=2016-11-15&Filter.1.Name=instance-type&Filter.1.Value.1={instance_type}"
    );
    let described = ask_moto(shared, parts, question).await?;
    if !described.contains("<instanceType>") {
        return None;
    }
    let refusal = |code, message: String| Some((Rule::InstanceTypeFitsImage, code, message));
    let architectures = listed(&described, "supportedArchitectures");
    if !architectures.contains(&ami.architecture) {
        let theirs = architectures.first().cloned().unwrap_or_default();
        return refusal(
            "InvalidParameterValue",
            format!(
                "The architecture '{theirs}' of the specified instance type does not match the architecture '{}' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again.",
                ami.architecture
            ),
        );
    }
    if !listed(&described, "supportedVirtualizationTypes").contains(&ami.virtualization) {
        let message = match ami.virtualization.as_str() {
            "paravirtual" => format!(
                "Virtualization type 'hvm' is required for instances of type '{instance_type}'. Ensure that you are using an AMI with virtualization type 'hvm'."
            ),
            other => format!(
                "Non-Windows instances with a virtualization type of '{other}' are currently not supported for this instance type."
            ),
        };
        return refusal("InvalidParameterCombination", message);
    }
    let boot_modes = listed(&described, "supportedBootModes");
    match ami.boot_mode.as_deref() {
        Some("uefi") if !boot_modes.iter().any(|m| m == "uefi") => {
            return refusal(
                "InvalidParameterValue",
                format!(
                    "The {instance_type} instance type does not support an AMI with a boot mode of UEFI. Only instance types built on the Nitro System support UEFI. Specify an instance type that supports UEFI, and try again."
                ),
            );
        }
        Some("legacy-bios") if !boot_modes.iter().any(|m| m == "legacy-bios") => {
            return refusal(
                "InvalidParameterValue",
                format!("The {instance_type} instance type does not support an AMI with a boot mode of legacy-bios."),
            );
        }
        _ => {}
    }
    if !ami.ena && described.contains("<enaSupport>required</enaSupport>") {
        return refusal(
            "InvalidParameterCombination",
            format!(
                "Enhanced networking with the Elastic Network Adapter (ENA) is required for the '{instance_type}' instance type. Ensure that you are using an AMI that is enabled for ENA."
            ),
        );
    }
    if ami.tpm && !described.contains("<nitroTpmSupport>supported</nitroTpmSupport>") {
        return refusal(
            "InvalidParameterCombination",
            format!("The {instance_type} instance type does not support NitroTPM, which the AMI {image} requires."),
        );
    }
    None
}
