//! Publication against moto: launch permissions for everyone, accounts, organizations and OUs on
//! every AMI in every region, createVolumePermission on their snapshots, drift corrected in both
//! directions, and region changes that plan only copies or removals.

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_ec2::types::{ImageAttributeName, LaunchPermission, LaunchPermissionModifications, SnapshotAttributeName};

use crate::proxy::{Faults, Proxy};
use crate::support::*;

const ACCOUNT: &str = "111122223333";
const ORG: &str = "arn:aws:organizations::111122223333:organization/o-abcdef1234";
const OU: &str = "arn:aws:organizations::111122223333:ou/o-abcdef1234/ou-ab12-cdef3456";

fn manifest(regions: &str, publish: &str) -> String {
    format!(
        "stack: pub
source: {{ file: disk.raw }}
build: {{ region: us-east-1 }}
image:
  name: \"pub-{{volume_type}}\"
  architecture: x86_64
  tags: {{ team: images }}
variants:
  volume_type: [gp3, standard]
regions: [{regions}]
publish: {publish}
"
    )
}

fn shared() -> String {
    format!(
        "{{ public: true, accounts: [\"{ACCOUNT}\"], organizations: [\"{ORG}\"], organizational_units: [\"{OU}\"] }}"
    )
}

/// (group all?, accounts, organizations, OUs) of an AMI's launch permissions.
async fn launch_permissions(moto: &Moto, region: &str, id: &str) -> BTreeSet<String> {
    let out = moto
        .ec2(region)
        .await
        .describe_image_attribute()
        .image_id(id)
        .attribute(ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    out.launch_permissions()
        .iter()
        .map(|p| {
            p.group()
                .map(|g| format!("group {}", g.as_str()))
                .or(p.user_id().map(|u| format!("account {u}")))
                .or(p.organization_arn().map(|o| format!("org {o}")))
                .or(p.organizational_unit_arn().map(|o| format!("ou {o}")))
                .unwrap()
        })
        .collect()
}

async fn volume_permissions(moto: &Moto, region: &str, snapshot: &str) -> BTreeSet<String> {
    let out = moto
        .ec2(region)
        .await
        .describe_snapshot_attribute()
        .snapshot_id(snapshot)
        .attribute(SnapshotAttributeName::CreateVolumePermission)
        .send()
        .await
        .unwrap();
    out.create_volume_permissions()
        .iter()
        .map(|p| {
            p.group().map(|g| format!("group {}", g.as_str())).or(p.user_id().map(|u| format!("account {u}"))).unwrap()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every AMI of the stack in `regions` has exactly `launch`, and each snapshot behind it `volume`.
async fn assert_published(moto: &Moto, regions: &[&str], launch: &BTreeSet<String>, volume: &BTreeSet<String>) {
    for region in regions {
        let images = moto.stack_images(region, "pub").await;
        assert_eq!(images.len(), 2, "two variants in {region}");
        for image in images {
            let id = image.image_id().unwrap();
            assert_eq!(&launch_permissions(moto, region, id).await, launch, "{id} in {region}");
            assert_eq!(tag(image.tags(), "team"), Some("images"), "{id} in {region} is tagged");
            for mapping in image.block_device_mappings() {
                let snapshot = mapping.ebs().and_then(|e| e.snapshot_id()).unwrap();
                assert_eq!(&volume_permissions(moto, region, snapshot).await, volume, "{snapshot} of {id}");
            }
        }
    }
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
}

fn plan_lines(output: &std::process::Output) -> Vec<String> {
    stdout(output).lines().filter(|l| l.starts_with("  ") || l.starts_with("-/+")).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sharing_lands_everywhere_drift_is_corrected_and_regions_change_without_rebuilds() {
    let moto = Moto::start();
    let dir = workdir("publish");
    sample_image(&dir.join("disk.raw"), 3, 21);
    let three = "us-east-1, eu-west-1, ap-southeast-2";
    write(&dir, &manifest(three, &shared()));
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);

    let regions = ["us-east-1", "eu-west-1", "ap-southeast-2"];
    let launch = set(&["group all", &format!("account {ACCOUNT}"), &format!("org {ORG}"), &format!("ou {OU}")]);
    let volume = set(&["group all", &format!("account {ACCOUNT}")]);
    assert_published(&moto, &regions, &launch, &volume).await;
    for region in &regions[1..] {
        for snapshot in moto.stack_snapshots(region, "pub").await {
            assert!(
                tag(snapshot.tags(), "amiplan:node").is_some_and(|n| n.starts_with("image/")),
                "copy snapshots are tagged"
            );
        }
    }
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);

    // Drift by hand: an extra account on one AMI, the organization gone from another.
    let ec2 = moto.ec2("eu-west-1").await;
    let images = moto.stack_images("eu-west-1", "pub").await;
    let (first, second) = (images[0].image_id().unwrap(), images[1].image_id().unwrap());
    let extra = LaunchPermissionModifications::builder()
        .add(LaunchPermission::builder().user_id("999999999999").build())
        .build();
    ec2.modify_image_attribute().image_id(first).launch_permission(extra).send().await.unwrap();
    let less = LaunchPermissionModifications::builder()
        .remove(LaunchPermission::builder().organization_arn(ORG).build())
        .build();
    ec2.modify_image_attribute().image_id(second).launch_permission(less).send().await.unwrap();
    let drift = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&drift, 2);
    let text = stdout(&drift);
    assert!(text.contains("account 999999999999"), "the hand-added account is planned for removal: {text}");
    assert!(text.contains("Plan: 0 to create, 2 to update in place, 0 to replace, 0 to delete"), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    assert_published(&moto, &regions, &launch, &volume).await;

    // A new region plans exactly one copy per variant; nothing is rebuilt.
    write(&dir, &manifest(&format!("{three}, sa-east-1"), &shared()));
    let grown = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&grown, 2);
    let text = stdout(&grown);
    assert!(text.contains("Plan: 2 to create, 0 to update in place, 0 to replace, 0 to delete"), "{text}");
    assert!(plan_lines(&grown).iter().filter(|l| l.contains("create")).all(|l| l.contains("@sa-east-1")), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    assert_published(&moto, &["sa-east-1"], &launch, &volume).await;

    // Removing a region deregisters only that region's copies.
    write(&dir, &manifest("us-east-1, eu-west-1, sa-east-1", &shared()));
    let shrunk = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    let text = stdout(&shrunk);
    assert!(text.contains("Plan: 0 to create, 0 to update in place, 0 to replace, 2 to delete"), "{text}");
    assert!(
        plan_lines(&shrunk).iter().filter(|l| l.contains("delete")).all(|l| l.contains("@ap-southeast-2")),
        "{text}"
    );
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    assert!(moto.stack_images("ap-southeast-2", "pub").await.is_empty());

    // Back to private: every grant is revoked, on AMIs and snapshots alike.
    write(&dir, &manifest("us-east-1, eu-west-1, sa-east-1", "{ public: false }"));
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    assert_published(&moto, &["us-east-1", "eu-west-1", "sa-east-1"], &BTreeSet::new(), &BTreeSet::new()).await;
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);
    expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]), 0);
}

/// moto has no deprecation API and no block public access state: the fault proxy plays both
/// (tests/integration/proxy.rs), and amiplan makes the real calls through it.
#[tokio::test(flavor = "multi_thread")]
async fn deprecation_lands_on_every_ami_and_copy_changes_in_place_and_blocked_public_access_is_reported() {
    let moto = Moto::start();
    let faults = Faults { block_public_access: Some("block-new-sharing".into()), ..Faults::default() };
    let proxy = Proxy::start(&moto.endpoint, faults, 7).await;
    let dir = workdir("deprecation");
    sample_image(&dir.join("disk.raw"), 2, 22);
    let with = |deprecation: &str| format!("{}{deprecation}", manifest("us-east-1, eu-west-1", "{ public: true }"));
    let run = |args: &'static [&'static str]| amiplan_async(&proxy.endpoint, &dir, args);
    let amis = |output: &std::process::Output| -> Vec<serde_json::Value> {
        let json: serde_json::Value = serde_json::from_str(&stdout(output)).unwrap();
        json["stacks"]["pub"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|r| r.as_object().unwrap().values().cloned())
            .collect()
    };
    let count = |operation: &str| proxy.calls().iter().filter(|c| c.operation == operation).count();

    write(&dir, &with("deprecate_after: 365d\n"));
    let planned = run(&["plan", "stack.yaml", "--regions", "manifest"]).await;
    assert!(
        stdout(&planned).contains("warning: image block public access is `block-new-sharing` in us-east-1"),
        "{}",
        stdout(&planned)
    );
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!(count("EnableImageDeprecation"), 4, "every AMI and copy");
    let year_later = amiplan::deprecation::parse(&amiplan::events::now()).unwrap() + 365 * 24 * 3600;
    let output = run(&["output", "stack.yaml", "--json"]).await;
    let listed = amis(&output);
    assert_eq!(listed.len(), 4);
    for ami in &listed {
        let at = amiplan::deprecation::parse(ami["deprecation"].as_str().unwrap()).unwrap();
        assert!((at - year_later).abs() < 3600, "{ami}");
        assert_eq!(ami["public"], true);
    }
    expect_code(&run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await, 0);

    write(&dir, &with("deprecate_after: \"2027-06-01\"\n"));
    let changed = run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await;
    expect_code(&changed, 2);
    assert!(stdout(&changed).contains("Plan: 0 to create, 4 to update in place, 0 to replace, 0 to delete"));
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    for ami in amis(&run(&["output", "stack.yaml", "--json"]).await) {
        assert_eq!(ami["deprecation"], "2027-06-01T00:00:00Z", "{ami}");
    }

    write(&dir, &with(""));
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!(count("DisableImageDeprecation"), 4);
    for ami in amis(&run(&["output", "stack.yaml", "--json"]).await) {
        assert!(ami["deprecation"].is_null(), "{ami}");
    }
    expect_code(&run(&["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
}
