//! The planner's unit tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::cloud::{Sharing, State};
use crate::manifest::raw::{Architecture, BootMode, Virtualization, VolumeType};
use crate::model::{ImageAttrs, Origin, Stack, Variant};
use crate::source::{Format, Prepared, SourceInfo};
use crate::tags;

/// The planner's clock in these tests: 2026-06-01.
const NOW: i64 = 1_780_272_000;

fn stack(volume_types: &[VolumeType], regions: &[&str]) -> Stack {
    let variants = volume_types
        .iter()
        .map(|&volume_type| Variant {
            name: format!("demo-{}", volume_type.as_str()),
            attrs: ImageAttrs { volume_type, boot_mode: Some(BootMode::Uefi), ..ImageAttrs::plain() },
        })
        .collect();
    Stack {
        name: "demo".into(),
        manifest: PathBuf::from("demo.yaml"),
        source: Origin::File { path: PathBuf::from("demo.raw"), sha256: None },
        helper: None,
        build_region: regions[0].into(),
        volume_size_gib: None,
        positions: Default::default(),
        regions: regions.iter().map(|r| r.to_string()).collect(),
        keep_build_image: true,
        variants,
        description: Some("Demo".into()),
        tags: BTreeMap::from([("team".into(), "os".into())]),
        kms_keys: BTreeMap::new(),
        sharing: Sharing::default(),
        deprecation: None,
        protection: None,
        test: None,
        version: None,
        keep_versions: None,
        catalog: None,
        upstream: None,
        notices: vec![],
    }
}

/// A 10-byte image whose address is `address` (the plan only compares addresses).
fn source(address: &str) -> Arc<SourceInfo> {
    let mut info = SourceInfo::from_blocks(Path::new("disk.raw"), Format::Raw, 10, vec![(0, [1; 32])]);
    info.address = crate::source::SourceAddress::known(address.into());
    Arc::new(info)
}

fn graph(stack: &Stack, sha: &str) -> DesiredGraph {
    let sources = HashMap::from([(stack.name.clone(), Prepared::Upload(source(sha)))]);
    DesiredGraph::build(std::slice::from_ref(stack), &sources)
}

/// What amiplan would have left in AWS after creating every node of `graph`.
fn applied(graph: &DesiredGraph) -> Vec<LiveResource> {
    let mut snapshots: HashMap<String, String> = HashMap::new();
    let mut resources = Vec::new();
    // A test node owns nothing: its pass is a tag on the AMI; read-only nodes own nothing.
    let nodes = graph.topological().into_iter().filter(|n| n.kind() != NodeKind::Test && !n.kind().is_read_only());
    for (i, node) in nodes.enumerate() {
        let is_image = node.kind().is_image();
        let id = format!("{}-{i:03}", if is_image { "ami" } else { "snap" });
        let mut tags = node.desired_tags();
        if !is_image {
            snapshots.insert(node.region.clone(), id.clone());
            tags.insert(tags::UPLOADED.into(), "true".into());
        }
        resources.push(LiveResource {
            region: node.region.clone(),
            kind: if is_image { ResourceKind::Image } else { ResourceKind::Snapshot },
            id: id.clone(),
            name: node.name.clone(),
            state: State::Ready,
            description: node.description.clone(),
            tags,
            public: false,
            snapshot_ids: if is_image { vec![format!("snap-of-{id}")] } else { vec![] },
            created: Some(format!("2026-01-01T00:00:{i:02}Z")),
            deprecation: None,
            protection: Default::default(),
            sharing: None,
            snapshot_sharing: vec![],
            value: None,
            files: Default::default(),
            size_bytes: (!is_image).then_some(3 << 30),
        });
    }
    resources
}

fn observed(resources: Vec<LiveResource>) -> Observed {
    Observed {
        account: "1".into(),
        regions: vec![],
        resources,
        helper_amis: BTreeMap::new(),
        older_digests: BTreeMap::new(),
        block_public_access: BTreeMap::new(),
        snapshot_block_public_access: BTreeMap::new(),
        public_images: BTreeMap::new(),
        launch_templates: BTreeMap::new(),
        routes_out: BTreeMap::new(),
        zones: BTreeMap::new(),
        subnet_zones: BTreeMap::new(),
        instance_types: BTreeMap::new(),
        vpc_counts: BTreeMap::new(),
        vpc_quotas: BTreeMap::new(),
        sharing_quotas: BTreeMap::new(),
        encrypted_by_default: BTreeSet::new(),
        denied_regions: BTreeMap::new(),
        foreign: vec![],
    }
}

fn stacks() -> BTreeSet<String> {
    BTreeSet::from(["demo".to_string()])
}

fn action_of<'a>(plan: &'a Plan, node: &str) -> Vec<&'a Change> {
    plan.changes.iter().filter(|c| c.node == node).collect()
}

/// Live resources carry the hash of their spec: a new version of amiplan must hash the same
/// spec to the same value, or it would replace every AMI it made. Pinned from the version
/// whose specs were string maps.
#[test]
fn spec_hashes_are_stable_across_versions() {
    let mut pinned = stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1", "eu-west-1"]);
    pinned.variants[1].attrs.encrypted = true;
    pinned.kms_keys.insert("eu-west-1".into(), "arn:aws:kms:eu-west-1:111122223333:key/abc".into());
    let desired = graph(&pinned, "feedface");
    let hashes: Vec<(String, String)> = desired.topological().iter().map(|n| (n.id.clone(), n.spec_hash())).collect();
    let expected = [
        ("snapshot/demo-root-encrypted@us-east-1", "640a8bef2ee9cba0"),
        ("snapshot/demo-root@us-east-1", "290e321db57e9b71"),
        ("image/demo-gp3@us-east-1", "d8bc7d7b85d08fe4"),
        ("image/demo-standard@us-east-1", "ca43e5cbe2ceceae"),
        ("image/demo-gp3@eu-west-1", "d8bc7d7b85d08fe4"),
        ("image/demo-standard@eu-west-1", "bedbba916b92d656"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
    assert_eq!(hashes, expected);
    let copy = desired.get("image/demo-standard@eu-west-1").unwrap();
    assert_eq!(
        tags::encode_spec(&copy.spec.immutable()).unwrap(),
        "architecture=x86_64;boot_mode=uefi;ena=true;encrypted=true;imds=;kernel_id=;kms_key=arn:aws:kms:eu-west-1:111122223333:key/abc;ramdisk_id=;root_device=/dev/xvda;tpm=false;virtualization=hvm;volume_size_gib=1;volume_type=standard"
    );
}

/// Regression: a public AMI created long ago cannot take a deprecation time more than two
/// years after its creation; the plan explains instead of planning a call AWS refuses.
#[test]
fn a_deprecation_aws_would_refuse_for_an_old_public_ami_is_explained_not_planned() {
    let stack = Stack {
        sharing: Sharing { public: true, ..Sharing::default() },
        deprecation: Some(crate::deprecation::Deprecation::At(
            crate::deprecation::parse("2027-06-01T00:00:00Z").unwrap(),
        )),
        ..stack(&[VolumeType::Gp3], &["us-east-1"])
    };
    let desired = graph(&stack, "abc");
    let node = desired.nodes().find(|n| n.kind() == NodeKind::Image).unwrap().clone();
    let mut live = applied(&desired).into_iter().find(|r| r.kind == ResourceKind::Image).unwrap();
    live.public = true;
    live.deprecation = Some("2026-06-01T00:00:00Z".into());
    live.created = Some("2024-01-01T00:00:00.000Z".into());
    let change = compare::compare(&node, &live, NOW);
    assert_eq!(change.action, Action::NoOp, "{change:?}");
    assert!(
        change.reasons.iter().any(
            |r| matches!(r, Reason::Refused(why) if why.starts_with(REFUSED) && why.contains("more than 2 years"))
        ),
        "{change:?}"
    );
    live.created = Some("2026-01-01T00:00:00.000Z".into());
    assert_eq!(compare::compare(&node, &live, NOW).action, Action::Update, "within two years it is planned");
}

/// Deregistration protection changes in place, waits for a boot test like sharing, and every
/// delete of a protected AMI carries what it must lift and says so.
#[test]
fn protection_changes_in_place_and_a_protected_ami_is_lifted_before_it_goes() {
    use crate::cloud::{LiveProtection, Protection};
    let protected = Stack { protection: Some(Protection::WithCooldown), ..stack(&[VolumeType::Gp3], &["us-east-1"]) };
    let desired = graph(&protected, "aa");
    let mut live = applied(&desired);
    let plan_of =
        |live: &[LiveResource], destroy: bool| plan(&desired, &observed(live.to_vec()), &stacks(), destroy, NOW);
    let image = |plan: &Plan| action_of(plan, "image/demo-gp3@us-east-1")[0].clone();

    let change = image(&plan_of(&live, false));
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.diffs[0].attribute, Attribute::Protection);
    assert_eq!(
        (change.diffs[0].before.as_deref(), change.diffs[0].after.as_deref()),
        (Some("off"), Some("with-cooldown"))
    );

    let snapshot = live.iter().find(|r| r.kind == ResourceKind::Snapshot).unwrap().id.clone();
    let ami = live.iter_mut().find(|r| r.kind == ResourceKind::Image).unwrap();
    ami.protection = LiveProtection::On(Protection::WithCooldown);
    ami.snapshot_ids = vec![snapshot];
    assert!(!plan_of(&live, false).has_changes());
    let destroy = plan_of(&live, true);
    let destroyed = image(&destroy);
    assert_eq!(destroyed.action, Action::Delete);
    assert_eq!(destroyed.protection, LiveProtection::On(Protection::WithCooldown));
    assert!(
        destroyed.reasons.iter().any(|r| r.to_string().contains("with its cooldown AWS keeps the AMI 24 hours more"))
    );
    // AWS keeps the AMI past this run, and so the snapshot behind it: not waited on in vain.
    assert!(destroyed.with_snapshots.is_empty());
    let snapshot = destroy.changes.iter().find(|c| c.kind == NodeKind::Snapshot).unwrap();
    assert_eq!(snapshot.action, Action::NoOp, "{snapshot:?}");
    assert!(snapshot.reasons[0].to_string().starts_with("kept while ami-"), "{:?}", snapshot.reasons);

    // Lifted by an earlier run: nothing more to lift, and the cooldown is said with its end.
    let ami = live.iter_mut().find(|r| r.kind == ResourceKind::Image).unwrap();
    ami.protection = LiveProtection::CoolingDown { until: Some("2026-06-02T00:00:00Z".into()) };
    let destroyed = image(&plan_of(&live, true));
    assert!(destroyed.reasons.iter().any(|r| r.to_string().contains("until its cooldown ends (2026-06-02T00:00:00Z)")));
    // An apply during the cooldown leaves a no longer wanted AMI as it is, saying until when, and
    // deletes it once the cooldown is over.
    let other = Stack { protection: None, ..stack(&[VolumeType::Standard], &["us-east-1"]) };
    let dropped = plan(&graph(&other, "aa"), &observed(live.clone()), &stacks(), false, NOW);
    let kept = action_of(&dropped, "image/demo-gp3@us-east-1")[0];
    assert_eq!(kept.action, Action::NoOp, "{kept:?}");
    assert_eq!(kept.reasons.len(), 1, "{:?}", kept.reasons);
    let day_later = crate::deprecation::parse("2026-06-02T00:00:01Z").unwrap();
    let over = plan(&graph(&other, "aa"), &observed(live.clone()), &stacks(), false, day_later);
    assert_eq!(action_of(&over, "image/demo-gp3@us-east-1")[0].action, Action::Delete);
    let unprotected = Stack { protection: None, ..protected.clone() };
    let plan = plan(&graph(&unprotected, "aa"), &observed(live.clone()), &stacks(), false, NOW);
    assert!(!plan.has_changes(), "a cooldown under way is already what no protection asks for: {plan:#?}");

    // An AMI waiting for its boot test is not protected yet.
    let mut gated = desired.nodes().find(|n| n.kind() == NodeKind::Image).unwrap().clone();
    gated.gated = true;
    let ami = live.iter_mut().find(|r| r.kind == ResourceKind::Image).unwrap();
    ami.protection = LiveProtection::Off;
    assert_eq!(compare::compare(&gated, ami, NOW).action, Action::NoOp);
}

/// The account's public AMI quota is judged against the apply's peak: what is public now, less
/// what the apply deletes first, plus what it makes public.
#[test]
fn making_amis_public_past_the_accounts_quota_is_warned_of_before_the_apply() {
    use crate::cloud::{LiveProtection, Protection};
    use crate::resource::public_access::PublicImages;
    let public = Stack {
        sharing: Sharing { public: true, ..Sharing::default() },
        ..stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1", "eu-west-1"])
    };
    let desired = graph(&public, "aa");
    let account = |count: usize| {
        BTreeMap::from([
            ("us-east-1".to_string(), PublicImages { count, quota: Some(5) }),
            ("eu-west-1".to_string(), PublicImages { count: 0, quota: Some(5) }),
        ])
    };
    let plan_with = |live: Vec<LiveResource>, count: usize, destroy: bool| {
        let observed = Observed { public_images: account(count), ..observed(live) };
        plan(&desired, &observed, &stacks(), destroy, NOW)
    };
    let quota_warnings = |plan: &Plan| plan.warnings.iter().filter(|w| w.contains("ResourceLimitExceeded")).count();

    // Nothing live: two AMIs made public in each region; us-east-1 has 4 of its 5 already.
    let first = plan_with(vec![], 4, false);
    assert_eq!(quota_warnings(&first), 1, "{:?}", first.warnings);
    let said = first.warnings.iter().find(|w| w.contains("ResourceLimitExceeded")).unwrap();
    assert!(said.starts_with("us-east-1 has 4 public AMI(s) and this apply makes 2 more public"), "{said}");
    assert_eq!(quota_warnings(&plan_with(vec![], 3, false)), 0, "3 + 2 is the quota, not past it");

    // Live but private (an apply stopped before publishing): turning them public counts too.
    let mut live = applied(&desired);
    let first_us = plan_with(live.clone(), 4, false);
    assert_eq!(quota_warnings(&first_us), 1, "{:?}", first_us.warnings);
    // Public already: nothing is added, whatever the count.
    for image in live.iter_mut().filter(|r| r.kind == ResourceKind::Image) {
        image.public = true;
    }
    assert_eq!(quota_warnings(&plan_with(live.clone(), 9, false)), 0);
    assert_eq!(quota_warnings(&plan_with(vec![], 9, true)), 0, "a destroy makes nothing public");

    // A variant replaced by another: the dropped one's public AMI is deleted before the new one
    // is made, so 5 public of 5 stays within the quota.
    let other = Stack { variants: vec![public.variants[1].clone()], ..public.clone() };
    let mut live = applied(&graph(&Stack { variants: vec![public.variants[0].clone()], ..public.clone() }, "aa"));
    for image in live.iter_mut().filter(|r| r.kind == ResourceKind::Image) {
        image.public = true;
    }
    let swap_with = |protection: LiveProtection| {
        let mut live = live.clone();
        for image in live.iter_mut().filter(|r| r.kind == ResourceKind::Image) {
            image.protection = protection.clone();
        }
        let observed = Observed { public_images: account(5), ..observed(live) };
        plan(&graph(&other, "aa"), &observed, &stacks(), false, NOW)
    };
    let swapped = swap_with(LiveProtection::Off);
    assert!(swapped.changes.iter().any(|c| c.action == Action::Delete && c.kind == NodeKind::Image));
    assert_eq!(quota_warnings(&swapped), 0, "{:?}", swapped.warnings);
    // Protection without a cooldown is lifted and the AMI deregistered in the same run, as is
    // one whose cooldown is over; one lifted with a cooldown stays public past the run.
    let without_cooldown = swap_with(LiveProtection::On(Protection::WithoutCooldown));
    assert_eq!(quota_warnings(&without_cooldown), 0, "{:?}", without_cooldown.warnings);
    let cooled = swap_with(LiveProtection::CoolingDown { until: Some("2020-01-01T00:00:00Z".into()) });
    assert_eq!(quota_warnings(&cooled), 0, "{:?}", cooled.warnings);
    let with_cooldown = swap_with(LiveProtection::On(Protection::WithCooldown));
    assert!(with_cooldown.changes.iter().any(|c| c.action == Action::Delete && c.kind == NodeKind::Image));
    assert_eq!(quota_warnings(&with_cooldown), 1, "{:?}", with_cooldown.warnings);
}

/// AWS refuses to share one AMI with more accounts, organizations and OUs than the account's
/// "AMI sharing" quota: the plan says so where an AMI would gain one past it, against the quota
/// read, or AWS's default where none was.
#[test]
fn sharing_an_ami_past_the_accounts_sharing_quota_is_warned_of_before_the_apply() {
    let accounts = |n: usize| (0..n).map(|i| format!("{:012}", 100_000_000_000 + i)).collect();
    let shared = |n: usize| Stack {
        sharing: Sharing {
            accounts: accounts(n),
            organizations: BTreeSet::from(["arn:aws:organizations::111122223333:organization/o-abcdefghij".into()]),
            ..Sharing::default()
        },
        ..stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1", "eu-west-1"])
    };
    let plan_with = |stack: &Stack, live: Vec<LiveResource>, quotas: &[(&str, u32)]| {
        let sharing_quotas = quotas.iter().map(|(region, quota)| (region.to_string(), *quota)).collect();
        plan(&graph(stack, "aa"), &Observed { sharing_quotas, ..observed(live) }, &stacks(), false, NOW)
    };
    let warnings = |plan: &Plan| -> Vec<String> {
        plan.warnings.iter().filter(|w| w.contains("\"AMI sharing\"")).cloned().collect()
    };

    // 999 accounts and an organization: AWS's default, not past it.
    assert_eq!(warnings(&plan_with(&shared(999), vec![], &[])), Vec::<String>::new());
    // One more: past the default in both regions, two AMIs in each.
    let past = warnings(&plan_with(&shared(1_000), vec![], &[]));
    assert_eq!(past.len(), 2, "{past:?}");
    assert!(
        past[0].starts_with("eu-west-1: 2 AMI(s) are to be shared with 1001 accounts, organizations and OUs each: AWS's default quota is 1000 per AMI unless it was raised"),
        "{}",
        past[0]
    );
    assert!(past[0].contains("--quota-code L-70015FFA"), "{}", past[0]);
    // The quota read: raised in one region, not in the other.
    let raised = warnings(&plan_with(&shared(1_000), vec![], &[("us-east-1", 2_000), ("eu-west-1", 1_000)]));
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert!(raised[0].starts_with("eu-west-1:") && raised[0].contains("the account's quota there is 1000 per AMI"));

    // Live AMIs shared with all of them already gain nothing, whatever is known of the quota;
    // one more account is a gain again.
    let desired = graph(&shared(1_000), "aa");
    let mut live = applied(&desired);
    for image in live.iter_mut().filter(|r| r.kind == ResourceKind::Image) {
        image.sharing = Some(shared(1_000).sharing.clone());
        image.snapshot_sharing =
            image.snapshot_ids.iter().map(|s| (s.clone(), shared(1_000).sharing.for_snapshots())).collect();
    }
    assert_eq!(warnings(&plan_with(&shared(1_000), live.clone(), &[])), Vec::<String>::new());
    assert_eq!(warnings(&plan_with(&shared(1_001), live, &[])).len(), 2);
}

#[test]
fn nothing_live_means_create_everything_in_dependency_order() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]), "aa");
    let plan = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
    let order: Vec<(&str, Action)> = plan.changes.iter().map(|c| (c.node.as_str(), c.action)).collect();
    assert_eq!(
        order,
        vec![
            ("snapshot/demo-root@us-east-1", Action::Create),
            ("image/demo-gp3@us-east-1", Action::Create),
            ("image/demo-gp3@eu-west-1", Action::Create),
        ]
    );
}

#[test]
fn creates_say_what_they_make() {
    let mut stack = stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]);
    stack.sharing.accounts = BTreeSet::from(["111122223333".to_string()]);
    stack.deprecation = Some(crate::deprecation::Deprecation::After(30 * 24 * 3600));
    stack.test = None;
    let desired = graph(&stack, "aa");
    let plan = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
    let planned = |node: &str| &action_of(&plan, node)[0].planned;
    let image = planned("image/demo-gp3@us-east-1");
    for (attribute, value) in [
        ("architecture", "x86_64"),
        ("virtualization", "hvm"),
        ("boot_mode", "uefi"),
        ("volume_type", "gp3"),
        ("ena", "true"),
        ("encrypted", "false"),
        ("description", "Demo"),
        ("launch_permission", "account 111122223333"),
        ("deprecation", "2026-07-01T00:00:00Z (30 days after creation)"),
        ("tags.team", "os"),
    ] {
        assert_eq!(image.get(attribute).map(String::as_str), Some(value), "{attribute} in {image:#?}");
    }
    assert!(image.get("name").is_some_and(|n| n.starts_with("demo-gp3")), "{image:#?}");
    let copy = planned("image/demo-gp3@eu-west-1");
    assert_eq!(copy.get("copy_of").map(String::as_str), Some("image/demo-gp3@us-east-1"));
    assert_eq!(copy.get("launch_permission"), image.get("launch_permission"));
    let snapshot = planned("snapshot/demo-root@us-east-1");
    assert_eq!(snapshot.get("source").map(String::as_str), Some("disk.raw"));
    assert_eq!(snapshot.get("upload_bytes").map(String::as_str), Some("524288"));
    // An hour later the relative deprecation reads differently, and the plan saved before is
    // still the plan to apply.
    let later = crate::plan::plan(&desired, &observed(vec![]), &stacks(), false, NOW + 3600);
    assert_ne!(later.changes, plan.changes);
    assert_eq!(plan.binding(), later.binding(), "what a create will be is not compared");
    // Updates and unchanged nodes carry no such listing: their diffs say what changes.
    let unchanged = crate::plan::plan(&desired, &observed(applied(&desired)), &stacks(), false, NOW);
    assert!(unchanged.changes.iter().all(|c| c.planned.is_empty()), "{unchanged:#?}");
}

#[test]
fn storage_cost_counts_uploaded_data_and_copies_and_what_deletes_free() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]), "aa");
    let plan = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
    // One block with data (512 KiB) uploaded, and copied to eu-west-1 with the AMI.
    let added: Vec<(&str, u64, u64, bool)> =
        plan.cost.iter().map(|c| (c.region.as_str(), c.added_bytes, c.removed_bytes, c.at_most)).collect();
    assert_eq!(added, [("eu-west-1", 524_288, 0, false), ("us-east-1", 524_288, 0, false)]);
    assert!((plan.cost[1].usd_per_month() - 524_288.0 / 1e9 * cost::USD_PER_GB_MONTH).abs() < 1e-12);

    // Destroying frees the snapshots AWS reports the size of (3 GiB each here).
    let live = observed(applied(&desired));
    let destroy = crate::plan::plan(&desired, &live, &stacks(), true, NOW);
    let removed: Vec<(&str, u64)> = destroy.cost.iter().map(|c| (c.region.as_str(), c.removed_bytes)).collect();
    assert_eq!(removed, [("us-east-1", 3 << 30)]);
    assert!(destroy.cost[0].usd_per_month() < 0.0);
    // Nothing to do, nothing to pay.
    assert!(crate::plan::plan(&desired, &live, &stacks(), false, NOW).cost.is_empty());
}

#[test]
fn applied_state_plans_no_changes_deterministically() {
    let desired = graph(&stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1", "eu-west-1"]), "aa");
    let live = observed(applied(&desired));
    let first = plan(&desired, &live, &stacks(), false, NOW);
    assert!(!first.has_changes(), "{first:#?}");
    assert_eq!(first, plan(&desired, &live, &stacks(), false, NOW));
}

#[test]
fn immutable_changes_replace_with_reasons_and_mutable_ones_update() {
    let before = stack(&[VolumeType::Gp3], &["us-east-1"]);
    let live = observed(applied(&graph(&before, "aa")));
    let mut after = before.clone();
    after.variants[0].attrs.boot_mode = Some(BootMode::LegacyBios);
    after.description = Some("New".into());
    let plan = plan(&graph(&after, "aa"), &live, &stacks(), false, NOW);
    let image = action_of(&plan, "image/demo-gp3@us-east-1")[0];
    assert_eq!(image.action, Action::Replace);
    assert_eq!(image.reasons, vec!["boot_mode cannot change in place"]);
    assert_eq!(image.diffs[0].before.as_deref(), Some("uefi"));
    assert_eq!(image.with_snapshots, vec!["snap-of-ami-001"], "the replaced AMI's own snapshot goes too");

    let mut described = before.clone();
    described.description = Some("New".into());
    let plan = super::plan(&graph(&described, "aa"), &live, &stacks(), false, NOW);
    let image = action_of(&plan, "image/demo-gp3@us-east-1")[0];
    assert_eq!(image.action, Action::Update);
    assert_eq!(image.diffs[0].attribute, "description");
}

#[test]
fn a_new_source_digest_replaces_snapshot_and_image() {
    let desired = stack(&[VolumeType::Gp3], &["us-east-1"]);
    let live = observed(applied(&graph(&desired, "aa")));
    let plan = plan(&graph(&desired, "bb"), &live, &stacks(), false, NOW);
    assert!(plan.changes.iter().all(|c| c.action == Action::Replace), "{plan:#?}");
    assert!(plan.changes[0].diffs.iter().any(|d| d.attribute == "source_sha256"));
}

/// What older amiplan made is tagged with the whole file's SHA-256; once the file is known to
/// have that digest, its snapshot and AMIs are re-tagged in place, never made again.
#[test]
fn resources_tagged_with_the_whole_file_digest_are_retagged_not_replaced() {
    let desired = stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]);
    let legacy = "ab".repeat(32);
    let live = observed(applied(&graph(&desired, &legacy)));
    let with_digest = |file_sha256: &str| {
        let mut info = (*source("sha256-blocks:cd")).clone();
        info.file_sha256 = Some(file_sha256.to_string());
        let sources = HashMap::from([(desired.name.clone(), Prepared::Upload(Arc::new(info)))]);
        DesiredGraph::build(std::slice::from_ref(&desired), &sources)
    };
    let plan = plan(&with_digest(&legacy), &live, &stacks(), false, NOW);
    assert_eq!(plan.changes.len(), 3, "{plan:#?}");
    for change in &plan.changes {
        assert_eq!(change.action, Action::Update, "{change:#?}");
        let attributes: Vec<String> = change.diffs.iter().map(|d| d.attribute.to_string()).collect();
        assert_eq!(attributes, ["tags.amiplan:source", "tags.amiplan:spec"], "{}", change.node);
        assert_eq!(change.diffs[0].after.as_deref(), Some("sha256-blocks:cd"));
    }
    // Another file's digest is another image.
    let plan = super::plan(&with_digest(&"ef".repeat(32)), &live, &stacks(), false, NOW);
    assert!(plan.changes.iter().all(|c| c.action == Action::Replace), "{plan:#?}");
}

#[test]
fn untagged_ami_with_the_desired_name_is_adopted() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
    let mut live = applied(&desired);
    live[1].tags.clear();
    let plan = plan(&desired, &observed(live), &stacks(), false, NOW);
    let image = action_of(&plan, "image/demo-gp3@us-east-1")[0];
    assert_eq!(image.action, Action::Update);
    assert!(image.reasons[0].to_string().starts_with("adopt ami-001"));
    assert!(image.diffs.iter().any(|d| d.attribute == "tags.amiplan:node"));
}

/// A second AMI claiming the same node as `image`, made later.
fn later_twin(image: &LiveResource) -> LiveResource {
    LiveResource { id: "ami-999".into(), created: Some("2026-02-01T00:00:00Z".into()), ..image.clone() }
}

#[test]
fn duplicates_keep_the_oldest_and_delete_the_rest() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
    let mut live = applied(&desired);
    live.push(later_twin(&live[1]));
    let plan = plan(&desired, &observed(live), &stacks(), false, NOW);
    let changes = action_of(&plan, "image/demo-gp3@us-east-1");
    assert_eq!((changes[0].action, changes[0].live_id.as_deref()), (Action::NoOp, Some("ami-001")));
    assert_eq!((changes[1].action, changes[1].live_id.as_deref()), (Action::Delete, Some("ami-999")));
    assert_eq!(changes[1].reasons, vec!["duplicate of ami-001"]);
}

/// Of two AMIs for one node, an available one is kept over an older disabled one.
#[test]
fn an_available_duplicate_is_kept_over_a_disabled_one() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
    let mut live = applied(&desired);
    let twin = later_twin(&live[1]);
    live[1].state = State::Disabled;
    live.push(twin);
    let plan = plan(&desired, &observed(live), &stacks(), false, NOW);
    let changes = action_of(&plan, "image/demo-gp3@us-east-1");
    assert_eq!((changes[0].action, changes[0].live_id.as_deref()), (Action::NoOp, Some("ami-999")));
    assert_eq!((changes[1].action, changes[1].live_id.as_deref()), (Action::Delete, Some("ami-001")));
}

#[test]
fn removed_variants_are_deleted_and_foreign_resources_ignored() {
    let both = graph(&stack(&[VolumeType::Gp3, VolumeType::Standard], &["us-east-1"]), "aa");
    let mut live = applied(&both);
    let mut foreign = live[1].clone();
    foreign.id = "ami-other".into();
    foreign.name = Some("someone-else".into());
    foreign.tags = BTreeMap::from([(tags::STACK.into(), "other-stack".into())]);
    live.push(foreign);
    let only_gp3 = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
    let plan = plan(&only_gp3, &observed(live), &stacks(), false, NOW);
    let deletes: Vec<_> = plan.changes.iter().filter(|c| c.action == Action::Delete).collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].node, "image/demo-standard@us-east-1");
    assert_eq!(deletes[0].reasons, vec!["no longer in the manifests"]);
}

#[test]
fn destroy_deletes_everything_owned_dependents_first() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]), "aa");
    let plan = plan(&desired, &observed(applied(&desired)), &stacks(), true, NOW);
    let order: Vec<&str> = plan.changes.iter().map(|c| c.node.as_str()).collect();
    assert_eq!(order, vec!["image/demo-gp3@eu-west-1", "image/demo-gp3@us-east-1", "snapshot/demo-root@us-east-1"]);
    assert!(plan.changes.iter().all(|c| c.action == Action::Delete));
}

/// An AMI its owner disabled is left as it is, shared with no one, and said to be; destroy
/// still deregisters it (before its snapshot, which AWS keeps while the AMI is there).
#[test]
fn a_disabled_ami_is_left_as_it_is_and_still_destroyed() {
    let stack = Stack {
        sharing: Sharing { accounts: ["111122223333".to_string()].into(), ..Sharing::default() },
        ..stack(&[VolumeType::Gp3], &["us-east-1"])
    };
    let desired = graph(&stack, "aa");
    let mut live = applied(&desired);
    let image = live.iter_mut().find(|r| r.kind == ResourceKind::Image).unwrap();
    image.state = State::Disabled;
    image.sharing = Some(Sharing::default());
    let id = image.id.clone();
    let planned = plan(&desired, &observed(live.clone()), &stacks(), false, NOW);
    let held = action_of(&planned, "image/demo-gp3@us-east-1");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].action, Action::NoOp, "neither replaced nor shared: {held:?}");
    assert!(held[0].reasons.contains(&Reason::Disabled { id: id.clone() }), "{held:?}");
    assert!(planned.warnings.iter().any(|w| w.contains(&format!("{id} is disabled"))), "{:?}", planned.warnings);
    assert!(planned.changes.iter().all(|c| c.action == Action::NoOp), "{:#?}", planned.changes);
    let destroy = plan(&desired, &observed(live), &stacks(), true, NOW);
    let order: Vec<(&str, Action)> = destroy.changes.iter().map(|c| (c.node.as_str(), c.action)).collect();
    assert_eq!(order, [("image/demo-gp3@us-east-1", Action::Delete), ("snapshot/demo-root@us-east-1", Action::Delete)]);
}

#[test]
fn an_interrupted_upload_is_replaced_but_a_finished_pending_one_is_awaited() {
    let desired = graph(&stack(&[VolumeType::Gp3], &["us-east-1"]), "aa");
    let mut live = applied(&desired);
    live[0].state = State::Pending;
    let awaited = plan(&desired, &observed(live.clone()), &stacks(), false, NOW);
    assert_eq!(awaited.changes[0].action, Action::Update);
    live[0].tags.remove(tags::UPLOADED);
    let replaced = plan(&desired, &observed(live), &stacks(), false, NOW);
    assert_eq!(replaced.changes[0].action, Action::Replace);
}

#[test]
fn retention_keeps_the_newest_versions_and_spares_launch_template_amis() {
    let mut versioned = stack(&[VolumeType::Gp3], &["us-east-1"]);
    versioned.version = Some("3".into());
    versioned.keep_versions = Some(2);
    let desired = graph(&versioned, "c");
    let old = |version: &str, id: &str, day: u32| {
        let tags = BTreeMap::from([
            (tags::STACK.to_string(), "demo".to_string()),
            (tags::NODE.to_string(), format!("image/demo-{version}-gp3@us-east-1")),
            (tags::VERSION.to_string(), version.to_string()),
        ]);
        let mut live = LiveResource::new("us-east-1", ResourceKind::Image, id, State::Ready, tags);
        live.created = Some(format!("2026-01-{day:02}T00:00:00Z"));
        live
    };
    let mut state = observed(vec![old("1", "ami-v1", 1), old("2", "ami-v2", 2), old("0", "ami-v0", 3)]);
    let verdict = |plan: &Plan, id: &str| {
        let change = plan.changes.iter().find(|c| c.live_id.as_deref() == Some(id)).unwrap();
        (change.action, change.retire)
    };
    let plan = plan(&desired, &state, &BTreeSet::from(["demo".to_string()]), false, NOW);
    // Ranked by creation, newest first: 0 (day 3) stays as the one older version kept.
    assert_eq!(verdict(&plan, "ami-v0"), (Action::NoOp, false));
    assert_eq!(verdict(&plan, "ami-v2"), (Action::Delete, true));
    assert_eq!(verdict(&plan, "ami-v1"), (Action::Delete, true));

    state.launch_templates.insert("us-east-1".into(), BTreeMap::from([("ami-v1".into(), "web".into())]));
    let plan = super::plan(&desired, &state, &BTreeSet::from(["demo".to_string()]), false, NOW);
    assert_eq!(verdict(&plan, "ami-v1"), (Action::NoOp, false));
    let kept = plan.changes.iter().find(|c| c.live_id.as_deref() == Some("ami-v1")).unwrap();
    assert_eq!(kept.reasons, ["kept: launch template `web` still uses it"]);
}

/// A public stack built in us-east-1 and copied to eu-west-1, its AMI boot-tested first (the
/// test script lives in `dir`).
fn gated_graph(dir: &std::path::Path) -> DesiredGraph {
    gated_graph_with(dir, |_| {})
}

/// [`gated_graph`] of a stack `tweak` changed first.
fn gated_graph_with(dir: &std::path::Path, tweak: impl FnOnce(&mut Stack)) -> DesiredGraph {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("t.sh"), "true\n").unwrap();
    let mut gated = stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"]);
    gated.sharing = Sharing { public: true, ..Sharing::default() };
    gated.test = Some(crate::model::TestSpec {
        script: dir.join("t.sh"),
        instance_type: "t3.small".into(),
        timeout: std::time::Duration::from_secs(600),
        all_regions: false,
        subnet: None,
        reports: None,
        reports_bucket: None,
    });
    tweak(&mut gated);
    let job = crate::job::prepare_test("demo", &dir.join("t.sh"), None).unwrap();
    let sources = HashMap::from([(gated.name.clone(), Prepared::Upload(source("a")))]);
    DesiredGraph::build_with_tests(std::slice::from_ref(&gated), &sources, &HashMap::from([("demo".to_string(), job)]))
}

/// Nothing starts from a disabled AMI: not its boot test (AWS launches no disabled AMI), and not
/// the copies behind the test; each is said to wait for the AMI to be enabled.
#[test]
fn nothing_is_tested_or_copied_from_a_disabled_ami() {
    let dir = std::env::temp_dir().join(format!("amiplan-disabled-{}", std::process::id()));
    let desired = gated_graph(&dir);
    let mut live: Vec<LiveResource> =
        applied(&desired).into_iter().filter(|r| r.node() != Some("image/demo-gp3@eu-west-1")).collect();
    let image = live.iter_mut().find(|r| r.node() == Some("image/demo-gp3@us-east-1")).unwrap();
    image.state = State::Disabled;
    let id = image.id.clone();
    let planned = plan(&desired, &observed(live.clone()), &stacks(), false, NOW);
    let behind = Reason::BehindDisabled { image: id.clone() };
    for node in ["test/demo-gp3@us-east-1", "image/demo-gp3@eu-west-1"] {
        let held = action_of(&planned, node);
        assert_eq!((held[0].action, held[0].reasons.contains(&behind)), (Action::NoOp, true), "{node}: {held:?}");
        assert!(planned.warnings.iter().any(|w| w.starts_with(node) && w.contains(&id)), "{:?}", planned.warnings);
    }
    assert!(!planned.has_changes(), "{planned:#?}");

    // Enabled again, it is tested and copied.
    live.iter_mut().find(|r| r.id == id).unwrap().state = State::Ready;
    let enabled = plan(&desired, &observed(live), &stacks(), false, NOW);
    assert_eq!(action_of(&enabled, "test/demo-gp3@us-east-1")[0].action, Action::Create);
    assert_eq!(action_of(&enabled, "image/demo-gp3@eu-west-1")[0].action, Action::Create);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_untested_ami_is_kept_private_and_tested_before_anything_else() {
    let dir = std::env::temp_dir().join(format!("amiplan-gate-{}", std::process::id()));
    let desired = gated_graph(&dir);
    let copy = "image/demo-gp3@eu-west-1";
    assert!(desired.dependencies(copy).contains(&"test/demo-gp3@us-east-1"), "copies wait for the test");

    // Built, copied, but never tested: the test runs, and the AMI is wanted private meanwhile.
    let mut live = applied(&desired);
    for resource in &mut live {
        resource.public = true;
    }
    let stacks = BTreeSet::from(["demo".to_string()]);
    let untested = plan(&desired, &observed(live.clone()), &stacks, false, NOW);
    let change = |plan: &Plan, node: &str| plan.changes.iter().find(|c| c.node == node).unwrap().clone();
    assert_eq!(change(&untested, "test/demo-gp3@us-east-1").action, Action::Create);
    let build = change(&untested, "image/demo-gp3@us-east-1");
    assert!(build.diffs.iter().any(|d| d.attribute == "launch_permission" && d.after.as_deref() == Some("private")));

    for resource in &mut live {
        resource.tags.insert(tags::TESTED.into(), "job".into());
    }
    let tested = plan(&desired, &observed(live), &stacks, false, NOW);
    assert!(!tested.has_changes(), "{tested:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `build.keep_image: false`: the build region's AMI and snapshot are made only for copies that
/// must be made, kept while a copy is still to change, and removed once every copy exists.
#[test]
fn a_build_region_not_kept_is_made_for_copies_and_removed_after() {
    let stack = Stack {
        keep_build_image: false,
        sharing: Sharing { public: true, ..Sharing::default() },
        ..stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1", "ap-southeast-2"])
    };
    let desired = graph(&stack, "aa");
    // As apply leaves them: the copies public, the source private.
    let applied = |desired: &DesiredGraph| {
        let mut live = applied(desired);
        for copy in live.iter_mut().filter(|r| r.kind == ResourceKind::Image && r.region != "us-east-1") {
            copy.public = true;
        }
        live
    };
    let source_nodes = ["snapshot/demo-root@us-east-1", "image/demo-gp3@us-east-1"];
    let is_source = |r: &LiveResource| source_nodes.contains(&r.node().unwrap_or_default());
    let source = desired.get("image/demo-gp3@us-east-1").unwrap();
    assert!(!source.sharing.public, "the copies' source is never shared");
    assert!(desired.nodes().all(|n| n.region != "us-east-1" || n.kind() != NodeKind::PublicAccess));

    // First apply: the source is made, marked to go once copied, and not counted as storage.
    let first = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
    for node in source_nodes {
        let change = action_of(&first, node)[0];
        assert_eq!((change.action, change.until_copied), (Action::Create, true), "{change:?}");
        assert_eq!(change.reasons[0], Reason::UntilCopied);
    }
    let copy = action_of(&first, "image/demo-gp3@eu-west-1")[0];
    assert_eq!((copy.action, copy.until_copied), (Action::Create, false));
    assert!(first.cost.iter().all(|c| c.region != "us-east-1"), "{:?}", first.cost);

    // After it: the copies exist and the source is gone; nothing to do, nothing remade.
    let copied: Vec<LiveResource> = applied(&desired).into_iter().filter(|r| !is_source(r)).collect();
    let again = plan(&desired, &observed(copied.clone()), &stacks(), false, NOW);
    assert!(!again.has_changes(), "{:#?}", again.changes);
    assert!(source_nodes.iter().all(|n| action_of(&again, n).is_empty()), "{:#?}", again.changes);

    // A run stopped after the copies: the next plan removes the source.
    let left = plan(&desired, &observed(applied(&desired)), &stacks(), false, NOW);
    for node in source_nodes {
        let change = action_of(&left, node)[0];
        assert_eq!((change.action, &change.reasons[..]), (Action::Delete, &[Reason::CopiesExist][..]));
        assert!(change.until_copied, "{change:?}");
    }
    assert!(left.changes.iter().filter(|c| c.action != Action::NoOp).count() == 2, "{:#?}", left.changes);

    // A region added: the source is made again for its copy, the other copy stays.
    let added: Vec<LiveResource> = copied.iter().filter(|r| r.region != "ap-southeast-2").cloned().collect();
    let grown = plan(&desired, &observed(added), &stacks(), false, NOW);
    for node in source_nodes {
        assert_eq!(action_of(&grown, node)[0].action, Action::Create);
    }
    assert_eq!(action_of(&grown, "image/demo-gp3@ap-southeast-2")[0].action, Action::Create);
    assert_eq!(action_of(&grown, "image/demo-gp3@eu-west-1")[0].action, Action::NoOp);

    // A copy still pending keeps a source that exists, and does not make one that does not.
    let mut pending = applied(&desired);
    for live in pending.iter_mut().filter(|r| r.node() == Some("image/demo-gp3@eu-west-1")) {
        live.state = State::Pending;
    }
    let waiting = plan(&desired, &observed(pending.clone()), &stacks(), false, NOW);
    for node in source_nodes {
        let change = action_of(&waiting, node)[0];
        assert_eq!((change.action, change.until_copied), (Action::NoOp, true), "{change:?}");
    }
    pending.retain(|r| !is_source(r));
    let waiting = plan(&desired, &observed(pending), &stacks(), false, NOW);
    assert!(source_nodes.iter().all(|n| action_of(&waiting, n).is_empty()), "{:#?}", waiting.changes);

    // Destroy removes a source left behind like anything else.
    let destroy = plan(&desired, &observed(applied(&desired)), &stacks(), true, NOW);
    assert!(source_nodes.iter().all(|n| action_of(&destroy, n)[0].action == Action::Delete));
}

/// The boot test of a source that is not kept runs when copies are to be made, never for a
/// source that is gone.
#[test]
fn the_test_of_a_source_not_kept_runs_only_for_new_copies() {
    let stack = Stack {
        keep_build_image: false,
        test: Some(crate::model::TestSpec {
            script: PathBuf::from("test.sh"),
            instance_type: "t3.micro".into(),
            timeout: std::time::Duration::from_secs(600),
            all_regions: false,
            subnet: None,
            reports: None,
            reports_bucket: None,
        }),
        ..stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1"])
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.sh"), "true\n").unwrap();
    let job = crate::job::prepare_test("demo", &dir.path().join("test.sh"), None).unwrap();
    let sources = HashMap::from([(stack.name.clone(), Prepared::Upload(source("aa")))]);
    let tests = HashMap::from([(stack.name.clone(), job)]);
    let desired = DesiredGraph::build_with_tests(std::slice::from_ref(&stack), &sources, &tests);
    let first = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
    assert_eq!(action_of(&first, "test/demo-gp3@us-east-1")[0].action, Action::Create);
    let copied: Vec<LiveResource> = applied(&desired).into_iter().filter(|r| r.region != "us-east-1").collect();
    let again = plan(&desired, &observed(copied), &stacks(), false, NOW);
    assert!(action_of(&again, "test/demo-gp3@us-east-1").is_empty(), "{:#?}", again.changes);
    assert!(!again.has_changes());
}

/// With a helper, `build.keep_image: false` decides whether the build runs: for copies still to
/// make, never once they exist and the source is gone.
#[test]
fn a_helper_build_runs_for_the_source_of_new_copies_only() {
    let origin = Origin::Url {
        url: "https://images.internal/demo.raw".into(),
        sha256: "ab".repeat(32),
        format: crate::manifest::raw::ImageFormat::Raw,
    };
    let stack = Stack {
        keep_build_image: false,
        source: origin.clone(),
        helper: Some(crate::model::HelperSpec {
            ami: crate::manifest::raw::HelperAmi::Id("ami-0a1b2c3d4e5f60718".into()),
            instance_type: "t3.small".into(),
            volume_type: VolumeType::Gp3,
            spot: false,
            timeout: std::time::Duration::from_secs(1800),
            subnet: None,
        }),
        volume_size_gib: Some(2),
        ..stack(&[VolumeType::Gp3], &["us-east-1", "eu-west-1", "ap-southeast-2"])
    };
    let job = crate::job::prepare("demo", &origin).unwrap();
    let sources = HashMap::from([(stack.name.clone(), Prepared::Helper(job))]);
    let desired = DesiredGraph::build(std::slice::from_ref(&stack), &sources);
    let builds = |plan: &Plan| {
        plan.changes.iter().filter(|c| c.transient && c.action == Action::Create).map(|c| c.kind).collect::<Vec<_>>()
    };
    let first = plan(&desired, &observed(vec![]), &stacks(), false, NOW);
    assert!(builds(&first).contains(&NodeKind::Helper), "{:#?}", first.changes);

    // The copies made and the source gone (only images and snapshots are left by a build).
    let copied: Vec<LiveResource> = applied(&desired)
        .into_iter()
        .filter(|r| r.region != "us-east-1" && matches!(r.kind, ResourceKind::Image | ResourceKind::Snapshot))
        .collect();
    let again = plan(&desired, &observed(copied.clone()), &stacks(), false, NOW);
    assert!(builds(&again).is_empty(), "{:#?}", again.changes);
    assert!(!again.has_changes(), "{:#?}", again.changes);

    // One copy missing: the build runs again to make its source.
    let fewer: Vec<LiveResource> = copied.into_iter().filter(|r| r.region != "ap-southeast-2").collect();
    let grown = plan(&desired, &observed(fewer), &stacks(), false, NOW);
    assert!(builds(&grown).contains(&NodeKind::Helper), "{:#?}", grown.changes);
    assert_eq!(action_of(&grown, "snapshot/demo-root@us-east-1")[0].action, Action::Create);
}

/// A boot test whose instance type cannot launch the AMI it tests is warned of before anything
/// is made (EC2 would refuse the launch once the AMI exists); a type that can says nothing, nor
/// does one EC2 does not describe (the offerings' warning speaks for it).
#[test]
fn a_boot_test_type_that_cannot_launch_its_ami_is_warned_of() {
    use crate::cloud::{Ena, InstanceTypeTraits};
    let dir = std::env::temp_dir().join(format!("amiplan-test-type-{}", std::process::id()));
    let t3_small = InstanceTypeTraits {
        architectures: vec![Architecture::X86_64],
        virtualizations: vec![Virtualization::Hvm],
        boot_modes: vec![BootMode::LegacyBios, BootMode::Uefi],
        ena: Ena::Required,
        nitro_tpm: true,
    };
    let warned = |desired: &DesiredGraph, described: bool| {
        let instance_types =
            BTreeMap::from_iter(described.then(|| ("t3.small@us-east-1".to_string(), t3_small.clone())));
        let planned = plan(desired, &Observed { instance_types, ..observed(vec![]) }, &stacks(), false, NOW);
        planned.warnings.into_iter().filter(|w| w.starts_with("test/demo-gp3@us-east-1")).collect::<Vec<_>>()
    };
    assert_eq!(warned(&gated_graph(&dir), true), Vec::<String>::new());
    let without_ena = gated_graph_with(&dir, |stack| stack.variants[0].attrs.ena = false);
    let said = warned(&without_ena, true);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("t3.small cannot launch the AMI it tests, as it requires ENA"), "{}", said[0]);
    assert_eq!(warned(&without_ena, false), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}
