//! Who may use the admin UI, and the checks on every form.
//!
//! With a master key set, a page needs a session (`/admin/login` opens one
//! with an admin-scoped API key or the master key); the key behind it is
//! checked again on every request. Without one (development mode) no
//! log-in is needed, and the banner says so. Every state-changing form is
//! a POST that must carry the session's CSRF token and, when the browser
//! says where it comes from, come from this origin.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use subtle::ConstantTimeEq;

use super::{
    session::{Holder, Sessions},
    views::ErrorPage,
};
use crate::{
    domain::keys::{Principal, Scope, hash_key},
    http::{extract::principal_of_hash, state::AppState},
};

/// The session cookie. Scoped to `/admin`, so the API never sees it.
pub const COOKIE: &str = "notes_admin";

/// The signed-in user of a page.
pub struct AdminUser {
    pub principal: Principal,
    /// To send back with every form.
    pub csrf: String,
    /// `None` in development mode (no log-in).
    pub session: Option<String>,
}

impl AdminUser {
    /// Key management is the master key's alone, as in the API.
    pub fn is_master(&self) -> bool {
        matches!(self.principal, Principal::Master | Principal::Development)
    }
}

/// The hash a master-key session keeps, so a changed master key ends it.
pub fn master_hash(state: &AppState) -> Option<String> {
    state
        .settings()
        .server
        .master_key
        .as_ref()
        .map(|k| hash_key(k.expose()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn to_login() -> Response {
    Redirect::to("/admin/login").into_response()
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let sessions: &Sessions = state.admin_sessions();
        if state.settings().server.master_key.is_none() {
            return Ok(Self {
                principal: Principal::Development,
                csrf: sessions.development_csrf().to_owned(),
                session: None,
            });
        }
        let Some(id) = cookie(&parts.headers, COOKIE).map(str::to_owned) else {
            return Err(to_login());
        };
        let Some(session) = sessions.get(&id) else {
            return Err(to_login());
        };
        let principal = match &session.holder {
            Holder::Master { hash } if Some(hash) == master_hash(state).as_ref() => {
                Principal::Master
            }
            Holder::Key { hash } => match principal_of_hash(state, hash).await {
                Ok(p) if p.has(Scope::Admin) => p,
                Err(e) if e.problem().status != StatusCode::UNAUTHORIZED.as_u16() => {
                    return Err(ErrorPage::from_api(&e).into_response());
                }
                // Revoked: the session ends with the key.
                _ => {
                    sessions.close(&id);
                    return Err(to_login());
                }
            },
            // The master key changed since the log-in.
            Holder::Master { .. } => {
                sessions.close(&id);
                return Err(to_login());
            }
        };
        Ok(Self {
            principal,
            csrf: session.csrf,
            session: Some(id),
        })
    }
}

/// A form POST is accepted only with the right token, and, when the
/// browser names the page it comes from (`Origin`, else `Referer`), from
/// this server. The token alone stops a forged form; the origin check
/// also stops a page that learned a token some other way.
pub fn check_form(headers: &HeaderMap, token: &str, expected: &str) -> Result<(), ErrorPage> {
    same_origin(headers)?;
    if token.as_bytes().ct_eq(expected.as_bytes()).into() {
        Ok(())
    } else {
        Err(ErrorPage::forbidden(
            "This form has expired or did not come from this admin UI. Reload the page and try again.",
        ))
    }
}

/// `Origin` (else `Referer`), when present, must name the host the request
/// was sent to.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ErrorPage> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(from) = from else {
        return Ok(());
    };
    let authority = from
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default());
    match (authority, host) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ErrorPage::forbidden(
            "Cross-site form submissions are refused.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let h = headers(&[
            (header::COOKIE, "a=1; notes_admin=abc"),
            (header::COOKIE, "b=2"),
        ]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "notes"), None);
    }

    #[test]
    fn a_form_needs_its_token_and_this_origin() {
        let ok = headers(&[
            (header::HOST, "notes.example:8080"),
            (header::ORIGIN, "https://notes.example:8080"),
        ]);
        assert!(check_form(&ok, "t0k", "t0k").is_ok());
        assert!(check_form(&ok, "t0x", "t0k").is_err(), "wrong token");
        assert!(check_form(&ok, "", "t0k").is_err(), "no token");
        let cross = headers(&[
            (header::HOST, "notes.example:8080"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert!(check_form(&cross, "t0k", "t0k").is_err(), "another origin");
        let opaque = headers(&[(header::HOST, "notes.example"), (header::ORIGIN, "null")]);
        assert!(
            check_form(&opaque, "t0k", "t0k").is_err(),
            "a sandboxed origin"
        );
        let referer = headers(&[
            (header::HOST, "notes.example"),
            (header::REFERER, "https://evil.example/notes.example"),
        ]);
        assert!(check_form(&referer, "t0k", "t0k").is_err());
        let none = headers(&[(header::HOST, "notes.example")]);
        assert!(
            check_form(&none, "t0k", "t0k").is_ok(),
            "the token suffices"
        );
    }
}
