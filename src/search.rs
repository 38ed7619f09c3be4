//! The search use-case: validates what a user asked, parses the query with
//! the text library ([`crate::text`]), asks the index, cuts the snippets.
//! Every engine behind [`crate::index::SearchIndex`] therefore answers the
//! same language.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domain::{note, validation::FieldError},
    index::{Excerpt, IndexError, SearchIndex, SearchQuery},
    text::{query, snippet},
};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Deep offsets make the engine rank everything before them; past this,
/// narrow the query instead.
pub const MAX_OFFSET: u32 = 10_000;
const SNIPPET_TOKENS: usize = 24;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words (all must match), "exact phrase", prefix*, -excluded.
    #[param(required = true, pattern = r"\S")]
    pub q: Option<String>,
    /// Only notes with this tag.
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub tag: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Hits to skip, at most 10,000.
    #[param(maximum = 10_000)]
    pub offset: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub id: Uuid,
    pub title: String,
    /// HTML: matches in `<mark>…</mark>`, everything else escaped.
    pub snippet: String,
    pub score: f64,
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<SearchHit>,
    pub total: u64,
    pub took_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid search parameters")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Index(#[from] IndexError),
}

pub async fn search(
    index: &dyn SearchIndex,
    params: SearchParams,
) -> Result<SearchResponse, SearchError> {
    let started = Instant::now();
    let mut errors = Vec::new();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        errors.push(FieldError::new(
            "offset",
            format!("must be at most {MAX_OFFSET}"),
        ));
    }
    let tag = match params.tag.as_deref().map(normalize_tag_filter) {
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        Some(Ok(t)) => Some(t),
        None => None,
    };
    let parsed = match query::parse(params.q.as_deref().unwrap_or("")) {
        Ok(q) => Some(q),
        Err(e) => {
            errors.push(FieldError::new("q", e.to_string()));
            None
        }
    };
    if !errors.is_empty() {
        return Err(SearchError::Invalid(errors));
    }
    let parsed = parsed.expect("no errors means the query parsed");
    if parsed.include.is_empty() {
        // Only punctuation or symbols: nothing can match.
        return Ok(SearchResponse {
            hits: Vec::new(),
            total: 0,
            took_ms: elapsed_ms(started),
        });
    }
    let terms = parsed.clone();
    let excerpt = Excerpt::new(move |title, body| {
        // A title-only note still gets a snippet showing why it matched.
        if body.trim().is_empty() {
            snippet::highlight(title, &terms)
        } else {
            snippet::snippet(body, &terms, SNIPPET_TOKENS)
        }
    });
    let results = index
        .search(&SearchQuery {
            query: parsed,
            tag,
            limit,
            offset,
            excerpt,
        })
        .await?;
    let hits = results
        .rows
        .into_iter()
        .map(|row| SearchHit {
            snippet: row.excerpt,
            id: row.id,
            title: row.title,
            score: row.score,
            tags: row.tags,
        })
        .collect();
    Ok(SearchResponse {
        hits,
        total: results.total,
        took_ms: elapsed_ms(started),
    })
}

/// Tag filters follow the tag rules (lower-cased), so a filter that can never
/// match a stored tag is a client error rather than a silent empty result.
pub fn normalize_tag_filter(tag: &str) -> Result<String, FieldError> {
    note::normalize_tag(tag).ok_or_else(|| FieldError::new("tag", note::TAG_RULE))
}

pub fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
