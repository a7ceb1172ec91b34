//! The first line of an error report, for failures a person fixes outside amiplan: what failed
//! and what to do. The cause chain follows it, once.

use crate::cloud::aws::iam_action;
use crate::cloud::{Cause, CloudError, ErrorClass};

/// What to tell a person about `error`, if amiplan knows better than the cause chain does, and
/// whether the cause chain still has something to add. `endpoint` is the endpoint the user
/// named, if any.
pub fn first_line(error: &anyhow::Error, endpoint: Option<&str>) -> Option<(String, bool)> {
    let cloud = error.chain().find_map(|e| e.downcast_ref::<CloudError>())?;
    let call = format!("{} in {}", cloud.operation, cloud.region);
    let answered = cloud.code.as_deref().map(|code| format!(", which AWS answered with {code}")).unwrap_or_default();
    if cloud.cause == Some(Cause::UnknownProfile) {
        // The message names the profile and the ones there are: all there is to say.
        let what = "pass --profile (or set AWS_PROFILE) to one of them, or make it with `aws configure --profile NAME`";
        return Some((format!("{}: {what}", cloud.message), false));
    }
    let line = match (cloud.cause, cloud.class) {
        (Some(Cause::NoCredentials), _) => "no AWS credentials found (amiplan looked in the environment, the shared config and credentials files, web identity, the ECS container and the EC2 instance metadata service): run `aws configure`, set AWS_PROFILE or pass --profile (`aws sso login` first for SSO), or pass --endpoint-url to use an emulator".to_string(),
        (Some(Cause::ExpiredCredentials), _) => format!("the AWS credentials have expired ({call}{answered}): refresh them (`aws sso login`, or new session credentials) and run again"),
        (Some(Cause::InvalidCredentials), _) => format!("AWS does not accept these credentials ({call}{answered}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile's keys"),
        (Some(Cause::Unreachable), _) => {
            let at = endpoint.map_or_else(|| format!("AWS's endpoint for {}", cloud.region), |url| url.to_string());
            format!("cannot reach {at} ({call}): check the network and any proxy, or that the emulator --endpoint-url names is running")
        }
        (None, ErrorClass::Denied) => format!(
            "AWS denied {} in {}{answered}: allow that action to these credentials in IAM; if {} is an opt-in region, enable it for the account or remove it from the manifests",
            iam_action(cloud.operation),
            cloud.region,
            cloud.region
        ),
        (None, ErrorClass::Throttling) => format!(
            "AWS kept throttling {call} until the call's deadline{answered}: lower --parallelism, or run again later (other tools in the account share the limit)"
        ),
        // A launch without capacity fails its node: the run's report says what to do.
        (Some(Cause::UnknownProfile | Cause::NoCapacity), _) | (None, _) => return None,
    };
    Some((line, true))
}
