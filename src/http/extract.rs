//! Extractors that turn every kind of bad input into the problem the API
//! contract names: malformed → 400, wrong shape → 422, too large → 413,
//! wrong media type → 415, missing key → 401, missing scope → 403.

use std::marker::PhantomData;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    rate_limit::{Client, ClientAddr, addr_client, too_many},
    state::AppState,
};
use crate::{
    domain::{
        keys::{Principal, Scope, hash_key, matches_master},
        validation::{FieldError, json_error, json_field_error},
    },
    http::error::ApiError,
};

/// JSON body parsed with the path of the first bad field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, then shape: a truncated document is malformed (400) even
    // when its first element already has the wrong type. Both passes read
    // the bytes straight into what they build, never into a document tree
    // (`IgnoredAny` builds nothing), so memory stays near the body's size.
    let malformed = |e: &serde_json::Error| {
        ApiError::bad_request(format!(
            "the body is not valid JSON: {}",
            json_error(e).message
        ))
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| malformed(&e))?;
    // Every body this API reads is an object. serde would also build a
    // struct from an array of its fields in order (`["title"]` as a note,
    // `[]` as an empty patch), which no client means.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::validation(vec![FieldError::new(
            "",
            "the body must be a JSON object",
        )]));
    }
    // Trailing characters were refused by the first pass.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| match e.inner().classify() {
        serde_json::error::Category::Data => ApiError::validation(vec![json_field_error(&e)]),
        _ => malformed(e.inner()),
    })
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is too large",
        )
    } else {
        ApiError::bad_request("the request body could not be read")
    }
}

/// `application/json`, `application/merge-patch+json` and any other `+json`.
pub fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    media_type(content_type).is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

/// The media type without parameters, lower-cased.
pub fn media_type(content_type: Option<&header::HeaderValue>) -> Option<String> {
    let value = content_type?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// Query string parsed like a body: wrong types are 422 naming the parameter.
/// An empty value is a value (`tag=` is an empty tag, refused as such).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(query_error)
    }
}

/// [`ApiQuery`] for parameters that repeat (`tag=a&tag=b` into a `Vec`),
/// which serde_urlencoded cannot read. An empty value of an `Option` is
/// `None` here, so a handler that must refuse one checks it itself.
pub struct ApiListQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiListQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_html_form::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiListQuery)
            .map_err(query_error)
    }
}

fn query_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    let field = e.path().to_string();
    ApiError::validation(vec![FieldError::new(field, e.inner().to_string())])
}

/// A path id: anything that is not a UUID cannot name a resource, so 404.
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no {what} with id {raw:?}")))
}

/// What a handler requires of the caller. Checked before the body is read.
pub trait Requirement {
    fn check(principal: &Principal) -> Result<(), ApiError>;
}

macro_rules! scope_requirement {
    ($name:ident, $scope:expr) => {
        pub struct $name;
        impl Requirement for $name {
            fn check(p: &Principal) -> Result<(), ApiError> {
                if p.has($scope) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "this key lacks the '{}' scope",
                        $scope.as_str()
                    )))
                }
            }
        }
    };
}
scope_requirement!(Read, Scope::Read);
scope_requirement!(Write, Scope::Write);
scope_requirement!(Admin, Scope::Admin);

/// Key management: the master key only.
pub struct Master;
impl Requirement for Master {
    fn check(p: &Principal) -> Result<(), ApiError> {
        if p.is_master() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the master key manages API keys"))
        }
    }
}

/// The caller, checked against `R`.
pub struct Auth<R>(pub Principal, PhantomData<R>);

impl<R: Requirement> FromRequestParts<AppState> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await;
        charge(parts, state, principal.as_ref().ok())?;
        let principal = principal?;
        R::check(&principal)?;
        Ok(Auth(principal, PhantomData))
    }
}

/// A request that carries a key is charged here, once the key is known
/// (`middleware::rate_limit` charged the others already): to the key when it
/// is valid, to the address when it is not, so made-up keys buy nothing.
fn charge(parts: &Parts, state: &AppState, principal: Option<&Principal>) -> Result<(), ApiError> {
    if !parts.headers.contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let client = match principal {
        Some(Principal::Key { id, .. }) => Client::Key(*id),
        Some(Principal::Master) => Client::Master,
        _ => match parts.extensions.get::<ClientAddr>() {
            Some(addr) => addr_client(addr.0),
            None => return Ok(()),
        },
    };
    state.rate_limits().check(client).map_err(too_many)
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    // A set master key is enforced in every mode: setting one and still
    // serving an open API would fail open.
    if state.settings().server.master_key.is_none() {
        return Ok(Principal::Development);
    }
    let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("send an API key as 'Authorization: Bearer <key>'")
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <key>'"))?;
    principal_of(state, token).await
}

/// Whom a key (or the master key) stands for. Looked up on every request,
/// so a revoked key stops working at once on every replica. Only called
/// with a master key set.
pub async fn principal_of(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if let Some(master) = state.settings().server.master_key.as_ref()
        && matches_master(token, master.expose())
    {
        return Ok(Principal::Master);
    }
    principal_of_hash(state, &hash_key(token)).await
}

/// The same, for a key known by its hash only (an admin session keeps the
/// hash, never the key).
pub async fn principal_of_hash(state: &AppState, hash: &str) -> Result<Principal, ApiError> {
    match state.store().find_key(hash).await? {
        Some((id, scopes)) => Ok(Principal::Key { id, scopes }),
        None => Err(ApiError::unauthorized(
            "the API key is invalid or has been revoked",
        )),
    }
}
