//! Parsing of the user's search string `q` into a [`Query`], and the
//! tokenizer that both the index and the snippets use.
//!
//! The user's text never reaches an engine as syntax: every token is
//! re-derived by [`tokens`] (so it only holds letters and digits), which
//! makes operators such as `AND`, `NEAR`, `:` or `^` plain words.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// One thing to match: a sequence of tokens that must appear adjacent (a
/// phrase; a single word is a 1-token phrase). `prefix` = the LAST token is a
/// prefix (`word*`: every completion matches alike).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clause {
    pub tokens: Vec<String>,
    pub prefix: bool,
    /// A lone word may also match words this many edits away
    /// ([`super::typo`]); 0 for phrases, prefixes and exclusions.
    pub typos: u8,
    /// A lone last word being typed: it matches as typed and, ranked
    /// below, as the start of a longer word.
    pub completes: bool,
    /// A lone word that may also match a word with one more letter when
    /// nothing matches otherwise ([`super::typo::may_gain_a_letter`]).
    pub gains_a_letter: bool,
}

/// What a query tolerates besides the words as typed (the API's `typos`
/// and `prefix_last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tolerance {
    pub typos: bool,
    pub prefix_last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub include: Vec<Clause>,
    pub exclude: Vec<Clause>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("the query is empty")]
    Empty,
    #[error("the query is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the query has more than {max} terms")]
    TooManyTerms { max: usize },
    #[error("the query only excludes terms; add at least one term to search for")]
    OnlyExclusions,
}

pub const MAX_QUERY_BYTES: usize = 2048;
/// Limit on the words of a query, counted over all clauses, so a phrase of
/// 3 words counts 3. The index reads one posting list per word (and, with
/// typos or the last word completed, per word it stands for), so the cost
/// of a query grows with its words rather than its clauses; 32 words keep
/// the worst query within a request's budget on a 100k-note index.
pub const MAX_TERMS: usize = 32;
/// A prefix shorter than this is matched as a whole word instead (avoid
/// expanding `a*` over the whole index).
pub const MIN_PREFIX_CHARS: usize = 2;
/// Tokens longer than this are truncated at a char boundary, in the text as
/// in the query, so they still match. No real word is that long, and it
/// keeps every term far below the engine's limit on a term's length.
pub const MAX_TOKEN_BYTES: usize = 256;

/// Parses the user's search string.
///
/// Words must all match; `"exact phrase"`; `prefix*`; `-excluded` (also
/// `-"phrase"`, `-prefix*`). A word with inner punctuation such as `e-mail` is
/// the phrase `"e mail"`, as the tokenizer indexes it. Input that holds no searchable
/// token at all (e.g. `"!!!"`, `"😀"`) is `Ok(Query::default())`, which the
/// caller answers with "no hits" without asking the database.
///
/// # Errors
///
/// [`QueryError::TooLong`] over [`MAX_QUERY_BYTES`] (checked first, before
/// any work); [`QueryError::Empty`] for blank input;
/// [`QueryError::TooManyTerms`] over [`MAX_TERMS`] words after dropping
/// duplicates; [`QueryError::OnlyExclusions`] when every clause is excluded.
pub fn parse(q: &str) -> Result<Query, QueryError> {
    parse_with(q, Tolerance::default())
}

/// [`parse`], then: with `typos`, each lone included word may match with
/// as many edits as [`super::typo::max_edits`] allows; with `prefix_last`,
/// when `q` does not end in white space and its last term is an included
/// lone word, that word also completes (as-you-type).
///
/// # Errors
///
/// As [`parse`].
pub fn parse_with(q: &str, tolerance: Tolerance) -> Result<Query, QueryError> {
    let mut query = parse_terms(q)?;
    if tolerance.typos {
        for c in &mut query.include {
            if let [word] = c.tokens.as_slice()
                && !c.prefix
            {
                c.typos = super::typo::max_edits(word);
                c.gains_a_letter = super::typo::may_gain_a_letter(word);
            }
        }
    }
    let typing = !q.ends_with(char::is_whitespace);
    if tolerance.prefix_last
        && typing
        && let Some(last) = (RawTerms { rest: q }).last()
        && !last.exclude
        && !last.prefix
        && !last.quoted
        && let Some(clause) = last.to_clause()
        && clause.tokens.len() == 1
        && let Some(c) = query
            .include
            .iter_mut()
            .find(|c| c.tokens == clause.tokens && !c.prefix)
    {
        c.completes = true;
    }
    Ok(query)
}

fn parse_terms(q: &str) -> Result<Query, QueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong {
            max: MAX_QUERY_BYTES,
        });
    }
    if q.trim().is_empty() {
        return Err(QueryError::Empty);
    }
    let mut query = Query::default();
    let mut words = 0;
    for term in (RawTerms { rest: q }) {
        let Some(clause) = term.to_clause() else {
            continue;
        };
        let list = if term.exclude {
            &mut query.exclude
        } else {
            &mut query.include
        };
        if list.contains(&clause) {
            continue;
        }
        words += clause.tokens.len();
        if words > MAX_TERMS {
            return Err(QueryError::TooManyTerms { max: MAX_TERMS });
        }
        list.push(clause);
    }
    if query.include.is_empty() && !query.exclude.is_empty() {
        return Err(QueryError::OnlyExclusions);
    }
    Ok(query)
}

/// One word or phrase as the user typed it, before tokenizing.
struct RawTerm<'a> {
    text: &'a str,
    exclude: bool,
    prefix: bool,
    quoted: bool,
}

impl RawTerm<'_> {
    /// `None` when nothing searchable is left (punctuation, emoji, a lone `-`).
    fn to_clause(&self) -> Option<Clause> {
        let tokens: Vec<String> = tokens(self.text).map(|(_, _, token)| token).collect();
        let last = tokens.last()?;
        let prefix = self.prefix && last.chars().count() >= MIN_PREFIX_CHARS;
        Some(Clause {
            tokens,
            prefix,
            ..Clause::default()
        })
    }
}

/// Splits `q` into words and phrases; never fails, whatever the input.
struct RawTerms<'a> {
    rest: &'a str,
}

impl<'a> Iterator for RawTerms<'a> {
    type Item = RawTerm<'a>;

    fn next(&mut self) -> Option<RawTerm<'a>> {
        self.rest = self.rest.trim_start();
        if self.rest.is_empty() {
            return None;
        }
        // Only the first `-` negates: `--foo` is `-` applied to `-foo`, which
        // tokenizes to `foo`, and a lone `-`/`--` leaves no token and vanishes.
        let exclude = match self.rest.strip_prefix('-') {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        };
        let quoted = self.rest.starts_with('"');
        let (text, prefix) = match self.rest.strip_prefix('"') {
            Some(after_quote) => self.phrase(after_quote),
            None => self.word(),
        };
        Some(RawTerm {
            text,
            exclude,
            prefix,
            quoted,
        })
    }
}

impl<'a> RawTerms<'a> {
    fn phrase(&mut self, after_quote: &'a str) -> (&'a str, bool) {
        let Some(close) = after_quote.find('"') else {
            // Unterminated: the phrase runs to the end of the input.
            self.rest = "";
            return (after_quote, ends_with_star(after_quote));
        };
        let body = &after_quote[..close];
        let after = &after_quote[close + 1..];
        self.rest = after.trim_start_matches('*');
        // A star inside the quotes (`"new yo*"`) also counts, so that an
        // unterminated `"new yo*` still searches as a prefix.
        let prefix = after.len() != self.rest.len() || ends_with_star(body);
        (body, prefix)
    }

    fn word(&mut self) -> (&'a str, bool) {
        // A quote ends the word: `foo"bar baz"` is the word `foo` followed by a
        // phrase, rather than a quote swallowed into a word.
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        (word, word.ends_with('*'))
    }
}

fn ends_with_star(text: &str) -> bool {
    text.trim_end().ends_with('*')
}

/// Tokenize like FTS5 `unicode61 remove_diacritics 2` (the engine this
/// project used first; kept so queries match the same words): maximal runs of
/// alphanumeric chars, case-folded to lower case, with the accents of Latin
/// letters removed (e.g. "Café" -> "cafe").
/// Yields `(byte_start, byte_end, normalized_token)` relative to `text`; every
/// token is non-empty.
///
/// The details copy what SQLite's tokenizer does (checked against it code
/// point by code point):
/// - combining marks split words, as in FTS5, except the few accents FTS5
///   treats as part of a word and drops (`U+0301` in a decomposed "e\u{301}");
/// - private-use chars are word chars, as in FTS5;
/// - only Latin letters lose their accents; FTS5 keeps "й", "ё" and Greek
///   tonos, and folding those too (plain NFD) would make Russian or Greek
///   words with them unfindable;
/// - case folding, not lower-casing: "ς" is "σ".
///
/// Letters newer than SQLite's Unicode tables may still tokenize differently.
pub fn tokens(text: &str) -> impl Iterator<Item = (usize, usize, String)> + '_ {
    token_spans(text).map(move |(start, end)| (start, end, normalize(&text[start..end])))
}

/// Token boundaries only, for callers that need positions but not the
/// (allocating) normalized form. Every span normalizes to a non-empty token,
/// because a span always starts with a letter, digit or private-use char.
///
/// Chinese, Japanese and Korean are written without spaces between words
/// (Korean between phrases of words), so a run of their characters is one
/// token per character, and a word typed in them is a phrase of its
/// characters: it matches where they stand together, as Lucene's standard
/// analyzer does for ideographs. No dictionary is needed to build or run.
pub fn token_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = chars.find(|&(_, c)| starts_token(c))?;
        if is_cjk(first) {
            return Some((start, start + first.len_utf8()));
        }
        let mut end = text.len();
        while let Some(&(i, c)) = chars.peek() {
            if !continues_token(c) || is_cjk(c) {
                end = i;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

/// Han ideographs, kana and Hangul syllables: the scripts written without
/// spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'   // Hiragana, Katakana
        | '\u{31F0}'..='\u{31FF}' // Katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}' // CJK extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
        | '\u{AC00}'..='\u{D7AF}' // Hangul syllables
        | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
        | '\u{FF66}'..='\u{FF9F}' // half-width Katakana
        | '\u{20000}'..='\u{3134F}' // extensions B to G
    )
}

fn starts_token(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    (c.is_alphanumeric() && !is_combining_mark(c)) || is_private_use(c)
}

fn continues_token(c: char) -> bool {
    starts_token(c) || is_fts5_diacritic(c)
}

fn is_private_use(c: char) -> bool {
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

/// The combining accents FTS5's unicode61 counts as word chars and removes
/// (sqlite3Fts5UnicodeIsdiacritic); every other mark separates words there.
fn is_fts5_diacritic(c: char) -> bool {
    matches!(
        c,
        '\u{300}'..='\u{304}'
            | '\u{306}'..='\u{30C}'
            | '\u{30F}'
            | '\u{311}'
            | '\u{31B}'
            | '\u{323}'..='\u{328}'
            | '\u{32D}'
            | '\u{32E}'
            | '\u{330}'
            | '\u{331}'
    )
}

fn normalize(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    normalize_into(token, &mut out);
    out
}

/// Appends the normalized form of one token span (from [`token_spans`]) to
/// `out`, truncated to [`MAX_TOKEN_BYTES`] as query tokens are, so an
/// indexer can reuse one buffer and a long token still matches.
pub fn normalize_into(token: &str, out: &mut String) {
    let start = out.len();
    if token.is_ascii() {
        out.extend(token.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        // Per char, not str::to_lowercase: FTS5 has no final-sigma rule.
        for c in token.chars().flat_map(char::to_lowercase) {
            if !is_fts5_diacritic(c) {
                out.push(strip_latin_accents(fold_variant(c)));
            }
        }
    }
    if out.len() - start > MAX_TOKEN_BYTES {
        let end = start + out[start..].floor_char_boundary(MAX_TOKEN_BYTES);
        out.truncate(end);
    }
}

/// FTS5 case-folds rather than lower-cases; these are the letters where the
/// two differ, so "ΛΟΓΟΣ" (σ) and "λόγος" (ς) are the same word, as in FTS5.
fn fold_variant(c: char) -> char {
    match c {
        'ς' => 'σ',
        'ϐ' => 'β',
        'ϑ' => 'θ',
        'ϕ' => 'φ',
        'ϖ' => 'π',
        'ϰ' => 'κ',
        'ϱ' => 'ρ',
        'ϵ' => 'ε',
        'µ' => 'μ',
        'ſ' | 'ẛ' => 's',
        '\u{1FBE}' => 'ι',
        _ => c,
    }
}

/// "é" -> "e", "ǖ" -> "u", "Å" (U+212B) -> "a": a char whose canonical
/// decomposition is an ASCII letter plus combining marks becomes that letter.
fn strip_latin_accents(c: char) -> char {
    // Missing from FTS5's table, which keeps them as they are.
    if c == 'ǡ' {
        return c;
    }
    let mut base = None;
    let mut marks_only = true;
    decompose_canonical(c, |d| match base {
        None => base = Some(d),
        Some(_) => marks_only &= is_combining_mark(d),
    });
    match base {
        Some(b) if b != c && b.is_ascii_alphabetic() && marks_only => b.to_ascii_lowercase(),
        _ => c,
    }
}

/// The text as the search index sees it: normalized tokens joined by spaces
/// (how extracted attachment text is kept).
pub fn search_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (_, _, token) in tokens(text) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clause(tokens: &[&str], prefix: bool) -> Clause {
        Clause {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            prefix,
            ..Clause::default()
        }
    }

    fn word(token: &str) -> Clause {
        clause(&[token], false)
    }

    fn query(include: Vec<Clause>, exclude: Vec<Clause>) -> Query {
        Query { include, exclude }
    }

    fn token_strings(text: &str) -> Vec<String> {
        tokens(text).map(|(_, _, t)| t).collect()
    }

    #[test]
    fn words_must_all_match() {
        assert_eq!(
            parse("hello  World").unwrap(),
            query(vec![word("hello"), word("world")], vec![])
        );
    }

    #[test]
    fn quoted_phrase() {
        assert_eq!(
            parse(r#"say "New York" now"#).unwrap(),
            query(
                vec![word("say"), clause(&["new", "york"], false), word("now")],
                vec![]
            )
        );
    }

    #[test]
    fn unterminated_quote_runs_to_the_end() {
        assert_eq!(
            parse(r#"a1 "new york -city"#).unwrap(),
            query(
                vec![word("a1"), clause(&["new", "york", "city"], false)],
                vec![]
            )
        );
    }

    #[test]
    fn quote_inside_a_word_starts_a_phrase() {
        assert_eq!(
            parse(r#"foo"bar baz"qux"#).unwrap(),
            query(
                vec![word("foo"), clause(&["bar", "baz"], false), word("qux")],
                vec![]
            )
        );
    }

    #[test]
    fn empty_phrases_are_dropped() {
        assert_eq!(
            parse(r#"x1 "" " " "!?""#).unwrap(),
            query(vec![word("x1")], vec![])
        );
    }

    #[test]
    fn tolerance_marks_typos_and_the_word_being_typed() {
        let t = Tolerance {
            typos: true,
            prefix_last: true,
        };
        let shape = |q: &Query| {
            q.include
                .iter()
                .map(|c| (c.typos, c.completes))
                .collect::<Vec<_>>()
        };
        let q = parse_with("Kubernetes linux pod", t).unwrap();
        assert_eq!(shape(&q), vec![(2, false), (1, false), (0, true)]);
        // A trailing space: the last word is finished.
        let q = parse_with("linux pod ", t).unwrap();
        assert_eq!(shape(&q), vec![(1, false), (0, false)]);
        // Phrases, prefixes, exclusions and numbers stay exact; a phrase
        // or an exclusion last is not being completed.
        let q = parse_with(r#""linux kernel" kuber* 123456 -windows"#, t).unwrap();
        assert_eq!(shape(&q), vec![(0, false), (0, false), (0, false)]);
        assert_eq!(q.exclude[0].typos, 0);
        let q = parse_with(r#"linux "kern"#, t).unwrap();
        assert_eq!(shape(&q), vec![(1, false), (0, false)]);
        let gains = |q: &str| {
            parse_with(q, t)
                .unwrap()
                .include
                .iter()
                .map(|c| c.gains_a_letter)
                .collect::<Vec<_>>()
        };
        assert_eq!(gains("hfsc cure curve"), [true, true, false]);
        assert_eq!(gains(r#""hfsc cure" cure* x11a"#), [false, false, false]);
        let off = Tolerance {
            typos: false,
            prefix_last: true,
        };
        assert!(!parse_with("cure", off).unwrap().include[0].gains_a_letter);
        // Off: exactly what parse gives.
        let q = parse_with("kubernetes pod", Tolerance::default()).unwrap();
        assert_eq!(q, parse("kubernetes pod").unwrap());
    }

    #[test]
    fn prefix_word() {
        assert_eq!(
            parse("hel* wor**").unwrap(),
            query(vec![clause(&["hel"], true), clause(&["wor"], true)], vec![])
        );
    }

    #[test]
    fn star_inside_a_word_is_punctuation() {
        assert_eq!(
            parse("*foo f*oo").unwrap(),
            query(vec![word("foo"), clause(&["f", "oo"], false)], vec![])
        );
    }

    #[test]
    fn prefix_phrase_after_closing_quote() {
        assert_eq!(
            parse(r#""new yo"* next"#).unwrap(),
            query(vec![clause(&["new", "yo"], true), word("next")], vec![])
        );
    }

    #[test]
    fn prefix_phrase_with_star_inside_quotes() {
        let expected = query(vec![clause(&["new", "yo"], true)], vec![]);
        assert_eq!(parse(r#""new yo*""#).unwrap(), expected);
        assert_eq!(parse(r#""new yo*"#).unwrap(), expected);
    }

    #[test]
    fn short_prefix_is_a_whole_word() {
        assert_eq!(
            parse("a* é* ab*").unwrap(),
            query(vec![word("a"), word("e"), clause(&["ab"], true)], vec![])
        );
        // Counted in chars, not bytes.
        assert_eq!(parse("日*").unwrap(), query(vec![word("日")], vec![]));
    }

    #[test]
    fn exclusions() {
        assert_eq!(
            parse(r#"cats -dogs -"hot dog" -mou*"#).unwrap(),
            query(
                vec![word("cats")],
                vec![
                    word("dogs"),
                    clause(&["hot", "dog"], false),
                    clause(&["mou"], true)
                ]
            )
        );
    }

    #[test]
    fn lone_dashes_are_ignored() {
        assert_eq!(
            parse("cats - -- --- dogs").unwrap(),
            query(vec![word("cats"), word("dogs")], vec![])
        );
    }

    #[test]
    fn double_dash_still_excludes() {
        assert_eq!(
            parse("cats --dogs").unwrap(),
            query(vec![word("cats")], vec![word("dogs")])
        );
    }

    #[test]
    fn hyphenated_word_is_a_phrase() {
        assert_eq!(
            parse("foo-bar e-mail*").unwrap(),
            query(
                vec![clause(&["foo", "bar"], false), clause(&["e", "mail"], true)],
                vec![]
            )
        );
    }

    #[test]
    fn diacritics_and_case_are_folded() {
        assert_eq!(
            parse("Café NAÏVE").unwrap(),
            query(vec![word("cafe"), word("naive")], vec![])
        );
    }

    #[test]
    fn operators_are_ordinary_words() {
        let q = parse("cats AND dogs OR NOT mice NEAR").unwrap();
        let words: Vec<_> = ["cats", "and", "dogs", "or", "not", "mice", "near"]
            .into_iter()
            .map(word)
            .collect();
        assert_eq!(q, query(words, vec![]));
    }

    #[test]
    fn duplicates_are_removed() {
        assert_eq!(
            parse(r#"Foo foo FOO "foo" bar* bar* bar -x -X"#).unwrap(),
            query(
                vec![word("foo"), clause(&["bar"], true), word("bar")],
                vec![word("x")]
            )
        );
    }

    #[test]
    fn blank_is_empty() {
        for q in ["", " ", "\t\n ", "\u{3000}"] {
            assert_eq!(parse(q), Err(QueryError::Empty), "{q:?}");
        }
    }

    #[test]
    fn too_long() {
        let q = "a".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(
            parse(&q),
            Err(QueryError::TooLong {
                max: MAX_QUERY_BYTES
            })
        );
        assert!(parse(&"a".repeat(MAX_QUERY_BYTES)).is_ok());
        // Whitespace counts too: the check comes before any parsing.
        assert!(matches!(
            parse(&" ".repeat(MAX_QUERY_BYTES + 1)),
            Err(QueryError::TooLong { .. })
        ));
    }

    #[test]
    fn too_many_terms() {
        let words = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>();
        assert!(parse(&words(MAX_TERMS).join(" ")).is_ok());
        let too_many = Err(QueryError::TooManyTerms { max: MAX_TERMS });
        assert_eq!(parse(&words(MAX_TERMS + 1).join(" ")), too_many);
        // Exclusions count, and so does every word of a phrase.
        let mixed = format!("a1 -{}", words(MAX_TERMS).join(" -"));
        assert_eq!(parse(&mixed), too_many);
        let phrase = format!("\"{}\"", words(MAX_TERMS + 1).join(" "));
        assert_eq!(parse(&phrase), too_many);
        assert_eq!(parse(&"a-".repeat(MAX_TERMS + 1)), too_many);
        // Duplicates and dropped clauses do not.
        assert!(parse(&"same ".repeat(100)).is_ok());
        assert!(parse(&format!("{} !! 😀", words(MAX_TERMS).join(" "))).is_ok());
    }

    #[test]
    fn only_exclusions() {
        assert_eq!(parse("-foo -\"a b\""), Err(QueryError::OnlyExclusions));
        assert_eq!(parse("-foo !!"), Err(QueryError::OnlyExclusions));
    }

    #[test]
    fn nothing_searchable_is_an_empty_query() {
        for q in ["!!!", "😀", "***", "\0", "- --", r#""""#, "-!!", "\u{301}"] {
            assert_eq!(parse(q), Ok(Query::default()), "{q:?}");
        }
    }

    #[test]
    fn long_tokens_are_truncated_at_a_char_boundary() {
        let q = "é".repeat(200) + &"ü".repeat(200);
        let token = &parse(&q).unwrap().include[0].tokens[0];
        assert_eq!(token.len(), MAX_TOKEN_BYTES);
        assert!(token.chars().all(|c| c == 'e' || c == 'u'));

        // Three bytes a character (Thai; ideographs are a token each).
        let q = "ก".repeat(100);
        let token = &parse(&q).unwrap().include[0].tokens[0];
        assert_eq!(token.len(), 255);
    }

    #[test]
    fn tokens_yield_byte_offsets_of_the_original() {
        let text = "¿Qué tal, señor? e-mail_42";
        let got: Vec<_> = tokens(text).collect();
        let expected = [
            ("Qué", "que"),
            ("tal", "tal"),
            ("señor", "senor"),
            ("e", "e"),
            ("mail", "mail"),
            ("42", "42"),
        ];
        assert_eq!(got.len(), expected.len());
        for ((start, end, token), (original, normalized)) in got.iter().zip(expected) {
            assert_eq!(&text[*start..*end], original);
            assert_eq!(token, normalized);
        }
    }

    #[test]
    fn tokens_follow_fts5_unicode61() {
        // Expected values are what SQLite's unicode61 remove_diacritics 2 indexes.
        let cases: &[(&str, &[&str])] = &[
            ("Café", &["cafe"]),
            ("nai\u{308}ve x\u{301}y", &["naive", "xy"]),
            ("ǖ ệ Å İstanbul", &["u", "e", "a", "istanbul"]),
            ("ø Łódź straße ﬁne", &["ø", "łodz", "straße", "ﬁne"]),
            ("йод ЁЖ άλφα", &["йод", "ёж", "άλφα"]),
            ("ΛΟΓΟΣ λόγος", &["λογοσ", "λόγοσ"]),
            // Not FTS5's: one token per character of these scripts.
            (
                "한국어 日本語です",
                &["한", "국", "어", "日", "本", "語", "で", "す"],
            ),
            ("東京tower都", &["東", "京", "tower", "都"]),
            ("x² ½ ① Ⅻ", &["x²", "½", "①", "ⅻ"]),
            ("emoji😀z snake_case", &["emoji", "z", "snake", "case"]),
            ("q\u{E000}r", &["q\u{E000}r"]),
            ("हिंदी", &["ह", "द"]),
            ("a\u{5B0}b", &["a", "b"]),
            ("\u{301}lone \u{301}", &["lone"]),
        ];
        for (text, expected) in cases {
            assert_eq!(token_strings(text), *expected, "{text:?}");
        }
    }

    fn nasty_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_owned()),
            Just("*".to_owned()),
            Just("-".to_owned()),
            Just(" ".to_owned()),
            Just("\0".to_owned()),
            Just("\u{301}".to_owned()),
            "[a-zA-Zé0-9]{1,6}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics_on_any_string(q in any::<String>()) {
            let _ = parse(&q);
        }

        #[test]
        fn parse_never_panics_on_syntax_soup(q in nasty_string()) {
            let _ = parse(&q);
        }

        #[test]
        fn parse_handles_long_input(q in nasty_string(), n in 1usize..200) {
            let long = q.repeat(n);
            match parse(&long) {
                Err(QueryError::TooLong { .. }) => prop_assert!(long.len() > MAX_QUERY_BYTES),
                _ => prop_assert!(long.len() <= MAX_QUERY_BYTES),
            }
        }

        #[test]
        fn clauses_come_from_the_input(q in nasty_string()) {
            let Ok(query) = parse(&q) else { return Ok(()) };
            let input_tokens = token_strings(&q);
            for clause in query.include.iter().chain(&query.exclude) {
                prop_assert!(clause.tokens.len() <= MAX_TERMS);
                for t in &clause.tokens {
                    prop_assert!(!t.is_empty());
                    prop_assert!(input_tokens.iter().any(|i| i.starts_with(t.as_str())));
                    prop_assert!(t.chars().all(continues_token));
                }
            }
        }

        #[test]
        fn tokens_are_within_bounds_and_non_empty(text in any::<String>()) {
            let mut last_end = 0;
            for (start, end, token) in tokens(&text) {
                prop_assert!(last_end <= start && start < end && end <= text.len());
                prop_assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
                prop_assert!(!token.is_empty());
                last_end = end;
            }
        }
    }
}
