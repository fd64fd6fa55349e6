//! The stateless browser session: a [`Session`] (the tokens later requests need) and a
//! short-lived [`LoginState`] (what the OIDC callback must check), each sealed with an AEAD
//! into cookies, opened again from a request's `Cookie` headers, and stripped from the request
//! before it goes upstream. The login flow itself (redirect, callback, token exchange, refresh)
//! is built on top of this module elsewhere; this module imports nothing from the crate.
//!
//! # What is stored
//!
//! [`Session`]: the access token (what the proxy verifies and forwards on every request), the
//! refresh token (to renew the access token without a new sign-in), the access token's `exp`
//! (to refresh before it lapses without parsing the token), when the session started (for the
//! absolute lifetime, [`CookieOptions::session_max_age`]) and was last refreshed, and `sub`
//! (for logs). The ID token is checked once, at sign-in (its `nonce` against [`LoginState`]),
//! and is **not** stored: nothing later needs it, and at 1 to 2 KiB it would add a cookie chunk
//! to every request.
//!
//! [`LoginState`]: the OAuth `state`, the OIDC `nonce`, the PKCE verifier, where to return
//! and when it was created. It lives in its own cookie, bound to the browser that started the
//! sign-in (the callback compares `state` from the URL with the cookie's), and expires after
//! [`CookieOptions::login_state_max_age`] (10 minutes by default).
//!
//! # Format
//!
//! A sealed value is `base64url-nopad( 0x01 || nonce[12] || ciphertext || tag[16] )`: one
//! version byte, AES-256-GCM-SIV's 96-bit nonce, then the ciphertext of the serde_json payload
//! with its 128-bit tag. The associated data binds what the cookie is for and what it is
//! called: `cognito-sidecar/v1/<purpose>/<cookie name>/<chunk count>` (purpose `session` or
//! `login-state`; the full cookie name, `__Host-` prefix included; chunk count `0` for the
//! login state). So a session cookie never opens as a login state or the other way round, a
//! cookie renamed (or moved between the prefixed and unprefixed names) does not open, and
//! neither does a session whose chunk count was changed.
//!
//! **AEAD.** AES-256-GCM-SIV (RFC 8452) from aws-lc-rs, through `RandomizedNonceKey`, which
//! draws a fresh random 96-bit nonce from aws-lc's CSPRNG for every seal (no nonce handling
//! here, no hand-rolled crypto). Random 96-bit nonces are fine for plain AES-GCM up to about
//! 2^32 seals per key; GCM-SIV is chosen because it also survives a repeated nonce (a VM
//! snapshot restored twice, a broken RNG): a repeat then reveals only that two plaintexts were
//! equal, where with GCM it would leak the authentication key and allow forgeries. It costs a
//! second pass over ~3 KiB, which is noise, and both passes use AES-NI/PMULL.
//!
//! **Keys.** [`CookieKeys`]: 32-byte keys, base64 (standard or URL-safe, padded or not). The
//! first seals; every key is tried when opening (at most [`MAX_KEYS`] trial decryptions), so a
//! key is rotated by putting the new one first and removing the old one once the longest
//! session it sealed has expired. A tamper, a truncation, a reordering, a foreign key, a wrong
//! purpose and a rename all look the same to an AEAD: [`SessionError::Undecryptable`].
//!
//! **Payload.** serde_json with one- to three-letter field names, not compressed. Measured
//! (zlib level 9) on a realistic Cognito pair (a 1.2 KiB RS256 access token, a 2.1 KiB JWE
//! refresh token): the JSON shrinks 3440 -> 2491 bytes (28%: the base64url of JSON headers and
//! claims compresses, the signature and JWE ciphertext only to their 6 bits per character), so
//! the cookies would take ~3.4 KiB (one chunk) instead of ~4.6 KiB (two). Both fit the 8 KiB
//! budget, so it is left out for now: it would add a dependency and a decompression-bomb limit.
//! (Compression must never cover [`LoginState`], where the attacker-chosen `return_to` sits
//! beside secrets: a BREACH-style length oracle.) The version byte leaves room for a `v2`
//! that deflates, or stores the JWT segments as raw bytes (25% without any compressor).
//!
//! # Chunks and limits
//!
//! Browsers keep at least 4096 bytes per cookie (RFC 6265 §6.1; Chrome and Firefox count name
//! plus value), and Cognito's access + refresh tokens sealed come to ~4 KiB, so a session is
//! split over cookies `<name>.0`, `<name>.1`, ... The first chunk's value starts with one digit,
//! the chunk count `n` (also in the AAD); chunks `0..n` must all be present, each exactly once
//! (two cookies with the same chunk name are refused, whichever would win), and any stale
//! higher chunk left by a previous, longer session is ignored (and can be expired with
//! [`expire_stale_chunks`]).
//!
//! Chunk values are at most [`CHUNK_VALUE_MAX`] = 3840 bytes. The longest `Set-Cookie` value
//! this module renders is then 3972 bytes, under 4096 with room to spare:
//!
//! ```text
//!   7  __Host-
//!  64  base name (at most MAX_BASE_NAME)
//!   2  .N        (N < MAX_CHUNKS, one digit)
//!   1  =
//! 3840 value     (at most CHUNK_VALUE_MAX)
//!  50  ; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=
//!   8  digits    (Max-Age capped at 400 days = 34560000 s, RFC 6265bis)
//! ```
//!
//! At most [`MAX_CHUNKS`] = 8 chunks are read, so opening is bounded (≤ 8 × 3840 bytes of
//! base64, ≤ [`MAX_KEYS`] trial decryptions) whatever the request holds. [`seal_session`]
//! refuses with [`SessionError::TooLarge`] when the bytes the session adds to the `Cookie`
//! header (`name=value; ` per chunk) would exceed [`CookieOptions::max_cookie_bytes`], 8192 by
//! default: nginx's default `large_client_header_buffers 4 8k` rejects a longer header line,
//! and the application's own cookies need room beside ours.
//!
//! # Cookie attributes and `__Host-`
//!
//! Every cookie is `Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=N`, and named
//! `__Host-<name>`: browsers accept a `__Host-` cookie only when it is `Secure`, has `Path=/`
//! and no `Domain` (RFC 6265bis §4.1.3.2), so it cannot be planted by a sibling subdomain or
//! over plain HTTP (cookie tossing / session fixation), and we read only the prefixed names.
//! `SameSite=Lax` (not `Strict`) because the IdP's redirect back to the callback is a
//! cross-site top-level navigation that must carry the login-state cookie. With
//! [`CookieOptions::secure`] off (plain-HTTP development only) there is no `Secure` and hence
//! no `__Host-` prefix, which the browser would otherwise refuse.
//!
//! The `Cookie` header is parsed by hand (RFC 6265 §4.2.1, `cookie-pair *( ";" SP
//! cookie-pair )`, leniently trimming spaces) rather than with the `cookie` crate: that crate
//! parses `&str` only (a `Cookie` header with one non-UTF-8 byte would have to be dropped
//! whole), and [`strip_session_cookies`] must keep the application's other cookies
//! byte-for-byte, which a parse/re-render round trip does not promise. Our own names and values
//! are plain tokens and base64url, so rendering `Set-Cookie` is a `format!`.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM_SIV, NONCE_LEN};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, COOKIE};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The length of a cookie key, in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// At most this many keys in a [`CookieKeys`] (each is a trial decryption when opening).
pub const MAX_KEYS: usize = 8;
/// At most this many chunks per session; chunk names are `<name>.0` to `<name>.7`.
pub const MAX_CHUNKS: usize = 8;
/// The longest value of one chunk cookie (see the module docs for the arithmetic).
pub const CHUNK_VALUE_MAX: usize = 3840;
/// The longest base name accepted (without the `__Host-` prefix and `.N` suffix).
pub const MAX_BASE_NAME: usize = 64;
/// The `Max-Age` cap: 400 days (RFC 6265bis §5.5: browsers clamp to this anyway).
pub const MAX_AGE_CAP: u64 = 400 * 24 * 3600;
/// How far in the future a `started_at`/`created_at` may be (clock skew between replicas).
const CLOCK_SKEW: i64 = 60;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const HOST_PREFIX: &str = "__Host-";

// === Errors ===

/// A cookie key list that cannot be used; names the entry (0-based) and never shows the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no cookie keys: at least one is needed")]
    Empty,
    #[error("too many cookie keys: {count}, at most {MAX_KEYS}")]
    TooMany { count: usize },
    #[error("cookie key [{index}] is not base64 (standard or URL-safe)")]
    NotBase64 {
        index: usize,
        #[source]
        source: base64::DecodeError,
    },
    #[error("cookie key [{index}] decodes to {len} bytes, not {KEY_LEN}")]
    WrongLength { index: usize, len: usize },
    #[error("cookie key [{index}] was refused by the AEAD")]
    Rejected { index: usize },
}

/// Why a cookie could not be sealed or opened. The reason is for logs; a request with a
/// session that does not open is simply not signed in.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// None of the cookies is in the request.
    #[error("no session cookie")]
    Missing,
    /// A chunk of `0..count` is absent (chunk 0 included: the other chunks are then orphans).
    #[error("session cookie chunk {index} is missing")]
    MissingChunk { index: usize },
    /// The same chunk (or login-state) cookie appears twice in the request.
    #[error("session cookie chunk {index} appears more than once")]
    DuplicateChunk { index: usize },
    /// Not something this module sealed: bad chunk count, too long, not base64url, too short,
    /// unknown version.
    #[error("malformed session cookie: {0}")]
    Malformed(&'static str),
    /// Well-formed, but no key opens it: tampered, truncated, reordered, another key, another
    /// purpose or another cookie name.
    #[error("session cookie does not decrypt with any key")]
    Undecryptable,
    /// It decrypted, but the payload is not what this version writes.
    #[error("session cookie payload does not decode")]
    Payload(#[source] serde_json::Error),
    /// Older than its maximum age (or stamped too far in the future).
    #[error("session cookie expired: age {age}s, max {max_age}s")]
    Expired { age: i64, max_age: u64 },
    /// The sealed session needs more `Cookie` header bytes than allowed.
    #[error("session too large for cookies: needs {needed} Cookie header bytes, limit {limit}")]
    TooLarge { needed: usize, limit: usize },
    /// The base name is not 1 to 64 of `A-Z a-z 0-9 _ -` (or starts with `__`).
    #[error("invalid cookie base name")]
    InvalidName,
    /// Sealing failed (the random nonce could not be drawn).
    #[error("could not seal the cookie")]
    Seal,
}

// === Keys ===

/// The cookie keys: the first seals, all open (rotation). `Debug` shows only how many.
pub struct CookieKeys {
    keys: Vec<RandomizedNonceKey>,
}

impl fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieKeys")
            .field("count", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl CookieKeys {
    /// Keys from base64 text (standard or URL-safe alphabet, padding optional, surrounding
    /// whitespace ignored), each exactly 32 bytes; the first seals.
    pub fn from_base64<S: AsRef<str>>(entries: &[S]) -> Result<CookieKeys, KeyError> {
        let standard = indifferent(&alphabet::STANDARD);
        let url_safe = indifferent(&alphabet::URL_SAFE);
        let mut raw = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let text = entry.as_ref().trim();
            let engine = if text.contains(['-', '_']) {
                &url_safe
            } else {
                &standard
            };
            let bytes = engine
                .decode(text)
                .map_err(|source| KeyError::NotBase64 { index, source })?;
            let key: [u8; KEY_LEN] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::WrongLength {
                        index,
                        len: bytes.len(),
                    })?;
            raw.push(key);
        }
        CookieKeys::from_bytes(&raw)
    }

    /// Keys from raw bytes; the first seals.
    pub fn from_bytes(keys: &[[u8; KEY_LEN]]) -> Result<CookieKeys, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyError::TooMany { count: keys.len() });
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, k)| {
                RandomizedNonceKey::new(&AES_256_GCM_SIV, k)
                    .map_err(|_| KeyError::Rejected { index })
            })
            .collect::<Result<_, _>>()?;
        Ok(CookieKeys { keys })
    }

    /// A new random key as URL-safe base64 (for `check`/docs: `cookie_keys = ["..."]`).
    pub fn generate_base64() -> Result<String, SessionError> {
        let mut key = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| SessionError::Seal)?;
        Ok(URL_SAFE_NO_PAD.encode(key))
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: construction refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `base64url( VERSION || nonce || seal(plaintext) )`.
    fn seal(&self, aad: &str, mut plaintext: Vec<u8>) -> Result<String, SessionError> {
        plaintext.reserve(TAG_LEN);
        let nonce = self.keys[0]
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut plaintext)
            .map_err(|_| SessionError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&plaintext);
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The inverse of `seal`, trying every key.
    fn open(&self, aad: &str, value: &[u8]) -> Result<Vec<u8>, SessionError> {
        let sealed = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| SessionError::Malformed("not base64url"))?;
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(SessionError::Malformed("too short"));
        }
        if sealed[0] != VERSION {
            return Err(SessionError::Malformed("unknown version"));
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SessionError::Malformed("too short"))?;
        for key in &self.keys {
            let mut buf = ciphertext.to_vec();
            if let Ok(plain) =
                key.open_in_place(Nonce::from(nonce), Aad::from(aad.as_bytes()), &mut buf)
            {
                let len = plain.len();
                buf.truncate(len);
                return Ok(buf);
            }
        }
        Err(SessionError::Undecryptable)
    }
}

fn indifferent(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

// === Payloads ===

/// What later requests need of a sign-in (see the module docs for why no ID token).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "at")]
    pub access_token: String,
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The access token's `exp` (unix seconds).
    #[serde(rename = "exp")]
    pub access_exp: i64,
    /// When the user signed in (unix seconds): the absolute lifetime counts from here.
    #[serde(rename = "iat")]
    pub started_at: i64,
    /// When the tokens were last refreshed (unix seconds; `started_at` until then).
    #[serde(rename = "rat")]
    pub refreshed_at: i64,
    #[serde(rename = "sub", default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field(
                "access_token",
                &format_args!("<{} bytes>", self.access_token.len()),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|t| t.len()),
            )
            .field("access_exp", &self.access_exp)
            .field("started_at", &self.started_at)
            .field("refreshed_at", &self.refreshed_at)
            .field("sub", &self.sub)
            .finish()
    }
}

/// The sign-in in progress: what the callback checks. Short-lived, one cookie.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v")]
    pub pkce_verifier: String,
    /// Where to send the browser after sign-in (the caller validates it is same-origin).
    #[serde(rename = "r")]
    pub return_to: String,
    /// Unix seconds.
    #[serde(rename = "c")]
    pub created_at: i64,
}

impl fmt::Debug for LoginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginState")
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

// === Options and Set-Cookie ===

/// How cookies are named, bounded and aged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    /// `Secure` and the `__Host-` prefix. Turn off only for plain-HTTP development.
    pub secure: bool,
    /// The most `Cookie` header bytes a session may add (`name=value; ` per chunk).
    pub max_cookie_bytes: usize,
    /// The absolute session lifetime, from `started_at`; refreshing does not extend it.
    pub session_max_age: Duration,
    /// How long a sign-in may take, from `created_at`.
    pub login_state_max_age: Duration,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            secure: true,
            max_cookie_bytes: 8192,
            session_max_age: Duration::from_secs(12 * 3600),
            login_state_max_age: Duration::from_secs(600),
        }
    }
}

/// One cookie to set: render it with `to_string()` as a `Set-Cookie` header value.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// The full name, `__Host-` prefix and `.N` suffix included.
    pub name: String,
    pub value: String,
    pub max_age: u64,
    pub secure: bool,
}

impl fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetCookie")
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("max_age", &self.max_age)
            .field("secure", &self.secure)
            .finish()
    }
}

impl fmt::Display for SetCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(f, &self.name, &self.value, self.max_age, self.secure)
    }
}

impl SetCookie {
    /// As a header value (names and values are plain ASCII, so this does not fail in practice).
    pub fn to_header_value(&self) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        HeaderValue::try_from(self.to_string())
    }
}

fn render(
    f: &mut impl fmt::Write,
    name: &str,
    value: &str,
    max_age: u64,
    secure: bool,
) -> fmt::Result {
    write!(f, "{name}={value}; Path=/; HttpOnly")?;
    if secure {
        f.write_str("; Secure")?;
    }
    write!(f, "; SameSite=Lax; Max-Age={}", max_age.min(MAX_AGE_CAP))
}

/// `__Host-<base>` when secure, `<base>` otherwise; refuses anything but a short plain token.
fn cookie_name(base_name: &str, secure: bool) -> Result<String, SessionError> {
    let ok = !base_name.is_empty()
        && base_name.len() <= MAX_BASE_NAME
        && !base_name.starts_with("__")
        && base_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(SessionError::InvalidName);
    }
    Ok(if secure {
        format!("{HOST_PREFIX}{base_name}")
    } else {
        base_name.to_string()
    })
}

fn session_aad(name: &str, count: usize) -> String {
    format!("cognito-sidecar/v1/session/{name}/{count}")
}

fn login_state_aad(name: &str) -> String {
    format!("cognito-sidecar/v1/login-state/{name}/0")
}

fn secs(d: Duration) -> u64 {
    d.as_secs().min(MAX_AGE_CAP)
}

/// `Expired` unless `0 - CLOCK_SKEW <= now - since < max_age`; the remaining seconds otherwise.
fn remaining(since: i64, now: i64, max_age: u64) -> Result<u64, SessionError> {
    let age = now.saturating_sub(since);
    let max = i64::try_from(max_age).unwrap_or(i64::MAX);
    if age < -CLOCK_SKEW || age >= max {
        return Err(SessionError::Expired { age, max_age });
    }
    Ok(u64::try_from(max - age.max(0)).unwrap_or(0))
}

// === Session ===

/// Seals `session` into chunk cookies `<name>.0 ..`, with `Max-Age` its remaining lifetime.
/// Set every returned cookie; stale higher chunks of an earlier session may stay (they are
/// ignored) or be expired with [`expire_stale_chunks`].
pub fn seal_session(
    keys: &CookieKeys,
    base_name: &str,
    session: &Session,
    opts: &CookieOptions,
    now: i64,
) -> Result<Vec<SetCookie>, SessionError> {
    let name = cookie_name(base_name, opts.secure)?;
    let max_age = remaining(session.started_at, now, secs(opts.session_max_age))?;
    let plain = serde_json::to_vec(session).map_err(SessionError::Payload)?;
    // The joined value is the count digit and then the sealed value; its length is known
    // before sealing, so the count can go into the AAD.
    let sealed_len = base64::encoded_len(1 + NONCE_LEN + plain.len() + TAG_LEN, false)
        .ok_or(SessionError::Malformed("too long"))?;
    let total = 1 + sealed_len;
    let count = total.div_ceil(CHUNK_VALUE_MAX);
    // `<name>.N=` + `; ` per chunk, then the values.
    let needed = total + count * (name.len() + 2 + 3);
    let limit = opts
        .max_cookie_bytes
        .min(MAX_CHUNKS * (name.len() + 2 + 3 + CHUNK_VALUE_MAX));
    if count > MAX_CHUNKS || needed > limit {
        return Err(SessionError::TooLarge { needed, limit });
    }
    let sealed = keys.seal(&session_aad(&name, count), plain)?;
    let joined = format!("{count}{sealed}");
    debug_assert_eq!(joined.len(), total);
    Ok(joined
        .as_bytes()
        .chunks(CHUNK_VALUE_MAX)
        .enumerate()
        .map(|(i, part)| SetCookie {
            name: format!("{name}.{i}"),
            // Base64url and one digit: ASCII, so any byte boundary is a char boundary.
            value: String::from_utf8_lossy(part).into_owned(),
            max_age,
            secure: opts.secure,
        })
        .collect())
}

/// Opens the session from every `Cookie` header in `headers`.
pub fn open_session(
    keys: &CookieKeys,
    base_name: &str,
    headers: &HeaderMap,
    opts: &CookieOptions,
    now: i64,
) -> Result<Session, SessionError> {
    let name = cookie_name(base_name, opts.secure)?;
    let mut slots: [Option<&[u8]>; MAX_CHUNKS] = [None; MAX_CHUNKS];
    for (n, v) in cookie_pairs(headers) {
        if let Some(index) = chunk_index(n, &name) {
            if slots[index].replace(v).is_some() {
                return Err(SessionError::DuplicateChunk { index });
            }
        }
    }
    if slots.iter().all(Option::is_none) {
        return Err(SessionError::Missing);
    }
    let first = slots[0].ok_or(SessionError::MissingChunk { index: 0 })?;
    let count = match first.first() {
        Some(d @ b'1'..=b'8') => usize::from(d - b'0'),
        _ => return Err(SessionError::Malformed("bad chunk count")),
    };
    let mut joined = Vec::with_capacity(count * CHUNK_VALUE_MAX);
    joined.extend_from_slice(&first[1..]);
    for (index, slot) in slots.iter().enumerate().take(count) {
        let value = slot.ok_or(SessionError::MissingChunk { index })?;
        if value.len() > CHUNK_VALUE_MAX {
            return Err(SessionError::Malformed("chunk too long"));
        }
        if index > 0 {
            joined.extend_from_slice(value);
        }
    }
    let plain = keys.open(&session_aad(&name, count), &joined)?;
    let session: Session = serde_json::from_slice(&plain).map_err(SessionError::Payload)?;
    remaining(session.started_at, now, secs(opts.session_max_age))?;
    Ok(session)
}

/// `Max-Age=0` for every chunk of `base_name` at index `keep` or above present in the
/// request: the leftovers of a longer session after [`seal_session`] wrote `keep` chunks.
pub fn expire_stale_chunks(
    base_name: &str,
    present: &HeaderMap,
    keep: usize,
    secure: bool,
) -> Vec<String> {
    let Ok(name) = cookie_name(base_name, secure) else {
        return Vec::new();
    };
    let mut seen = [false; MAX_CHUNKS];
    for (n, _) in cookie_pairs(present) {
        if let Some(i) = chunk_index(n, &name) {
            seen[i] = true;
        }
    }
    (keep..MAX_CHUNKS)
        .filter(|&i| seen[i])
        .map(|i| expired(&format!("{name}.{i}"), secure))
        .collect()
}

/// `Max-Age=0` for every session chunk present in the request and the one past the last
/// (a chunk the browser may hold without having sent it is then expired too).
pub fn clear_cookies(base_name: &str, present: &HeaderMap, secure: bool) -> Vec<String> {
    let Ok(name) = cookie_name(base_name, secure) else {
        return Vec::new();
    };
    let mut seen = [false; MAX_CHUNKS];
    for (n, _) in cookie_pairs(present) {
        if let Some(i) = chunk_index(n, &name) {
            seen[i] = true;
        }
    }
    let past = seen.iter().rposition(|&s| s).map_or(0, |last| last + 1);
    (0..MAX_CHUNKS)
        .filter(|&i| seen[i] || i == past)
        .map(|i| expired(&format!("{name}.{i}"), secure))
        .collect()
}

fn expired(name: &str, secure: bool) -> String {
    let mut out = String::with_capacity(name.len() + 64);
    let _ = render(&mut out, name, "", 0, secure);
    out
}

/// `Some(i)` when `cookie` is `<name>.<i>` with `i` one digit below `MAX_CHUNKS`.
fn chunk_index(cookie: &[u8], name: &str) -> Option<usize> {
    match cookie.strip_prefix(name.as_bytes())? {
        [b'.', d @ b'0'..=b'9'] if usize::from(d - b'0') < MAX_CHUNKS => {
            Some(usize::from(d - b'0'))
        }
        _ => None,
    }
}

// === Login state ===

/// Seals the login state into one cookie `<name>`, `Max-Age` the login-state lifetime.
pub fn seal_login_state(
    keys: &CookieKeys,
    base_name: &str,
    state: &LoginState,
    opts: &CookieOptions,
) -> Result<SetCookie, SessionError> {
    let name = cookie_name(base_name, opts.secure)?;
    let plain = serde_json::to_vec(state).map_err(SessionError::Payload)?;
    let value = keys.seal(&login_state_aad(&name), plain)?;
    if value.len() > CHUNK_VALUE_MAX {
        return Err(SessionError::TooLarge {
            needed: name.len() + 3 + value.len(),
            limit: name.len() + 3 + CHUNK_VALUE_MAX,
        });
    }
    Ok(SetCookie {
        name,
        value,
        max_age: secs(opts.login_state_max_age),
        secure: opts.secure,
    })
}

/// Opens the login state; `Expired` once `login_state_max_age` has passed since `created_at`.
pub fn open_login_state(
    keys: &CookieKeys,
    base_name: &str,
    headers: &HeaderMap,
    opts: &CookieOptions,
    now: i64,
) -> Result<LoginState, SessionError> {
    let name = cookie_name(base_name, opts.secure)?;
    let mut found = None;
    for (n, v) in cookie_pairs(headers) {
        if n == name.as_bytes() && found.replace(v).is_some() {
            return Err(SessionError::DuplicateChunk { index: 0 });
        }
    }
    let value = found.ok_or(SessionError::Missing)?;
    if value.len() > CHUNK_VALUE_MAX {
        return Err(SessionError::Malformed("too long"));
    }
    let plain = keys.open(&login_state_aad(&name), value)?;
    let state: LoginState = serde_json::from_slice(&plain).map_err(SessionError::Payload)?;
    remaining(state.created_at, now, secs(opts.login_state_max_age))?;
    Ok(state)
}

/// The login-state cookie expired (`Max-Age=0`), for the callback's response.
pub fn clear_login_state(base_name: &str, secure: bool) -> Option<String> {
    cookie_name(base_name, secure)
        .ok()
        .map(|n| expired(&n, secure))
}

// === Cookie header ===

/// Every `name=value` pair of every `Cookie` header, trimmed (RFC 6265 §4.2.1, leniently:
/// `;` with or without the space; a pair without `=` is skipped).
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = trim(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((trim(&pair[..eq]), trim(&pair[eq + 1..])))
        })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(a), Some(b)) => &s[a..=b],
        _ => &[],
    }
}

/// Removes every cookie named `<base>` or `<base>.<digits>`, with or without `__Host-`, for
/// each of `base_names`, from every `Cookie` header; other cookies stay byte-for-byte (joined
/// again with `; `), and a header left empty is removed. Headers without our cookies are not
/// touched.
pub fn strip_session_cookies(headers: &mut HeaderMap, base_names: &[&str]) {
    let ours = |pair: &[u8]| {
        let pair = trim(pair);
        let name = trim(pair.split(|&b| b == b'=').next().unwrap_or(pair));
        let name = name.strip_prefix(HOST_PREFIX.as_bytes()).unwrap_or(name);
        base_names
            .iter()
            .any(|base| match name.strip_prefix(base.as_bytes()) {
                Some([]) => true,
                Some([b'.', digits @ ..]) => {
                    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
                }
                _ => false,
            })
    };
    let any = headers
        .get_all(COOKIE)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b';').any(ours));
    if !any {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| {
            let rest: Vec<&[u8]> = v
                .as_bytes()
                .split(|&b| b == b';')
                .filter(|p| !ours(p) && !trim(p).is_empty())
                .map(trim)
                .collect();
            if rest.is_empty() {
                return None;
            }
            // Pieces of a valid header value joined with "; " are a valid header value; if
            // not, the header is dropped rather than forwarded with our cookie in it.
            HeaderValue::from_bytes(&rest.join(&b"; "[..])).ok()
        })
        .collect();
    headers.remove(COOKIE);
    for v in kept {
        headers.append(COOKIE, v);
    }
}
