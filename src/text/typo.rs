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

/// Whether a normalized query word one letter short of [`ONE_TYPO_CHARS`]
/// may stand for a word with one more letter, as a last resort: when no
/// note matches the query otherwise. A dropped letter is the most common
/// typo of a 5-letter word, and it leaves 4 letters, which the rule keeps
/// exact; so the note is lost outright. Only an insertion is allowed (a
/// 4-letter word has too many substitutions and swaps that are other
/// words), and only then, so that every query that finds something
/// still follows the rule above.
pub fn may_gain_a_letter(word: &str) -> bool {
    word.chars().all(char::is_alphabetic) && word.chars().count() == ONE_TYPO_CHARS - 1
}

/// The edits a normalized query word may be away from a matching word.
/// The engine looks at the nearest first: a word allowed 2 matches the
/// words 2 away only when none is 1 away.
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

    #[test]
    fn only_a_word_one_letter_short_of_a_typo_may_gain_a_letter() {
        assert!(may_gain_a_letter("cure"));
        assert!(may_gain_a_letter("größ"));
        assert!(!may_gain_a_letter("cur"));
        assert!(!may_gain_a_letter("curve"), "it has its typo already");
        assert!(!may_gain_a_letter("x11a"), "words with digits stay exact");
    }
}
