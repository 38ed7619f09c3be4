//! The search use-case: validates what a user asked, parses the query with
//! the text library ([`crate::text`]), asks the index, cuts the snippets.
//! Every engine behind [`crate::index::SearchIndex`] therefore answers the
//! same language.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    domain::{note, timestamp, validation::FieldError},
    index::{
        Cut, Excerpt, Filter, IndexError, SearchIndex, SearchQuery, Sort, Suggestion, TimeRange,
    },
    text::query::{self, Tolerance},
    text::snippet,
};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Deep offsets make the engine rank everything before them; past this,
/// narrow the query instead.
pub const MAX_OFFSET: u32 = 10_000;
/// Values one tag filter may list; a note has at most this many tags too.
pub const MAX_TAG_FILTERS: usize = 32;
pub const DEFAULT_SUGGESTIONS: u32 = 8;
pub const MAX_SUGGESTIONS: u32 = 20;
const SNIPPET_TOKENS: usize = 24;
const SORTS: &str = "relevance, created, -created, updated, -updated, title";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words (all must match), "exact phrase", prefix*, -excluded. May be
    /// left out only with a `sort` other than `relevance`.
    pub q: Option<String>,
    /// Words of 5 to 8 characters also match with 1 typo, 9 or more with
    /// 2 when no word is 1 away (default true).
    pub typos: Option<bool>,
    /// Unless `q` ends in white space, its last word also matches as the
    /// start of a longer word (default true).
    pub prefix_last: Option<bool>,
    /// Only notes with every one of these tags.
    #[serde(default)]
    #[param(max_items = 32, value_type = Vec<TagFilter>)]
    pub tag: Vec<String>,
    /// Only notes with at least one of these tags.
    #[serde(default)]
    #[param(max_items = 32, value_type = Vec<TagFilter>)]
    pub any_tag: Vec<String>,
    /// Only notes with none of these tags.
    #[serde(default)]
    #[param(max_items = 32, value_type = Vec<TagFilter>)]
    pub not_tag: Vec<String>,
    /// RFC 3339; created at or after.
    #[param(format = DateTime)]
    pub created_after: Option<String>,
    /// RFC 3339; created before.
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    /// RFC 3339; updated at or after.
    #[param(format = DateTime)]
    pub updated_after: Option<String>,
    /// RFC 3339; updated before.
    #[param(format = DateTime)]
    pub updated_before: Option<String>,
    /// Only notes with (true) or without (false) attachments.
    pub has_attachments: Option<bool>,
    /// relevance (default), created, -created, updated, -updated, title.
    #[param(pattern = r"^(relevance|-?created|-?updated|title)$")]
    pub sort: Option<String>,
    /// `tags`: count the tags of every match.
    #[param(pattern = r"^tags$")]
    pub facets: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Hits to skip, at most 10,000.
    #[param(maximum = 10_000)]
    pub offset: Option<u32>,
}

/// A tag, as the tag filters take it (compared lower-cased).
#[derive(ToSchema)]
#[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
pub struct TagFilter(#[allow(dead_code)] String);

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub id: Uuid,
    pub title: String,
    /// The title as HTML: matches in `<mark>…</mark>`, everything else
    /// escaped.
    pub title_html: String,
    /// HTML: matches in `<mark>…</mark>`, everything else escaped.
    pub snippet: String,
    /// Higher is better; 0 when sorted by anything but relevance.
    pub score: f64,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Facets {
    /// At most 100, by count, then by value.
    pub tags: Vec<FacetValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<SearchHit>,
    pub total: u64,
    /// Counted over every match, not only this page; present when asked
    /// for with `facets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
    pub took_ms: u64,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestParams {
    /// What is typed so far; its last word is completed.
    pub q: Option<String>,
    /// 1 to 20, default 8.
    #[param(minimum = 1, maximum = 20)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestValue {
    pub text: String,
    /// Notes whose title or body holds the word.
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestResponse {
    pub suggestions: Vec<SuggestValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid search parameters")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// What a request asked for, checked: every problem is collected, so a
/// client learns of all of them at once.
struct Checked {
    query: Option<query::Query>,
    filter: Filter,
    sort: Sort,
    limit: u32,
    offset: u32,
}

fn check(params: &SearchParams) -> Result<Checked, SearchError> {
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
    let sort = match params.sort.as_deref().unwrap_or("relevance") {
        "relevance" => Sort::Relevance,
        "created" => Sort::Created { descending: false },
        "-created" => Sort::Created { descending: true },
        "updated" => Sort::Updated { descending: false },
        "-updated" => Sort::Updated { descending: true },
        "title" => Sort::Title,
        _ => {
            errors.push(FieldError::new("sort", format!("must be one of {SORTS}")));
            Sort::Relevance
        }
    };
    if params.facets.as_deref().is_some_and(|f| f != "tags") {
        errors.push(FieldError::new("facets", "the only facet is tags"));
    }
    let mut filter = Filter {
        all_tags: tags("tag", &params.tag, &mut errors),
        any_tags: tags("any_tag", &params.any_tag, &mut errors),
        not_tags: tags("not_tag", &params.not_tag, &mut errors),
        has_attachments: params.has_attachments,
        ..Filter::default()
    };
    filter.created = TimeRange {
        from: time("created_after", &params.created_after, &mut errors),
        before: time("created_before", &params.created_before, &mut errors),
    };
    filter.updated = TimeRange {
        from: time("updated_after", &params.updated_after, &mut errors),
        before: time("updated_before", &params.updated_before, &mut errors),
    };
    let tolerance = Tolerance {
        typos: params.typos.unwrap_or(true),
        prefix_last: params.prefix_last.unwrap_or(true),
    };
    let text = params.q.as_deref().filter(|q| !q.trim().is_empty());
    let query = match (text, sort) {
        (None, Sort::Relevance) => {
            errors.push(FieldError::new(
                "q",
                "the query is empty; leave it out only with a sort other than relevance",
            ));
            None
        }
        (None, _) => None,
        (Some(text), _) => match query::parse_with(text, tolerance) {
            Ok(q) => Some(q),
            Err(e) => {
                errors.push(FieldError::new("q", e.to_string()));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(SearchError::Invalid(errors));
    }
    Ok(Checked {
        query,
        filter,
        sort,
        limit,
        offset,
    })
}

pub async fn search(
    index: &dyn SearchIndex,
    params: SearchParams,
) -> Result<SearchResponse, SearchError> {
    let started = Instant::now();
    let checked = check(&params)?;
    let facets = params.facets.is_some();
    if checked.query.as_ref().is_some_and(|q| q.include.is_empty()) {
        // Only punctuation or symbols: nothing can match.
        return Ok(SearchResponse {
            hits: Vec::new(),
            total: 0,
            facets: facets.then(|| Facets { tags: Vec::new() }),
            took_ms: timestamp::elapsed_ms(started),
        });
    }
    let terms = checked.query.clone().unwrap_or_default();
    let excerpt = Excerpt::new(move |title, body, neighbours| {
        // The typo neighbours the engine matched are marked as words of
        // their own: what matched, and no edit distance per word of a body.
        let with_neighbours;
        let terms = if neighbours.is_empty() {
            &terms
        } else {
            let mut q = terms.clone();
            q.include.extend(neighbours.iter().map(|n| query::Clause {
                tokens: vec![n.clone()],
                ..query::Clause::default()
            }));
            with_neighbours = q;
            &with_neighbours
        };
        Cut {
            title_html: snippet::highlight(title, terms),
            // A title-only note still gets a snippet showing why it matched.
            snippet: if body.trim().is_empty() {
                snippet::highlight(title, terms)
            } else {
                snippet::snippet(body, terms, SNIPPET_TOKENS)
            },
        }
    });
    let results = index
        .search(&SearchQuery {
            query: checked.query,
            filter: checked.filter,
            sort: checked.sort,
            facets,
            limit: checked.limit,
            offset: checked.offset,
            excerpt,
        })
        .await?;
    let hits = results
        .rows
        .into_iter()
        .map(|row| SearchHit {
            id: row.id,
            title: row.title,
            title_html: row.cut.title_html,
            snippet: row.cut.snippet,
            score: row.score,
            tags: row.tags,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect();
    Ok(SearchResponse {
        hits,
        total: results.total,
        facets: results.tags.map(|tags| Facets {
            tags: tags
                .into_iter()
                .map(|(value, count)| FacetValue { value, count })
                .collect(),
        }),
        took_ms: timestamp::elapsed_ms(started),
    })
}

/// Completions of the last word of `q`, typo-tolerant, by the notes they
/// are in.
pub async fn suggest(
    index: &dyn SearchIndex,
    params: SuggestParams,
) -> Result<SuggestResponse, SearchError> {
    let limit = params.limit.unwrap_or(DEFAULT_SUGGESTIONS);
    let mut errors = Vec::new();
    if !(1..=MAX_SUGGESTIONS).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be 1 to {MAX_SUGGESTIONS}"),
        ));
    }
    let text = params.q.unwrap_or_default();
    if text.len() > query::MAX_QUERY_BYTES {
        errors.push(FieldError::new(
            "q",
            format!("must be at most {} bytes", query::MAX_QUERY_BYTES),
        ));
    }
    if !errors.is_empty() {
        return Err(SearchError::Invalid(errors));
    }
    let Some((_, _, word)) = query::tokens(&text).last() else {
        return Ok(SuggestResponse {
            suggestions: Vec::new(),
        });
    };
    let found = index.suggest(&word, limit as usize).await?;
    Ok(SuggestResponse {
        suggestions: found
            .into_iter()
            .map(|Suggestion { text, count }| SuggestValue { text, count })
            .collect(),
    })
}

/// Tag filters follow the tag rules (lower-cased), so a filter that can
/// never match a stored tag is a client error rather than a silent empty
/// result.
fn tags(field: &str, given: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if given.len() > MAX_TAG_FILTERS {
        errors.push(FieldError::new(
            field,
            format!("at most {MAX_TAG_FILTERS} values"),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for tag in given {
        match note::normalize_tag(tag) {
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {}
            None => {
                errors.push(FieldError::new(field, note::TAG_RULE));
                break;
            }
        }
    }
    out
}

fn time(
    field: &str,
    given: &Option<String>,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let given = given.as_deref()?;
    match DateTime::parse_from_rfc3339(given) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 date and time, such as 2026-01-31T09:00:00Z",
            ));
            None
        }
    }
}
