//! The helper instance's job: a bash script amiplan generates and passes as user-data. It checks
//! every digest before it writes a byte, writes the image (or a bootstrapped system) to the target
//! volume, and reports `ok` or why it failed on the console, where amiplan reads it back.
//!
//! The script honours a few environment variables so that tests can run it on a workstation:
//! `AMIPLAN_TARGET_DEVICE` (a file standing in for the volume), `AMIPLAN_CONSOLE` (a file standing
//! in for the console), `AMIPLAN_WORK` (scratch directory) and `AMIPLAN_NO_POWEROFF`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::manifest::raw::Architecture;
use crate::manifest::raw::ImageFormat;
use crate::model::{BootstrapSpec, DiskLayout, Origin};

mod reports;

pub use reports::{MAX_REPORTS_BYTES, ReportsError, TestReports, read_reports, uploaded_reports};
use reports::{SEND_REPORTS, UPLOAD_REPORTS};

/// Marker of the line that carries the result on the console.
pub const RESULT_MARKER: &str = "AMIPLAN-RESULT";
/// EC2 refuses user-data above 16 KiB.
pub const MAX_USER_DATA: usize = 16 * 1024;
const VOLUME_SLOT: &str = "@@AMIPLAN_VOLUME@@";
const REPORTS_URL_SLOT: &str = "@@AMIPLAN_REPORTS_URL@@";
/// Room kept in the user-data for a presigned URL (with a session token it takes about 1.5 KiB).
const MAX_REPORTS_URL: usize = 4096;

/// A generated job, still waiting for the ID of the volume it will write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Short digest of the script: names the job on the console and in the helper's spec.
    pub id: String,
    template: String,
}

impl Job {
    /// Stands for a helper's or a test's job where a command needs none of it (destroy,
    /// output, …): its scripts are not read, and it is never run.
    pub fn not_read() -> Job {
        Job { id: "not-read".into(), template: String::new() }
    }

    /// The user-data for a helper writing to `volume_id`.
    pub fn script(&self, volume_id: &str) -> String {
        self.template.replace(VOLUME_SLOT, volume_id)
    }

    /// The user-data for a boot test whose reports go to `url` (a presigned PUT); the URL is no
    /// part of the job's identity, since a new one is signed for every launch.
    pub fn test_script(&self, reports_url: Option<&str>) -> String {
        self.script("").replace(REPORTS_URL_SLOT, reports_url.unwrap_or_default())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the helper's job script would be {size} bytes, over EC2's {MAX_USER_DATA}-byte user-data limit; make the bootstrap script and files smaller"
    )]
    TooLarge { size: usize },
    #[error("a helper job needs a URL or bootstrap source")]
    NotHelperSource,
}

/// What the helper reported, read from its console output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Succeeded,
    Failed(String),
}

/// The last result line of job `job_id` in `console`, if there is one yet.
pub fn read_result(console: &str, job_id: &str) -> Option<JobResult> {
    let prefix = format!("{RESULT_MARKER} {job_id} ");
    let line = console.lines().rev().find_map(|line| line.find(&prefix).map(|at| &line[at + prefix.len()..]))?;
    let line = line.trim_end_matches('\r').trim();
    Some(match line.strip_prefix("failed:") {
        Some(reason) => JobResult::Failed(reason.trim().to_string()),
        None if line == "ok" => JobResult::Succeeded,
        None => JobResult::Failed(format!("unreadable result `{line}`")),
    })
}

/// The console up to job `job_id`'s last result line: what led to the result, without the
/// shutdown that follows it.
pub fn up_to_result<'a>(console: &'a str, job_id: &str) -> &'a str {
    let marker = format!("{RESULT_MARKER} {job_id} ");
    match console.rfind(&marker) {
        Some(at) => console[at..].find('\n').map_or(console, |end| &console[..at + end + 1]),
        None => console,
    }
}

/// The last `lines` lines of a console log, for error reports.
pub fn log_tail(console: &str, lines: usize) -> String {
    let all: Vec<&str> = console.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Generates the job for a URL or bootstrap source, reading the local scripts and files it embeds.
pub fn prepare(stack: &str, origin: &Origin) -> Result<Job, JobError> {
    let mut body = String::new();
    match origin {
        Origin::Url { url, sha256, format } => write_image(&mut body, url, sha256, *format),
        Origin::Bootstrap(bootstrap) => write_bootstrap(&mut body, bootstrap)?,
        Origin::File { .. } => return Err(JobError::NotHelperSource),
    }
    let id = hex::encode(&Sha256::digest(format!("{stack}\0{body}").as_bytes())[..6]);
    let template = format!("{}{PRELUDE}{DEVICE_PRELUDE}{body}", header("helper job", stack, &id));
    if template.len() > MAX_USER_DATA {
        return Err(JobError::TooLarge { size: template.len() });
    }
    Ok(Job { id, template })
}

/// The boot test of a new AMI: the user's script, embedded with its digest, run on an instance
/// launched from the AMI; its exit status is the result. With `reports`, the files the script
/// left in that directory are sent on the console before the result (see [`read_reports`]).
pub fn prepare_test(stack: &str, script: &Path, reports: Option<&TestReports>) -> Result<Job, JobError> {
    let mut body = String::from("rm -rf \"$WORK\"\nmkdir -p \"$WORK\"\n");
    embed(&mut body, script, "$WORK/test")?;
    body.push_str(
        r#"STEP="run the test script"
say "testing"
chmod +x "$WORK/test"
status=0
"$WORK/test" || status=$?
"#,
    );
    match reports {
        None => {}
        Some(TestReports { directory, through_bucket: false }) => {
            let _ = write!(body, "{}", SEND_REPORTS.replace("@@REPORTS@@", directory));
        }
        Some(TestReports { directory, through_bucket: true }) => {
            let send = UPLOAD_REPORTS.replace("@@REPORTS@@", directory).replace("@@REPORTS_URL@@", REPORTS_URL_SLOT);
            let _ = write!(body, "{send}");
        }
    }
    body.push_str(
        r#"[ "$status" -eq 0 ] || fail "the test script failed (exit status $status)"
say "test passed"
"#,
    );
    let id = hex::encode(&Sha256::digest(format!("{stack}\0test\0{body}").as_bytes())[..6]);
    let template = format!("{}{PRELUDE}{body}", header("boot test", stack, &id));
    let room = if template.contains(REPORTS_URL_SLOT) { MAX_REPORTS_URL } else { 0 };
    if template.len() + room > MAX_USER_DATA {
        return Err(JobError::TooLarge { size: template.len() });
    }
    Ok(Job { id, template })
}

/// `what`: what the job is, for whoever reads the user-data (`helper job`, `boot test`).
fn header(what: &str, stack: &str, id: &str) -> String {
    format!(
        "#!/bin/bash\n# amiplan {what} {id} for stack {stack}: generated by amiplan, do not edit.\nset -euo pipefail\nJOB={id}\nVOLUME={VOLUME_SLOT}\n"
    )
}

/// Reporting, failure handling and finding the target device: the same for every job.
const PRELUDE: &str = r#"umask 022
CONSOLE="${AMIPLAN_CONSOLE:-/dev/console}"
WORK="${AMIPLAN_WORK:-/var/tmp/amiplan-$JOB}"
STEP="start"
REASON=""
say() { printf 'AMIPLAN-LOG %s %s\n' "$JOB" "$*" >>"$CONSOLE" 2>/dev/null || true; echo "$*" >&2; }
fail() { REASON="$*"; exit 1; }
MOUNTED=""
unmount_all() {
  if [ -n "$MOUNTED" ]; then umount -R "$MOUNTED" 2>/dev/null || umount -lR "$MOUNTED" 2>/dev/null || true; fi
  MOUNTED=""
}
finish() {
  status=$?
  trap - EXIT
  unmount_all
  if [ "$status" -eq 0 ]; then
    printf 'AMIPLAN-RESULT %s ok\n' "$JOB" >>"$CONSOLE"
  else
    printf 'AMIPLAN-RESULT %s failed: %s\n' "$JOB" "${REASON:-$STEP failed with exit status $status}" >>"$CONSOLE"
  fi
  sync
  if [ -z "${AMIPLAN_NO_POWEROFF:-}" ]; then poweroff || shutdown -h now; fi
}
trap finish EXIT
# The helper AMI may lack a tool the job needs (qemu-img, zstd): install it with the helper's own
# package manager, whichever of dnf, apt-get and zypper it has.
package_of() {
  case "$1:$2" in
    sha256sum:*|dd:*|base64:*|stat:*|cut:*) echo coreutils ;;
    mkfs.ext4:*) echo e2fsprogs ;;
    mkfs.vfat:*) echo dosfstools ;;
    sfdisk:apt-get) echo fdisk ;;
    sfdisk:*|blkid:*) echo util-linux ;;
    grub-install:apt-get) echo grub-pc-bin grub-efi-amd64-bin grub2-common ;;
    grub-install:dnf) echo grub2-tools grub2-pc-modules grub2-efi-x64-modules ;;
    grub-install:zypper) echo grub2 grub2-i386-pc grub2-x86_64-efi ;;
    blockdev:*) echo util-linux ;;
    xz:apt-get) echo xz-utils ;;
    qemu-img:apt-get) echo qemu-utils ;;
    qemu-img:zypper) echo qemu-tools ;;
    *) echo "$1" ;;
  esac
}
# Fedora's family names GRUB's installer grub2-install.
have() { command -v "$1" >/dev/null 2>&1 || { [ "$1" = grub-install ] && command -v grub2-install >/dev/null 2>&1; }; }
need() {
  missing=""
  for tool in "$@"; do have "$tool" || missing="$missing $tool"; done
  [ -z "$missing" ] && return 0
  manager=""
  for candidate in dnf apt-get zypper; do
    if command -v "$candidate" >/dev/null 2>&1; then manager=$candidate; break; fi
  done
  [ -n "$manager" ] || fail "the helper has no$missing and no package manager to install it (dnf, apt-get or zypper)"
  packages=""
  for tool in $missing; do packages="$packages $(package_of "$tool" "$manager")"; done
  STEP="install$packages with $manager"
  say "installing$packages with $manager"
  case "$manager" in
    dnf) dnf install -y -q $packages ;;
    apt-get) DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages ;;
    zypper) zypper --non-interactive --quiet install $packages ;;
  esac >/dev/null 2>&1 || fail "installing$packages with $manager failed"
  for tool in $missing; do
    have "$tool" || fail "the helper has no \`$tool\`, even after installing $(package_of "$tool" "$manager")"
  done
}
check_digest() {
  actual=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$actual" = "$2" ] || fail "$3 has SHA-256 $actual, expected $2"
}
fetch() {
  STEP="download $1"
  say "downloading $1"
  curl --fail --location --silent --show-error --retry 5 --retry-connrefused --proto '=http,https' -o "$2" "$1" \
    || fail "download of $1 failed"
}
find_device() {
  if [ -n "${AMIPLAN_TARGET_DEVICE:-}" ]; then echo "$AMIPLAN_TARGET_DEVICE"; return 0; fi
  for candidate in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME//-/}" /dev/xvdf /dev/sdf; do
    if [ -b "$candidate" ]; then readlink -f "$candidate"; return 0; fi
  done
  return 1
}
device_size() {
  if [ -b "$1" ]; then blockdev --getsize64 "$1"; else stat -c %s "$1"; fi
}
"#;

/// Finding the target volume: for build jobs only.
const DEVICE_PRELUDE: &str = r#"STEP="wait for volume $VOLUME"
DEVICE=""
for _ in $(seq 1 120); do DEVICE=$(find_device) && break; sleep 5; done
[ -n "$DEVICE" ] || fail "target volume $VOLUME never appeared"
rm -rf "$WORK"
mkdir -p "$WORK"
say "job $JOB writes $VOLUME ($DEVICE)"
"#;

fn write_image(out: &mut String, url: &str, sha256: &str, format: ImageFormat) {
    let (tools, write) = match format {
        ImageFormat::Raw => ("dd", r#"dd if="$WORK/image" of="$DEVICE" bs=4M conv=fsync,notrunc status=none"#),
        ImageFormat::RawXz => {
            ("xz dd", r#"xz -dc "$WORK/image" | dd of="$DEVICE" bs=4M iflag=fullblock conv=fsync,notrunc status=none"#)
        }
        ImageFormat::RawZst => (
            "zstd dd",
            r#"zstd -dcq "$WORK/image" | dd of="$DEVICE" bs=4M iflag=fullblock conv=fsync,notrunc status=none"#,
        ),
        ImageFormat::Qcow2 => ("qemu-img", r#"qemu-img convert -n -O raw "$WORK/image" "$DEVICE""#),
    };
    let _ = write!(
        out,
        r#"need curl sha256sum {tools}
fetch '{url}' "$WORK/image"
STEP="verify the image"
check_digest "$WORK/image" {sha256} "the downloaded image"
size=$(stat -c %s "$WORK/image")
if [ {raw} = yes ] && [ "$size" -gt "$(device_size "$DEVICE")" ]; then
  fail "the image ($size bytes) is larger than the target volume"
fi
STEP="write the image"
say "writing the image"
{write}
sync
say "image written"
"#,
        raw = if format == ImageFormat::Raw { "yes" } else { "no" },
    );
}

fn write_bootstrap(out: &mut String, bootstrap: &BootstrapSpec) -> Result<(), JobError> {
    let tools = match bootstrap.layout {
        DiskLayout::Gpt(_) => "curl sha256sum tar base64 mkfs.ext4 mkfs.vfat sfdisk blkid grub-install",
        DiskLayout::WholeDisk => "curl sha256sum tar base64 mkfs.ext4",
    };
    let _ = writeln!(out, "need {tools}");
    let _ = writeln!(out, "fetch '{}' \"$WORK/rootfs.tar\"", bootstrap.tarball);
    out.push_str("STEP=\"verify the tarball\"\n");
    let _ = writeln!(out, "check_digest \"$WORK/rootfs.tar\" {} \"the downloaded tarball\"", bootstrap.sha256);
    embed(out, &bootstrap.script, "$WORK/provision")?;
    if let Some(finalize) = &bootstrap.finalize {
        embed(out, finalize, "$WORK/finalize")?;
    }
    if let DiskLayout::Gpt(_) = bootstrap.layout {
        // Unpacked straight onto the target's root partition: the helper needs scratch space
        // for the tarball only.
        let _ = write!(out, "{}", PARTITION.replace("@@LABEL@@", &bootstrap.label));
    }
    out.push_str(
        r#"STEP="unpack the tarball"
say "unpacking the tarball"
mkdir -p "$WORK/root"
tar -xpf "$WORK/rootfs.tar" -C "$WORK/root" --numeric-owner --xattrs --xattrs-include='*.*'
"#,
    );
    if let DiskLayout::Gpt(_) = bootstrap.layout {
        out.push_str(MOUNT_ESP);
    }
    for (target, source) in &bootstrap.files {
        let staged = format!("$WORK/files/{}", hex::encode(&Sha256::digest(target.as_bytes())[..8]));
        embed(out, source, &staged)?;
        let _ = writeln!(
            out,
            "mkdir -p \"$(dirname \"$WORK/root{target}\")\"\ncp \"{staged}\" \"$WORK/root{target}\"\nchmod 0644 \"$WORK/root{target}\""
        );
    }
    out.push_str(
        r#"STEP="run the provisioning script"
say "provisioning"
chmod +x "$WORK/provision"
AMIPLAN_ROOT="$WORK/root" AMIPLAN_DEVICE="$DEVICE" "$WORK/provision" || fail "the provisioning script failed (exit status $?)"
"#,
    );
    match bootstrap.layout {
        DiskLayout::Gpt(architecture) => {
            let (targets, console) = match architecture {
                Architecture::X86_64 => ("i386-pc x86_64-efi", "console=tty0 console=ttyS0,115200n8"),
                Architecture::Arm64 => ("arm64-efi", "console=tty0 console=ttyS0,115200n8"),
            };
            let _ = write!(out, "{}", BOOT_LOADER.replace("@@TARGETS@@", targets).replace("@@CONSOLE@@", console));
        }
        DiskLayout::WholeDisk => {
            let _ = write!(
                out,
                r#"STEP="write the file system"
say "writing an ext4 file system labelled {label}"
mkfs.ext4 -q -F -L '{label}' -d "$WORK/root" "$DEVICE"
sync
"#,
                label = bootstrap.label
            );
        }
    }
    if bootstrap.finalize.is_some() {
        let mount = match bootstrap.layout {
            // The root is still mounted where it was unpacked.
            DiskLayout::Gpt(_) => "",
            DiskLayout::WholeDisk => {
                "mkdir -p \"$WORK/root\"\nmount \"$DEVICE\" \"$WORK/root\"\nMOUNTED=\"$WORK/root\"\n"
            }
        };
        let _ = write!(
            out,
            r#"STEP="run the finalize script"
{mount}chmod +x "$WORK/finalize"
AMIPLAN_ROOT="$WORK/root" AMIPLAN_DEVICE="$DEVICE" "$WORK/finalize" || fail "the finalize script failed (exit status $?)"
"#
        );
    }
    out.push_str("STEP=\"unmount the root\"\nunmount_all\nsync\nsay \"system written\"\n");
    Ok(())
}

/// The GPT layout of a bootstrapped HVM volume: a 1 MiB BIOS boot partition for GRUB's core
/// image, a 100 MiB EFI system partition (FAT32) and the root file system (ext4) on the rest.
const PARTITION: &str = r#"STEP="partition the volume"
say "partitioning $DEVICE: BIOS boot, EFI system and root (GPT)"
sfdisk --quiet --wipe always "$DEVICE" >/dev/null <<'AMIPLAN_EOF'
label: gpt
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name="bios-boot"
size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="efi"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="@@LABEL@@"
AMIPLAN_EOF
partition() { case "$DEVICE" in *[0-9]) echo "${DEVICE}p$1" ;; *) echo "${DEVICE}$1" ;; esac; }
for _ in $(seq 1 30); do
  [ -b "$(partition 3)" ] && break
  partx --update "$DEVICE" 2>/dev/null || true
  udevadm settle 2>/dev/null || true
  sleep 1
done
[ -b "$(partition 3)" ] || fail "the partitions of $DEVICE never appeared"
STEP="make the file systems"
mkfs.vfat -F 32 -n EFI "$(partition 2)" >/dev/null
mkfs.ext4 -q -F -L '@@LABEL@@' "$(partition 3)"
ROOT_UUID=$(blkid -s UUID -o value "$(partition 3)")
EFI_UUID=$(blkid -s UUID -o value "$(partition 2)")
mkdir -p "$WORK/root"
mount "$(partition 3)" "$WORK/root"
MOUNTED="$WORK/root"
"#;

/// Mounts the EFI system partition at /boot/efi once the tarball is unpacked: FAT holds no owners,
/// modes or links, so tar must not write onto it. What the tarball brings under /boot/efi is
/// copied onto the partition as plain files.
const MOUNT_ESP: &str = r#"STEP="mount the EFI system partition"
mkdir -p "$WORK/root/boot/efi"
if [ -n "$(ls -A "$WORK/root/boot/efi")" ]; then
  mv "$WORK/root/boot/efi" "$WORK/efi-from-tarball"
  mkdir "$WORK/root/boot/efi"
fi
mount "$(partition 2)" "$WORK/root/boot/efi"
if [ -d "$WORK/efi-from-tarball" ]; then
  say "copying the tarball's /boot/efi onto the EFI system partition"
  cp -rL --no-preserve=mode,ownership,timestamps "$WORK/efi-from-tarball/." "$WORK/root/boot/efi/" \
    || fail "the tarball's /boot/efi does not fit on the EFI system partition (100 MiB, FAT32)"
  rm -rf "$WORK/efi-from-tarball"
fi
"#;

/// Finds the kernel and initramfs the system brings, and installs GRUB on the removable-media
/// paths (no firmware variables: the AMI boots on any instance), pointing at the root by UUID.
const BOOT_LOADER: &str = r#"STEP="find the kernel"
kernel=$(cd "$WORK/root/boot" && ls -1 vmlinuz-* kernel-* 2>/dev/null | grep -v '\.old$' | sort -V | tail -n 1 || true)
[ -n "$kernel" ] || fail "the system has no kernel: /boot holds no vmlinuz-* or kernel-* (use a tarball with a kernel, or install one in the provisioning script)"
version=${kernel#vmlinuz-}
version=${version#kernel-}
initrd=""
for candidate in "initrd.img-$version" "initramfs-$version.img" "initrd-$version" "initramfs-$version"; do
  if [ -f "$WORK/root/boot/$candidate" ]; then initrd=$candidate; break; fi
done
say "booting /boot/$kernel${initrd:+ with /boot/$initrd}"
STEP="write fstab"
if ! grep -Eq '^[^#[:space:]]+[[:space:]]+/[[:space:]]' "$WORK/root/etc/fstab" 2>/dev/null; then
  mkdir -p "$WORK/root/etc"
  printf 'UUID=%s / ext4 defaults 0 1\nUUID=%s /boot/efi vfat umask=0077 0 2\n' "$ROOT_UUID" "$EFI_UUID" >>"$WORK/root/etc/fstab"
fi
STEP="install GRUB"
say "installing GRUB for @@TARGETS@@"
grub=$(command -v grub-install || command -v grub2-install)
grubdir=grub
[ "$(basename "$grub")" = grub2-install ] && grubdir=grub2
for target in @@TARGETS@@; do
  case "$target" in
    *-efi) "$grub" --target="$target" --efi-directory="$WORK/root/boot/efi" --boot-directory="$WORK/root/boot" --removable --no-nvram ;;
    *) "$grub" --target="$target" --boot-directory="$WORK/root/boot" "$DEVICE" ;;
  esac >/dev/null 2>&1 || fail "grub-install --target=$target failed"
done
cat >"$WORK/root/boot/$grubdir/grub.cfg" <<AMIPLAN_EOF
# Written by amiplan: boots /boot/$kernel from the root file system $ROOT_UUID.
set default=0
set timeout=1
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry 'amiplan: /boot/$kernel' {
  set gfxpayload=text
  search --no-floppy --fs-uuid --set=root $ROOT_UUID
  linux /boot/$kernel root=UUID=$ROOT_UUID ro @@CONSOLE@@ nvme_core.io_timeout=4294967295
  ${initrd:+initrd /boot/$initrd}
}
AMIPLAN_EOF
"#;

/// Embeds a local file as base64 and checks its digest on the helper before use.
fn embed(out: &mut String, source: &Path, target: &str) -> Result<(), JobError> {
    let bytes = std::fs::read(source).map_err(|e| JobError::Read { path: source.to_path_buf(), source: e })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let _ = write!(
        out,
        "STEP=\"unpack {}\"\nmkdir -p \"$(dirname \"{target}\")\"\nbase64 -d >\"{target}\" <<'AMIPLAN_EOF'\n",
        name.replace(['"', '$', '`', '\\'], "_")
    );
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "AMIPLAN_EOF\ncheck_digest \"{target}\" {digest} \"the embedded {}\"",
        name.replace(['"', '$', '`', '\\'], "_")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_result_of_its_own_job() {
        let console = "boot\r\nAMIPLAN-RESULT other ok\n[  12.3] cloud-init: AMIPLAN-RESULT abc failed: disk full\r\n";
        assert_eq!(read_result(console, "abc"), Some(JobResult::Failed("disk full".into())));
        assert_eq!(read_result("AMIPLAN-RESULT abc ok\r\n", "abc"), Some(JobResult::Succeeded));
        assert_eq!(read_result("AMIPLAN-LOG abc writing\n", "abc"), None);
        assert_eq!(
            read_result("AMIPLAN-RESULT abc maybe\n", "abc"),
            Some(JobResult::Failed("unreadable result `maybe`".into()))
        );
    }

    #[test]
    fn a_test_uploading_its_reports_gets_its_url_at_launch_and_keeps_its_identity() {
        let dir = std::env::temp_dir().join(format!("amiplan-job-upload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("test.sh");
        std::fs::write(&script, "#!/bin/sh\ntrue\n").unwrap();
        let reports = |through_bucket| TestReports { directory: "/var/tmp/reports".into(), through_bucket };
        let uploading = prepare_test("demo", &script, Some(&reports(true))).unwrap();
        let url = "https://b.s3.us-east-1.amazonaws.com/k?X-Amz-Signature=ab&X-Amz-Expires=600";
        let user_data = uploading.test_script(Some(url));
        assert!(user_data.contains(&format!("REPORTS_URL='{url}'")));
        assert!(!user_data.contains("@@"), "every slot is filled");
        assert!(user_data.contains("curl -fsS") && user_data.contains("urllib.request"));
        let consoled = prepare_test("demo", &script, Some(&reports(false))).unwrap();
        assert!(!consoled.test_script(None).contains("--upload-file"));
        assert!(consoled.test_script(None).contains("AMIPLAN-REPORT-END"));
        assert_ne!(uploading.id, consoled.id);
        let checked = std::process::Command::new("bash").arg("-n").arg("-c").arg(&user_data).output().unwrap();
        assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_reports_end_at_the_result_line() {
        let console = "boot\nwhy it failed\nAMIPLAN-RESULT abc failed: no\r\nreboot: Power down\n";
        assert_eq!(up_to_result(console, "abc"), "boot\nwhy it failed\nAMIPLAN-RESULT abc failed: no\r\n");
        assert_eq!(up_to_result(console, "other"), console);
    }

    #[test]
    fn url_jobs_embed_the_digest_and_the_volume() {
        let origin = Origin::Url {
            url: "https://example.org/f.raw.xz".into(),
            sha256: "ab".repeat(32),
            format: ImageFormat::RawXz,
        };
        let job = prepare("fedora", &origin).unwrap();
        let script = job.script("vol-0123");
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(script.contains("set -euo pipefail"));
        assert!(script.contains(&"ab".repeat(32)));
        assert!(script.contains("VOLUME=vol-0123"));
        assert!(script.contains("xz -dc"));
        assert_eq!(job, prepare("fedora", &origin).unwrap(), "generation is deterministic");
        assert_ne!(job.id, prepare("other", &origin).unwrap().id);
    }

    /// A GPT bootstrap of a stage3 that runs `script`.
    fn gpt_bootstrap(script: PathBuf) -> Origin {
        Origin::Bootstrap(BootstrapSpec {
            tarball: "https://example.org/stage3.tar.xz".into(),
            sha256: "cd".repeat(32),
            script,
            finalize: None,
            files: Default::default(),
            label: "root".into(),
            layout: DiskLayout::Gpt(Architecture::X86_64),
        })
    }

    /// FAT holds no owners or links: the tarball is unpacked before the EFI system partition is
    /// mounted under it, and the boot loader is installed after both.
    #[test]
    fn a_gpt_bootstrap_unpacks_before_mounting_the_efi_partition() {
        let dir = std::env::temp_dir().join(format!("amiplan-job-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("provision.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let origin = gpt_bootstrap(script);
        let job = prepare("order", &origin).unwrap();
        let script = job.script("vol-0123");
        let at = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("no {needle:?} in the job"));
        assert!(at("sfdisk --quiet") < at("tar -xpf"));
        assert!(at("tar -xpf") < at(r#"mount "$(partition 2)""#));
        assert!(at(r#"mount "$(partition 2)""#) < at("run the provisioning script"));
        assert!(at("run the provisioning script") < at("--efi-directory"));
        let checked = std::process::Command::new("bash").arg("-n").arg("-c").arg(&script).output().unwrap();
        assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oversized_jobs_are_refused() {
        let dir = std::env::temp_dir().join(format!("amiplan-job-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("big.sh");
        std::fs::write(&script, vec![b'x'; 20_000]).unwrap();
        let origin = gpt_bootstrap(script);
        assert!(matches!(prepare("big", &origin), Err(JobError::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
