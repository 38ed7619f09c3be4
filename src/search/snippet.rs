//! HTML snippets and highlighting of search hits.
//!
//! Output is HTML: all of the user's text is escaped, and the only markup is
//! `<mark>`…`</mark>` around matching tokens. Tokens are found with the same
//! tokenizer as the query ([`super::query::tokens`]), so a word is marked
//! exactly when the query's normalized token matches it.

use std::collections::{HashSet, VecDeque};

use super::query::{Query, token_spans, tokens};

const ELLIPSIS: &str = "…";

/// Best window of `text` for `query`, HTML-escaped (& < > " ' escaped), with
/// each matching token wrapped in <mark>…</mark>.
///
/// A token matches if it equals an include-clause token (or starts with the
/// last token of a prefix clause); phrase tokens are marked individually and
/// exclude clauses never are. The window holds at most `max_tokens` tokens and
/// is the one with the most matches (the earliest on ties), with the slack
/// split evenly around its matches so they get context on both sides. "…"
/// marks an end where the window does not reach the start/end of text. If
/// nothing matches, the first `max_tokens` tokens are shown.
///
/// The window is cut at token boundaries and keeps everything between its
/// tokens; it includes text before its first / after its last token only when
/// it reaches the start / end of `text` (like FTS5's `snippet()`), trimmed of
/// whitespace. `max_tokens == 0` gives an empty string.
///
/// Linear in `text.len()`: one pass to score windows, one cheap pass to find
/// the window's byte range.
pub fn snippet(text: &str, query: &Query, max_tokens: usize) -> String {
    if max_tokens == 0 {
        return String::new();
    }
    let matcher = Matcher::new(query);
    let scan = best_window(text, &matcher, max_tokens);
    let (first, last) = match scan.best {
        Some((first, last)) => centre(first, last, scan.token_count, max_tokens),
        None => (0, max_tokens.min(scan.token_count).saturating_sub(1)),
    };
    let reaches_start = first == 0;
    let reaches_end = last + 1 >= scan.token_count;
    let (start, end) = byte_range(text, first, last, reaches_start, reaches_end);

    let mut out = String::new();
    if !reaches_start {
        out.push_str(ELLIPSIS);
    }
    let window = &text[start..end];
    push_marked(&mut out, window.trim(), &matcher);
    if !reaches_end {
        out.push_str(ELLIPSIS);
    }
    out
}

/// Same escaping + marking but over the whole (short) text, e.g. for titles.
pub fn highlight(text: &str, query: &Query) -> String {
    let mut out = String::with_capacity(text.len());
    push_marked(&mut out, text, &Matcher::new(query));
    out
}

/// Decides whether a normalized token of the text is a hit for the query.
struct Matcher<'q> {
    exact: HashSet<&'q str>,
    prefixes: Vec<&'q str>,
}

impl<'q> Matcher<'q> {
    fn new(query: &'q Query) -> Self {
        let mut exact = HashSet::new();
        let mut prefixes = Vec::new();
        for clause in &query.include {
            let Some((last, init)) = clause.tokens.split_last() else {
                continue;
            };
            exact.extend(init.iter().map(String::as_str));
            if clause.prefix {
                prefixes.push(last.as_str());
            } else {
                exact.insert(last.as_str());
            }
        }
        Matcher { exact, prefixes }
    }

    fn matches(&self, token: &str) -> bool {
        self.exact.contains(token) || self.prefixes.iter().any(|p| token.starts_with(p))
    }
}

struct Scan {
    token_count: usize,
    /// Token indices of the first and last match in the best window.
    best: Option<(usize, usize)>,
}

/// Finds the window of `max_tokens` tokens with the most matches.
///
/// Only a window ending on a match can beat the best so far, so it suffices to
/// keep the matches of the window that ends at the current token.
fn best_window(text: &str, matcher: &Matcher, max_tokens: usize) -> Scan {
    let mut in_window: VecDeque<usize> = VecDeque::new();
    let mut best = None;
    let mut best_count = 0;
    let mut token_count = 0;
    for (i, (_, _, token)) in tokens(text).enumerate() {
        token_count = i + 1;
        if !matcher.matches(&token) {
            continue;
        }
        in_window.push_back(i);
        while in_window.front().is_some_and(|&f| i - f >= max_tokens) {
            in_window.pop_front();
        }
        if in_window.len() > best_count {
            best_count = in_window.len();
            best = in_window.front().map(|&f| (f, i));
        }
    }
    Scan { token_count, best }
}

/// Grows the span of matches `first..=last` to `max_tokens` tokens, half the
/// slack on each side, shifted to stay within `0..token_count`.
fn centre(first: usize, last: usize, token_count: usize, max_tokens: usize) -> (usize, usize) {
    let slack = max_tokens - (last - first + 1);
    let start = first.saturating_sub(slack / 2);
    let end = start
        .saturating_add(max_tokens - 1)
        .min(token_count.saturating_sub(1));
    let start = start.min((end + 1).saturating_sub(max_tokens));
    (start, end)
}

/// Byte range of tokens `first..=last`, stretched to the start / end of
/// `text` when the window reaches them.
fn byte_range(
    text: &str,
    first: usize,
    last: usize,
    reaches_start: bool,
    reaches_end: bool,
) -> (usize, usize) {
    let mut start = 0;
    let mut end = text.len();
    for (i, (s, e)) in token_spans(text).enumerate().skip(first) {
        if i == first && !reaches_start {
            start = s;
        }
        if i == last {
            if !reaches_end {
                end = e;
            }
            break;
        }
    }
    (start, end)
}

/// Escapes `text` into `out`, wrapping matching tokens in `<mark>`.
fn push_marked(out: &mut String, text: &str, matcher: &Matcher) {
    let mut done = 0;
    for (start, end, token) in tokens(text) {
        if !matcher.matches(&token) {
            continue;
        }
        push_escaped(out, &text[done..start]);
        out.push_str("<mark>");
        push_escaped(out, &text[start..end]);
        out.push_str("</mark>");
        done = end;
    }
    push_escaped(out, &text[done..]);
}

fn push_escaped(out: &mut String, text: &str) {
    let mut done = 0;
    for (i, c) in text.char_indices() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[done..i]);
        out.push_str(entity);
        done = i + 1;
    }
    out.push_str(&text[done..]);
}
