//! Every type and field problem of a manifest at once. serde stops at the first; the manifest's
//! JSON Schema, checked against the document read as plain YAML values, finds them all, each at
//! its own line and column.

use std::path::Path;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;

use super::locate::PositionIndex;
use super::raw::Manifest;
use super::{Diagnostic, Position};

/// The manifest schema, as a value to look fields up in and compiled to validate with.
fn schema() -> &'static (serde_json::Value, jsonschema::Validator) {
    static SCHEMA: OnceLock<(serde_json::Value, jsonschema::Validator)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = serde_json::to_value(schemars::schema_for!(Manifest)).expect("the schema serializes");
        let validator = jsonschema::validator_for(&schema).expect("the generated schema is a valid JSON Schema");
        (schema, validator)
    })
}

/// The schema's complaints about `text`, sorted by position; empty when the text is not plain
/// YAML data (serde's own error then stands) or the schema finds nothing.
pub(super) fn problems(path: &Path, text: &str, positions: &PositionIndex) -> Vec<Diagnostic> {
    // Not a mapping at all (an empty document, a list): serde's one complaint says it best.
    let Ok(document @ serde_json::Value::Object(_)) = serde_yaml_ng::from_str::<serde_json::Value>(text) else {
        return vec![];
    };
    let at = |position: Position, message: String| Diagnostic { file: path.to_path_buf(), position, message };
    let (schema, validator) = schema();
    let mut found = Vec::new();
    for error in validator.iter_errors(&document) {
        let pointer = error.instance_path().to_string();
        let place = dotted(&pointer);
        let prefix = if place.is_empty() { String::new() } else { format!("{place}: ") };
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = fields_at(schema, &pointer);
                for key in unexpected {
                    let key_path = if place.is_empty() { key.clone() } else { format!("{place}.{key}") };
                    let message = format!("{prefix}unknown field `{key}`{}", expected(key, &known));
                    found.push(at(positions.find_key(&key_path), message));
                }
            }
            ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
                // An optional field's schema is "this, or null": the complaint about the
                // first branch is the one that says what is wrong.
                let branch = context.iter().flatten().find(|e| !e.to_string().ends_with("is not of type \"null\""));
                let message = branch.map_or_else(|| error.to_string(), ToString::to_string);
                found.push(at(positions.find(&place), format!("{prefix}{message}")));
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().map_or_else(|| property.to_string(), str::to_string);
                found.push(at(positions.find(&place), format!("{prefix}missing field `{name}`")));
            }
            _ => found.push(at(positions.find(&place), format!("{prefix}{error}"))),
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The field names the schema allows in the object at `pointer` of a document.
fn fields_at(schema: &serde_json::Value, pointer: &str) -> Vec<String> {
    let mut at = resolve(schema, schema);
    for segment in pointer.split('/').skip(1) {
        let next = match segment.parse::<usize>() {
            Ok(_) => at.get("items"),
            Err(_) => at.get("properties").and_then(|p| p.get(segment)),
        };
        match next {
            Some(next) => at = resolve(schema, next),
            None => return vec![],
        }
    }
    at.get("properties").and_then(|p| p.as_object()).map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// Follows `$ref`s, and into the object branch of an `anyOf`/`oneOf` (an optional object).
fn resolve<'a>(schema: &'a serde_json::Value, mut at: &'a serde_json::Value) -> &'a serde_json::Value {
    for _ in 0..16 {
        if let Some(reference) = at.get("$ref").and_then(|r| r.as_str()) {
            match reference.strip_prefix('#').and_then(|p| schema.pointer(p)) {
                Some(target) => at = target,
                None => return at,
            }
        } else if let Some(branches) = at.get("anyOf").or_else(|| at.get("oneOf")).and_then(|b| b.as_array()) {
            let object = branches.iter().map(|b| resolve(schema, b)).find(|b| b.get("properties").is_some());
            match object {
                Some(object) => at = object,
                None => return at,
            }
        } else {
            return at;
        }
    }
    at
}

/// ", expected one of …" with the nearest field first when one is close to `key`.
fn expected(key: &str, known: &[String]) -> String {
    if known.is_empty() {
        return String::new();
    }
    let near = crate::spelling::hint(key, known.iter().map(String::as_str));
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    format!("{near}, expected one of {}", list.join(", "))
}

/// A JSON pointer (`/image/tags/0`) as the position index writes paths (`image.tags[0]`).
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dotted;

    #[test]
    fn pointers_become_index_paths() {
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/image/architecture"), "image.architecture");
        assert_eq!(dotted("/regions/2"), "regions[2]");
        assert_eq!(dotted("/catalog/ssm/parameters/0/name"), "catalog.ssm.parameters[0].name");
    }
}
