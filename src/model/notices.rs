//! What a valid manifest implies that its author may not expect, and values that are still an
//! example's placeholders: said by `validate` and in every plan, never refused.

use crate::manifest::{Diagnostic, Loaded};

/// Hosts reserved for documentation (RFC 2606, RFC 6761): a URL on one never resolves.
const RESERVED_DOMAINS: [&str; 3] = ["example.com", "example.org", "example.net"];
const RESERVED_SUFFIXES: [&str; 3] = [".example", ".invalid", ".test"];

/// The run of hex digits AWS's documentation writes its example IDs with
/// (`subnet-0123456789abcdef0`); amiplan's examples write placeholder digests with it too.
const EXAMPLE_DIGITS: &str = "0123456789abcdef";

/// Notices about one manifest, at the place they concern.
pub fn notices(loaded: &Loaded) -> Vec<Diagnostic> {
    let m = &loaded.manifest;
    let mut found = Vec::new();
    let build = &m.build.region;
    if m.regions.is_empty() {
        found.push(
            loaded.at(
                "regions",
                format!("`regions` is empty: the AMIs are made and kept in the build region {build} only"),
            ),
        );
    } else if !m.regions.contains(build) && m.build.keep_image {
        found.push(loaded.at(
            "regions",
            format!(
                "`regions` does not list the build region {build}: the AMIs are made there all the same, as the source of the copies, and kept with them (amiplan owns, shares and deprecates them like the copies); add {build} to `regions` to say so, or set `build.keep_image: false` to remove them once the copies exist"
            ),
        ));
    }
    let value = serde_json::to_value(m).expect("a manifest serializes");
    walk(&value, String::new(), &mut |path, text| {
        if let Some(why) = placeholder(text) {
            found.push(loaded.at(path, format!("`{text}` is a placeholder ({why}): put in your own before you apply")));
        }
    });
    found
}

/// Calls `visit` with the path (as the position index writes it) and text of every string.
fn walk(value: &serde_json::Value, path: String, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        serde_json::Value::String(text) => visit(&path, text),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), visit);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                walk(item, path, visit);
            }
        }
        _ => {}
    }
}

/// Why `text` is a placeholder, if it is one.
fn placeholder(text: &str) -> Option<&'static str> {
    if text.to_ascii_lowercase().contains(EXAMPLE_DIGITS) {
        return Some("the example digits of AWS's documentation");
    }
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"))?;
    let host = rest.split(['/', ':', '?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    let reserved = RESERVED_DOMAINS.iter().any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || RESERVED_SUFFIXES.iter().any(|s| host.ends_with(s));
    reserved.then_some("a host reserved for documentation, which never resolves")
}

#[cfg(test)]
mod tests {
    use super::placeholder;

    #[test]
    fn placeholders_are_the_documentation_kinds_only() {
        assert!(placeholder("subnet-0123456789abcdef0").is_some());
        assert!(placeholder("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef").is_some());
        assert!(placeholder("https://images.example.org/debian.tar").is_some());
        assert!(placeholder("http://example.com:8080/x").is_some());
        assert!(placeholder("https://mirror.lab.test/x").is_some());
        assert!(placeholder("https://download.fedoraproject.org/pub/x.raw.xz").is_none());
        assert!(placeholder("subnet-0a1b2c3d4e5f60718").is_none());
        assert!(placeholder("https://example.community/x").is_none(), "only the reserved names");
        assert!(placeholder("images/sample.raw").is_none());
    }
}
