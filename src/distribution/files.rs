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

use serde::Serialize;
use serde_json::{Value, json};

use super::{Catalogue, Entry};

/// Format of `amis.json`.
pub const FLAT_FORMAT: &str = "amiplan-catalogue:1";

/// Where the simplestreams index is (written last), and the flat list of every AMI.
pub use crate::resource::catalog_files::{FLAT, INDEX};

/// Every file of the catalogue, by path relative to the tree's root. Serialized from borrowed,
/// typed documents: no intermediate JSON tree of 10,000 AMIs is ever built.
pub fn render(catalogue: &Catalogue) -> BTreeMap<String, Vec<u8>> {
    let updated = catalogue.updated();
    let mut files = BTreeMap::new();
    let mut stacks: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in &catalogue.entries {
        stacks.entry(entry.stack.as_str()).or_default().push(entry);
    }
    let mut index = BTreeMap::new();
    for (stack, entries) in &stacks {
        let content_id = format!("amiplan:{stack}:aws");
        let path = crate::resource::catalog_files::products_path(stack);
        let products = products(entries);
        let names: Vec<String> = products.keys().cloned().collect();
        let document = Products {
            content_id: &content_id,
            datatype: "image-ids",
            format: "products:1.0",
            products,
            updated: rfc2822(updated),
        };
        files.insert(path.clone(), json(&document));
        index.insert(
            content_id.clone(),
            IndexEntry {
                cloudname: "aws",
                datatype: "image-ids",
                format: "products:1.0",
                path,
                products: names,
                updated: rfc2822(updated),
            },
        );
        for (channel, document) in channel_streams(stack, entries, updated) {
            files.insert(format!("streams/{stack}/{channel}.json"), json(&document));
        }
        let mut versions: BTreeMap<&str, Vec<VersionAmi>> = BTreeMap::new();
        for entry in entries {
            versions.entry(entry.version.as_str()).or_default().push(VersionAmi {
                region: &entry.region,
                image_id: &entry.image_id,
                name: &entry.name,
                arch: &entry.arch,
                virtualization: &entry.virtualization,
                volume_type: &entry.volume_type,
                encrypted: entry.encrypted,
            });
        }
        for (version, amis) in versions {
            let document = VersionRecord { stack, version, amis };
            files.insert(format!("versions/{stack}/{version}.json"), json(&document));
        }
    }
    let mut regions: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in &catalogue.entries {
        regions.entry(entry.region.as_str()).or_default().push(entry);
    }
    let flat = Flat { format: FLAT_FORMAT, updated: rfc3339(updated), regions };
    files.insert(FLAT.to_string(), json(&flat));
    let index = Index { format: "index:1.0", index, updated: rfc2822(updated) };
    files.insert(INDEX.to_string(), json(&index));
    files
}

#[derive(Serialize)]
struct Index {
    format: &'static str,
    index: BTreeMap<String, IndexEntry>,
    updated: String,
}

#[derive(Serialize)]
struct IndexEntry {
    cloudname: &'static str,
    datatype: &'static str,
    format: &'static str,
    path: String,
    products: Vec<String>,
    updated: String,
}

#[derive(Serialize)]
struct Products<'a> {
    content_id: &'a str,
    datatype: &'static str,
    format: &'static str,
    products: BTreeMap<String, Product<'a>>,
    updated: String,
}

#[derive(Serialize)]
struct Product<'a> {
    arch: &'a str,
    os: &'a str,
    release: &'a str,
    versions: BTreeMap<&'a str, ProductVersion<'a>>,
}

#[derive(Serialize, Default)]
struct ProductVersion<'a> {
    items: BTreeMap<String, Item<'a>>,
}

/// One simplestreams item: an AMI in a region (`crsn`), as Ubuntu's `image-ids` items are.
#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    name: &'a str,
    crsn: &'a str,
    endpoint: String,
    virt: &'a str,
    root_store: &'static str,
    volume_type: &'a str,
    encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecation: Option<&'a str>,
}

#[derive(Serialize)]
struct VersionRecord<'a> {
    stack: &'a str,
    version: &'a str,
    amis: Vec<VersionAmi<'a>>,
}

#[derive(Serialize)]
struct VersionAmi<'a> {
    region: &'a str,
    image_id: &'a str,
    name: &'a str,
    arch: &'a str,
    virtualization: &'a str,
    volume_type: &'a str,
    encrypted: bool,
}

#[derive(Serialize)]
struct Flat<'a> {
    format: &'static str,
    updated: String,
    regions: BTreeMap<&'a str, Vec<&'a Entry>>,
}

/// Products (`<stack>:<arch>`) → versions → items, one item per region and variant.
fn products<'a>(entries: &[&'a Entry]) -> BTreeMap<String, Product<'a>> {
    let mut products: BTreeMap<String, Product<'a>> = BTreeMap::new();
    for entry in entries {
        let product = products.entry(format!("{}:{}", entry.stack, entry.arch)).or_insert_with(|| Product {
            arch: &entry.arch,
            os: &entry.stack,
            release: &entry.stack,
            versions: BTreeMap::new(),
        });
        let encryption = if entry.encrypted { "encrypted" } else { "unencrypted" };
        let item = Item {
            id: &entry.image_id,
            name: &entry.name,
            crsn: &entry.region,
            endpoint: format!("https://ec2.{}.amazonaws.com", entry.region),
            virt: &entry.virtualization,
            root_store: if entry.volume_type == "standard" { "ebs" } else { "ssd" },
            volume_type: &entry.volume_type,
            encrypted: entry.encrypted,
            deprecation: entry.deprecation.as_deref(),
        };
        let key = format!("{}:{}:{}:{encryption}", entry.region, entry.virtualization, entry.volume_type);
        product.versions.entry(entry.version.as_str()).or_default().items.insert(key, item);
    }
    products
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

/// One JSON document per file, compact: clients are programs, and `serve` holds every file of a
/// catalogue of thousands of AMIs in memory (twice, while it swaps views).
fn json(value: &impl Serialize) -> Vec<u8> {
    let mut text = serde_json::to_vec(value).expect("JSON values serialize");
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
