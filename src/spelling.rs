//! The nearest known word to a misspelt one, for "did you mean" hints.

/// The candidate closest to `word` (Damerau–Levenshtein) if it is at most two edits away; ties
/// go to the first in order.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(candidate, word), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// ` (did you mean `x`?)`, or nothing when no candidate is near.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates).map(|near| format!(" (did you mean `{near}`?)")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_words_are_found_and_far_ones_are_not() {
        assert_eq!(nearest("eu-wset-1", ["us-east-1", "eu-west-1"]), Some("eu-west-1"));
        assert_eq!(nearest("regoins", ["stack", "regions"]), Some("regions"));
        assert_eq!(nearest("colour", ["name", "architecture"]), None);
    }
}
