//! Positions of YAML nodes by path (`image.name`, `regions[2]`), so that semantic errors found
//! after deserializing can still point at `file:line:col`. serde drops positions; this index keeps
//! them from a second, event-level parse of the same text.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };
}

/// Where each value (and each mapping key) of a document starts.
#[derive(Debug, Default)]
pub struct PositionIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
    duplicate_keys: Vec<(String, Position)>,
}

impl PositionIndex {
    /// Indexes `text`; a text that does not parse gives an empty index (serde reports that error).
    pub fn new(text: &str) -> PositionIndex {
        let mut builder = IndexBuilder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return PositionIndex::default();
        }
        builder.index
    }

    /// Position of the value at `path`, else of its key, else of the nearest ancestor that exists.
    pub fn find(&self, path: &str) -> Position {
        let mut path = path;
        loop {
            if let Some(pos) = self.values.get(path) {
                return *pos;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.values.get("").copied().unwrap_or(Position::START),
            }
        }
    }

    /// The first key (in document order) that appears twice in one mapping, at its second place.
    pub fn first_duplicate_key(&self) -> Option<(String, Position)> {
        self.duplicate_keys.iter().min_by_key(|(_, pos)| *pos).cloned()
    }

    /// Position of the key at `path` (for "unknown" or "duplicate" complaints about the key itself).
    pub fn find_key(&self, path: &str) -> Position {
        self.keys.get(path).copied().unwrap_or_else(|| self.find(path))
    }
}

enum Frame {
    Mapping { path: String, pending_key: Option<String> },
    Sequence { path: String, next: usize },
}

#[derive(Default)]
struct IndexBuilder {
    stack: Vec<Frame>,
    index: PositionIndex,
    done: bool,
}

impl IndexBuilder {
    /// Path of the node that starts now, or `None` when the node is a mapping key.
    fn next_node_path(&mut self, key_text: Option<&str>, mark: Marker) -> Option<String> {
        let pos = Position { line: mark.line(), column: mark.col() + 1 };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next }) => {
                let child = format!("{path}[{next}]");
                *next += 1;
                Some(child)
            }
            Some(Frame::Mapping { path, pending_key }) => match pending_key.take() {
                Some(key) => Some(join(path, &key)),
                None => {
                    // A key: complex (non-scalar) keys are given an empty name.
                    let key = key_text.unwrap_or("").to_string();
                    let full = join(path, &key);
                    match self.index.keys.entry(full) {
                        Entry::Occupied(seen) => self.index.duplicate_keys.push((seen.key().clone(), pos)),
                        Entry::Vacant(new) => {
                            new.insert(pos);
                        }
                    }
                    *pending_key = Some(key);
                    None
                }
            },
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        let pos = Position { line: mark.line(), column: mark.col() + 1 };
        self.record_at(path, pos);
    }

    /// Block collections are marked where the parser first sees their structure (the first
    /// key's indicator), which reads oddly in a message: point at their key instead.
    fn record_container(&mut self, path: &str, mark: Marker) {
        match self.index.keys.get(path) {
            Some(key) => self.record_at(path, *key),
            None if path.is_empty() => self.record_at(path, Position::START),
            None => self.record(path, mark),
        }
    }

    fn record_at(&mut self, path: &str, pos: Position) {
        // The first document wins; a duplicate key keeps its first position.
        self.index.values.entry(path.to_string()).or_insert(pos);
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

impl MarkedEventReceiver for IndexBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.done {
            return;
        }
        match event {
            Event::Scalar(text, ..) => {
                if let Some(path) = self.next_node_path(Some(&text), mark) {
                    self.record(&path, mark);
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.next_node_path(None, mark) {
                    self.record(&path, mark);
                }
            }
            Event::MappingStart(..) => {
                let path = self.next_node_path(None, mark).unwrap_or_default();
                self.record_container(&path, mark);
                self.stack.push(Frame::Mapping { path, pending_key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_node_path(None, mark).unwrap_or_default();
                self.record_container(&path, mark);
                self.stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "stack: demo\nimage:\n  name: \"x-{arch}\"\n  tags: { a: b }\nregions:\n  - us-east-1\n  - mars-1\n";

    #[test]
    fn finds_nested_values_and_sequence_items() {
        let index = PositionIndex::new(TEXT);
        assert_eq!(index.find("stack"), Position { line: 1, column: 8 });
        assert_eq!(index.find("image.name"), Position { line: 3, column: 9 });
        assert_eq!(index.find("image.tags.a"), Position { line: 4, column: 14 });
        assert_eq!(index.find("regions[1]"), Position { line: 7, column: 5 });
        assert_eq!(index.find_key("image.name"), Position { line: 3, column: 3 });
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let index = PositionIndex::new(TEXT);
        assert_eq!(index.find("image.description"), index.find("image"));
        assert_eq!(index.find("nothing.at.all"), Position { line: 1, column: 1 });
    }
}
