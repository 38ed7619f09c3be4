//! The text library's tokenizer ([`crate::text::query`]) as a tantivy
//! analyzer, so the index, the query and the snippets split and fold words
//! in exactly one way.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use crate::text::query::{normalize_into, token_spans};

/// The name the schema's text fields refer to.
pub const NAME: &str = "notes";

#[derive(Clone, Default)]
pub struct NotesTokenizer {
    token: Token,
}

impl Tokenizer for NotesTokenizer {
    type TokenStream<'a> = NotesTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> NotesTokenStream<'a> {
        self.token.reset();
        self.token.position = usize::MAX;
        NotesTokenStream {
            text,
            spans: Box::new(token_spans(text)),
            token: &mut self.token,
        }
    }
}

pub struct NotesTokenStream<'a> {
    text: &'a str,
    spans: Box<dyn Iterator<Item = (usize, usize)> + 'a>,
    token: &'a mut Token,
}

impl TokenStream for NotesTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some((start, end)) = self.spans.next() else {
            return false;
        };
        self.token.text.clear();
        normalize_into(&self.text[start..end], &mut self.token.text);
        self.token.offset_from = start;
        self.token.offset_to = end;
        self.token.position = self.token.position.wrapping_add(1);
        self.token.position_length = 1;
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::query::tokens;

    #[test]
    fn yields_what_the_query_tokenizer_yields() {
        let text = "¿Qué tal, señor? e-mail_42 ΛΟΓΟΣ 日本語 ".to_owned() + &"x".repeat(300);
        let mut tokenizer = NotesTokenizer::default();
        let mut stream = tokenizer.token_stream(&text);
        let mut got = Vec::new();
        while let Some(t) = stream.next() {
            got.push((t.offset_from, t.offset_to, t.text.clone(), t.position));
        }
        let expected: Vec<_> = tokens(&text)
            .enumerate()
            .map(|(i, (s, e, t))| (s, e, t, i))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(got.last().unwrap().2.len(), 256, "long tokens are cut");
    }
}
