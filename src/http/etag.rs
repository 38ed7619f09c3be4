//! Entity-tag comparison for conditional requests (RFC 9110 §8.8.3.2,
//! §13.1.1–2): `If-Match` compares strongly, `If-None-Match` weakly; both
//! take `*` or a comma-separated list.

use axum::http::HeaderValue;

/// `If-Match`: `*`, or a strong tag in the list whose opaque part is
/// `current`. A weak tag never matches (RFC 9110 §13.1.1): it promises
/// equivalent content, not the exact version a write is conditional on.
/// A malformed header matches nothing, so the write is refused (412).
pub fn if_match(header: &HeaderValue, current: &str) -> bool {
    matches_any(header, |weak, opaque| !weak && opaque == current)
}

/// `If-None-Match`: `*`, or any tag in the list, weak or strong, whose
/// opaque part is `current` (weak comparison, RFC 9110 §13.1.2). A
/// malformed header matches nothing, so the full answer is sent.
pub fn if_none_match(header: &HeaderValue, current: &str) -> bool {
    matches_any(header, |_, opaque| opaque == current)
}

fn matches_any(header: &HeaderValue, matches: impl Fn(bool, &str) -> bool) -> bool {
    let Ok(value) = header.to_str() else {
        return false;
    };
    if value.trim() == "*" {
        return true;
    }
    entity_tags(value).is_some_and(|tags| tags.into_iter().any(|(weak, o)| matches(weak, o)))
}

/// `#entity-tag`: (weak, opaque-tag) pairs, or `None` when the list is
/// malformed anywhere. Empty list elements are allowed (RFC 9110 §5.6.1).
fn entity_tags(value: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, tag) = match rest.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let tag = tag.strip_prefix('"')?;
        let end = tag.find('"')?;
        let opaque = &tag[..end];
        // etagc: any visible character but the double quote.
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return None;
        }
        tags.push((weak, opaque));
        rest = tag[end + 1..].trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn if_match_is_strong() {
        assert!(if_match(&h("\"3\""), "3"));
        assert!(if_match(&h("\"1\", \"3\""), "3"));
        assert!(if_match(&h(" , \"1\",,\"3\" "), "3"));
        assert!(if_match(&h("*"), "3"));
        assert!(!if_match(&h("W/\"3\""), "3"), "a weak tag never matches");
        assert!(!if_match(&h("W/\"1\", W/\"3\""), "3"));
        assert!(!if_match(&h("\"2\""), "3"));
        assert!(!if_match(&h("\"03\""), "3"), "tags are compared as strings");
        assert!(!if_match(&h("3"), "3"), "unquoted");
        assert!(!if_match(&h("\"3\" \"4\""), "3"), "no comma");
        assert!(!if_match(&h("\"3\", garbage"), "3"), "malformed anywhere");
        assert!(!if_match(&h("w/\"3\""), "3"), "W/ is case-sensitive");
        assert!(!if_match(&h("\"3"), "3"));
        assert!(!if_match(&h(""), "3"));
    }

    #[test]
    fn if_none_match_is_weak_and_takes_lists() {
        let sha = "ab".repeat(32);
        assert!(if_none_match(
            &HeaderValue::from_str(&format!("\"{sha}\"")).unwrap(),
            &sha
        ));
        assert!(if_none_match(
            &HeaderValue::from_str(&format!("W/\"{sha}\"")).unwrap(),
            &sha
        ));
        assert!(if_none_match(
            &HeaderValue::from_str(&format!("\"old\", W/\"{sha}\"")).unwrap(),
            &sha
        ));
        assert!(if_none_match(&h("*"), &sha));
        assert!(!if_none_match(&h("\"old\", W/\"older\""), &sha));
        assert!(!if_none_match(&h("garbage"), &sha));
    }
}
