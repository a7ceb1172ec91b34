//! Tracking an upstream (`source.upstream`): the newest file and its digest are read from the
//! upstream's index and checksum files (served on 127.0.0.1) at every plan, against moto behind
//! the rules proxy; the helper that downloads what upstream named is a real VM (`machines.rs`).

use crate::distribution::{Serving, get};
use crate::machines::{Runner, images, passed};
use crate::proxy::rules::Rule;
use crate::proxy::{Faults, Proxy};
use crate::support::*;

/// The digest the second version's checksum file gives: planned, never built.
const SECOND: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn manifest(files: &Files, regions: &str) -> String {
    format!(
        "stack: tracked
source:
  upstream:
    index: {url}/autobuilds/latest-tracked.txt
    checksums: \"{{url}}.sha256\"
    file: \"tracked-{{version}}.raw.xz\"
build:
  region: us-east-1
  method: helper
  volume_size: 2
  helper: {{ ami: {{ owner: amazon, name: \"al2023-ami-2023.*-x86_64\" }}, timeout: 20m, spot: true, instance_type: t2.micro }}
image:
  name: \"tracked-{{version}}-{{volume_type}}-{{encryption}}\"
  architecture: x86_64
  kms_keys: {{ us-east-1: alias/images }}
variants:
  volume_type: [gp3]
  encrypted: [false, true]
regions: {regions}
",
        url = files.url
    )
}

/// Upstream publishes `version`: the index names it, its checksum file gives `digest`.
fn publish(files: &Files, version: &str, digest: &str) {
    let signed = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n# Latest as of today\n{version}/tracked-{version}.raw.xz 1048576\n-----BEGIN PGP SIGNATURE-----\n\nabc=\n-----END PGP SIGNATURE-----\n"
    );
    files.set("/autobuilds/latest-tracked.txt", &signed);
    files.set(
        &format!("/autobuilds/{version}/tracked-{version}.raw.xz.sha256"),
        &format!("# SHA256 HASH\n{digest}  tracked-{version}.raw.xz\n"),
    );
}

/// One helper served both encryptions: it ran as a one-time spot instance of a Xen type, which
/// terminates when its job powers it off (its result still read, from the buffered console), and
/// the encrypted variant is registered from an encrypted copy of the one snapshot it wrote.
async fn spot_helper_served_both_encryptions(
    moto: &Moto,
    proxy: &Proxy,
    snapshots: &[aws_sdk_ec2::types::Snapshot],
    helper: &str,
) {
    let calls = proxy.calls();
    let launches: Vec<_> = calls.iter().filter(|c| c.operation == "RunInstances").collect();
    assert_eq!(launches.len(), 1, "one helper for both encryptions");
    assert_eq!(launches[0].param("InstanceMarketOptions.MarketType"), Some("spot"), "{:?}", launches[0]);
    let ec2 = moto.ec2("us-east-1").await;
    let out = ec2.describe_instances().instance_ids(helper).send().await.unwrap();
    let state = out.reservations()[0].instances()[0].state().and_then(|s| s.name()).map(|n| n.as_str().to_string());
    assert_eq!(state.as_deref(), Some("terminated"), "a spot helper ends when its job powers it off");
    let copy = calls.iter().find(|c| c.operation == "CopySnapshot").expect("an encrypted copy");
    assert_eq!((copy.param("Encrypted"), copy.param("KmsKeyId")), (Some("true"), Some("alias/images")));
    let encrypted = snapshots
        .iter()
        .find(|s| tag(s.tags(), "amiplan:node") == Some("snapshot/tracked-20261122T1700Z-root-encrypted@us-east-1"))
        .and_then(|s| s.snapshot_id())
        .expect("the encrypted snapshot node");
    let registered: Vec<_> = calls.iter().filter(|c| c.operation == "RegisterImage").collect();
    assert_eq!(registered.len(), 2);
    assert!(
        registered.iter().any(|c| c.param("BlockDeviceMapping.1.Ebs.SnapshotId") == Some(encrypted)),
        "the encrypted AMI is registered from the copy"
    );
    assert_eq!(leftovers(moto, "us-east-1", "tracked").await, Vec::<String>::new());
    // Rule `console-output`: a Xen type (t2) has no live console, and EC2 posts the console it
    // buffered at the stop only a while after the instance ended. amiplan tried the live console,
    // fell back to the buffered one and kept polling through that delay.
    let reads: Vec<Option<&str>> =
        calls.iter().filter(|c| c.operation == "GetConsoleOutput").map(|c| c.param("Latest")).collect();
    let live = reads.iter().take_while(|latest| *latest == &Some("true")).count();
    assert!(live >= 1 && reads.len() > live, "{reads:?}");
    assert!(reads[live..].iter().all(|latest| *latest == Some("false")), "then the buffered console: {reads:?}");
    assert!(proxy.enforced(Rule::ConsoleOutput) > 2, "the buffered console was empty until posted");
}

/// `resolve`, `catalog` and `serve` of the live stack give the first version's encrypted AMI.
async fn distribution_reads_no_upstream(moto: &Moto, proxy: &Proxy, dir: &std::path::Path) {
    let live = moto.images_named("us-east-1", "tracked-20261122T1700Z-gp3-encrypted").await;
    let encrypted = live[0].image_id().unwrap();
    let query = ["--region", "us-east-1", "--arch", "x86_64", "--variant", "encryption=encrypted"];
    let resolved = amiplan_at(&proxy.endpoint, dir, &[&["resolve", "stack.yaml", "--json"][..], &query].concat());
    expect_code(&resolved, 0);
    let found: serde_json::Value = serde_json::from_str(&stdout(&resolved)).unwrap();
    assert_eq!((found["image_id"].as_str(), found["version"].as_str()), (Some(encrypted), Some("20261122T1700Z")));
    expect_code(&amiplan_at(&proxy.endpoint, dir, &["catalog", "stack.yaml", "--out", "catalogue"]), 0);
    let flat = std::fs::read_to_string(dir.join("catalogue/amis.json")).unwrap();
    let flat: serde_json::Value = serde_json::from_str(&flat).unwrap();
    let listed: Vec<&str> =
        flat["regions"]["us-east-1"].as_array().unwrap().iter().filter_map(|e| e["image_id"].as_str()).collect();
    assert_eq!(listed.len(), 2, "{flat:#}");
    assert!(listed.contains(&encrypted), "{flat:#}");
    let serving = Serving::start(&proxy.endpoint, dir, "5m").await;
    let url = format!("{}/v1/resolve?region=us-east-1&arch=x86_64&encryption=encrypted", serving.base);
    let answer = get(url, vec![]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(encrypted), "{}", answer.body);
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_plan_exits_2_when_upstream_publishes_and_a_spot_helper_builds_both_encryptions() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 61).await;
    let files = Files::start().await;
    let runner = Runner::new(&moto, &proxy, "us-east-1", "upstream").await.downloads_from(&files.url);
    // The first version is a real image: the helper VM downloads and writes it.
    let image = images().join("bootable.raw.xz");
    let first = crate::boots::sha256_of(&image);
    files.set_file("/autobuilds/20261122T1700Z/tracked-20261122T1700Z.raw.xz", &image);
    publish(&files, "20261122T1700Z", &first);
    let dir = workdir("upstream-tracked");
    std::fs::write(dir.join("stack.yaml"), manifest(&files, "[us-east-1]")).unwrap();
    let scheduled = ["plan", "stack.yaml", "--detailed-exitcode", "--regions", "manifest"];

    let planned = amiplan_at(&proxy.endpoint, &dir, &["plan", "stack.yaml", "--json", "--regions", "manifest"]);
    expect_code(&planned, 0);
    let plan = plan_document(&stdout(&planned));
    let found = &plan["upstream"][0];
    let url = format!("{}/autobuilds/20261122T1700Z/tracked-20261122T1700Z.raw.xz", files.url);
    assert_eq!(found["url"], url.as_str(), "{found}");
    assert_eq!((found["sha256"].as_str(), found["version"].as_str()), (Some(first.as_str()), Some("20261122T1700Z")));
    let nodes: Vec<&str> = plan["changes"].as_array().unwrap().iter().filter_map(|c| c["node"].as_str()).collect();
    assert!(
        nodes.contains(&"image/tracked-20261122T1700Z-gp3-encrypted@us-east-1"),
        "the version comes from the file: {nodes:?}"
    );

    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let (applied, boots) = runner.alongside("tracked", 1, amiplan_async(&proxy.endpoint, &dir, &apply)).await;
    let consoles: Vec<&str> = boots.iter().map(|b| b.console.as_str()).collect();
    expect_code(&applied, 0);
    assert!(boots[0].powered_off && passed(&boots[0].console), "{consoles:?}");
    // The helper downloaded what upstream named: the snapshot holds it, decompressed.
    let snapshots = moto.stack_snapshots("us-east-1", "tracked").await;
    let node = |s: &aws_sdk_ec2::types::Snapshot| tag(s.tags(), "amiplan:node").unwrap_or_default().to_string();
    let plain = snapshots
        .iter()
        .find(|s| node(s) == "snapshot/tracked-20261122T1700Z-root@us-east-1")
        .expect("the build's snapshot");
    let written = runner.volume_file(plain.volume_id().unwrap()).expect("the runner kept the volume");
    let original = crate::boots::sha256_of(&images().join("bootable.raw"));
    assert_eq!(crate::boots::sha256_of(&written), original, "the snapshot holds upstream's image");
    spot_helper_served_both_encryptions(&moto, &proxy, &snapshots, &boots[0].instance).await;
    expect_code(&amiplan_at(&proxy.endpoint, &dir, &scheduled), 0);

    publish(&files, "20261123T1700Z", SECOND);
    let newer = amiplan_at(&proxy.endpoint, &dir, &scheduled);
    expect_code(&newer, 2);
    let text = stdout(&newer);
    assert!(
        text.contains(&format!("upstream: tracked-20261123T1700Z.raw.xz (sha256 {SECOND}), version 20261123T1700Z")),
        "{text}"
    );
    assert!(text.contains("image/tracked-20261123T1700Z-gp3-unencrypted@us-east-1 create"), "{text}");

    // An upstream that lists no digest for its newest file: a clear error at the manifest's
    // `source.upstream`, and not one AWS call.
    files.set("/autobuilds/20261123T1700Z/tracked-20261123T1700Z.raw.xz.sha256", &format!("{SECOND}  other.raw.xz\n"));
    let calls = proxy.calls().len();
    let broken = amiplan_at(&proxy.endpoint, &dir, &scheduled);
    expect_code(&broken, 1);
    let error = stderr(&broken);
    assert!(error.contains("stack.yaml:3:"), "{error}");
    assert!(error.contains("has no SHA-256 of tracked-20261123T1700Z.raw.xz"), "{error}");
    assert_eq!(proxy.calls().len(), calls, "nothing asked of AWS");

    // A manifest with a mistake elsewhere is refused before upstream is read.
    std::fs::write(dir.join("stack.yaml"), manifest(&files, "[us-east-1, mars-north-1]")).unwrap();
    let requests = files.requests();
    let invalid = amiplan_at(&proxy.endpoint, &dir, &scheduled);
    expect_code(&invalid, 1);
    assert!(stderr(&invalid).contains("mars-north-1"), "{}", stderr(&invalid));
    assert_eq!(files.requests(), requests, "upstream is not read for an invalid manifest");

    // Neither the distribution side nor destroy needs anything of upstream: with its newest
    // digest still missing (plan fails, as above), resolve, catalog and serve give the AMIs
    // that are live, of the version they were built as; then the stack is planned for removal
    // and removed whole. Upstream is never read.
    std::fs::write(dir.join("stack.yaml"), manifest(&files, "[us-east-1]")).unwrap();
    distribution_reads_no_upstream(&moto, &proxy, &dir).await;
    let planned = amiplan_at(&proxy.endpoint, &dir, &["plan", "stack.yaml", "--destroy", "--regions", "manifest"]);
    expect_code(&planned, 0);
    let text = stdout(&planned);
    assert!(text.contains("image/tracked-20261122T1700Z-gp3-encrypted@us-east-1 (ami-"), "{text}");
    assert!(text.contains("0 to create, 0 to update in place, 0 to replace, 4 to delete"), "{text}");
    let destroyed =
        amiplan_at(&proxy.endpoint, &dir, &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]);
    expect_code(&destroyed, 0);
    assert_stack_gone(&moto, "tracked", &["us-east-1"]).await;
    assert_eq!(files.requests(), requests, "upstream is not read to destroy: {:?}", &files.requested()[requests..]);
}
