//! The distribution side: which AMI for this region, architecture, variant and channel. A
//! [`Catalogue`] is built from live state (pure: the desired graph says which stacks and channel
//! parameters to look at, the observed state what exists) and serves the catalogue files,
//! `resolve` and `serve`.

pub mod files;
pub mod resolve;
pub mod serve;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cloud::{LiveResource, ResourceKind, State};
use crate::graph::DesiredGraph;
use crate::resource::Spec;
use crate::resource::parameter::VariantKey;
use crate::tags;

/// One AMI users may launch: available, and past its boot test where the stack has one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub stack: String,
    pub region: String,
    pub version: String,
    pub arch: String,
    pub virtualization: String,
    pub volume_type: String,
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<String>,
    pub image_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When AWS deprecates (or deprecated) it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<String>,
    pub public: bool,
    /// The channels whose parameters name it in its region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

impl Entry {
    /// The value of a variant axis by the name users give it (`volume_type=gp3`).
    pub fn axis(&self, key: &str) -> Option<String> {
        Some(match key {
            "arch" | "architecture" => self.arch.clone(),
            "virtualization" => self.virtualization.clone(),
            "volume_type" => self.volume_type.clone(),
            "encryption" => if self.encrypted { "encrypted" } else { "unencrypted" }.to_string(),
            "encrypted" => self.encrypted.to_string(),
            "boot_mode" => self.boot_mode.clone().unwrap_or_else(|| "default".to_string()),
            _ => return None,
        })
    }

    /// `x86_64 hvm gp3 unencrypted`.
    pub fn variant(&self) -> String {
        let encryption = if self.encrypted { "encrypted" } else { "unencrypted" };
        format!("{} {} {} {encryption}", self.arch, self.virtualization, self.volume_type)
    }

    /// Whether AWS has deprecated it by `now` (seconds since the epoch).
    pub fn deprecated_at(&self, now: i64) -> bool {
        let at = self.deprecation.as_deref().and_then(|d| d.parse::<jiff::Timestamp>().ok());
        at.is_some_and(|at| at.as_second() <= now)
    }
}

/// The variant axes users filter on.
pub const AXES: &[&str] = &["virtualization", "volume_type", "encryption", "encrypted", "boot_mode"];

/// Every AMI of a set of stacks users may launch, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    pub entries: Vec<Entry>,
}

impl Catalogue {
    /// The catalogue of the stacks of `graph` as `resources` (one observation) show it.
    pub fn from_live(graph: &DesiredGraph, resources: &[LiveResource]) -> Catalogue {
        let stacks: BTreeSet<&str> = graph.nodes().map(|n| n.stack.as_str()).collect();
        let gated: BTreeSet<(&str, &str)> =
            graph.nodes().filter(|n| n.gated).map(|n| (n.stack.as_str(), n.region.as_str())).collect();
        let values: BTreeMap<(&str, &str), &str> = resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Parameter)
            .filter_map(|r| Some(((r.region.as_str(), r.id.as_str()), r.value.as_deref()?)))
            .collect();
        // (region, AMI) → the channels whose parameters name it.
        let mut channels: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
        for node in graph.nodes() {
            if let Spec::Parameter(parameter) = &node.spec
                && let Some(channel) = &parameter.channel
                && let Some(ami) = values.get(&(node.region.as_str(), parameter.name.as_str()))
            {
                channels.entry((node.region.as_str(), ami)).or_default().insert(channel);
            }
        }
        let mut entries: Vec<Entry> = resources
            .iter()
            .filter(|r| r.kind == ResourceKind::Image && r.state == State::Ready)
            .filter_map(|image| {
                let stack = image.stack().filter(|s| stacks.contains(s))?;
                // The copies' source of a stack that does not keep it is never published.
                if graph.seed_region(stack) == Some(image.region.as_str()) {
                    return None;
                }
                if gated.contains(&(stack, image.region.as_str())) && !image.tags.contains_key(tags::TESTED) {
                    return None;
                }
                let variant = VariantKey::of_live(image)?;
                let version = image.tags.get(tags::VERSION).cloned().unwrap_or_else(|| unversioned(image));
                let named = channels.get(&(image.region.as_str(), image.id.as_str()));
                Some(Entry {
                    stack: stack.to_string(),
                    region: image.region.clone(),
                    version,
                    arch: variant.architecture,
                    virtualization: variant.virtualization,
                    volume_type: variant.volume_type,
                    encrypted: variant.encrypted,
                    boot_mode: Some(variant.boot_mode).filter(|m| !m.is_empty()),
                    image_id: image.id.clone(),
                    name: image.name.clone().unwrap_or_default(),
                    created: image.created.clone(),
                    deprecation: image.deprecation.clone(),
                    public: image.public,
                    channels: named.map(|c| c.iter().map(|c| c.to_string()).collect()).unwrap_or_default(),
                })
            })
            .collect();
        entries.sort();
        Catalogue { entries }
    }

    /// The newest creation time of any entry: the catalogue's own time, so that the same live
    /// state gives the same files.
    pub fn updated(&self) -> Option<&str> {
        self.entries.iter().filter_map(|e| e.created.as_deref()).max()
    }
}

/// A stack without versions: its AMIs are told apart by their creation time, `YYYYMMDDhhmmss`.
fn unversioned(image: &LiveResource) -> String {
    let created = image.created.as_deref().unwrap_or_default();
    created.chars().filter(char::is_ascii_digit).take(14).collect()
}
