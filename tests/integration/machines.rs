//! Real machines for the instances amiplan launches against moto. moto boots nothing, so the
//! runner boots a QEMU VM (software emulation, TCG) for each helper and test instance of a stack:
//!
//! - the helper boots the Debian 12 helper image of `scripts/vm-env` with the instance's real
//!   user-data in a NoCloud seed (cloud-init runs it), its target volume as an NVMe disk whose
//!   serial is the volume ID (so `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…` names it,
//!   through a udev rule in the image), and its console on the serial port;
//! - downloads reach a file server on 127.0.0.1 only through QEMU's user-mode network with
//!   `restrict=on` and one `guestfwd` (10.0.2.100:80); a helper that has no way out under the AWS
//!   rules gets no forward at all;
//! - the disk file a helper wrote stays as the content of the snapshot made from its volume; a
//!   snapshot uploaded with the EBS direct APIs is read back from moto block by block;
//! - a test instance boots that content through its own boot loader: SeaBIOS for `legacy-bios`,
//!   OVMF for `uefi`, both in turn for `uefi-preferred`.
//!
//! The console is served to amiplan through the proxy's GetConsoleOutput (live for `Latest`,
//! buffered at the stop otherwise). When the VM powers off, the runner stops the instance in moto;
//! a VM that outlives its timeout is killed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, Instance};

use crate::proxy::Proxy;
use crate::proxy::rules::{self, Rule};
use crate::support::{BLOCK, Moto, is_running, power_off, tag, workdir};

/// The address a VM downloads from: QEMU forwards it to the runner's file server.
pub const DOWNLOADS: &str = "http://10.0.2.100";

/// VMs take both cores: tests that boot them take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The images `scripts/vm-env` built (`scripts/test` exports their directory). Without them the
/// test fails with the reason: a machine test never passes by skipping.
pub fn images() -> PathBuf {
    let dir = std::env::var_os("AMIPLAN_VM_DIR").map(PathBuf::from).unwrap_or_else(|| {
        panic!("AMIPLAN_VM_DIR is not set: run the tests with scripts/test, or export AMIPLAN_VM_DIR=$(scripts/vm-env)")
    });
    for file in ["helper.img", "helper.vmlinuz", "helper.initrd", "rootfs.tar", "bootable.raw", "bootable.raw.xz"] {
        assert!(dir.join(file).is_file(), "{} has no {file}: run scripts/vm-env", dir.display());
    }
    for tool in ["qemu-system-x86_64", "qemu-img", "cloud-localds", "nc"] {
        let found = std::process::Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        assert!(found.is_ok_and(|o| o.status.success()), "{tool} is missing: run scripts/vm-env, which installs it");
    }
    dir
}

/// How a VM's firmware starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU loads the helper image's kernel itself.
    Kernel,
    Bios,
    Uefi,
}

/// What a VM's user-mode network reaches: nothing, or one server on the build machine.
#[derive(Debug, Clone, Copy)]
enum Network {
    None,
    /// `DOWNLOADS` (10.0.2.100:80) is the file server on this port, and so is 127.0.0.1:port in
    /// the VM (the forwarder below), so that URLs of the build machine's server work unchanged.
    Downloads(u16),
    /// 127.0.0.1:port in the VM is the AWS endpoint amiplan was given (the proxy on this port),
    /// so the URLs amiplan signs work there as on the build machine: QEMU forwards 10.0.2.100:80
    /// to the proxy, and a forwarder the NoCloud vendor-data starts in the VM listens on
    /// 127.0.0.1:port and passes each connection to 10.0.2.100:80.
    Endpoint(u16),
}

/// The forwarder behind [`Network::Endpoint`] and [`Network::Downloads`]: the test images have Python (cloud-init's), and
/// `systemd-run` keeps it out of cloud-init's own service. Without `--no-block` and default
/// dependencies off, the unit would wait for basic.target, which waits for cloud-init: a deadlock.
const ENDPOINT_VENDOR_DATA: &str = r#"#cloud-config
bootcmd:
  - |
    cat > /run/amiplan-endpoint.py <<'EOF'
    import socket, sys, threading
    def pipe(source, target):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(16)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("10.0.2.100", 80))
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
    EOF
    systemd-run --no-block --property DefaultDependencies=no --unit amiplan-endpoint python3 /run/amiplan-endpoint.py @@PORT@@
"#;

/// One VM that ran for an instance.
#[derive(Debug, Clone)]
pub struct Boot {
    pub instance: String,
    /// The instance's `amiplan:node` tag.
    pub node: String,
    pub firmware: Firmware,
    pub console: String,
    /// Powered off by itself (rather than killed at the timeout or once amiplan ended it).
    pub powered_off: bool,
    pub took: Duration,
}

pub struct Runner<'a> {
    moto: &'a Moto,
    proxy: &'a Proxy,
    /// Where instances are served: the build region first, then copy regions tested too.
    regions: Vec<&'a str>,
    images: PathBuf,
    work: PathBuf,
    /// The port of the file server on 127.0.0.1 that downloads are forwarded to.
    downloads_port: Option<u16>,
    timeout: Duration,
    /// What each volume holds: the disk file its helper wrote.
    volumes: std::sync::Mutex<HashMap<String, PathBuf>>,
    /// The VMs that ran, in order.
    boots: std::sync::Mutex<Vec<Boot>>,
    /// An instance is being served (its VM prepared, running or being recorded).
    serving: AtomicBool,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl<'a> Runner<'a> {
    /// Waits for this test's turn to boot VMs, then serves `region`'s instances.
    pub async fn new(moto: &'a Moto, proxy: &'a Proxy, region: &'a str, name: &str) -> Runner<'a> {
        let images = images();
        let turn = ONE_AT_A_TIME.lock().await;
        Runner {
            moto,
            proxy,
            regions: vec![region],
            images,
            work: workdir(&format!("vm-{name}")),
            downloads_port: None,
            timeout: Duration::from_secs(600),
            volumes: std::sync::Mutex::new(HashMap::new()),
            boots: std::sync::Mutex::new(Vec::new()),
            serving: AtomicBool::new(false),
            _turn: turn,
        }
    }

    /// Serves the instances of `region` too (test instances of copies, `test.regions: all`).
    pub fn also_in(mut self, region: &'a str) -> Self {
        self.regions.push(region);
        self
    }

    /// Forwards the VMs' downloads (`DOWNLOADS`) to `url`, a server on 127.0.0.1.
    pub fn downloads_from(mut self, url: &str) -> Self {
        self.downloads_port = Some(port_of(url));
        self
    }

    /// What the volume's disk file holds (after its helper ran).
    pub fn volume_file(&self, volume: &str) -> Option<PathBuf> {
        self.volumes.lock().unwrap().get(volume).cloned()
    }

    /// Runs `amiplan` (a command's future) while booting a VM for each of the first `count`
    /// instances of `stack` it launches, in turn; returns its output and what each VM printed.
    /// amiplan may end first: it reads the live console, so it can end an instance whose job it
    /// saw fail before the VM powers off. The VM being served then is seen to its end (it is
    /// killed once moto says the instance is ending, as EC2 would) so that its console is among
    /// the boots returned.
    pub async fn alongside(
        &self,
        stack: &str,
        count: usize,
        amiplan: impl std::future::Future<Output = std::process::Output>,
    ) -> (std::process::Output, Vec<Boot>) {
        self.boots.lock().unwrap().clear();
        let serve = self.serve(stack, count);
        tokio::pin!(serve);
        let output = tokio::select! {
            output = amiplan => output,
            () = &mut serve => unreachable!("serving never ends by itself"),
        };
        let ended = Instant::now();
        while self.serving.load(Ordering::SeqCst) {
            // An instance amiplan left running is its leak, which the test sees in moto; the VM
            // is not waited for past its timeout's worth.
            if ended.elapsed() > Duration::from_secs(120) {
                break;
            }
            tokio::select! {
                () = &mut serve => unreachable!("serving never ends by itself"),
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        (output, self.boots.lock().unwrap().clone())
    }

    async fn serve(&self, stack: &str, count: usize) {
        let mut clients = Vec::new();
        for region in &self.regions {
            clients.push(self.moto.ec2(region).await);
        }
        let mut served = std::collections::BTreeSet::new();
        let started = Instant::now();
        while served.len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(1800),
                "only {} of {count} instances appeared",
                served.len()
            );
            let mut instances: Vec<(&aws_sdk_ec2::Client, Instance)> = Vec::new();
            for ec2 in &clients {
                let by_stack = Filter::builder().name("tag:amiplan:stack").values(stack).build();
                let running = Filter::builder().name("instance-state-name").values("running").build();
                let out = ec2.describe_instances().filters(by_stack).filters(running).send().await.unwrap();
                instances.extend(out.reservations().iter().flat_map(|r| r.instances()).map(|i| (ec2, i.clone())));
            }
            for (ec2, instance) in instances {
                let id = instance.instance_id().unwrap().to_string();
                if served.contains(&id) {
                    continue;
                }
                let node = tag(instance.tags(), "amiplan:node").unwrap_or_default().to_string();
                self.serving.store(true, Ordering::SeqCst);
                let ran = if node.starts_with("helper/") {
                    match self.target_volume(ec2, &id).await {
                        Some(volume) => self.run_helper(ec2, &instance, &node, &volume).await,
                        None => {
                            // amiplan attaches it right before it waits for the job
                            self.serving.store(false, Ordering::SeqCst);
                            continue;
                        }
                    }
                } else if node.starts_with("test/") {
                    self.run_test(ec2, &instance, &node).await
                } else {
                    panic!("instance {id} of {stack} has no node amiplan would launch: {node}");
                };
                self.boots.lock().unwrap().extend(ran);
                self.serving.store(false, Ordering::SeqCst);
                served.insert(id);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        std::future::pending::<()>().await;
    }

    async fn target_volume(&self, ec2: &aws_sdk_ec2::Client, instance: &str) -> Option<aws_sdk_ec2::types::Volume> {
        let attached = Filter::builder().name("attachment.instance-id").values(instance).build();
        let volumes = ec2.describe_volumes().filters(attached).send().await.unwrap();
        volumes.volumes().iter().find(|v| v.attachments().iter().any(|a| a.device() == Some("/dev/sdf"))).cloned()
    }

    async fn run_helper(
        &self,
        ec2: &aws_sdk_ec2::Client,
        instance: &Instance,
        node: &str,
        volume: &aws_sdk_ec2::types::Volume,
    ) -> Vec<Boot> {
        let id = instance.instance_id().unwrap();
        let volume_id = volume.volume_id().unwrap();
        let target = self.work.join(format!("{volume_id}.raw"));
        let gib = u64::try_from(volume.size().unwrap()).unwrap();
        std::fs::File::create(&target).unwrap().set_len(gib << 30).unwrap();
        self.volumes.lock().unwrap().insert(volume_id.to_string(), target.clone());
        let root = self.work.join(format!("{id}-root.qcow2"));
        qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"], &self.images.join("helper.img"), &root);
        // Under the AWS rules a helper without a public address or a route out reaches nothing.
        let launch = self.proxy.launch_of(id).expect("amiplan launched the helper through the proxy");
        let cut_off = if self.proxy.rules().on(Rule::HelperNetwork) {
            rules::no_way_out(ec2, &launch, instance).await
        } else {
            None
        };
        let disks = vec![
            Disk { file: root, format: "qcow2", bus: Bus::Virtio },
            Disk { file: target, format: "raw", bus: Bus::Nvme { serial: volume_id.replace('-', ""), boot: false } },
        ];
        let network = match (cut_off, self.downloads_port) {
            (None, Some(port)) => Network::Downloads(port),
            _ => Network::None,
        };
        vec![self.boot(ec2, instance, node, Firmware::Kernel, disks, network, true).await]
    }

    async fn run_test(&self, ec2: &aws_sdk_ec2::Client, instance: &Instance, node: &str) -> Vec<Boot> {
        let image_id = instance.image_id().unwrap();
        // moto describes every AMI with a made-up root snapshot and boot mode: what amiplan
        // registered is in its request.
        let registered = self.registration(image_id);
        let snapshot = root_snapshot(&registered, image_id);
        // A copy's content is its source's, in the region the source was registered in.
        let content = self.snapshot_content(&registered.region, &snapshot).await;
        let firmwares = match registered.param("BootMode") {
            Some("uefi") => vec![Firmware::Uefi],
            Some("uefi-preferred") => vec![Firmware::Uefi, Firmware::Bios],
            _ => vec![Firmware::Bios],
        };
        // A test instance with a way out (one uploading its reports) reaches the AWS endpoint.
        let launch = self.proxy.launch_of(instance.instance_id().unwrap()).expect("amiplan launched the test");
        let cut_off = if self.proxy.rules().on(Rule::HelperNetwork) {
            rules::no_way_out(ec2, &launch, instance).await
        } else {
            None
        };
        let network = match cut_off {
            None => Network::Endpoint(port_of(&self.proxy.endpoint)),
            Some(_) => Network::None,
        };
        let mut boots = Vec::new();
        let count = firmwares.len();
        for (index, firmware) in firmwares.into_iter().enumerate() {
            let root = self.work.join(format!("{}-{firmware:?}.qcow2", instance.instance_id().unwrap()));
            let _ = std::fs::remove_file(&root);
            qemu_img(&["create", "-q", "-f", "qcow2", "-F", "raw", "-b"], &content, &root);
            let serial = format!("vol{}", &snapshot.trim_start_matches("snap-"));
            let disks = vec![Disk { file: root, format: "qcow2", bus: Bus::Nvme { serial, boot: true } }];
            // One instance, booted under each firmware in turn: it powers off (for amiplan) after
            // the last, or after the first that fails.
            let boot = self.boot(ec2, instance, node, firmware, disks, network, index + 1 == count).await;
            let failed = !passed(&boot.console);
            if failed && index + 1 < count {
                power_off(ec2, self.proxy, &boot.instance).await;
            }
            boots.push(boot);
            if failed {
                break; // one firmware that does not boot is the answer
            }
        }
        boots
    }

    /// amiplan's RegisterImage request behind `image`, following copies to their source.
    fn registration(&self, image: &str) -> crate::proxy::Call {
        let request = self.proxy.image_request(image).unwrap_or_else(|| panic!("amiplan made no {image}"));
        match request.param("SourceImageId") {
            Some(source) => self.registration(source),
            None => request,
        }
    }

    /// The bytes of `snapshot`: the disk file of the volume it was made from, or its blocks read
    /// back from moto's EBS direct APIs.
    async fn snapshot_content(&self, region: &str, snapshot: &str) -> PathBuf {
        let out = self.moto.ec2(region).await.describe_snapshots().snapshot_ids(snapshot).send().await.unwrap();
        let described = &out.snapshots()[0];
        if let Some(file) = described.volume_id().and_then(|v| self.volume_file(v)) {
            return file;
        }
        let file = self.work.join(format!("{snapshot}.raw"));
        if file.exists() {
            return file;
        }
        let gib = u64::try_from(described.volume_size().unwrap()).unwrap();
        let ebs = self.moto.ebs(region).await;
        let disk = std::fs::File::create(&file).unwrap();
        disk.set_len(gib << 30).unwrap();
        let mut next = None;
        loop {
            let page = ebs.list_snapshot_blocks().snapshot_id(snapshot).set_next_token(next).send().await.unwrap();
            for block in page.blocks() {
                let index = block.block_index().unwrap();
                let data = ebs
                    .get_snapshot_block()
                    .snapshot_id(snapshot)
                    .block_index(index)
                    .block_token(block.block_token().unwrap())
                    .send()
                    .await
                    .unwrap();
                let bytes = data.block_data.collect().await.unwrap().into_bytes();
                use std::os::unix::fs::FileExt;
                disk.write_all_at(&bytes, u64::try_from(index).unwrap() * BLOCK as u64).unwrap();
            }
            next = page.next_token().map(str::to_string);
            if next.is_none() {
                break;
            }
        }
        file
    }

    /// Boots one VM for `instance` and waits until it powers off (or kills it at the timeout),
    /// serving its console to amiplan as it goes; then, if it is the `last` boot of the instance,
    /// stops the instance in moto.
    #[allow(clippy::too_many_arguments)]
    async fn boot(
        &self,
        ec2: &aws_sdk_ec2::Client,
        instance: &Instance,
        node: &str,
        firmware: Firmware,
        disks: Vec<Disk>,
        network: Network,
        last: bool,
    ) -> Boot {
        let id = instance.instance_id().unwrap().to_string();
        let seed = self.seed(ec2, &id, network).await;
        let console_file = self.work.join(format!("{id}-{firmware:?}.console"));
        let mut args: Vec<String> = [
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-display",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-serial".into());
        args.push(format!("file:{}", console_file.display()));
        match firmware {
            Firmware::Kernel => {
                args.extend(["-kernel".into(), path(&self.images.join("helper.vmlinuz"))]);
                args.extend(["-initrd".into(), path(&self.images.join("helper.initrd"))]);
                args.extend(["-append".into(), "root=/dev/vda rw console=ttyS0,115200".into()]);
            }
            Firmware::Bios => {}
            Firmware::Uefi => {
                let vars = self.work.join(format!("{id}-vars.fd"));
                std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
                args.extend([
                    "-drive".into(),
                    "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                ]);
                args.extend(["-drive".into(), format!("if=pflash,format=raw,unit=1,file={}", vars.display())]);
            }
        }
        for (index, disk) in disks.iter().enumerate() {
            match &disk.bus {
                Bus::Virtio => args.extend([
                    "-drive".into(),
                    format!("file={},if=virtio,format={}", disk.file.display(), disk.format),
                ]),
                Bus::Nvme { serial, boot } => {
                    args.extend([
                        "-drive".into(),
                        format!("file={},if=none,id=d{index},format={}", disk.file.display(), disk.format),
                    ]);
                    let boot = if *boot { ",bootindex=0" } else { "" };
                    args.extend(["-device".into(), format!("nvme,drive=d{index},serial={serial}{boot}")]);
                }
            }
        }
        args.extend(["-drive".into(), format!("file={},if=virtio,format=raw,readonly=on", seed.display())]);
        let forward = match network {
            Network::None => String::new(),
            Network::Downloads(port) | Network::Endpoint(port) => {
                format!(",guestfwd=tcp:10.0.2.100:80-cmd:nc 127.0.0.1 {port}")
            }
        };
        args.extend(["-netdev".into(), format!("user,id=n0,restrict=on{forward}")]);
        args.extend(["-device".into(), "virtio-net-pci,netdev=n0,romfile=".into()]);
        // EC2's processors have RDRAND, so an instance's kernel has its random numbers at once;
        // QEMU's emulated default processor has none, and a guest under a busy host once waited
        // out the helper job's 20 minutes in getrandom. An entropy source stands in for RDRAND.
        args.extend(["-device".into(), "virtio-rng-pci".into()]);

        let started = Instant::now();
        let mut qemu = tokio::process::Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("qemu-system-x86_64 starts");
        let mut polls = 0u32;
        let powered_off = loop {
            let console = std::fs::read(&console_file).unwrap_or_default();
            self.proxy.set_console(&id, &String::from_utf8_lossy(&console));
            if let Some(status) = qemu.try_wait().unwrap() {
                if !status.success() {
                    let mut stderr = String::new();
                    use tokio::io::AsyncReadExt;
                    let _ = qemu.stderr.take().unwrap().read_to_string(&mut stderr).await;
                    panic!("QEMU failed for {id} ({status}): {stderr}");
                }
                break true;
            }
            if started.elapsed() > self.timeout || (polls % 4 == 3 && !is_running(ec2, &id).await) {
                let _ = qemu.kill().await;
                break false;
            }
            polls += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let console = String::from_utf8_lossy(&std::fs::read(&console_file).unwrap_or_default()).into_owned();
        self.proxy.set_console(&id, &console);
        if powered_off && last {
            power_off(ec2, self.proxy, &id).await;
        }
        Boot { instance: id, node: node.to_string(), firmware, console, powered_off, took: started.elapsed() }
    }

    /// A NoCloud seed (a CD labelled `cidata`) with the instance's user-data, as EC2's metadata
    /// service would hand it to cloud-init.
    async fn seed(&self, ec2: &aws_sdk_ec2::Client, instance: &str, network: Network) -> PathBuf {
        let user_data = crate::support::user_data(ec2, instance).await;
        let dir = self.work.join(format!("{instance}-seed"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("user-data"), user_data).unwrap();
        std::fs::write(dir.join("meta-data"), format!("instance-id: {instance}\nlocal-hostname: {instance}\n"))
            .unwrap();
        let mut vendor = Vec::new();
        if let Network::Endpoint(port) | Network::Downloads(port) = network {
            std::fs::write(dir.join("vendor-data"), ENDPOINT_VENDOR_DATA.replace("@@PORT@@", &port.to_string()))
                .unwrap();
            vendor.extend(["--vendor-data".into(), dir.join("vendor-data").into_os_string()]);
        }
        let seed = dir.join("seed.img");
        let made = tokio::process::Command::new("cloud-localds")
            .args(&vendor)
            .arg(&seed)
            .arg(dir.join("user-data"))
            .arg(dir.join("meta-data"))
            .output()
            .await
            .unwrap();
        assert!(made.status.success(), "cloud-localds: {}", String::from_utf8_lossy(&made.stderr));
        seed
    }
}

/// The port of a loopback URL (`http://127.0.0.1:PORT`).
fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/').rsplit(':').next().and_then(|p| p.parse().ok()).expect("a loopback URL with a port")
}

/// The snapshot of the root device in a RegisterImage request.
fn root_snapshot(request: &crate::proxy::Call, image: &str) -> String {
    let root = request.param("RootDeviceName").unwrap_or("/dev/xvda");
    (1..)
        .map_while(|n| Some((request.param(&format!("BlockDeviceMapping.{n}.DeviceName"))?, n)))
        .find(|(device, _)| *device == root)
        .and_then(|(_, n)| request.param(&format!("BlockDeviceMapping.{n}.Ebs.SnapshotId")))
        .unwrap_or_else(|| panic!("{image} was registered without a root snapshot"))
        .to_string()
}

/// Whether a console shows a job's `ok` result.
pub fn passed(console: &str) -> bool {
    console.lines().any(|l| l.contains("AMIPLAN-RESULT ") && l.trim_end_matches('\r').ends_with(" ok"))
}

struct Disk {
    file: PathBuf,
    format: &'static str,
    bus: Bus,
}

enum Bus {
    Virtio,
    Nvme { serial: String, boot: bool },
}

fn path(file: &Path) -> String {
    file.display().to_string()
}

fn qemu_img(args: &[&str], backing: &Path, file: &Path) {
    let out = std::process::Command::new("qemu-img").args(args).arg(backing).arg(file).output().unwrap();
    assert!(out.status.success(), "qemu-img: {}", String::from_utf8_lossy(&out.stderr));
}
