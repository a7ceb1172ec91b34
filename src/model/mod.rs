//! Validated desired state. A `Stack` can only be built from a manifest that passed every check,
//! so later stages never re-validate; only what needs the image inspected, its size, is checked
//! once it is ([`Stack::volume_problem`]). Checks are local: no AWS call, only the file system.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Duration;

pub use crate::cloud::ImageAttrs;
use crate::cloud::{Protection, Sharing};
use crate::deprecation::Deprecation;
use crate::manifest::locate::PositionIndex;
use crate::manifest::raw::{Architecture, BootMode, HelperAmi, ImageFormat, Virtualization, VolumeType};
use crate::manifest::{Diagnostic, Invalid, Loaded};

mod catalog;
pub mod notices;
mod publish;
mod sources;

use catalog::check_catalog;
pub use catalog::{CatalogSpec, S3Target, VariantKey};
use publish::{check_retention, check_sharing, check_test};
use sources::{check_helper, check_source};

/// A stack ready for planning.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub manifest: PathBuf,
    pub source: Origin,
    /// Set for `build.method: helper`.
    pub helper: Option<HelperSpec>,
    pub build_region: String,
    pub volume_size_gib: Option<u32>,
    /// Where each part of the manifest is: some problems can only be found once the image is
    /// inspected (its size), and they still point at `file:line:col`.
    pub positions: Arc<PositionIndex>,
    /// Build region first, then the others in manifest order.
    pub regions: Vec<String>,
    /// Whether the build region's AMIs stay once copied (`build.keep_image`); when not, they
    /// and their snapshots are the copies' source only.
    pub keep_build_image: bool,
    pub variants: Vec<Variant>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub kms_keys: BTreeMap<String, String>,
    pub sharing: Sharing,
    pub deprecation: Option<Deprecation>,
    pub protection: Option<Protection>,
    pub test: Option<TestSpec>,
    pub version: Option<String>,
    /// Versions to keep, the current one included.
    pub keep_versions: Option<u32>,
    pub catalog: Option<CatalogSpec>,
    /// What `source.upstream` named at this load, if the stack tracks one.
    pub upstream: Option<crate::manifest::upstream::Resolution>,
    /// What the manifest implies that its author may not expect, and placeholders left in it:
    /// warned about, never refused (see [`notices`]).
    pub notices: Vec<Diagnostic>,
}

/// The boot test of new AMIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    pub script: PathBuf,
    pub instance_type: String,
    pub timeout: Duration,
    pub all_regions: bool,
    pub subnet: Option<String>,
    /// The directory in the instance whose files are collected after the test.
    pub reports: Option<String>,
    /// The bucket the reports travel through, when not the console.
    pub reports_bucket: Option<S3Target>,
}

/// Where the disk image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local image (raw, compressed or qcow2) uploaded with the EBS direct APIs.
    File { path: PathBuf, sha256: Option<String> },
    /// An image the helper downloads and writes to the target volume.
    Url { url: String, sha256: String, format: ImageFormat },
    /// A root file system tarball the helper unpacks, provisions and writes.
    Bootstrap(BootstrapSpec),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapSpec {
    pub tarball: String,
    pub sha256: String,
    pub script: PathBuf,
    pub finalize: Option<PathBuf>,
    /// Target path in the image → local file.
    pub files: BTreeMap<String, PathBuf>,
    pub label: String,
    pub layout: DiskLayout,
}

/// How a bootstrapped system is laid out on the volume, decided by the variants it boots as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskLayout {
    /// HVM: a GPT disk (BIOS boot, EFI system and root partitions) with GRUB installed for both
    /// firmwares on x86_64, for UEFI on arm64.
    Gpt(Architecture),
    /// Paravirtual: one ext4 file system on the whole volume, which PV-GRUB reads.
    WholeDisk,
}

/// How and where the helper instance of a `build.method: helper` stack runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperSpec {
    pub ami: HelperAmi,
    pub instance_type: String,
    pub volume_type: VolumeType,
    pub spot: bool,
    pub timeout: Duration,
    /// `None`: a temporary network; `Some(subnet)`: an existing subnet.
    pub subnet: Option<String>,
}

/// One combination of the variant matrix: one AMI per region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The expanded AMI name, the same in every region.
    pub name: String,
    pub attrs: ImageAttrs,
}

impl Stack {
    /// A problem with the value at `path` of the stack's manifest.
    pub fn at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: self.manifest.clone(), position: self.positions.find(path), message: message.into() }
    }

    /// Whether an image of `image_bytes` (`describe` says which) fits the stack's root volumes:
    /// `build.volume_size` must hold it (EBS refuses blocks past the volume's end), and without
    /// one, the image's own size must be a size every variant's volume type takes.
    pub fn volume_problem(&self, image_bytes: u64, describe: &str) -> Option<Diagnostic> {
        // The same rounding as the default size (`SourceInfo::min_volume_gib`).
        let needed = crate::cloud::attrs::volume_gib_for(image_bytes);
        let gib = |bytes: u64| format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30));
        match self.volume_size_gib {
            Some(size) if size < needed => Some(self.at(
                "build.volume_size",
                format!(
                    "volume_size {size} GiB cannot hold {describe} ({}, {image_bytes} bytes): make it at least {needed}, or leave it out to use the image's size",
                    gib(image_bytes)
                ),
            )),
            Some(_) => None,
            None => smallest_volume_type(&self.variants).filter(|smallest| needed > smallest.max_size_gib()).map(
                |smallest| {
                    self.at(
                        "source.file",
                        format!(
                            "{describe} ({}, {image_bytes} bytes) needs a {needed} GiB volume, more than a {} volume holds ({} GiB, EC2's limit for an AMI's volumes): drop that volume type",
                            gib(image_bytes),
                            smallest.as_str(),
                            smallest.max_size_gib()
                        ),
                    )
                },
            ),
        }
    }

    pub fn kms_key(&self, region: &str) -> Option<&str> {
        self.kms_keys.get(region).map(String::as_str)
    }

    /// The regions whose AMIs stay and are published: every region, less a build region whose
    /// AMIs are only the copies' source.
    pub fn published_regions(&self) -> impl Iterator<Item = &String> {
        self.regions.iter().filter(|r| self.keep_build_image || **r != self.build_region)
    }

    /// The local image to upload and its expected digest, for direct builds.
    pub fn local_source(&self) -> Option<(&Path, Option<&str>)> {
        match &self.source {
            Origin::File { path, sha256 } => Some((path, sha256.as_deref())),
            _ => None,
        }
    }
}

/// Regions amiplan accepts in manifests. A typo here would otherwise surface as a connection
/// error halfway through an apply.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

const PLACEHOLDERS: &[&str] = &["stack", "version", "arch", "virtualization", "volume_type", "encryption", "boot_mode"];

/// Validates every loaded manifest, and the set as a whole (stack names and AMI names must not
/// collide). All problems are reported together.
pub fn validate(loaded: &[Loaded]) -> Result<Vec<Stack>, Invalid> {
    let mut problems = Vec::new();
    let mut stacks = Vec::new();
    for manifest in loaded {
        let mut found = Vec::new();
        let stack = check(manifest, &mut found);
        if found.is_empty() {
            stacks.push((manifest, stack));
        }
        problems.append(&mut found);
    }
    check_across(&stacks, &mut problems);
    problems.sort();
    problems.dedup();
    if problems.is_empty() { Ok(stacks.into_iter().map(|(_, s)| s).collect()) } else { Err(Invalid(problems)) }
}

fn check(loaded: &Loaded, problems: &mut Vec<Diagnostic>) -> Stack {
    let m = &loaded.manifest;
    let mut report = |path: &str, message: String| problems.push(loaded.at(path, message));

    if !is_valid_stack_name(&m.stack) {
        report(
            "stack",
            format!(
                "stack name `{}` must be 1-64 characters of letters, digits, `.`, `_`, `-`, starting with a letter or digit",
                m.stack
            ),
        );
    }
    check_region(&m.build.region, "build.region", &mut report);
    let mut regions = vec![m.build.region.clone()];
    for (i, region) in m.regions.iter().enumerate() {
        let path = format!("regions[{i}]");
        check_region(region, &path, &mut report);
        if m.regions[..i].contains(region) {
            report(&path, format!("region `{region}` is listed twice"));
        } else if region != &m.build.region {
            regions.push(region.clone());
        }
    }
    for (region, key) in &m.image.kms_keys {
        let path = format!("image.kms_keys.{region}");
        check_region(region, &path, &mut report);
        if !regions.contains(region) {
            report(&path, format!("a KMS key for `{region}`, which is not one of the stack's regions"));
        }
        if let Some(problem) = kms_key_problem(
            key,
            region,
            region == &m.build.region && m.build.method == crate::manifest::raw::BuildMethod::Direct,
        ) {
            report(&path, problem);
        }
    }
    if let Some(size) = m.build.volume_size
        && !(1..=16384).contains(&size)
    {
        report("build.volume_size", format!("volume_size {size} GiB is outside 1..=16384"));
    }

    let mut source = check_source(loaded, &mut report);
    let helper = check_helper(loaded, &mut report);
    for key in m.image.tags.keys() {
        if key.starts_with("amiplan:") || key.starts_with("aws:") {
            report(&format!("image.tags.{key}"), format!("tag key `{key}` is reserved (amiplan: and aws: prefixes)"));
        } else if key.is_empty() || key.len() > 128 {
            report(&format!("image.tags.{key}"), "tag keys must be 1-128 characters".to_string());
        }
    }
    for (key, value) in &m.image.tags {
        if value.len() > 256 {
            report(&format!("image.tags.{key}"), "tag values must be at most 256 characters".to_string());
        }
    }
    if m.image.tags.len() > 40 {
        report("image.tags", "at most 40 tags: AWS allows 50 and amiplan needs some".to_string());
    }
    check_id_prefix(m.image.kernel_id.as_deref(), "aki-", "image.kernel_id", &mut report);
    check_id_prefix(m.image.ramdisk_id.as_deref(), "ari-", "image.ramdisk_id", &mut report);
    if let Some(description) = &m.image.description
        && description.len() > 255
    {
        report("image.description", "description must be at most 255 characters".to_string());
    }

    let variants = expand(loaded, &mut report);
    if let Some(size) = m.build.volume_size
        && let Some(smallest) = smallest_volume_type(&variants).filter(|smallest| size > smallest.max_size_gib())
    {
        report(
            "build.volume_size",
            format!(
                "volume_size {size} GiB is more than a {} volume holds ({} GiB, EC2's limit for an AMI's volumes): make it smaller or drop that volume type",
                smallest.as_str(),
                smallest.max_size_gib()
            ),
        );
    }
    if let Origin::Bootstrap(bootstrap) = &mut source {
        bootstrap.layout = disk_layout(&variants, m.image.architecture, &mut report);
    }
    let shares = !m.publish.accounts.is_empty()
        || !m.publish.organizations.is_empty()
        || !m.publish.organizational_units.is_empty();
    if !m.build.keep_image {
        if m.regions.is_empty() {
            report(
                "build.keep_image",
                "`keep_image: false` needs `regions` to name where the AMIs are copied to: with none, the build region's AMIs are the only ones".to_string(),
            );
        } else if m.regions.contains(&m.build.region) {
            report(
                "build.keep_image",
                format!(
                    "`keep_image: false` removes the build region's AMIs once copied, but `regions` lists the build region {}: remove it from `regions`, or keep the AMIs",
                    m.build.region
                ),
            );
        }
    }
    // Where the AMIs are shared: not a build region whose AMIs are only the copies' source.
    let shared_in = regions.iter().filter(|r| m.build.keep_image || **r != m.build.region);
    if shares && variants.iter().any(|v| v.attrs.encrypted) {
        for region in shared_in.filter(|r| !m.image.kms_keys.contains_key(*r)) {
            report(
                "publish",
                format!(
                    "encrypted AMIs in {region} would use the account's default EBS key, which cannot be shared with other accounts (AWS refuses their snapshots); give image.kms_keys.{region} a customer managed key the accounts may use"
                ),
            );
        }
    }
    Stack {
        name: m.stack.clone(),
        manifest: loaded.path.clone(),
        source,
        helper,
        build_region: m.build.region.clone(),
        volume_size_gib: m.build.volume_size,
        positions: Arc::clone(&loaded.positions),
        regions,
        keep_build_image: m.build.keep_image,
        variants: variants.clone(),
        description: m.image.description.clone(),
        tags: m.image.tags.clone(),
        kms_keys: m.image.kms_keys.clone(),
        sharing: check_sharing(loaded, &mut report),
        test: check_test(loaded, &mut report),
        version: m.version.clone(),
        keep_versions: check_retention(loaded, &mut report),
        catalog: check_catalog(loaded, &variants, &mut report),
        upstream: loaded.upstream.clone(),
        notices: notices::notices(loaded),
        protection: m.deregistration_protection,
        deprecation: m
            .deprecate_after
            .as_deref()
            .and_then(|text| Deprecation::parse(text).map_err(|problem| report("deprecate_after", problem)).ok())
            .inspect(|deprecation| {
                if let Some(problem) = deprecation_refusal(*deprecation, m.publish.public) {
                    report("deprecate_after", problem);
                }
            }),
    }
}

/// A bootstrapped volume boots either as HVM (partitions and GRUB) or paravirtual (PV-GRUB reads
/// a whole-disk file system): not both.
fn disk_layout(variants: &[Variant], architecture: Architecture, report: &mut impl FnMut(&str, String)) -> DiskLayout {
    let paravirtual = variants.iter().filter(|v| v.attrs.virtualization == Virtualization::Paravirtual).count();
    if paravirtual == 0 {
        return DiskLayout::Gpt(architecture);
    }
    if paravirtual < variants.len() {
        report(
            "variants.virtualization",
            "a bootstrapped volume boots either as hvm (GPT and GRUB) or as paravirtual (a whole-disk file system for PV-GRUB), not both; make one stack per virtualization".to_string(),
        );
    }
    DiskLayout::WholeDisk
}

/// Why AWS would refuse this key where amiplan passes it: StartSnapshot (the build region of a
/// direct upload) takes only a key ARN; every API refuses a key of another region.
fn kms_key_problem(key: &str, region: &str, start_snapshot: bool) -> Option<String> {
    let arn: Vec<&str> = key.split(':').collect();
    if key.starts_with("arn:") {
        let named = arn.get(3).copied().unwrap_or_default();
        if arn.len() < 6 || arn.get(2) != Some(&"kms") {
            return Some(format!("`{key}` is not a KMS key ARN (arn:aws:kms:{region}:ACCOUNT:key/ID)"));
        }
        if named != region {
            return Some(format!("`{key}` is a key of {named}, not {region}: EBS uses keys of its own region"));
        }
        return None;
    }
    start_snapshot.then(|| format!(
        "`{key}`: the EBS direct API (StartSnapshot) takes a key ARN only, not a key ID or alias; give arn:aws:kms:{region}:ACCOUNT:key/ID"
    ))
}

/// Why AWS would refuse this deprecation (EC2 user guide, "Deprecate an AMI"): a time in the
/// past, more than 10 years ahead, or, for public AMIs, more than 2 years after creation.
fn deprecation_refusal(deprecation: Deprecation, public: bool) -> Option<String> {
    const DAY: i64 = 24 * 3600;
    let now = crate::deprecation::now();
    let (ahead, what) = match deprecation {
        Deprecation::After(after) => (after, "days after creation"),
        Deprecation::At(at) if at <= now => {
            return Some("the date is in the past: AWS deprecates only at a future time".into());
        }
        Deprecation::At(at) => (at - now, "from now"),
    };
    if ahead > 3650 * DAY {
        return Some(format!("{} {what} is more than AWS's 10 years", ahead / DAY));
    }
    if public && ahead > 730 * DAY {
        return Some(format!(
            "{} {what}: AWS deprecates public AMIs at most 2 years (730 days) after creation; choose an earlier time or leave deprecate_after out to keep AWS's default",
            ahead / DAY
        ));
    }
    None
}

/// Versions and channel names: usable in AMI names, tags and parameter names.
fn is_valid_version(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn is_instance_type(text: &str) -> bool {
    text.split_once('.').is_some_and(|(family, size)| !family.is_empty() && !size.is_empty())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `90s`, `45m`, `2h`: between one minute and 24 hours.
fn parse_minutes(text: &str) -> Result<Duration, String> {
    let problem = || format!("timeout `{text}` must be a number with s, m or h, between 1m and 24h");
    let duration = crate::duration::parse(text).map_err(|_| problem())?;
    if !(60..=24 * 3600).contains(&duration.as_secs()) {
        return Err(problem());
    }
    Ok(duration)
}

fn check_region(region: &str, path: &str, report: &mut impl FnMut(&str, String)) {
    if !KNOWN_REGIONS.contains(&region) {
        let guess = crate::spelling::hint(region, KNOWN_REGIONS.iter().copied());
        report(path, format!("unknown region `{region}`{guess}"));
    }
}

fn check_id_prefix(id: Option<&str>, prefix: &str, path: &str, report: &mut impl FnMut(&str, String)) {
    if let Some(id) = id
        && !id.starts_with(prefix)
    {
        report(path, format!("`{id}` is not an id starting with `{prefix}`"));
    }
}

fn is_valid_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The variants' volume type that holds the least.
fn smallest_volume_type(variants: &[Variant]) -> Option<VolumeType> {
    variants.iter().map(|v| v.attrs.volume_type).min_by_key(|t| t.max_size_gib())
}

/// The cartesian product of the variant axes, each checked for combinations AWS refuses.
fn expand(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Vec<Variant> {
    let m = &loaded.manifest;
    let image = &m.image;
    let axis_problem = |values: usize, unique: usize| values == 0 || unique != values;
    let volume_types = m.variants.volume_type.clone().unwrap_or(vec![VolumeType::Gp3]);
    let encrypted = m.variants.encrypted.clone().unwrap_or(vec![false]);
    let virtualizations = match (&image.virtualization, &m.variants.virtualization) {
        (Some(_), Some(_)) => {
            report(
                "variants.virtualization",
                "virtualization is set in both `image` and `variants`; keep one".to_string(),
            );
            vec![]
        }
        (Some(one), None) => vec![*one],
        (None, Some(list)) => list.clone(),
        (None, None) => vec![Virtualization::Hvm],
    };
    for (axis, values, unique) in [
        ("volume_type", volume_types.len(), volume_types.iter().collect::<BTreeSet<_>>().len()),
        ("encrypted", encrypted.len(), encrypted.iter().collect::<BTreeSet<_>>().len()),
        ("virtualization", virtualizations.len(), virtualizations.iter().collect::<BTreeSet<_>>().len()),
    ] {
        if axis_problem(values, unique) && !(axis == "virtualization" && values == 0) {
            report(&format!("variants.{axis}"), format!("variants.{axis} must list at least one value, each once"));
        }
    }
    if let Some(problem) = placeholder_problem(&image.name) {
        report("image.name", problem);
        return vec![];
    }
    // NitroTPM needs the instance booted on UEFI, which only `uefi` promises (EC2 user guide,
    // NitroTPM prerequisites; `uefi-preferred` boots legacy BIOS where a type has no UEFI, and
    // RegisterImage refuses TpmSupport with it, as Flatcar's release engineers found).
    if image.tpm && image.boot_mode != Some(BootMode::Uefi) {
        report(
            "image.tpm",
            "tpm needs boot_mode uefi (NitroTPM runs only on UEFI; uefi-preferred may boot legacy BIOS, and EC2 refuses it with a TPM)".to_string(),
        );
    }
    if image.root_device.is_empty() || !image.root_device.starts_with("/dev/") {
        report(
            "image.root_device",
            format!("root_device `{}` must be a device path like /dev/xvda", image.root_device),
        );
    }

    let mut variants = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for &virtualization in &virtualizations {
        if virtualization == Virtualization::Paravirtual {
            let path = if image.virtualization.is_some() { "image.virtualization" } else { "variants.virtualization" };
            if image.kernel_id.is_none() {
                report(path, "paravirtual needs image.kernel_id".to_string());
            }
            if image.architecture != Architecture::X86_64 {
                report(path, "paravirtual is x86_64 only".to_string());
            }
            if image.boot_mode.is_some_and(|mode| mode != BootMode::LegacyBios) || image.tpm {
                report(path, "paravirtual cannot boot UEFI or use a TPM".to_string());
            }
        }
        for &volume_type in &volume_types {
            for &encrypted in &encrypted {
                if encrypted && m.publish.public {
                    report("publish.public", "encrypted AMIs cannot be made public (AWS refuses it); drop `true` from variants.encrypted or make the stack private".to_string());
                }

                let attrs = ImageAttrs {
                    architecture: image.architecture,
                    virtualization,
                    volume_type,
                    encrypted,
                    boot_mode: image.boot_mode,
                    // ENA needs HVM; a paravirtual AMI registered with it is refused.
                    ena: image.ena && virtualization == Virtualization::Hvm,
                    imds: image.imds,
                    tpm: image.tpm,
                    root_device: image.root_device.clone(),
                    kernel_id: image.kernel_id.clone().filter(|_| virtualization == Virtualization::Paravirtual),
                    ramdisk_id: image.ramdisk_id.clone().filter(|_| virtualization == Virtualization::Paravirtual),
                };
                let name = render_name(&image.name, &m.stack, m.version.as_deref().unwrap_or_default(), &attrs);
                if let Some(problem) = ami_name_problem(&name) {
                    report("image.name", format!("name `{name}` {problem}"));
                }
                *seen.entry(name.clone()).or_default() += 1;
                variants.push(Variant { name, attrs });
            }
        }
    }
    for (name, count) in seen {
        if count > 1 {
            report(
                "image.name",
                format!(
                    "{count} variants expand to the AMI name `{name}`; add placeholders (e.g. {{volume_type}}) so every variant has its own name"
                ),
            );
        }
    }
    variants
}

/// What is wrong with the placeholders of an AMI name template, if anything.
fn placeholder_problem(template: &str) -> Option<String> {
    Some(match bad_placeholder(template, &[])? {
        BadPlaceholder::Unclosed(rest) => format!("placeholder `{{{rest}` in name is never closed with `}}`"),
        BadPlaceholder::Unknown(name) => {
            format!("unknown placeholder `{{{name}}}` in name; known: {}", PLACEHOLDERS.join(", "))
        }
    })
}

/// A placeholder a template cannot have.
enum BadPlaceholder<'a> {
    /// `{` and what follows, never closed.
    Unclosed(&'a str),
    /// Neither an image-name placeholder nor one of the caller's.
    Unknown(&'a str),
}

/// The first bad placeholder of `template`, which may also use `extra` ones.
fn bad_placeholder<'a>(template: &'a str, extra: &[&str]) -> Option<BadPlaceholder<'a>> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Some(BadPlaceholder::Unclosed(after));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) && !extra.contains(&name) {
            return Some(BadPlaceholder::Unknown(name));
        }
        rest = &after[close + 1..];
    }
    None
}

fn render_name(template: &str, stack: &str, version: &str, attrs: &ImageAttrs) -> String {
    template
        .replace("{stack}", stack)
        .replace("{version}", version)
        .replace("{arch}", attrs.architecture.as_str())
        .replace("{virtualization}", attrs.virtualization.as_str())
        .replace("{volume_type}", attrs.volume_type.as_str())
        .replace("{encryption}", if attrs.encrypted { "encrypted" } else { "unencrypted" })
        .replace("{boot_mode}", attrs.boot_mode.map_or("default", BootMode::as_str))
}

/// AWS: 3-128 characters of letters, digits, ( ) [ ] space . / - ' @ _
fn ami_name_problem(name: &str) -> Option<&'static str> {
    if !(3..=128).contains(&name.len()) {
        return Some("must be 3-128 characters long");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    if !name.chars().all(allowed) { Some("has characters AWS does not allow in AMI names") } else { None }
}

fn check_across(stacks: &[(&Loaded, Stack)], problems: &mut Vec<Diagnostic>) {
    let mut parameters: BTreeMap<(&str, String), &str> = BTreeMap::new();
    for (loaded, stack) in stacks {
        let (Some(catalog), Some(version)) = (&stack.catalog, &stack.version) else { continue };
        for name in catalog.names(&stack.name, version, &stack.variants) {
            for region in stack.published_regions() {
                if let Some(other) = parameters.insert((region, name.clone()), &stack.name)
                    && other != stack.name
                {
                    let message = format!("parameter `{name}` in {region} is also written by stack `{other}`");
                    problems.push(loaded.at("catalog", message));
                }
            }
        }
    }
    let mut destinations: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (loaded, stack) in stacks {
        let Some(s3) = stack.catalog.as_ref().and_then(|c| c.s3.as_ref()) else { continue };
        if let Some(other) = destinations.insert((&s3.bucket, &s3.prefix), &stack.name) {
            let message = format!(
                "s3://{}/{} is also where stack `{other}` publishes its catalogue: give each stack its own prefix",
                s3.bucket, s3.prefix
            );
            problems.push(loaded.at("catalog.s3", message));
        }
    }
    let mut stack_names: BTreeMap<&str, &Loaded> = BTreeMap::new();
    let mut ami_names: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (loaded, stack) in stacks {
        if let Some(first) = stack_names.insert(&stack.name, loaded) {
            let other = first.path.display();
            problems.push(loaded.at("stack", format!("stack `{}` is also defined in {other}", stack.name)));
        }
        for variant in &stack.variants {
            for region in &stack.regions {
                if let Some(other) = ami_names.insert((region, &variant.name), &stack.name)
                    && other != stack.name
                {
                    let message =
                        format!("AMI name `{}` in {region} is also produced by stack `{other}`", variant.name);
                    problems.push(loaded.at("image.name", message));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::manifest::{self, LocalFiles};

    fn stack(build: &str, volume_types: &str) -> super::Stack {
        let text = format!(
            "stack: s\nsource: {{ file: disk.raw }}\nbuild: {build}\nimage: {{ name: \"s-{{volume_type}}\", architecture: x86_64 }}\nvariants: {{ volume_type: [{volume_types}] }}\nregions: [us-east-1]\n"
        );
        let mut loaded = manifest::parse(Path::new("m.yaml"), &text).unwrap();
        // The image is not read here: its size is given to the check.
        loaded.local_files = LocalFiles::Unused;
        super::validate(&[loaded]).unwrap().remove(0)
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_volume_size_must_hold_the_image_and_is_pointed_at() {
        let sized = stack("{ region: us-east-1, volume_size: 2 }", "gp3");
        assert_eq!(sized.volume_problem(2 * GIB, "the image"), None);
        let problem = sized.volume_problem(2 * GIB + 1, "the image").expect("one byte too many");
        assert_eq!(
            problem.to_string(),
            "m.yaml:3:42: volume_size 2 GiB cannot hold the image (2.0 GiB, 2147483649 bytes): make it at least 3, or leave it out to use the image's size"
        );
    }

    #[test]
    fn without_a_volume_size_the_image_must_fit_every_variants_volume_type() {
        let magnetic = stack("{ region: us-east-1 }", "gp3, standard");
        assert_eq!(magnetic.volume_problem(1024 * GIB, "the image"), None);
        let problem = magnetic.volume_problem(1024 * GIB + 1, "the image").expect("past 1,024 GiB");
        assert!(problem.to_string().starts_with("m.yaml:2:17: the image (1024.0 GiB, 1099511627777 bytes) needs a 1025 GiB volume, more than a standard volume holds (1024 GiB"), "{problem}");
        let ssd = stack("{ region: us-east-1 }", "gp2, gp3");
        assert_eq!(ssd.volume_problem(16_384 * GIB, "the image"), None);
        let problem = ssd.volume_problem(16_384 * GIB + 1, "the image").expect("past 16,384 GiB");
        assert!(problem.to_string().contains("more than a gp2 volume holds (16384 GiB"), "{problem}");
    }
}
