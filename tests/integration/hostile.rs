//! Hostile manifests (tests/hostile/*.yaml, each naming its expected error on its first line):
//! every one is refused with a precise position, exit code 1, and not a single AWS call. A
//! property test feeds the parser and validator mangled manifests and finds no panic.

use std::path::Path;

use proptest::prelude::*;

use crate::proxy::{Faults, Proxy};
use crate::support::*;

/// A copy of the corpus beside what its manifests refer to: a source image and a directory.
fn corpus_dir() -> (std::path::PathBuf, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let dir = workdir("hostile");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("disk.raw"), b"x").unwrap();
    // 3 GiB of holes: larger than a small volume_size, and nothing to read.
    std::fs::File::create(dir.join("big.raw")).unwrap().set_len(3 << 30).unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&path, dir.join(&name)).unwrap();
        names.push(name);
    }
    names.sort();
    (dir, names)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_manifest_is_refused_precisely_without_touching_aws() {
    let (dir, names) = corpus_dir();
    assert!(names.len() >= 80, "the corpus has {} manifests", names.len());
    // The proxy records any call; nothing listens behind it.
    let proxy = Proxy::start("http://127.0.0.1:9", Faults::default(), 0).await;
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: no expect line"));
        let output = amiplan_async(&proxy.endpoint, &dir, &["plan", name]).await;
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(&format!("{name}:{expected}")), "{name}: expected `{name}:{expected}` in\n{err}");
    }
    // validate loads what plan loads: the image's size is checked there too.
    let name = "99-volume-smaller-than-the-image.yaml";
    let output = amiplan_async(&proxy.endpoint, &dir, &["validate", name]).await;
    expect_code(&output, 1);
    assert!(stderr(&output).contains(&format!("{name}:4:42: volume_size 2 GiB cannot hold")), "{}", stderr(&output));
    assert!(proxy.calls().is_empty(), "hostile manifests reached AWS: {:?}", proxy.calls());
}

#[test]
fn a_symbolic_link_out_of_the_manifest_directory_is_refused() {
    let dir = workdir("symlink");
    std::os::unix::fs::symlink("/etc/hostname", dir.join("disk.raw")).unwrap();
    let text = "stack: s\nsource: { file: disk.raw }\nbuild: { region: us-east-1 }\nimage: { name: \"s-{volume_type}\", architecture: x86_64 }\nregions: [us-east-1]\n";
    std::fs::write(dir.join("m.yaml"), text).unwrap();
    let output = amiplan_at("http://127.0.0.1:9", &dir, &["validate", "m.yaml"]);
    expect_code(&output, 1);
    assert!(
        stderr(&output).contains("m.yaml:2:17: source.file `disk.raw` leads outside the manifest's directory"),
        "{}",
        stderr(&output)
    );
}

const VALID: &str = "stack: fuzz
source: { file: disk.raw, sha256: \"0000000000000000000000000000000000000000000000000000000000000000\" }
build: { region: us-east-1, volume_size: 2 }
image:
  name: \"fuzz-{arch}-{volume_type}-{encryption}\"
  description: fuzzed
  architecture: x86_64
  boot_mode: uefi
  tpm: true
  tags: { a: b }
  kms_keys: { eu-west-1: k }
variants:
  volume_type: [gp3, standard]
  encrypted: [false, true]
regions: [us-east-1, eu-west-1]
publish: { public: false }
";

/// Parses and validates `text` as a manifest beside a real source file; must never panic.
fn parse_and_validate(dir: &Path, text: &str) {
    if let Ok(loaded) = amiplan::manifest::parse(&dir.join("m.yaml"), text) {
        let _ = amiplan::model::validate(&[loaded]);
    }
}

/// An edit of a valid manifest: delete, insert or replace a few bytes somewhere.
fn mangled() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        ":",
        "-",
        " ",
        "\n",
        "\t",
        "\"",
        "'",
        "&a",
        "*a",
        "!!str",
        "~",
        "#",
        "{arch}",
        "{",
        "ü",
        "\u{0}",
        "9999999999999999999999",
        "---\n",
        "? ",
    ]);
    (0..VALID.len(), 0..8usize, pieces).prop_map(|(at, cut, piece)| {
        let at = (0..=at).rev().find(|i| VALID.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut..=VALID.len()).find(|i| VALID.is_char_boundary(*i)).unwrap_or(VALID.len());
        format!("{}{}{}", &VALID[..at], piece, &VALID[end..])
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_and_validator_never_panic_on_mangled_manifests(text in mangled()) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("disk.raw"), b"x").unwrap();
        parse_and_validate(&dir, &text);
    }

    #[test]
    fn the_parser_and_validator_never_panic_on_arbitrary_text(text in "\\PC{0,400}") {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
        std::fs::create_dir_all(&dir).unwrap();
        parse_and_validate(&dir, &text);
    }
}
