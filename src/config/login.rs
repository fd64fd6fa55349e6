//! Validates `[login]`: browser sign-in through the pool's managed login. The flow itself is
//! `crate::login`'s; the cookie is `crate::session`'s.

use std::path::PathBuf;
use std::sync::Arc;

use super::model::{IssuerConfig, LoginConfig};
use super::problems::Problems;
use super::raw::RawLogin;
use super::types::{TokenUse, TokenUsePolicy};
use crate::session::CookieKeys;

/// `None` when `[login]` is off (`domain` empty).
pub(super) fn validate_login(
    p: &mut Problems,
    raw: &RawLogin,
    issuers: &[IssuerConfig],
) -> Option<LoginConfig> {
    let domain = raw.domain.trim().trim_end_matches('/').to_string();
    if domain.is_empty() {
        return None;
    }
    match domain.parse::<http::Uri>() {
        Ok(u)
            if u.authority().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && (u.scheme_str() == Some("https")
                    || (u.scheme_str() == Some("http") && is_loopback(&u))) => {}
        _ => p.push(
            "login.domain",
            format!("{domain:?}: the pool's domain, https://<prefix>.auth.<region>.amazoncognito.com or a custom domain (http only on loopback)"),
        ),
    }
    let issuer_index = if raw.issuer.trim().is_empty() {
        match issuers.len() {
            1 => Some(0),
            _ => {
                p.push(
                    "login.issuer",
                    "name the [[issuers]] entry that verifies the session's tokens",
                );
                None
            }
        }
    } else {
        let i = issuers.iter().position(|i| i.name == raw.issuer.trim());
        if i.is_none() {
            p.push(
                "login.issuer",
                format!("{:?} is no [[issuers]] entry's name", raw.issuer),
            );
        }
        i
    };
    let client_id = raw.client_id.trim().to_string();
    if client_id.is_empty() {
        p.push(
            "login.client_id",
            "missing required key (the app client of the managed login)",
        );
    }
    if let Some(iss) = issuer_index.map(|i| &issuers[i]) {
        let both = match &iss.token_use {
            TokenUsePolicy::Cognito(kinds) => {
                kinds.contains(&TokenUse::Access) && kinds.contains(&TokenUse::Id)
            }
            TokenUsePolicy::Any => true,
        };
        if !both {
            p.push(
                "login.issuer",
                format!("issuer {:?} must accept both access and ID tokens (token_use = [\"access\", \"id\"]): sign-in checks the ID token, requests the access token", iss.name),
            );
        }
        if !iss.client_ids.is_empty() && !iss.client_ids.iter().any(|c| **c == *client_id) {
            p.push(
                "login.client_id",
                format!("{client_id:?} is not in issuer {:?}'s client_ids", iss.name),
            );
        }
    }
    let scopes: Vec<String> = raw.scopes.iter().map(|s| s.trim().to_string()).collect();
    if !scopes.iter().any(|s| s == "openid") {
        p.push(
            "login.scopes",
            "must include \"openid\" (Cognito returns an ID token only then)",
        );
    }
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        p.push("login.scopes", "scopes are single words");
    }
    let mut path = |key: &str, v: &str| {
        let v = v.trim().to_string();
        let ok = v.starts_with('/')
            && !v.starts_with("//")
            && crate::path::normalize(&v).is_ok_and(|n| n == v);
        if !ok {
            p.push(
                key,
                format!("{v:?}: a normalised absolute path, e.g. \"/oauth2/idpresponse\""),
            );
        }
        v
    };
    let callback_path = path("login.callback_path", &raw.callback_path);
    let sign_out_path = path("login.sign_out_path", &raw.sign_out_path);
    if callback_path == sign_out_path {
        p.push(
            "login.sign_out_path",
            "must differ from login.callback_path",
        );
    }
    let external_url = match raw.external_url.trim().trim_end_matches('/') {
        "" => None,
        u => {
            let ok = u.parse::<http::Uri>().is_ok_and(|x| {
                matches!(x.scheme_str(), Some("http") | Some("https"))
                    && x.authority().is_some()
                    && x.path() == "/"
                    && x.query().is_none()
            });
            if !ok {
                p.push(
                    "login.external_url",
                    format!("{u:?}: an origin, e.g. \"https://app.example.com\" (no path)"),
                );
            }
            Some(u.to_string())
        }
    };
    let mut key_texts: Vec<String> = raw.cookie_keys.clone();
    let cookie_keys_file = raw.cookie_keys_file.as_ref().map(PathBuf::from);
    if let Some(f) = &cookie_keys_file {
        match std::fs::read_to_string(f) {
            Ok(t) => key_texts.extend(
                t.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            ),
            Err(e) => p.push(
                "login.cookie_keys_file",
                format!("cannot read {}: {e}", f.display()),
            ),
        }
    }
    let cookie_keys = match CookieKeys::from_base64(&key_texts) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            p.push(
                "login.cookie_keys",
                format!("{e} (each key: 32 random bytes in base64; `openssl rand -base64 32`; the first encrypts, all decrypt)"),
            );
            Arc::new(CookieKeys::from_bytes(&[[0u8; 32]]).expect("one key of the right length"))
        }
    };
    let name_ok = !raw.cookie_name.is_empty()
        && raw.cookie_name.len() <= 64
        && !raw.cookie_name.starts_with("__")
        && raw
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        p.push(
            "login.cookie_name",
            "1 to 64 of [A-Za-z0-9_-], not starting with \"__\" (the __Host- prefix is added)",
        );
    }
    if raw.max_cookie_bytes < 4096 {
        p.push("login.max_cookie_bytes", "at least 4096");
    }
    let refresh_before = p.duration("login.refresh_before", &raw.refresh_before);
    let session_lifetime = p.duration("login.session_lifetime", &raw.session_lifetime);
    let token_timeout = p.duration("login.token_timeout", &raw.token_timeout);
    if session_lifetime.is_zero() {
        p.push("login.session_lifetime", "must be greater than zero");
    }
    if token_timeout.is_zero() {
        p.push("login.token_timeout", "must be greater than zero");
    }
    Some(LoginConfig {
        domain,
        issuer: issuer_index
            .map(|i| issuers[i].name.clone())
            .unwrap_or_default(),
        issuer_index: issuer_index.unwrap_or(0),
        client_id,
        client_secret: raw.client_secret.clone().filter(|s| !s.is_empty()),
        scopes,
        callback_path,
        sign_out_path,
        external_url,
        cookie_keys,
        cookie_keys_file,
        cookie_name: raw.cookie_name.clone(),
        insecure_cookies: raw.insecure_cookies,
        max_cookie_bytes: raw.max_cookie_bytes,
        refresh_before,
        session_lifetime,
        pass_access_token: raw.pass_access_token,
        token_timeout,
    })
}

fn is_loopback(u: &http::Uri) -> bool {
    let host = u
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
