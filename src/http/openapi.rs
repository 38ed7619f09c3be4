//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder,
        path::Operation,
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};

use super::error::PROBLEM_JSON;

use super::{
    attachments, changes, export, import, ingest, jobs, keys, notes, ops, revisions, search, trash,
    webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "notes-api", description = "Notes, bulk ingest and full-text search. \
        Errors are application/problem+json (RFC 9457). In production every /api route needs \
        `Authorization: Bearer <key>`."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::version,
        notes::create, notes::list, notes::get, notes::update, notes::delete,
        revisions::list, revisions::get, revisions::diff, revisions::restore,
        trash::list, trash::restore, trash::delete, trash::empty,
        changes::list, changes::stream,
        ingest::ingest, search::search, search::suggest,
        attachments::upload, attachments::list, attachments::get, attachments::content, attachments::delete,
        jobs::create, jobs::get, jobs::list, jobs::retry,
        keys::create, keys::list, keys::delete,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::deliveries, webhooks::redeliver, webhooks::ping,
        export::export, import::import,
    ),
    // Referenced only from parameters (`tag`, `any_tag`, `not_tag`), which
    // utoipa does not collect schemas from.
    components(schemas(crate::search::TagFilter)),
    modifiers(&BearerAuth, &ErrorResponses, &EmptyUpload),
    tags((name = "notes"), (name = "revisions", description = "A note's history"), (name = "trash", description = "Deleted notes, until restored or deleted for good"), (name = "changes", description = "What changed since a cursor: sync and live updates"), (name = "ingest"), (name = "attachments"), (name = "search"), (name = "jobs"), (name = "keys", description = "Master key only"), (name = "webhooks", description = "Signed deliveries of the change feed's events (Standard Webhooks); admin scope"), (name = "export", description = "Notes out as an Obsidian vault or NDJSON, and back in"),
         (name = "operations", description = "Never require a key")),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// What the middleware answers on any route, whatever the handler says:
/// every error is problem+json, and the statuses the layers around the
/// handlers produce (keys, rate limits, load shedding, timeouts, body
/// limits) are documented on every operation they can reach.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                problem_json(op);
                let body = op.request_body.is_some();
                let layered: &[(&str, &str)] = &[
                    (
                        "429",
                        "Too many requests from this client; see `Retry-After`",
                    ),
                    (
                        "503",
                        "Overloaded, timed out or a dependency is down; see `Retry-After`",
                    ),
                ];
                let keyed: &[(&str, &str)] = &[
                    ("400", "Malformed request"),
                    ("401", "No valid API key"),
                    ("403", "The key lacks the scope"),
                    ("422", "Invalid parameters or body"),
                ];
                let bodied: &[(&str, &str)] = &[
                    ("413", "The body is too large"),
                    ("415", "Unsupported media type"),
                ];
                let mut add = |set: &[(&str, &str)]| {
                    for (status, description) in set {
                        op.responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| problem(description));
                    }
                };
                add(layered);
                if api {
                    add(keyed);
                }
                if body {
                    add(bodied);
                }
            }
        }
    }
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

/// Responses annotated with a `Problem` body are sent as problem+json
/// (the readiness 503 is plain JSON and stays so).
fn problem_json(op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let is_problem = response.content.get("application/json").is_some_and(
            |c| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")),
        );
        if is_problem && let Some(content) = response.content.shift_remove("application/json") {
            response.content.insert(PROBLEM_JSON.to_owned(), content);
        }
    }
}

/// An upload's body may be left out: no body is an empty file, which is a
/// file. utoipa marks a body optional only by wrapping each of its schemas
/// in a `null` alternative, which describes no request a client can send.
struct EmptyUpload;

impl Modify for EmptyUpload {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/api/v1/notes/{id}/attachments")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(body) = body {
            body.required = None;
        }
    }
}
