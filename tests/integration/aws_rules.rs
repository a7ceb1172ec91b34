//! The AWS rules themselves (see `rules.rs`), and the behaviours they ask of amiplan that no
//! other test module covers: denied regions, AWS's default deprecation of public AMIs.

use aws_sdk_ec2::types::SnapshotAttributeName;

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

/// Rule `vpc-quota`: 5 VPCs per region by default. A helper build whose temporary VPC would
/// exceed it is warned about in the plan, before anything is created; applied anyway, AWS's
/// refusal is reported and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_would_exceed_the_vpc_quota_is_warned_about_first() {
    let moto = Moto::start();
    let ec2 = moto.ec2("us-east-1").await;
    let existing = ec2.describe_vpcs().send().await.unwrap().vpcs().len();
    for i in existing..5 {
        ec2.create_vpc().cidr_block(format!("10.{}.0.0/16", 100 + i)).send().await.unwrap();
    }
    let dir = workdir("vpc-quota");
    let text = "stack: quota
source:
  url: https://images.example.org/quota.raw.zst
  sha256: 6205ae0c524b4d1816dbd3573ce29b5c44ed26c9fbc874fbe48c41c89dd0bac2
build:
  region: us-east-1
  method: helper
  volume_size: 2
  helper: { ami: { owner: amazon, name: \"al2023-ami-2023.*-x86_64\" }, timeout: 5m }
image:
  name: \"quota-{volume_type}\"
  architecture: x86_64
regions: [us-east-1]
";
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    let args = ["--regions", "manifest"];
    let planned = amiplan_async(&moto.endpoint, &dir, &[&["plan", "stack.yaml"][..], &args].concat()).await;
    expect_code(&planned, 0);
    assert!(
        stdout(&planned)
            .contains("us-east-1 has 5 VPCs and the helper builds would add 1: the account's quota there is 5"),
        "{}",
        stdout(&planned)
    );
    let applied =
        amiplan_async(&moto.endpoint, &dir, &[&["apply", "stack.yaml", "--auto-approve"][..], &args].concat()).await;
    expect_code(&applied, 1);
    assert!(stdout(&applied).contains("VpcLimitExceeded"), "{}", stdout(&applied));
    assert_eq!(ec2.describe_vpcs().send().await.unwrap().vpcs().len(), 5, "no VPC beyond the quota");

    // The quota read is the account's own: raised, the same plan warns of nothing.
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 5).await;
    let mut raised = proxy.rules();
    raised.vpc_quota = 6;
    proxy.set_rules(raised);
    let planned = amiplan_async(&proxy.endpoint, &dir, &[&["plan", "stack.yaml"][..], &args].concat()).await;
    expect_code(&planned, 0);
    assert!(!stdout(&planned).contains("VpcLimitExceeded"), "{}", stdout(&planned));
}

/// Rule `public-ami-quota`: AWS allows an account 5 public AMIs per region unless the quota was
/// raised, and refuses to make one more public. The plan reads the account's public AMIs and its
/// quota (Service Quotas: the proxy answers a quota left at its default with no applied value, so
/// the default is asked for) and warns before anything is made; applied anyway, AWS's refusal is
/// reported; once the quota is raised, the next apply publishes what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn making_amis_public_past_the_accounts_quota_is_warned_of_and_refused_until_it_is_raised() {
    use aws_sdk_ec2::types::{Filter, LaunchPermission, LaunchPermissionModifications};
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 11).await;
    // Four public AMIs the account has already, made by another tool.
    let ec2 = moto.ec2("us-east-1").await;
    for i in 0..4 {
        let image = ec2.register_image().name(format!("other-{i}")).send().await.unwrap().image_id.unwrap();
        let everyone = LaunchPermission::builder().group(aws_sdk_ec2::types::PermissionGroup::All).build();
        let add = LaunchPermissionModifications::builder().add(everyone).build();
        ec2.modify_image_attribute().image_id(image).launch_permission(add).send().await.unwrap();
    }
    let dir = workdir("public-quota");
    sample_image(&dir.join("disk.raw"), 4, 9);
    let text = "stack: quota\nsource: { file: disk.raw }\nbuild: { region: us-east-1 }\nimage:\n  name: \"quota-{volume_type}\"\n  architecture: x86_64\nvariants:\n  volume_type: [gp3, standard]\nregions: [us-east-1]\npublish: { public: true }\n";
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    let run = |args: &'static [&'static str]| amiplan_async(&proxy.endpoint, &dir, args);
    let ours_public = || async {
        let public = Filter::builder().name("is-public").values("true").build();
        let out = ec2.describe_images().owners("self").filters(public).send().await.unwrap();
        out.images().iter().filter(|i| i.name().is_some_and(|n| n.starts_with("quota-"))).count()
    };

    let warning = "us-east-1 has 4 public AMI(s) and this apply makes 2 more public: the account's quota there is 5";
    warned_then_refused(&proxy, &dir, warning, "quota of 5").await;
    assert_eq!(ours_public().await, 1, "one AMI made public, the other refused");
    raised_then_converged(&proxy, &dir, "ResourceLimitExceeded", |rules| rules.public_ami_quota = 10).await;
    assert_eq!(ours_public().await, 2);
    expect_code(&run(&["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
}

/// What the AMI quota tests share: the plan warns (having asked Service Quotas for the quota,
/// then for its default) and the apply anyway is refused with AWS's `ResourceLimitExceeded`.
async fn warned_then_refused(proxy: &crate::proxy::Proxy, dir: &std::path::Path, warning: &str, refusal: &str) {
    let asked = |operation: &str| proxy.calls().iter().filter(|c| c.operation == operation).count();
    let before = (asked("GetServiceQuota"), asked("GetAWSDefaultServiceQuota"));
    let planned = amiplan_async(&proxy.endpoint, dir, &["plan", "stack.yaml", "--regions", "manifest"]).await;
    expect_code(&planned, 0);
    assert!(stdout(&planned).contains(warning), "{}", stdout(&planned));
    let after = (asked("GetServiceQuota"), asked("GetAWSDefaultServiceQuota"));
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1), "the default, asked for");
    let applied =
        amiplan_async(&proxy.endpoint, dir, &["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await;
    expect_code(&applied, 1);
    let said = format!("{}{}", stdout(&applied), stderr(&applied));
    assert!(said.contains("ResourceLimitExceeded") && said.contains(refusal), "{said}");
}

/// Then the quota is raised: the plan has changes and no longer says `warned`, the apply
/// converges, and a plan after it has no change.
async fn raised_then_converged(
    proxy: &crate::proxy::Proxy,
    dir: &std::path::Path,
    warned: &str,
    raise: impl FnOnce(&mut crate::proxy::rules::Rules),
) {
    let mut rules = proxy.rules();
    raise(&mut rules);
    proxy.set_rules(rules);
    let run = |args: &'static [&'static str]| amiplan_async(&proxy.endpoint, dir, args);
    let raised = run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await;
    expect_code(&raised, 2);
    assert!(!stdout(&raised).contains(warned), "{}", stdout(&raised));
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    expect_code(&run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await, 0);
}

/// Rule `ami-sharing-quota`: AWS lets one AMI be shared with 1,000 accounts, organizations and
/// OUs unless the quota was raised. Up to the default the plan asks nothing; past it, it reads
/// the quota and warns before anything is made; applied anyway, the refusal is reported and the
/// AMI stays private; once the quota is raised, the next apply shares it with all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_an_ami_past_the_accounts_sharing_quota_is_warned_of_and_refused_until_it_is_raised() {
    use aws_sdk_ec2::types::ImageAttributeName;
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 12).await;
    let dir = workdir("sharing-quota");
    sample_image(&dir.join("disk.raw"), 4, 10);
    let write = |accounts: usize| {
        let accounts: Vec<String> = (0..accounts).map(|i| format!("\"{}\"", 300_000_000_000u64 + i as u64)).collect();
        let text = format!(
            "stack: widely\nsource: {{ file: disk.raw }}\nbuild: {{ region: us-east-1 }}\nimage:\n  name: \"widely-{{volume_type}}\"\n  architecture: x86_64\nvariants:\n  volume_type: [gp3]\nregions: [us-east-1]\npublish:\n  organizations: [\"arn:aws:organizations::111122223333:organization/o-abcdefghij\"]\n  accounts: [{}]\n",
            accounts.join(", ")
        );
        std::fs::write(dir.join("stack.yaml"), text).unwrap();
    };
    let run = |args: &'static [&'static str]| amiplan_async(&proxy.endpoint, &dir, args);
    let count = |operation: &str| proxy.calls().iter().filter(|c| c.operation == operation).count();
    let ec2 = moto.ec2("us-east-1").await;
    let shared_with = || async {
        let images = ec2.describe_images().owners("self").send().await.unwrap();
        let image = images
            .images()
            .iter()
            .find(|i| i.name() == Some("widely-gp3"))
            .expect("the AMI")
            .image_id()
            .unwrap()
            .to_string();
        let attribute = ec2.describe_image_attribute().image_id(image).attribute(ImageAttributeName::LaunchPermission);
        attribute.send().await.unwrap().launch_permissions().len()
    };

    // 999 accounts and an organization: AWS's default allows it, and nothing is asked.
    write(999);
    let planned = run(&["plan", "stack.yaml", "--regions", "manifest"]).await;
    expect_code(&planned, 0);
    assert!(!stdout(&planned).contains("AMI sharing"), "{}", stdout(&planned));
    assert_eq!(count("GetServiceQuota") + count("GetAWSDefaultServiceQuota"), 0);

    write(1_000);
    let warning = "us-east-1: 1 AMI(s) are to be shared with 1001 accounts, organizations and OUs each: the account's quota there is 1000 per AMI";
    warned_then_refused(&proxy, &dir, warning, "quota of 1000").await;
    assert_eq!(shared_with().await, 0, "made, and refused its launch permissions");
    raised_then_converged(&proxy, &dir, "AMI sharing", |rules| rules.ami_sharing_quota = 1_500).await;
    assert_eq!(shared_with().await, 1_001);
    // Its snapshot is shared with the 1,000 accounts (organizations take no part), in requests
    // of at most 500 (rule `snapshot-permission-batch`).
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    let image = images.images().iter().find(|i| i.name() == Some("widely-gp3")).unwrap();
    let snapshot = image.block_device_mappings()[0].ebs().unwrap().snapshot_id().unwrap();
    let attribute = ec2.describe_snapshot_attribute().snapshot_id(snapshot);
    let permissions = attribute.attribute(SnapshotAttributeName::CreateVolumePermission).send().await.unwrap();
    assert_eq!(permissions.create_volume_permissions().len(), 1_000);
    assert_eq!(count("ModifySnapshotAttribute"), 2);
    expect_code(&run(&["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!(proxy.enforced(Rule::AmiSharingQuota), 1);
    assert_eq!(proxy.enforced(Rule::SnapshotPermissionBatch), 0);
}

/// Rule `snapshot-permission-batch`: AWS takes at most 500 createVolumePermission changes in one
/// ModifySnapshotAttribute, and grants or revocations, not both (moto takes any number of both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_takes_at_most_500_permission_changes_and_one_direction_per_request() {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    use aws_sdk_ec2::types::{CreateVolumePermission, CreateVolumePermissionModifications, OperationType};
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 18).await;
    let ec2 = aws_sdk_ec2::Client::new(&config_at(&proxy.endpoint, "us-east-1").await);
    let volume = ec2.create_volume().availability_zone("us-east-1a").size(1).send().await.unwrap();
    let snapshot = ec2.create_snapshot().volume_id(volume.volume_id().unwrap()).send().await.unwrap();
    let snapshot = snapshot.snapshot_id().unwrap();
    let accounts = |from: u64, n: u64| (from..from + n).map(|i| format!("{:012}", 400_000_000_000 + i)).collect();
    let add = |ids: Vec<String>| {
        ec2.modify_snapshot_attribute()
            .snapshot_id(snapshot)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(OperationType::Add)
            .set_user_ids(Some(ids))
            .send()
    };
    let refused = add(accounts(0, 501)).await.expect_err("501 changes in one request");
    assert_eq!(refused.code(), Some("InvalidParameterValue"), "{refused:?}");
    add(accounts(0, 500)).await.expect("500 changes");
    let both = CreateVolumePermissionModifications::builder()
        .add(CreateVolumePermission::builder().user_id(format!("{:012}", 400_000_000_999u64)).build())
        .remove(CreateVolumePermission::builder().user_id(format!("{:012}", 400_000_000_000u64)).build())
        .build();
    let modify = ec2.modify_snapshot_attribute().snapshot_id(snapshot).create_volume_permission(both);
    let refused = modify.send().await.expect_err("a grant and a revocation in one request");
    assert_eq!(refused.code(), Some("InvalidParameterCombination"), "{refused:?}");
    let attribute = ec2.describe_snapshot_attribute().snapshot_id(snapshot);
    let held = attribute.attribute(SnapshotAttributeName::CreateVolumePermission).send().await.unwrap();
    assert_eq!(held.create_volume_permissions().len(), 500, "only the accepted request took effect");
    assert_eq!(proxy.enforced(Rule::SnapshotPermissionBatch), 2);
}

/// Rule `snapshot-volume-bounds`: a block past the end of the volume a snapshot was started for
/// is refused, the last one inside it is taken. amiplan sends none: a `build.volume_size` too
/// small for the image is refused by validate and plan (hostile manifest 99), before any call.
#[tokio::test(flavor = "multi_thread")]
async fn a_block_past_the_end_of_its_snapshots_volume_is_refused() {
    use aws_sdk_ebs::error::ProvideErrorMetadata;
    use aws_sdk_ebs::primitives::ByteStream;
    use aws_sdk_ebs::types::ChecksumAlgorithm;
    use base64::Engine;
    use sha2::Digest;
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 20).await;
    let ebs = aws_sdk_ebs::Client::new(&config_at(&proxy.endpoint, "us-east-1").await);
    let started = ebs.start_snapshot().volume_size(1).send().await.unwrap();
    let snapshot = started.snapshot_id().unwrap();
    let block = bytes::Bytes::from(vec![7u8; 512 * 1024]);
    let checksum = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&block));
    let put = |index: i32| {
        ebs.put_snapshot_block()
            .snapshot_id(snapshot)
            .block_index(index)
            .block_data(ByteStream::from(block.clone()))
            .data_length(512 * 1024)
            .checksum(&checksum)
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .send()
    };
    let refused = put(2048).await.expect_err("block 2048 starts past a 1 GiB volume");
    assert_eq!(refused.code(), Some("ValidationException"), "{refused:?}");
    assert_eq!(proxy.enforced(Rule::SnapshotVolumeBounds), 1);
    // A new snapshot is not found for a moment (rule `snapshot-not-found-window`): try again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match put(2047).await {
            Ok(_) => break,
            Err(e) if e.code() == Some("ResourceNotFoundException") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the last block of a 1 GiB volume: {e:?}"),
        }
    }
    assert_eq!(proxy.enforced(Rule::SnapshotVolumeBounds), 1);
}

/// Rule `ami-name-duplicate`: AWS refuses a second AMI under a name in use, where moto makes it.
/// RegisterImage takes no client token: one whose answer was lost is sent again, refused as a
/// duplicate, and the AMI the first attempt made is found by its name and kept. One AMI, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_whose_answer_was_lost_makes_one_ami_not_two() {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let moto = Moto::start();
    let faults = crate::proxy::Faults { lose_first_answer_of: vec!["RegisterImage"], ..Default::default() };
    let proxy = crate::proxy::Proxy::start(&moto.raw, faults, 21).await;
    let dir = workdir("lost-registration");
    sample_image(&dir.join("disk.raw"), 4, 12);
    let text = "stack: lost-registration\nsource: { file: disk.raw }\nbuild: { region: us-east-1 }\nimage: { name: lost-registration, architecture: x86_64 }\nregions: [us-east-1]\n";
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    let applied = amiplan_async(&proxy.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&applied, 0);
    let registrations = proxy.calls().iter().filter(|c| c.operation == "RegisterImage").count();
    assert_eq!(registrations, 2, "the lost registration was sent again");
    assert_eq!(moto.images_named("us-east-1", "lost-registration").await.len(), 1, "one AMI");
    assert_eq!(proxy.enforced(Rule::AmiNameDuplicate), 1, "and refused as a duplicate");
    expect_code(&amiplan_async(&proxy.endpoint, &dir, &["plan", "stack.yaml", "--detailed-exitcode"]).await, 0);
    // The rule itself, as any client meets it.
    let ec2 = aws_sdk_ec2::Client::new(&config_at(&proxy.endpoint, "us-east-1").await);
    let again = ec2.register_image().name("lost-registration").root_device_name("/dev/xvda").send().await;
    let refused = again.expect_err("a second AMI named lost-registration");
    assert_eq!(refused.code(), Some("InvalidAMIName.Duplicate"), "{refused:?}");
    expect_code(&amiplan_async(&proxy.endpoint, &dir, &["destroy", "stack.yaml", "--auto-approve"]).await, 0);
    assert!(moto.images_named("us-east-1", "lost-registration").await.is_empty());
}

/// Rule `instance-type-fits-image`: EC2 launches an AMI only on an instance type that has what
/// the AMI needs; moto launches anything. A UEFI AMI tested on m4.large, which boots legacy BIOS
/// only (test launches kept on such a type when their AMIs moved to UEFI): the plan reads what
/// the type launches and warns before anything is made; applied anyway, the test's launch is
/// refused, nothing runs and the AMI stays untested. A type that launches it is not warned of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_test_on_a_type_that_cannot_launch_its_ami_is_warned_of_and_refused() {
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 94).await;
    let dir = workdir("test-type");
    sample_image(&dir.join("disk.raw"), 4, 13);
    std::fs::write(dir.join("t.sh"), "#!/bin/sh\ntrue\n").unwrap();
    let text = "stack: test-type\nsource: { file: disk.raw }\nbuild: { region: us-east-1 }\nimage: { name: test-type, architecture: x86_64, boot_mode: uefi }\ntest: { script: t.sh, instance_type: m4.large }\nregions: [us-east-1]\n";
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    let said = |output: &std::process::Output| format!("{}\n{}", stdout(output), stderr(output));
    let planned = amiplan_async(&proxy.endpoint, &dir, &["plan", "stack.yaml"]).await;
    expect_code(&planned, 0);
    let warning = "m4.large cannot launch the AMI it tests, as it cannot boot UEFI";
    assert!(said(&planned).contains(warning), "{}", said(&planned));
    let applied = amiplan_async(&proxy.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&applied, 1);
    assert!(said(&applied).contains("does not support an AMI with a boot mode of UEFI"), "{}", said(&applied));
    assert_eq!(proxy.enforced(Rule::InstanceTypeFitsImage), 1);
    let ec2 = moto.ec2("us-east-1").await;
    let reservations = ec2.describe_instances().send().await.unwrap();
    assert!(reservations.reservations().is_empty(), "nothing launched: {reservations:?}");
    let image = moto.images_named("us-east-1", "test-type").await;
    let tested = image[0].tags().iter().any(|t| t.key() == Some("amiplan:tested"));
    assert!(!tested, "the AMI is not taken as tested");

    // A type that launches it: nothing to warn of.
    std::fs::write(dir.join("stack.yaml"), text.replace("m4.large", "t3.small")).unwrap();
    let planned = amiplan_async(&proxy.endpoint, &dir, &["plan", "stack.yaml"]).await;
    expect_code(&planned, 0);
    assert!(!said(&planned).contains("cannot launch"), "{}", said(&planned));
    expect_code(&amiplan_async(&proxy.endpoint, &dir, &["destroy", "stack.yaml", "--auto-approve"]).await, 0);
    assert!(moto.images_named("us-east-1", "test-type").await.is_empty());
}

/// Rule `disabled-amis`: an AMI disabled by hand (DisableImage) loses its launch permissions and
/// leaves DescribeImages unless disabled AMIs are asked for. amiplan still finds it: the plan
/// leaves it as it is and says so, nothing is made again under its name, nothing starts from it
/// (a new channel, a new region's copy) until it is enabled, and destroy removes it and its
/// snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_ami_is_left_as_it_is_and_destroy_still_removes_it() {
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    use aws_sdk_ec2::types::{Filter, ImageAttributeName, ImageState, LaunchPermission, LaunchPermissionModifications};
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 19).await;
    let dir = workdir("disabled");
    sample_image(&dir.join("disk.raw"), 4, 11);
    let write = |channels: &str, regions: &str| {
        let text = format!(
            "stack: disabled\nversion: \"1\"\nsource: {{ file: disk.raw }}\nbuild: {{ region: us-east-1 }}\nimage:\n  name: \"disabled-{{version}}\"\n  architecture: x86_64\nregions: [{regions}]\npublish: {{ accounts: [\"111122223333\"] }}\ncatalog: {{ channels: {{ {channels} }}, ssm: {{ prefix: /acme/disabled }} }}\n"
        );
        std::fs::write(dir.join("stack.yaml"), text).unwrap();
    };
    write("", "us-east-1");
    let run = |args: &'static [&'static str]| amiplan_async(&proxy.endpoint, &dir, args);
    let count = |operation: &str| proxy.calls().iter().filter(|c| c.operation == operation).count();
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    let ec2 = aws_sdk_ec2::Client::new(&config_at(&proxy.endpoint, "us-east-1").await);
    let ours = ec2.describe_images().owners("self").send().await.unwrap();
    let [made] = ours.images() else { panic!("one AMI: {ours:?}") };
    let image = made.image_id().unwrap().to_string();
    ec2.disable_image().image_id(&image).send().await.unwrap();

    // As AWS has it: left out unless asked for, and shared with no one.
    assert!(ec2.describe_images().owners("self").send().await.unwrap().images().is_empty());
    let disabled = ec2.describe_images().owners("self").include_disabled(true).send().await.unwrap();
    assert_eq!(disabled.images()[0].state(), Some(&ImageState::Disabled));
    let launch = ec2.describe_image_attribute().image_id(&image).attribute(ImageAttributeName::LaunchPermission);
    assert!(launch.send().await.unwrap().launch_permissions().is_empty());
    let grant = LaunchPermission::builder().user_id("111122223333").build();
    let add = LaunchPermissionModifications::builder().add(grant).build();
    let refused = ec2.modify_image_attribute().image_id(&image).launch_permission(add).send().await;
    assert_eq!(refused.expect_err("a disabled AMI is not shared").code(), Some("OperationNotPermitted"));

    let planned = run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await;
    expect_code(&planned, 0);
    assert!(stdout(&planned).contains(&format!("{image} is disabled")), "{}", stdout(&planned));
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!(count("RegisterImage"), 1, "nothing made again under its name");
    assert_eq!(proxy.enforced(Rule::DisabledAmis), 1, "amiplan shared nothing");
    // A channel added now does not point anyone at it, and a region added gets no copy of it.
    write("stable: \"1\"", "us-east-1, eu-west-1");
    let planned = run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await;
    expect_code(&planned, 0);
    let held = format!("channel stable held back: 1 is not out everywhere ({image} is disabled");
    assert!(stdout(&planned).contains(&held), "{}", stdout(&planned));
    let copy = format!("image/disabled-1@eu-west-1: not made or run: it would start from {image}, which is disabled");
    assert!(stdout(&planned).contains(&copy), "{}", stdout(&planned));
    let puts = || proxy.calls().iter().filter(|c| c.param("Name").is_some_and(|n| n.contains("/stable/"))).count();
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!((count("CopyImage"), puts()), (0, 0));
    // Enabled again, it is shared, copied and named again; disabled again, it is left again.
    ec2.enable_image().image_id(&image).send().await.unwrap();
    expect_code(&run(&["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]).await, 2);
    expect_code(&run(&["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    let launch = ec2.describe_image_attribute().image_id(&image).attribute(ImageAttributeName::LaunchPermission);
    assert_eq!(launch.send().await.unwrap().launch_permissions().len(), 1);
    assert_eq!(count("CopyImage"), 1);
    assert!(puts() > 0, "the channel is written");
    ec2.disable_image().image_id(&image).send().await.unwrap();

    let ours = Filter::builder().name("tag:amiplan:stack").values("disabled").build();
    let left = || async {
        let images = ec2.describe_images().owners("self").include_disabled(true).filters(ours.clone());
        let snapshots = ec2.describe_snapshots().owner_ids("self").filters(ours.clone());
        (images.send().await.unwrap().images().len(), snapshots.send().await.unwrap().snapshots().len())
    };
    assert_eq!(left().await, (1, 1));
    expect_code(&run(&["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]).await, 0);
    assert_eq!(left().await, (0, 0), "the disabled AMI and its snapshot are gone");
}

/// Rule `ebs-encryption-by-default`: in an account that encrypts every new snapshot, an
/// `unencrypted` AMI is in fact encrypted with the default key, and AWS refuses to make it
/// public. The plan says so before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_by_default_is_warned_about_before_a_public_stack_is_built() {
    let moto = Moto::start();
    moto.ec2("us-east-1").await.enable_ebs_encryption_by_default().send().await.unwrap();
    let dir = manifest("by-default", "us-east-1", "publish: { public: true }\n");
    let args = ["--regions", "manifest"];
    let planned = amiplan_async(&moto.endpoint, &dir, &[&["plan", "stack.yaml"][..], &args].concat()).await;
    expect_code(&planned, 0);
    assert!(stdout(&planned).contains("EBS encryption by default is on in us-east-1"), "{}", stdout(&planned));
    let applied =
        amiplan_async(&moto.endpoint, &dir, &[&["apply", "stack.yaml", "--auto-approve"][..], &args].concat()).await;
    expect_code(&applied, 1);
    assert!(stdout(&applied).contains("encrypted with the account's default EBS key"), "{}", stdout(&applied));
    let destroyed =
        amiplan_async(&moto.endpoint, &dir, &[&["destroy", "stack.yaml", "--auto-approve"][..], &args].concat()).await;
    expect_code(&destroyed, 0);
}

/// Rule `image-parameter-validation`: Parameter Store answers success to an `aws:ec2:image`
/// value that is no available AMI, and never stores it. (amiplan reads every write back:
/// `catalog::a_parameter_parameter_store_never_stored_is_reported_failed`.)
#[test]
fn parameter_store_never_stores_an_image_parameter_that_is_no_ami() {
    let moto = Moto::start();
    let put = |name: &str, value: &str| {
        let args = ["ssm", "put-parameter", "--name", name, "--value", value, "--type", "String", "--data-type"];
        moto.aws("us-east-1", &[&args[..], &["aws:ec2:image"]].concat())
    };
    let get = |name: &str| moto.aws("us-east-1", &["ssm", "get-parameter", "--name", name]);
    let answered = put("/rules/none", "ami-0123456789abcdef0").expect("answered as success");
    assert_eq!(answered["Version"], 1, "{answered}");
    let read = get("/rules/none").expect_err("never stored");
    assert!(read.contains("ParameterNotFound"), "{read}");
    // A text parameter is stored as moto always did.
    moto.aws("us-east-1", &["ssm", "put-parameter", "--name", "/rules/text", "--value", "x", "--type", "String"])
        .unwrap();
    assert_eq!(get("/rules/text").unwrap()["Parameter"]["Value"], "x");
}

/// Rule `presigned-urls`: a presigned PUT is good until `X-Amz-Date` + `X-Amz-Expires`, and
/// refused after (moto never lets one expire). Boot tests upload their reports with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_put_is_refused_once_it_has_expired() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let moto = Moto::start();
    let proxy = crate::proxy::Proxy::start(&moto.raw, crate::proxy::Faults::default(), 17).await;
    moto.s3("us-east-1").await.create_bucket().bucket("presigned").send().await.unwrap();
    let credentials = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&proxy.endpoint)
        .credentials_provider(credentials)
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let presign = |key: &'static str, secs: u64| {
        let s3 = s3.clone();
        async move {
            let valid = PresigningConfig::expires_in(std::time::Duration::from_secs(secs)).unwrap();
            s3.put_object().bucket("presigned").key(key).presigned(valid).await.unwrap().uri().to_string()
        }
    };
    let lasting = presign("lasting", 600).await;
    let brief = presign("brief", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let put = |url: String| {
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut answer = agent.put(&url).send(&b"report"[..]).unwrap();
            (answer.status().as_u16(), answer.body_mut().read_to_string().unwrap_or_default())
        })
    };
    assert_eq!(put(lasting).await.unwrap().0, 200);
    let (status, body) = put(brief).await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Request has expired"), "{body}");
    assert_eq!(proxy.enforced(Rule::PresignedUrls), 1);
    let stored = moto.s3("us-east-1").await.list_objects_v2().bucket("presigned").send().await.unwrap();
    let keys: Vec<&str> = stored.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["lasting"]);
}
