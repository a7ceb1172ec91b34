//! The planner and executor against the in-process fake cloud (fake.rs): what moto cannot show.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use amiplan::apply::{ApplyOptions, Outcome, Report, apply};
use amiplan::cloud::retry::RetryPolicy;
use amiplan::graph::DesiredGraph;
use amiplan::observe::{RegionScope, observe};
use amiplan::plan::{Action, Plan, plan};
use amiplan::source::Prepared;

use crate::fake::{FakeCloud, Made};
use crate::support::*;

/// Every attribute an AMI can have, in three regions; `description` and `regions` vary.
fn manifest(description: &str, regions: &[&str]) -> String {
    format!(
        "stack: fk
source: {{ file: disk.raw }}
build: {{ region: us-east-1 }}
image:
  name: \"fk-{{volume_type}}-{{encryption}}\"
  description: {description}
  architecture: arm64
  boot_mode: uefi
  tpm: true
  imds: v2.0
  ena: true
  kms_keys: {{ eu-west-1: alias/eu-key }}
variants:
  volume_type: [gp3, standard]
  encrypted: [false, true]
regions: [{}]
",
        regions.join(", ")
    )
}

fn default_manifest() -> String {
    manifest("First", &REGIONS)
}

fn desired(dir: &Path, text: &str) -> DesiredGraph {
    let path = dir.join("m.yaml");
    std::fs::write(&path, text).unwrap();
    let loaded = amiplan::manifest::parse(&path, text).unwrap();
    let stacks = amiplan::model::validate(&[loaded]).unwrap();
    let mut sources = HashMap::new();
    for stack in &stacks {
        let (path, _) = stack.local_source().unwrap();
        sources.insert(
            stack.name.clone(),
            Prepared::Upload(std::sync::Arc::new(amiplan::source::inspect_with(path, None, None).unwrap())),
        );
    }
    DesiredGraph::build(&stacks, &sources)
}

async fn plan_for(cloud: &FakeCloud, graph: &DesiredGraph) -> Plan {
    let stacks = vec!["fk".to_string()];
    let observed = observe(cloud, graph, &stacks, RegionScope::All, "us-east-1").await.unwrap();
    plan(graph, &observed, &BTreeSet::from(["fk".to_string()]), false, amiplan::deprecation::now())
}

async fn run(cloud: &FakeCloud, graph: &DesiredGraph) -> Report {
    run_with(cloud, graph, ApplyOptions::default().parallelism).await
}

async fn run_with(cloud: &FakeCloud, graph: &DesiredGraph, parallelism: usize) -> Report {
    let plan = plan_for(cloud, graph).await;
    let options = ApplyOptions { policy: RetryPolicy::fast(), parallelism, ..ApplyOptions::default() };
    apply(cloud, &plan, graph, &options, &AtomicBool::new(false)).await
}

fn setup(name: &str) -> std::path::PathBuf {
    let dir = workdir(name);
    sample_image(&dir.join("disk.raw"), 3, 7);
    dir
}

#[tokio::test]
async fn every_attribute_reaches_the_calls_and_a_second_plan_is_empty() {
    let dir = setup("fake-attrs");
    let graph = desired(&dir, &default_manifest());
    // Resources stay invisible, then pending, for two polls each: waits must ride it out.
    let cloud = FakeCloud::with_lag(2);
    let report = run(&cloud, &graph).await;
    assert!(report.succeeded(), "{report:#?}");

    let made = cloud.made();
    let uploads: Vec<_> = made.iter().filter_map(|(_, id, m)| matches!(m, Made::Uploaded(_)).then_some(id)).collect();
    assert_eq!(uploads.len(), 2, "one snapshot per encryption setting");
    for (region, _, made) in &made {
        match made {
            Made::Registered(r) => {
                assert_eq!(region, "us-east-1");
                let a = &r.attrs;
                assert_eq!((a.architecture.as_str(), a.virtualization.as_str()), ("arm64", "hvm"));
                assert_eq!(a.boot_mode.map(|m| m.as_str()), Some("uefi"));
                assert!(a.tpm && a.ena && a.imds.is_some());
                assert!(uploads.contains(&&r.snapshot_id), "registered from an uploaded snapshot");
                assert_eq!(r.volume_size_gib, 1);
                assert_eq!(r.tags["amiplan:node"], format!("image/{}@us-east-1", r.name));
            }
            Made::Copied(c) => {
                assert_eq!(c.source_region, "us-east-1");
                assert_eq!(c.encrypted, c.name.ends_with("-encrypted"));
                let expected_key = (c.encrypted && region == "eu-west-1").then(|| "alias/eu-key".to_string());
                assert_eq!(c.kms_key, expected_key, "{region} {}", c.name);
                assert_eq!(c.client_token.len(), 32);
            }
            Made::Uploaded(u) => assert_eq!(u.tags["amiplan:stack"], "fk"),
        }
    }
    assert_eq!(made.len(), 2 + 4 + 8);
    let again = plan_for(&cloud, &graph).await;
    assert!(!again.has_changes(), "{again:#?}");
}

#[tokio::test]
async fn description_changes_converge_in_place() {
    let dir = setup("fake-description");
    let cloud = FakeCloud::default();
    assert!(run(&cloud, &desired(&dir, &default_manifest())).await.succeeded());
    let graph = desired(&dir, &manifest("Second", &REGIONS));
    let plan = plan_for(&cloud, &graph).await;
    assert_eq!(plan.summary().update, 12, "{plan:#?}");
    assert_eq!(plan.summary().create + plan.summary().replace + plan.summary().delete, 0);
    assert!(run(&cloud, &graph).await.succeeded());
    for region in ["us-east-1", "eu-west-1", "ap-southeast-2"] {
        assert!(cloud.images(region).iter().all(|i| i.description.as_deref() == Some("Second")));
    }
    assert!(!plan_for(&cloud, &graph).await.has_changes());
}

#[tokio::test]
async fn a_failing_region_does_not_stop_the_others_and_a_rerun_finishes_the_job() {
    let dir = setup("fake-partial");
    let graph = desired(&dir, &default_manifest());
    let cloud = FakeCloud::default();
    cloud.fail("CopyImage", "ap-southeast-2", "InternalError");
    let report = run(&cloud, &graph).await;
    assert!(!report.succeeded());
    let failed: Vec<_> = report.nodes.iter().filter(|n| matches!(n.outcome, Outcome::Failed(_))).collect();
    assert_eq!(failed.len(), 4);
    assert!(failed.iter().all(|n| n.region == "ap-southeast-2"));
    let created = report.nodes.iter().filter(|n| n.outcome == Outcome::Created).count();
    assert_eq!(created, 2 + 4 + 4, "everything outside the failing region was made");

    cloud.heal();
    let plan = plan_for(&cloud, &graph).await;
    assert_eq!((plan.summary().create, plan.summary().unchanged), (4, 10));
    assert!(run(&cloud, &graph).await.succeeded());
    assert!(!plan_for(&cloud, &graph).await.has_changes());
}

#[tokio::test]
async fn access_denied_fails_fast_and_skips_dependents() {
    let dir = setup("fake-denied");
    let graph = desired(&dir, &default_manifest());
    let cloud = FakeCloud::default();
    cloud.fail("RegisterImage", "us-east-1", "UnauthorizedOperation");
    let report = run(&cloud, &graph).await;
    assert!(!report.succeeded());
    assert_eq!(cloud.calls("RegisterImage"), 4, "one attempt per image, no retries");
    assert_eq!(cloud.calls("CopyImage"), 0);
    let skipped = report.nodes.iter().filter(|n| matches!(n.outcome, Outcome::Skipped(_))).count();
    assert_eq!(skipped, 8, "every copy depends on a failed image");
}

#[tokio::test]
async fn removing_a_region_deletes_only_its_copies_and_their_snapshots() {
    let dir = setup("fake-region");
    let cloud = FakeCloud::default();
    assert!(run(&cloud, &desired(&dir, &default_manifest())).await.succeeded());
    let graph = desired(&dir, &manifest("First", &["us-east-1", "eu-west-1"]));
    let plan = plan_for(&cloud, &graph).await;
    let deletes: Vec<_> = plan.changes.iter().filter(|c| c.action == Action::Delete).collect();
    assert_eq!(deletes.len(), 4, "{plan:#?}");
    assert!(deletes.iter().all(|c| c.region == "ap-southeast-2" && c.with_snapshots.len() == 1));
    assert_eq!(plan.summary().create, 0);
    assert!(run(&cloud, &graph).await.succeeded());
    assert!(cloud.images("ap-southeast-2").is_empty());
    assert_eq!(cloud.images("eu-west-1").len(), 4);
}

#[tokio::test]
async fn copies_run_concurrently_but_within_the_per_region_bound() {
    let dir = setup("fake-parallel");
    let graph = desired(&dir, &default_manifest());
    for parallelism in [1, 2, 4] {
        let cloud = FakeCloud::with_copy_latency(std::time::Duration::from_millis(200));
        assert!(run_with(&cloud, &graph, parallelism).await.succeeded());
        for region in ["eu-west-1", "ap-southeast-2"] {
            assert_eq!(cloud.most_concurrent_copies(region), parallelism, "{region} with --parallelism {parallelism}");
        }
    }
}

#[tokio::test]
async fn the_report_names_every_node_including_unchanged_ones() {
    let dir = setup("fake-report");
    let graph = desired(&dir, &default_manifest());
    let cloud = FakeCloud::default();
    assert!(run(&cloud, &graph).await.succeeded());
    let graph = desired(&dir, &manifest("Again", &REGIONS));
    let report = run(&cloud, &graph).await;
    let outcomes: Vec<_> = report.nodes.iter().map(|n| (n.node.as_str(), n.outcome.clone())).collect();
    assert_eq!(outcomes.len(), 14, "{outcomes:#?}");
    assert_eq!(outcomes.iter().filter(|(_, o)| *o == Outcome::Unchanged).count(), 2, "the snapshots");
    assert_eq!(outcomes.iter().filter(|(_, o)| *o == Outcome::Updated).count(), 12);
}

/// `build.keep_image: false`: a copy that fails keeps the build region's AMIs and snapshots (the
/// next apply copies from them instead of uploading again), and the apply that finishes the
/// copies removes them.
#[tokio::test]
async fn a_source_not_kept_stays_while_a_copy_failed_and_goes_with_the_last_copy() {
    let dir = setup("fake-seed");
    let text = default_manifest()
        .replace("build: { region: us-east-1 }", "build: { region: us-east-1, keep_image: false }")
        .replace("regions: [us-east-1, ", "regions: [");
    let graph = desired(&dir, &text);
    let cloud = FakeCloud::default();
    cloud.fail("CopyImage", "ap-southeast-2", "InternalError");
    let report = run(&cloud, &graph).await;
    assert!(!report.succeeded());
    let kept: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.region == "us-east-1" && n.action == Action::Delete)
        .filter(|n| matches!(&n.outcome, Outcome::Skipped(why) if why.starts_with("kept as the copies' source")))
        .collect();
    assert_eq!(kept.len(), 4 + 2, "four AMIs and two snapshots kept: {report:#?}");
    assert_eq!(cloud.images("us-east-1").len(), 4);

    cloud.heal();
    let plan = plan_for(&cloud, &graph).await;
    assert_eq!(plan.summary().create, 4, "only the failed copies: {plan:#?}");
    assert!(plan.changes.iter().filter(|c| c.until_copied).all(|c| c.action == Action::NoOp), "{plan:#?}");
    let report = run(&cloud, &graph).await;
    assert!(report.succeeded(), "{report:#?}");
    let uploads = cloud.made().iter().filter(|(_, _, m)| matches!(m, Made::Uploaded(_))).count();
    assert_eq!(uploads, 2, "the source was not made again");
    assert!(cloud.images("us-east-1").is_empty(), "the source AMIs went with the last copies");
    assert!(cloud.snapshots("us-east-1").is_empty(), "and their snapshots");
    assert!(!plan_for(&cloud, &graph).await.has_changes());
}
