//! The vocabulary of a verified token, shared by the verifier (which makes it), the route
//! rules (which read a [`Grant`]), the identity headers and the log line: what a token was
//! found to be ([`Verified`]), what it offers to the rules ([`Grant`]), and why a token was
//! refused ([`AuthError`]).
//!
//! Imports no module that uses it: verification lives in `verify.rs`, the rules in
//! `routes.rs`, header rendering in `headers.rs`.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use smallvec::SmallVec;

use crate::alb_key::AlbKey;
use crate::config::TokenUse;
use crate::jwks::VerifyKey;

/// Why a token was refused. Each is the `error_description`, the log reason and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthError {
    Missing,
    Malformed,
    TooLarge,
    AlgNotAllowed,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongTokenUse,
    WrongClient,
    WrongAudience,
    /// The token's issuer has no keys loaded yet: not the token's fault (503, not 401).
    KeysUnavailable,
    /// Revoked: by the pool (`GetUser` said so) or by the issuer's deny list.
    Revoked,
    /// The revocation check could not reach the pool, and `revocation_unavailable = "deny"`
    /// (503, not 401).
    RevocationUnavailable,
    /// The token cannot be checked for revocation (no `aws.cognito.signin.user.admin`
    /// scope, or an ID token) and the issuer's setting says to refuse such tokens.
    RevocationUnchecked,
    /// An ALB token (`x-amzn-oidc-data`) whose `signer` is in no ALB issuer's `signer_arns`.
    UntrustedSigner,
}

impl AuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::TooLarge => "too_large",
            AuthError::AlgNotAllowed => "alg_not_allowed",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongTokenUse => "wrong_token_use",
            AuthError::WrongClient => "wrong_client",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::Revoked => "revoked",
            AuthError::RevocationUnavailable => "revocation_unavailable",
            AuthError::RevocationUnchecked => "revocation_unchecked",
            AuthError::UntrustedSigner => "untrusted_signer",
        }
    }

    /// Whether the sidecar, not the token, is the reason (503 + `Retry-After`).
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            AuthError::KeysUnavailable | AuthError::RevocationUnavailable
        )
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which issuer verified a token, and with which key.
#[derive(Debug)]
pub enum Origin {
    /// A JWKS issuer (index in `Config::issuers`).
    Jwks {
        issuer: usize,
        /// Serial of the key set the token was verified with: while it is current, so is
        /// the key.
        key_set: u64,
        /// The key that verified the signature: after a refresh, a cache hit needs the
        /// issuer's set to still hold this key (not merely this `kid`) under its `kid`.
        key: Arc<VerifyKey>,
    },
    /// An ALB issuer (index in `Config::alb_issuers`): a cache hit needs its key cache to
    /// still hold this key.
    Alb { issuer: usize, key: Arc<AlbKey> },
}

/// Where one string sits in a [`Verified`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The token has no such claim (or no such header).
    const NONE: Span = Span {
        start: u32::MAX,
        len: 0,
    };

    fn range(self) -> Option<std::ops::Range<usize>> {
        let start = self.start as usize;
        (self.start != u32::MAX).then(|| start..start + self.len as usize)
    }

    /// Bytes a span takes at the head of a [`Verified`]'s buffer.
    const SIZE: usize = 8;

    /// The `i`th span of the table at the head of `buf`.
    fn at(buf: &[u8], i: usize) -> Span {
        let b = &buf[i * Span::SIZE..(i + 1) * Span::SIZE];
        Span {
            start: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The string of `buf` this span points to.
    fn str_in(self, buf: &[u8]) -> Option<&str> {
        std::str::from_utf8(buf.get(self.range()?)?).ok()
    }
}

/// The one-string ids of a token, in the order [`Verified`] keeps them.
const SUB: usize = 0;
const CLIENT_ID: usize = 1;
const JTI: usize = 2;
const ORIGIN_JTI: usize = 3;
const USERNAME: usize = 4;
const IDS: usize = 5;

/// A verified token: what the route rules, the identity headers and the log line need.
///
/// Compact, since the token cache holds thousands: every string (the identity header values
/// as they are forwarded, `sub`, `client_id`, `jti`, `origin_jti`, `username`, the clients,
/// scopes and groups) lies in one buffer, each once (a scope that is also a header's value
/// is kept once), behind a table of where each is. A header value is handed out as a slice
/// of that buffer: no copy per request. Two allocations a token, besides the cache's slot.
pub struct Verified {
    pub origin: Origin,
    pub exp: i64,
    pub token_use: Option<TokenUse>,
    /// The span table, then the strings. The table: the ids (`SUB`..`USERNAME`), the
    /// clients, the scopes, the groups, then one per name in `names` (`NONE` where that
    /// header is absent).
    buf: Bytes,
    clients: u16,
    scopes: u16,
    groups: u16,
    /// The identity header names of the verifier's `[forward]`, shared by all its tokens.
    names: Arc<[HeaderName]>,
    /// The claims as CEL values, for the routes' `when` (kept only when a route has one).
    pub cel_claims: Option<Box<crate::condition::Claims>>,
}

/// The ids a log line may carry (`sub`, `client_id`, `jti`), and no other claim.
impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("origin", &self.origin)
            .field("kid", &self.kid())
            .field("exp", &self.exp)
            .field("token_use", &self.token_use)
            .field("sub", &self.sub())
            .field("client_id", &self.client_id())
            .field("jti", &self.jti())
            .finish_non_exhaustive()
    }
}

impl Verified {
    fn id(&self, i: usize) -> Option<&str> {
        Span::at(&self.buf, i).str_in(&self.buf)
    }

    fn list(&self, first: usize, len: u16) -> Strs<'_> {
        Strs {
            buf: &self.buf,
            first,
            len: len as usize,
        }
    }

    /// The `kid` of the key that verified the token.
    pub fn kid(&self) -> &str {
        match &self.origin {
            Origin::Jwks { key, .. } => &key.kid,
            Origin::Alb { key, .. } => &key.kid,
        }
    }

    pub fn sub(&self) -> Option<&str> {
        self.id(SUB)
    }

    /// `client_id` (access tokens; an ALB's `client`).
    pub fn client_id(&self) -> Option<&str> {
        self.id(CLIENT_ID)
    }

    pub fn jti(&self) -> Option<&str> {
        self.id(JTI)
    }

    /// `origin_jti`: one per sign-in, shared by its access and ID tokens.
    pub fn origin_jti(&self) -> Option<&str> {
        self.id(ORIGIN_JTI)
    }

    /// `username` (Cognito user access tokens; client-credentials tokens have none).
    pub fn username(&self) -> Option<&str> {
        self.id(USERNAME)
    }

    /// `client_id` for access tokens, the `aud` values otherwise.
    pub fn clients(&self) -> Strs<'_> {
        self.list(IDS, self.clients)
    }

    pub fn scopes(&self) -> Strs<'_> {
        self.list(IDS + self.clients as usize, self.scopes)
    }

    pub fn groups(&self) -> Strs<'_> {
        self.list(
            IDS + self.clients as usize + self.scopes as usize,
            self.groups,
        )
    }

    /// Where the header spans start in the table.
    fn first_header(&self) -> usize {
        IDS + self.clients as usize + self.scopes as usize + self.groups as usize
    }

    /// The identity headers rendered from the claims, ready to insert (`claims_header`
    /// aside), in `[forward.headers]` order; absent claims have none.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> + '_ {
        let first = self.first_header();
        self.names.iter().enumerate().filter_map(move |(i, name)| {
            let range = Span::at(&self.buf, first + i).range()?;
            if range.end > self.buf.len() {
                return None;
            }
            // Checked when the token was verified (`VerifiedBuilder::header`).
            HeaderValue::from_maybe_shared(self.buf.slice(range))
                .ok()
                .map(|v| (name, v))
        })
    }

    /// The bytes its strings take (the buffer less its span table).
    #[cfg(test)]
    pub(crate) fn strings_len(&self) -> usize {
        let spans = self.first_header() + self.names.len();
        self.buf.len() - spans * Span::SIZE
    }

    /// What this token offers to the route rules.
    pub fn grant(&self) -> Grant<'_> {
        Grant {
            token_use: self.token_use,
            clients: self.clients(),
            scopes: self.scopes(),
            groups: self.groups(),
        }
    }
}

/// Some strings of a [`Verified`] (its clients, scopes or groups).
#[derive(Clone, Copy)]
pub struct Strs<'a> {
    buf: &'a [u8],
    /// Index of the first span in `buf`'s table.
    first: usize,
    len: usize,
}

impl<'a> Strs<'a> {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn spans(&self) -> impl Iterator<Item = Span> + 'a {
        let buf = self.buf;
        (self.first..self.first + self.len).map(move |i| Span::at(buf, i))
    }

    /// Exact membership (bytes, no allocation).
    pub fn contains(&self, want: &str) -> bool {
        let buf = self.buf;
        self.spans().any(|s| {
            s.range()
                .is_some_and(|r| buf.get(r) == Some(want.as_bytes()))
        })
    }

    pub fn first(&self) -> Option<&'a str> {
        self.iter().next()
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let buf = self.buf;
        self.spans().filter_map(move |s| s.str_in(buf))
    }
}

/// Builds a [`Verified`]. Strings go into one text in the order they are given (the
/// verifier gives the clients, then the identity header values, then the ids, scopes and
/// groups); each is stored once: a string the text already holds, such as a scope inside the
/// `scope` header's value, is pointed to.
pub struct VerifiedBuilder {
    text: String,
    headers: SmallVec<[Span; 8]>,
    ids: [Span; IDS],
    lists: [SmallVec<[Span; 4]>; 3],
    names: Arc<[HeaderName]>,
}

/// Which list [`VerifiedBuilder::push`] adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Clients = 0,
    Scopes = 1,
    Groups = 2,
}

/// A span of `len` bytes at `start` (`NONE` beyond what a span can say: no token the size
/// cap lets through gets there).
fn span(start: usize, len: usize) -> Span {
    match (u32::try_from(start), u32::try_from(len)) {
        (Ok(start), Ok(len)) if start != u32::MAX => Span { start, len },
        _ => Span::NONE,
    }
}

impl VerifiedBuilder {
    /// `names`: the verifier's identity header names, in `[forward.headers]` order.
    pub fn new(names: &Arc<[HeaderName]>) -> VerifiedBuilder {
        VerifiedBuilder {
            text: String::with_capacity(256),
            headers: smallvec::smallvec![Span::NONE; names.len()],
            ids: [Span::NONE; IDS],
            lists: Default::default(),
            names: Arc::clone(names),
        }
    }

    fn put(&mut self, s: &str) -> Span {
        match find(self.text.as_bytes(), s.as_bytes()) {
            Some(at) => span(at, s.len()),
            None => {
                self.text.push_str(s);
                span(self.text.len() - s.len(), s.len())
            }
        }
    }

    /// The value of the `i`th identity header, as `render` writes it (onto the end of the
    /// text, then kept only if the text does not hold it already). A value that cannot be a
    /// header value (CR, LF, other controls) makes the token malformed.
    pub fn header(&mut self, i: usize, render: impl FnOnce(&mut String)) -> Result<(), AuthError> {
        let from = self.text.len();
        render(&mut self.text);
        let value = &self.text.as_bytes()[from..];
        // What `HeaderValue` accepts (so `headers` hands every value out), checked here
        // without building one.
        if !value.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t') {
            self.text.truncate(from);
            return Err(AuthError::Malformed);
        }
        let len = value.len();
        let at = match find(&self.text.as_bytes()[..from], value) {
            Some(at) => {
                self.text.truncate(from);
                at
            }
            None => from,
        };
        if let Some(h) = self.headers.get_mut(i) {
            *h = span(at, len);
        }
        Ok(())
    }

    pub fn ids(
        &mut self,
        sub: Option<&str>,
        client_id: Option<&str>,
        jti: Option<&str>,
        origin_jti: Option<&str>,
        username: Option<&str>,
    ) {
        for (at, v) in [sub, client_id, jti, origin_jti, username]
            .into_iter()
            .enumerate()
        {
            self.ids[at] = v.map_or(Span::NONE, |v| self.put(v));
        }
    }

    pub fn push(&mut self, list: List, s: &str) {
        let span = self.put(s);
        self.lists[list as usize].push(span);
    }

    pub fn has(&self, list: List, want: &str) -> bool {
        self.lists[list as usize].iter().any(|s| {
            s.range()
                .is_some_and(|r| &self.text.as_bytes()[r] == want.as_bytes())
        })
    }

    /// The buffer (the span table, then the text) and the clients', scopes' and groups'
    /// counts.
    fn encode(&self) -> (Bytes, [u16; 3]) {
        let count = |l: &SmallVec<[Span; 4]>| u16::try_from(l.len()).unwrap_or(u16::MAX);
        let counts = self.lists.each_ref().map(count);
        let lists = self
            .lists
            .iter()
            .zip(counts)
            .flat_map(|(l, n)| l.iter().take(n as usize));
        let spans = IDS + counts.iter().map(|&n| n as usize).sum::<usize>() + self.headers.len();
        let head = spans * Span::SIZE;
        // Exactly sized: the buffer lives as long as the token is cached.
        let mut buf = Vec::with_capacity(head + self.text.len());
        for span in self.ids.iter().chain(lists).chain(self.headers.iter()) {
            let start = match span.start {
                u32::MAX => u32::MAX,
                s => u32::try_from(head).map_or(u32::MAX, |h| s.saturating_add(h)),
            };
            buf.extend_from_slice(&start.to_le_bytes());
            buf.extend_from_slice(&span.len.to_le_bytes());
        }
        buf.extend_from_slice(self.text.as_bytes());
        (Bytes::from(buf), counts)
    }

    pub fn build(
        self,
        origin: Origin,
        exp: i64,
        token_use: Option<TokenUse>,
        cel_claims: Option<crate::condition::Claims>,
    ) -> Verified {
        let (buf, [nc, ns, ng]) = self.encode();
        Verified {
            origin,
            exp,
            token_use,
            buf,
            clients: nc,
            scopes: ns,
            groups: ng,
            names: self.names,
            cel_claims: cel_claims.map(Box::new),
        }
    }
}

/// Where `needle` first occurs in `haystack` (a few hundred bytes at most: the candidates
/// for its first byte, found with `memchr`, then compared). Cheaper here than a substring
/// searcher that is built for each call.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, &haystack[from..]) {
        let at = from + i;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// What a verified token offers to the route rules.
pub struct Grant<'a> {
    pub token_use: Option<TokenUse>,
    /// `client_id` (access token) or `aud` values (id token / OIDC).
    pub clients: Strs<'a>,
    pub scopes: Strs<'a>,
    pub groups: Strs<'a>,
}

/// A [`Grant`] from plain lists (through [`VerifiedBuilder`]), for the route rules' tests.
#[cfg(test)]
pub(crate) struct TestGrant {
    token_use: Option<TokenUse>,
    buf: Bytes,
    counts: [u16; 3],
}

#[cfg(test)]
impl TestGrant {
    pub fn new(
        token_use: Option<TokenUse>,
        clients: &[&str],
        scopes: &[&str],
        groups: &[&str],
    ) -> TestGrant {
        let mut b = VerifiedBuilder::new(&Arc::from(Vec::new()));
        for (list, items) in [
            (List::Clients, clients),
            (List::Scopes, scopes),
            (List::Groups, groups),
        ] {
            items.iter().for_each(|s| b.push(list, s));
        }
        let (buf, counts) = b.encode();
        TestGrant {
            token_use,
            buf,
            counts,
        }
    }

    pub fn grant(&self) -> Grant<'_> {
        let strs = |first: usize, len: u16| Strs {
            buf: &self.buf,
            first,
            len: len as usize,
        };
        let [c, s, g] = self.counts;
        Grant {
            token_use: self.token_use,
            clients: strs(IDS, c),
            scopes: strs(IDS + c as usize, s),
            groups: strs(IDS + c as usize + s as usize, g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_check_accepts_what_header_value_accepts() {
        let names: Arc<[HeaderName]> = vec![HeaderName::from_static("x-h")].into();
        let chars = (0u32..0x250)
            .filter_map(char::from_u32)
            .chain(['\u{2028}', '😀']);
        for c in chars {
            let s = format!("a{c}b");
            let ours = VerifiedBuilder::new(&names)
                .header(0, |t| t.push_str(&s))
                .is_ok();
            assert_eq!(ours, HeaderValue::from_str(&s).is_ok(), "{c:?}");
        }
    }

    #[test]
    fn the_builder_keeps_each_string_once_and_finds_list_members_exactly() {
        let names: Arc<[HeaderName]> = vec![HeaderName::from_static("x-h")].into();
        let mut b = VerifiedBuilder::new(&names);
        b.header(0, |t| t.push_str("a b cd")).unwrap();
        b.push(List::Scopes, "b");
        b.push(List::Scopes, "cd");
        b.push(List::Scopes, "c");
        b.push(List::Groups, "e");
        assert_eq!(b.text, "a b cde");
        // A header value the text holds already is pointed to, and nothing is added.
        b.header(0, |t| t.push_str("b cd")).unwrap();
        assert_eq!((b.text.as_str(), b.headers[0]), ("a b cde", span(2, 4)));
        // A refused value leaves the text as it was.
        assert_eq!(
            b.header(0, |t| t.push_str("x\ny")),
            Err(AuthError::Malformed)
        );
        assert_eq!(b.text, "a b cde");
        assert!(b.has(List::Scopes, "c") && b.has(List::Scopes, "cd"));
        assert!(!b.has(List::Scopes, "d") && !b.has(List::Scopes, "e"));
        assert!(!b.has(List::Clients, "a"));
        assert_eq!((b.lists[1].len(), b.lists[2].len()), (3, 1));
    }

    #[test]
    fn find_is_the_first_occurrence() {
        for (h, n) in [
            ("", ""),
            ("abc", ""),
            ("abc", "abc"),
            ("abc", "abcd"),
            ("aab", "ab"),
            ("ab ab", "b a"),
            ("xyz", "z"),
            ("caf\u{e9}", "\u{e9}"),
            ("aaa", "b"),
        ] {
            assert_eq!(find(h.as_bytes(), n.as_bytes()), h.find(n), "{h:?} {n:?}");
        }
    }
}
