//! The service's modules whose paths move while the service is restructured
//! (`search::query` and `search::snippet` become `text::query` and
//! `text::snippet`): the bench names them here only.

pub use notes_api::search::{query, snippet};
