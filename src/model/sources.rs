//! Checks of where the image comes from and how it is built: local files confined to the
//! manifest's directory, URLs the helper may fetch, bootstrap scripts, helper settings.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::{BootstrapSpec, DiskLayout, HelperSpec, Origin, is_instance_type, parse_minutes};
use crate::manifest::raw::{self, BuildMethod, HelperAmi, ImageFormat, VolumeType};
use crate::manifest::{Loaded, LocalFiles};

/// Exactly one of `file`, `url` and `bootstrap`, matching the build method.
pub(super) fn check_source(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Origin {
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
    let tarball = bootstrap.tarball.clone().unwrap_or_else(|| {
        report("source.bootstrap", "bootstrap needs `tarball` (or source.upstream to find it)".to_string());
        String::new()
    });
    if !tarball.is_empty() {
        check_url(&tarball, "source.bootstrap.tarball", report);
    }
    let sha256 = match &bootstrap.sha256 {
        Some(given) => digest(given, "source.bootstrap.sha256", report),
        None => {
            report(
                "source.bootstrap",
                "bootstrap needs `sha256` of the tarball (or source.upstream to find it)".to_string(),
            );
            String::new()
        }
    };
    let script = local_file(loaded, &bootstrap.script, "source.bootstrap.script", report);
    let finalize = bootstrap.finalize.as_ref().map(|f| local_file(loaded, f, "source.bootstrap.finalize", report));
    let mut files = BTreeMap::new();
    for (target, file) in &bootstrap.files {
        let path = format!("source.bootstrap.files.{target}");
        if !is_plain_absolute_path(target) {
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
    // The layout follows from the variants, which are checked later (`disk_layout`).
    let layout = DiskLayout::WholeDisk;
    Origin::Bootstrap(BootstrapSpec {
        tarball,
        sha256,
        script,
        finalize,
        files,
        label: bootstrap.label.clone(),
        layout,
    })
}

/// An absolute path inside an image or instance, other than `/`, of plain characters and without
/// `..`: safe to put in a generated script.
pub(super) fn is_plain_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && path != "/"
        && !path.split('/').any(|part| part == "..")
        && path.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
}

pub(super) fn local_file(
    loaded: &Loaded,
    reference: &str,
    path: &str,
    report: &mut dyn FnMut(&str, String),
) -> PathBuf {
    let file = loaded.base_dir().join(reference);
    if let Some(problem) = source_problem(loaded.base_dir(), path, reference, &file, loaded.local_files) {
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
pub(super) fn check_helper(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Option<HelperSpec> {
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
    Some(HelperSpec {
        ami: helper.ami.clone(),
        instance_type: helper.instance_type.clone(),
        volume_type: helper.volume_type.unwrap_or(VolumeType::Gp3),
        spot: helper.spot,
        timeout,
        subnet,
    })
}

/// A manifest may only name files inside its own directory: one arriving in a pull request must
/// not be able to upload an arbitrary file of the machine it runs on (say `/etc/shadow`) into a
/// snapshot. Symbolic links are resolved before the check.
fn source_problem(base: &Path, field: &str, reference: &str, source: &Path, files: LocalFiles) -> Option<String> {
    let relative = Path::new(reference);
    let escapes = relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if reference.is_empty() || escapes {
        return Some(format!(
            "{field} `{reference}` must be a relative path inside the manifest's directory (no `..`, not absolute)"
        ));
    }
    if files == LocalFiles::Unused && !source.exists() {
        return None;
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
