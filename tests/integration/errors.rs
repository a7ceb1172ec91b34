//! Errors a person can act on: the first line says what failed and what to do, the cause chain
//! follows once, and no SDK debug dump appears. Each case is checked on its exact first line.

use crate::proxy::{Faults, Proxy};
use crate::support::*;

const MANIFEST: &str = "stack: errs
source: { file: disk.raw }
build: { region: us-east-1 }
image:
  name: \"errs-{volume_type}\"
  architecture: x86_64
regions: [us-east-1]
";

fn setup(name: &str, manifest: &str) -> std::path::PathBuf {
    let dir = workdir(name);
    sample_image(&dir.join("disk.raw"), 2, 5);
    std::fs::write(dir.join("m.yaml"), manifest).unwrap();
    dir
}

/// The first line of stderr, after checking the report's shape: exit 1, at most one cause
/// line, no debug dump of the SDK's error structures.
fn first_line(output: &std::process::Output) -> String {
    expect_code(output, 1);
    let text = stderr(output);
    for dump in ["DispatchFailure {", "ConnectorError {", "CredentialsNotLoaded {", "ServiceError {"] {
        assert!(!text.contains(dump), "a debug dump: {text}");
    }
    assert!(text.matches("  cause: ").count() <= 1, "{text}");
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn no_credentials_at_all_says_where_it_looked_and_how_to_provide_them() {
    let dir = setup("errors-no-credentials", MANIFEST);
    let output = amiplan_command("http://127.0.0.1:9", &dir, &["plan", "m.yaml", "--regions", "manifest"])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "false")
        // Nothing answers there: as on a laptop, where the instance metadata service is absent.
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(
        first_line(&output),
        "error: no AWS credentials found (amiplan looked in the environment, the shared config and credentials files, web identity, the ECS container and the EC2 instance metadata service): run `aws configure`, set AWS_PROFILE or pass --profile (`aws sso login` first for SSO), or pass --endpoint-url to use an emulator"
    );
    assert!(stderr(&output).contains("  cause: reading live state: GetCallerIdentity in us-east-1 failed"));
}

#[test]
fn an_unknown_profile_is_named_with_the_ones_there_are() {
    let dir = setup("errors-profile", MANIFEST);
    std::fs::write(dir.join("config"), "[default]\nregion = us-east-1\n\n[profile release]\nregion = eu-west-1\n")
        .unwrap();
    let output = amiplan_command("http://127.0.0.1:9", &dir, &["plan", "m.yaml", "--profile", "relase"])
        .env("AWS_CONFIG_FILE", dir.join("config"))
        .output()
        .unwrap();
    assert_eq!(
        first_line(&output),
        "error: AWS profile `relase` not found (did you mean `release`?): the shared config and credentials files define only default, release: pass --profile (or set AWS_PROFILE) to one of them, or make it with `aws configure --profile NAME`"
    );
    assert!(!stderr(&output).contains("cause:"), "nothing is said twice: {}", stderr(&output));
}

#[test]
fn an_endpoint_that_does_not_answer_is_named() {
    let dir = setup("errors-unreachable", MANIFEST);
    let logged = amiplan_at(
        "http://127.0.0.1:9",
        &dir,
        &["plan", "m.yaml", "--call-deadline", "2s", "-vv", "--color", "always"],
    );
    // The retries were logged, and a log that is not a terminal gets no colour whatever --color says.
    assert!(stderr(&logged).contains("retrying"), "{}", stderr(&logged));
    assert!(!stderr(&logged).contains('\u{1b}'), "{:?}", stderr(&logged));
    let output = amiplan_at("http://127.0.0.1:9", &dir, &["plan", "m.yaml", "--call-deadline", "3s"]);
    assert_eq!(
        first_line(&output),
        "error: cannot reach http://127.0.0.1:9 (GetCallerIdentity in us-east-1): check the network and any proxy, or that the emulator --endpoint-url names is running"
    );
}

/// The first line of a plan whose first call, STS's, AWS answers with `code` and `message`
/// (HTTP 403), and how often amiplan made that call.
async fn plan_refused_by_sts(name: &str, code: &'static str, message: &'static str) -> (String, usize) {
    let moto = Moto::start();
    let answer = vec![("GetCallerIdentity", 403, code, message)];
    let proxy = Proxy::start(&moto.raw, Faults { answer_with: answer, ..Faults::default() }, 1).await;
    let dir = setup(name, MANIFEST);
    let output = amiplan_async(&proxy.endpoint, &dir, &["plan", "m.yaml"]).await;
    let calls = proxy.calls().iter().filter(|c| c.operation == "GetCallerIdentity").count();
    (first_line(&output), calls)
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_credentials_say_to_refresh_them() {
    let (line, calls) =
        plan_refused_by_sts("errors-expired", "ExpiredToken", "The security token included in the request is expired")
            .await;
    assert_eq!(
        line,
        "error: the AWS credentials have expired (GetCallerIdentity in us-east-1, which AWS answered with ExpiredToken): refresh them (`aws sso login`, or new session credentials) and run again"
    );
    assert_eq!(calls, 1, "an expired token is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_keys_say_to_check_them() {
    // STS's answer to an access key it does not know.
    let (line, calls) = plan_refused_by_sts(
        "errors-invalid-keys",
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
    .await;
    assert_eq!(
        line,
        "error: AWS does not accept these credentials (GetCallerIdentity in us-east-1, which AWS answered with InvalidClientTokenId): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile's keys"
    );
    assert_eq!(calls, 1, "keys AWS does not know are not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_region_names_the_action_and_the_opt_in() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 1).await;
    // me-central-1 is the rules' region an organization policy denies (`region-denied`).
    let dir = setup("errors-denied", &MANIFEST.replace("us-east-1", "me-central-1"));
    let output = amiplan_async(&proxy.endpoint, &dir, &["plan", "m.yaml", "--regions", "manifest"]).await;
    // The build region is the home region too: the first call there, STS's, is refused.
    assert_eq!(
        first_line(&output),
        "error: AWS denied sts:GetCallerIdentity in me-central-1, which AWS answered with UnauthorizedOperation: allow that action to these credentials in IAM; if me-central-1 is an opt-in region, enable it for the account or remove it from the manifests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_past_the_deadline_says_to_slow_down() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults { throttle: 1.0, ..Faults::default() }, 1).await;
    let dir = setup("errors-throttled", MANIFEST);
    let output = amiplan_async(&proxy.endpoint, &dir, &["plan", "m.yaml", "--call-deadline", "2s"]).await;
    assert_eq!(
        first_line(&output),
        "error: AWS kept throttling GetCallerIdentity in us-east-1 until the call's deadline, which AWS answered with RequestLimitExceeded: lower --parallelism, or run again later (other tools in the account share the limit)"
    );
}
