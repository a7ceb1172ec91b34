//! The tag scheme: how amiplan marks what it owns, so that live AWS can be its only state.

use std::collections::BTreeMap;

pub use crate::cloud::tags::*;

/// Tag keys amiplan manages itself; users cannot set them and drift correction never removes them
/// from the desired set.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with("amiplan:") || key.starts_with("aws:")
}

/// `key=value;…` of the spec without the long source digest, or `None` if it exceeds AWS's 256
/// character limit for tag values (the plan then falls back to comparing hashes).
pub fn encode_spec(spec: &BTreeMap<String, String>) -> Option<String> {
    let text = spec
        .iter()
        .filter(|(key, _)| key.as_str() != "source_sha256")
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(";");
    (text.len() <= 256).then_some(text)
}

pub fn decode_spec(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}
