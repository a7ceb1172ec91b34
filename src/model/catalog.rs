//! Checks of the catalogue: channels, and the Parameter Store names every AMI gets.

use std::collections::BTreeMap;

use super::{BadPlaceholder, PLACEHOLDERS, Variant, bad_placeholder, is_valid_version};
use crate::cloud::{ImageAttrs, LiveResource};
use crate::manifest::Loaded;
use crate::tags;

/// The catalogue of a stack, checked: every name it expands to is one Parameter Store takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSpec {
    /// Channel → the version it points at.
    pub channels: BTreeMap<String, String>,
    pub prefix: String,
    /// Full name templates (prefix included) of each version's parameters.
    pub version_templates: Vec<String>,
    /// Full name templates of each channel's parameters.
    pub channel_templates: Vec<String>,
    /// Take over parameters of these names that amiplan does not own.
    pub overwrite: bool,
    /// Where the catalogue files are published, if anywhere.
    pub s3: Option<S3Target>,
}

/// A bucket prefix the stack's catalogue files are published under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    pub region: String,
}

impl CatalogSpec {
    /// Every parameter name of `version` and of each channel, for `variants`.
    pub fn names(&self, stack: &str, version: &str, variants: &[Variant]) -> Vec<String> {
        let mut names = Vec::new();
        for variant in variants.iter().map(|v| VariantKey::of(&v.attrs)) {
            for template in &self.version_templates {
                names.push(variant.render(template, stack, version, None));
            }
            for (channel, target) in &self.channels {
                for template in &self.channel_templates {
                    names.push(variant.render(template, stack, target, Some(channel)));
                }
            }
        }
        names
    }
}

/// Parameter Store's limits (Systems Manager user guide, "Parameter Store quotas" and
/// "Creating Systems Manager parameters"): names of letters, digits and `_.-/`, at most 15
/// levels, at most 1011 characters, nothing under `/aws` or `/ssm`.
const MAX_NAME: usize = 1011;
const MAX_LEVELS: usize = 15;

/// Bucket names as S3 allows them for new buckets (virtual-host style, so no upper case or
/// `_`); prefixes of plain characters that need no quoting in a URL.
pub(super) fn check_s3(
    field: &str,
    s3: &crate::manifest::raw::S3,
    build_region: &str,
    report: &mut impl FnMut(&str, String),
) -> Option<S3Target> {
    let bucket = &s3.bucket;
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edges(bucket.chars().next())
        && edges(bucket.chars().last())
        && !bucket.contains("..")
        && !bucket.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    let mut ok = true;
    if !bucket_ok {
        report(
            &format!("{field}.bucket"),
            format!("`{bucket}` is not an S3 bucket name (3-63 lower-case letters, digits, `.` and `-`)"),
        );
        ok = false;
    }
    let mut prefix = s3.prefix.clone().unwrap_or_default();
    let prefix_ok = prefix.len() <= 512
        && !prefix.starts_with('/')
        && !prefix.contains("//")
        && !prefix.split('/').any(|part| part == "." || part == "..")
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "/!-_.*'()".contains(c));
    if !prefix_ok {
        report(
            &format!("{field}.prefix"),
            format!(
                "`{prefix}` must be a relative key prefix of letters, digits and `/!-_.*'()`, without `.`, `..` or empty parts"
            ),
        );
        ok = false;
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let region = s3.region.clone().unwrap_or_else(|| build_region.to_string());
    if !super::KNOWN_REGIONS.contains(&region.as_str()) {
        report(&format!("{field}.region"), format!("unknown region `{region}`"));
        ok = false;
    }
    ok.then(|| S3Target { bucket: bucket.clone(), prefix, region })
}

pub(super) fn check_catalog(
    loaded: &Loaded,
    variants: &[Variant],
    report: &mut impl FnMut(&str, String),
) -> Option<CatalogSpec> {
    let m = &loaded.manifest;
    let catalog = m.catalog.as_ref()?;
    let Some(version) = m.version.as_deref() else {
        report("catalog", "a catalogue needs a top-level `version`: it names AMIs by version".to_string());
        return None;
    };
    let mut channels_ok = true;
    for (channel, target) in &catalog.channels {
        let path = format!("catalog.channels.{channel}");
        if !is_valid_version(channel) {
            report(&path, format!("channel name `{channel}` must be 1-64 letters, digits, `.`, `_` or `-`"));
            channels_ok = false;
        }
        if !is_valid_version(target) {
            report(&path, format!("version `{target}` must be 1-64 letters, digits, `.`, `_` or `-`"));
            channels_ok = false;
        }
    }
    if !channels_ok {
        // Every name a bad channel would give is bad too: said once, above.
        return None;
    }
    let ssm = catalog.ssm.clone().unwrap_or_default();
    let prefix = ssm.prefix.clone().unwrap_or_else(|| format!("/amiplan/{}", m.stack));
    if let Some(problem) = prefix_problem(&prefix) {
        report("catalog.ssm.prefix", problem);
        return None;
    }
    let (templates, at): (Vec<String>, Vec<String>) = match &ssm.parameters {
        Some(list) => {
            if list.is_empty() {
                report("catalog.ssm.parameters", "list at least one name template, or leave it out".to_string());
            }
            (list.clone(), (0..list.len()).map(|i| format!("catalog.ssm.parameters[{i}]")).collect())
        }
        None => {
            let defaults = default_templates(variants, !catalog.channels.is_empty());
            let at = vec!["catalog".to_string(); defaults.len()];
            (defaults, at)
        }
    };
    let mut spec = CatalogSpec {
        channels: catalog.channels.clone(),
        prefix: prefix.clone(),
        version_templates: vec![],
        channel_templates: vec![],
        overwrite: ssm.overwrite,
        s3: catalog.s3.as_ref().and_then(|s3| check_s3("catalog.s3", s3, &m.build.region, report)),
    };
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (template, path) in templates.iter().zip(&at) {
        if let Some(problem) = template_problem(template, !catalog.channels.is_empty()) {
            report(path, problem);
            continue;
        }
        let full = format!("{prefix}/{template}");
        let channels: Vec<Option<&str>> = if template.contains("{channel}") {
            spec.channel_templates.push(full.clone());
            catalog.channels.keys().map(|c| Some(c.as_str())).collect()
        } else {
            spec.version_templates.push(full.clone());
            vec![None]
        };
        for variant in variants {
            let key = VariantKey::of(&variant.attrs);
            for channel in &channels {
                let name = key.render(&full, &m.stack, version, *channel);
                if let Some(problem) = name_problem(&name) {
                    report(path, format!("parameter name `{name}` {problem}"));
                }
                *names.entry(name).or_default() += 1;
            }
        }
    }
    for (name, count) in names {
        if count > 1 {
            report(
                "catalog",
                format!(
                    "{count} parameters would be named `{name}`; add placeholders (e.g. {{volume_type}}) so that every variant, version and channel has its own"
                ),
            );
        }
    }
    Some(spec)
}

/// One level per variant axis with more than one value, so that each variant has its own name.
fn default_templates(variants: &[Variant], channels: bool) -> Vec<String> {
    let keys: Vec<VariantKey> = variants.iter().map(|v| VariantKey::of(&v.attrs)).collect();
    let varies = |axis: fn(&VariantKey) -> String| {
        let mut values: Vec<String> = keys.iter().map(axis).collect();
        values.sort();
        values.dedup();
        values.len() > 1
    };
    let mut levels = vec!["{arch}"];
    if varies(|k| k.virtualization.clone()) {
        levels.push("{virtualization}");
    }
    if varies(|k| k.volume_type.clone()) {
        levels.push("{volume_type}");
    }
    if varies(|k| k.encrypted.to_string()) {
        levels.push("{encryption}");
    }
    let suffix = format!("{}/image_id", levels.join("/"));
    let mut templates = vec![format!("{{version}}/{suffix}")];
    if channels {
        templates.push(format!("{{channel}}/{suffix}"));
    }
    templates
}

fn prefix_problem(prefix: &str) -> Option<String> {
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') || prefix.contains("//") {
        return Some(format!(
            "prefix `{prefix}` must be a path like /acme/fedora-cloud (leading `/`, no trailing `/`)"
        ));
    }
    let first = prefix[1..].split('/').next().unwrap_or_default().to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Some(format!("prefix `{prefix}`: names under /aws and /ssm are reserved by AWS"));
    }
    name_problem(prefix).map(|problem| format!("prefix `{prefix}` {problem}"))
}

fn template_problem(template: &str, has_channels: bool) -> Option<String> {
    if template.starts_with('/') || template.ends_with('/') || template.contains("//") || template.is_empty() {
        return Some(format!(
            "`{template}` must be a relative path under the prefix, like {{version}}/{{arch}}/image_id"
        ));
    }
    match bad_placeholder(template, &["channel"]) {
        Some(BadPlaceholder::Unclosed(rest)) => {
            return Some(format!("placeholder `{{{rest}` is never closed with `}}`"));
        }
        Some(BadPlaceholder::Unknown(name)) => {
            return Some(format!("unknown placeholder `{{{name}}}`; known: {}, channel", PLACEHOLDERS.join(", ")));
        }
        None => {}
    }
    match (template.contains("{version}"), template.contains("{channel}")) {
        (true, true) => Some(format!(
            "`{template}` has both {{version}} and {{channel}}: a parameter names either a version's AMI or a channel's"
        )),
        (false, false) => Some(format!(
            "`{template}` needs {{version}} or {{channel}}: every version and channel gets its own parameter"
        )),
        (false, true) if !has_channels => {
            Some(format!("`{template}` uses {{channel}}, but catalog.channels declares none"))
        }
        _ => None,
    }
}

fn name_problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_NAME {
        return Some("is longer than Parameter Store's 1011 characters");
    }
    if name.matches('/').count() > MAX_LEVELS {
        return Some("has more than Parameter Store's 15 levels");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
        return Some("may hold only letters, digits, `_`, `.`, `-` and `/`");
    }
    None
}

/// What tells the AMIs of one version apart, and an AMI of one version from the same variant's
/// AMI of another: the variant axes, as their names appear in templates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VariantKey {
    pub architecture: String,
    pub virtualization: String,
    pub volume_type: String,
    pub encrypted: bool,
    /// Empty when the AMI has no boot mode of its own.
    pub boot_mode: String,
}

impl VariantKey {
    pub fn of(attrs: &ImageAttrs) -> VariantKey {
        VariantKey {
            architecture: attrs.architecture.as_str().to_string(),
            virtualization: attrs.virtualization.as_str().to_string(),
            volume_type: attrs.volume_type.as_str().to_string(),
            encrypted: attrs.encrypted,
            boot_mode: attrs.boot_mode.map(|m| m.as_str().to_string()).unwrap_or_default(),
        }
    }

    /// The variant of a live AMI amiplan made, from the attributes it tagged it with.
    pub fn of_live(live: &LiveResource) -> Option<VariantKey> {
        let attrs = tags::decode_spec(live.tags.get(tags::ATTRS)?);
        Some(VariantKey {
            architecture: attrs.get("architecture")?.clone(),
            virtualization: attrs.get("virtualization")?.clone(),
            volume_type: attrs.get("volume_type")?.clone(),
            encrypted: attrs.get("encrypted")? == "true",
            boot_mode: attrs.get("boot_mode").cloned().unwrap_or_default(),
        })
    }

    /// `template` with the variant's placeholders filled in, and the others given.
    pub fn render(&self, template: &str, stack: &str, version: &str, channel: Option<&str>) -> String {
        let boot_mode = if self.boot_mode.is_empty() { "default" } else { &self.boot_mode };
        template
            .replace("{stack}", stack)
            .replace("{version}", version)
            .replace("{channel}", channel.unwrap_or_default())
            .replace("{arch}", &self.architecture)
            .replace("{virtualization}", &self.virtualization)
            .replace("{volume_type}", &self.volume_type)
            .replace("{encryption}", if self.encrypted { "encrypted" } else { "unencrypted" })
            .replace("{boot_mode}", boot_mode)
    }

    /// `x86_64 hvm gp3 unencrypted`, for plans and descriptions.
    pub fn describe(&self) -> String {
        let encryption = if self.encrypted { "encrypted" } else { "unencrypted" };
        format!("{} {} {} {encryption}", self.architecture, self.virtualization, self.volume_type)
    }
}
