//! Typo tolerance: how many edits a query word may be away from a word of
//! the text and still match it.
//!
//! The rule is Meilisearch's, which people who pick a search engine expect:
//! words of 5 to 8 characters match with 1 edit, 9 or more with 2; shorter
//! words and anything with a digit in it (numbers, versions, ids) stay
//! exact. An edit is an insertion, a deletion, a substitution, or a swap of
//! two adjacent characters: the optimal string alignment distance, which
//! tantivy's Levenshtein automaton with `transposition_cost_one` accepts
//! by. The snippets mark the words the automaton found, so the index and
//! the snippets agree on what matched.

/// Characters a word needs before it may match with one edit.
pub const ONE_TYPO_CHARS: usize = 5;
/// Characters a word needs before it may match with two edits.
pub const TWO_TYPOS_CHARS: usize = 9;
/// Longer words stay exact: no real word is this long, and the automaton
/// that finds a word's neighbours grows with its length.
pub const MAX_TYPO_CHARS: usize = 32;

/// The edits a normalized query word may be away from a matching word.
pub fn max_edits(word: &str) -> u8 {
    if word.chars().any(|c| c.is_ascii_digit()) || !word.chars().all(char::is_alphabetic) {
        return 0;
    }
    match word.chars().count() {
        n if n > MAX_TYPO_CHARS => 0,
        n if n >= TWO_TYPOS_CHARS => 2,
        n if n >= ONE_TYPO_CHARS => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_of_typos_follows_the_length_of_the_word() {
        assert_eq!(max_edits("kube"), 0);
        assert_eq!(max_edits("linux"), 1);
        assert_eq!(max_edits("notebook"), 1);
        assert_eq!(max_edits("kubernetes"), 2);
        assert_eq!(max_edits("123456"), 0, "numbers stay exact");
        assert_eq!(max_edits("python3"), 0, "so do words with digits");
        assert_eq!(max_edits(&"a".repeat(33)), 0, "and words past any real one");
        assert_eq!(max_edits("größer"), 1, "characters, not bytes");
    }
}
