//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::{attachments, ingest, jobs, keys, notes, ops, search};

#[derive(OpenApi)]
#[openapi(
    info(title = "notes-api", description = "Notes, bulk ingest and full-text search. \
        Errors are application/problem+json (RFC 9457). In production every /api route needs \
        `Authorization: Bearer <key>`."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::version,
        notes::create, notes::list, notes::get, notes::update, notes::delete,
        ingest::ingest, search::search,
        attachments::upload, attachments::list, attachments::get, attachments::content, attachments::delete,
        jobs::create, jobs::get, jobs::list, jobs::retry,
        keys::create, keys::list, keys::delete,
    ),
    modifiers(&BearerAuth),
    tags((name = "notes"), (name = "ingest"), (name = "attachments"), (name = "search"), (name = "jobs"), (name = "keys", description = "Master key only"),
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
