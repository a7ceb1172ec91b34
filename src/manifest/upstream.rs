//! Tracking an upstream. A manifest may name the file to build from by where its upstream
//! publishes it (`source.upstream`) rather than by a fixed URL and digest. Every load reads the
//! upstream's own list of the newest file and its checksum file, and puts the URL and digest
//! found where fixed ones would stand; a scheduled `plan --detailed-exitcode` therefore exits 2
//! once upstream publishes something new. Only http(s). The digest always comes from the
//! checksum file, and the helper checks the download against it before it writes a byte.
//!
//! Reading is the only effect here; finding the file in what was read is pure and tested apart.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::raw::Upstream;
use crate::manifest::{Diagnostic, Invalid, Loaded};

/// The longest index or checksum file read; real ones are a few KiB.
const MAX_LIST_BYTES: u64 = 1024 * 1024;

/// What one stack's upstream resolved to, shown in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub stack: String,
    /// The file's name, as the index or checksum file gives it.
    pub file: String,
    pub url: String,
    pub sha256: String,
    /// What `{version}` matched in the file's name.
    pub version: String,
    /// Whether that is the stack's version (the manifest sets none of its own).
    pub version_derived: bool,
    /// The index, if any, and the checksum file, as read.
    pub read: Vec<String>,
}

/// Reads a small text file over http(s).
pub trait Fetch {
    fn text(&self, url: &str) -> Result<String, String>;
}

/// The real reader: one attempt of at most 30 s per file, of at most 1 MiB.
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Http {
        let config = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(30))).build();
        Http { agent: config.into() }
    }
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Fetch for Http {
    fn text(&self, url: &str) -> Result<String, String> {
        let mut answer = self.agent.get(url).call().map_err(|e| format!("fetching {url}: {e}"))?;
        answer
            .body_mut()
            .with_config()
            .limit(MAX_LIST_BYTES)
            .read_to_string()
            .map_err(|e| format!("reading {url}: {e}"))
    }
}

/// A manifest whose upstream is still to be read.
pub struct Pending {
    manifest: usize,
    upstream: Upstream,
    pattern: Pattern,
    version_given: bool,
}

/// Checks every `source.upstream` without reading anything, and puts stand-ins where the URL,
/// digest and (if derived) version will go, so that the rest of each manifest can be validated
/// before anything is read from upstream.
pub fn prepare(loaded: &mut [Loaded]) -> Result<Vec<Pending>, Invalid> {
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    for (manifest, loaded) in loaded.iter_mut().enumerate() {
        let Some(upstream) = loaded.manifest.source.upstream.clone() else { continue };
        match check(loaded, &upstream) {
            Ok(pattern) => {
                let version_given = loaded.manifest.version.is_some();
                let stand_in = pattern.text.replace("{version}", "0");
                fill(loaded, &format!("https://upstream.invalid/{stand_in}"), &"0".repeat(64), None);
                if !version_given {
                    loaded.manifest.version = Some("0".to_string());
                }
                pending.push(Pending { manifest, upstream, pattern, version_given });
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() { Ok(pending) } else { Err(Invalid(problems)) }
}

/// Reads every pending upstream and puts what it names in the manifests: `source.url` (or
/// `source.bootstrap.tarball`), its digest and, when the manifest sets none, `version`. A
/// problem upstream is reported at the manifest's `source.upstream`.
pub fn resolve(loaded: &mut [Loaded], pending: Vec<Pending>, fetch: &dyn Fetch) -> Result<(), Invalid> {
    let mut problems = Vec::new();
    for Pending { manifest, upstream, pattern, version_given } in pending {
        let loaded = &mut loaded[manifest];
        let found = find(&upstream, &pattern, fetch).and_then(|found| {
            if is_plain_url(&found.url) {
                Ok(found)
            } else {
                Err(format!("upstream names `{}`, which is not an http(s) URL of plain characters", found.url))
            }
        });
        let found = match found {
            Ok(found) => found,
            Err(problem) => {
                problems.push(loaded.at("source.upstream", problem));
                continue;
            }
        };
        let version = (!version_given).then_some(found.version.as_str());
        fill(loaded, &found.url, &found.sha256, version);
        loaded.upstream = Some(Resolution {
            stack: loaded.manifest.stack.clone(),
            file: found.file,
            url: found.url,
            sha256: found.sha256,
            version: found.version,
            version_derived: !version_given,
            read: found.read,
        });
    }
    if problems.is_empty() { Ok(()) } else { Err(Invalid(problems)) }
}

fn fill(loaded: &mut Loaded, url: &str, sha256: &str, version: Option<&str>) {
    let source = &mut loaded.manifest.source;
    match source.bootstrap.as_mut() {
        Some(bootstrap) => {
            bootstrap.tarball = Some(url.to_string());
            bootstrap.sha256 = Some(sha256.to_string());
        }
        None => {
            source.url = Some(url.to_string());
            source.sha256 = Some(sha256.to_string());
        }
    }
    if let Some(version) = version {
        loaded.manifest.version = Some(version.to_string());
    }
}

/// What can be checked of a `source.upstream` without reading it.
fn check(loaded: &Loaded, upstream: &Upstream) -> Result<Pattern, Vec<Diagnostic>> {
    let source = &loaded.manifest.source;
    let mut problems = Vec::new();
    let fixed = [
        (source.url.is_some(), "source.url"),
        (source.sha256.is_some(), "source.sha256"),
        (source.file.is_some(), "source.file"),
        (source.bootstrap.as_ref().is_some_and(|b| b.tarball.is_some()), "source.bootstrap.tarball"),
        (source.bootstrap.as_ref().is_some_and(|b| b.sha256.is_some()), "source.bootstrap.sha256"),
    ];
    for (given, field) in fixed {
        if given {
            problems.push(loaded.at(field, format!("{field} is found by source.upstream: give one or the other")));
        }
    }
    let pattern =
        Pattern::new(&upstream.file).map_err(|problem| problems.push(loaded.at("source.upstream.file", problem)));
    if let Some(index) = &upstream.index
        && !is_plain_url(index)
    {
        problems.push(
            loaded.at(
                "source.upstream.index",
                format!("`{index}` must be an http:// or https:// URL of plain characters"),
            ),
        );
    }
    let checksums = &upstream.checksums;
    let checksums_ok = match checksums.strip_prefix("{url}") {
        Some(suffix) => !suffix.contains("{url}") && upstream.index.is_some(),
        None => !checksums.contains("{url}") && is_plain_url(checksums),
    };
    if !checksums_ok {
        problems.push(loaded.at(
            "source.upstream.checksums",
            format!("`{checksums}` must be an http:// or https:// URL of plain characters, or `{{url}}` and a suffix when source.upstream.index names the file"),
        ));
    }
    match pattern {
        Ok(pattern) if problems.is_empty() => Ok(pattern),
        _ => Err(problems),
    }
}

struct Found {
    file: String,
    url: String,
    sha256: String,
    version: String,
    read: Vec<String>,
}

/// Reads the index (if any) and the checksum file, and finds the one file the pattern names.
fn find(upstream: &Upstream, pattern: &Pattern, fetch: &dyn Fetch) -> Result<Found, String> {
    let mut read = Vec::new();
    let (file, url) = match &upstream.index {
        Some(index) => {
            let text = fetch.text(index)?;
            read.push(index.clone());
            let paths: Vec<&str> = index_paths(&text).into_iter().filter(|p| pattern.matches(base_name(p))).collect();
            let path = one_of(&paths, pattern, index)?;
            (base_name(path).to_string(), join(index, path))
        }
        None => (String::new(), String::new()),
    };
    let checksums = upstream.checksums.replace("{url}", &url);
    let text = fetch.text(&checksums)?;
    read.push(checksums.clone());
    let entries = checksum_entries(&text);
    let (file, url, sha256) = if file.is_empty() {
        let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).filter(|n| pattern.matches(n)).collect();
        let name = one_of(&names, pattern, &checksums)?.to_string();
        let sha256 = entries.iter().find(|(n, _)| *n == name).map(|(_, d)| d.clone()).unwrap_or_default();
        let url = join(&checksums, &name);
        (name, url, sha256)
    } else {
        let digests: Vec<&String> = entries.iter().filter(|(n, _)| *n == file).map(|(_, d)| d).collect();
        match digests.as_slice() {
            [digest] => (file, url, (*digest).clone()),
            [] => return Err(format!("{checksums} has no SHA-256 of {file}")),
            _ => return Err(format!("{checksums} lists {file} more than once")),
        }
    };
    let version = pattern.version(&file).unwrap_or_default().to_string();
    Ok(Found { file, url, sha256, version, read })
}

fn one_of<'a>(candidates: &[&'a str], pattern: &Pattern, list: &str) -> Result<&'a str, String> {
    let mut distinct = candidates.to_vec();
    distinct.sort();
    distinct.dedup();
    match distinct.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("{list} names no file like `{}`", pattern.text)),
        many => Err(format!(
            "{list} names {} files like `{}` ({}); make source.upstream.file narrower",
            many.len(),
            pattern.text,
            many.join(", ")
        )),
    }
}

/// A file name with one `{version}`: the text around it must match exactly, and the version is
/// one or more plain characters.
#[derive(Debug)]
struct Pattern {
    text: String,
    prefix: String,
    suffix: String,
}

impl Pattern {
    fn new(text: &str) -> Result<Pattern, String> {
        let plain = |part: &str| part.chars().all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c));
        let parts: Vec<&str> = text.split("{version}").collect();
        match parts.as_slice() {
            [prefix, suffix] if plain(prefix) && plain(suffix) => {
                Ok(Pattern { text: text.to_string(), prefix: prefix.to_string(), suffix: suffix.to_string() })
            }
            [_, _] => Err(format!("`{text}` must be a file name of letters, digits and `._+-~` around `{{version}}`")),
            _ => Err(format!("`{text}` must name the file with exactly one `{{version}}`")),
        }
    }

    fn version<'a>(&self, name: &'a str) -> Option<&'a str> {
        let middle = name.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        let plain = !middle.is_empty()
            && middle.len() <= 64
            && middle.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
        plain.then_some(middle)
    }

    fn matches(&self, name: &str) -> bool {
        self.version(name).is_some()
    }
}

/// The paths an index names: the first word of every line that is not a comment, blank or part
/// of an OpenPGP clear-signature's armour.
fn index_paths(text: &str) -> Vec<&str> {
    signed_body(text).filter(|line| !line.starts_with('#')).filter_map(|line| line.split_whitespace().next()).collect()
}

/// `(file name, lower-case SHA-256)` of every SHA-256 line, in `sha256sum` form (`<hex>  name`,
/// `<hex> *name`) or BSD form (`SHA256 (name) = <hex>`).
fn checksum_entries(text: &str) -> Vec<(String, String)> {
    let is_digest = |d: &str| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit());
    let mut entries = Vec::new();
    for line in signed_body(text).filter(|line| !line.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("SHA256 (")
            && let Some((name, digest)) = rest.rsplit_once(") = ")
            && is_digest(digest.trim())
        {
            entries.push((base_name(name).to_string(), digest.trim().to_ascii_lowercase()));
        } else if let Some((digest, name)) = line.split_once(char::is_whitespace)
            && is_digest(digest)
        {
            let name = name.trim_start().trim_start_matches('*').trim();
            entries.push((base_name(name).to_string(), digest.to_ascii_lowercase()));
        }
    }
    entries
}

/// The lines of a text, without the armour of an OpenPGP clear signature if it has one. The
/// signature is not checked: the digest is what the download is checked against.
fn signed_body(text: &str) -> impl Iterator<Item = &str> {
    let mut in_header = false;
    let mut in_signature = false;
    text.lines().map(str::trim).filter(move |line| {
        if *line == "-----BEGIN PGP SIGNED MESSAGE-----" {
            in_header = true;
            return false;
        }
        if in_header {
            // Armour headers (`Hash: SHA256`) end at the first blank line.
            in_header = !line.is_empty();
            return false;
        }
        if *line == "-----BEGIN PGP SIGNATURE-----" {
            in_signature = true;
        }
        let keep = !in_signature && !line.is_empty();
        if *line == "-----END PGP SIGNATURE-----" {
            in_signature = false;
        }
        keep
    })
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `relative` resolved against the directory of `base` (an absolute http(s) URL is kept).
fn join(base: &str, relative: &str) -> String {
    if relative.starts_with("http://") || relative.starts_with("https://") {
        return relative.to_string();
    }
    let base = base.split(['?', '#']).next().unwrap_or(base);
    let directory = &base[..base.rfind('/').map_or(base.len(), |i| i + 1)];
    format!("{directory}{}", relative.trim_start_matches("./"))
}

fn is_plain_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.split('/').any(|part| part == "..")
        && url.chars().all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!&()*+,;=%".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENTOO_INDEX: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n# Latest as of Sun, 22 Nov 2026 17:00:00 +0000\n# ts=1795366800\n20261122T170000Z/stage3-amd64-openrc-20261122T170000Z.tar.xz 267467180\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n-----END PGP SIGNATURE-----\n";

    const FEDORA_CHECKSUM: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 491716608 bytes\nSHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = 6205ae0c524b4d1816dbd3573ce29b5c44ed26c9fbc874fbe48c41c89dd0bac2\n# Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz: 401716608 bytes\nSHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz) = AB05AE0C524B4D1816DBD3573CE29B5C44ED26C9FBC874FBE48C41C89DD0BAC2\n-----BEGIN PGP SIGNATURE-----\n\nwsFzBAEBCAAnBQ\n-----END PGP SIGNATURE-----\n";

    #[test]
    fn index_paths_skip_comments_and_armour() {
        assert_eq!(index_paths(GENTOO_INDEX), vec!["20261122T170000Z/stage3-amd64-openrc-20261122T170000Z.tar.xz"]);
    }

    #[test]
    fn checksum_lines_of_both_forms() {
        let entries = checksum_entries(FEDORA_CHECKSUM);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0, "Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz");
        assert!(entries[1].1.starts_with("ab05ae0c"), "digests are lower-cased");
        let gnu = format!("{}  stage3.tar.xz\n{} *dir/other.img\nnot a line\n", "a".repeat(64), "b".repeat(64));
        assert_eq!(
            checksum_entries(&gnu),
            vec![("stage3.tar.xz".to_string(), "a".repeat(64)), ("other.img".to_string(), "b".repeat(64))]
        );
    }

    #[test]
    fn patterns_take_exactly_one_version() {
        let pattern = Pattern::new("Fedora-Cloud-Base-Generic-{version}.x86_64.raw.xz").unwrap();
        assert_eq!(pattern.version("Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz"), Some("41-1.4"));
        assert_eq!(pattern.version("Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2"), None);
        assert_eq!(pattern.version("Fedora-Cloud-Base-Generic-.x86_64.raw.xz"), None);
        assert_eq!(pattern.version("Fedora-Cloud-Base-Generic-4 1.x86_64.raw.xz"), None);
        assert!(Pattern::new("image.raw").unwrap_err().contains("exactly one"));
        assert!(Pattern::new("{version}-{version}").is_err());
        assert!(Pattern::new("a/{version}.raw").unwrap_err().contains("file name"));
    }

    #[test]
    fn relative_paths_join_the_list_directory() {
        let index = "https://distfiles.example/releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt";
        assert_eq!(
            join(index, "2026/stage3.tar.xz"),
            "https://distfiles.example/releases/amd64/autobuilds/2026/stage3.tar.xz"
        );
        assert_eq!(join("https://x.example/a/CHECKSUM?x=1", "./f.raw"), "https://x.example/a/f.raw");
        assert_eq!(join(index, "https://mirror.example/f"), "https://mirror.example/f");
        assert!(!is_plain_url("https://x.example/a/../etc"));
    }

    struct Files(Vec<(&'static str, String)>);

    impl Fetch for Files {
        fn text(&self, url: &str) -> Result<String, String> {
            self.0.iter().find(|(u, _)| *u == url).map(|(_, t)| t.clone()).ok_or_else(|| format!("{url}: 404"))
        }
    }

    fn upstream(index: Option<&str>, checksums: &str, file: &str) -> Upstream {
        Upstream { index: index.map(str::to_string), checksums: checksums.to_string(), file: file.to_string() }
    }

    #[test]
    fn an_index_names_the_file_and_its_checksum_file_the_digest() {
        let index = "https://g.example/autobuilds/latest-stage3-amd64-openrc.txt";
        let file_url = "https://g.example/autobuilds/20261122T170000Z/stage3-amd64-openrc-20261122T170000Z.tar.xz";
        let digest = "c".repeat(64);
        let sums = format!("# SHA256 HASH\n{digest}  stage3-amd64-openrc-20261122T170000Z.tar.xz\n");
        let files = Files(vec![
            (index, GENTOO_INDEX.to_string()),
            ("https://g.example/autobuilds/20261122T170000Z/stage3-amd64-openrc-20261122T170000Z.tar.xz.sha256", sums),
        ]);
        let spec = upstream(Some(index), "{url}.sha256", "stage3-amd64-openrc-{version}.tar.xz");
        let found = find(&spec, &Pattern::new(&spec.file).unwrap(), &files).unwrap();
        assert_eq!((found.url.as_str(), found.sha256.as_str()), (file_url, digest.as_str()));
        assert_eq!(found.version, "20261122T170000Z");
        assert_eq!(found.read.len(), 2);
    }

    #[test]
    fn without_an_index_the_checksum_file_names_exactly_one_file() {
        let sums = "https://f.example/41/Cloud/x86_64/images/CHECKSUM";
        let files = Files(vec![(sums, FEDORA_CHECKSUM.to_string())]);
        let spec = upstream(None, sums, "Fedora-Cloud-Base-Generic-{version}.x86_64.raw.xz");
        let found = find(&spec, &Pattern::new(&spec.file).unwrap(), &files).unwrap();
        assert_eq!(
            found.url,
            "https://f.example/41/Cloud/x86_64/images/Fedora-Cloud-Base-Generic-41-1.4.x86_64.raw.xz"
        );
        assert_eq!(found.version, "41-1.4");
        let loose = upstream(None, sums, "Fedora-Cloud-Base-Generic-{version}");
        let problem = find(&loose, &Pattern::new(&loose.file).unwrap(), &files).err().unwrap();
        assert!(problem.contains("names 2 files like"), "{problem}");
        let none = upstream(None, sums, "Fedora-Server-{version}.iso");
        assert!(find(&none, &Pattern::new(&none.file).unwrap(), &files).err().unwrap().contains("names no file"));
    }

    #[test]
    fn a_missing_digest_or_an_unreachable_list_is_an_error() {
        let index = "https://g.example/latest.txt";
        let files = Files(vec![(index, "stage3-{v}.tar.xz\nstage3-1.tar.xz 10\n".replace("{v}", "2"))]);
        let spec = upstream(Some(index), "https://g.example/SHA256SUMS", "stage3-{version}.tar.xz");
        let problem = find(&spec, &Pattern::new(&spec.file).unwrap(), &files).err().unwrap();
        assert!(problem.contains("names 2 files"), "{problem}");
        let files = Files(vec![
            (index, "stage3-2.tar.xz\n".to_string()),
            ("https://g.example/SHA256SUMS", format!("{}  stage3-1.tar.xz\n", "d".repeat(64))),
        ]);
        let problem = find(&spec, &Pattern::new(&spec.file).unwrap(), &files).err().unwrap();
        assert_eq!(problem, "https://g.example/SHA256SUMS has no SHA-256 of stage3-2.tar.xz");
        let gone = upstream(Some("https://g.example/gone.txt"), "{url}.sha256", "stage3-{version}.tar.xz");
        assert!(find(&gone, &Pattern::new(&gone.file).unwrap(), &files).err().unwrap().contains("404"));
    }
}
