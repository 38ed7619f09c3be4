//! HTML snippets and highlighting of search hits.
//!
//! Output is HTML: all of the user's text is escaped, and the only markup is
//! `<mark>`…`</mark>` around matching tokens. Tokens are found with the same
//! tokenizer as the query ([`super::query::tokens`]), so a word is marked
//! exactly when the query's normalized token matches it.

use std::collections::VecDeque;

use super::query::{MAX_TOKEN_BYTES, Query, normalize_into, token_spans};

const ELLIPSIS: &str = "…";

/// Best window of `text` for `query`, HTML-escaped (& < > " ' escaped), with
/// each matching token wrapped in <mark>…</mark>.
///
/// A token matches if it equals an include-clause token (or starts with the
/// last token of a prefix clause or of a word being typed); phrase tokens are
/// marked individually and exclude clauses never are. A clause's typos mark
/// nothing by themselves: the words a search matched through typos are
/// known to the engine only, which hands them over as clauses of their own
/// (see `crate::search`), so only what matched is marked and no body word
/// needs an edit distance. The window holds at most `max_tokens` tokens and
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

/// Decides whether a token of the text is a hit for the query. A query has
/// a few tokens (at most [`super::query::MAX_TERMS`], and a few typo
/// neighbours each), so a scan of a list beats hashing every token of a
/// body.
struct Matcher<'q> {
    exact: Vec<&'q str>,
    prefixes: Vec<&'q str>,
}

impl<'q> Matcher<'q> {
    fn new(query: &'q Query) -> Self {
        let mut exact = Vec::new();
        let mut prefixes = Vec::new();
        for clause in &query.include {
            let Some((last, init)) = clause.tokens.split_last() else {
                continue;
            };
            exact.extend(init.iter().map(String::as_str));
            if clause.prefix || clause.completes {
                prefixes.push(last.as_str());
            } else {
                exact.push(last.as_str());
            }
        }
        exact.sort_unstable();
        exact.dedup();
        Matcher { exact, prefixes }
    }

    fn matches(&self, token: &str) -> bool {
        self.exact.contains(&token) || self.prefixes.iter().any(|p| token.starts_with(p))
    }

    /// Whether the text's token at `span` (from [`token_spans`]) matches.
    /// An ASCII token, the common case, is compared without building its
    /// normalized form (it is only lower-cased, and cut like every token);
    /// any other is normalized into `buf` first.
    fn matches_span(&self, span: &str, buf: &mut String) -> bool {
        if span.is_ascii() {
            let bytes = &span.as_bytes()[..span.len().min(MAX_TOKEN_BYTES)];
            return self
                .exact
                .iter()
                .any(|t| t.as_bytes().eq_ignore_ascii_case(bytes))
                || self.prefixes.iter().any(|p| {
                    bytes.len() >= p.len() && bytes[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                });
        }
        buf.clear();
        normalize_into(span, buf);
        self.matches(buf)
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
    // One buffer for every token: this pass reads whole bodies.
    let mut buf = String::new();
    for (i, (start, end)) in token_spans(text).enumerate() {
        token_count = i + 1;
        if !matcher.matches_span(&text[start..end], &mut buf) {
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
    let mut buf = String::new();
    for (start, end) in token_spans(text) {
        if !matcher.matches_span(&text[start..end], &mut buf) {
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

#[cfg(test)]
mod tests {
    use super::super::query::{Clause, parse, tokens};
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn q(s: &str) -> Query {
        parse(s).unwrap()
    }

    fn numbered_words(n: usize) -> String {
        (0..n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn unescape(html: &str) -> String {
        html.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    fn strip_marks(html: &str) -> String {
        html.replace("<mark>", "").replace("</mark>", "")
    }

    #[test]
    fn highlight_marks_matching_tokens() {
        assert_eq!(
            highlight("Café in New York", &q("cafe york")),
            "<mark>Café</mark> in New <mark>York</mark>"
        );
    }

    #[test]
    fn highlight_escapes_html() {
        assert_eq!(
            highlight(r#"<b>"Tom & Jerry's"</b>"#, &q("tom")),
            "&lt;b&gt;&quot;<mark>Tom</mark> &amp; Jerry&#39;s&quot;&lt;/b&gt;"
        );
    }

    #[test]
    fn the_word_being_typed_is_marked_and_typos_only_as_words_given() {
        let tolerant = |text: &str| {
            let t = super::super::query::Tolerance {
                typos: true,
                prefix_last: true,
            };
            super::super::query::parse_with(text, t).unwrap()
        };
        // A typo the search did not match through marks nothing: the words
        // it did match through arrive as clauses (as `crate::search` adds
        // the engine's neighbours).
        assert_eq!(
            highlight(
                "The Kubernetes cluster, KUBRENETES, kubelet",
                &tolerant("kubernetse ")
            ),
            "The Kubernetes cluster, KUBRENETES, kubelet"
        );
        let mut with_neighbour = tolerant("kubernetse ");
        with_neighbour.include.push(Clause {
            tokens: vec!["kubernetes".into()],
            ..Clause::default()
        });
        assert_eq!(
            highlight(
                "The Kubernetes cluster, KUBRENETES, kubelet",
                &with_neighbour
            ),
            "The <mark>Kubernetes</mark> cluster, KUBRENETES, kubelet"
        );
        assert_eq!(
            highlight("kubelet and kubectl, not kub", &tolerant("kube")),
            "<mark>kubelet</mark> and <mark>kubectl</mark>, not kub"
        );
        // Accents fold first.
        let mut folded = tolerant("münchen ");
        folded.include.push(Clause {
            tokens: vec!["munchhen".into()],
            ..Clause::default()
        });
        assert_eq!(
            highlight("pods, pod, Münchhen", &folded),
            "pods, pod, <mark>Münchhen</mark>"
        );
    }

    #[test]
    fn prefix_marks_words_starting_with_it() {
        assert_eq!(
            highlight("newspaper, news, new", &q("news*")),
            "<mark>newspaper</mark>, <mark>news</mark>, new"
        );
        // Too short to be a prefix: whole word only.
        assert_eq!(highlight("n no", &q("n*")), "<mark>n</mark> no");
    }

    #[test]
    fn phrase_tokens_are_marked_individually() {
        assert_eq!(
            highlight("New York, new! york?", &q(r#""new york""#)),
            "<mark>New</mark> <mark>York</mark>, <mark>new</mark>! <mark>york</mark>?"
        );
        // Only the last token of a prefix phrase is a prefix.
        assert_eq!(
            highlight("news yolk", &q(r#""new yo"*"#)),
            "news <mark>yolk</mark>"
        );
    }

    #[test]
    fn exclusions_are_never_marked() {
        assert_eq!(
            highlight("cats and dogs", &q("cats -dogs")),
            "<mark>cats</mark> and dogs"
        );
    }

    #[test]
    fn matching_ignores_case_and_accents() {
        assert_eq!(
            highlight("CAFÉ cafe Cafe\u{301}", &q("Café")),
            "<mark>CAFÉ</mark> <mark>cafe</mark> <mark>Cafe\u{301}</mark>"
        );
    }

    #[test]
    fn empty_query_marks_nothing() {
        assert_eq!(highlight("a <b>", &Query::default()), "a &lt;b&gt;");
    }

    #[test]
    fn snippet_centres_the_match() {
        let text = numbered_words(100);
        assert_eq!(
            snippet(&text, &q("w50"), 10),
            "…w46 w47 w48 w49 <mark>w50</mark> w51 w52 w53 w54 w55…"
        );
    }

    #[test]
    fn snippet_prefers_the_most_matches() {
        let text = "x a b c d e f g h i j k x l x m x n";
        assert_eq!(
            snippet(text, &q("x"), 5),
            "…<mark>x</mark> l <mark>x</mark> m <mark>x</mark>…"
        );
    }

    #[test]
    fn snippet_prefers_the_earliest_on_ties() {
        let text = format!(
            "{} x {} x {}",
            numbered_words(20),
            numbered_words(20),
            numbered_words(20)
        );
        assert_eq!(snippet(&text, &q("x"), 3), "…w19 <mark>x</mark> w0…");
    }

    #[test]
    fn snippet_without_match_shows_the_start() {
        let text = numbered_words(10);
        assert_eq!(snippet(&text, &q("nope"), 3), "w0 w1 w2…");
        assert_eq!(snippet(&text, &Query::default(), 3), "w0 w1 w2…");
    }

    #[test]
    fn snippet_keeps_the_text_between_and_around_tokens() {
        assert_eq!(
            snippet("  (Hello, <world>!)\n", &q("world"), 10),
            "(Hello, &lt;<mark>world</mark>&gt;!)"
        );
        // Cut at the window's edge tokens when it does not reach the ends.
        assert_eq!(
            snippet("«one», two; three! four?", &q("two"), 2),
            "…<mark>two</mark>; three…"
        );
    }

    #[test]
    fn snippet_at_the_end_keeps_trailing_text() {
        let text = format!("{} end.", numbered_words(20));
        assert_eq!(snippet(&text, &q("end"), 3), "…w18 w19 <mark>end</mark>.");
    }

    #[test]
    fn snippet_handles_multibyte_text() {
        let text = "日本語 テキスト 😀 Ærø ñandú 한국어 über";
        assert_eq!(snippet(text, &q("nandu"), 3), "…Ærø <mark>ñandú</mark> 한…");
    }

    #[test]
    fn snippet_edge_cases() {
        assert_eq!(snippet("a b c", &q("b"), 0), "");
        assert_eq!(snippet("", &q("b"), 5), "");
        assert_eq!(snippet(" !!! <> ", &q("b"), 5), "!!! &lt;&gt;");
        assert_eq!(snippet("b", &q("b"), usize::MAX), "<mark>b</mark>");
        assert_eq!(
            snippet("a b c", &q("a c"), usize::MAX),
            "<mark>a</mark> b <mark>c</mark>"
        );
    }

    #[test]
    fn snippet_is_fast_on_a_mebibyte() {
        let big = "lorem ipsum, dolor sit amet! ".repeat(1 << 15);
        let all_match = "ab ".repeat(350_000);
        let one_token = "x".repeat(1 << 20);
        let punctuation = "!?".repeat(1 << 19);
        let cases = [
            (format!("{big} needle"), q("needle lor*")),
            (all_match, q("ab")),
            (one_token, q("xx*")),
            (punctuation, q("x")),
        ];
        for (text, query) in &cases {
            let started = Instant::now();
            let out = snippet(text, query, 30);
            // Generous: unoptimized test builds on a slow CI machine.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            assert!(!out.is_empty());
        }
    }

    fn arbitrary_query() -> impl Strategy<Value = Query> {
        let token = prop_oneof![
            "[a-z]{0,3}",
            any::<String>(),
            Just("<".to_owned()),
            Just("\"".to_owned()),
        ];
        let clause =
            (prop::collection::vec(token, 0..3), any::<bool>()).prop_map(|(tokens, prefix)| {
                Clause {
                    tokens,
                    prefix,
                    ..Clause::default()
                }
            });
        (
            prop::collection::vec(clause.clone(), 0..4),
            prop::collection::vec(clause, 0..2),
        )
            .prop_map(|(include, exclude)| Query { include, exclude })
    }

    fn any_query() -> impl Strategy<Value = Query> {
        prop_oneof![
            "[a-z\"*\\- ]{0,20}".prop_map(|s| parse(&s).unwrap_or_default()),
            any::<String>().prop_map(|s| parse(&s).unwrap_or_default()),
            arbitrary_query(),
        ]
    }

    fn any_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-e ]{1,8}",
            Just("<".to_owned()),
            Just(">".to_owned()),
            Just("&".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just("…".to_owned()),
            Just("e\u{301}".to_owned()),
            any::<char>().prop_map(String::from),
        ];
        prop_oneof![
            prop::collection::vec(piece, 0..40).prop_map(|v| v.concat()),
            any::<String>(),
        ]
    }

    fn assert_safe_html(html: &str) -> Result<(), TestCaseError> {
        let plain = strip_marks(html);
        prop_assert!(!plain.contains(['<', '>', '"', '\'']), "{html:?}");
        prop_assert!(!html.contains("<mark><mark>") && !html.contains("</mark></mark>"));
        let mut open = false;
        for piece in html.split("mark>") {
            if piece.ends_with("</") {
                prop_assert!(open);
                open = false;
            } else if piece.ends_with('<') {
                prop_assert!(!open);
                open = true;
            }
        }
        prop_assert!(!open);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn highlight_is_safe_and_lossless(text in any_text(), query in any_query()) {
            let html = highlight(&text, &query);
            assert_safe_html(&html)?;
            prop_assert_eq!(unescape(&strip_marks(&html)), text);
        }

        #[test]
        fn snippet_is_safe_and_a_piece_of_the_text(
            text in any_text(),
            query in any_query(),
            max_tokens in 0usize..12,
        ) {
            let html = snippet(&text, &query, max_tokens);
            assert_safe_html(&html)?;
            let plain = unescape(&strip_marks(&html));
            let plain = plain.strip_prefix(ELLIPSIS).unwrap_or(&plain);
            let plain = plain.strip_suffix(ELLIPSIS).unwrap_or(plain);
            prop_assert!(text.contains(plain), "{:?} not in {:?}", plain, text);
            prop_assert!(tokens(plain).count() <= max_tokens);
        }
    }
}

#[cfg(test)]
mod span_tests {
    use super::Matcher;

    proptest::proptest! {
        /// The ASCII fast path decides exactly as matching the normalized token.
        #[test]
        fn span_matching_agrees_with_normalized_matching(
            text in "[a-zA-Z0-9éÉß ]{0,40}",
            q in "[a-zA-Z0-9éß]{1,6}\\*?( [a-zA-Z0-9]{1,4}\\*?){0,2}",
        ) {
            let Ok(query) = super::super::query::parse(&q) else { return Ok(()) };
            let matcher = Matcher::new(&query);
            let mut buf = String::new();
            for (start, end, token) in super::super::query::tokens(&text) {
                proptest::prop_assert_eq!(
                    matcher.matches_span(&text[start..end], &mut buf),
                    matcher.matches(&token),
                    "{:?} in {:?}", token, q
                );
            }
        }
    }
}
