//! Checks of what happens after an AMI exists: sharing, the boot test, versions and retention.

use std::collections::BTreeSet;
use std::time::Duration;

use super::sources::local_file;
use super::{TestSpec, is_instance_type, parse_minutes};
use crate::cloud::Sharing;
use crate::manifest::Loaded;
use crate::manifest::raw::{self, Architecture};

/// A version must be usable in names and tags, and keeping versions needs a version in the name.
pub(super) fn check_retention(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Option<u32> {
    let m = &loaded.manifest;
    if let Some(version) = &m.version {
        if !super::is_valid_version(version) {
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

pub(super) fn check_test(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Option<TestSpec> {
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
    if let Some(reports) = &test.reports
        && !super::sources::is_plain_absolute_path(reports)
    {
        report(
            "test.reports",
            format!(
                "`{reports}` must be an absolute directory of plain characters in the instance, not `/`, without `..`"
            ),
        );
    }
    if test.reports_bucket.is_some() && test.reports.is_none() {
        report("test.reports_bucket", "a reports bucket needs test.reports, the directory to collect".to_string());
    }
    let reports_bucket = test
        .reports_bucket
        .as_ref()
        .and_then(|s3| super::catalog::check_s3("test.reports_bucket", s3, &loaded.manifest.build.region, report));
    Some(TestSpec {
        script,
        instance_type,
        timeout,
        all_regions: test.regions == raw::TestRegions::All,
        subnet: test.subnet.clone(),
        reports: test.reports.clone(),
        reports_bucket,
    })
}

/// Launch permissions: well-formed IDs and ARNs, each once.
pub(super) fn check_sharing(loaded: &Loaded, report: &mut impl FnMut(&str, String)) -> Sharing {
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
