//! Rule `instance-holds`: an instance holds its security groups, its subnet, its VPC's internet
//! gateway (while it has a public address) and the volumes attached to it until it has
//! terminated, and terminating takes a while, during which it reads `shutting-down`. moto lets
//! each go while the instance runs and terminates at once, so a tool that deletes a helper's
//! network as soon as TerminateInstances answers works against moto and fails on AWS.

use bytes::Bytes;

use super::enforce::ask_moto;
use super::rules::Rule;
use super::wire::set_items;
use super::{Call, Shared, State, between};

/// One instance of a DescribeInstances answer, as its XML.
struct DescribedInstance<'a> {
    xml: &'a str,
}

impl DescribedInstance<'_> {
    fn id(&self) -> String {
        between(self.xml, "<instanceId>", "</instanceId>").unwrap_or_default()
    }

    fn state(&self) -> String {
        let at = self.xml.find("<instanceState>").unwrap_or(0);
        between(&self.xml[at..], "<name>", "</name>").unwrap_or_default()
    }

    /// Whether it still holds what it uses: it has not terminated, or its termination through
    /// the proxy is still under way.
    fn holds(&self, state: &State) -> bool {
        self.state() != "terminated" || shutting_down(state, &self.id())
    }
}

/// Whether `instance` was terminated through the proxy too recently to have finished.
fn shutting_down(state: &State, instance: &str) -> bool {
    state.terminated.get(instance).is_some_and(|at| at.elapsed() < state.faults.rules.shutting_down_for)
}

/// The refusal of a delete (or detach) of something an instance still holds: the rule, AWS's
/// error code and its message.
pub(super) async fn held_by_an_instance(
    shared: &Shared,
    call: &Call,
    parts: &hyper::http::request::Parts,
) -> Option<(Rule, &'static str, String)> {
    let (needle, message) = match call.operation.as_str() {
        "DeleteSecurityGroup" => {
            let group = call.param("GroupId")?;
            (format!("<groupId>{group}</groupId>"), format!("resource {group} has a dependent object"))
        }
        "DeleteSubnet" => {
            let subnet = call.param("SubnetId")?;
            (
                format!("<subnetId>{subnet}</subnetId>"),
                format!("The subnet '{subnet}' has dependencies and cannot be deleted."),
            )
        }
        "DetachInternetGateway" => {
            let vpc = call.param("VpcId")?;
            (
                format!("<vpcId>{vpc}</vpcId>"),
                format!(
                    "Network {vpc} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
                ),
            )
        }
        "DeleteVolume" => {
            let volume = call.param("VolumeId")?;
            let state = shared.state.lock().unwrap();
            let instance = state.attachments.get(volume).filter(|i| shutting_down(&state, i))?;
            let message = format!("Volume {volume} is currently attached to {instance}");
            return Some((Rule::InstanceHolds, "VolumeInUse", message));
        }
        _ => return None,
    };
    let answer = ask_moto(shared, parts, "Action=DescribeInstances&Version=2016-11-15".into()).await?;
    let state = shared.state.lock().unwrap();
    let public_only = call.operation == "DetachInternetGateway";
    let held = set_items(&answer, "instancesSet")
        .into_iter()
        .map(|range| DescribedInstance { xml: &answer[range] })
        .any(|instance| {
            instance.xml.contains(&needle)
                && (!public_only || instance.xml.contains("<ipAddress>"))
                && instance.holds(&state)
        });
    held.then_some((Rule::InstanceHolds, "DependencyViolation", message))
}

/// What the proxy learns from a successful call for this rule: which instance each volume was
/// attached to.
pub(super) fn remember(shared: &Shared, call: &Call) {
    if call.operation != "AttachVolume" {
        return;
    }
    if let (Some(volume), Some(instance)) = (call.param("VolumeId"), call.param("InstanceId")) {
        shared.state.lock().unwrap().attachments.insert(volume.to_string(), instance.to_string());
    }
}

/// DescribeInstances answers show an instance terminated through the proxy as `shutting-down`
/// until its termination has had time to finish.
pub(super) fn show_shutting_down(shared: &Shared, call: &Call, bytes: Bytes) -> Bytes {
    let mut state = shared.state.lock().unwrap();
    if call.operation != "DescribeInstances" || !state.faults.rules.on(Rule::InstanceHolds) {
        return bytes;
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut rewritten = text.clone();
    // Back to front, so that each rewrite leaves the ranges before it where they were.
    for range in set_items(&text, "instancesSet").into_iter().rev() {
        let instance = DescribedInstance { xml: &text[range.clone()] };
        if instance.state() == "terminated" && shutting_down(&state, &instance.id()) {
            let Some(start) = instance.xml.find("<instanceState>") else { continue };
            let Some(length) = instance.xml[start..].find("</instanceState>") else { continue };
            let shown = "<instanceState><code>32</code><name>shutting-down</name>";
            rewritten.replace_range(range.start + start..range.start + start + length, shown);
        }
    }
    if rewritten == text {
        return bytes;
    }
    *state.enforced.entry(Rule::InstanceHolds.name()).or_default() += 1;
    Bytes::from(rewritten)
}
