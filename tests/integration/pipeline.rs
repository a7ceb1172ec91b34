//! The pipeline the commands run (saved plans, locks, interrupts, review and exit codes), driven
//! against the in-process fake cloud: fast, and without the binary.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use amiplan::apply::ApplyOptions;
use amiplan::cloud::retry::RetryPolicy;
use amiplan::lock;
use amiplan::observe::RegionScope;
use amiplan::pipeline::{self, Converged, Review, Run, SavedPlan, SavedPlanError, Workspace, exit};
use amiplan::plan::Plan;

use crate::fake::FakeCloud;
use crate::support::*;

/// A directory with a disk image and a manifest with `description`.
fn setup(name: &str, description: &str) -> PathBuf {
    let dir = workdir(name);
    sample_image(&dir.join("disk.raw"), 3, 11);
    write_manifest(&dir, description);
    dir
}

fn write_manifest(dir: &Path, description: &str) {
    let manifest = StackManifest { description: description.into(), ..StackManifest::small("pl") };
    std::fs::write(dir.join("m.yaml"), manifest.yaml()).unwrap();
}

async fn load(dir: &Path) -> Workspace {
    Workspace::load(&[dir.join("m.yaml")]).await.unwrap()
}

fn run(destroy: bool) -> Run {
    let options = ApplyOptions { policy: RetryPolicy::fast(), ..ApplyOptions::default() };
    Run { regions: RegionScope::Manifest, prune: false, destroy, lock_timeout: Duration::ZERO, options }
}

/// A review that approves (and counts the plans it saw), or declines.
struct Reviewer {
    approve: bool,
    seen: Cell<usize>,
}

impl Reviewer {
    fn approving() -> Reviewer {
        Reviewer { approve: true, seen: Cell::new(0) }
    }

    fn declining() -> Reviewer {
        Reviewer { approve: false, seen: Cell::new(0) }
    }
}

impl Review for Reviewer {
    fn approve(&self, _plan: &Plan, verb: &str) -> anyhow::Result<()> {
        self.seen.set(self.seen.get() + 1);
        if self.approve { Ok(()) } else { Err(anyhow::anyhow!("{verb} declined")) }
    }
}

async fn converge(cloud: &FakeCloud, dir: &Path, run: &Run, saved: Option<&Plan>, review: &Reviewer) -> Converged {
    let workspace = load(dir).await;
    pipeline::converge(cloud, &workspace, run, saved, review, &AtomicBool::new(false)).await.unwrap()
}

/// A plan as `plan --out` saves it (raw images read before planning).
async fn plan_now(cloud: &FakeCloud, dir: &Path) -> Plan {
    let workspace = load(dir).await;
    workspace.read_raw_sources().await.unwrap();
    let observed = workspace.observe(cloud, RegionScope::Manifest).await.unwrap();
    workspace.plan(&observed, false)
}

#[tokio::test]
async fn apply_then_nothing_to_do_with_exit_codes_and_locks_released() {
    let dir = setup("pipeline-converge", "First");
    let cloud = FakeCloud::default();
    let review = Reviewer::approving();
    let applied = converge(&cloud, &dir, &run(false), None, &review).await;
    assert!(matches!(&applied, Converged::Applied { report, .. } if report.succeeded()), "{applied:?}");
    assert_eq!((applied.exit_code(), review.seen.get()), (exit::OK, 1));
    assert!(cloud.locks().is_empty(), "the lock is released");
    assert_eq!(cloud.images("eu-west-1").len(), 1);

    let again = converge(&cloud, &dir, &run(false), None, &review).await;
    assert!(matches!(again, Converged::NoChanges(_)), "{again:?}");
    assert_eq!((again.exit_code(), review.seen.get()), (exit::OK, 1), "nothing to review");

    let outputs = pipeline::outputs(&cloud, &load(&dir).await).await.unwrap();
    let amis = &outputs.stacks["pl"]["pl-x86_64-gp3"];
    assert_eq!(amis.keys().collect::<Vec<_>>(), ["eu-west-1", "us-east-1"]);
    assert!(amis.values().all(|ami| ami.current && ami.image_id.starts_with("ami-")), "{outputs:?}");

    let destroyed = converge(&cloud, &dir, &run(true), None, &review).await;
    assert_eq!(destroyed.exit_code(), exit::OK);
    assert!(cloud.images("us-east-1").is_empty() && cloud.images("eu-west-1").is_empty());
    assert!(cloud.locks().is_empty());
}

#[tokio::test]
async fn a_failed_node_exits_with_an_error_and_a_declined_review_changes_nothing() {
    let dir = setup("pipeline-failures", "First");
    let cloud = FakeCloud::default();
    let declined = pipeline::converge(
        &cloud,
        &load(&dir).await,
        &run(false),
        None,
        &Reviewer::declining(),
        &AtomicBool::new(false),
    )
    .await;
    assert!(declined.unwrap_err().to_string().contains("apply declined"));
    assert_eq!(cloud.calls("UploadSnapshot"), 0, "nothing was made");
    assert!(cloud.locks().is_empty(), "the lock is released after a refusal too");

    cloud.fail("CopyImage", "eu-west-1", "AccessDenied");
    let failed = converge(&cloud, &dir, &run(false), None, &Reviewer::approving()).await;
    assert_eq!(failed.exit_code(), exit::ERROR, "{failed:?}");
    assert!(cloud.locks().is_empty());
}

#[tokio::test]
async fn an_interrupt_before_the_work_starts_skips_everything_and_exits_130() {
    let dir = setup("pipeline-interrupt", "First");
    let cloud = FakeCloud::default();
    let interrupted = AtomicBool::new(true);
    let workspace = load(&dir).await;
    let review = Reviewer::approving();
    let converged = pipeline::converge(&cloud, &workspace, &run(false), None, &review, &interrupted).await.unwrap();
    assert!(matches!(&converged, Converged::Applied { report, .. } if report.interrupted), "{converged:?}");
    assert_eq!(converged.exit_code(), exit::INTERRUPTED);
    assert_eq!(cloud.calls("UploadSnapshot"), 0);
    assert!(cloud.locks().is_empty());
}

#[tokio::test]
async fn a_stack_locked_by_a_live_run_is_refused_and_its_lock_kept() {
    let dir = setup("pipeline-locked", "First");
    let cloud = FakeCloud::default();
    let far_future = (u64::MAX / 2).to_string();
    let other = BTreeMap::from([
        (lock::HOLDER.to_string(), "someone@elsewhere pid 1".to_string()),
        (lock::EXPIRES.to_string(), far_future),
        (lock::HOST.to_string(), "elsewhere".to_string()),
        (lock::PID.to_string(), "1".to_string()),
    ]);
    cloud.hold_lock("us-east-1", "amiplan-lock-pl", other);
    let workspace = load(&dir).await;
    let result =
        pipeline::converge(&cloud, &workspace, &run(false), None, &Reviewer::approving(), &AtomicBool::new(false))
            .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("stack `pl` is locked by someone@elsewhere"), "{error}");
    assert_eq!(cloud.locks().len(), 1, "the other run's lock stays");
    assert_eq!(cloud.calls("UploadSnapshot"), 0);
}

#[tokio::test]
async fn a_saved_plan_applies_only_while_manifests_and_live_state_are_unchanged() {
    let dir = setup("pipeline-saved", "First");
    let cloud = FakeCloud::default();
    let file = dir.join("plan.json");
    let saved = SavedPlan {
        paths: vec![dir.join("m.yaml")],
        regions: RegionScope::Manifest,
        prune: false,
        unread_files: Default::default(),
        plan: plan_now(&cloud, &dir).await,
    };
    saved.write(&file).unwrap();
    let read = SavedPlan::read(&file).unwrap();

    // The manifest changed: refused before anything is done.
    write_manifest(&dir, "Second");
    let workspace = load(&dir).await;
    let review = Reviewer::approving();
    let refused =
        pipeline::converge(&cloud, &workspace, &run(false), Some(&read.plan), &review, &AtomicBool::new(false)).await;
    let error = refused.unwrap_err();
    assert!(matches!(error.downcast_ref::<SavedPlanError>(), Some(SavedPlanError::DesiredChanged)), "{error}");
    assert_eq!((review.seen.get(), cloud.calls("UploadSnapshot")), (0, 0));
    assert!(cloud.locks().is_empty());

    // Back as planned, but live state changed meanwhile (another run applied): refused too.
    write_manifest(&dir, "First");
    assert_eq!(converge(&cloud, &dir, &run(false), None, &review).await.exit_code(), exit::OK);
    let workspace = load(&dir).await;
    let stale =
        pipeline::converge(&cloud, &workspace, &run(false), Some(&read.plan), &review, &AtomicBool::new(false)).await;
    let error = stale.unwrap_err();
    assert!(matches!(error.downcast_ref::<SavedPlanError>(), Some(SavedPlanError::LiveChanged)), "{error}");

    // A plan saved now, written and read back (its reasons are text then), applies.
    let regions = RegionScope::Manifest;
    let other = StackManifest { volume_types: vec!["standard"], ..StackManifest::small("pl") };
    std::fs::write(dir.join("m.yaml"), StackManifest { description: "First".into(), ..other }.yaml()).unwrap();
    let fresh = plan_now(&cloud, &dir).await;
    assert!(fresh.changes.iter().any(|c| c.reasons == ["no longer in the manifests"]), "{fresh:#?}");
    SavedPlan { paths: vec![dir.join("m.yaml")], regions, prune: false, unread_files: Default::default(), plan: fresh }
        .write(&file)
        .unwrap();
    let read = SavedPlan::read(&file).unwrap();
    let applied = converge(&cloud, &dir, &run(false), Some(&read.plan), &review).await;
    assert_eq!(applied.exit_code(), exit::OK, "{applied:?}");
    let names: Vec<_> = cloud.images("eu-west-1").into_iter().filter_map(|i| i.name).collect();
    assert_eq!(names, ["pl-x86_64-standard"]);
}

#[test]
fn saved_plans_of_another_format_or_of_a_destroy_are_refused() {
    let dir = workdir("pipeline-saved-format");
    let file = dir.join("plan.json");
    std::fs::write(&file, "not json").unwrap();
    assert!(matches!(SavedPlan::read(&file), Err(SavedPlanError::Format { .. })));
    assert!(matches!(SavedPlan::read(&dir.join("missing.json")), Err(SavedPlanError::Read { .. })));
    let plan = |format: u32, destroy: bool| {
        serde_json::json!({"paths": [], "regions": "manifest", "plan": {
            "format": format, "account": "1", "destroy": destroy, "desired": "d", "observed": "o", "changes": []
        }})
        .to_string()
    };
    std::fs::write(&file, plan(99, false)).unwrap();
    assert!(matches!(SavedPlan::read(&file), Err(SavedPlanError::Version { found: 99, .. })));
    std::fs::write(&file, plan(amiplan::plan::PLAN_FORMAT, true)).unwrap();
    assert!(matches!(SavedPlan::read(&file), Err(SavedPlanError::Destroy { .. })));
    std::fs::write(&file, plan(amiplan::plan::PLAN_FORMAT, false)).unwrap();
    assert!(SavedPlan::read(&file).is_ok());
}

#[tokio::test]
async fn a_build_region_outside_regions_is_shown_in_the_plan() {
    let dir = setup("pipeline-build-region", "First");
    let manifest = StackManifest { regions: vec!["eu-west-1"], ..StackManifest::small("pl") };
    std::fs::write(dir.join("m.yaml"), manifest.yaml()).unwrap();
    let plan = plan_now(&FakeCloud::default(), &dir).await;
    let notice = plan.warnings.iter().find(|w| w.contains("`regions` does not list the build region us-east-1"));
    assert!(notice.is_some_and(|n| n.contains("m.yaml:")), "{:#?}", plan.warnings);
    // It is what the plan does: the AMI is made in the build region, and copied from there.
    let creates: Vec<&str> = plan.changes.iter().filter(|c| c.region == "us-east-1").map(|c| c.node.as_str()).collect();
    assert!(creates.contains(&"image/pl-x86_64-gp3@us-east-1"), "{creates:?}");
    let markdown = amiplan::render::markdown::plan(&plan, 65_535, "");
    assert!(markdown.contains("> [!WARNING]\n> - ") && markdown.contains("does not list the build region"));
}

#[tokio::test]
async fn a_stack_no_manifest_declares_is_reported_and_pruned_only_when_asked() {
    let cloud = FakeCloud::default();
    let review = Reviewer::approving();
    let kept = setup("pipeline-prune-kept", "Kept");
    let gone = workdir("pipeline-prune-gone");
    sample_image(&gone.join("disk.raw"), 3, 12);
    std::fs::write(gone.join("m.yaml"), StackManifest::small("gone").yaml()).unwrap();
    for dir in [&kept, &gone] {
        let applied = converge(&cloud, dir, &run(false), None, &review).await;
        assert_eq!(applied.exit_code(), exit::OK, "{applied:?}");
    }
    assert_eq!(cloud.images("eu-west-1").len(), 2);

    // Planned from the kept manifest alone, the other stack is reported, not planned.
    let plan = plan_now(&cloud, &kept).await;
    assert!(!plan.has_changes(), "{plan:#?}");
    let orphan = plan.orphaned.iter().find(|o| o.stack == "gone").expect("the stack is reported");
    assert_eq!(orphan.regions, BTreeMap::from([("eu-west-1".into(), 1), ("us-east-1".into(), 2)]));
    assert_eq!(orphan.kinds, BTreeMap::from([("image".into(), 2), ("snapshot".into(), 1)]));
    let shown = amiplan::render::plan(&plan, amiplan::render::Style { color: false }, false);
    assert!(
        shown.contains("not declared: stack gone owns 3 resource(s) (1 in eu-west-1, 2 in us-east-1: 2 image, 1 snapshot) and no manifest given declares it; `--prune` plans their deletion"),
        "{shown}"
    );
    let again = converge(&cloud, &kept, &run(false), None, &review).await;
    assert!(matches!(again, Converged::NoChanges(_)), "without --prune nothing of it goes: {again:?}");
    assert_eq!(cloud.images("eu-west-1").len(), 2);

    // With --prune its resources are planned for deletion, and go; the kept stack stays.
    let workspace = load(&kept).await;
    let observed = workspace.observe(&cloud, RegionScope::Manifest).await.unwrap();
    let pruning = workspace.plan_pruning(&observed, false, true);
    let deletes: Vec<(&str, &str, usize)> = pruning
        .changes
        .iter()
        .filter(|c| c.action == amiplan::plan::Action::Delete)
        .map(|c| (c.stack.as_str(), c.region.as_str(), c.with_snapshots.len()))
        .collect();
    // Each AMI takes its snapshot with it.
    assert_eq!(deletes, [("gone", "eu-west-1", 1), ("gone", "us-east-1", 1)], "{pruning:#?}");
    let pruned = converge(&cloud, &kept, &Run { prune: true, ..run(false) }, None, &review).await;
    assert_eq!(pruned.exit_code(), exit::OK, "{pruned:?}");
    for region in ["eu-west-1", "us-east-1"] {
        let left: Vec<String> = cloud.images(region).iter().map(|i| i.tags["amiplan:stack"].clone()).collect();
        assert_eq!(left, ["pl"], "{region}");
    }
    assert!(plan_now(&cloud, &kept).await.orphaned.is_empty());
}

/// Destroy, output and the distribution commands act on what is live: they read none of the
/// files a manifest names and need none of them there, yet see every node the stack may own.
#[tokio::test]
async fn a_workspace_for_live_state_reads_no_file_and_needs_none() {
    let dir = setup("live-state", "live state only");
    let manifest = [dir.join("m.yaml")];
    let ids = |workspace: &Workspace| workspace.graph.nodes().map(|n| n.id.clone()).collect::<Vec<_>>();
    let full = Workspace::load(&manifest).await.unwrap();
    let live_only = Workspace::load_without_files(&manifest).await.unwrap();
    assert_eq!(ids(&live_only), ids(&full));
    assert_eq!(full.sources().count(), 1);
    assert_eq!(live_only.sources().count(), 0, "nothing was inspected");
    let cloud = FakeCloud::default();
    let review = Reviewer::approving();
    assert_eq!(converge(&cloud, &dir, &run(false), None, &review).await.exit_code(), exit::OK);
    assert_eq!(cloud.images("eu-west-1").len(), 1);

    std::fs::remove_file(dir.join("disk.raw")).unwrap();
    let refused = Workspace::load(&manifest).await.err().expect("a plan needs the image");
    assert!(format!("{refused:#}").contains("disk.raw` does not exist or is not a file"), "{refused:#}");
    let gone = Workspace::load_without_files(&manifest).await.unwrap();
    assert_eq!(ids(&gone), ids(&full));
    // Such a workspace deletes what the stack owns, and can never make anything.
    let refused = pipeline::converge(&cloud, &gone, &run(false), None, &review, &AtomicBool::new(false)).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("can only destroy")));
    assert_eq!(review.seen.get(), 1, "only the first apply was reviewed");
    let destroyed = pipeline::converge(&cloud, &gone, &run(true), None, &review, &AtomicBool::new(false)).await;
    assert_eq!(destroyed.unwrap().exit_code(), exit::OK);
    assert!(cloud.images("us-east-1").is_empty() && cloud.images("eu-west-1").is_empty());
    assert!(cloud.locks().is_empty());

    // The paths themselves are still checked: none may lead out of the manifest's directory.
    let text = std::fs::read_to_string(&manifest[0]).unwrap().replace("file: disk.raw", "file: ../disk.raw");
    std::fs::write(&manifest[0], text).unwrap();
    let outside = Workspace::load_without_files(&manifest).await.err().expect("a path out is refused");
    assert!(format!("{outside:#}").contains("must be a relative path inside the manifest's directory"), "{outside:#}");
}

/// Destroy, unlock and policy read no upstream: with the one a manifest tracks answering
/// nothing (a plan is refused at `source.upstream`), their stacks and workspace load without a
/// request to it, and the workspace still has every node kind a build may leave.
#[tokio::test(flavor = "multi_thread")]
async fn removing_a_stack_reads_no_upstream() {
    let files = Files::start().await;
    let dir = workdir("removal-upstream");
    let manifest = dir.join("stack.yaml");
    let text = format!(
        "stack: tracked
# As Fedora publishes: no index, one CHECKSUM file the name pattern picks from.
source: {{ upstream: {{ checksums: {url}/CHECKSUM, file: \"Cloud-{{version}}.x86_64.raw.xz\" }} }}
build: {{ region: us-east-1, method: helper, volume_size: 2, helper: {{ ami: ami-0abc1234def567890 }} }}
image: {{ name: \"tracked-{{version}}\", architecture: x86_64 }}
regions: [us-east-1]
",
        url = files.url
    );
    std::fs::write(&manifest, text).unwrap();
    let paths = [manifest];

    let refused = Workspace::load(&paths).await.err().expect("a plan needs what upstream names");
    assert!(format!("{refused:#}").contains("stack.yaml:3:"), "{refused:#}");
    assert!(format!("{refused:#}").contains("CHECKSUM"), "{refused:#}");
    let asked = files.requests();
    assert!(asked > 0);

    let removal = Workspace::load_without_sources(&paths).await.unwrap();
    let stacks = pipeline::load_stacks_without_sources(&paths).unwrap();
    assert_eq!(files.requests(), asked, "upstream was not read");
    assert_eq!(stacks[0].name, "tracked");
    assert_eq!(pipeline::lock_sites(&stacks).len(), 1);
    let kinds: std::collections::BTreeSet<String> = removal.graph.nodes().map(|n| format!("{:?}", n.kind())).collect();
    for kind in ["Helper", "Volume", "Snapshot", "Image"] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
}
