//! What differs between a node and its live resource, attribute by attribute.

use serde::{Deserialize, Serialize};

/// One attribute that differs between live and desired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrDiff {
    pub attribute: Attribute,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What a diff is about. Plans name it as text (`description`, `tags.team`, `boot_mode`), the
/// saved-plan and JSON format; the executor matches the variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Attribute {
    Description,
    /// Who may launch the AMI.
    LaunchPermission,
    /// Who may create volumes from the AMI's snapshots.
    CreateVolumePermission,
    Deprecation,
    /// Deregistration protection.
    Protection,
    /// A parameter's value.
    Value,
    /// One catalogue file, by its path under the prefix (its entity tag is the value).
    File(String),
    /// A tag, by key.
    Tag(String),
    /// An attribute AWS fixes at creation, by its name in the spec (`boot_mode`).
    Immutable(String),
}

impl std::fmt::Display for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attribute::Description => f.write_str("description"),
            Attribute::LaunchPermission => f.write_str("launch_permission"),
            Attribute::CreateVolumePermission => f.write_str("create_volume_permission"),
            Attribute::Deprecation => f.write_str("deprecation"),
            Attribute::Protection => f.write_str("deregistration_protection"),
            Attribute::Value => f.write_str("value"),
            Attribute::Tag(key) => write!(f, "tags.{key}"),
            Attribute::File(path) => write!(f, "files.{path}"),
            Attribute::Immutable(name) => f.write_str(name),
        }
    }
}

impl From<Attribute> for String {
    fn from(attribute: Attribute) -> String {
        attribute.to_string()
    }
}

impl From<String> for Attribute {
    fn from(text: String) -> Attribute {
        match text.as_str() {
            "description" => Attribute::Description,
            "launch_permission" => Attribute::LaunchPermission,
            "create_volume_permission" => Attribute::CreateVolumePermission,
            "deprecation" => Attribute::Deprecation,
            "deregistration_protection" => Attribute::Protection,
            "value" => Attribute::Value,
            _ => match (text.strip_prefix("tags."), text.strip_prefix("files.")) {
                (Some(key), _) => Attribute::Tag(key.to_string()),
                (None, Some(path)) => Attribute::File(path.to_string()),
                (None, None) => Attribute::Immutable(text),
            },
        }
    }
}

impl PartialEq<&str> for Attribute {
    fn eq(&self, text: &&str) -> bool {
        *self == Attribute::from(text.to_string())
    }
}
