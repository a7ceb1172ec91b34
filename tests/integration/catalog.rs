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
pub(crate) fn release(dir: &Path, version: u32, channels: &str) {
    release_with(dir, version, channels, "");
}

/// [`release`] with more lines in `catalog:` (`  s3: …`).
fn release_with(dir: &Path, version: u32, channels: &str, catalog: &str) {
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
{catalog}",
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
    Run { regions: RegionScope::Manifest, prune: false, destroy, lock_timeout: Duration::ZERO, options }
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

/// An AMI that goes between plan and apply: Parameter Store accepts the write and never stores
/// it; amiplan reads it back and reports the parameter failed, naming why.
#[tokio::test]
async fn a_parameter_parameter_store_never_stored_is_reported_failed() {
    let dir = dir("catalog-read-back");
    let cloud = FakeCloud::default();
    release(&dir, 1, "");
    converge(&cloud, &dir, false).await;
    release(&dir, 2, "");
    converge(&cloud, &dir, false).await;
    release(&dir, 2, "stable: \"1\"");
    let workspace = workspace(&dir).await;
    let observed = workspace.observe(&cloud, RegionScope::Manifest).await.unwrap();
    let planned = workspace.plan(&observed, false);
    let gone = ami(&cloud, "eu-west-1", "cat-1-gp3");
    amiplan::cloud::Images::deregister_image(&cloud, "eu-west-1", &gone).await.unwrap();
    let mut options = ApplyOptions { policy: RetryPolicy::fast(), ..ApplyOptions::default() };
    options.deadlines.parameter = Duration::from_millis(300);
    let report = amiplan::apply::apply(&cloud, &planned, &workspace.graph, &options, &AtomicBool::new(false)).await;
    let failed: Vec<_> =
        report.nodes.iter().filter(|n| matches!(n.outcome, amiplan::apply::Outcome::Failed(_))).collect();
    assert_eq!(failed.len(), 1, "{report:#?}");
    assert_eq!(failed[0].node, "parameter/acme/cat/stable/x86_64/gp3/image_id@eu-west-1");
    let amiplan::apply::Outcome::Failed(why) = &failed[0].outcome else { unreachable!() };
    assert!(why.contains(&format!("Parameter Store did not take {gone}")), "{why}");
    assert!(cloud.parameter("eu-west-1", "/acme/cat/stable/x86_64/gp3/image_id").is_none());
}

/// A channel never names an AMI that is not shared with the manifest's audience: a private
/// version behind a public stack's channel is held back, and says why.
#[tokio::test]
async fn a_private_ami_is_never_behind_a_public_channel() {
    let dir = dir("catalog-audience");
    let cloud = FakeCloud::default();
    release(&dir, 1, "");
    converge(&cloud, &dir, false).await;
    release(&dir, 2, "stable: \"1\"");
    let manifest = std::fs::read_to_string(dir.join("stack.yaml")).unwrap();
    std::fs::write(dir.join("stack.yaml"), format!("{manifest}publish: {{ public: true }}\n")).unwrap();
    let planned = plan(&cloud, &dir).await;
    let stable: Vec<_> = planned.changes.iter().filter(|c| c.node.contains("/stable/")).collect();
    assert_eq!(stable.len(), 6);
    assert!(stable.iter().all(|c| c.action == Action::NoOp), "{stable:#?}");
    let why = planned.warnings.iter().find(|w| w.contains("channel stable held back")).expect("a warning");
    assert!(why.contains("is not shared with public"), "{why}");
    converge(&cloud, &dir, false).await;
    assert!(cloud.parameters("eu-west-1").keys().all(|name| !name.contains("/stable/")));
}

/// Parameter Store has no deprecation: a parameter says in its description when AWS deprecates
/// the AMI it names, and says it anew when the manifest changes the deprecation.
#[tokio::test]
async fn a_parameter_says_when_its_ami_is_deprecated() {
    let dir = dir("catalog-deprecation");
    let cloud = FakeCloud::default();
    let manifest = |after: &str| {
        let text = format!(
            "stack: dep\nversion: \"1\"\ndeprecate_after: {after}\nsource: {{ file: disk.raw }}\nbuild: {{ region: us-east-1 }}\nimage: {{ name: \"dep-{{version}}\", architecture: x86_64 }}\nregions: [us-east-1]\ncatalog: {{ channels: {{ stable: \"1\" }} }}\n"
        );
        std::fs::write(dir.join("stack.yaml"), text).unwrap();
    };
    sample_image(&dir.join("disk.raw"), 2, 77);
    manifest("2031-01-01");
    converge(&cloud, &dir, false).await;
    for name in ["/amiplan/dep/1/x86_64/image_id", "/amiplan/dep/stable/x86_64/image_id"] {
        let said = cloud.parameter_description("us-east-1", name).unwrap();
        assert!(said.ends_with("; deprecated from 2031-01-01T00:00:00Z"), "{name}: {said}");
    }
    assert!(!plan(&cloud, &dir).await.has_changes());

    manifest("2032-06-01");
    converge(&cloud, &dir, false).await;
    let said = cloud.parameter_description("us-east-1", "/amiplan/dep/stable/x86_64/image_id").unwrap();
    assert!(said.ends_with("; deprecated from 2032-06-01T00:00:00Z"), "{said}");
    assert!(!plan(&cloud, &dir).await.has_changes(), "converged in one apply");
}

const BUCKET: &str = "cat-catalogue";
const TO_S3: &str = "  s3: { bucket: cat-catalogue, prefix: images/cat }\n";

/// The catalogue files as `amiplan catalog` renders them from live state now.
async fn rendered(cloud: &FakeCloud, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let catalogue = workspace(dir).await.catalogue(cloud, &[]).await.unwrap();
    amiplan::distribution::files::render(&catalogue)
}

/// The objects amiplan published under `images/cat/`, by path under it.
fn published(cloud: &FakeCloud) -> BTreeMap<String, Vec<u8>> {
    let objects = cloud.objects(BUCKET).into_iter();
    objects.filter_map(|(key, body)| Some((key.strip_prefix("images/cat/")?.to_string(), body))).collect()
}

#[tokio::test]
async fn catalogue_files_are_published_to_s3_after_the_amis_and_only_what_changed() {
    let dir = dir("catalog-s3-fake");
    let cloud = FakeCloud::default();
    cloud.put_foreign_object(BUCKET, "images/cat/README", b"someone else's");
    cloud.put_foreign_object(BUCKET, "images/cat/versions/cat/0.json", b"not amiplan's either");

    release_with(&dir, 1, "stable: \"1\"", TO_S3);
    let planned = plan(&cloud, &dir).await;
    let files = planned.changes.iter().find(|c| c.node == "catalog-files/s3://cat-catalogue/images/cat/@us-east-1");
    let files = files.unwrap_or_else(|| panic!("{planned:#?}"));
    assert_eq!(files.action, Action::Create);
    assert!(files.reasons[0].to_string().contains("once this run's AMIs and parameters are done"), "{files:?}");
    converge(&cloud, &dir, false).await;
    let mut first = published(&cloud);
    assert_eq!(first.remove("README").as_deref(), Some(&b"someone else's"[..]));
    first.remove("versions/cat/0.json");
    assert_eq!(first, rendered(&cloud, &dir).await, "the tree of `amiplan catalog`, published");
    assert!(first.contains_key("versions/cat/1.json") && first.contains_key("streams/cat/stable.json"));

    // Nothing changed: nothing to write.
    let puts = cloud.calls("PutObject");
    let again = plan(&cloud, &dir).await;
    assert!(!again.has_changes(), "{again:#?}");
    converge(&cloud, &dir, false).await;
    assert_eq!(cloud.calls("PutObject"), puts);

    // Version 2, then 3 with the channels moved on: version 1 is retired, and its file goes
    // with it; only what changed is written; someone else's objects stay.
    release_with(&dir, 2, "stable: \"1\", testing: \"2\"", TO_S3);
    converge(&cloud, &dir, false).await;
    let puts = cloud.calls("PutObject");
    release_with(&dir, 3, "stable: \"2\", testing: \"3\"", TO_S3);
    converge(&cloud, &dir, false).await;
    let mut third = published(&cloud);
    assert!(!third.contains_key("versions/cat/1.json"), "a retired version leaves the bucket: {:?}", third.keys());
    assert!(third.remove("README").is_some() && third.remove("versions/cat/0.json").is_some());
    assert_eq!(third, rendered(&cloud, &dir).await);
    let written = cloud.calls("PutObject") - puts;
    assert!(written < third.len(), "{written} of {} files written: the unchanged are left", third.len());
    assert!(!plan(&cloud, &dir).await.has_changes());

    converge(&cloud, &dir, true).await;
    let left: Vec<String> = cloud.objects(BUCKET).into_keys().collect();
    assert_eq!(left, ["images/cat/README", "images/cat/versions/cat/0.json"], "only amiplan's objects go");
}

/// Every parameter under `/acme/cat` in `region`, read with the AWS CLI: name → (value, data type).
fn catalogue_read_by_cli(moto: &Moto, region: &str) -> BTreeMap<String, (String, String)> {
    let args = ["ssm", "get-parameters-by-path", "--path", "/acme/cat", "--recursive"];
    let answer = moto.aws(region, &args).unwrap();
    answer["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let field = |key: &str| p[key].as_str().unwrap_or_default().to_string();
            (field("Name"), (field("Value"), field("DataType")))
        })
        .collect()
}

async fn ami_named(moto: &Moto, region: &str, name: &str) -> String {
    let found = moto.images_named(region, name).await;
    assert_eq!(found.len(), 1, "{name} in {region}");
    found[0].image_id().unwrap().to_string()
}

fn plan_summary(output: &std::process::Output) -> String {
    let text = stdout(output);
    text.lines().find(|l| l.starts_with("Plan:")).unwrap_or_else(|| panic!("no summary: {text}")).to_string()
}

/// Against moto, read back with the AWS CLI: the parameters of two versions and two channels in
/// three regions, a promotion that changes exactly the channel's parameters, retention that
/// removes a retired version from Parameter Store before its AMIs, someone else's parameter left
/// alone, and destroy.
#[tokio::test(flavor = "multi_thread")]
async fn parameters_are_written_promoted_retired_and_destroyed_in_moto() {
    let moto = Moto::start();
    let dir = dir("catalog-moto");
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest", "--events", "events.jsonl"];
    moto.aws("us-east-1", &["s3api", "create-bucket", "--bucket", BUCKET]).unwrap();
    let theirs = dir.join("theirs.txt");
    std::fs::write(&theirs, "someone else's").unwrap();
    let put = ["s3api", "put-object", "--bucket", BUCKET, "--key", "images/cat/README", "--body"];
    moto.aws("us-east-1", &[&put[..], &[theirs.to_str().unwrap()]].concat()).unwrap();
    release_with(&dir, 1, "stable: \"1\"", TO_S3);
    expect_code(&moto.amiplan(&dir, &apply), 0);
    release_with(&dir, 2, "stable: \"1\", testing: \"2\"", TO_S3);
    expect_code(&moto.amiplan(&dir, &apply), 0);
    assert_eq!(bucket_read_by_cli(&moto, &dir), catalog_command(&moto, &dir), "S3 holds the tree `catalog` writes");
    let tags =
        moto.aws("us-east-1", &["s3api", "get-object-tagging", "--bucket", BUCKET, "--key", "images/cat/amis.json"]);
    assert!(tags.unwrap()["TagSet"].to_string().contains("catalog-files/s3://cat-catalogue/images/cat/@us-east-1"));
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--regions", "manifest", "--detailed-exitcode"]), 0);
    for region in CATALOG_REGIONS {
        let read = catalogue_read_by_cli(&moto, region);
        assert_eq!(read.len(), 8, "{region}: {read:#?}");
        assert!(read.values().all(|(_, data_type)| data_type == "aws:ec2:image"), "{read:#?}");
        let value = |path: &str| read[&format!("/acme/cat/{path}/image_id")].0.clone();
        assert_eq!(value("testing/x86_64/gp3"), ami_named(&moto, region, "cat-2-gp3").await);
        assert_eq!(value("2/x86_64/standard"), ami_named(&moto, region, "cat-2-standard").await);
        assert_eq!(value("stable/x86_64/gp3"), ami_named(&moto, region, "cat-1-gp3").await);
        assert_eq!(value("1/x86_64/gp3"), value("stable/x86_64/gp3"));
    }
    let one = moto.aws("eu-west-1", &["ssm", "get-parameter", "--name", "/acme/cat/stable/x86_64/gp3/image_id"]);
    assert_eq!(one.unwrap()["Parameter"]["Value"], ami_named(&moto, "eu-west-1", "cat-1-gp3").await);

    // Promotion: stable's six parameters, and the files that name them, nothing else.
    release_with(&dir, 2, "stable: \"2\", testing: \"2\"", TO_S3);
    let planned = moto.amiplan(&dir, &["plan", "stack.yaml", "--regions", "manifest"]);
    let summary = plan_summary(&planned);
    assert!(summary.starts_with("Plan: 0 to create, 7 to update in place, 0 to replace, 0 to delete "), "{summary}");
    assert!(stdout(&planned).contains("parameter/acme/cat/stable/x86_64/gp3/image_id@ap-southeast-2"));
    expect_code(&moto.amiplan(&dir, &apply), 0);
    for region in CATALOG_REGIONS {
        let read = catalogue_read_by_cli(&moto, region);
        assert_eq!(
            read["/acme/cat/stable/x86_64/standard/image_id"].0,
            ami_named(&moto, region, "cat-2-standard").await
        );
    }

    // Someone else's parameter at a name version 3 would use stays theirs, and the plan says so.
    let theirs =
        ["ssm", "put-parameter", "--name", "/acme/cat/3/x86_64/gp3/image_id", "--value", "theirs", "--type", "String"];
    moto.aws("us-east-1", &theirs).unwrap();
    std::fs::remove_file(dir.join("events.jsonl")).unwrap();
    release_with(&dir, 3, "stable: \"2\", testing: \"3\"", TO_S3);
    let planned = moto.amiplan(&dir, &["plan", "stack.yaml", "--regions", "manifest"]);
    assert!(stdout(&planned).contains("is not amiplan's: left as it is"), "{}", stdout(&planned));
    expect_code(&moto.amiplan(&dir, &apply), 0);
    let files = bucket_read_by_cli(&moto, &dir);
    assert!(!files.contains_key("versions/cat/1.json"), "a retired version leaves the bucket: {:?}", files.keys());
    assert_eq!(files, catalog_command(&moto, &dir));
    for region in CATALOG_REGIONS {
        let read = catalogue_read_by_cli(&moto, region);
        assert!(!read.keys().any(|name| name.starts_with("/acme/cat/1/")), "{region}: version 1 is gone: {read:#?}");
        assert!(moto.images_named(region, "cat-1-gp3").await.is_empty(), "{region}");
        assert_eq!(read["/acme/cat/stable/x86_64/gp3/image_id"].0, ami_named(&moto, region, "cat-2-gp3").await);
        assert_eq!(read["/acme/cat/testing/x86_64/gp3/image_id"].0, ami_named(&moto, region, "cat-3-gp3").await);
    }
    assert_eq!(catalogue_read_by_cli(&moto, "us-east-1")["/acme/cat/3/x86_64/gp3/image_id"].0, "theirs");
    // The catalogue stops naming version 1 before its AMIs go.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished = |prefix: &str| {
        events
            .iter()
            .filter(|e| e["node"].as_str().unwrap().starts_with(prefix) && e["event"] == "succeeded")
            .map(|e| e["time"].as_str().unwrap().to_string())
            .max()
            .unwrap()
    };
    let started = |prefix: &str| {
        events
            .iter()
            .filter(|e| e["node"].as_str().unwrap().starts_with(prefix) && e["event"] == "started")
            .map(|e| e["time"].as_str().unwrap().to_string())
            .min()
            .unwrap()
    };
    assert!(finished("parameter/acme/cat/1/") <= started("image/cat-1-"), "{events:#?}");

    expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]), 0);
    for region in CATALOG_REGIONS {
        let left: Vec<String> = catalogue_read_by_cli(&moto, region).into_keys().collect();
        let theirs = if region == "us-east-1" { vec!["/acme/cat/3/x86_64/gp3/image_id".to_string()] } else { vec![] };
        assert_eq!(left, theirs, "{region}");
    }
    let left = moto.aws("us-east-1", &["s3api", "list-objects-v2", "--bucket", BUCKET]).unwrap();
    let keys: Vec<&str> = left["Contents"].as_array().unwrap().iter().filter_map(|o| o["Key"].as_str()).collect();
    assert_eq!(keys, ["images/cat/README"], "destroy removes amiplan's files only");
}

/// The files under `images/cat/` of the bucket, read with the AWS CLI (someone else's README
/// left out): path → content.
fn bucket_read_by_cli(moto: &Moto, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let listed = moto.aws("us-east-1", &["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "images/cat/"]);
    let listed = listed.unwrap();
    let keys: Vec<&str> = listed["Contents"].as_array().unwrap().iter().filter_map(|o| o["Key"].as_str()).collect();
    let body = dir.join("object.json");
    keys.into_iter()
        .filter(|key| *key != "images/cat/README")
        .map(|key| {
            moto.aws("us-east-1", &["s3api", "get-object", "--bucket", BUCKET, "--key", key, body.to_str().unwrap()])
                .unwrap();
            (key.strip_prefix("images/cat/").unwrap().to_string(), std::fs::read(&body).unwrap())
        })
        .collect()
}

/// The tree `amiplan catalog --out` writes now.
fn catalog_command(moto: &Moto, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = dir.join("catalog-out");
    let _ = std::fs::remove_dir_all(&out);
    expect_code(&moto.amiplan(dir, &["catalog", "stack.yaml", "--out", out.to_str().unwrap()]), 0);
    let mut files = BTreeMap::new();
    let mut pending = vec![out.clone()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(&out).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}
