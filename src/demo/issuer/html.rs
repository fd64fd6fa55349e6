//! The managed login's pages: the sign-in form and the error page, plain
//! HTML with no external resources, every reflected value escaped, never
//! cached, never framed.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::demo::serve::Resp;

/// `s` escaped for HTML text and double- or single-quoted attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page with this status.
pub(super) fn page(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn document(title: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <style>body{{font-family:sans-serif;max-width:24em;margin:3em auto}}\
         label,input,button{{display:block;margin:.4em 0}}.error{{color:#b00}}</style>\n\
         </head>\n<body>\n{main}</body>\n</html>\n"
    )
}

/// The error page: `<title>Error</title>`, the message in `<p id="error">`.
pub(super) fn error_page(status: StatusCode, message: &str) -> Resp {
    let main = format!(
        "<h1>Something went wrong</h1>\n<p id=\"error\" class=\"error\">{}</p>\n",
        escape(message)
    );
    page(status, document("Error", &main))
}

/// The sign-in form (`<title>Sign in</title>`): `<form id="signin-form"
/// method="post" action="/login">` with `username` and `password` inputs
/// (same ids), a submit button `id="signin"`, `hidden` carrying the request
/// (name, value) and, after a failed attempt, `<p id="error">`.
pub(super) fn sign_in_page(
    status: StatusCode,
    client_name: &str,
    hidden: &[(&str, &str)],
    error: Option<&str>,
    username: &str,
) -> Resp {
    let mut main = format!("<h1>Sign in</h1>\n<p>to {}</p>\n", escape(client_name));
    if let Some(e) = error {
        main.push_str(&format!(
            "<p id=\"error\" class=\"error\" role=\"alert\">{}</p>\n",
            escape(e)
        ));
    }
    main.push_str("<form id=\"signin-form\" method=\"post\" action=\"/login\">\n");
    for (name, value) in hidden {
        main.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        ));
    }
    main.push_str(&format!(
        "<label for=\"username\">Username</label>\n\
         <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" required value=\"{}\">\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
         <button id=\"signin\" type=\"submit\">Sign in</button>\n</form>\n",
        escape(username)
    ));
    page(status, document("Sign in", &main))
}
