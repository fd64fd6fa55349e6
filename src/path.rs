//! Request-path normalisation, done once per request before route matching. The path that is
//! matched is the path that is forwarded, so no spelling of a path can reach the upstream under
//! a rule other than the one that was checked.
//!
//! What is done (RFC 3986 §6.2.2): percent-escapes of unreserved characters are decoded
//! (`%41` -> `A`, `%2e` -> `.`), other escapes are kept with upper-case hex, repeated slashes
//! are merged, and dot segments are removed (§5.2.4).
//!
//! What is refused (400), because upstreams disagree on what it means: `%2F` and `%5C`
//! (encoded separators), `\`, NUL, `;` (path parameters that Java servers strip), `%25`
//! (double encoding), bad escapes, escapes that do not decode to UTF-8 (overlong forms), a
//! segment ending in `.` or a space (Windows servers drop them), and anything that is not
//! origin-form.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotOriginForm,
    BadEscape,
    EncodedSeparator,
    DoubleEncoding,
    ForbiddenChar,
    TrailingDotOrSpace,
    InvalidUtf8,
}

impl PathError {
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "path must start with '/'",
            PathError::BadEscape => "invalid percent-escape in path",
            PathError::EncodedSeparator => "encoded '/' or '\\' in path",
            PathError::DoubleEncoding => "'%25' (double encoding) in path",
            PathError::ForbiddenChar => "'\\', ';' or a control character in path",
            PathError::TrailingDotOrSpace => "path segment ends in '.' or space",
            PathError::InvalidUtf8 => "escaped bytes in path are not valid UTF-8",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises an origin-form path (no query). Returns the input borrowed when it is already
/// normal, which is the common case.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    // Fast scan: anything that needs work or a check beyond the per-segment one?
    let mut needs_work = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' | b';' | 0..=0x20 | 0x7f.. => return Err(PathError::ForbiddenChar),
            b'%' => needs_work = true,
            b'/' if bytes.get(i + 1) == Some(&b'/') => needs_work = true,
            b'.' if bytes[i - 1] == b'/' => needs_work = true,
            _ => {}
        }
    }
    if !needs_work {
        check_segments(path)?;
        return Ok(Cow::Borrowed(path));
    }

    // 1. Decode unreserved escapes; keep the others (upper-cased); refuse the dangerous ones.
    let mut decoded = String::with_capacity(path.len());
    let mut pending_utf8: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            decoded.push(b as char);
            i += 1;
            continue;
        }
        let v = match (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (Some(h), Some(l)) => h << 4 | l,
            _ => return Err(PathError::BadEscape),
        };
        match v {
            b'/' | b'\\' => return Err(PathError::EncodedSeparator),
            b'%' => return Err(PathError::DoubleEncoding),
            0..=0x1f | 0x7f | b';' => return Err(PathError::ForbiddenChar),
            _ => {}
        }
        if is_unreserved(v) {
            check_utf8(&mut pending_utf8)?;
            decoded.push(v as char);
        } else {
            pending_utf8.push(v);
            decoded.push('%');
            decoded.push(char::from(b"0123456789ABCDEF"[(v >> 4) as usize]));
            decoded.push(char::from(b"0123456789ABCDEF"[(v & 15) as usize]));
        }
        i += 3;
        if bytes.get(i) != Some(&b'%') {
            check_utf8(&mut pending_utf8)?;
        }
    }

    // 2. Merge slashes and remove dot segments.
    let trailing_slash = decoded.ends_with('/');
    let mut out: Vec<&str> = Vec::new();
    let mut last_was_dot = false;
    for seg in decoded.split('/').skip(1) {
        last_was_dot = false;
        match seg {
            "" => {}
            "." => last_was_dot = true,
            ".." => {
                out.pop();
                last_was_dot = true;
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if result.is_empty() || trailing_slash || last_was_dot {
        result.push('/');
    }
    check_segments(&result)?;
    Ok(Cow::Owned(result))
}

/// Escaped bytes that are not ASCII must form valid UTF-8 (this refuses overlong forms such
/// as `%C0%AE`, which lenient decoders turn into `.`).
fn check_utf8(pending: &mut Vec<u8>) -> Result<(), PathError> {
    let ok = pending.iter().all(u8::is_ascii) || std::str::from_utf8(pending).is_ok();
    pending.clear();
    if ok {
        Ok(())
    } else {
        Err(PathError::InvalidUtf8)
    }
}

fn check_segments(path: &str) -> Result<(), PathError> {
    // Dot segments are gone by now; any other segment may not end in '.' or a space.
    for seg in path.split('/') {
        if seg.ends_with('.') || seg.ends_with("%20") {
            return Err(PathError::TrailingDotOrSpace);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(|c| c.into_owned())
    }

    #[test]
    fn already_normal_paths_are_borrowed() {
        assert!(matches!(
            normalize("/weatherforecast"),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(normalize("/a/b.json"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn grpc_method_paths_stay_as_they_are() {
        for p in [
            "/echo.Echo/Unary",
            "/grpc.health.v1.Health/Check",
            "/my_pkg.v2.Orders_Service/ListOrders",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(
                matches!(normalize(p), Ok(Cow::Borrowed(q)) if q == p),
                "{p}"
            );
        }
    }

    #[test]
    fn dot_segments_and_slashes_collapse() {
        let cases = [
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/../../admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/%61dmin", "/admin"),
            ("/a/%7euser", "/a/~user"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/api/", "/api/"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let cases = [
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5Cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::ForbiddenChar),
            ("/a;jsessionid=1", PathError::ForbiddenChar),
            ("/a%3Bb", PathError::ForbiddenChar),
            ("/a%00", PathError::ForbiddenChar),
            ("/a%252e%252e/", PathError::DoubleEncoding),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/admin.", PathError::TrailingDotOrSpace),
            ("/admin%2e", PathError::TrailingDotOrSpace),
            ("/admin%20", PathError::TrailingDotOrSpace),
            ("/admin...", PathError::TrailingDotOrSpace),
            ("/%c0%ae%c0%ae/admin", PathError::InvalidUtf8),
            ("/%ff", PathError::InvalidUtf8),
            ("admin", PathError::NotOriginForm),
            ("*", PathError::NotOriginForm),
        ];
        for (input, want) in cases {
            assert_eq!(n(input), Err(want), "{input}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in [
            "/public/%2e%2e/admin",
            "//a/./b/../c/",
            "/caf%c3%a9/x",
            "/%41%42",
        ] {
            let once = n(p).unwrap();
            assert_eq!(n(&once).unwrap(), once, "{p}");
        }
    }
}
