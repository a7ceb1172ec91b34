//! Validated desired state. A `Stack` can only be built from a manifest that passed every check,
//! so later stages never re-validate. Checks are local: no AWS call, only the file system.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use std::time::Duration;

use crate::deprecation::Deprecation;
use crate::manifest::raw::{
    self, Architecture, BootMode, BuildMethod, HelperAmi, ImageFormat, Imds, Virtualization, VolumeType,
};
use crate::manifest::{Diagnostic, Invalid, Loaded};
use crate::sharing::Sharing;

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
    /// Build region first, then the others in manifest order.
    pub regions: Vec<String>,
    pub variants: Vec<Variant>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub kms_keys: BTreeMap<String, String>,
    pub sharing: Sharing,
    pub deprecation: Option<Deprecation>,
    pub test: Option<TestSpec>,
    pub version: Option<String>,
    /// Versions to keep, the current one included.
    pub keep_versions: Option<u32>,
}

/// The boot test of new AMIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    pub script: PathBuf,
    pub instance_type: String,
    pub timeout: Duration,
    pub all_regions: bool,
    pub subnet: Option<String>,
}

/// Where the disk image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local raw image uploaded with the EBS direct APIs.
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

/// Everything about an AMI that AWS cannot change after registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAttrs {
    pub architecture: Architecture,
    pub virtualization: Virtualization,
    pub volume_type: VolumeType,
    pub encrypted: bool,
    pub boot_mode: Option<BootMode>,
    pub ena: bool,
    pub imds: Option<Imds>,
    pub tpm: bool,
    pub root_device: String,
    pub kernel_id: Option<String>,
    pub ramdisk_id: Option<String>,
}

impl Stack {
    pub fn kms_key(&self, region: &str) -> Option<&str> {
        self.kms_keys.get(region).map(String::as_str)
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
    for region in m.image.kms_keys.keys() {
        let path = format!("image.kms_keys.{region}");
        check_region(region, &path, &mut report);
        if !regions.contains(region) {
            report(&path, format!("a KMS key for `{region}`, which is not one of the stack's regions"));
        }
    }
    if let Some(size) = m.build.volume_size
        && !(1..=16384).contains(&size)
    {
        report("build.volume_size", format!("volume_size {size} GiB is outside 1..=16384"));
    }

    let source = check_source(loaded, &mut report);
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
    Stack {
        name: m.stack.clone(),
        manifest: loaded.path.clone(),
        source,
        helper,
        build_region: m.build.region.clone(),
        volume_size_gib: m.build.volume_size,
        regions,
        variants,
        description: m.image.description.clone(),
        tags: m.image.tags.clone(),
        kms_keys: m.image.kms_keys.clone(),
        sharing: check_sharing(loaded, &mut report),
        test: check_test(loaded, &mut report),
        version: m.version.clone(),
        keep_versions: check_retention(loaded, &mut report),
        deprecation: m
            .deprecate_after
            .as_deref()
            .and_then(|text| Deprecation::parse(text).map_err(|problem| report("deprecate_after", problem)).ok()),
    }
}

/// A version must be usable in names and tags, and keeping versions needs a version in the name.
fn check_retention(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Option<u32> {
    let m = &loaded.manifest;
    if let Some(version) = &m.version {
        let ok = (1..=64).contains(&version.len())
            && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            report("version", format!("version `{version}` must be 1-64 letters, digits, `.`, `_` or `-`"));
        }
        if !m.image.name.contains("{version}") {
            report(
                "image.name",
                "with a version, image.name needs `{version}`: each version gets its own AMI names".to_string(),
            );
        }
    } else if m.image.name.contains("{version}") {
        report("image.name", "`{version}` in image.name needs a top-level `version`".to_string());
    }
    let retention = m.retention.as_ref()?;
    if m.version.is_none() {
        report("retention", "retention needs a top-level `version` to tell versions apart".to_string());
    }
    if !(1..=100).contains(&retention.keep) {
        report("retention.keep", format!("keep {} is outside 1..=100", retention.keep));
    }
    Some(retention.keep)
}

fn check_test(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Option<TestSpec> {
    let test = loaded.manifest.test.as_ref()?;
    let script = local_file(loaded, &test.script, "test.script", report);
    let default_type = match loaded.manifest.image.architecture {
        Architecture::X86_64 => "t3.small",
        Architecture::Arm64 => "t4g.small",
    };
    let instance_type = test.instance_type.clone().unwrap_or_else(|| default_type.to_string());
    if !is_instance_type(&instance_type) {
        report("test.instance_type", format!("`{instance_type}` is not an instance type like t3.small"));
    }
    let timeout = match test.timeout.as_deref().map(parse_minutes) {
        None => Duration::from_secs(30 * 60),
        Some(Ok(timeout)) => timeout,
        Some(Err(problem)) => {
            report("test.timeout", problem);
            Duration::from_secs(30 * 60)
        }
    };
    if let Some(subnet) = &test.subnet
        && !subnet.starts_with("subnet-")
    {
        report("test.subnet", format!("`{subnet}` is not a subnet id (subnet-…)"));
    }
    Some(TestSpec {
        script,
        instance_type,
        timeout,
        all_regions: test.regions == raw::TestRegions::All,
        subnet: test.subnet.clone(),
    })
}

fn is_instance_type(text: &str) -> bool {
    text.split_once('.').is_some_and(|(family, size)| !family.is_empty() && !size.is_empty())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Launch permissions: well-formed IDs and ARNs, each once.
fn check_sharing(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Sharing {
    let publish = &loaded.manifest.publish;
    let mut check = |field: &str, values: &[String], valid: &dyn Fn(&str) -> bool, what: &str| {
        let mut seen = BTreeSet::new();
        for (i, value) in values.iter().enumerate() {
            let path = format!("publish.{field}[{i}]");
            if !valid(value) {
                report(&path, format!("`{value}` is not {what}"));
            } else if !seen.insert(value.clone()) {
                report(&path, format!("`{value}` is listed twice"));
            }
        }
        seen
    };
    let account = |v: &str| v.len() == 12 && v.chars().all(|c| c.is_ascii_digit());
    let arn = |kind: &str, v: &str| {
        let parts: Vec<&str> = v.split(':').collect();
        parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "organizations"
            && account(parts[4])
            && parts[5].starts_with(kind)
            && parts[5].chars().all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '-')
    };
    Sharing {
        public: publish.public,
        accounts: check("accounts", &publish.accounts, &account, "a 12-digit account ID"),
        organizations: check(
            "organizations",
            &publish.organizations,
            &|v| arn("organization/o-", v),
            "an organization ARN (arn:aws:organizations::<account>:organization/o-…)",
        ),
        organizational_units: check(
            "organizational_units",
            &publish.organizational_units,
            &|v| arn("ou/o-", v),
            "an organizational unit ARN (arn:aws:organizations::<account>:ou/o-…/ou-…)",
        ),
    }
}

/// Exactly one of `file`, `url` and `bootstrap`, matching the build method.
fn check_source(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Origin {
    let m = &loaded.manifest;
    let source = &m.source;
    let helper = m.build.method == BuildMethod::Helper;
    let digest = |text: &str, path: &str, report: &mut dyn FnMut(&str, String)| {
        if text.len() != 64 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            report(path, "sha256 must be 64 hexadecimal characters".to_string());
        }
        text.to_ascii_lowercase()
    };
    let given = [source.file.is_some(), source.url.is_some(), source.bootstrap.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        report("source", "source needs exactly one of `file`, `url` and `bootstrap`".to_string());
    }
    let sha256 = source.sha256.as_deref().map(|d| digest(d, "source.sha256", report));
    if let Some(file) = &source.file {
        if helper {
            report(
                "source.file",
                "build.method helper downloads its image: give source.url or source.bootstrap (or use method direct)"
                    .to_string(),
            );
        }
        let path = local_file(loaded, file, "source.file", report);
        return Origin::File { path, sha256 };
    }
    if !helper {
        let field = if source.url.is_some() { "source.url" } else { "source.bootstrap" };
        report(
            field,
            "a URL or bootstrap source needs `build.method: helper`; direct uploads take source.file".to_string(),
        );
    }
    if source.format.is_some() && source.url.is_none() {
        report("source.format", "format applies to source.url only".to_string());
    }
    if let Some(url) = &source.url {
        check_url(url, "source.url", report);
        if sha256.is_none() {
            report("source.url", "a URL source needs source.sha256: the helper checks it before writing".to_string());
        }
        let format = source.format.or_else(|| format_from_suffix(url)).unwrap_or_else(|| {
            report("source.url", format!("cannot tell the image format of `{url}` from its suffix; set source.format (raw, raw.xz, raw.zst or qcow2)"));
            ImageFormat::Raw
        });
        return Origin::Url { url: url.clone(), sha256: sha256.unwrap_or_default(), format };
    }
    if sha256.is_some() {
        report("source.sha256", "with bootstrap, the digest goes in source.bootstrap.sha256".to_string());
    }
    let Some(bootstrap) = &source.bootstrap else {
        return Origin::File { path: PathBuf::new(), sha256: None };
    };
    check_url(&bootstrap.tarball, "source.bootstrap.tarball", report);
    let sha256 = digest(&bootstrap.sha256, "source.bootstrap.sha256", report);
    let script = local_file(loaded, &bootstrap.script, "source.bootstrap.script", report);
    let finalize = bootstrap.finalize.as_ref().map(|f| local_file(loaded, f, "source.bootstrap.finalize", report));
    let mut files = BTreeMap::new();
    for (target, file) in &bootstrap.files {
        let path = format!("source.bootstrap.files.{target}");
        let safe = target.starts_with('/')
            && !target.split('/').any(|part| part == "..")
            && target.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
        if !safe || target == "/" {
            report(
                &path,
                format!(
                    "target `{target}` must be an absolute path of plain characters inside the image, without `..`"
                ),
            );
        }
        files.insert(target.clone(), local_file(loaded, file, &path, report));
    }
    let label_ok = (1..=16).contains(&bootstrap.label.len())
        && bootstrap.label.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !label_ok {
        report("source.bootstrap.label", "label must be 1-16 letters, digits, `.`, `_` or `-`".to_string());
    }
    Origin::Bootstrap(BootstrapSpec {
        tarball: bootstrap.tarball.clone(),
        sha256,
        script,
        finalize,
        files,
        label: bootstrap.label.clone(),
    })
}

fn local_file(loaded: &Loaded, reference: &str, path: &str, report: &mut dyn FnMut(&str, String)) -> PathBuf {
    let file = loaded.base_dir().join(reference);
    if let Some(problem) = source_problem(loaded.base_dir(), path, reference, &file) {
        report(path, problem);
    }
    file
}

/// Only http(s), and only characters that need no quoting in the helper's shell script.
fn check_url(url: &str, path: &str, report: &mut dyn FnMut(&str, String)) {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let plain = url.chars().all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!&()*+,;=%".contains(c));
    if !scheme_ok || !plain || url.len() > 2048 {
        report(path, format!("`{url}` must be an http:// or https:// URL of at most 2048 plain characters"));
    }
}

fn format_from_suffix(url: &str) -> Option<ImageFormat> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    [
        (".raw.xz", ImageFormat::RawXz),
        (".img.xz", ImageFormat::RawXz),
        (".raw.zst", ImageFormat::RawZst),
        (".img.zst", ImageFormat::RawZst),
        (".qcow2", ImageFormat::Qcow2),
        (".raw", ImageFormat::Raw),
        (".img", ImageFormat::Raw),
    ]
    .into_iter()
    .find(|(suffix, _)| path.ends_with(suffix))
    .map(|(_, format)| format)
}

/// The helper settings, present exactly when the build method is `helper`.
fn check_helper(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Option<HelperSpec> {
    let build = &loaded.manifest.build;
    if build.method != BuildMethod::Helper {
        for (given, field) in [(build.network.is_some(), "build.network"), (build.helper.is_some(), "build.helper")] {
            if given {
                report(field, format!("{field} applies to `method: helper` only"));
            }
        }
        return None;
    }
    if build.volume_size.is_none() {
        report(
            "build.method",
            "helper builds need build.volume_size (GiB): the image is not seen before the helper runs".to_string(),
        );
    }
    let Some(helper) = &build.helper else {
        report("build.method", "method helper needs build.helper with at least `ami`".to_string());
        return None;
    };
    match &helper.ami {
        HelperAmi::Id(id) if !id.starts_with("ami-") => {
            report("build.helper.ami", format!("`{id}` is not an AMI id (ami-…); or give {{ owner, name }}"));
        }
        HelperAmi::Filter(filter) if filter.name.is_empty() || filter.owner.is_empty() => {
            report("build.helper.ami", "owner and name must not be empty".to_string());
        }
        _ => {}
    }
    if !is_instance_type(&helper.instance_type) {
        report(
            "build.helper.instance_type",
            format!("`{}` is not an instance type like t3.small", helper.instance_type),
        );
    }
    let timeout = match helper.timeout.as_deref().map(parse_minutes) {
        None => Duration::from_secs(60 * 60),
        Some(Ok(timeout)) => timeout,
        Some(Err(problem)) => {
            report("build.helper.timeout", problem);
            Duration::from_secs(60 * 60)
        }
    };
    let subnet = match &build.network {
        None | Some(raw::Network::Create(_)) => None,
        Some(raw::Network::Existing(existing)) => {
            if !existing.subnet.starts_with("subnet-") {
                report("build.network.subnet", format!("`{}` is not a subnet id (subnet-…)", existing.subnet));
            }
            Some(existing.subnet.clone())
        }
    };
    if loaded.manifest.variants.encrypted.as_ref().is_some_and(|e| e.len() > 1) {
        report(
            "variants.encrypted",
            "a helper build writes one volume: list one value in variants.encrypted".to_string(),
        );
    }
    Some(HelperSpec {
        ami: helper.ami.clone(),
        instance_type: helper.instance_type.clone(),
        volume_type: helper.volume_type.unwrap_or(VolumeType::Gp3),
        spot: helper.spot,
        timeout,
        subnet,
    })
}

/// `90s`, `45m`, `2h`: between one minute and 24 hours.
fn parse_minutes(text: &str) -> Result<Duration, String> {
    let problem = || format!("timeout `{text}` must be a number with s, m or h, between 1m and 24h");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let value: u64 = number.parse().map_err(|_| problem())?;
    let seconds = match unit {
        "s" => value,
        "m" => value.saturating_mul(60),
        "h" => value.saturating_mul(3600),
        _ => return Err(problem()),
    };
    if !(60..=24 * 3600).contains(&seconds) {
        return Err(problem());
    }
    Ok(Duration::from_secs(seconds))
}

/// A manifest may only name files inside its own directory: one arriving in a pull request must
/// not be able to upload an arbitrary file of the machine it runs on (say `/etc/shadow`) into a
/// snapshot. Symbolic links are resolved before the check.
fn source_problem(base: &Path, field: &str, reference: &str, source: &Path) -> Option<String> {
    let relative = Path::new(reference);
    let escapes = relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if reference.is_empty() || escapes {
        return Some(format!(
            "{field} `{reference}` must be a relative path inside the manifest's directory (no `..`, not absolute)"
        ));
    }
    if !source.is_file() {
        let what = if field == "source.file" { "source file" } else { field };
        return Some(format!("{what} `{}` does not exist or is not a file", source.display()));
    }
    let base = base.canonicalize().ok()?;
    match source.canonicalize() {
        Ok(real) if real.starts_with(&base) => None,
        Ok(real) => {
            Some(format!("{field} `{reference}` leads outside the manifest's directory (to {})", real.display()))
        }
        Err(error) => Some(format!("{field} `{reference}` cannot be resolved: {error}")),
    }
}

fn check_region(region: &str, path: &str, report: &mut impl FnMut(&str, String)) {
    if !KNOWN_REGIONS.contains(&region) {
        report(path, format!("unknown region `{region}`"));
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
    if image.tpm && !matches!(image.boot_mode, Some(BootMode::Uefi | BootMode::UefiPreferred)) {
        report("image.tpm", "tpm needs boot_mode uefi or uefi-preferred".to_string());
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

/// What is wrong with the placeholders of a name template, if anything.
fn placeholder_problem(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Some(format!("placeholder `{{{after}` in name is never closed with `}}`"));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Some(format!("unknown placeholder `{{{name}}}` in name; known: {}", PLACEHOLDERS.join(", ")));
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
