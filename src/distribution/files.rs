//! The catalogue as static files, for mirrors, CDNs and the clients that already read them:
//!
//! - `streams/v1/index.json` and one products file per stack: simplestreams (`index:1.0`,
//!   `products:1.0`, `datatype: image-ids`), as Ubuntu publishes its AMIs for LXD, MAAS and Juju;
//! - `streams/<stack>/<channel>.json`: one stream document per channel, shaped like Fedora
//!   CoreOS's (`architectures.<arch>.images.aws.regions.<region>.{release, image}`);
//! - `versions/<stack>/<version>.json`: what each version is, written once and never again;
//! - `amis.json`: every AMI per region, which `resolve --from` reads.
//!
//! The same catalogue gives the same bytes: every time in them is the newest AMI's creation.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{Catalogue, Entry};

/// Format of `amis.json`.
pub const FLAT_FORMAT: &str = "amiplan-catalogue:1";

/// Where the simplestreams index is; written last.
pub const INDEX: &str = "streams/v1/index.json";

/// Every file of the catalogue, by path relative to the tree's root.
pub fn render(catalogue: &Catalogue) -> BTreeMap<String, Vec<u8>> {
    let updated = catalogue.updated();
    let mut files = BTreeMap::new();
    let mut stacks: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in &catalogue.entries {
        stacks.entry(entry.stack.as_str()).or_default().push(entry);
    }
    let mut index = serde_json::Map::new();
    for (stack, entries) in &stacks {
        let content_id = format!("amiplan:{stack}:aws");
        let path = format!("streams/v1/{content_id}.json");
        let products = products(entries);
        let names: Vec<&String> = products.keys().collect();
        index.insert(
            content_id.clone(),
            json!({
                "cloudname": "aws",
                "datatype": "image-ids",
                "format": "products:1.0",
                "path": path,
                "products": names,
                "updated": rfc2822(updated),
            }),
        );
        let document = json!({
            "content_id": content_id,
            "datatype": "image-ids",
            "format": "products:1.0",
            "products": products,
            "updated": rfc2822(updated),
        });
        files.insert(path, pretty(&document));
        for (channel, document) in channel_streams(stack, entries, updated) {
            files.insert(format!("streams/{stack}/{channel}.json"), pretty(&document));
        }
        let mut versions: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for entry in entries {
            versions.entry(entry.version.as_str()).or_default().push(json!({
                "region": entry.region,
                "image_id": entry.image_id,
                "name": entry.name,
                "arch": entry.arch,
                "virtualization": entry.virtualization,
                "volume_type": entry.volume_type,
                "encrypted": entry.encrypted,
            }));
        }
        for (version, amis) in versions {
            let document = json!({ "stack": stack, "version": version, "amis": amis });
            files.insert(format!("versions/{stack}/{version}.json"), pretty(&document));
        }
    }
    let mut regions: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in &catalogue.entries {
        regions.entry(entry.region.as_str()).or_default().push(entry);
    }
    let flat = json!({ "format": FLAT_FORMAT, "updated": rfc3339(updated), "regions": regions });
    files.insert("amis.json".to_string(), pretty(&flat));
    let index = json!({ "format": "index:1.0", "index": index, "updated": rfc2822(updated) });
    files.insert(INDEX.to_string(), pretty(&index));
    files
}

/// Products (`<stack>:<arch>`) → versions → items, one item per region and variant.
fn products(entries: &[&Entry]) -> BTreeMap<String, Value> {
    let mut products: BTreeMap<String, BTreeMap<&str, serde_json::Map<String, Value>>> = BTreeMap::new();
    for entry in entries {
        let product = format!("{}:{}", entry.stack, entry.arch);
        let encryption = if entry.encrypted { "encrypted" } else { "unencrypted" };
        let item = format!("{}:{}:{}:{encryption}", entry.region, entry.virtualization, entry.volume_type);
        let mut fields = json!({
            "id": entry.image_id,
            "name": entry.name,
            "crsn": entry.region,
            "endpoint": format!("https://ec2.{}.amazonaws.com", entry.region),
            "virt": entry.virtualization,
            "root_store": if entry.volume_type == "standard" { "ebs" } else { "ssd" },
            "volume_type": entry.volume_type,
            "encrypted": entry.encrypted,
        });
        if let Some(at) = &entry.deprecation {
            fields["deprecation"] = json!(at);
        }
        products.entry(product).or_default().entry(entry.version.as_str()).or_default().insert(item, fields);
    }
    products
        .into_iter()
        .map(|(product, versions)| {
            let (stack, arch) = product.split_once(':').unwrap_or_default();
            let versions: BTreeMap<&str, Value> =
                versions.into_iter().map(|(version, items)| (version, json!({ "items": items }))).collect();
            let value = json!({ "arch": arch, "os": stack, "release": stack, "versions": versions });
            (product, value)
        })
        .collect()
}

/// One stream document per channel: per architecture and region, the release and AMI of the
/// preferred variant (HVM, gp3, unencrypted first), and under `variants` those of every variant.
fn channel_streams(stack: &str, entries: &[&Entry], updated: Option<&str>) -> BTreeMap<String, Value> {
    let mut channels: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        for channel in &entry.channels {
            channels.entry(channel.as_str()).or_default().push(entry);
        }
    }
    channels
        .into_iter()
        .map(|(channel, entries)| {
            let mut architectures: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
            for entry in &entries {
                architectures.entry(entry.arch.as_str()).or_default().push(entry);
            }
            let architectures: BTreeMap<&str, Value> = architectures
                .into_iter()
                .map(|(arch, entries)| {
                    let preferred = entries.iter().min_by_key(|e| preference(e)).map(|e| slug(e));
                    let mut variants: BTreeMap<String, BTreeMap<&str, Value>> = BTreeMap::new();
                    for entry in &entries {
                        let release = json!({ "release": entry.version, "image": entry.image_id });
                        variants.entry(slug(entry)).or_default().insert(entry.region.as_str(), release);
                    }
                    let regions = preferred.and_then(|p| variants.get(&p)).cloned().unwrap_or_default();
                    let variants: BTreeMap<String, Value> =
                        variants.into_iter().map(|(slug, regions)| (slug, json!({ "regions": regions }))).collect();
                    let aws = json!({ "regions": regions, "variants": variants });
                    (arch, json!({ "artifacts": {}, "images": { "aws": aws } }))
                })
                .collect();
            let document = json!({
                "stream": channel,
                "metadata": { "last-modified": rfc3339(updated), "generator": format!("amiplan {stack}") },
                "architectures": architectures,
            });
            (channel.to_string(), document)
        })
        .collect()
}

fn preference(entry: &Entry) -> (bool, u8, bool, String) {
    let volume = match entry.volume_type.as_str() {
        "gp3" => 0,
        "gp2" => 1,
        _ => 2,
    };
    (entry.virtualization != "hvm", volume, entry.encrypted, slug(entry))
}

fn slug(entry: &Entry) -> String {
    let encryption = if entry.encrypted { "encrypted" } else { "unencrypted" };
    format!("{}-{}-{encryption}", entry.virtualization, entry.volume_type)
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).expect("JSON values serialize");
    text.push(b'\n');
    text
}

fn timestamp(updated: Option<&str>) -> jiff::Timestamp {
    updated.and_then(|t| t.parse().ok()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Simplestreams' time format: `Wed, 20 Mar 2013 17:56:57 +0000`.
fn rfc2822(updated: Option<&str>) -> String {
    let zoned = timestamp(updated).to_zoned(jiff::tz::TimeZone::UTC);
    jiff::fmt::rfc2822::to_string(&zoned).unwrap_or_default()
}

fn rfc3339(updated: Option<&str>) -> String {
    timestamp(updated).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Why a catalogue tree could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct WriteError {
    path: String,
    source: std::io::Error,
}

/// Writes `files` under `root`: each to a temporary name, then renamed over the old one (a
/// reader sees the old file or the new one, never half of one), unchanged files untouched, the
/// index last. A version file is written once: one that exists is never rewritten (clients may
/// have cached it by its path); when it differs from live state, that is returned as a warning.
/// The record of a version that is gone (retired) is removed, after the index.
pub fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<String>, WriteError> {
    let warnings = write_files(root, files)?;
    for stack in std::fs::read_dir(root.join("versions")).into_iter().flatten().flatten() {
        for record in std::fs::read_dir(stack.path()).into_iter().flatten().flatten() {
            let path = record.path();
            let relative = path.strip_prefix(root).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            if relative.ends_with(".json") && !files.contains_key(&relative) {
                std::fs::remove_file(&path).map_err(|source| WriteError { path: relative, source })?;
            }
        }
    }
    Ok(warnings)
}

fn write_files(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<String>, WriteError> {
    let mut warnings = Vec::new();
    let ordered = files.iter().filter(|(p, _)| p.as_str() != INDEX).chain(files.get_key_value(INDEX));
    for (relative, bytes) in ordered {
        let path = root.join(relative);
        let fail = |source| WriteError { path: path.display().to_string(), source };
        let existing = std::fs::read(&path).ok();
        if existing.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if relative.starts_with("versions/") && existing.is_some() {
            warnings.push(format!(
                "{relative} differs from live state and is left as it is: version files are never rewritten"
            ));
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let temporary = path.with_extension(format!("json.tmp-{}", std::process::id()));
        std::fs::write(&temporary, bytes).map_err(fail)?;
        std::fs::rename(&temporary, &path).map_err(fail)?;
    }
    Ok(warnings)
}

/// The catalogue of an `amis.json`, from a file or an http(s) URL.
pub fn read_flat(text: &str) -> Result<Catalogue, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not a catalogue (amis.json): {e}"))?;
    if value["format"] != FLAT_FORMAT {
        return Err(format!("not a catalogue: `format` is {}, not \"{FLAT_FORMAT}\"", value["format"]));
    }
    let regions: BTreeMap<String, Vec<Entry>> =
        serde_json::from_value(value["regions"].clone()).map_err(|e| format!("a malformed catalogue: {e}"))?;
    let mut entries: Vec<Entry> = regions.into_values().flatten().collect();
    entries.sort();
    Ok(Catalogue { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, region: &str) -> Entry {
        Entry {
            stack: "cat".into(),
            region: region.into(),
            version: version.into(),
            arch: "x86_64".into(),
            virtualization: "hvm".into(),
            volume_type: "gp3".into(),
            encrypted: false,
            boot_mode: None,
            image_id: format!("ami-{version}-{region}"),
            name: format!("cat-{version}"),
            created: Some(format!("2026-0{version}-01T00:00:00Z")),
            deprecation: None,
            public: true,
            channels: vec!["stable".into()],
        }
    }

    #[test]
    fn a_version_file_is_written_once_and_the_rest_is_replaced_whole() {
        let root = std::env::temp_dir().join(format!("amiplan-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let first = render(&Catalogue { entries: vec![entry("1", "eu-west-1")] });
        assert!(write_tree(&root, &first).unwrap().is_empty());
        assert_eq!(std::fs::read(root.join("amis.json")).unwrap(), first["amis.json"]);
        // Version 1 gains a region: its record stays as first published, and says so.
        let grown = render(&Catalogue { entries: vec![entry("1", "eu-west-1"), entry("1", "us-east-1")] });
        let warnings = write_tree(&root, &grown).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("versions/cat/1.json differs from live state"));
        assert_eq!(std::fs::read(root.join("versions/cat/1.json")).unwrap(), first["versions/cat/1.json"]);
        assert_eq!(std::fs::read(root.join("amis.json")).unwrap(), grown["amis.json"]);
        let leftovers: Vec<_> = std::fs::read_dir(root.join("streams/v1"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let updated = json_of(&grown["streams/v1/index.json"])["updated"].clone();
        assert_eq!(updated, "Thu, 1 Jan 2026 00:00:00 +0000", "the newest AMI's creation, not the clock");
        // Version 1 retired: its record goes with it.
        let retired = render(&Catalogue { entries: vec![entry("2", "eu-west-1")] });
        assert!(write_tree(&root, &retired).unwrap().is_empty());
        assert!(!root.join("versions/cat/1.json").exists() && root.join("versions/cat/2.json").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }
}
