//! The text library: the query language users type, the tokenizer that the
//! index and the snippets share, and snippet cutting. Pure functions over
//! strings; it imports nothing else of the crate, so every layer may use it.

pub mod query;
pub mod snippet;
pub mod typo;
