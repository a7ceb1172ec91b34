//! The catalogue: Parameter Store parameters for every version and channel, in every region,
//! moved by promotions, held back until a version is out everywhere, removed with the versions
//! retention retires, never written over when not amiplan's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use amiplan::apply::ApplyOptions;
use amiplan::cloud::retry::RetryPolicy;
use amiplan::observe::RegionScope;
use amiplan::pipeline::{self, Converged, Review, Run, Workspace};
use amiplan::plan::{Action, Plan};

use crate::fake::FakeCloud;
use crate::support::*;

const CATALOG_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// Version `version` of stack `cat` (two volume types, three regions, keep two versions) with
/// `channels` (`stable: "1"`, …).
fn release(dir: &Path, version: u32, channels: &str) {
    let image = dir.join(format!("disk-{version}.raw"));
    if !image.exists() {
        sample_image(&image, 2, 300 + version as u64);
    }
    let manifest = format!(
        "stack: cat
version: \"{version}\"
retention: {{ keep: 2 }}
source: {{ file: disk-{version}.raw }}
build: {{ region: us-east-1 }}
image:
  name: \"cat-{{version}}-{{volume_type}}\"
  architecture: x86_64
variants: {{ volume_type: [gp3, standard] }}
regions: [{}]
catalog:
  channels: {{ {channels} }}
  ssm: {{ prefix: /acme/cat }}
",
        CATALOG_REGIONS.join(", ")
    );
    std::fs::write(dir.join("stack.yaml"), manifest).unwrap();
}

struct Approve;

impl Review for Approve {
    fn approve(&self, _plan: &Plan, _verb: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

fn run(destroy: bool) -> Run {
    let options = ApplyOptions { policy: RetryPolicy::fast(), ..ApplyOptions::default() };
    Run { regions: RegionScope::Manifest, destroy, lock_timeout: Duration::ZERO, options }
}

async fn workspace(dir: &Path) -> Workspace {
    Workspace::load(&[dir.join("stack.yaml")]).await.unwrap()
}

async fn plan(cloud: &FakeCloud, dir: &Path) -> Plan {
    let workspace = workspace(dir).await;
    let observed = workspace.observe(cloud, RegionScope::Manifest).await.unwrap();
    workspace.plan(&observed, false)
}

async fn converge(cloud: &FakeCloud, dir: &Path, destroy: bool) {
    let workspace = workspace(dir).await;
    let (run, interrupted) = (run(destroy), AtomicBool::new(false));
    let done = pipeline::converge(cloud, &workspace, &run, None, &Approve, &interrupted).await.unwrap();
    assert!(
        matches!(&done, Converged::Applied { report, .. } if report.succeeded())
            || matches!(done, Converged::NoChanges(_)),
        "{done:?}"
    );
}

/// The AMI of `name` in `region`.
fn ami(cloud: &FakeCloud, region: &str, name: &str) -> String {
    let images = cloud.images(region);
    let found = images.iter().find(|i| i.name.as_deref() == Some(name));
    found.unwrap_or_else(|| panic!("no AMI {name} in {region}")).id.clone()
}

/// Parameter name → the AMI name it points at, in `region`.
fn catalogue(cloud: &FakeCloud, region: &str) -> BTreeMap<String, String> {
    let images = cloud.images(region);
    cloud
        .parameters(region)
        .into_iter()
        .map(|(name, value)| {
            let image = images.iter().find(|i| i.id == value).and_then(|i| i.name.clone());
            (name, image.unwrap_or(value))
        })
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(p, a)| (format!("/acme/cat/{p}/image_id"), a.to_string())).collect()
}

fn dir(name: &str) -> PathBuf {
    workdir(name)
}

#[tokio::test]
async fn versions_and_channels_in_every_region_promoted_held_back_retired_and_destroyed() {
    let dir = dir("catalog-fake");
    let cloud = FakeCloud::default();

    // Version 1, stable on it: one parameter per version and per channel, per variant, everywhere.
    release(&dir, 1, "stable: \"1\"");
    converge(&cloud, &dir, false).await;
    for region in CATALOG_REGIONS {
        let want = expected(&[
            ("1/x86_64/gp3", "cat-1-gp3"),
            ("1/x86_64/standard", "cat-1-standard"),
            ("stable/x86_64/gp3", "cat-1-gp3"),
            ("stable/x86_64/standard", "cat-1-standard"),
        ]);
        assert_eq!(catalogue(&cloud, region), want, "{region}");
        let (value, tags) = cloud.parameter(region, "/acme/cat/1/x86_64/gp3/image_id").unwrap();
        assert_eq!(value, ami(&cloud, region, "cat-1-gp3"), "each region names its own AMI");
        assert_eq!(tags.get("amiplan:stack").map(String::as_str), Some("cat"), "tagged at creation");
    }

    // Version 2 with `testing` on it: testing moves once version 2 is out; stable stays.
    release(&dir, 2, "stable: \"1\", testing: \"2\"");
    let planned = plan(&cloud, &dir).await;
    let testing: Vec<_> = planned.changes.iter().filter(|c| c.node.contains("/testing/")).collect();
    assert_eq!(testing.len(), 6, "{testing:#?}");
    assert!(testing.iter().all(|c| c.action == Action::Create), "{testing:#?}");
    assert!(
        testing[0].reasons.iter().any(|r| r.to_string().contains("moves to 2 once its AMIs are available")),
        "{testing:#?}"
    );
    converge(&cloud, &dir, false).await;
    for region in CATALOG_REGIONS {
        let catalogue = catalogue(&cloud, region);
        assert_eq!(catalogue["/acme/cat/testing/x86_64/gp3/image_id"], "cat-2-gp3");
        assert_eq!(catalogue["/acme/cat/stable/x86_64/standard/image_id"], "cat-1-standard");
        assert_eq!(catalogue["/acme/cat/1/x86_64/gp3/image_id"], "cat-1-gp3", "kept with version 1");
        assert_eq!(catalogue.len(), 8, "{catalogue:#?}");
    }

    // Promotion: exactly the stable channel's parameters change.
    release(&dir, 2, "stable: \"2\", testing: \"2\"");
    let planned = plan(&cloud, &dir).await;
    let changed: Vec<&str> =
        planned.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| c.node.as_str()).collect();
    assert_eq!(changed.len(), 6, "{changed:#?}");
    assert!(changed.iter().all(|n| n.starts_with("parameter/acme/cat/stable/")), "{changed:#?}");
    assert!(planned.changes.iter().filter(|c| c.action != Action::NoOp).all(|c| c.action == Action::Update));
    converge(&cloud, &dir, false).await;
    for region in CATALOG_REGIONS {
        assert_eq!(catalogue(&cloud, region)["/acme/cat/stable/x86_64/gp3/image_id"], "cat-2-gp3", "{region}");
    }

    // A channel on a version that is not out anywhere is held back, and says why.
    release(&dir, 2, "stable: \"2\", testing: \"2\", edge: \"9\"");
    let planned = plan(&cloud, &dir).await;
    let edge: Vec<_> = planned.changes.iter().filter(|c| c.node.contains("/edge/")).collect();
    assert!(edge.iter().all(|c| c.action == Action::NoOp) && edge.len() == 6, "{edge:#?}");
    assert!(planned.warnings.iter().any(|w| w.contains("channel edge held back: 9 is not out everywhere")));

    // Version 3 retires version 1; someone else's parameter at one of its names stays theirs.
    cloud.put_foreign_parameter("eu-west-1", "/acme/cat/3/x86_64/gp3/image_id", "ami-theirs");
    release(&dir, 3, "stable: \"2\", testing: \"3\"");
    let planned = plan(&cloud, &dir).await;
    let retired: Vec<&str> = planned
        .changes
        .iter()
        .filter(|c| c.retire && c.node.starts_with("parameter/acme/cat/1/"))
        .map(|c| c.node.as_str())
        .collect();
    assert_eq!(retired.len(), 6, "version 1's parameters go with it: {planned:#?}");
    assert!(planned.warnings.iter().any(|w| w.contains("/acme/cat/3/x86_64/gp3/image_id in eu-west-1")));
    converge(&cloud, &dir, false).await;
    for region in CATALOG_REGIONS {
        let catalogue = catalogue(&cloud, region);
        assert!(!catalogue.keys().any(|p| p.starts_with("/acme/cat/1/")), "{region}: {catalogue:#?}");
        assert!(cloud.images(region).iter().all(|i| !i.name.as_deref().unwrap().starts_with("cat-1-")));
        assert_eq!(catalogue["/acme/cat/2/x86_64/gp3/image_id"], "cat-2-gp3", "{region}: stable's version stays");
        assert_eq!(catalogue["/acme/cat/testing/x86_64/standard/image_id"], "cat-3-standard");
    }
    assert_eq!(cloud.parameters("eu-west-1")["/acme/cat/3/x86_64/gp3/image_id"], "ami-theirs");

    // Destroy removes every parameter amiplan owns, and only those.
    converge(&cloud, &dir, true).await;
    for region in CATALOG_REGIONS {
        let left: Vec<String> = cloud.parameters(region).into_keys().collect();
        let theirs = if region == "eu-west-1" { vec!["/acme/cat/3/x86_64/gp3/image_id".to_string()] } else { vec![] };
        assert_eq!(left, theirs, "{region}");
    }
}
