//! The AWS rules themselves (see `rules.rs`), and the behaviours they ask of amiplan that no
//! other test module covers: denied regions, AWS's default deprecation of public AMIs.

use crate::proxy::rules::Rule;
use crate::support::*;

/// Every rule says where AWS says so, and the README's table lists it.
#[test]
fn every_rule_cites_its_aws_page_and_is_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for rule in Rule::ALL {
        assert!(rule.citation().len() > 30, "{} cites its source", rule.name());
        assert!(readme.contains(&format!("| `{}` |", rule.name())), "the README's table has `{}`", rule.name());
    }
}

fn manifest(stack: &str, regions: &str, extra: &str) -> std::path::PathBuf {
    let dir = workdir(stack);
    sample_image(&dir.join("disk.raw"), 4, 7);
    let text = format!(
        "stack: {stack}\nsource: {{ file: disk.raw }}\nbuild: {{ region: us-east-1 }}\nimage:\n  name: \"{stack}-{{volume_type}}\"\n  architecture: x86_64\nregions: [{regions}]\n{extra}"
    );
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    dir
}

/// Rule `region-denied`: an organization policy denies a region every enabled-region scan
/// visits. It is skipped with a warning naming it; a manifest that targets it is an error.
#[test]
fn a_denied_region_is_skipped_with_a_warning_unless_a_manifest_targets_it() {
    let moto = Moto::start();
    let dir = manifest("denied", "us-east-1", "");
    let planned = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    expect_code(&planned, 0);
    assert!(stdout(&planned).contains("me-central-1 was skipped: access is denied there"), "{}", stdout(&planned));
    let applied = moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]);
    expect_code(&applied, 0);
    let destroyed = moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]);
    expect_code(&destroyed, 0);
    assert!(stdout(&destroyed).contains("me-central-1 was skipped"), "never silently: {}", stdout(&destroyed));

    let targeted = manifest("denied-target", "us-east-1, me-central-1", "");
    let planned = moto.amiplan(&targeted, &["plan", "stack.yaml"]);
    expect_code(&planned, 1);
    assert!(
        stderr(&planned).contains("me-central-1") && stderr(&planned).contains("UnauthorizedOperation"),
        "{}",
        stderr(&planned)
    );
}

/// Rule `deprecation-limits`: AWS deprecates a public AMI two years after its creation unless
/// told an earlier time, and refuses to cancel that. A public stack that declares no deprecation
/// leaves AWS's date alone: applied twice, the second plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_ami_keeps_awss_default_deprecation() {
    let moto = Moto::start();
    let dir = manifest("public-default", "us-east-1", "publish: { public: true }\n");
    let args = ["--regions", "manifest"];
    let applied =
        amiplan_async(&moto.endpoint, &dir, &[&["apply", "stack.yaml", "--auto-approve"][..], &args].concat()).await;
    expect_code(&applied, 0);
    let shown = amiplan_async(&moto.endpoint, &dir, &["output", "stack.yaml", "--json"]).await;
    expect_code(&shown, 0);
    assert!(stdout(&shown).contains("deprecation"), "AWS's default date is shown: {}", stdout(&shown));
    let again =
        amiplan_async(&moto.endpoint, &dir, &[&["plan", "stack.yaml", "--detailed-exitcode"][..], &args].concat())
            .await;
    expect_code(&again, 0);
    let destroyed =
        amiplan_async(&moto.endpoint, &dir, &[&["destroy", "stack.yaml", "--auto-approve"][..], &args].concat()).await;
    expect_code(&destroyed, 0);
}
