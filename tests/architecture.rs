//! The shape of the code, checked: modules import each other without cycles, and `cloud` is a
//! leaf that knows nothing of manifests, graphs or plans.
//!
//! The check reads `src/` as text: every `crate::…` and `super::…` path (including the items of
//! a `{…}` group) is an edge from the file's module to the deepest module the path names. Edges
//! are compared between siblings (a module using its parent or its child is not a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn modules() -> BTreeMap<Module, PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|m| m == "mod") || module == ["lib"] || module == ["main"] {
                module.pop();
            }
            found.insert(module, path);
        }
    }
    let test_modules: Vec<Module> = found.keys().filter(|module| is_test_module(&found, module)).cloned().collect();
    for module in test_modules {
        found.remove(&module);
    }
    found
}

/// A module its parent declares under `#[cfg(test)]` (a unit test kept in its own file): like
/// an inline test module, it may reach anywhere.
fn is_test_module(found: &BTreeMap<Module, PathBuf>, module: &Module) -> bool {
    let Some((last, parent)) = module.split_last() else { return false };
    let Some(parent_file) = found.get(parent) else { return false };
    let text = std::fs::read_to_string(parent_file).unwrap();
    text.contains(&format!("#[cfg(test)]\nmod {last};"))
}

/// The source without comments and unit tests (tests may reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn ident_end(text: &str) -> usize {
    text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len())
}

/// Every module path `text` names through `crate::` or `super::`, relative to `module`.
fn paths(module: &Module, text: &str) -> Vec<Module> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("::") {
        let before = &text[..at];
        let base: Option<Module> = if before.ends_with("crate") && !before.ends_with("$crate") {
            Some(vec![])
        } else if before.ends_with("super") {
            Some(module[..module.len().saturating_sub(1)].to_vec())
        } else {
            None
        };
        let Some(mut path) = base else { continue };
        let mut rest = &text[at + 2..];
        loop {
            if let Some(group) = rest.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let item = item.trim();
                    let first = &item[..ident_end(item)];
                    if !first.is_empty() && first != "self" {
                        let mut each = path.clone();
                        each.push(first.to_string());
                        found.push(each);
                    }
                }
                break;
            }
            let end = ident_end(rest);
            if end == 0 {
                break;
            }
            path.push(rest[..end].to_string());
            match rest[end..].strip_prefix("::") {
                Some(next) => rest = next,
                None => break,
            }
        }
        found.push(path);
    }
    found
}

/// Edges between sibling modules: `a → b` when something inside `a` uses something inside `b`.
fn sibling_edges() -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules();
    let resolve = |path: &Module| -> Option<Module> {
        (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| modules.contains_key(prefix))
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &modules {
        for path in paths(module, &code(file)) {
            let Some(target) = resolve(&path) else { continue };
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == module.len() || common == target.len() {
                continue;
            }
            edges.entry(module[..=common].to_vec()).or_default().insert(target[..=common].to_vec());
        }
    }
    edges
}

fn name(module: &Module) -> String {
    module.join("/")
}

#[test]
fn modules_import_each_other_without_cycles() {
    let edges = sibling_edges();
    let mut cycles = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            // A path back from `to` to `from` closes a cycle.
            let mut seen = BTreeSet::new();
            let mut stack = vec![to.clone()];
            while let Some(at) = stack.pop() {
                if &at == from {
                    cycles.push(format!("{} → {}", name(from), name(to)));
                    break;
                }
                if seen.insert(at.clone()) {
                    stack.extend(edges.get(&at).into_iter().flatten().cloned());
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles through these edges:\n{}", cycles.join("\n"));
}

#[test]
fn cloud_is_a_leaf() {
    let edges = sibling_edges();
    let cloud = vec!["cloud".to_string()];
    let uses: Vec<String> = edges.get(&cloud).into_iter().flatten().map(name).collect();
    assert!(uses.is_empty(), "cloud must not depend on the rest of the crate, but uses {uses:?}");
}

/// Unit tests kept in their own file are test code, not part of the module graph.
#[test]
fn test_modules_in_their_own_files_are_left_out() {
    let modules = modules();
    let source_tests = vec!["source".to_string(), "tests".to_string()];
    assert!(modules.contains_key(&vec!["source".to_string()]));
    assert!(!modules.contains_key(&source_tests), "source/tests.rs is test code");
}

/// Self-check of the reader: it sees plain paths, groups and `super`.
#[test]
fn the_reader_sees_every_form_of_path() {
    let module = vec!["cloud".to_string(), "aws".to_string()];
    let found =
        paths(&module, "use crate::plan::{Action, Change};\nuse super::{retry, error::X};\nx = crate::tags::NODE;");
    let found: BTreeSet<String> = found.iter().map(name).collect();
    for expected in ["plan/Action", "plan/Change", "cloud/retry", "cloud/error", "tags/NODE"] {
        assert!(found.contains(expected), "{expected} in {found:?}");
    }
}
