//! Headers on the way through, both directions: what is stripped and what is injected.
//!
//! - Stripped: hop-by-hop headers (RFC 9110 §7.6.1, plus names listed in `Connection`) both
//!   ways; from every request, every configured identity header, the claims header, their
//!   underscore look-alikes, `X-Original-URL`/`X-Rewrite-URL`, the method overrides
//!   (`X-HTTP-Method-Override`, ...) and an ALB's `x-amzn-oidc-*` headers, before anything
//!   is injected, so the upstream only ever sees identity the sidecar verified.
//! - Rendered: verified claims into the `[forward.headers]` values ([`render_identity`]),
//!   and `X-Forwarded-*` ([`set_forwarded`]).
//!
//! Where a token came from, and how that source is removed, is `bearer.rs`'s.

use std::borrow::Cow;
use std::collections::HashSet;

use percent_encoding::{utf8_percent_encode, AsciiSet};
use serde_json::{Map, Value};
use smallvec::SmallVec;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::claims::{AuthError, VerifiedBuilder};
use crate::config::ForwardConfig;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
// RFC 9113 §3.2.1 (h2c upgrade): connection-specific, whether or not `Connection` says so.
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");
static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
static XFH: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Hop-by-hop headers that never cross the proxy (RFC 9110 §7.6.1; RFC 7230 §6.1's list).
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    HTTP2_SETTINGS,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|h| h == name)
}

/// Headers the proxy frames or sets itself. Their underscore look-alikes (`Transfer_Encoding`,
/// `Content_Length`, `X_Forwarded_Proto`) mean nothing to the sidecar, but CGI-style upstreams
/// read `_` as `-` and would frame the body another way, or believe a client-chosen value.
const MANAGED: &[&str] = &[
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Headers a `Connection` list may not remove (the proxy manages them itself).
const PROTECTED: &[&str] = &["host", "content-length", "x-request-id"];

/// Headers that rewrite the path on some upstream stacks (IIS, Symfony): never honoured.
const PATH_OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
];

/// Headers that change the method on some upstream stacks (ASP.NET Core's
/// `UseHttpMethodOverride`, Express `method-override`, Symfony): the method a route checked
/// is the method the upstream runs, so these never pass.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether the request asks for a WebSocket upgrade (RFC 6455 §4.1).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Removes hop-by-hop headers, the names listed in `Connection`, and the underscore look-alikes
/// of hop-by-hop, framing and `Host` headers.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none of these: one pass over the names, no allocation.
    let suspicious = |k: &HeaderName| is_hop_by_hop(k) || k.as_str().contains('_');
    if !headers.keys().any(suspicious) {
        return;
    }
    // Headers named in `Connection` go (unless protected). The values are taken out first
    // (clones share hyper's buffer) so that names are removed by `&str`, without building
    // a `HeaderName` per token; `Connection` itself is hop-by-hop.
    let listed: SmallVec<[HeaderValue; 2]> = headers
        .get_all(header::CONNECTION)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::CONNECTION);
    for v in &listed {
        let Ok(s) = v.to_str() else { continue };
        for token in s.split(',') {
            let t = token.trim();
            if !t.is_empty() && !PROTECTED.iter().any(|p| p.eq_ignore_ascii_case(t)) {
                headers.remove(t);
            }
        }
    }
    // Inline storage: the usual few hop-by-hop names must not allocate.
    let mut doomed: SmallVec<[HeaderName; 4]> = SmallVec::new();
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            doomed.push(name.clone());
            continue;
        }
        let s = name.as_str();
        if s.contains('_') {
            let canon = canonical(s);
            if HOP_BY_HOP.iter().any(|h| h.as_str() == canon) || MANAGED.contains(&canon.as_str()) {
                doomed.push(name.clone());
            }
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// [`strip_hop_by_hop`] for a request on its way upstream, except that a `TE` naming
/// `trailers` goes on as exactly `te: trailers` (RFC 9110 §10.1.4: the client accepts
/// trailer fields; gRPC needs it to reach the server). Every other `TE` member, a transfer
/// coding of this hop, is dropped, and a `TE` without `trailers` goes altogether.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap) {
    let trailers = headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The identity headers of a config, prepared for per-request stripping.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// Canonical forms (lower case, `_` as `-`) of every name to strip.
    strip: HashSet<String>,
}

impl IdentityHeaders {
    pub fn new(forward: &ForwardConfig) -> IdentityHeaders {
        let mut strip: HashSet<String> = forward
            .headers
            .iter()
            .map(|(h, _)| canonical(h.as_str()))
            .collect();
        if let Some(h) = &forward.claims_header {
            strip.insert(canonical(h.as_str()));
        }
        strip.extend(PATH_OVERRIDES.iter().map(|s| s.to_string()));
        // An ALB's headers: never forwarded as the client sent them (the proxy puts back an
        // `x-amzn-oidc-data` that an ALB issuer verified).
        strip.extend(crate::alb::ALB_HEADERS.iter().map(|s| s.to_string()));
        strip.extend(METHOD_OVERRIDES.iter().map(|s| s.to_string()));
        IdentityHeaders { strip }
    }

    /// Whether `name` (lower case, as `http` keeps it) is an identity header or a look-alike:
    /// what a route's `when` does not see in `request.headers`.
    pub fn is_identity(&self, name: &str) -> bool {
        if name.contains('_') {
            self.strip.contains(&canonical(name))
        } else {
            self.strip.contains(name)
        }
    }

    /// Removes every configured identity header and look-alike, in any case or spelling.
    pub fn strip(&self, headers: &mut HeaderMap) {
        let mut doomed: Vec<HeaderName> = Vec::new();
        for name in headers.keys() {
            let s = name.as_str();
            let hit = if s.contains('_') {
                self.strip.contains(&canonical(s))
            } else {
                self.strip.contains(s)
            };
            if hit {
                doomed.push(name.clone());
            }
        }
        for name in doomed {
            headers.remove(name);
        }
    }
}

/// Header names are already lower case in `http`; `_` reads as `-` on CGI-style stacks.
fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// A claim in the shape the route rules read it, for forwarding: `scope` only as a string and
/// `cognito:groups` only as its string elements, so the upstream never reads a scope or a group
/// the sidecar did not grant (a bare `"cognito:groups": "readers,admins"` grants no group, and
/// must not arrive as `X-Auth-Groups: readers,admins`). `None`: leave the header absent.
fn as_granted<'v>(claim: &str, v: &'v Value) -> Option<Cow<'v, Value>> {
    match (claim, v) {
        ("scope", Value::String(_)) => Some(Cow::Borrowed(v)),
        ("scope", _) => None,
        ("cognito:groups", Value::Array(items)) if items.iter().all(Value::is_string) => {
            Some(Cow::Borrowed(v))
        }
        ("cognito:groups", Value::Array(items)) => Some(Cow::Owned(Value::Array(
            items.iter().filter(|i| i.is_string()).cloned().collect(),
        ))),
        ("cognito:groups", _) => None,
        _ => Some(Cow::Borrowed(v)),
    }
}

/// Bytes an identity header value never carries as they are, percent-encoded: every byte of
/// 0x80 and above (strict servers such as Kestrel refuse non-ASCII header values; the
/// encoder always encodes those) and `%` itself, so that decoding is unambiguous. Spaces,
/// tabs (RFC 9110 allows them in a field value) and other visible ASCII stay as they are;
/// other controls make the token malformed.
const IN_VALUE: &AsciiSet = &AsciiSet::EMPTY.add(b'%');
/// Inside one element of a joined array: also `,`, the separator.
const IN_ELEMENT: &AsciiSet = &IN_VALUE.add(b',');

/// Renders one claim as a header value onto `out`: strings as they are, arrays joined with
/// `,` (each element encoded, `,` included), numbers, booleans and objects as compact JSON
/// text; then percent-encoded (every byte of 0x80 and above, and `%`). Whether it can be a
/// header value (no CR, LF or other controls) is [`VerifiedBuilder::header`]'s check.
pub fn render_claim_into(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.extend(utf8_percent_encode(s, IN_VALUE)),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::String(s) => out.extend(utf8_percent_encode(s, IN_ELEMENT)),
                    other => out.extend(utf8_percent_encode(&other.to_string(), IN_ELEMENT)),
                }
            }
        }
        Value::Null => {}
        other => out.extend(utf8_percent_encode(&other.to_string(), IN_VALUE)),
    }
}

/// The `[forward.headers]` of `forward`, rendered from verified claims into `into`, in
/// config order. A claim the token lacks (or holds in a shape that grants nothing) leaves its
/// header absent; a value that cannot be a header value makes the token malformed.
pub fn render_identity(
    forward: &ForwardConfig,
    claims: &Map<String, Value>,
    into: &mut VerifiedBuilder,
) -> Result<(), AuthError> {
    for (i, (_, claim)) in forward.headers.iter().enumerate() {
        if let Some(v) = claims.get(claim).and_then(|v| as_granted(claim, v)) {
            into.header(i, |out| render_claim_into(&v, out))?;
        }
    }
    Ok(())
}

/// An IPv4 address in dotted decimal, as `Display` writes it, into `buf`; its length.
/// Written digit by digit: `Display` costs about 1k instructions, on every forwarded request.
fn ipv4_text(ip: std::net::Ipv4Addr, buf: &mut [u8; 64]) -> usize {
    let mut n = 0;
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            buf[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            buf[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + o % 10;
        n += 1;
    }
    n
}

/// Appends the peer to `X-Forwarded-For` and sets `X-Forwarded-Proto` / `-Host`.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: std::net::IpAddr,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    use std::fmt::Write as _;
    let mut earlier = headers
        .get_all(&XFF)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .peekable();
    let value = if earlier.peek().is_none() {
        // The common case, the peer alone: formatted on the stack, one allocation (the
        // value's own).
        let mut buf = [0u8; 64];
        let n = match peer {
            std::net::IpAddr::V4(v4) => ipv4_text(v4, &mut buf),
            std::net::IpAddr::V6(_) => {
                let mut w = std::io::Cursor::new(&mut buf[..]);
                // An address is at most 45 characters: this cannot fail.
                let _ = std::io::Write::write_fmt(&mut w, format_args!("{peer}"));
                w.position() as usize
            }
        };
        HeaderValue::from_bytes(&buf[..n])
    } else {
        let mut value = String::with_capacity(48);
        for s in earlier {
            value.push_str(s);
            value.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(value, "{peer}");
        HeaderValue::from_str(&value)
    };
    if let Ok(v) = value {
        headers.insert(XFF.clone(), v);
    }
    headers.insert(XFP.clone(), HeaderValue::from_static(proto));
    match host {
        Some(h) => {
            headers.insert(XFH.clone(), h);
        }
        None => {
            headers.remove(&XFH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A claim as the identity header's value, with the builder's check that it can be one.
    fn render_claim(v: &Value) -> Result<String, AuthError> {
        let names: std::sync::Arc<[HeaderName]> = vec![HeaderName::from_static("x-h")].into();
        let mut text = String::new();
        render_claim_into(v, &mut text);
        VerifiedBuilder::new(&names).header(0, |out| out.push_str(&text))?;
        Ok(text)
    }

    #[test]
    fn ipv4_text_is_what_display_writes() {
        let mut seen = 0;
        let mut x: u32 = 0x9e37_79b9;
        let fixed = [
            0u32,
            u32::MAX,
            0x7f00_0001,
            0x0a00_0001,
            0x6464_0909,
            0x0102_0304,
        ];
        for ip in fixed.into_iter().chain((0..5000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })) {
            let ip = std::net::Ipv4Addr::from(ip);
            let mut buf = [0u8; 64];
            let n = ipv4_text(ip, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), ip.to_string());
            seen += 1;
        }
        assert_eq!(seen, 5006);
    }

    fn forward() -> ForwardConfig {
        ForwardConfig {
            strip_authorization: false,
            claims_header: Some(HeaderName::from_static("x-auth-claims")),
            headers: vec![
                (HeaderName::from_static("x-auth-sub"), "sub".into()),
                (
                    HeaderName::from_static("x-auth-groups"),
                    "cognito:groups".into(),
                ),
            ],
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn claims_render_as_header_values() {
        assert_eq!(render_claim(&json!("abc")).unwrap(), "abc");
        assert_eq!(render_claim(&json!(42)).unwrap(), "42");
        assert_eq!(render_claim(&json!(true)).unwrap(), "true");
        assert_eq!(
            render_claim(&json!(["admins", "devs,admins", "100%"])).unwrap(),
            "admins,devs%2Cadmins,100%25"
        );
        assert_eq!(render_claim(&json!({"a":1})).unwrap(), "{\"a\":1}");
        // Outside visible ASCII, and `%` itself, percent-encoded: what strict servers take.
        assert_eq!(
            render_claim(&json!("José Müller")).unwrap(),
            "Jos%C3%A9 M%C3%BCller"
        );
        assert_eq!(render_claim(&json!("100% sure")).unwrap(), "100%25 sure");
        assert_eq!(render_claim(&json!("a\tb")).unwrap(), "a\tb");
        assert_eq!(
            render_claim(&json!({"name": "Zoë"})).unwrap(),
            "{\"name\":\"Zo%C3%AB\"}"
        );
        assert_eq!(
            render_claim(&json!(["ü", 7, true])).unwrap(),
            "%C3%BC,7,true"
        );
        assert_eq!(
            render_claim(&json!("a\r\nX-Evil: 1")),
            Err(AuthError::Malformed)
        );
        assert_eq!(render_claim(&json!("nul\0")), Err(AuthError::Malformed));
        // A newline inside an array element is escaped by JSON? No: strings are raw, so refused.
        assert_eq!(render_claim(&json!(["a\nb"])), Err(AuthError::Malformed));
    }

    #[test]
    fn scope_and_groups_are_forwarded_as_granted() {
        let g = |v: Value| as_granted("cognito:groups", &v).map(|c| c.into_owned());
        assert_eq!(g(json!(["a", "b"])), Some(json!(["a", "b"])));
        assert_eq!(g(json!(["a", 1, ["b"]])), Some(json!(["a"])));
        assert_eq!(g(json!("a,b")), None);
        assert_eq!(g(json!(null)), None);
        let s = |v: Value| as_granted("scope", &v).map(|c| c.into_owned());
        assert_eq!(s(json!("a b")), Some(json!("a b")));
        assert_eq!(s(json!(["a"])), None);
        assert_eq!(
            as_granted("username", &json!(["x"])).map(|c| c.into_owned()),
            Some(json!(["x"]))
        );
    }

    #[test]
    fn identity_headers_and_lookalikes_are_stripped() {
        let id = IdentityHeaders::new(&forward());
        let mut h = map(&[
            ("X-Auth-Sub", "evil"),
            ("x-auth-sub", "evil2"),
            ("X_Auth_Sub", "evil3"),
            ("x-auth_groups", "admins"),
            ("X-AUTH-CLAIMS", "e30"),
            ("X-Original-URL", "/admin"),
            ("x_rewrite_url", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_http_method", "DELETE"),
            ("X-Auth-Subject", "kept"),
            ("accept", "*/*"),
        ]);
        id.strip(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-auth-subject"]);
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, host"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("host", "example"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
            ("transfer_encoding", "chunked"),
            ("Content_Length", "50"),
            ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("x_forwarded_proto", "https"),
            ("keep_alive", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "host"]);
    }

    #[test]
    fn te_trailers_alone_goes_upstream() {
        for (given, kept) in [
            (&["trailers"][..], true),
            (&["Trailers"], true),
            (&[" TRAILERS "], true),
            (&["gzip, trailers"], true),
            (&["deflate", "trailers"], true),
            (&["gzip"], false),
            (&["trailers;q=0.5"], false),
            (&["trailersx"], false),
            (&["chunked, deflate;q=0.5"], false),
            (&[""], false),
        ] {
            let mut h = HeaderMap::new();
            for v in given {
                h.append(header::TE, HeaderValue::from_str(v).unwrap());
            }
            // RFC 9110 §10.1.4: a sender of TE also lists it in Connection.
            h.insert(
                header::CONNECTION,
                HeaderValue::from_static("te, keep-alive"),
            );
            strip_request_hop_by_hop(&mut h);
            let te: Vec<_> = h.get_all(header::TE).iter().collect();
            if kept {
                assert_eq!(te, [HeaderValue::from_static("trailers")], "{given:?}");
            } else {
                assert!(te.is_empty(), "{given:?}: {te:?}");
            }
            assert!(!h.contains_key(header::CONNECTION));
        }
        // A response's TE means nothing and still goes.
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h);
        assert!(!h.contains_key(header::TE));
        // Nor does the underscore look-alike pass as TE.
        let mut h = map(&[("t_e", "trailers")]);
        strip_request_hop_by_hop(&mut h);
        assert!(!h.contains_key(header::TE));
    }

    #[test]
    fn websocket_upgrade_detection() {
        assert!(is_websocket_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(!is_websocket_upgrade(&map(&[
            ("connection", "Upgrade"),
            ("upgrade", "h2c")
        ])));
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn forwarded_headers_append() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "spoof"),
        ]);
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap(),
            "http",
            Some(HeaderValue::from_static("api.example")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
    }

    #[test]
    fn forwarded_for_is_the_peer_alone_without_earlier_hops() {
        for (peer, blank) in [
            ("192.0.2.7", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", Some("  ")),
            ("2001:db8::1", Some("")),
        ] {
            let mut h = match blank {
                Some(b) => map(&[("x-forwarded-for", b)]),
                None => HeaderMap::new(),
            };
            set_forwarded(&mut h, peer.parse().unwrap(), "https", None);
            let want = peer.parse::<std::net::IpAddr>().unwrap().to_string();
            assert_eq!(h["x-forwarded-for"], want.as_str());
            assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
            assert_eq!(h["x-forwarded-proto"], "https");
            assert!(!h.contains_key("x-forwarded-host"));
        }
    }
}
