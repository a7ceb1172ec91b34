//! End to end through moto and real VMs (`machines.rs`): every AMI built here boots, under the
//! firmware its boot mode names, and its boot test runs on it. These tests take turns (the VMs
//! take both cores); together they take several minutes.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::machines::{Boot, DOWNLOADS, Firmware, Runner, images, passed};
use crate::proxy::rules::Rule;
use crate::proxy::{Faults, Proxy};
use crate::support::*;

const REGION: &str = "us-east-1";
const COPY_REGION: &str = "us-west-2";

pub(crate) fn sha256_of(file: &Path) -> String {
    sha256_of_prefix(file, u64::MAX)
}

/// The SHA-256 of the first `length` bytes of `file` (all of it when shorter).
pub(crate) fn sha256_of_prefix(file: &Path, length: u64) -> String {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut reader = std::fs::File::open(file).unwrap().take(length);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).unwrap();
        if n == 0 {
            break hex::encode(hasher.finalize());
        }
        hasher.update(&buffer[..n]);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap().path();
        std::fs::copy(&entry, to.join(entry.file_name().unwrap())).unwrap();
    }
}

fn summary(boots: &[Boot]) -> String {
    boots
        .iter()
        .map(|b| {
            let tail = amiplan::job::log_tail(&b.console, 25);
            format!(
                "--- {} {} {:?} ({:?}, powered off: {}) ---\n{tail}",
                b.node, b.instance, b.firmware, b.took, b.powered_off
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Launch permissions of an AMI: whether it is public.
async fn is_public(moto: &Moto, region: &str, image: &str) -> bool {
    let ec2 = moto.ec2(region).await;
    let out = ec2
        .describe_image_attribute()
        .image_id(image)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    out.launch_permissions().iter().any(|p| p.group().map(|g| g.as_str()) == Some("all"))
}

/// Scenario 2, the Funtoo/Gentoo way: the Debian root tarball stands in for a stage3. The helper
/// VM partitions the volume, unpacks and provisions the system and installs amiplan's GRUB; the
/// AMI then boots under UEFI and under legacy BIOS, where the boot test finds what the
/// provisioning script and the `files:` list put in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_a_bootstrapped_system_boots_with_the_built_in_grub_under_uefi_and_bios() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 91).await;
    let files = Files::start().await;
    let runner = Runner::new(&moto, &proxy, REGION, "bootstrap").await.downloads_from(&files.url);
    let dir = workdir("vm-bootstrap");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    copy_dir(&examples.join("debian"), &dir.join("debian"));
    // What the tarball brings under /boot/efi (owned by a user FAT cannot name) must end up on
    // the EFI system partition, and the booted system must find it there.
    let mut boot_test = std::fs::read_to_string(dir.join("debian/boot-test.sh")).unwrap();
    boot_test.push_str("grep -q 'from the tarball' /boot/efi/EFI/tarball/notes.txt\n");
    std::fs::write(dir.join("debian/boot-test.sh"), boot_test).unwrap();
    let tarball = dir.join("debian-12-rootfs.tar");
    std::fs::copy(images().join("rootfs.tar"), &tarball).unwrap();
    let extra = dir.join("extra");
    std::fs::create_dir_all(extra.join("boot/efi/EFI/tarball")).unwrap();
    std::fs::write(extra.join("boot/efi/EFI/tarball/notes.txt"), "from the tarball\n").unwrap();
    let appended = std::process::Command::new("tar")
        .args(["--append", "--owner=1000", "--group=1000", "-f"])
        .arg(&tarball)
        .arg("-C")
        .arg(&extra)
        .arg("boot/efi/EFI/tarball")
        .status()
        .unwrap();
    assert!(appended.success());
    files.set_file("/debian-12-rootfs.tar", &tarball);
    // A tarball with no kernel: the helper stops with the reason before installing GRUB.
    let kernelless = dir.join("no-kernel.tar");
    std::fs::create_dir_all(dir.join("no-kernel/boot")).unwrap();
    std::fs::create_dir_all(dir.join("no-kernel/etc")).unwrap();
    let packed = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&kernelless)
        .arg("-C")
        .arg(dir.join("no-kernel"))
        .args(["boot", "etc"])
        .status()
        .unwrap();
    assert!(packed.success());
    files.set_file("/no-kernel.tar", &kernelless);

    let example = std::fs::read_to_string(examples.join("debian-bootstrap.yaml")).unwrap();
    let manifest = |name: &str, tarball: &Path| {
        example
            .replace("https://images.example.org/debian-12-rootfs.tar", &format!("{DOWNLOADS}/{name}"))
            .replace("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &sha256_of(tarball))
    };
    let stack = "debian-bootstrap";
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];

    std::fs::write(dir.join("stack.yaml"), manifest("no-kernel.tar", &kernelless)).unwrap();
    let keep = [&apply[..], &["--keep-on-failure"]].concat();
    let (failed, boots) = runner.alongside(stack, 1, amiplan_async(&proxy.endpoint, &dir, &keep)).await;
    let report = format!("{}\n{}\n{}", stdout(&failed), stderr(&failed), summary(&boots));
    expect_code(&failed, 1);
    assert!(boots[0].console.contains("the system has no kernel"), "{report}");
    assert!(!boots[0].console.contains("installing GRUB"), "{report}");
    assert!(format!("{}{}", stdout(&failed), stderr(&failed)).contains("the system has no kernel"), "{report}");
    assert!(moto.stack_images(REGION, stack).await.is_empty(), "{report}");
    // Kept for debugging (`--keep-on-failure`), then removed by `destroy`.
    assert_build_kept(&moto, stack, &report).await;
    let destroy = ["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let destroyed = amiplan_async(&proxy.endpoint, &dir, &destroy).await;
    expect_code(&destroyed, 0);
    assert_stack_gone_but_images(&moto, stack).await;

    std::fs::write(dir.join("stack.yaml"), manifest("debian-12-rootfs.tar", &tarball)).unwrap();
    let (applied, boots) = runner.alongside(stack, 2, amiplan_async(&proxy.endpoint, &dir, &apply)).await;
    let report = format!("{}\n{}\n{}", stdout(&applied), stderr(&applied), summary(&boots));
    expect_code(&applied, 0);
    let helper = &boots[0];
    assert!(helper.node.starts_with("helper/") && helper.powered_off, "{report}");
    assert!(helper.console.contains("installing GRUB for i386-pc x86_64-efi"), "{report}");
    assert!(helper.console.contains("copying the tarball's /boot/efi onto the EFI system partition"), "{report}");
    let tests: Vec<&Boot> = boots.iter().filter(|b| b.node.starts_with("test/")).collect();
    assert_eq!(tests.iter().map(|b| b.firmware).collect::<Vec<_>>(), [Firmware::Uefi, Firmware::Bios], "{report}");
    for (boot, firmware) in tests.iter().zip(["uefi", "bios"]) {
        assert!(boot.powered_off && passed(&boot.console), "{report}");
        assert!(boot.console.contains(&format!("via {firmware}")), "the test ran under {firmware}: {report}");
        assert!(boot.console.contains("amiplan: /boot/vmlinuz-"), "booted through amiplan's GRUB menu: {report}");
    }
    let images = moto.stack_images(REGION, stack).await;
    assert_eq!(images.len(), 1, "{report}");
    assert_eq!(tag(images[0].tags(), "amiplan:tested").map(str::len), Some(12), "the pass is recorded: {report}");
    assert_stack_gone_but_images(&moto, stack).await;

    // The test's report (of its last boot, under BIOS) was collected and is named in the report.
    let line = stdout(&applied).lines().find_map(|l| l.trim().strip_prefix("reports: ").map(str::to_string));
    let stored = dir.join(line.unwrap_or_else(|| panic!("the run names its reports: {report}")));
    assert!(stored.starts_with(dir.join("amiplan-reports").join(stack)), "{}", stored.display());
    let collected = std::fs::read_to_string(stored.join("files/boot.txt")).unwrap();
    assert!(collected.contains("firmware: bios") && collected.contains("root: /dev/nvme0n1p3"), "{collected}");
    assert!(stored.join("reports.tar.gz").is_file());
}

/// Scenario 1, fedimg's way: a `.raw.xz` of a bootable image, written by the helper VM. The
/// snapshot holds exactly the decompressed image; the AMI boots, passes its test, and only then is
/// copied and made public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_a_downloaded_raw_xz_is_written_byte_for_byte_boots_and_is_then_copied_and_published() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 92).await;
    let files = Files::start().await;
    let runner = Runner::new(&moto, &proxy, REGION, "fedimg").await.downloads_from(&files.url);
    let compressed = images().join("bootable.raw.xz");
    files.set_file("/bootable.raw.xz", &compressed);

    let dir = workdir("vm-fedimg");
    std::fs::write(
        dir.join("boot-test.sh"),
        "#!/bin/sh\nset -eu\ntest -d /etc/cloud\ngrep -q nvme0n1p3 /proc/partitions\n",
    )
    .unwrap();
    let stack = "fedimg";
    let manifest = format!(
        "stack: {stack}
source:
  url: {DOWNLOADS}/bootable.raw.xz
  sha256: {}
build:
  region: {REGION}
  method: helper
  volume_size: 2
  helper: {{ ami: {{ owner: amazon, name: \"al2023-ami-2023.*-x86_64\" }}, timeout: 20m }}
image:
  name: \"fedimg-{{arch}}\"
  architecture: x86_64
  boot_mode: legacy-bios
test: {{ script: boot-test.sh, timeout: 20m }}
regions: [{REGION}, {COPY_REGION}]
publish: {{ public: true }}
",
        sha256_of(&compressed)
    );
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];

    // Scenario 3 for a helper: a download that is not the image the manifest names. The helper
    // VM refuses it before writing anything; the report and the events have the reason and the
    // VM's console, and nothing is left.
    files.set("/wrong.raw.xz", "not the image\n");
    let wrong = manifest.replace("/bootable.raw.xz", "/wrong.raw.xz");
    std::fs::write(dir.join("stack.yaml"), &wrong).unwrap();
    let with_events = [&apply[..], &["--events", "events.jsonl"]].concat();
    let (failed, boots) = runner.alongside(stack, 1, amiplan_async(&proxy.endpoint, &dir, &with_events)).await;
    let report = format!("{}\n{}\n{}", stdout(&failed), stderr(&failed), summary(&boots));
    expect_code(&failed, 1);
    assert_eq!(boots.len(), 1, "{report}");
    let expected =
        format!("has SHA-256 {}, expected {}", hex::encode(Sha256::digest(b"not the image\n")), sha256_of(&compressed));
    assert!(stdout(&failed).contains(&format!("the helper's job failed: the downloaded image {expected}")), "{report}");
    assert!(
        stdout(&failed).contains("Linux version") || stdout(&failed).contains("cloud-init"),
        "the VM's console: {report}"
    );
    assert!(stdout(&failed).contains("AMIPLAN-LOG"), "the job's own log: {report}");
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = events.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failure = events.iter().find(|e| e["event"] == "failed").unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(failure["node"], format!("snapshot/{stack}-root@{REGION}"), "{failure}");
    assert!(failure["error"].as_str().unwrap().contains(&expected), "{failure}");
    assert_eq!(failure["resource"].as_str(), Some(boots[0].instance.as_str()), "the helper is named: {failure}");
    let skipped: Vec<&str> =
        events.iter().filter(|e| e["event"] == "skipped").filter_map(|e| e["node"].as_str()).collect();
    assert!(skipped.contains(&format!("image/fedimg-x86_64@{REGION}").as_str()), "{skipped:?}");
    assert!(moto.stack_images(REGION, stack).await.is_empty(), "{report}");
    assert!(moto.stack_snapshots(REGION, stack).await.is_empty(), "{report}");
    assert_stack_gone_but_images(&moto, stack).await;

    // The same failure with `--keep-on-failure`: the helper (stopped), its volume and network
    // stay for debugging until the next apply or `destroy`.
    let keep = [&apply[..], &["--keep-on-failure"]].concat();
    let (kept, boots) = runner.alongside(stack, 1, amiplan_async(&proxy.endpoint, &dir, &keep)).await;
    let report = format!("{}\n{}\n{}", stdout(&kept), stderr(&kept), summary(&boots));
    expect_code(&kept, 1);
    assert!(boots[0].powered_off && stdout(&kept).contains(&expected), "{report}");
    assert!(stdout(&kept).contains("kept for debugging"), "{report}");
    let left = assert_build_kept(&moto, stack, &report).await;
    assert!(left.contains(&format!("instance {} (stopped)", boots[0].instance)), "{left:?}");

    std::fs::write(dir.join("stack.yaml"), manifest).unwrap();
    let (applied, boots) = runner.alongside(stack, 2, amiplan_async(&proxy.endpoint, &dir, &apply)).await;
    let report = format!("{}\n{}\n{}", stdout(&applied), stderr(&applied), summary(&boots));
    expect_code(&applied, 0);
    assert!(boots.iter().all(|b| b.powered_off && passed(&b.console)), "{report}");
    assert_eq!(boots[1].firmware, Firmware::Bios, "{report}");
    // The kept pieces were taken over or replaced, and nothing of the build is left. Every launch
    // was a new attempt with a token of its own (rule `client-tokens`: EC2 would answer a token
    // used before with its first, long terminated, helper).
    assert_stack_gone_but_images(&moto, stack).await;
    let launches: Vec<Option<String>> = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "RunInstances")
        .map(|c| c.param("ClientToken").map(str::to_string))
        .collect();
    assert!(launches.iter().all(Option::is_some), "every launch carries a token: {launches:?}");
    let distinct: std::collections::BTreeSet<&Option<String>> = launches.iter().collect();
    assert_eq!(distinct.len(), 4, "three helpers and a test instance, a new token each: {launches:?}");
    assert_eq!(proxy.enforced(Rule::ClientTokens), 0, "no token was refused or answered from an earlier launch");

    // The snapshot's content is what the helper wrote: the decompressed image, byte for byte.
    let snapshot = &moto.stack_snapshots(REGION, stack).await[0];
    let written = runner.volume_file(snapshot.volume_id().unwrap()).expect("the runner kept the volume");
    let original = images().join("bootable.raw");
    assert_eq!(std::fs::metadata(&written).unwrap().len(), std::fs::metadata(&original).unwrap().len());
    assert_eq!(sha256_of(&written), sha256_of(&original), "the snapshot holds the decompressed image");

    for region in [REGION, COPY_REGION] {
        let images = moto.stack_images(region, stack).await;
        assert_eq!(images.len(), 1, "{region}: {report}");
        assert!(is_public(&moto, region, images[0].image_id().unwrap()).await, "{region} is public: {report}");
    }
    assert_stack_gone_but_images(&moto, stack).await;
    let destroy = ["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    expect_code(&amiplan_async(&proxy.endpoint, &dir, &destroy).await, 0);
    assert_stack_gone(&moto, stack, &[REGION, COPY_REGION]).await;
}

/// Scenarios 3 and 4: a bootable raw image uploaded directly. A boot test that fails keeps the
/// AMI private and uncopied, leaves no instance or security group, and reports the VM's console;
/// once the test is fixed the same AMI is tested again, passes, and is copied; with
/// `test.regions: all` the copy boots its own test in its region before it is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_a_directly_uploaded_image_boots_a_failing_test_holds_it_back_and_a_fixed_one_publishes_it() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 93).await;
    let runner = Runner::new(&moto, &proxy, REGION, "direct").await.also_in(COPY_REGION);
    let dir = workdir("vm-direct");
    // A link, not a copy: amiplan refuses a source that leads outside the manifest's directory.
    std::fs::hard_link(images().join("bootable.raw"), dir.join("disk.raw")).unwrap();
    // The failing test leaves more reports than the console carries: they go through the bucket.
    let failing = "#!/bin/sh
mkdir -p /var/tmp/reports
echo 'the service is not running' > /var/tmp/reports/why.txt
head -c 100000 /dev/urandom > /var/tmp/reports/noise.bin
echo 'the service under test is not running' >&2
exit 1
";
    std::fs::write(dir.join("boot-test.sh"), failing).unwrap();
    let bucket = "direct-boot-reports";
    moto.s3(REGION).await.create_bucket().bucket(bucket).send().await.unwrap();
    // The test instances reach S3 from the default subnet, through the default VPC's gateway.
    moto.complete_default_vpc(REGION).await;
    moto.complete_default_vpc(COPY_REGION).await;
    let stack = "direct-boot";
    let manifest = format!(
        "stack: {stack}
source: {{ file: disk.raw }}
build: {{ region: {REGION} }}
image:
  name: \"direct-boot-{{arch}}\"
  architecture: x86_64
  boot_mode: uefi
test: {{ script: boot-test.sh, timeout: 20m, regions: all, reports: /var/tmp/reports, reports_bucket: {{ bucket: {bucket}, prefix: runs/ }} }}
regions: [{REGION}, {COPY_REGION}]
publish: {{ public: true }}
"
    );
    std::fs::write(dir.join("stack.yaml"), &manifest).unwrap();
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];

    let (failed, boots) = runner.alongside(stack, 1, amiplan_async(&proxy.endpoint, &dir, &apply)).await;
    let report = format!("{}\n{}\n{}", stdout(&failed), stderr(&failed), summary(&boots));
    expect_code(&failed, 1);
    assert_eq!(boots.len(), 1, "{report}");
    assert_eq!(boots[0].firmware, Firmware::Uefi, "{report}");
    let output = format!("{}{}", stdout(&failed), stderr(&failed));
    assert!(output.contains("the test script failed (exit status 1)"), "{report}");
    assert!(output.contains("the service under test is not running"), "the console tail is reported: {report}");
    assert!(output.contains("Linux version") || output.contains("cloud-init"), "it is the VM's console: {report}");
    let built = moto.stack_images(REGION, stack).await;
    assert_eq!(built.len(), 1, "{report}");
    let image = built[0].image_id().unwrap().to_string();
    assert!(!is_public(&moto, REGION, &image).await, "a failed AMI stays private");
    assert!(moto.stack_images(COPY_REGION, stack).await.is_empty(), "and is not copied");
    assert_eq!(tag(built[0].tags(), "amiplan:tested"), None, "{report}");
    let ec2 = moto.ec2(REGION).await;
    let by_stack = || aws_sdk_ec2::types::Filter::builder().name("tag:amiplan:stack").values(stack).build();
    let groups = ec2.describe_security_groups().filters(by_stack()).send().await.unwrap();
    assert!(groups.security_groups().is_empty(), "the test's security groups are gone");
    let instances = ec2.describe_instances().filters(by_stack()).send().await.unwrap();
    for instance in instances.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(instance.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("terminated"));
    }
    // The AMI is kept; the next plan tests it again before the copy and the copy's own test.
    let plan = ["plan", "stack.yaml", "--regions", "manifest"];
    let planned = amiplan_async(&proxy.endpoint, &dir, &plan).await;
    let text = stdout(&planned);
    assert!(text.contains("Plan: 3 to create, 0 to update in place, 0 to replace, 0 to delete"), "{text}");
    for node in [format!("test/direct-boot-x86_64@{REGION}"), format!("test/direct-boot-x86_64@{COPY_REGION}")] {
        assert!(text.contains(&node), "{node}: {text}");
    }
    // The VM uploaded its reports with one presigned PUT; amiplan checked, stored and removed them.
    let key = format!("runs/amiplan-reports/{stack}/{image}.tar.gz");
    let puts: Vec<_> = proxy.calls().into_iter().filter(|c| c.operation == "PutObject").collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!((puts[0].param("Bucket"), puts[0].param("Key")), (Some(bucket), Some(key.as_str())));
    assert!(puts[0].param("X-Amz-Signature").is_some(), "presigned: {puts:?}");
    let valid: u64 = puts[0].param("X-Amz-Expires").unwrap().parse().unwrap();
    assert_eq!(valid, 20 * 60 + 30 * 60, "the test's timeout and the margin");
    assert_eq!(proxy.enforced(Rule::PresignedUrls), 0);
    let line = stdout(&failed).lines().find_map(|l| l.trim().strip_prefix("reports: ").map(str::to_string));
    let stored = dir.join(line.unwrap_or_else(|| panic!("the run names its reports: {report}")));
    let why = std::fs::read_to_string(stored.join("files/why.txt")).unwrap();
    assert_eq!(why, "the service is not running\n");
    assert_eq!(std::fs::metadata(stored.join("files/noise.bin")).unwrap().len(), 100_000);
    let left = moto.s3(REGION).await.list_objects_v2().bucket(bucket).send().await.unwrap();
    assert!(left.contents().is_empty(), "collected reports leave the bucket: {:?}", left.contents());

    assert!(boots[0].console.contains("with curl"), "{report}");

    // The image has curl; the fixed script hides it, so the upload takes the python3 path of
    // images without curl.
    let fixed = "#!/bin/sh
set -eu
test -d /sys/firmware/efi
mkdir -p /var/tmp/reports
echo fixed > /var/tmp/reports/result.txt
mv /usr/bin/curl /usr/bin/curl.hidden
echo fixed
";
    std::fs::write(dir.join("boot-test.sh"), fixed).unwrap();
    let (applied, boots) = runner.alongside(stack, 2, amiplan_async(&proxy.endpoint, &dir, &apply)).await;
    let report = format!("{}\n{}\n{}", stdout(&applied), stderr(&applied), summary(&boots));
    expect_code(&applied, 0);
    assert_eq!(boots.len(), 2, "{report}");
    assert!(boots.iter().all(|b| passed(&b.console) && b.console.contains("with python3")), "{report}");
    // The copy is booted after the AMI it copies passed, in its own region.
    let order: Vec<&str> = boots.iter().map(|b| b.node.as_str()).collect();
    let expected = [format!("test/direct-boot-x86_64@{REGION}"), format!("test/direct-boot-x86_64@{COPY_REGION}")];
    assert_eq!(order, expected, "{report}");
    let line = stdout(&applied).lines().find_map(|l| l.trim().strip_prefix("reports: ").map(str::to_string));
    let stored = dir.join(line.unwrap_or_else(|| panic!("the run names its reports: {report}")));
    assert_eq!(std::fs::read_to_string(stored.join("files/result.txt")).unwrap(), "fixed\n");
    assert_eq!(proxy.calls().iter().filter(|c| c.operation == "PutObject").count(), 3);
    let left = moto.s3(REGION).await.list_objects_v2().bucket(bucket).send().await.unwrap();
    assert!(left.contents().is_empty(), "{:?}", left.contents());
    assert_eq!(moto.stack_images(REGION, stack).await[0].image_id(), Some(image.as_str()), "the same AMI: {report}");
    for region in [REGION, COPY_REGION] {
        let images = moto.stack_images(region, stack).await;
        assert_eq!(images.len(), 1, "{region}: {report}");
        assert!(tag(images[0].tags(), "amiplan:tested").is_some(), "{region} was tested: {report}");
        assert!(is_public(&moto, region, images[0].image_id().unwrap()).await, "{region}: {report}");
    }
    // Tested once: a re-run plans nothing; a new region plans its copy and that copy's test only.
    let unchanged = amiplan_async(&proxy.endpoint, &dir, &[&plan[..], &["--detailed-exitcode"]].concat()).await;
    expect_code(&unchanged, 0);
    let grown = manifest.replace(&format!("{COPY_REGION}]"), &format!("{COPY_REGION}, sa-east-1]"));
    std::fs::write(dir.join("stack.yaml"), grown).unwrap();
    let planned = amiplan_async(&proxy.endpoint, &dir, &plan).await;
    let text = stdout(&planned);
    assert!(text.contains("Plan: 2 to create, 0 to update in place, 0 to replace, 0 to delete"), "{text}");
    assert!(text.contains("test/direct-boot-x86_64@sa-east-1"), "{text}");
}

/// Nothing but the AMIs and their snapshots is left of a build: no instance still running, no
/// volume, no security group, no temporary network.
async fn assert_stack_gone_but_images(moto: &Moto, stack: &str) {
    assert_eq!(leftovers(moto, REGION, stack).await, Vec::<String>::new());
}

/// Everything of a failed build is kept (`--keep-on-failure`): the stopped helper, its volume,
/// its security group and the temporary network.
async fn assert_build_kept(moto: &Moto, stack: &str, report: &str) -> Vec<String> {
    let left = leftovers(moto, REGION, stack).await;
    for kind in ["Vpc", "Subnet", "InternetGateway", "RouteTable", "SecurityGroup", "Volume", "instance"] {
        assert!(left.iter().any(|l| l.starts_with(kind)), "{kind} is kept: {left:?}\n{report}");
    }
    left
}
