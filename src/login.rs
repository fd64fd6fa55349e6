//! Browser sign-in through the pool's managed login (`[login]`, `auth = "login"` routes):
//! OAuth 2.0 authorization code with PKCE and OpenID Connect, and the stateless session it
//! leaves in the browser (`session.rs`).
//!
//! - [`Login::redirect`]: a top-level navigation without a session is sent to
//!   `<domain>/oauth2/authorize` with `state`, `nonce` and an S256 `code_challenge`; the
//!   three secrets and the page asked for go in a short-lived sealed login-state cookie.
//! - [`Login::callback`]: `state` must match that cookie (so the answer belongs to this
//!   browser); the code is exchanged with the PKCE verifier; the ID token must verify, be
//!   for this client and carry the nonce; the access token must verify; then the session
//!   cookie is set and the browser goes back to the page it asked for (a same-origin path
//!   only).
//! - [`Login::session`]: the session's access token for an `auth = "login"` request,
//!   refreshed (once per replica, however many requests arrive together) when it is within
//!   `refresh_before` of expiry. A failed refresh ends the session.
//! - [`Login::sign_out`]: `POST` from the sidecar's own origin revokes the refresh token,
//!   clears the cookies and sends the browser to `<domain>/logout`.
//!
//! No token ever goes into a URL the sidecar makes, a log line or a page.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::claims::Verified;
use crate::config::{LoginConfig, TokenUse};
use crate::session::{self, CookieOptions, LoginState, Session, SessionError};
use crate::token::{TokenClient, UserTokens};
use crate::verify::Verifier;

/// How long a refresh's outcome is shared with the requests that arrive during it.
const REFRESH_SHARED_FOR: Duration = Duration::from_secs(30);

/// Why a request on an `auth = "login"` route has no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No session cookie at all.
    Missing,
    /// One that does not open, has expired, or could not be refreshed: it is cleared.
    Ended(&'static str),
}

impl From<NoSession> for crate::error::ProxyError {
    fn from(n: NoSession) -> Self {
        match n {
            NoSession::Missing => crate::error::ProxyError::LoginRequired {
                reason: "missing",
                clear: false,
            },
            NoSession::Ended(reason) => crate::error::ProxyError::LoginRequired {
                reason,
                clear: true,
            },
        }
    }
}

/// A session's access token for this request, and the cookies to set (after a refresh).
pub struct Current {
    pub access_token: String,
    pub set_cookies: Vec<HeaderValue>,
}

/// The running `[login]`.
pub struct Login {
    pub cfg: LoginConfig,
    client: TokenClient,
    /// Sessions already opened, by SHA-256 of the request's `Cookie` headers.
    opened: quick_cache::sync::Cache<[u8; 32], Arc<Session>>,
    /// Refreshes in flight and just done, by SHA-256 of the refresh token.
    refreshes: quick_cache::sync::Cache<[u8; 32], (std::time::Instant, Option<Arc<Session>>)>,
}

impl Login {
    pub fn new(cfg: &LoginConfig) -> anyhow::Result<Login> {
        Ok(Login {
            cfg: cfg.clone(),
            client: TokenClient::new(cfg.token_timeout)?,
            opened: quick_cache::sync::Cache::new(10_000),
            refreshes: quick_cache::sync::Cache::new(4096),
        })
    }

    fn secure(&self) -> bool {
        !self.cfg.insecure_cookies
    }

    fn opts(&self) -> CookieOptions {
        CookieOptions {
            secure: self.secure(),
            max_cookie_bytes: self.cfg.max_cookie_bytes,
            session_max_age: self.cfg.session_lifetime,
            login_state_max_age: Duration::from_secs(600),
        }
    }

    fn state_cookie(&self) -> String {
        format!("{}_login", self.cfg.cookie_name)
    }

    /// The names the session and login state use, for stripping before forwarding.
    pub fn cookie_names(&self) -> [String; 2] {
        [self.cfg.cookie_name.clone(), self.state_cookie()]
    }

    /// The origin browsers see: `external_url`, or the request's scheme and `Host`.
    pub fn origin(&self, tls: bool, headers: &HeaderMap) -> Option<String> {
        if let Some(u) = &self.cfg.external_url {
            return Some(u.clone());
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        Some(format!("{}://{host}", if tls { "https" } else { "http" }))
    }

    fn redirect_uri(&self, origin: &str) -> String {
        format!("{origin}{}", self.cfg.callback_path)
    }

    /// 302 to the managed login, with a fresh login-state cookie for this browser.
    pub fn redirect(&self, origin: &str, return_to: &str, now: i64) -> Response<Full<Bytes>> {
        let st = LoginState {
            state: random_b64(32),
            nonce: random_b64(32),
            pkce_verifier: random_b64(32),
            return_to: safe_return_to(return_to).to_string(),
            created_at: now,
        };
        let challenge = URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, st.pkce_verifier.as_bytes())
                .as_ref(),
        );
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.redirect_uri(origin))
            .append_pair("scope", &self.cfg.scopes.join(" "))
            .append_pair("state", &st.state)
            .append_pair("nonce", &st.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let location = format!("{}/oauth2/authorize?{}", self.cfg.domain, q.finish());
        match session::seal_login_state(
            &self.cfg.cookie_keys,
            &self.state_cookie(),
            &st,
            &self.opts(),
        ) {
            Ok(c) => {
                let mut r = found(&location);
                if let Ok(v) = c.to_header_value() {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot seal the login state");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-in is not available",
                    "The sign-in could not start.",
                )
            }
        }
    }

    /// The managed login's answer at `callback_path`.
    pub async fn callback(
        &self,
        verifier: &Verifier,
        origin: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        now: i64,
    ) -> Response<Full<Bytes>> {
        let bad = |why: &str| {
            tracing::info!(reason = why, "sign-in refused");
            let mut r = page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "The sign-in could not be completed. Please try again.",
            );
            if let Some(c) = session::clear_login_state(&self.state_cookie(), self.secure()) {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        };
        let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let one = |k: &str| {
            let mut it = params.iter().filter(|(n, _)| n == k);
            match (it.next(), it.next()) {
                (Some((_, v)), None) => Some(v.as_str()),
                _ => None,
            }
        };
        let st = match session::open_login_state(
            &self.cfg.cookie_keys,
            &self.state_cookie(),
            headers,
            &self.opts(),
            now,
        ) {
            Ok(s) => s,
            Err(SessionError::Missing) => return bad("login_state_missing"),
            Err(SessionError::Expired { .. }) => return bad("login_state_expired"),
            Err(_) => return bad("login_state_invalid"),
        };
        let Some(state) = one("state") else {
            return bad("state_missing");
        };
        if !constant_time_eq(state.as_bytes(), st.state.as_bytes()) {
            return bad("state_mismatch");
        }
        if one("error").is_some() {
            return bad("authorize_error");
        }
        let Some(code) = one("code") else {
            return bad("code_missing");
        };
        let redirect_uri = self.redirect_uri(origin);
        let tokens = match self
            .client
            .user_grant(
                &self.cfg.domain,
                &self.cfg.client_id,
                self.cfg.client_secret.as_deref(),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &redirect_uri),
                    ("code_verifier", &st.pkce_verifier),
                ],
            )
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "the code exchange failed");
                return bad("code_exchange_failed");
            }
        };
        let Some(id_token) = tokens.id_token.as_deref() else {
            return bad("no_id_token");
        };
        match verifier.verify(id_token, now).await {
            Ok(v)
                if self.is_ours(&v, TokenUse::Id)
                    && nonce_of(id_token) == Some(st.nonce.clone()) => {}
            Ok(_) => return bad("id_token_not_for_this_sign_in"),
            Err(e) => {
                tracing::info!(reason = e.as_str(), "the sign-in's ID token is refused");
                return bad("id_token_refused");
            }
        }
        let sub = match verifier.verify(&tokens.access_token, now).await {
            Ok(v) if self.is_ours(&v, TokenUse::Access) => v.sub().map(str::to_string),
            Ok(_) => return bad("access_token_not_for_this_client"),
            Err(e) => {
                tracing::info!(reason = e.as_str(), "the sign-in's access token is refused");
                return bad("access_token_refused");
            }
        };
        let s = Session {
            access_exp: now + tokens.expires_in as i64,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            started_at: now,
            refreshed_at: now,
            sub,
        };
        let cookies = match session::seal_session(
            &self.cfg.cookie_keys,
            &self.cfg.cookie_name,
            &s,
            &self.opts(),
            now,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the session does not fit in its cookies");
                return bad("session_too_large");
            }
        };
        tracing::info!(sub = s.sub.as_deref().unwrap_or("-"), "signed in");
        let mut r = found(safe_return_to(&st.return_to));
        let h = r.headers_mut();
        let written = cookies.len();
        for c in cookies {
            if let Ok(v) = c.to_header_value() {
                h.append(header::SET_COOKIE, v);
            }
        }
        for c in
            session::expire_stale_chunks(&self.cfg.cookie_name, headers, written, self.secure())
                .into_iter()
                .chain(session::clear_login_state(
                    &self.state_cookie(),
                    self.secure(),
                ))
        {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        r
    }

    fn is_ours(&self, v: &Verified, kind: TokenUse) -> bool {
        v.token_use == Some(kind) && v.clients().contains(&self.cfg.client_id)
    }

    /// The session's access token for this request (refreshed when due).
    pub async fn session(&self, headers: &HeaderMap, now: i64) -> Result<Current, NoSession> {
        // The same cookies again (a browser sends them on every request): the session they
        // opened to, by SHA-256 of exactly those bytes, instead of decrypting them again.
        let key = cookies_digest(headers);
        let s = match key.as_ref().and_then(|k| self.opened.get(k)) {
            Some(s) if now < s.started_at + self.cfg.session_lifetime.as_secs() as i64 => {
                Session::clone(&s)
            }
            _ => {
                let s = match session::open_session(
                    &self.cfg.cookie_keys,
                    &self.cfg.cookie_name,
                    headers,
                    &self.opts(),
                    now,
                ) {
                    Ok(s) => s,
                    Err(SessionError::Missing) => return Err(NoSession::Missing),
                    Err(SessionError::Expired { .. }) => {
                        return Err(NoSession::Ended("session_expired"))
                    }
                    Err(_) => return Err(NoSession::Ended("session_invalid")),
                };
                if let Some(k) = key {
                    self.opened.insert(k, Arc::new(s.clone()));
                }
                s
            }
        };
        let due = s.access_exp - now <= self.cfg.refresh_before.as_secs() as i64;
        if !due {
            return Ok(Current {
                access_token: s.access_token,
                set_cookies: Vec::new(),
            });
        }
        let Some(refresh_token) = s.refresh_token.clone() else {
            return Err(NoSession::Ended("session_expired"));
        };
        let fresh = self
            .refresh(&s, &refresh_token, now)
            .await
            .ok_or(NoSession::Ended("refresh_failed"))?;
        let cookies = session::seal_session(
            &self.cfg.cookie_keys,
            &self.cfg.cookie_name,
            &fresh,
            &self.opts(),
            now,
        )
        .map_err(|_| NoSession::Ended("session_too_large"))?;
        let mut set_cookies: Vec<HeaderValue> = cookies
            .iter()
            .filter_map(|c| c.to_header_value().ok())
            .collect();
        set_cookies.extend(
            session::expire_stale_chunks(
                &self.cfg.cookie_name,
                headers,
                cookies.len(),
                self.secure(),
            )
            .iter()
            .filter_map(|c| HeaderValue::from_str(c).ok()),
        );
        Ok(Current {
            access_token: fresh.access_token.clone(),
            set_cookies,
        })
    }

    /// One refresh per refresh token at a time; the requests that arrive meanwhile (and for
    /// [`REFRESH_SHARED_FOR`] after) share its outcome.
    async fn refresh(&self, s: &Session, refresh_token: &str, now: i64) -> Option<Arc<Session>> {
        let key: [u8; 32] =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, refresh_token.as_bytes())
                .as_ref()
                .try_into()
                .ok()?;
        let guard = match self.refreshes.get_value_or_guard_async(&key).await {
            Ok((at, v)) if at.elapsed() < REFRESH_SHARED_FOR => return v,
            Ok(_) => {
                self.refreshes.remove(&key);
                match self.refreshes.get_value_or_guard_async(&key).await {
                    Ok((_, v)) => return v,
                    Err(g) => g,
                }
            }
            Err(g) => g,
        };
        let outcome = match self
            .client
            .user_grant(
                &self.cfg.domain,
                &self.cfg.client_id,
                self.cfg.client_secret.as_deref(),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await
        {
            Ok(UserTokens {
                access_token,
                refresh_token: rotated,
                expires_in,
                ..
            }) => {
                tracing::debug!(
                    sub = s.sub.as_deref().unwrap_or("-"),
                    rotated = rotated.is_some(),
                    "session refreshed"
                );
                Some(Arc::new(Session {
                    access_exp: now + expires_in as i64,
                    access_token,
                    refresh_token: rotated.or_else(|| Some(refresh_token.to_string())),
                    started_at: s.started_at,
                    refreshed_at: now,
                    sub: s.sub.clone(),
                }))
            }
            Err(e) => {
                tracing::info!(error = %e, sub = s.sub.as_deref().unwrap_or("-"), "the session's refresh failed");
                None
            }
        };
        let _ = guard.insert((std::time::Instant::now(), outcome.clone()));
        outcome
    }

    /// `sign_out_path`: `GET` shows a one-button form; `POST` from the sidecar's own origin
    /// revokes the refresh token, clears the cookies and goes to the managed logout.
    pub async fn sign_out(
        &self,
        method: &Method,
        origin: &str,
        headers: &HeaderMap,
        now: i64,
    ) -> Response<Full<Bytes>> {
        if method == Method::GET || method == Method::HEAD {
            let body = format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign out</title></head><body>\
                 <form method=\"post\" action=\"{}\"><button id=\"signout\" type=\"submit\">Sign out</button></form></body></html>",
                html_escape(&self.cfg.sign_out_path)
            );
            return html(StatusCode::OK, body);
        }
        if method != Method::POST {
            let mut r = page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Sign out",
                "Sign out with the button.",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            return r;
        }
        if !same_origin(headers, origin) {
            tracing::info!(
                reason = "csrf",
                "sign-out refused: not from the sidecar's own origin"
            );
            return page(
                StatusCode::FORBIDDEN,
                "Sign out",
                "This sign-out did not come from this site.",
            );
        }
        if let Ok(s) = session::open_session(
            &self.cfg.cookie_keys,
            &self.cfg.cookie_name,
            headers,
            &self.opts(),
            now,
        ) {
            if let Some(rt) = &s.refresh_token {
                if let Err(e) = self
                    .client
                    .revoke(
                        &self.cfg.domain,
                        rt,
                        &self.cfg.client_id,
                        self.cfg.client_secret.as_deref(),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "the refresh token could not be revoked at sign-out");
                }
            }
            tracing::info!(sub = s.sub.as_deref().unwrap_or("-"), "signed out");
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &self.cfg.client_id)
            .append_pair("logout_uri", &format!("{origin}/"));
        let mut r = found(&format!("{}/logout?{}", self.cfg.domain, q.finish()));
        for c in self.clear_all(headers) {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        r
    }

    /// `Set-Cookie`s that remove every session and login-state cookie the request carries.
    pub fn clear_all(&self, headers: &HeaderMap) -> Vec<HeaderValue> {
        session::clear_cookies(&self.cfg.cookie_name, headers, self.secure())
            .into_iter()
            .chain(session::clear_login_state(
                &self.state_cookie(),
                self.secure(),
            ))
            .filter_map(|c| HeaderValue::from_str(&c).ok())
            .collect()
    }
}

/// A top-level browser navigation, which a sign-in page may answer: `GET`/`HEAD` that accepts
/// HTML and is not a script's request.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    let accepts_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    let mode = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok());
    (method == Method::GET || method == Method::HEAD)
        && accepts_html
        && !matches!(
            mode,
            Some("cors") | Some("no-cors") | Some("same-origin") | Some("websocket")
        )
        && !headers.contains_key("x-requested-with")
}

/// Whether an unsafe request carries an `Origin` (or, without one, a `Referer`) of `origin`.
pub fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.as_bytes() == origin.as_bytes();
    }
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| {
            r == origin
                || r.strip_prefix(origin)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The page to go back to after sign-in: a same-origin path (and query) only, in every
/// spelling; anything else is `/`.
pub fn safe_return_to(to: &str) -> &str {
    fn plain(s: &str) -> bool {
        s.starts_with('/')
            && !s.starts_with("//")
            && !s.contains('\\')
            && !s.bytes().any(|b| b.is_ascii_control())
    }
    let decoded = percent_encoding::percent_decode_str(to).decode_utf8_lossy();
    if plain(to) && !to.contains(' ') && plain(&decoded) && to.len() <= 2048 {
        to
    } else {
        "/"
    }
}

/// SHA-256 over every `Cookie` header line (with a separator); `None` without any.
fn cookies_digest(headers: &HeaderMap) -> Option<[u8; 32]> {
    let mut all = headers.get_all(header::COOKIE).iter().peekable();
    all.peek()?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for v in all {
        ctx.update(v.as_bytes());
        ctx.update(b"\n");
    }
    ctx.finish().as_ref().try_into().ok()
}

fn nonce_of(jwt: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    v.get("nonce")?.as_str().map(str::to_string)
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::Rng::fill(&mut rand::rng(), b.as_mut_slice());
    URL_SAFE_NO_PAD.encode(b)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn found(location: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; form-action 'self'"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// A plain page: a title and one sentence, never any request data.
pub fn page(status: StatusCode, title: &str, text: &str) -> Response<Full<Bytes>> {
    html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{x}</p></body></html>",
            t = html_escape(title),
            x = html_escape(text)
        ),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_a_same_origin_path_in_every_spelling() {
        for ok in ["/", "/app/page", "/app/page?x=1&y=%2F", "/a%20b"] {
            assert_eq!(safe_return_to(ok), ok, "{ok}");
        }
        for bad in [
            "//evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "https:evil.test",
            "https://evil.test/",
            "evil.test",
            "",
            "/%2F%2Fevil.test",
            "/%2fevil.test",
            "%2F%2Fevil.test",
            "/%5Cevil.test",
            "/%5cevil.test",
            "/\tevil",
            "/a\r\nLocation: x",
            "/%0d%0aSet-Cookie:x",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_return_to(bad), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(&format!("/{}", "a".repeat(3000))), "/");
    }

    #[test]
    fn navigations_are_top_level_html_gets() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(
                    http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        };
        assert!(is_navigation(
            &Method::GET,
            &h(&[("accept", "text/html,*/*")])
        ));
        assert!(is_navigation(
            &Method::HEAD,
            &h(&[("accept", "text/html"), ("sec-fetch-mode", "navigate")])
        ));
        assert!(!is_navigation(
            &Method::POST,
            &h(&[("accept", "text/html")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &h(&[("accept", "application/json")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &h(&[("accept", "text/html"), ("sec-fetch-mode", "cors")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &h(&[("accept", "text/html"), ("x-requested-with", "fetch")])
        ));
    }

    #[test]
    fn same_origin_is_exact() {
        let h = |k: &'static str, v: &str| {
            let mut m = HeaderMap::new();
            m.insert(k, HeaderValue::from_str(v).unwrap());
            m
        };
        let o = "https://app.test";
        assert!(same_origin(&h("origin", o), o));
        assert!(!same_origin(&h("origin", "https://app.test.evil"), o));
        assert!(!same_origin(&h("origin", "null"), o));
        assert!(same_origin(&h("referer", "https://app.test/page"), o));
        assert!(!same_origin(&h("referer", "https://app.test.evil/page"), o));
        assert!(!same_origin(&h("referer", "https://app.testx/"), o));
        assert!(!same_origin(&HeaderMap::new(), o));
    }
}
