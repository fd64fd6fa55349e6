use super::*;

const NOW: i64 = 1_700_000_000;
const BASE: &str = "sidecar";

fn keys(seed: u8) -> CookieKeys {
    CookieKeys::from_bytes(&[[seed; KEY_LEN]]).unwrap()
}

fn opts() -> CookieOptions {
    CookieOptions::default()
}

/// Deterministic base64url-ish filler of `len` characters.
fn token(len: usize, salt: u8) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(salt);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            A[(x % 64) as usize] as char
        })
        .collect()
}

fn small() -> Session {
    Session {
        access_token: "a.b.c".into(),
        refresh_token: None,
        access_exp: NOW + 3600,
        started_at: NOW,
        refreshed_at: NOW,
        sub: None,
    }
}

fn cognito() -> Session {
    Session {
        access_token: token(1024, 1),
        refresh_token: Some(token(1800, 2)),
        access_exp: NOW + 3600,
        started_at: NOW,
        refreshed_at: NOW,
        sub: Some("4f1b2c3d-1111-2222-3333-444455556666".into()),
    }
}

/// One `Cookie` header with every cookie, as a browser would send them.
fn request(cookies: &[SetCookie], extra: &[&str]) -> HeaderMap {
    let mut pairs: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    pairs.extend(cookies.iter().map(|c| format!("{}={}", c.name, c.value)));
    header(&pairs.join("; "))
}

fn header(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_str(v).unwrap());
    h
}

fn seal(s: &Session) -> Vec<SetCookie> {
    seal_session(&keys(1), BASE, s, &opts(), NOW).unwrap()
}

fn open(h: &HeaderMap) -> Result<Session, SessionError> {
    open_session(&keys(1), BASE, h, &opts(), NOW + 10)
}

#[test]
fn session_round_trips_small_and_cognito_sized() {
    for s in [small(), cognito()] {
        let cookies = seal(&s);
        assert_eq!(open(&request(&cookies, &[])).unwrap(), s);
    }
    let small = seal(&small());
    assert_eq!(small.len(), 1);
    assert_eq!(small[0].name, "__Host-sidecar.0");
}

#[test]
fn cognito_sized_cookie_sizes() {
    let cookies = seal(&cognito());
    let plain = serde_json::to_vec(&cognito()).unwrap().len();
    let lines: Vec<usize> = cookies.iter().map(|c| c.to_string().len()).collect();
    let header: usize = cookies
        .iter()
        .map(|c| c.name.len() + 1 + c.value.len() + 2)
        .sum();
    println!(
        "payload {plain} B json; {} chunks; Set-Cookie bytes {lines:?}; Cookie header bytes {header}",
        cookies.len()
    );
    assert_eq!(cookies.len(), 2);
    assert!(lines.iter().all(|&l| l < 4096));
    assert!(header <= opts().max_cookie_bytes);
}

#[test]
fn longest_set_cookie_stays_under_4096() {
    let c = SetCookie {
        name: format!("{HOST_PREFIX}{}.7", "n".repeat(MAX_BASE_NAME)),
        value: "v".repeat(CHUNK_VALUE_MAX),
        max_age: u64::MAX,
        secure: true,
    };
    let len = c.to_string().len();
    assert_eq!(len, 3972);
    assert!(len < 4096);
}

#[test]
fn every_single_byte_tamper_fails() {
    let cookies = seal(&small());
    let value = cookies[0].value.clone();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..value.len() {
        let mut bytes = value.clone().into_bytes();
        // The next base64url character: every bit of a sextet changes somewhere in the loop,
        // and position i always decodes to different bits.
        let pos = alphabet.iter().position(|&b| b == bytes[i]).unwrap();
        bytes[i] = alphabet[(pos + 1) % 64];
        let mut c = cookies.clone();
        c[0].value = String::from_utf8(bytes).unwrap();
        let err = open(&request(&c, &[])).unwrap_err();
        assert!(
            matches!(
                err,
                SessionError::Undecryptable
                    | SessionError::Malformed(_)
                    | SessionError::MissingChunk { .. }
            ),
            "byte {i}: {err:?}"
        );
    }
}

#[test]
fn raw_byte_tamper_fails() {
    // Flip each bit of each byte of the sealed bytes themselves (base64url is decoded first).
    let cookies = seal(&small());
    let raw = URL_SAFE_NO_PAD.decode(&cookies[0].value[1..]).unwrap();
    for i in 0..raw.len() {
        for bit in 0..8 {
            let mut r = raw.clone();
            r[i] ^= 1 << bit;
            let mut c = cookies.clone();
            c[0].value = format!("1{}", URL_SAFE_NO_PAD.encode(&r));
            assert!(open(&request(&c, &[])).is_err(), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn truncated_reordered_duplicated_missing() {
    let cookies = seal(&cognito());
    assert_eq!(cookies.len(), 2);
    // Last chunk dropped.
    let err = open(&request(&cookies[..1], &[])).unwrap_err();
    assert!(
        matches!(err, SessionError::MissingChunk { index: 1 }),
        "{err:?}"
    );
    // Chunk values swapped.
    let mut swapped = cookies.clone();
    let (a, b) = (swapped[0].value.clone(), swapped[1].value.clone());
    swapped[0].value = b;
    swapped[1].value = a;
    assert!(open(&request(&swapped, &[])).is_err());
    // Chunk 1's value shortened.
    let mut short = cookies.clone();
    short[1].value.pop();
    assert!(matches!(
        open(&request(&short, &[])),
        Err(SessionError::Undecryptable | SessionError::Malformed(_))
    ));
    // Duplicated chunk, even with the same value, in the same or another header.
    let dup = [cookies.clone(), vec![cookies[1].clone()]].concat();
    assert!(matches!(
        open(&request(&dup, &[])),
        Err(SessionError::DuplicateChunk { index: 1 })
    ));
    let mut two = request(&cookies, &[]);
    two.append(
        COOKIE,
        HeaderValue::from_str(&format!("{}={}", cookies[0].name, cookies[0].value)).unwrap(),
    );
    assert!(matches!(
        open(&two),
        Err(SessionError::DuplicateChunk { index: 0 })
    ));
    // Chunk 0 missing.
    assert!(matches!(
        open(&request(&cookies[1..], &[])),
        Err(SessionError::MissingChunk { index: 0 })
    ));
    // Nothing at all.
    assert!(matches!(
        open(&HeaderMap::new()),
        Err(SessionError::Missing)
    ));
    assert!(matches!(open(&header("a=b")), Err(SessionError::Missing)));
}

#[test]
fn chunks_across_several_cookie_headers_and_unrelated_cookies() {
    let s = cognito();
    let cookies = seal(&s);
    let mut h = HeaderMap::new();
    // HTTP/2 "crumbs": one header per cookie, chunk 1 first, unrelated cookies around.
    h.append(COOKIE, HeaderValue::from_static("theme=dark"));
    for c in cookies.iter().rev() {
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("{}={}", c.name, c.value)).unwrap(),
        );
    }
    h.append(
        COOKIE,
        HeaderValue::from_static("sidecar.0=junk; __Host-sidecar.x=1; __Host-sidecar.9=2; other=1"),
    );
    assert_eq!(open(&h).unwrap(), s);
}

#[test]
fn stale_higher_chunk_is_ignored_and_can_be_expired() {
    let cookies = seal(&small());
    let h = request(
        &cookies,
        &["__Host-sidecar.1=stale", "__Host-sidecar.2=stale"],
    );
    assert_eq!(open(&h).unwrap(), small());
    let expire = expire_stale_chunks(BASE, &h, cookies.len(), true);
    assert_eq!(
        expire,
        [
            "__Host-sidecar.1=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
            "__Host-sidecar.2=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
        ]
    );
}

#[test]
fn key_rotation_and_foreign_key() {
    let old = [7u8; KEY_LEN];
    let new = [8u8; KEY_LEN];
    let cookies = seal_session(
        &CookieKeys::from_bytes(&[old]).unwrap(),
        BASE,
        &cognito(),
        &opts(),
        NOW,
    )
    .unwrap();
    let h = request(&cookies, &[]);
    let rotated = CookieKeys::from_bytes(&[new, old]).unwrap();
    assert_eq!(
        open_session(&rotated, BASE, &h, &opts(), NOW).unwrap(),
        cognito()
    );
    let only_new = CookieKeys::from_bytes(&[new]).unwrap();
    assert!(matches!(
        open_session(&only_new, BASE, &h, &opts(), NOW),
        Err(SessionError::Undecryptable)
    ));
    // The new list seals with the new key: the old list can no longer open it.
    let resealed = seal_session(&rotated, BASE, &cognito(), &opts(), NOW).unwrap();
    let old_only = CookieKeys::from_bytes(&[old]).unwrap();
    assert!(matches!(
        open_session(&old_only, BASE, &request(&resealed, &[]), &opts(), NOW),
        Err(SessionError::Undecryptable)
    ));
    assert!(matches!(
        open_session(&keys(9), BASE, &h, &opts(), NOW),
        Err(SessionError::Undecryptable)
    ));
}

#[test]
fn purpose_confusion_fails() {
    let k = keys(1);
    let o = opts();
    let ls = login_state();
    // A login-state value presented as session chunk 0 (with a count digit) and vice versa.
    let state_cookie = seal_login_state(&k, BASE, &ls, &o).unwrap();
    let as_session = header(&format!("__Host-{BASE}.0=1{}", state_cookie.value));
    assert!(matches!(
        open_session(&k, BASE, &as_session, &o, NOW),
        Err(SessionError::Undecryptable)
    ));
    let session = seal(&small());
    let as_state = header(&format!("__Host-{BASE}={}", &session[0].value[1..]));
    assert!(matches!(
        open_login_state(&k, BASE, &as_state, &o, NOW),
        Err(SessionError::Undecryptable)
    ));
}

#[test]
fn renamed_cookie_fails() {
    let cookies = seal(&small());
    let h = header(&format!("__Host-other.0={}", cookies[0].value));
    assert!(matches!(
        open_session(&keys(1), "other", &h, &opts(), NOW),
        Err(SessionError::Undecryptable)
    ));
    // Dropping the __Host- prefix (insecure reader) does not open a secure cookie either.
    let insecure = CookieOptions {
        secure: false,
        ..opts()
    };
    let h = header(&format!("{BASE}.0={}", cookies[0].value));
    assert!(matches!(
        open_session(&keys(1), BASE, &h, &insecure, NOW),
        Err(SessionError::Undecryptable)
    ));
    // And a secure reader ignores the unprefixed name entirely.
    assert!(matches!(open(&h), Err(SessionError::Missing)));
}

#[test]
fn too_large_reports_numbers() {
    let mut s = cognito();
    s.refresh_token = Some(token(6000, 3));
    match seal_session(&keys(1), BASE, &s, &opts(), NOW) {
        Err(SessionError::TooLarge { needed, limit }) => {
            assert_eq!(limit, 8192);
            assert!(needed > 8192, "{needed}");
        }
        other => panic!("{other:?}"),
    }
    // A raised limit is still capped by MAX_CHUNKS.
    s.refresh_token = Some(token(40_000, 3));
    let big = CookieOptions {
        max_cookie_bytes: 1 << 20,
        ..opts()
    };
    assert!(matches!(
        seal_session(&keys(1), BASE, &s, &big, NOW),
        Err(SessionError::TooLarge { limit, .. }) if limit < 40_000
    ));
}

#[test]
fn session_lifetime() {
    let cookies = seal(&small());
    let h = request(&cookies, &[]);
    assert_eq!(cookies[0].max_age, 12 * 3600);
    let late = NOW + 12 * 3600;
    assert!(matches!(
        open_session(&keys(1), BASE, &h, &opts(), late),
        Err(SessionError::Expired { .. })
    ));
    // Sealed later in its life, the cookie lives only what is left.
    let c = seal_session(&keys(1), BASE, &small(), &opts(), NOW + 3600).unwrap();
    assert_eq!(c[0].max_age, 11 * 3600);
    assert!(matches!(
        seal_session(&keys(1), BASE, &small(), &opts(), late),
        Err(SessionError::Expired { .. })
    ));
}

fn login_state() -> LoginState {
    LoginState {
        state: token(43, 4),
        nonce: token(43, 5),
        pkce_verifier: token(64, 6),
        return_to: "/app?x=1".into(),
        created_at: NOW,
    }
}

#[test]
fn login_state_round_trip_and_expiry() {
    let k = keys(1);
    let o = opts();
    let c = seal_login_state(&k, "login", &login_state(), &o).unwrap();
    assert_eq!(c.name, "__Host-login");
    assert_eq!(c.max_age, 600);
    let h = request(std::slice::from_ref(&c), &["a=b"]);
    assert_eq!(
        open_login_state(&k, "login", &h, &o, NOW + 599).unwrap(),
        login_state()
    );
    assert!(matches!(
        open_login_state(&k, "login", &h, &o, NOW + 600),
        Err(SessionError::Expired {
            age: 600,
            max_age: 600
        })
    ));
    assert!(matches!(
        open_login_state(&k, "login", &h, &o, NOW - 3600),
        Err(SessionError::Expired { .. })
    ));
    assert!(matches!(
        open_login_state(&k, "login", &HeaderMap::new(), &o, NOW),
        Err(SessionError::Missing)
    ));
    let dup = request(&[c.clone(), c], &[]);
    assert!(matches!(
        open_login_state(&k, "login", &dup, &o, NOW),
        Err(SessionError::DuplicateChunk { .. })
    ));
    assert_eq!(
        clear_login_state("login", true).unwrap(),
        "__Host-login=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
    );
}

#[test]
fn strip_keeps_unrelated_cookies() {
    let mut h = HeaderMap::new();
    h.append(
        COOKIE,
        HeaderValue::from_static(
            "a=1; __Host-sidecar.0=x; sidecar.1=y;b=2 ; __Host-login=z; sidecarx=keep; sidecar.q=keep",
        ),
    );
    h.append(COOKIE, HeaderValue::from_static("__Host-sidecar.12=x"));
    h.append(COOKIE, HeaderValue::from_static("c=3; login=z"));
    h.append(
        COOKIE,
        HeaderValue::from_bytes(b"d=\xff; sidecar=z").unwrap(),
    );
    strip_session_cookies(&mut h, &["sidecar", "login"]);
    let left: Vec<&[u8]> = h.get_all(COOKIE).iter().map(|v| v.as_bytes()).collect();
    assert_eq!(
        left,
        [
            &b"a=1; b=2; sidecarx=keep; sidecar.q=keep"[..],
            b"c=3",
            b"d=\xff"
        ]
    );
    // Nothing left: the header goes.
    let mut h = header("__Host-sidecar.0=x; __Host-sidecar.1=y");
    strip_session_cookies(&mut h, &["sidecar"]);
    assert!(h.get(COOKIE).is_none());
    // Nothing of ours: untouched, spacing included.
    let mut h = header("a=1;b=2");
    strip_session_cookies(&mut h, &["sidecar"]);
    assert_eq!(h.get(COOKIE).unwrap(), "a=1;b=2");
}

#[test]
fn set_cookie_attributes() {
    let secure = seal(&small());
    assert_eq!(
        secure[0].to_string(),
        format!(
            "__Host-sidecar.0={}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=43200",
            secure[0].value
        )
    );
    assert!(secure[0].to_header_value().is_ok());
    let dev = CookieOptions {
        secure: false,
        ..opts()
    };
    let insecure = seal_session(&keys(1), BASE, &small(), &dev, NOW).unwrap();
    assert_eq!(
        insecure[0].to_string(),
        format!(
            "sidecar.0={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200",
            insecure[0].value
        )
    );
    assert_eq!(
        open_session(&keys(1), BASE, &request(&insecure, &[]), &dev, NOW).unwrap(),
        small()
    );
    let login = seal_login_state(&keys(1), "login", &login_state(), &dev).unwrap();
    assert!(!login.to_string().contains("Secure"));
    assert!(!login.to_string().contains("__Host-"));
}

#[test]
fn clear_expires_present_chunks_and_one_past() {
    let h = header("__Host-sidecar.0=a; __Host-sidecar.1=b; x=1");
    assert_eq!(
        clear_cookies(BASE, &h, true),
        [
            "__Host-sidecar.0=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
            "__Host-sidecar.1=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
            "__Host-sidecar.2=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
        ]
    );
    assert_eq!(
        clear_cookies(BASE, &HeaderMap::new(), false),
        ["sidecar.0=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    );
}

#[test]
fn keys_parse_and_name_the_bad_entry() {
    let raw = [0xfbu8; KEY_LEN]; // encodes with '+'/'/' in standard, '-'/'_' in URL-safe
    let std_pad = base64::engine::general_purpose::STANDARD.encode(raw);
    let url = URL_SAFE_NO_PAD.encode(raw);
    assert!(std_pad.contains('/') && url.contains('_'));
    let k = CookieKeys::from_base64(&[url.as_str(), &std_pad, &format!(" {url}=\n")]).unwrap();
    assert_eq!(k.len(), 3);
    assert_eq!(format!("{k:?}"), "CookieKeys { count: 3, .. }");
    match CookieKeys::from_base64(&[url.as_str(), "c2hvcnQ"]) {
        Err(e @ KeyError::WrongLength { index: 1, len: 5 }) => {
            assert_eq!(e.to_string(), "cookie key [1] decodes to 5 bytes, not 32")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        CookieKeys::from_base64(&[url.as_str(), url.as_str(), "not base64!"]),
        Err(KeyError::NotBase64 { index: 2, .. })
    ));
    assert!(matches!(
        CookieKeys::from_base64::<&str>(&[]),
        Err(KeyError::Empty)
    ));
    assert!(matches!(
        CookieKeys::from_base64(&[url.as_str(); 9]),
        Err(KeyError::TooMany { count: 9 })
    ));
    let generated = CookieKeys::generate_base64().unwrap();
    assert!(CookieKeys::from_base64(&[generated]).is_ok());
}

#[test]
fn debug_shows_no_secrets() {
    let s = cognito();
    let text = format!("{s:?} {:?} {:?}", seal(&s), login_state());
    assert!(!text.contains(&s.access_token[..20]));
    assert!(!text.contains(&login_state().pkce_verifier));
    assert!(!text.contains(&seal(&s)[0].value[..20]));
}

#[test]
fn bad_names_and_garbage() {
    for name in ["", "a b", "a.b", "__Host-x", "x;y", &"n".repeat(65)] {
        assert!(matches!(
            seal_session(&keys(1), name, &small(), &opts(), NOW),
            Err(SessionError::InvalidName)
        ));
    }
    for v in ["", "0", "9abc", "1", "1!!!!", "1AAAA", "1AQ", "x"] {
        let h = header(&format!("__Host-sidecar.0={v}"));
        assert!(open(&h).is_err(), "{v:?}");
    }
    // Too long a chunk is refused before any decoding.
    let h = header(&format!(
        "__Host-sidecar.0=1{}",
        "A".repeat(CHUNK_VALUE_MAX)
    ));
    assert!(matches!(open(&h), Err(SessionError::Malformed(_))));
}
