//! The helper's generated job script, run on this machine: a file stands in for the target
//! volume, another for the console, and the image comes from a loopback HTTP server. Needs bash,
//! curl, xz, zstd, qemu-img and e2fsprogs, as the helper does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use amiplan::job::{self, JobResult};
use amiplan::manifest::raw::ImageFormat;
use amiplan::model::{BootstrapSpec, DiskLayout, Origin};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::support::*;

const DEVICE_BYTES: usize = 8 * 1024 * 1024;

/// Serves `body` for every request; with `truncate`, announces the whole length but sends only
/// half and hangs up, as a broken download would.
async fn serve(body: Vec<u8>, truncate: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                if request_head(&mut socket).await.is_none() {
                    return;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let sent = if truncate { &body[..body.len() / 2] } else { &body[..] };
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(sent).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{address}")
}

struct Run {
    result: Option<JobResult>,
    device: Vec<u8>,
    device_path: PathBuf,
    console: String,
}

/// Runs the job for `origin` against a zeroed stand-in device.
async fn run_job(dir: &Path, origin: &Origin) -> Run {
    run_job_with_path(dir, origin, None).await
}

/// The same, with `PATH` set to `path` (a helper that lacks some tools).
async fn run_job_with_path(dir: &Path, origin: &Origin, path: Option<&Path>) -> Run {
    let job = job::prepare("local", origin).unwrap();
    let script = dir.join("job.sh");
    std::fs::write(&script, job.script("vol-0123456789abcdef0")).unwrap();
    let device_path = dir.join("device");
    std::fs::write(&device_path, vec![0u8; DEVICE_BYTES]).unwrap();
    let console_path = dir.join("console");
    let _ = std::fs::remove_file(&console_path);
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .env("AMIPLAN_TARGET_DEVICE", &device_path)
        .env("AMIPLAN_CONSOLE", &console_path)
        .env("AMIPLAN_WORK", dir.join("work"))
        .env("AMIPLAN_NO_POWEROFF", "1")
        .env("PATH", path.map_or_else(|| std::env::var_os("PATH").unwrap_or_default(), |p| p.as_os_str().to_owned()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    let console = std::fs::read_to_string(&console_path).unwrap_or_default();
    let result = job::read_result(&console, &job.id);
    assert_eq!(status.success(), result == Some(JobResult::Succeeded), "exit status and report agree: {console}");
    Run { result, device: std::fs::read(&device_path).unwrap(), device_path, console }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn tool(dir: &Path, program: &str, args: &[&str]) {
    let status = std::process::Command::new(program).args(args).current_dir(dir).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

/// The image in every format the helper takes, as (format, file name, bytes to serve).
fn encodings(dir: &Path, raw: &[u8]) -> Vec<(ImageFormat, Vec<u8>)> {
    std::fs::write(dir.join("image.raw"), raw).unwrap();
    tool(dir, "xz", &["-kf", "-T1", "image.raw"]);
    tool(dir, "zstd", &["-qf", "image.raw", "-o", "image.raw.zst"]);
    tool(dir, "qemu-img", &["convert", "-f", "raw", "-O", "qcow2", "image.raw", "image.qcow2"]);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    vec![
        (ImageFormat::Raw, raw.to_vec()),
        (ImageFormat::RawXz, read("image.raw.xz")),
        (ImageFormat::RawZst, read("image.raw.zst")),
        (ImageFormat::Qcow2, read("image.qcow2")),
    ]
}

#[tokio::test]
async fn a_good_image_lands_byte_for_byte_in_every_format() {
    let dir = workdir("job-good");
    let raw = sample_image(&dir.join("sample"), 6, 5);
    for (format, served) in encodings(&dir, &raw) {
        let url = serve(served.clone(), false).await;
        let origin = Origin::Url { url: format!("{url}/image"), sha256: sha256(&served), format };
        let run = run_job(&dir, &origin).await;
        assert_eq!(run.result, Some(JobResult::Succeeded), "{format:?}: {}", run.console);
        assert_eq!(&run.device[..raw.len()], &raw[..], "{format:?}: the image is on the device");
        assert!(run.device[raw.len()..].iter().all(|b| *b == 0), "{format:?}: nothing past the image");
        assert!(run.console.contains("AMIPLAN-LOG"), "progress is reported too");
    }
}

/// A directory standing in for a helper's PATH: every program of this machine but `missing`
/// and the package managers, plus `manager` if given, a stand-in that records its arguments and
/// "installs" a package by linking the real tool of the same name.
fn helper_path(dir: &Path, missing: &str, manager: Option<&str>) -> PathBuf {
    let bin = dir.join(format!("bin-{}", manager.unwrap_or("none")));
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin).unwrap();
    for system in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        for entry in std::fs::read_dir(system).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if [missing, "dnf", "apt-get", "zypper"].contains(&name.as_str()) || bin.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
        }
    }
    if let Some(manager) = manager {
        let real = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(missing)).find(|p| p.exists()).unwrap();
        let script = format!(
            "#!/bin/bash\necho \"$*\" >> {log}\ncase \" $* \" in *\" install \"*) ln -sf {real} {bin}/{missing} ;; esac\n",
            log = dir.join("manager.log").display(),
            real = real.display(),
            bin = bin.display()
        );
        std::fs::write(bin.join(manager), script).unwrap();
        let mut permissions = std::fs::metadata(bin.join(manager)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(bin.join(manager), permissions).unwrap();
    }
    bin
}

/// A helper AMI without `zstd`: the job installs it with the helper's package manager (here an
/// apt-get stand-in), then writes the image; with no package manager it fails saying what is
/// missing, before writing anything.
#[tokio::test]
async fn a_missing_tool_is_installed_with_the_helpers_package_manager() {
    let dir = workdir("job-install");
    let raw = sample_image(&dir.join("sample"), 4, 8);
    let (format, zst) = encodings(&dir, &raw).into_iter().find(|(f, _)| *f == ImageFormat::RawZst).unwrap();
    let url = serve(zst.clone(), false).await;
    let origin = Origin::Url { url: format!("{url}/image.raw.zst"), sha256: sha256(&zst), format };

    let bare = helper_path(&dir, "zstd", None);
    let run = run_job_with_path(&dir, &origin, Some(&bare)).await;
    match &run.result {
        Some(JobResult::Failed(reason)) => assert!(reason.contains("no zstd and no package manager"), "{reason}"),
        other => panic!("expected a failure, got {other:?}: {}", run.console),
    }
    assert!(run.device.iter().all(|b| *b == 0), "nothing written");

    let with_apt = helper_path(&dir, "zstd", Some("apt-get"));
    let run = run_job_with_path(&dir, &origin, Some(&with_apt)).await;
    assert_eq!(run.result, Some(JobResult::Succeeded), "{}", run.console);
    assert_eq!(&run.device[..raw.len()], &raw[..]);
    let log = std::fs::read_to_string(dir.join("manager.log")).unwrap();
    assert!(log.contains("update -qq") && log.contains("install -y -qq zstd"), "{log}");
    assert!(run.console.contains("installing zstd with apt-get"), "{}", run.console);
}

#[tokio::test]
async fn a_wrong_digest_or_a_truncated_download_writes_nothing() {
    let dir = workdir("job-bad");
    let raw = sample_image(&dir.join("sample"), 4, 6);
    let (_, xz) = encodings(&dir, &raw).remove(1);

    let url = serve(xz.clone(), false).await;
    let wrong = Origin::Url { url: format!("{url}/image.raw.xz"), sha256: "0".repeat(64), format: ImageFormat::RawXz };
    let run = run_job(&dir, &wrong).await;
    match &run.result {
        Some(JobResult::Failed(reason)) => assert!(reason.contains("expected 0000"), "{reason}"),
        other => panic!("expected a failure, got {other:?}: {}", run.console),
    }
    assert!(run.device.iter().all(|b| *b == 0), "nothing written after a digest mismatch");

    let url = serve(xz.clone(), true).await;
    let truncated = Origin::Url { url: format!("{url}/image.raw.xz"), sha256: sha256(&xz), format: ImageFormat::RawXz };
    let run = run_job(&dir, &truncated).await;
    match &run.result {
        Some(JobResult::Failed(reason)) => assert!(reason.contains("download"), "{reason}"),
        other => panic!("expected a failure, got {other:?}: {}", run.console),
    }
    assert!(run.device.iter().all(|b| *b == 0), "nothing written after a truncated download");
}

/// A tiny root file system tarball and its provisioning script.
fn bootstrap(dir: &Path, script: &str) -> (Vec<u8>, BootstrapSpec) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=funtoo\n").unwrap();
    tool(dir, "tar", &["-czf", "stage3.tar.gz", "-C", "rootfs", "."]);
    std::fs::write(dir.join("provision.sh"), script).unwrap();
    std::fs::write(dir.join("resolv.conf"), "nameserver 169.254.169.253\n").unwrap();
    let tarball = std::fs::read(dir.join("stage3.tar.gz")).unwrap();
    let spec = BootstrapSpec {
        tarball: String::new(),
        sha256: sha256(&tarball),
        script: dir.join("provision.sh"),
        finalize: None,
        files: BTreeMap::from([("/etc/resolv.conf".to_string(), dir.join("resolv.conf"))]),
        label: "funtoo".into(),
        layout: DiskLayout::WholeDisk,
    };
    (tarball, spec)
}

/// Reads a file from the ext4 file system on `device` without mounting it.
fn read_from_ext4(device: &Path, path: &str) -> String {
    let output =
        std::process::Command::new("debugfs").args(["-R", &format!("cat {path}")]).arg(device).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_bootstrap_unpacks_provisions_and_writes_an_ext4_root() {
    let dir = workdir("job-bootstrap");
    let script = "#!/bin/sh\nset -eu\necho funtoo-ec2 > \"$AMIPLAN_ROOT/etc/hostname\"\n";
    let (tarball, mut spec) = bootstrap(&dir, script);
    spec.tarball = format!("{}/stage3.tar.gz", serve(tarball, false).await);
    let run = run_job(&dir, &Origin::Bootstrap(spec)).await;
    assert_eq!(run.result, Some(JobResult::Succeeded), "{}", run.console);
    assert_eq!(read_from_ext4(&run.device_path, "/etc/hostname"), "funtoo-ec2\n");
    assert_eq!(read_from_ext4(&run.device_path, "/etc/os-release"), "ID=funtoo\n");
    assert_eq!(read_from_ext4(&run.device_path, "/etc/resolv.conf"), "nameserver 169.254.169.253\n");
}

#[tokio::test]
async fn a_failing_provisioning_script_writes_nothing() {
    let dir = workdir("job-bootstrap-fails");
    let (tarball, mut spec) = bootstrap(&dir, "#!/bin/sh\necho 'no kernel config' >&2\nexit 3\n");
    spec.tarball = format!("{}/stage3.tar.gz", serve(tarball, false).await);
    let run = run_job(&dir, &Origin::Bootstrap(spec)).await;
    match &run.result {
        Some(JobResult::Failed(reason)) => {
            assert!(reason.contains("provisioning script failed (exit status 3)"), "{reason}")
        }
        other => panic!("expected a failure, got {other:?}: {}", run.console),
    }
    assert!(run.device.iter().all(|b| *b == 0), "nothing written when provisioning fails");
}
