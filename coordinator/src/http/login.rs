//! The HTTP page's door: every route but `/login` needs a submitter (or operator) token, unless
//! the server runs with `--insecure-no-auth`.
//!
//! A browser signs in once at `/login` with a token; the token goes into an `HttpOnly`,
//! `SameSite=Strict` cookie that later requests carry (scripts on the page cannot read it, and other
//! sites cannot make the browser send it). A program sends `Authorization: Bearer TOKEN` instead.
//! The check is the gRPC gate's own decision ([`Gate::admit`]) for reading a report, so the HTTP
//! page grants exactly what `GetReport` would.

use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::auth::Gate;

/// The cookie that carries the token.
pub const COOKIE: &str = "benchfarm_token";
/// The RPC whose permission the page requires.
const READ_METHOD: &str = "/benchfarm.v1.FarmService/GetReport";

/// The token a request carries: its bearer header, else its cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return crate::auth::gate::bearer(value).map(str::to_string);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Middleware: lets a request through when its token may read reports.
pub async fn require_reader(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    if !gate.enforcing() || request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let token = presented(request.headers());
    let bearer = token.map(|t| format!("Bearer {t}"));
    match gate.admit(READ_METHOD, bearer.as_deref()) {
        Ok(_) => next.run(request).await,
        Err(denied) => {
            let path = request.uri().path().to_string();
            if path.starts_with("/api/") || request.headers().contains_key(header::AUTHORIZATION) {
                let code = match denied {
                    crate::auth::Denied::WrongRole { .. } => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                (code, denied.to_string()).into_response()
            } else {
                Redirect::to(&format!("/login?next={}", encode(&path))).into_response()
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct Next_ {
    next: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only paths of this server are followed after a sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Percent-encodes a path for a query value.
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn form(next: &str, error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>benchfarm: sign in</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto}}\
         input{{width:100%;font-family:monospace}} .error{{color:#b00}}</style></head><body>\
         <h1>benchfarm</h1><p>Sign in with a submitter or operator token \
         (<code>DATA/api.token</code>, or one from <code>coordinator tokens add</code>).</p>{error}\
         <form method=\"post\" action=\"/login\"><input type=\"password\" name=\"token\" \
         autocomplete=\"off\" autofocus><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <p><button type=\"submit\">Sign in</button></p></form></body></html>",
        html_escape(next)
    ))
}

pub async fn login_page(Query(query): Query<Next_>) -> Html<String> {
    form(&safe_next(query.next.as_deref()), None)
}

pub async fn login(State(gate): State<Gate>, Form(login): Form<LoginForm>) -> Response {
    let next = safe_next(login.next.as_deref());
    let token = login.token.trim().to_string();
    let bearer = format!("Bearer {token}");
    match gate.admit(READ_METHOD, Some(&bearer)) {
        Ok(_) => {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(denied) => (
            StatusCode::UNAUTHORIZED,
            form(&next, Some(&denied.to_string())),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=b; benchfarm_token=bf_c".parse().unwrap());
        assert_eq!(presented(&headers).as_deref(), Some("bf_c"));
        headers.insert(header::AUTHORIZATION, "Bearer bf_h".parse().unwrap());
        assert_eq!(presented(&headers).as_deref(), Some("bf_h"));
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/runs/x")), "/runs/x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(encode("/runs/a b"), "/runs/a%20b");
    }
}
