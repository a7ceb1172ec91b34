//! Test support: a real moto server per test on a free loopback port, the amiplan binary run
//! against it, and SDK clients for checking results. Nothing here mocks an AWS response.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::types::Filter;

use crate::proxy::Proxy;

pub const BLOCK: usize = 512 * 1024;

/// A moto server that lives as long as this value, behind a proxy that enforces AWS's rules
/// (`rules.rs`, every rule on): `endpoint` is what amiplan talks to, `raw` is moto itself, for a
/// test's own proxy and for the test's checks.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub raw: String,
    rules_proxy: Option<RulesProxy>,
}

/// The proxy of AWS rules in front of a moto, on a thread of its own so that synchronous tests
/// get it too.
struct RulesProxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RulesProxy {
    fn start(upstream: &str) -> (RulesProxy, String) {
        let upstream = upstream.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, endpoint) = std::sync::mpsc::channel();
        // Named as the test, for the call record.
        let name = std::thread::current().name().unwrap_or("unnamed").to_string();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            runtime.block_on(async move {
                let proxy = crate::proxy::Proxy::start(&upstream, crate::proxy::Faults::default(), 7).await;
                ready.send(proxy.endpoint.clone()).unwrap();
                let _ = stopped.await;
            });
        });
        let thread = thread.expect("the rules proxy's thread starts");
        let endpoint = endpoint.recv().expect("the rules proxy starts");
        (RulesProxy { stop: Some(stop), thread: Some(thread) }, endpoint)
    }
}

impl Drop for RulesProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Moto {
    pub fn start() -> Moto {
        let server = moto_server();
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", server.display()));
            let raw = format!("http://127.0.0.1:{port}");
            let mut moto = Moto { child, endpoint: raw.clone(), raw, rules_proxy: None };
            if moto.wait_ready(port) {
                let (proxy, endpoint) = RulesProxy::start(&moto.raw);
                moto.rules_proxy = Some(proxy);
                moto.endpoint = endpoint;
                return moto;
            }
            let _ = moto.child.kill();
        }
        panic!("moto did not start");
    }

    // Runs once at test setup, before the test awaits anything: blocking here stalls no task.
    #[allow(clippy::disallowed_methods)]
    fn wait_ready(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: most likely the port was taken meanwhile
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Runs the amiplan binary against this server with throwaway credentials.
    pub fn amiplan(&self, dir: &Path, args: &[&str]) -> Output {
        amiplan_at(&self.endpoint, dir, args)
    }

    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config(region).await)
    }

    pub async fn ebs(&self, region: &str) -> aws_sdk_ebs::Client {
        aws_sdk_ebs::Client::new(&self.config(region).await)
    }

    /// Gives `region`'s default VPC what AWS gives every default VPC and moto leaves out: an
    /// attached internet gateway and a 0.0.0.0/0 route to it in the main route table (VPC user
    /// guide, Default VPCs: "Default VPC components").
    pub async fn complete_default_vpc(&self, region: &str) {
        use aws_sdk_ec2::types::Filter;
        let ec2 = self.ec2(region).await;
        let default = Filter::builder().name("is-default").values("true").build();
        let vpcs = ec2.describe_vpcs().filters(default).send().await.unwrap();
        let vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_string();
        let gateway = ec2.create_internet_gateway().send().await.unwrap();
        let gateway = gateway.internet_gateway().unwrap().internet_gateway_id().unwrap().to_string();
        ec2.attach_internet_gateway().internet_gateway_id(&gateway).vpc_id(&vpc).send().await.unwrap();
        let main = Filter::builder().name("association.main").values("true").build();
        let in_vpc = Filter::builder().name("vpc-id").values(&vpc).build();
        let tables = ec2.describe_route_tables().filters(main).filters(in_vpc).send().await.unwrap();
        let table = tables.route_tables()[0].route_table_id().unwrap().to_string();
        let route = ec2.create_route().route_table_id(&table).destination_cidr_block("0.0.0.0/0");
        route.gateway_id(&gateway).send().await.unwrap();
    }

    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.config(region).await).force_path_style(true);
        aws_sdk_s3::Client::from_conf(config.build())
    }

    pub async fn config(&self, region: &str) -> aws_config::SdkConfig {
        config_at(&self.raw, region).await
    }

    /// AMIs owned by the account and tagged with `stack`.
    pub async fn stack_images(&self, region: &str, stack: &str) -> Vec<aws_sdk_ec2::types::Image> {
        let filter = Filter::builder().name("tag:amiplan:stack").values(stack).build();
        let out = self.ec2(region).await.describe_images().owners("self").filters(filter).send().await.unwrap();
        out.images().to_vec()
    }

    /// Snapshots owned by the account and tagged with `stack`.
    pub async fn stack_snapshots(&self, region: &str, stack: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
        let filter = Filter::builder().name("tag:amiplan:stack").values(stack).build();
        let out = self.ec2(region).await.describe_snapshots().owner_ids("self").filters(filter).send().await.unwrap();
        out.snapshots().to_vec()
    }

    /// AMIs owned by the account with this exact name.
    pub async fn images_named(&self, region: &str, name: &str) -> Vec<aws_sdk_ec2::types::Image> {
        let filter = Filter::builder().name("name").values(name).build();
        let out = self.ec2(region).await.describe_images().owners("self").filters(filter).send().await.unwrap();
        out.images().to_vec()
    }
}

/// Runs the amiplan binary in `dir` with `endpoint` as the AWS endpoint and throwaway credentials.
pub fn amiplan_at(endpoint: &str, dir: &Path, args: &[&str]) -> Output {
    amiplan_command(endpoint, dir, args).output().expect("amiplan runs")
}

/// An SDK configuration for `endpoint` (moto, or a proxy in front of it) with test credentials.
pub async fn config_at(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let credentials = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "tests");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

/// The amiplan command, not yet started: throwaway credentials, no profile, no metadata service.
pub fn amiplan_command(endpoint: &str, dir: &Path, args: &[&str]) -> Command {
    // Named in its requests' user agent, so that the call record knows which run made a call.
    let run = crate::call_record::register_run(endpoint, dir, args);
    let mut command = Command::new(env!("CARGO_BIN_EXE_amiplan"));
    command
        .args(args)
        .env("AWS_SDK_UA_APP_ID", run)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("RUST_LOG")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // The proxies' `stalled-connection` rule holds a request forever; a short attempt
        // timeout keeps that to seconds. Not shorter: a scan of every region queues ~90
        // requests at the one-threaded moto, and on a loaded machine some wait several seconds.
        .env("AMIPLAN_ATTEMPT_TIMEOUT", "10s")
        .env("NO_COLOR", "1")
        // Each test remembers its source images in its own directory, not the user's cache.
        .env("AMIPLAN_CACHE_DIR", dir.join(".amiplan-cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// amiplan with `args` under a pseudo terminal (util-linux `script`), in the environment
/// [`amiplan_command`] gives it.
pub fn amiplan_on_pty(endpoint: &str, dir: &Path, args: &[&str]) -> Command {
    let plain = amiplan_command(endpoint, dir, args);
    let mut on_pty = Command::new("script");
    on_pty.current_dir(dir);
    for (key, value) in plain.get_envs() {
        match value {
            Some(value) => on_pty.env(key, value),
            None => on_pty.env_remove(key),
        };
    }
    let command = format!("{} {}", env!("CARGO_BIN_EXE_amiplan"), args.join(" "));
    on_pty.args(["-qefc", &command, "/dev/null"]);
    on_pty
}

/// Runs amiplan without blocking the runtime (for tests that serve a proxy on it meanwhile).
pub async fn amiplan_async(endpoint: &str, dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::from(amiplan_command(endpoint, dir, args)).output().await.expect("amiplan runs")
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.rules_proxy.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The pinned AWS CLI (`scripts/aws-cli-env`), for reading what amiplan wrote as users do.
fn aws_cli() -> PathBuf {
    installed("AMIPLAN_AWS_CLI", "scripts/aws-cli-env")
}

impl Moto {
    /// Runs `aws <args> --output json` against this server in `region`; its JSON answer, or
    /// `Err(stderr)`.
    pub fn aws(&self, region: &str, args: &[&str]) -> Result<serde_json::Value, String> {
        let output = Command::new(aws_cli())
            .args(args)
            .args(["--output", "json", "--region", region, "--endpoint-url", &self.endpoint])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .output()
            .expect("the AWS CLI runs");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null))
    }
}

fn moto_server() -> PathBuf {
    installed("AMIPLAN_MOTO_SERVER", "scripts/moto-env")
}

/// A pinned tool: where `variable` says (scripts/test sets it), or where `script` installs it.
/// Canonical's simplestreams reader, `sstream-query`, run over a tree: the items it finds.
pub fn sstream_query(index: &Path, filters: &[&str]) -> Vec<serde_json::Value> {
    let reader = installed("AMIPLAN_SSTREAM_QUERY", "scripts/simplestreams-env");
    let output = Command::new(reader).arg("--json").arg(index).args(filters).output().unwrap();
    assert!(output.status.success(), "sstream-query: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("sstream-query printed no JSON list: {e}"))
}

fn installed(variable: &str, script: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join(script)).output().unwrap_or_else(|e| panic!("{script} runs: {e}"));
    assert!(output.status.success(), "{script} failed: {}", String::from_utf8_lossy(&output.stderr));
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A fresh directory under target/ for one test.
pub fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A raw image of `blocks` 512 KiB blocks (every third one random, the rest zeros) plus a short
/// tail, so uploads exercise zero-block skipping and tail padding.
pub fn sample_image(path: &Path, blocks: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut data = Vec::with_capacity(blocks * BLOCK + 1000);
    for i in 0..blocks {
        if i % 3 == 0 {
            data.extend((0..BLOCK).map(|_| rng.u8(..)));
        } else {
            data.extend(std::iter::repeat_n(0u8, BLOCK));
        }
    }
    data.extend((0..1000).map(|_| rng.u8(1..)));
    std::fs::write(path, &data).unwrap();
    data
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, printing both streams when it differs.
#[track_caller]
pub fn expect_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

pub fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// The regions of the default direct-upload stack.
pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// A direct-upload manifest built from data: a test varies a field, never the text of another
/// test's manifest.
#[derive(Debug, Clone)]
pub struct StackManifest {
    pub stack: String,
    /// The AMI name template.
    pub name: String,
    pub description: String,
    pub architecture: &'static str,
    pub boot_mode: &'static str,
    pub tags: Vec<(&'static str, String)>,
    /// Other `image:` fields, as YAML lines without indentation (`tpm: true`).
    pub image_extra: Vec<String>,
    pub volume_types: Vec<&'static str>,
    /// Whether the variants include encrypted ones (`encrypted: [false, true]`).
    pub encrypted: bool,
    pub regions: Vec<&'static str>,
}

impl StackManifest {
    /// The default stack: two volume types in three regions, from `disk.raw`.
    pub fn direct(stack: &str) -> StackManifest {
        StackManifest {
            stack: stack.to_string(),
            name: format!("{stack}-{{arch}}-{{volume_type}}"),
            description: "Integration test image".into(),
            architecture: "x86_64",
            boot_mode: "uefi-preferred",
            tags: vec![("distro", "test".into())],
            image_extra: vec!["imds: v2.0".into()],
            volume_types: vec!["gp3", "standard"],
            encrypted: false,
            regions: REGIONS.to_vec(),
        }
    }

    /// The smallest stack with every kind of node: one variant in two regions.
    pub fn small(stack: &str) -> StackManifest {
        StackManifest { volume_types: vec!["gp3"], regions: vec!["us-east-1", "eu-west-1"], ..Self::direct(stack) }
    }

    /// Plain and encrypted variants of each volume type, named by both.
    pub fn with_encryption(mut self) -> StackManifest {
        self.encrypted = true;
        self.name = format!("{}-{{encryption}}", self.name);
        self
    }

    pub fn yaml(&self) -> String {
        let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let mut image = vec![
            format!("name: \"{}\"", self.name),
            format!("description: {}", self.description),
            format!("architecture: {}", self.architecture),
            format!("boot_mode: {}", self.boot_mode),
        ];
        image.extend(self.image_extra.iter().cloned());
        image.push(format!("tags: {{ {} }}", tags.join(", ")));
        let image: String = image.iter().map(|line| format!("  {line}\n")).collect();
        let encrypted = if self.encrypted { "  encrypted: [false, true]\n" } else { "" };
        format!(
            "stack: {}\nsource: {{ file: disk.raw }}\nbuild: {{ region: us-east-1 }}\nimage:\n{image}variants:\n  volume_type: [{}]\n{encrypted}regions: [{}]\n",
            self.stack,
            self.volume_types.join(", "),
            self.regions.join(", ")
        )
    }

    /// Writes the manifest as `stack.yaml` in `dir`.
    pub fn write(&self, dir: &Path) {
        std::fs::write(dir.join("stack.yaml"), self.yaml()).unwrap();
    }
}

/// Asserts that `stack` owns no AMI and no snapshot in any of `regions`.
pub async fn assert_stack_gone(moto: &Moto, stack: &str, regions: &[&str]) {
    for region in regions {
        assert!(moto.stack_images(region, stack).await.is_empty(), "{stack}: AMIs left in {region}");
        assert!(moto.stack_snapshots(region, stack).await.is_empty(), "{stack}: snapshots left in {region}");
    }
}

/// Runs `amiplan args` through `proxy` and kills it (SIGKILL) once its `k`-th mutating call has
/// reached moto, before the answer; returns that call's operation.
pub async fn kill_after_mutating_call(proxy: &Proxy, dir: &Path, args: &[&str], k: usize) -> String {
    proxy.clear_calls();
    let killed = proxy.kill_after(k);
    let mut child = tokio::process::Command::from(amiplan_command(&proxy.endpoint, dir, args)).spawn().unwrap();
    tokio::select! {
        _ = killed => {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
        status = child.wait() => panic!("k={k}: {args:?} ended ({status:?}) before its mutating call {k}"),
    }
    proxy.mutating_calls()[k - 1].clone()
}

/// The points of a crash matrix: every mutating call from 1 to `total`, or every
/// `AMIPLAN_CRASH_STRIDE`-th for a quicker local run.
pub fn crash_points(total: usize) -> impl Iterator<Item = usize> {
    let stride = std::env::var("AMIPLAN_CRASH_STRIDE").ok().and_then(|s| s.parse().ok()).unwrap_or(1usize).max(1);
    (1..=total).step_by(stride)
}

/// Asserts that the run after a crash at mutating call `k` (`killed_at`) succeeded.
pub fn expect_recovered(recovered: &Output, k: usize, killed_at: &str) {
    assert_eq!(recovered.status.code(), Some(0), "k={k} ({killed_at}): {}\n{}", stdout(recovered), stderr(recovered));
}

/// `instance` powered itself off: it stops in moto (or terminates, when it was launched to
/// terminate on shutdown, as a one-time spot instance is), and EC2 buffers its console. amiplan reads
/// the live console, so it may have terminated the instance already; then it is left alone, since
/// moto (unlike EC2, which refuses to stop a terminated instance) would bring it back as `stopped`
/// and leave amiplan waiting for a termination that never comes. The proxy holds amiplan's
/// terminations back while this decides and stops, so none can land in between.
pub async fn power_off(ec2: &aws_sdk_ec2::Client, proxy: &Proxy, instance: &str) {
    let terminations = proxy.hold_terminations().await;
    if !proxy.terminated(instance) && is_running(ec2, instance).await {
        if shutdown_behavior(ec2, instance).await.as_deref() == Some("terminate") {
            ec2.terminate_instances().instance_ids(instance).send().await.unwrap();
        } else {
            ec2.stop_instances().instance_ids(instance).send().await.unwrap();
        }
    }
    drop(terminations);
    proxy.power_off(instance);
}

/// Every resource tagged with the stack other than AMIs and snapshots, plus its helpers that
/// have not terminated: what a finished build must not leave. (Not DescribeTags: moto keeps the
/// tags of deleted resources there.)
pub async fn leftovers(moto: &Moto, region: &str, stack: &str) -> Vec<String> {
    let ec2 = moto.ec2(region).await;
    let by_stack = || Filter::builder().name("tag:amiplan:stack").values(stack).build();
    let mut found = Vec::new();
    let out = ec2.describe_vpcs().filters(by_stack()).send().await.unwrap();
    found.extend(out.vpcs().iter().map(|v| format!("Vpc {}", v.vpc_id().unwrap())));
    let out = ec2.describe_subnets().filters(by_stack()).send().await.unwrap();
    found.extend(out.subnets().iter().map(|v| format!("Subnet {}", v.subnet_id().unwrap())));
    let out = ec2.describe_internet_gateways().filters(by_stack()).send().await.unwrap();
    found.extend(
        out.internet_gateways().iter().map(|v| format!("InternetGateway {}", v.internet_gateway_id().unwrap())),
    );
    let out = ec2.describe_route_tables().filters(by_stack()).send().await.unwrap();
    found.extend(out.route_tables().iter().map(|v| format!("RouteTable {}", v.route_table_id().unwrap())));
    let out = ec2.describe_security_groups().filters(by_stack()).send().await.unwrap();
    found.extend(out.security_groups().iter().map(|v| format!("SecurityGroup {}", v.group_id().unwrap())));
    let out = ec2.describe_volumes().filters(by_stack()).send().await.unwrap();
    found.extend(out.volumes().iter().map(|v| format!("Volume {}", v.volume_id().unwrap())));
    let instances = ec2.describe_instances().filters(by_stack()).send().await.unwrap();
    for instance in instances.reservations().iter().flat_map(|r| r.instances()) {
        let state = instance.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
        if state != "terminated" {
            found.push(format!("instance {} ({state})", instance.instance_id().unwrap_or_default()));
        }
    }
    found.sort();
    found
}

/// What `instance` does when its system powers off: `stop` or `terminate`.
pub async fn shutdown_behavior(ec2: &aws_sdk_ec2::Client, instance: &str) -> Option<String> {
    let out = ec2
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .unwrap();
    out.instance_initiated_shutdown_behavior().and_then(|v| v.value()).map(str::to_string)
}

/// Whether `instance` is pending or running in moto (not stopped or ended by amiplan).
pub async fn is_running(ec2: &aws_sdk_ec2::Client, instance: &str) -> bool {
    use aws_sdk_ec2::types::InstanceStateName;
    let out = ec2.describe_instances().instance_ids(instance).send().await.unwrap();
    let state = out.reservations().iter().flat_map(|r| r.instances()).find_map(|i| i.state()?.name().cloned());
    matches!(state, Some(InstanceStateName::Running | InstanceStateName::Pending))
}

/// The user-data amiplan launched `instance` with (the job script).
pub async fn user_data(ec2: &aws_sdk_ec2::Client, instance: &str) -> String {
    use base64::Engine as _;
    let out = ec2
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = out.user_data().and_then(|v| v.value()).unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
}

/// Reads an HTTP request up to the end of its head; `None` when the client went away first.
pub async fn request_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    Some(request)
}

/// Files over HTTP on 127.0.0.1: texts changed by the test while it runs (an upstream's index
/// and checksum files) and files from disk (images and tarballs the VMs download). Keeps the
/// path of every request it answered.
pub struct Files {
    pub url: String,
    files: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Body>>>,
    requested: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
enum Body {
    Text(String),
    File(PathBuf),
}

impl Files {
    pub async fn start() -> Files {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, Body>::new()));
        let requested = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (served, counted) = (files.clone(), requested.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (files, requests) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let Some(request) = request_head(&mut socket).await else { return };
                    let head = String::from_utf8_lossy(&request).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    requests.lock().unwrap().push(path.clone());
                    let body = files.lock().unwrap().get(&path).cloned();
                    let answer = |status: &str, length: u64| {
                        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
                    };
                    match body {
                        Some(Body::Text(text)) => {
                            let head = answer("200 OK", text.len() as u64);
                            let _ = socket.write_all(format!("{head}{text}").as_bytes()).await;
                        }
                        Some(Body::File(file)) => {
                            let mut file = tokio::fs::File::open(file).await.unwrap();
                            let length = file.metadata().await.unwrap().len();
                            if socket.write_all(answer("200 OK", length).as_bytes()).await.is_ok() {
                                let _ = tokio::io::copy(&mut file, &mut socket).await;
                            }
                        }
                        None => {
                            let _ = socket.write_all(answer("404 Not Found", 0).as_bytes()).await;
                        }
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        Files { url, files, requested }
    }

    pub fn set(&self, path: &str, body: &str) {
        self.files.lock().unwrap().insert(path.to_string(), Body::Text(body.to_string()));
    }

    /// Serves the file at `file` as `path`.
    #[allow(dead_code)]
    pub fn set_file(&self, path: &str, file: &Path) {
        self.files.lock().unwrap().insert(path.to_string(), Body::File(file.to_path_buf()));
    }

    pub fn requests(&self) -> usize {
        self.requested.lock().unwrap().len()
    }

    /// The paths asked for, in order.
    #[allow(dead_code)]
    pub fn requested(&self) -> Vec<String> {
        self.requested.lock().unwrap().clone()
    }
}

/// Parses a JSON plan (`plan --json`, `show --json`) and checks it against the checked-in
/// schema/plan.schema.json, as a consumer of the documented format would.
pub fn plan_document(text: &str) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schema/plan.schema.json")).unwrap()).unwrap();
    let document: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let validator = jsonschema::validator_for(&schema).expect("the plan schema is a valid schema");
    let problems: Vec<String> =
        validator.iter_errors(&document).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(problems.is_empty(), "the plan does not match schema/plan.schema.json: {problems:#?}\n{text}");
    document
}
