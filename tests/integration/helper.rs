//! Helper builds against moto. The two examples run on a real helper VM (`machines.rs`) while
//! the test checks what amiplan launched (user-data, IMDSv2, no key, no inbound rules). Where a
//! test needs what a VM cannot give (a kill at a chosen call, faults, the launch's root volume
//! size), the test plays the helper from outside instead: it answers as a real helper would, its
//! result on the console (served by the fault proxy) and a power-off.

use std::path::Path;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, HttpTokensState, Instance};

use crate::machines::{DOWNLOADS, Runner, images, passed};
use crate::proxy::rules::{self, Rule};
use crate::proxy::{Faults, Proxy};
use crate::support::*;

const REGION: &str = "us-east-1";
const DIGEST: &str = "6205ae0c524b4d1816dbd3573ce29b5c44ed26c9fbc874fbe48c41c89dd0bac2";

/// A small helper-build manifest, built from data: a test varies a field.
#[derive(Debug, Clone)]
struct HelperManifest {
    stack: String,
    volume_size: u32,
    /// Extra settings of `helper:`.
    helper: Vec<&'static str>,
    /// `network:` of the build, when not the default temporary network.
    network: Option<&'static str>,
}

impl HelperManifest {
    fn new(stack: &str) -> HelperManifest {
        HelperManifest { stack: stack.to_string(), volume_size: 2, helper: vec![], network: None }
    }

    fn yaml(&self) -> String {
        let stack = &self.stack;
        let helper: String = self.helper.iter().map(|setting| format!(", {setting}")).collect();
        let network = self.network.map(|n| format!("  network: {n}\n")).unwrap_or_default();
        format!(
            "# yaml-language-server: $schema=x
stack: {stack}
source:
  url: https://images.example.org/{stack}.raw.zst
  sha256: {DIGEST}
build:
  region: {REGION}
  method: helper
{network}  volume_size: {}
  helper: {{ ami: {{ owner: amazon, name: \"al2023-ami-2023.*-x86_64\" }}, timeout: 5m{helper} }}
image:
  name: \"{stack}-{{volume_type}}\"
  architecture: x86_64
variants:
  volume_type: [gp3]
regions: [{REGION}]
",
            self.volume_size
        )
    }
}

fn small_helper_manifest(stack: &str) -> String {
    HelperManifest::new(stack).yaml()
}

fn write_manifest(name: &str, text: &str) -> std::path::PathBuf {
    let dir = workdir(name);
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    dir
}

async fn user_data(moto: &Moto, instance: &str) -> String {
    crate::support::user_data(&moto.ec2(REGION).await, instance).await
}

/// Waits for the stack's helper to run, with its target volume attached (amiplan attaches it
/// right before it starts waiting for the job).
async fn wait_for_helper(moto: &Moto, stack: &str) -> Instance {
    let ec2 = moto.ec2(REGION).await;
    for _ in 0..600 {
        let by_stack = Filter::builder().name("tag:amiplan:stack").values(stack).build();
        let running = Filter::builder().name("instance-state-name").values("running").build();
        let out = ec2.describe_instances().filters(by_stack).filters(running).send().await.unwrap();
        let instance = out.reservations().iter().flat_map(|r| r.instances()).next().cloned();
        if let Some(instance) = instance {
            let attached =
                Filter::builder().name("attachment.instance-id").values(instance.instance_id().unwrap()).build();
            let volumes = ec2.describe_volumes().filters(attached).send().await.unwrap();
            if volumes.volumes().iter().any(|v| v.attachments().iter().any(|a| a.device() == Some("/dev/sdf"))) {
                return instance;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no helper with an attached volume appeared for {stack}");
}

/// Checks what every helper must be: IMDSv2 only, no key pair, no inbound rules, stopping (not
/// vanishing) when its job powers it off, tagged, and carrying a job that checks the digest.
async fn check_helper(moto: &Moto, instance: &Instance, stack: &str, digest: &str) -> String {
    let ec2 = moto.ec2(REGION).await;
    let id = instance.instance_id().unwrap();
    let metadata = instance.metadata_options().unwrap();
    assert_eq!(metadata.http_tokens(), Some(&HttpTokensState::Required), "IMDSv2 required");
    assert_eq!(instance.key_name(), None, "no SSH key");
    assert_eq!(tag(instance.tags(), "amiplan:node"), Some(format!("helper/{stack}@{REGION}").as_str()));
    for group in instance.security_groups() {
        let out = ec2.describe_security_groups().group_ids(group.group_id().unwrap()).send().await.unwrap();
        let group = &out.security_groups()[0];
        assert!(group.ip_permissions().is_empty(), "no inbound rules: {:?}", group.ip_permissions());
        assert_eq!(tag(group.tags(), "amiplan:stack"), Some(stack));
    }
    assert_eq!(shutdown_behavior(&ec2, id).await.as_deref(), Some("stop"));
    let script = user_data(moto, id).await;
    assert!(script.starts_with("#!/bin/bash\n") && script.contains("set -euo pipefail"), "{script}");
    assert!(script.contains(digest), "the job checks the digest");
    let volume = script.lines().find_map(|l| l.strip_prefix("VOLUME=")).unwrap();
    assert!(volume.starts_with("vol-"), "the job names its target volume");
    script.lines().find_map(|l| l.strip_prefix("JOB=")).unwrap().to_string()
}

/// What a real helper's job would print, given the network and root volume amiplan gave it
/// (rules `helper-network` and `helper-scratch`): `ok`, or the failure it would meet.
async fn job_console(moto: &Moto, proxy: &Proxy, instance: &Instance, job: &str) -> String {
    let ec2 = moto.ec2(REGION).await;
    let id = instance.instance_id().unwrap();
    let launch = proxy.launch_of(id).expect("amiplan launched the helper through the proxy");
    let rules = proxy.rules();
    if rules.on(Rule::HelperNetwork)
        && let Some(why) = rules::no_way_out(&ec2, &launch, instance).await
    {
        return failed(job, &format!("download failed: {why}"));
    }
    if rules.on(Rule::HelperScratch) {
        let out = ec2.describe_images().image_ids(instance.image_id().unwrap()).send().await.unwrap();
        let image = &out.images()[0];
        let root_name = image.root_device_name().unwrap_or("/dev/xvda");
        let snapshot_gib = image
            .block_device_mappings()
            .iter()
            .find(|m| m.device_name() == Some(root_name))
            .and_then(|m| m.ebs()?.volume_size())
            .unwrap_or(8);
        let root_gib = rules::root_volume_gib(&launch, root_name, snapshot_gib);
        let attached = Filter::builder().name("attachment.instance-id").values(id).build();
        let volumes = ec2.describe_volumes().filters(attached).send().await.unwrap();
        let target = volumes.volumes().iter().find(|v| v.attachments().iter().any(|a| a.device() == Some("/dev/sdf")));
        let target_gib = target.and_then(|v| v.size()).unwrap_or(0);
        let unpacks_on_root = user_data(moto, id).await.contains("-d \"$WORK/root\" \"$DEVICE\"");
        if let Some(why) = rules::scratch_refusal(root_gib, target_gib, unpacks_on_root) {
            return failed(job, &why);
        }
    }
    succeeded(job)
}

fn failed(job: &str, why: &str) -> String {
    format!(
        "[   12.0] cloud-init[812]: AMIPLAN-LOG {job} working\r\n[   13.1] cloud-init[812]: AMIPLAN-RESULT {job} failed: {why}\r\n"
    )
}

/// Answers as the helper, once amiplan is reading its console: the console, then a power-off
/// (the instance stops).
async fn finish_helper(moto: &Moto, proxy: &Proxy, instance: &str, console: &str) {
    let polled = |proxy: &Proxy| {
        proxy.calls().iter().any(|c| c.operation == "GetConsoleOutput" && c.params.iter().any(|(_, v)| v == instance))
    };
    for _ in 0..600 {
        if polled(proxy) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(polled(proxy), "amiplan never read the console of {instance}");
    proxy.set_console(instance, console);
    crate::support::power_off(&moto.ec2(REGION).await, proxy, instance).await;
}

/// Plays a helper whose job succeeds, after the checks every helper must pass.
async fn play_helper(moto: &Moto, proxy: &Proxy, stack: &str) {
    play_helper_checking(moto, proxy, stack, DIGEST).await;
}

/// Plays a helper whose job checks `digest` and succeeds; returns the job's script.
pub(crate) async fn play_helper_checking(moto: &Moto, proxy: &Proxy, stack: &str, digest: &str) -> String {
    let instance = wait_for_helper(moto, stack).await;
    let script = user_data(moto, instance.instance_id().unwrap()).await;
    let job = check_helper(moto, &instance, stack, digest).await;
    let console = job_console(moto, proxy, &instance, &job).await;
    finish_helper(moto, proxy, instance.instance_id().unwrap(), &console).await;
    script
}

fn succeeded(job: &str) -> String {
    format!(
        "[   10.2] cloud-init[812]: AMIPLAN-LOG {job} writing the image\r\n[   31.9] cloud-init[812]: AMIPLAN-RESULT {job} ok\r\n"
    )
}

/// What AWS gives every default VPC and moto does not: an attached internet gateway and a
/// 0.0.0.0/0 route to it in the main route table.
async fn give_default_vpc_a_way_out(ec2: &aws_sdk_ec2::Client, vpc: &str) {
    let attached = Filter::builder().name("attachment.vpc-id").values(vpc).build();
    let gateways = ec2.describe_internet_gateways().filters(attached).send().await.unwrap();
    let gateway = match gateways.internet_gateways().first().and_then(|g| g.internet_gateway_id()) {
        Some(id) => id.to_string(),
        None => {
            let created = ec2.create_internet_gateway().send().await.unwrap();
            let id = created.internet_gateway().unwrap().internet_gateway_id().unwrap().to_string();
            ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(vpc).send().await.unwrap();
            id
        }
    };
    let main = Filter::builder().name("association.main").values("true").build();
    let in_vpc = Filter::builder().name("vpc-id").values(vpc).build();
    let tables = ec2.describe_route_tables().filters(main).filters(in_vpc).send().await.unwrap();
    let table = tables.route_tables()[0].route_table_id().unwrap().to_string();
    let _ = ec2.delete_route().route_table_id(&table).destination_cidr_block("0.0.0.0/0").send().await;
    ec2.create_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&gateway)
        .send()
        .await
        .unwrap();
}

fn copy_example(name: &str, dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(root.join(name), dir.join(name)).unwrap();
    std::fs::create_dir_all(dir.join("funtoo")).unwrap();
    for file in std::fs::read_dir(root.join("funtoo")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, dir.join("funtoo").join(file.file_name().unwrap())).unwrap();
    }
}

/// The fedimg-style example on a real helper VM, with the image it names served locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_the_fedora_helper_example_builds_in_a_temporary_vpc_and_leaves_no_trace() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 41).await;
    let dir = workdir("helper-fedora");
    copy_example("fedora-helper.yaml", &dir);
    // Fedora's image is on the internet: the VM downloads the test image under its name, from
    // the build machine's file server, and checks its digest.
    let files = Files::start().await;
    let image = images().join("bootable.raw.xz");
    let digest = crate::boots::sha256_of(&image);
    let name = "Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz";
    files.set_file(&format!("/{name}"), &image);
    let example = std::fs::read_to_string(dir.join("fedora-helper.yaml")).unwrap();
    let released =
        format!("https://download.fedoraproject.org/pub/fedora/linux/releases/41/Cloud/x86_64/images/{name}");
    assert!(example.contains(&released) && example.contains(DIGEST), "the example names Fedora's image");
    let local = example.replace(&released, &format!("{DOWNLOADS}/{name}")).replace(DIGEST, &digest);
    std::fs::write(dir.join("fedora-helper.yaml"), local).unwrap();
    let stack = "fedora-helper-example";
    let args = ["--regions", "manifest"];

    let planned = amiplan_async(&proxy.endpoint, &dir, &[&["plan", "fedora-helper.yaml"][..], &args].concat()).await;
    expect_code(&planned, 0);
    let text = stdout(&planned);
    for node in ["vpc/", "subnet/", "internet-gateway/", "route-table/", "security-group/", "volume/", "helper/"] {
        assert!(text.contains(&format!("{node}{stack}@us-east-1")), "plan lists {node}: {text}");
    }
    assert!(text.contains("transient: created for the build, removed after"), "{text}");
    assert!(
        text.contains("in us-east-1a, which offers t3.small"),
        "the subnet is placed where the type is offered: {text}"
    );
    assert!(text.contains("boots ami-"), "the resolved helper AMI is shown: {text}");

    let apply_args = [&["apply", "fedora-helper.yaml", "--auto-approve"][..], &args].concat();
    let runner = Runner::new(&moto, &proxy, REGION, "fedora-example").await.downloads_from(&files.url);
    let inspector = async {
        let instance = wait_for_helper(&moto, stack).await;
        check_helper(&moto, &instance, stack, &digest).await;
        let script = user_data(&moto, instance.instance_id().unwrap()).await;
        assert!(script.contains(name) && script.contains("xz -dc"));
    };
    let ((applied, boots), ()) =
        tokio::join!(runner.alongside(stack, 1, amiplan_async(&proxy.endpoint, &dir, &apply_args)), inspector);
    let consoles: Vec<&str> = boots.iter().map(|b| b.console.as_str()).collect();
    expect_code(&applied, 0);
    assert!(boots[0].powered_off && passed(&boots[0].console), "{consoles:?}");

    for region in ["us-east-1", "us-west-2"] {
        for name in ["hvm-standard", "hvm-gp3", "paravirtual-standard", "paravirtual-gp3"] {
            let name = format!("{stack}-{name}");
            assert_eq!(moto.images_named(region, &name).await.len(), 1, "{name} in {region}");
        }
    }
    let snapshots = moto.stack_snapshots(REGION, stack).await;
    assert!(
        snapshots.iter().any(|s| tag(s.tags(), "amiplan:node") == Some(&format!("snapshot/{stack}-root@{REGION}"))),
        "the snapshot of the target volume is tagged"
    );
    // The 5 GiB volume starts with the decompressed image, byte for byte.
    let written = runner.volume_file(snapshots[0].volume_id().unwrap()).expect("the runner kept the volume");
    let original = images().join("bootable.raw");
    let length = std::fs::metadata(&original).unwrap().len();
    assert_eq!(std::fs::metadata(&written).unwrap().len(), 5 << 30);
    assert_eq!(
        crate::boots::sha256_of_prefix(&written, length),
        crate::boots::sha256_of(&original),
        "the snapshot holds the decompressed image"
    );
    assert_eq!(
        leftovers(&moto, REGION, stack).await,
        Vec::<String>::new(),
        "every transient resource is gone: {}\n{:?}",
        stdout(&applied),
        proxy
            .calls()
            .iter()
            .filter(|c| c.operation.starts_with("Create") || c.operation.starts_with("Delete"))
            .map(|c| c.operation.clone())
            .collect::<Vec<_>>()
    );
    let calls = proxy.calls();
    let ops = |op: &str| calls.iter().filter(|c| c.operation == op).count();
    assert_eq!((ops("RunInstances"), ops("CreateVpc"), ops("DeleteVpc")), (1, 1, 1));

    // Once the AMIs exist a plan needs no helper at all.
    let again = amiplan_async(
        &proxy.endpoint,
        &dir,
        &[&["plan", "fedora-helper.yaml", "--detailed-exitcode"][..], &args].concat(),
    )
    .await;
    expect_code(&again, 0);
    assert!(!stdout(&again).contains("helper/"), "{}", stdout(&again));

    let destroyed = amiplan_async(
        &proxy.endpoint,
        &dir,
        &[&["destroy", "fedora-helper.yaml", "--auto-approve"][..], &args].concat(),
    )
    .await;
    expect_code(&destroyed, 0);
    assert_stack_gone(&moto, stack, &["us-east-1", "us-west-2"]).await;
}

/// The Funtoo example on a real helper VM, with a stand-in for its stage3 served locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_the_funtoo_example_bootstraps_in_an_existing_subnet_and_leaves_it_alone() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 42).await;
    let dir = workdir("helper-funtoo");
    copy_example("funtoo-bootstrap.yaml", &dir);
    // Funtoo's stage3 is on the internet: the Debian root tarball stands in for it, with the
    // OpenRC runlevel directory a stage3 has and the example's provisioning script links into.
    let files = Files::start().await;
    let stage3 = dir.join("stage3-latest.tar");
    std::fs::copy(images().join("rootfs.tar"), &stage3).unwrap();
    std::fs::create_dir_all(dir.join("openrc/etc/runlevels/default")).unwrap();
    let appended = std::process::Command::new("tar")
        .args(["--append", "--owner=0", "--group=0", "-f"])
        .arg(&stage3)
        .arg("-C")
        .arg(dir.join("openrc"))
        .arg("etc/runlevels")
        .status()
        .unwrap();
    assert!(appended.success());
    files.set_file("/stage3-latest.tar", &stage3);
    let example = std::fs::read_to_string(dir.join("funtoo-bootstrap.yaml")).unwrap();
    let placeholder = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let released = "https://build.funtoo.org/next/x86-64bit/generic_64/stage3-latest.tar.xz";
    assert!(example.contains(released) && example.contains(placeholder), "the example names Funtoo's stage3");
    let digest = crate::boots::sha256_of(&stage3);
    let local = example.replace(released, &format!("{DOWNLOADS}/stage3-latest.tar")).replace(placeholder, &digest);
    std::fs::write(dir.join("funtoo-bootstrap.yaml"), local).unwrap();
    let ec2 = moto.ec2(REGION).await;
    let subnets = ec2.describe_subnets().send().await.unwrap().subnets().to_vec();
    let in_zone = |zone: &str| subnets.iter().find(|s| s.availability_zone() == Some(zone)).unwrap().clone();
    // us-east-1e offers no c5 instances (rule `instance-type-offerings`): the plan says so.
    let manifest = std::fs::read_to_string(dir.join("funtoo-bootstrap.yaml")).unwrap();
    let unoffered = in_zone("us-east-1e");
    std::fs::write(
        dir.join("funtoo-bootstrap.yaml"),
        manifest.replace("subnet-0123456789abcdef0", unoffered.subnet_id().unwrap()),
    )
    .unwrap();
    let planned =
        amiplan_async(&proxy.endpoint, &dir, &["plan", "funtoo-bootstrap.yaml", "--regions", "manifest"]).await;
    assert!(stdout(&planned).contains("is in us-east-1e, where c5.large is not offered"), "{}", stdout(&planned));
    std::fs::write(dir.join("funtoo-bootstrap.yaml"), &manifest).unwrap();
    let subnet = in_zone("us-east-1a");
    let subnet_id = subnet.subnet_id().unwrap();
    let manifest = std::fs::read_to_string(dir.join("funtoo-bootstrap.yaml")).unwrap();
    std::fs::write(dir.join("funtoo-bootstrap.yaml"), manifest.replace("subnet-0123456789abcdef0", subnet_id)).unwrap();
    let stack = "funtoo-example";

    // moto's default VPC has no way out; AWS's has an internet gateway and a default route.
    // Planned as it is, the helper could not download its tarball: the plan says so first.
    let planned =
        amiplan_async(&proxy.endpoint, &dir, &["plan", "funtoo-bootstrap.yaml", "--regions", "manifest"]).await;
    expect_code(&planned, 0);
    let text = stdout(&planned);
    assert!(text.contains(&format!("{subnet_id} has no 0.0.0.0/0 route")), "the plan warns: {text}");
    give_default_vpc_a_way_out(&ec2, subnet.vpc_id().unwrap()).await;
    let planned =
        amiplan_async(&proxy.endpoint, &dir, &["plan", "funtoo-bootstrap.yaml", "--regions", "manifest"]).await;
    let text = stdout(&planned);
    assert!(
        !text.contains("no 0.0.0.0/0 route")
            && text.contains("reaches the image URL with a public address through igw-"),
        "{text}"
    );

    let provision = std::fs::read(dir.join("funtoo/provision.sh")).unwrap();
    let provision_digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&provision));

    let runner = Runner::new(&moto, &proxy, REGION, "funtoo-example").await.downloads_from(&files.url);
    let inspector = async {
        let instance = wait_for_helper(&moto, stack).await;
        assert_eq!(instance.subnet_id(), Some(subnet_id), "the helper runs in the given subnet");
        check_helper(&moto, &instance, stack, &digest).await;
        let script = user_data(&moto, instance.instance_id().unwrap()).await;
        assert!(script.contains(&provision_digest), "the provisioning script is embedded and checked");
        assert!(script.contains("mkfs.ext4 -q -F -L 'funtoo'"), "{script}");
    };
    let args = ["apply", "funtoo-bootstrap.yaml", "--auto-approve", "--regions", "manifest"];
    let ((applied, boots), ()) =
        tokio::join!(runner.alongside(stack, 1, amiplan_async(&proxy.endpoint, &dir, &args)), inspector);
    let consoles: Vec<&str> = boots.iter().map(|b| b.console.as_str()).collect();
    expect_code(&applied, 0);
    assert!(boots[0].powered_off && passed(&boots[0].console), "{consoles:?}");
    // The volume is one ext4 file system labelled `funtoo`, provisioned by the example's script
    // (PV-GRUB's menu, naming the tarball's kernel) and its `files:`.
    let snapshot = &moto.stack_snapshots(REGION, stack).await[0];
    let written = runner.volume_file(snapshot.volume_id().unwrap()).expect("the runner kept the volume");
    let read = |path: &str| {
        let out = std::process::Command::new("debugfs").arg("-R").arg(format!("cat {path}")).arg(&written).output();
        String::from_utf8_lossy(&out.expect("debugfs (e2fsprogs) runs").stdout).into_owned()
    };
    let menu = read("/boot/grub/menu.lst");
    assert!(menu.contains("kernel /boot/vmlinuz-") && menu.contains("root=LABEL=funtoo"), "{menu}");
    assert_eq!(read("/etc/conf.d/hostname"), std::fs::read_to_string(dir.join("funtoo/hostname")).unwrap());
    assert!(read("/etc/fstab").starts_with("LABEL=funtoo"), "{}", read("/etc/fstab"));
    let label = std::process::Command::new("e2label").arg(&written).output().expect("e2label runs");
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "funtoo");
    assert_eq!(moto.images_named(REGION, "funtoo-example-x86_64-paravirtual").await.len(), 1);
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new());
    let calls = proxy.calls();
    for untouched in ["CreateVpc", "CreateSubnet", "DeleteSubnet", "DeleteVpc", "CreateRouteTable"] {
        assert!(!calls.iter().any(|c| c.operation == untouched), "{untouched} must not be called");
    }
    let still = ec2.describe_subnets().subnet_ids(subnet_id).send().await.unwrap();
    assert_eq!(still.subnets().len(), 1, "the existing subnet is still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_after_a_crash_adopts_the_running_helper() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 44).await;
    let stack = "helper-crash";
    let dir = write_manifest(stack, &small_helper_manifest(stack));
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];

    let mut first = tokio::process::Command::from(amiplan_command(&proxy.endpoint, &dir, &apply)).spawn().unwrap();
    let instance = wait_for_helper(&moto, stack).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // No `amiplan unlock`: the dead run's lock is taken over.
    assert_eq!(proxy.calls().iter().filter(|c| c.operation == "RunInstances").count(), 1);
    proxy.clear_calls();

    let planned = amiplan_async(&proxy.endpoint, &dir, &["plan", "stack.yaml", "--regions", "manifest"]).await;
    let text = stdout(&planned);
    let helper_line = text.lines().find(|l| l.contains("helper/helper-crash")).unwrap_or_default().to_string();
    assert!(!helper_line.contains("create"), "the running helper is adopted, not replaced: {text}");

    let player = async {
        let again = wait_for_helper(&moto, stack).await;
        assert_eq!(again.instance_id(), instance.instance_id(), "still the first helper");
        let job = check_helper(&moto, &again, stack, DIGEST).await;
        let console = job_console(&moto, &proxy, &again, &job).await;
        finish_helper(&moto, &proxy, again.instance_id().unwrap(), &console).await;
    };
    let (applied, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &dir, &apply), player);
    expect_code(&applied, 0);
    let launches = proxy.calls().iter().filter(|c| c.operation == "RunInstances").count();
    assert_eq!(launches, 0, "no second helper was started");
    assert_eq!(moto.images_named(REGION, "helper-crash-gp3").await.len(), 1);
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_build_converges_through_throttling_errors_drops_and_lag() {
    let moto = Moto::start();
    let faults = Faults {
        throttle: 0.15,
        server_error: 0.05,
        drop: 0.02,
        not_found_for: Duration::from_millis(1500),
        ..Faults::default()
    };
    let proxy = Proxy::start(&moto.raw, faults, 45).await;
    let stack = "helper-faults";
    let dir = write_manifest(stack, &small_helper_manifest(stack));
    let player = play_helper(&moto, &proxy, stack);
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let (applied, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &dir, &apply), player);
    expect_code(&applied, 0);
    let injected = proxy.injected();
    assert!(injected.throttled > 0 && injected.not_found > 0, "faults were injected: {injected:?}");
    assert_eq!(moto.images_named(REGION, "helper-faults-gp3").await.len(), 1);
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new());
    let ec2 = moto.ec2(REGION).await;
    let by_stack = Filter::builder().name("tag:amiplan:stack").values(stack).build();
    let instances = ec2.describe_instances().filters(by_stack).send().await.unwrap();
    assert_eq!(instances.reservations().iter().flat_map(|r| r.instances()).count(), 1, "exactly one helper ever");
    let destroyed =
        amiplan_async(&proxy.endpoint, &dir, &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"])
            .await;
    expect_code(&destroyed, 0);
    assert!(moto.stack_images(REGION, stack).await.is_empty());
}

/// A helper build killed after any of its mutating calls up to the wait for the job: the re-run
/// converges with one helper, and destroy leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_any_step_of_a_build_the_rerun_converges_and_destroy_finds_every_piece() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 46).await;
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let play = |stack: String| {
        let (moto, proxy) = (&moto, &proxy);
        async move { play_helper(moto, proxy, &stack).await }
    };
    let probe = write_manifest("helper-crash-probe", &small_helper_manifest("probe"));
    let (done, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &probe, &apply), play("probe".into()));
    expect_code(&done, 0);
    let mutating = proxy.mutating_calls();
    let until = mutating.iter().position(|op| op == "AttachVolume").expect("the probe attached its volume") + 1;
    for k in crash_points(until) {
        let stack = format!("hcrash{k}");
        let dir = write_manifest(&stack, &small_helper_manifest(&stack));
        let killed_at = kill_after_mutating_call(&proxy, &dir, &apply, k).await;
        let (recovered, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &dir, &apply), play(stack.clone()));
        expect_recovered(&recovered, k, &killed_at);
        assert_eq!(moto.images_named(REGION, &format!("{stack}-gp3")).await.len(), 1, "k={k} ({killed_at})");
        assert_eq!(leftovers(&moto, REGION, &stack).await, Vec::<String>::new(), "k={k} ({killed_at})");
        let ec2 = moto.ec2(REGION).await;
        let by_stack = Filter::builder().name("tag:amiplan:stack").values(&stack).build();
        let helpers = ec2.describe_instances().filters(by_stack).send().await.unwrap();
        assert_eq!(
            helpers.reservations().iter().flat_map(|r| r.instances()).count(),
            1,
            "k={k} ({killed_at}): one helper"
        );
        expect_code(
            &amiplan_async(
                &proxy.endpoint,
                &dir,
                &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"],
            )
            .await,
            0,
        );
        assert!(
            moto.stack_images(REGION, &stack).await.is_empty() && moto.stack_snapshots(REGION, &stack).await.is_empty()
        );
    }
}

/// Rule `helper-scratch`: a 20 GiB image does not fit in the scratch space of a stock 8 GiB
/// helper root volume; amiplan maps a root volume grown by what the job needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_image_builds_on_a_stock_helper_ami() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.raw, Faults::default(), 50).await;
    let stack = "helper-large";
    let dir = write_manifest(stack, &HelperManifest { volume_size: 20, ..HelperManifest::new(stack) }.yaml());
    let player = play_helper(&moto, &proxy, stack);
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let (applied, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &dir, &apply), player);
    expect_code(&applied, 0);
    let launch = proxy.calls().into_iter().find(|c| c.operation == "RunInstances").unwrap();
    let size: i32 = launch.param("BlockDeviceMapping.1.Ebs.VolumeSize").unwrap().parse().unwrap();
    assert!(size >= 8 + 20, "the root volume makes room for the image: {launch:?}");
    assert_eq!(launch.param("BlockDeviceMapping.1.Ebs.DeleteOnTermination"), Some("true"));
    assert_eq!(moto.images_named(REGION, "helper-large-gp3").await.len(), 1);
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new());
}

/// Every create of a helper build survives a lost answer (AWS did the work, the connection
/// dropped before the answer) without leaving a second resource: creates with a client token
/// are re-sent with the same token (rule `client-tokens` answers with the first resource);
/// the others look for what the lost attempt made, by its tags, before trying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_of_a_build_survives_a_lost_answer_without_a_duplicate() {
    let moto = Moto::start();
    let creates = [
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "CreateRouteTable",
        "CreateSecurityGroup",
        "CreateVolume",
        "RunInstances",
        "CreateSnapshot",
    ];
    let faults = Faults { lose_first_answer_of: creates.to_vec(), ..Faults::default() };
    let proxy = Proxy::start(&moto.raw, faults, 52).await;
    let stack = "helper-lost";
    let dir = write_manifest(stack, &small_helper_manifest(stack));
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let (applied, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &dir, &apply), play_helper(&moto, &proxy, stack));
    expect_code(&applied, 0);
    let calls = proxy.calls();
    let count = |create: &str| calls.iter().filter(|c| c.operation == create).count();
    for create in ["CreateRouteTable", "CreateVolume", "RunInstances"] {
        assert!(count(create) >= 2, "{create}'s answer was lost and it was re-sent with its token");
    }
    for create in ["CreateVpc", "CreateSubnet", "CreateInternetGateway", "CreateSecurityGroup", "CreateSnapshot"] {
        assert_eq!(count(create), 1, "{create} (no token): what the lost attempt made was found and adopted");
    }
    assert!(proxy.enforced(Rule::ClientTokens) >= 3, "token creates were answered with their first resource");
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new(), "no second network, group or volume");
    let ec2 = moto.ec2(REGION).await;
    let by_stack = Filter::builder().name("tag:amiplan:stack").values(stack).build();
    let instances = ec2.describe_instances().filters(by_stack).send().await.unwrap();
    assert_eq!(instances.reservations().iter().flat_map(|r| r.instances()).count(), 1, "one helper");
    let node = format!("snapshot/{stack}-root@{REGION}");
    let snapshots = moto.stack_snapshots(REGION, stack).await;
    assert_eq!(snapshots.iter().filter(|s| tag(s.tags(), "amiplan:node") == Some(node.as_str())).count(), 1);
    assert_eq!(moto.images_named(REGION, "helper-lost-gp3").await.len(), 1);
}

/// EC2's InsufficientInstanceCapacity (a server error: none of the type free in the zone now) is
/// waited out with backoff: a shortage that passes costs a few attempts of RunInstances with the
/// same client token, and one helper is launched; one that outlasts the call's deadline fails
/// the helper with a report line saying what to do, and the next apply converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_shortage_is_waited_out_and_said_plainly_when_it_lasts() {
    const SHORTAGE: (u16, &str, &str) = (
        500,
        "InsufficientInstanceCapacity",
        "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a).",
    );
    let moto = Moto::start();
    let stack = "helper-capacity";
    let dir = write_manifest(stack, &small_helper_manifest(stack));
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];

    let lasting = vec![("RunInstances", SHORTAGE.0, SHORTAGE.1, SHORTAGE.2)];
    let proxy = Proxy::start(&moto.raw, Faults { answer_with: lasting, ..Faults::default() }, 53).await;
    let deadline = ["--attempt-timeout", "2s", "--call-deadline", "8s"];
    let stopped = amiplan_async(&proxy.endpoint, &dir, &[&apply[..], &deadline].concat()).await;
    expect_code(&stopped, 1);
    let report = stdout(&stopped);
    let failed = report.lines().find(|l| l.contains("FAILED helper/helper-capacity@us-east-1")).unwrap_or_default();
    assert!(
        failed.contains("RunInstances in us-east-1 failed: InsufficientInstanceCapacity: We currently do not have sufficient t3.micro capacity")
            && failed.ends_with("(EC2 had none free until the call's deadline: run again later, or choose another `build.helper.instance_type` or `test.instance_type`)"),
        "{report}"
    );
    let launches = proxy.calls().iter().filter(|c| c.operation == "RunInstances").count();
    assert!(launches > 2, "retried until the deadline: {launches} attempts");
    drop(proxy);

    let passing = vec![("RunInstances", 2, SHORTAGE.0, SHORTAGE.1, SHORTAGE.2)];
    let proxy = Proxy::start(&moto.raw, Faults { answer_first_with: passing, ..Faults::default() }, 54).await;
    let (applied, ()) = tokio::join!(amiplan_async(&proxy.endpoint, &dir, &apply), play_helper(&moto, &proxy, stack));
    expect_code(&applied, 0);
    let launches: Vec<_> = proxy.calls().into_iter().filter(|c| c.operation == "RunInstances").collect();
    assert_eq!(launches.len(), 3, "two answered with the shortage, the third launched");
    let tokens: std::collections::BTreeSet<_> = launches.iter().map(|c| c.param("ClientToken")).collect();
    assert_eq!(tokens.len(), 1, "one launch, one token: {tokens:?}");
    let ec2 = moto.ec2(REGION).await;
    let by_stack = Filter::builder().name("tag:amiplan:stack").values(stack).build();
    let instances = ec2.describe_instances().filters(by_stack).send().await.unwrap();
    assert_eq!(instances.reservations().iter().flat_map(|r| r.instances()).count(), 1, "one helper");
    assert_eq!(moto.images_named(REGION, "helper-capacity-gp3").await.len(), 1);
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new());
}

/// Regression: the plan reads an existing helper subnet (its zone and route out); a subnet that
/// no longer exists must not keep `destroy` from removing what the stack owns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_works_when_the_manifests_subnet_is_gone() {
    let moto = Moto::start();
    let stack = "helper-gone";
    let network = Some("{ subnet: subnet-0aaaaaaaaaaaaaaaa }");
    let text = HelperManifest { network, ..HelperManifest::new(stack) }.yaml();
    let dir = write_manifest(stack, &text);
    let destroyed =
        amiplan_async(&moto.endpoint, &dir, &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"])
            .await;
    expect_code(&destroyed, 0);
}

/// Rule `instance-holds`: on AWS a helper holds its security group, subnet, internet gateway and
/// scratch volume until it has terminated, and terminating takes a while. First the rule, by
/// hand through the proxy; then a destroy of a stack whose helper is still running (its apply
/// was killed), which must wait the termination out and leave nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_is_waited_for_while_it_shuts_down_before_its_network_goes() {
    let moto = Moto::start();
    let mut faults = Faults::default();
    faults.rules.shutting_down_for = Duration::from_secs(3);
    let proxy = Proxy::start(&moto.raw, faults, 47).await;
    let ec2 = aws_sdk_ec2::Client::new(&config_at(&proxy.endpoint, REGION).await);

    let vpc = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap().vpc.unwrap().vpc_id.unwrap();
    let subnet = ec2.create_subnet().vpc_id(&vpc).cidr_block("10.9.0.0/24").availability_zone("us-east-1a");
    let subnet = subnet.send().await.unwrap();
    let subnet = subnet.subnet.unwrap().subnet_id.unwrap();
    let group = ec2.create_security_group().group_name("held").description("held").vpc_id(&vpc).send().await;
    let group = group.unwrap().group_id.unwrap();
    let gateway = ec2.create_internet_gateway().send().await.unwrap().internet_gateway.unwrap();
    let gateway = gateway.internet_gateway_id.unwrap();
    ec2.attach_internet_gateway().internet_gateway_id(&gateway).vpc_id(&vpc).send().await.unwrap();
    let image = moto.ec2(REGION).await.describe_images().owners("amazon").send().await.unwrap();
    let image = image.images()[0].image_id().unwrap().to_string();
    let interface = aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
        .device_index(0)
        .subnet_id(&subnet)
        .groups(&group)
        .associate_public_ip_address(true)
        .build();
    let launched = ec2
        .run_instances()
        .image_id(&image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .network_interfaces(interface)
        .send()
        .await
        .unwrap();
    let instance = launched.instances()[0].instance_id().unwrap().to_string();
    let refused = |code: &str, result: Result<(), String>| {
        let error = result.expect_err("refused while the instance holds it");
        assert!(error.contains(code), "{error}");
    };
    let said = |e: &dyn std::error::Error| aws_sdk_ec2::error::DisplayErrorContext(e).to_string();
    let delete_group =
        || async { ec2.delete_security_group().group_id(&group).send().await.map(|_| ()).map_err(|e| said(&e)) };
    let delete_subnet =
        || async { ec2.delete_subnet().subnet_id(&subnet).send().await.map(|_| ()).map_err(|e| said(&e)) };
    let detach = || async {
        let request = ec2.detach_internet_gateway().internet_gateway_id(&gateway).vpc_id(&vpc);
        request.send().await.map(|_| ()).map_err(|e| said(&e))
    };
    refused("DependencyViolation", delete_group().await);
    refused("DependencyViolation", delete_subnet().await);
    refused("DependencyViolation", detach().await);
    ec2.terminate_instances().instance_ids(&instance).send().await.unwrap();
    let state = || async {
        let out = ec2.describe_instances().instance_ids(&instance).send().await.unwrap();
        let state = out.reservations()[0].instances()[0].state().and_then(|s| s.name().cloned());
        state.map(|s| s.as_str().to_string()).unwrap_or_default()
    };
    assert_eq!(state().await, "shutting-down");
    refused("DependencyViolation", delete_group().await);
    refused("DependencyViolation", delete_subnet().await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state().await, "terminated");
    detach().await.unwrap();
    delete_group().await.unwrap();
    delete_subnet().await.unwrap();

    let stack = "helper-holds";
    let dir = write_manifest(stack, &small_helper_manifest(stack));
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let mut killed = tokio::process::Command::from(amiplan_command(&proxy.endpoint, &dir, &apply)).spawn().unwrap();
    let helper = wait_for_helper(&moto, stack).await;
    // Until the scratch volume is attached: everything the helper holds is there.
    let attached = |proxy: &Proxy| proxy.calls().iter().any(|c| c.operation == "AttachVolume");
    for _ in 0..600 {
        if attached(&proxy) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(attached(&proxy), "the helper's scratch volume was attached before the kill");
    killed.start_kill().unwrap();
    killed.wait().await.unwrap();
    let enforced_before = proxy.enforced(Rule::InstanceHolds);
    let destroy = ["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let destroyed = amiplan_async(&proxy.endpoint, &dir, &destroy).await;
    expect_code(&destroyed, 0);
    assert!(
        proxy.enforced(Rule::InstanceHolds) > enforced_before,
        "destroy met the helper shutting down: {}",
        stderr(&destroyed)
    );
    let terminated = moto.ec2(REGION).await.describe_instances().instance_ids(helper.instance_id().unwrap()).send();
    let terminated = terminated.await.unwrap();
    let state = terminated.reservations()[0].instances()[0].state().and_then(|s| s.name().cloned());
    assert_eq!(state.map(|s| s.as_str().to_string()).as_deref(), Some("terminated"));
    assert_eq!(leftovers(&moto, REGION, stack).await, Vec::<String>::new());
}
