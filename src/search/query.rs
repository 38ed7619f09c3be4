//! Parsing of the user's search string `q` into a [`Query`], and rendering it
//! for SQLite FTS5.
//!
//! The user's text never reaches the database as syntax: every token is
//! re-derived by [`tokens`] (so it only holds letters and digits) and then
//! quoted, which makes FTS5 operators such as `AND`, `NEAR`, `:` or `^` plain
//! words.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// One thing to match: a sequence of tokens that must appear adjacent (a
/// phrase; a single word is a 1-token phrase). `prefix` = the LAST token is a
/// prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub tokens: Vec<String>,
    pub prefix: bool,
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
/// 3 words counts 3. FTS5 reads one doclist per token, so the cost of a query
/// grows with its words rather than its clauses: a single 1000-word phrase took
/// seconds on a 100k-row index, 32 words about 0.2 s.
pub const MAX_TERMS: usize = 32;
/// A prefix shorter than this is matched as a whole word instead (avoid
/// expanding `a*` over the whole index).
pub const MIN_PREFIX_CHARS: usize = 2;
/// Query tokens longer than this are truncated at a char boundary. No real
/// word is that long, and it keeps every token well below PostgreSQL's limit
/// on a tsquery word (2047 bytes), which would otherwise be an error there.
pub const MAX_TOKEN_BYTES: usize = 256;

/// Parses the user's search string.
///
/// Blank input is [`QueryError::Empty`]; input that holds no searchable token
/// at all (e.g. `"!!!"`, `"😀"`) is `Ok(Query::default())`, which the caller
/// answers with "no hits".
pub fn parse(q: &str) -> Result<Query, QueryError> {
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
}

impl RawTerm<'_> {
    /// `None` when nothing searchable is left (punctuation, emoji, a lone `-`).
    fn to_clause(&self) -> Option<Clause> {
        let tokens: Vec<String> = tokens(self.text)
            .map(|(_, _, token)| truncate_token(token))
            .collect();
        let last = tokens.last()?;
        let prefix = self.prefix && last.chars().count() >= MIN_PREFIX_CHARS;
        Some(Clause { tokens, prefix })
    }
}

fn truncate_token(mut token: String) -> String {
    let end = token.floor_char_boundary(MAX_TOKEN_BYTES);
    token.truncate(end);
    token
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
        let (text, prefix) = match self.rest.strip_prefix('"') {
            Some(after_quote) => self.phrase(after_quote),
            None => self.word(),
        };
        Some(RawTerm {
            text,
            exclude,
            prefix,
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

/// Tokenize like FTS5 unicode61 + remove_diacritics: maximal runs of
/// alphanumeric chars (char::is_alphanumeric), case-folded to lower case,
/// diacritics removed (e.g. "Café" -> "cafe").
/// Yields (byte_start, byte_end, normalized_token) relative to `text`.
///
/// The details follow what SQLite's unicode61 does (checked against it), since
/// a token we derive differently from FTS5 simply never matches:
/// - combining marks split words, except the few accents FTS5 treats as part
///   of a word and drops (`U+0301` in a decomposed "e\u{301}");
/// - private-use chars are word chars, as in FTS5;
/// - only Latin letters lose their accents ("é" -> "e"); FTS5 keeps "й", "ё"
///   and Greek tonos, so folding those would make Russian or Greek words
///   unfindable.
pub fn tokens(text: &str) -> impl Iterator<Item = (usize, usize, String)> + '_ {
    token_spans(text).map(move |(start, end)| (start, end, normalize(&text[start..end])))
}

/// Token boundaries only, for callers that need positions but not the
/// (allocating) normalized form. Every span normalizes to a non-empty token,
/// because a span always starts with a letter, digit or private-use char.
pub(super) fn token_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.find(|&(_, c)| starts_token(c))?;
        let mut end = text.len();
        while let Some(&(i, c)) = chars.peek() {
            if !continues_token(c) {
                end = i;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
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
    if token.is_ascii() {
        return token.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(token.len());
    // Per char, not str::to_lowercase: FTS5 has no final-sigma rule.
    for c in token.chars().flat_map(char::to_lowercase) {
        if !is_fts5_diacritic(c) {
            out.push(strip_latin_accents(c));
        }
    }
    out
}

/// "é" -> "e", "ǖ" -> "u", "Å" (U+212B) -> "a": a char whose canonical
/// decomposition is an ASCII letter plus combining marks becomes that letter.
fn strip_latin_accents(c: char) -> char {
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

/// Render for SQLite FTS5 MATCH, e.g. `("new york" AND "caf" *) NOT "bar"`.
///
/// Every clause is one double-quoted FTS5 string (any `"` doubled), so FTS5
/// sees only phrases, never operators or column filters. The includes are
/// parenthesized because FTS5's NOT binds tighter than AND.
///
/// Precondition: `query.include` is non-empty. Without it there is nothing
/// FTS5 could search for; `""` is returned then, an empty phrase FTS5 accepts
/// and which matches no row, so a forgotten check still cannot fail the query.
pub fn to_fts5(query: &Query) -> String {
    if query.include.is_empty() {
        return "\"\"".to_owned();
    }
    let mut out = String::from("(");
    for (i, clause) in query.include.iter().enumerate() {
        if i > 0 {
            out.push_str(" AND ");
        }
        push_fts5_clause(&mut out, clause);
    }
    out.push(')');
    for clause in &query.exclude {
        out.push_str(" NOT ");
        push_fts5_clause(&mut out, clause);
    }
    out
}

fn push_fts5_clause(out: &mut String, clause: &Clause) {
    out.push('"');
    for (i, token) in clause.tokens.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&token.replace('"', "\"\""));
    }
    out.push('"');
    if clause.prefix {
        out.push_str(" *");
    }
}
