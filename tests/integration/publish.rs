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

    // Another account plans permission changes only, on every AMI.
    let more = shared().replace(&format!("[\"{ACCOUNT}\"]"), &format!("[\"{ACCOUNT}\", \"444455556666\"]"));
    write(&dir, &manifest("us-east-1, eu-west-1, sa-east-1", &more));
    let widened = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    let text = stdout(&widened);
    assert!(text.contains("Plan: 0 to create, 6 to update in place, 0 to replace, 0 to delete"), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    let mut launch_more = launch.clone();
    launch_more.insert("account 444455556666".into());
    let mut volume_more = volume.clone();
    volume_more.insert("account 444455556666".into());
    assert_published(&moto, &["us-east-1", "eu-west-1", "sa-east-1"], &launch_more, &volume_more).await;

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
    let faults = Faults {
        block_public_access: Some("block-new-sharing".into()),
        snapshot_block_public_access: Some("block-all-sharing".into()),
        ..Faults::default()
    };
    let proxy = Proxy::start(&moto.raw, faults, 7).await;
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
    assert!(
        stdout(&planned).contains("warning: snapshot block public access is `block-all-sharing` in us-east-1"),
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

    // A public AMI's deprecation cannot be cancelled (rule `deprecation-limits`): without a
    // declared time, the one AWS has stands, and nothing is planned.
    write(&dir, &with(""));
    expect_code(&run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await, 0);
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!(count("DisableImageDeprecation"), 0);
    for ami in amis(&run(&["output", "stack.yaml", "--json"]).await) {
        assert_eq!(ami["deprecation"], "2027-06-01T00:00:00Z", "{ami}");
    }
    expect_code(&run(&["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
}

/// moto has no deregistration protection: the proxy plays it, and its rule
/// `deregistration-protection` refuses to deregister a protected AMI, and one protected with a
/// cooldown until the cooldown (seconds here, 24 hours on AWS) is over. Protection lands on every
/// AMI and copy, changes and goes in place, and destroy lifts it before it deregisters: at once
/// without a cooldown, by a second run after one.
#[tokio::test(flavor = "multi_thread")]
async fn deregistration_protection_lands_changes_in_place_and_is_lifted_before_destroy() {
    use crate::proxy::rules::Rule;
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 8).await;
    let cooldown = Faults::default().rules.protection_cooldown;
    let dir = workdir("protection");
    sample_image(&dir.join("disk.raw"), 2, 23);
    let with = |protection: &str| format!("{}{protection}", manifest("us-east-1, eu-west-1", "{ public: false }"));
    let run = |args: &'static [&'static str]| amiplan_async(&proxy.endpoint, &dir, args);
    let protections = || async {
        let json: serde_json::Value =
            serde_json::from_str(&stdout(&run(&["output", "stack.yaml", "--json"]).await)).unwrap();
        let amis = json["stacks"]["pub"].as_object().unwrap().values().flat_map(|r| r.as_object().unwrap().values());
        amis.map(|ami| ami["deregistration_protection"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let count = |operation: &str| proxy.calls().iter().filter(|c| c.operation == operation).count();
    const PLAN: &[&str] = &["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"];
    const APPLY: &[&str] = &["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    const DESTROY: &[&str] = &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"];

    write(&dir, &with("deregistration_protection: without-cooldown\n"));
    let planned = run(PLAN).await;
    assert!(stdout(&planned).contains("without-cooldown"), "the plan says what each AMI gets: {}", stdout(&planned));
    expect_code(&run(APPLY).await, 0);
    assert_eq!(count("EnableImageDeregistrationProtection"), 4, "every AMI and copy");
    assert_eq!(protections().await, vec!["without-cooldown"; 4]);
    expect_code(&run(PLAN).await, 0);

    // Dropped from the manifest: lifted in place, nothing replaced.
    write(&dir, &with(""));
    let changed = run(PLAN).await;
    expect_code(&changed, 2);
    assert!(stdout(&changed).contains("Plan: 0 to create, 4 to update in place, 0 to replace, 0 to delete"));
    expect_code(&run(APPLY).await, 0);
    assert_eq!(protections().await, vec!["off"; 4]);

    // Back with a cooldown. A variant dropped from the manifest: its AMIs' protection is lifted,
    // and AWS keeps them until the cooldown is over. The apply says so and succeeds (a
    // scheduled apply is not red for a day); a run after the cooldown removes them.
    write(&dir, &with("deregistration_protection: with-cooldown\n"));
    expect_code(&run(APPLY).await, 0);
    assert_eq!(protections().await, vec!["with-cooldown"; 4]);
    expect_code(&run(PLAN).await, 0);
    write(&dir, &with("deregistration_protection: with-cooldown\n").replace("[gp3, standard]", "[gp3]"));
    let dropped = run(APPLY).await;
    expect_code(&dropped, 0);
    assert!(stdout(&dropped).contains("waiting image/pub-standard@us-east-1 ami-"), "{}", stdout(&dropped));
    assert!(stdout(&dropped).contains("Done as far as AWS allows now"), "{}", stdout(&dropped));
    assert_eq!(moto.stack_images("us-east-1", "pub").await.len(), 2, "kept by AWS's cooldown");
    // During the cooldown nothing can be done: no change, and a warning says until when.
    let still = run(PLAN).await;
    expect_code(&still, 0);
    assert!(stdout(&still).contains("until its cooldown ends ("), "{}", stdout(&still));
    tokio::time::sleep(cooldown).await;
    expect_code(&run(APPLY).await, 0);
    assert_eq!(moto.stack_images("us-east-1", "pub").await.len(), 1, "removed once the cooldown was over");
    expect_code(&run(PLAN).await, 0);

    // Destroyed: the same, but a destroy that leaves anything behind fails, and a run after the
    // cooldown removes everything.
    let planned = run(&["plan", "stack.yaml", "--destroy", "--regions", "manifest"]).await;
    assert!(
        stdout(&planned)
            .contains("deregistration protection is lifted first; with its cooldown AWS keeps the AMI 24 hours more"),
        "{}",
        stdout(&planned)
    );
    let json = run(&["plan", "stack.yaml", "--destroy", "--regions", "manifest", "--json"]).await;
    let document: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let lifted: Vec<&str> = document["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "image" || c["kind"] == "image-copy")
        .map(|c| c["deregistration_protection"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(lifted, vec!["with-cooldown"; 2], "the JSON plan says what each delete lifts");
    let deregistered = count("DeregisterImage");
    let first = run(DESTROY).await;
    expect_code(&first, 1);
    let said = format!("{}{}", stdout(&first), stderr(&first));
    assert!(said.contains("its cooldown keeps the AMI"), "{said}");
    assert_eq!(count("DeregisterImage"), deregistered, "nothing is deregistered while AWS would refuse it");
    assert!(said.contains("waiting image/pub-gp3@us-east-1"), "{said}");
    assert_eq!(moto.stack_images("us-east-1", "pub").await.len(), 1);
    let planned = run(&["plan", "stack.yaml", "--destroy", "--regions", "manifest"]).await;
    assert!(stdout(&planned).contains("AWS keeps the AMI until its cooldown ends ("), "{}", stdout(&planned));
    tokio::time::sleep(cooldown).await;
    expect_code(&run(DESTROY).await, 0);
    assert_eq!(
        proxy.enforced(Rule::DeregistrationProtection),
        0,
        "amiplan never asked AWS to deregister a protected AMI"
    );
    for region in ["us-east-1", "eu-west-1"] {
        assert!(moto.stack_images(region, "pub").await.is_empty(), "{region}");
        assert!(moto.stack_snapshots(region, "pub").await.is_empty(), "{region}");
    }
}

fn versioned(version: u32) -> String {
    format!(
        "stack: ret
version: \"{version}\"
retention: {{ keep: 2 }}
source: {{ file: disk-{version}.raw }}
build: {{ region: us-east-1 }}
image:
  name: \"ret-{{version}}-{{volume_type}}\"
  architecture: x86_64
regions: [us-east-1, eu-west-1]
"
    )
}

/// Versions of the stack present in `region`, by the `amiplan:version` tag of its AMIs.
async fn versions(moto: &Moto, region: &str) -> BTreeSet<String> {
    moto.stack_images(region, "ret")
        .await
        .iter()
        .filter_map(|i| tag(i.tags(), "amiplan:version").map(str::to_string))
        .collect()
}

async fn snapshot_versions(moto: &Moto, region: &str) -> Vec<String> {
    let mut found: Vec<String> = moto
        .stack_snapshots(region, "ret")
        .await
        .iter()
        .filter_map(|s| tag(s.tags(), "amiplan:version").map(str::to_string))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_n_versions_retires_older_ones_after_the_new_one_and_spares_launch_templates() {
    let moto = Moto::start();
    let dir = workdir("retention");
    let release = |version: u32| {
        sample_image(&dir.join(format!("disk-{version}.raw")), 2, 100 + version as u64);
        write(&dir, &versioned(version));
    };
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest", "--events", "events.jsonl"];
    for version in 1..=2 {
        release(version);
        expect_code(&moto.amiplan(&dir, &apply), 0);
    }
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(versions(&moto, region).await, set(&["1", "2"]), "keep 2: both stay in {region}");
    }

    release(3);
    let planned = moto.amiplan(&dir, &["plan", "stack.yaml", "--regions", "manifest"]);
    let text = stdout(&planned);
    let retiring: Vec<&str> = text.lines().filter(|l| l.contains("retention keeps 2 version(s): 1 goes")).collect();
    assert_eq!(retiring.len(), 3, "two AMIs of version 1 and its snapshot: {text}");
    expect_code(&moto.amiplan(&dir, &apply), 0);
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(versions(&moto, region).await, set(&["2", "3"]), "{region}");
    }
    assert_eq!(snapshot_versions(&moto, "us-east-1").await, ["2", "3"], "version 1's snapshot went too");
    assert_eq!(snapshot_versions(&moto, "eu-west-1").await, ["2", "3"], "and its copy's snapshot");
    // Create before destroy: every retirement started after the last creation finished.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last_create = events.iter().rposition(|e| e["action"] == "create" && e["event"] == "succeeded").unwrap();
    let first_retire = events.iter().position(|e| e["action"] == "delete" && e["event"] == "started").unwrap();
    assert!(last_create < first_retire, "{events:#?}");

    // A launch template still using version 2's AMI in us-east-1 keeps that one AMI.
    let ec2 = moto.ec2("us-east-1").await;
    let v2 = moto.images_named("us-east-1", "ret-2-gp3").await[0].image_id().unwrap().to_string();
    let data = aws_sdk_ec2::types::RequestLaunchTemplateData::builder().image_id(&v2).build();
    ec2.create_launch_template().launch_template_name("web").launch_template_data(data).send().await.unwrap();
    release(4);
    let planned = moto.amiplan(&dir, &["plan", "stack.yaml", "--regions", "manifest", "--show-unchanged"]);
    assert!(stdout(&planned).contains("kept: launch template `web` still uses it"), "{}", stdout(&planned));
    expect_code(&moto.amiplan(&dir, &apply), 0);
    assert_eq!(versions(&moto, "us-east-1").await, set(&["2", "3", "4"]), "the template's AMI stays");
    assert_eq!(versions(&moto, "eu-west-1").await, set(&["3", "4"]));
    expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]), 0);
}

/// Snapshots of the account in `region`, whoever tagged them: what a removal leaves behind shows
/// here even when it carries no amiplan tag.
async fn own_snapshots(moto: &Moto, region: &str) -> usize {
    let out = moto.ec2(region).await.describe_snapshots().owner_ids("self").send().await.unwrap();
    out.snapshots().len()
}

/// `build.keep_image: false`: the build region's AMIs and snapshot are only the copies' source.
/// They are made when a copy must be made (the first apply, a region added), removed by the same
/// apply once the copies are done, never published or catalogued, and not remade for nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_build_region_not_kept_is_removed_once_copied_and_remade_only_for_new_copies() {
    let moto = Moto::start();
    let dir = workdir("publish-seed");
    sample_image(&dir.join("disk.raw"), 3, 23);
    let seeded = |regions: &str| {
        manifest(regions, "{ public: true }")
            .replace("build: { region: us-east-1 }", "build: { region: us-east-1, keep_image: false }")
            .replace("stack: pub\n", "stack: pub\nversion: \"1\"\n")
            .replace("pub-{volume_type}", "pub-{version}-{volume_type}")
            + "catalog:\n  channels: { stable: \"1\" }\n  ssm: { prefix: /acme/pub }\n"
    };
    write(&dir, &seeded("eu-west-1"));
    let validate = moto.amiplan(&dir, &["validate", "stack.yaml"]);
    expect_code(&validate, 0);
    assert!(!stderr(&validate).contains("does not list the build region"), "{}", stderr(&validate));
    let snapshots_before = own_snapshots(&moto, "us-east-1").await;

    let first = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&first, 2);
    let text = stdout(&first);
    assert!(text.contains("the copies' source: removed once they are done (`build.keep_image: false`)"), "{text}");
    let cost = text.lines().find(|l| l.starts_with("Estimated monthly storage cost")).unwrap();
    assert!(cost.contains("eu-west-1") && !cost.contains("us-east-1"), "nothing stays in us-east-1: {text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    let public = set(&["group all"]);
    assert_published(&moto, &["eu-west-1"], &public, &public).await;
    assert!(moto.stack_images("us-east-1", "pub").await.is_empty(), "the source AMIs are gone");
    assert!(moto.stack_snapshots("us-east-1", "pub").await.is_empty(), "the source snapshot is gone");
    assert_eq!(own_snapshots(&moto, "us-east-1").await, snapshots_before, "nothing is left behind untagged");
    let again = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&again, 0);

    // The catalogue names the copies only.
    expect_code(&moto.amiplan(&dir, &["catalog", "stack.yaml", "--out", "tree"]), 0);
    let flat: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tree/amis.json")).unwrap()).unwrap();
    let regions: Vec<&String> = flat["regions"].as_object().unwrap().keys().collect();
    assert_eq!(regions, ["eu-west-1"], "{flat}");
    let query = ["resolve", "stack.yaml", "--arch", "x86_64", "--variant", "volume_type=gp3", "--channel", "stable"];
    expect_code(&moto.amiplan(&dir, &[&query[..], &["--region", "eu-west-1"]].concat()), 0);
    expect_code(&moto.amiplan(&dir, &[&query[..], &["--region", "us-east-1"]].concat()), 1);

    // A new region: the source is made again for its copies, and removed again.
    write(&dir, &seeded("eu-west-1, ap-southeast-2"));
    let grown = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&grown, 2);
    let text = stdout(&grown);
    let creates: Vec<String> = plan_lines(&grown).into_iter().filter(|l| l.contains(" create")).collect();
    assert!(creates.iter().all(|l| l.contains("@us-east-1") || l.contains("@ap-southeast-2")), "{text}");
    assert!(!creates.iter().any(|l| l.contains("@eu-west-1")), "{text}");
    // The new region's copy is refused: the source stays for the next run, and `output`, which
    // lists what users may launch, does not name it.
    let denied = ("CopyImage", 403, "UnauthorizedOperation", "You are not authorized to perform this operation.");
    let refusing = Proxy::start(&moto.raw, Faults { answer_with: vec![denied], ..Faults::default() }, 72).await;
    let failed = amiplan_async(&refusing.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&failed, 1);
    assert_eq!(moto.stack_images("us-east-1", "pub").await.len(), 2, "the source stays: {}", stdout(&failed));
    let output = moto.amiplan(&dir, &["output", "stack.yaml", "--json"]);
    expect_code(&output, 0);
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let amis = listed["stacks"]["pub"].as_object().unwrap();
    assert!(!amis.is_empty(), "{listed}");
    for regions in amis.values() {
        let regions: Vec<&String> = regions.as_object().unwrap().keys().collect();
        assert_eq!(regions, ["eu-west-1"], "the copies only: {listed}");
    }
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    assert_published(&moto, &["eu-west-1", "ap-southeast-2"], &public, &public).await;
    assert!(moto.stack_images("us-east-1", "pub").await.is_empty());
    assert!(moto.stack_snapshots("us-east-1", "pub").await.is_empty());
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);

    expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]), 0);
    assert_stack_gone(&moto, "pub", &["us-east-1", "eu-west-1", "ap-southeast-2"]).await;
}
