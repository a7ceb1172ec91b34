//! Reading manifests: files and directories in, raw manifests with their text positions out, or
//! every problem as `file:line:col: message`. Nothing here talks to AWS.

mod every_problem;
pub mod locate;
pub mod raw;
pub mod upstream;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use locate::{Position, PositionIndex};
pub use raw::Manifest;

/// Manifests larger than this are refused before parsing; real ones are a few KiB.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// One problem in one manifest, at a position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub position: Position,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Position { line, column } = self.position;
        write!(f, "{}:{line}:{column}: {}", self.file.display(), self.message)
    }
}

/// Every problem found in a set of manifests; the whole set is refused if there is one.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the manifests:\n{}", .0.len(), render(.0))]
pub struct Invalid(pub Vec<Diagnostic>);

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

/// A manifest that parsed, with what is needed to point at its parts later.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Shared with the stack made from it ([`crate::model::Stack::at`]).
    pub positions: Arc<PositionIndex>,
    /// What `source.upstream` resolved to, once [`upstream::resolve`] has run.
    pub upstream: Option<crate::manifest::upstream::Resolution>,
    /// Whether the files the manifest names must be there (see [`LocalFiles`]).
    pub local_files: LocalFiles,
}

/// What a command does with the local files manifests name (the source image, scripts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocalFiles {
    /// It reads or sends them (validate, plan, apply): each must be there.
    #[default]
    Used,
    /// It acts on what is live only (destroy, output, resolve, serve, …) or on the manifests'
    /// shape (graph, policy): a file that is gone, say from the build machine of an old
    /// release, must not stop it. Their paths are still checked, and nothing reads them.
    Unused,
}

impl Loaded {
    /// A diagnostic about the value at `path` (see [`PositionIndex::find`]).
    pub fn at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: self.path.clone(), position: self.positions.find(path), message: message.into() }
    }

    /// The directory that relative file references are resolved against.
    pub fn base_dir(&self) -> &Path {
        // `m.yaml` has the empty path as parent, which the file system cannot resolve.
        self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }
}

/// Expands `paths` (files, or directories searched for `*.yaml`/`*.yml`, not recursively) in a
/// stable order and parses every file. Returns all problems of all files at once.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Loaded>, Invalid> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match manifest_files(path) {
            Ok(found) if found.is_empty() => problems.push(whole_file(path, "no manifests (*.yaml, *.yml) here")),
            Ok(found) => files.extend(found),
            Err(message) => problems.push(whole_file(path, message)),
        }
    }
    files.sort();
    files.dedup();
    let mut loaded = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(manifest) => loaded.push(manifest),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() { Ok(loaded) } else { Err(Invalid(problems)) }
}

fn whole_file(path: &Path, message: impl Into<String>) -> Diagnostic {
    Diagnostic { file: path.to_path_buf(), position: Position::START, message: message.into() }
}

fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("cannot list directory: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list directory: {e}"))?;
        let file = entry.path();
        let is_yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && file.is_file() {
            files.push(file);
        }
    }
    Ok(files)
}

fn load_file(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let size = std::fs::metadata(path).map_err(|e| vec![whole_file(path, format!("cannot read: {e}"))])?.len();
    if size > MAX_MANIFEST_BYTES {
        return Err(vec![whole_file(path, format!("manifest is {size} bytes; the limit is {MAX_MANIFEST_BYTES}"))]);
    }
    let text = std::fs::read_to_string(path).map_err(|e| vec![whole_file(path, format!("cannot read: {e}"))])?;
    parse(path, &text)
}

/// Flow collections (`[…]`, `{…}`) nested deeper than this are refused before parsing: YAML
/// parsers spend time quadratic in the nesting depth, and real manifests nest two levels.
const MAX_FLOW_DEPTH: usize = 32;

/// Parses one manifest's text; `path` is used for positions only.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    if let Some(position) = too_deep(text) {
        let message = format!("collections nested deeper than {MAX_FLOW_DEPTH} levels");
        return Err(vec![Diagnostic { file: path.to_path_buf(), position, message }]);
    }
    let positions = PositionIndex::new(text);
    if let Some((key, pos)) = positions.first_duplicate_key() {
        let message = format!("duplicate key `{key}`");
        return Err(vec![Diagnostic { file: path.to_path_buf(), position: pos, message }]);
    }
    match serde_yaml_ng::from_str::<Manifest>(text) {
        Ok(manifest) => {
            let positions = Arc::new(positions);
            Ok(Loaded { path: path.to_path_buf(), manifest, positions, upstream: None, local_files: LocalFiles::Used })
        }
        Err(err) => {
            let every = every_problem::problems(path, text, &positions);
            if !every.is_empty() {
                return Err(every);
            }
            let position =
                err.location().map(|l| Position { line: l.line(), column: l.column() }).unwrap_or(Position::START);
            let message = strip_location(&err.to_string());
            Err(vec![Diagnostic { file: path.to_path_buf(), position, message }])
        }
    }
}

/// Where flow nesting first exceeds [`MAX_FLOW_DEPTH`], in one linear pass that skips quoted
/// strings and comments.
fn too_deep(text: &str) -> Option<Position> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
            // A quoted scalar may span lines, so `quote` stays as it is.
        } else if comment {
        } else if let Some(open) = quote {
            if c == open {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' => quote = Some(c),
                '#' if previous.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(Position { line, column });
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        previous = c;
    }
    None
}

/// serde_yaml_ng appends " at line L column C" to messages; the diagnostic already says where.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse(Path::new("m.yaml"), text).err().unwrap().iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn unknown_field_points_at_its_line() {
        let text = "stack: s\nsource: { file: a.raw }\nbuild: { region: us-east-1 }\nimage:\n  name: n\n  architecture: x86_64\n  colour: blue\nregions: [us-east-1]\n";
        let found = problems(text);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("m.yaml:7:3: image: unknown field `colour`"), "{found:?}");
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let text = "stack: s\nsource: { file: a.raw }\nbuild: { region: us-east-1 }\nimage: { name: n, architecture: sparc }\nregions: [us-east-1]\n";
        let found = problems(text);
        assert!(found[0].starts_with("m.yaml:4:"), "{found:?}");
        assert!(found[0].contains("\"sparc\" is not one of \"x86_64\" or \"arm64\""), "{found:?}");
    }

    #[test]
    fn every_type_and_field_problem_is_reported_at_once() {
        let text = "stack: s\nsource: { file: a.raw }\nbuild: { region: us-east-1, size: 3 }\nimage:\n  name: n\n  architecture: sparc\n  colour: blue\nvariants:\n  volume_type: gp3\nregions: [us-east-1]\n";
        let found = problems(text);
        assert_eq!(
            found,
            vec![
                "m.yaml:3:29: build: unknown field `size`, expected one of `helper`, `keep_image`, `method`, `network`, `region`, `volume_size`",
                "m.yaml:6:17: image.architecture: \"sparc\" is not one of \"x86_64\" or \"arm64\"",
                "m.yaml:7:3: image: unknown field `colour`, expected one of `architecture`, `boot_mode`, `description`, `ena`, `imds`, `kernel_id`, `kms_keys`, `name`, `ramdisk_id`, `root_device`, `tags`, `tpm`, `virtualization`",
                "m.yaml:9:16: variants.volume_type: \"gp3\" is not of types \"null\", \"array\"",
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn a_misspelt_field_is_guessed() {
        let text = "stack: s\nsource: { file: a.raw }\nbuild: { region: us-east-1 }\nimage: { name: n, architecture: x86_64 }\nregoins: [us-east-1]\n";
        let found = problems(text);
        assert_eq!(found[0], "m.yaml:1:1: missing field `regions`");
        assert!(
            found[1]
                .starts_with("m.yaml:5:1: unknown field `regoins` (did you mean `regions`?), expected one of `build`,"),
            "{found:?}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let found = problems("stack: a\nstack: b\n");
        assert_eq!(found, vec!["m.yaml:2:1: duplicate key `stack`"]);
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let text = format!("stack: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(problems(&text), vec!["m.yaml:1:40: collections nested deeper than 32 levels"]);
        // Brackets inside quotes and comments do not count.
        let quoted = format!("stack: \"{}\" # {}\n", "[".repeat(40), "{".repeat(40));
        assert!(!problems(&quoted)[0].contains("nested deeper"));
    }

    #[test]
    fn bad_yaml_has_a_position() {
        let found = problems("stack: [unclosed\n");
        assert!(found[0].starts_with("m.yaml:2:1:") || found[0].starts_with("m.yaml:1:"), "{found:?}");
    }
}
