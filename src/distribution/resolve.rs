//! Resolving a request (region, architecture, variant, channel or version) to one AMI.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{AXES, Catalogue, Entry};

/// What a user asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub stack: Option<String>,
    pub region: String,
    pub arch: String,
    /// Variant axis → value (`volume_type` → `gp3`).
    pub variant: BTreeMap<String, String>,
    pub channel: Option<String>,
    pub version: Option<String>,
}

/// Why a query is not one AMI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("unknown variant key `{0}`; known: {known}", known = AXES.join(", "))]
    UnknownAxis(String),
    #[error("--channel and --version cannot both be given: a channel names a version")]
    ChannelAndVersion,
    #[error("no AMI matches {0}")]
    NoMatch(String),
    #[error("{} AMIs match {what}; narrow it down:\n{}", candidates.len(), list(candidates))]
    Ambiguous { what: String, candidates: Vec<Entry> },
}

fn list(candidates: &[Entry]) -> String {
    candidates
        .iter()
        .map(|e| format!("  {} {} {} {} ({})", e.image_id, e.stack, e.version, e.variant(), e.name))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The answer to a query, as `resolve --json` prints it and `serve` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub image_id: String,
    pub name: String,
    pub stack: String,
    pub version: String,
    pub region: String,
    pub arch: String,
    pub virtualization: String,
    pub volume_type: String,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<String>,
    pub deprecated: bool,
}

impl Query {
    fn describe(&self) -> String {
        let mut parts = vec![format!("region {}", self.region), format!("arch {}", self.arch)];
        parts.extend(self.stack.iter().map(|s| format!("stack {s}")));
        parts.extend(self.variant.iter().map(|(k, v)| format!("{k}={v}")));
        parts.extend(self.channel.iter().map(|c| format!("channel {c}")));
        parts.extend(self.version.iter().map(|v| format!("version {v}")));
        parts.join(", ")
    }
}

impl Catalogue {
    /// The one AMI `query` names. Without a channel or version, the newest version wins.
    /// `now` (seconds since the epoch) says which AMIs are deprecated.
    pub fn resolve(&self, query: &Query, now: i64) -> Result<Resolved, Unresolved> {
        resolve_among(&self.entries, query, now)
    }
}

/// [`Catalogue::resolve`] among some entries (those of one region and architecture, say).
pub fn resolve_among<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    query: &Query,
    now: i64,
) -> Result<Resolved, Unresolved> {
    if query.channel.is_some() && query.version.is_some() {
        return Err(Unresolved::ChannelAndVersion);
    }
    if let Some(key) = query.variant.keys().find(|k| !AXES.contains(&k.as_str())) {
        return Err(Unresolved::UnknownAxis(key.clone()));
    }
    let mut found: Vec<&Entry> = entries
        .into_iter()
        .filter(|e| e.region == query.region && e.arch == query.arch)
        .filter(|e| query.stack.as_ref().is_none_or(|s| *s == e.stack))
        .filter(|e| query.variant.iter().all(|(k, v)| e.axis(k).as_deref() == Some(v.as_str())))
        .filter(|e| query.channel.as_ref().is_none_or(|c| e.channels.contains(c)))
        .filter(|e| query.version.as_ref().is_none_or(|v| *v == e.version))
        .collect();
    if query.channel.is_none() && query.version.is_none() {
        // The newest version of each stack and variant: its latest.
        let mut newest: BTreeMap<(&str, String), Option<&str>> = BTreeMap::new();
        for entry in &found {
            let slot = newest.entry((entry.stack.as_str(), entry.variant())).or_default();
            *slot = (*slot).max(entry.created.as_deref());
        }
        found.retain(|e| newest[&(e.stack.as_str(), e.variant())] == e.created.as_deref());
    }
    match found.as_slice() {
        [] => Err(Unresolved::NoMatch(query.describe())),
        [one] => Ok(Resolved {
            image_id: one.image_id.clone(),
            name: one.name.clone(),
            stack: one.stack.clone(),
            version: one.version.clone(),
            region: one.region.clone(),
            arch: one.arch.clone(),
            virtualization: one.virtualization.clone(),
            volume_type: one.volume_type.clone(),
            encrypted: one.encrypted,
            channel: query.channel.clone(),
            deprecation: one.deprecation.clone(),
            deprecated: one.deprecated_at(now),
        }),
        many => Err(Unresolved::Ambiguous {
            what: query.describe(),
            candidates: many.iter().map(|e| (*e).clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, volume_type: &str, created: &str, channels: &[&str]) -> Entry {
        Entry {
            stack: "cat".into(),
            region: "eu-west-1".into(),
            version: version.into(),
            arch: "x86_64".into(),
            virtualization: "hvm".into(),
            volume_type: volume_type.into(),
            encrypted: false,
            boot_mode: None,
            image_id: format!("ami-{version}-{volume_type}"),
            name: format!("cat-{version}-{volume_type}"),
            created: Some(created.into()),
            deprecation: (version == "1").then(|| "2026-01-01T00:00:00Z".to_string()),
            public: false,
            channels: channels.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn catalogue() -> Catalogue {
        Catalogue {
            entries: vec![
                entry("1", "gp3", "2026-01-01T00:00:00Z", &["stable"]),
                entry("1", "standard", "2026-01-01T00:00:00Z", &["stable"]),
                entry("2", "gp3", "2026-02-01T00:00:00Z", &["testing"]),
                entry("2", "standard", "2026-02-01T00:00:00Z", &["testing"]),
            ],
        }
    }

    fn query(variant: &[(&str, &str)]) -> Query {
        Query {
            region: "eu-west-1".into(),
            arch: "x86_64".into(),
            variant: variant.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Query::default()
        }
    }

    #[test]
    fn channels_versions_and_the_newest_resolve_to_one_ami() {
        let now = "2026-06-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap().as_second();
        let catalogue = catalogue();
        let gp3 = query(&[("volume_type", "gp3")]);
        let stable = catalogue.resolve(&Query { channel: Some("stable".into()), ..gp3.clone() }, now).unwrap();
        assert_eq!((stable.image_id.as_str(), stable.deprecated), ("ami-1-gp3", true));
        let latest = catalogue.resolve(&gp3, now).unwrap();
        assert_eq!((latest.image_id.as_str(), latest.deprecated), ("ami-2-gp3", false));
        let pinned =
            catalogue.resolve(&Query { version: Some("1".into()), ..query(&[("volume_type", "standard")]) }, now);
        assert_eq!(pinned.unwrap().image_id, "ami-1-standard");
    }

    #[test]
    fn nothing_ambiguous_or_unknown_is_an_error_that_says_so() {
        let catalogue = catalogue();
        let ambiguous = catalogue.resolve(&query(&[]), 0).unwrap_err();
        assert!(matches!(&ambiguous, Unresolved::Ambiguous { candidates, .. } if candidates.len() == 2));
        assert!(ambiguous.to_string().contains("ami-2-gp3") && ambiguous.to_string().contains("ami-2-standard"));
        let none = catalogue.resolve(&Query { channel: Some("edge".into()), ..query(&[]) }, 0).unwrap_err();
        assert_eq!(none.to_string(), "no AMI matches region eu-west-1, arch x86_64, channel edge");
        let unknown = catalogue.resolve(&query(&[("colour", "blue")]), 0).unwrap_err();
        assert!(matches!(unknown, Unresolved::UnknownAxis(_)));
    }
}
