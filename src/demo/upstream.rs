//! The sample upstream: the ASP.NET Core "weatherforecast" template, plus an
//! echo of the identity headers the sidecar injected.
//!
//! | request | answer (200, JSON) |
//! | --- | --- |
//! | `GET /weatherforecast` | `{"forecasts":[5 × {"date":"YYYY-MM-DD","temperatureC":..,"temperatureF":..,"summary":..}],"identity":{..}}` |
//! | `GET /me` | `{"identity":{..}}` |
//! | `GET /health` | `{"status":"ok"}` |
//! | any method, `/echo` or `/echo/...` | `{"method","path","query","headers":{..},"identity":{..}}` (what the proxy forwarded) |
//! | anything else | 404 `{"error":"not_found","path":..}`; a known path with another method: 405 + `Allow` |
//!
//! `identity` maps every request header whose name starts with `x-auth-`
//! (lowercased name) to its value; repeated headers are joined with `", "`.
//! Forecast dates are the next five days (UTC); `temperatureF` is
//! `32 + (int)(temperatureC / 0.5556)` as in the template.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use rand::Rng as _;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::serve::{self, Resp};

/// The summaries of the ASP.NET Core template.
pub const SUMMARIES: [&str; 10] = [
    "Freezing",
    "Bracing",
    "Chilly",
    "Cool",
    "Mild",
    "Warm",
    "Balmy",
    "Hot",
    "Sweltering",
    "Scorching",
];

/// A running upstream. Dropping it stops the server too.
#[derive(Debug)]
pub struct UpstreamHandle {
    addr: SocketAddr,
    server: serve::Server,
}

impl UpstreamHandle {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for `[upstream] url`.
    pub fn url(&self) -> String {
        format!("http://{}", serve::url_authority(self.addr))
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }
}

/// Binds `addr` (port 0 allowed) and serves until shutdown or drop.
pub async fn start(addr: SocketAddr) -> anyhow::Result<UpstreamHandle> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the sample upstream to {addr}"))?;
    let addr = listener.local_addr()?;
    let server = serve::spawn(listener, |req, _peer| async move { handle(&req) });
    Ok(UpstreamHandle { addr, server })
}

fn handle(req: &Request<Incoming>) -> Resp {
    let path = req.uri().path();
    if path == "/echo" || path.starts_with("/echo/") {
        return serve::json(StatusCode::OK, &echo(req));
    }
    if path == "/" && (req.method() == Method::GET || req.method() == Method::HEAD) {
        return whoami_page(req.headers());
    }
    let body = match path {
        "/weatherforecast" => json!({
            "forecasts": forecasts(today_days()),
            "identity": identity(req.headers()),
        }),
        "/me" => json!({ "identity": identity(req.headers()) }),
        "/health" => json!({ "status": "ok" }),
        _ => {
            return serve::json(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "path": path}),
            )
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = serve::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method_not_allowed"}),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    serve::json(StatusCode::OK, &body)
}

fn header_map(headers: &HeaderMap, keep: impl Fn(&str) -> bool) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let n = name.as_str(); // always lowercase in `http`
        if !keep(n) {
            continue;
        }
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(n.to_owned(), joined.into());
    }
    Value::Object(out)
}

/// `/`: an HTML page saying who is signed in, from the identity headers the sidecar set.
fn whoami_page(headers: &HeaderMap) -> Resp {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let who = headers
        .get("x-auth-username")
        .or_else(|| headers.get("x-auth-sub"))
        .map(|v| esc(&String::from_utf8_lossy(v.as_bytes())));
    let rows: String = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-auth-") && n.as_str() != "x-auth-claims")
        .map(|(n, v)| {
            format!(
                "<tr><th>{}</th><td id=\"{}\">{}</td></tr>",
                esc(n.as_str()),
                esc(n.as_str()),
                esc(&String::from_utf8_lossy(v.as_bytes()))
            )
        })
        .collect();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Demo app</title></head><body>\
         <h1 id=\"who\">{}</h1><table>{rows}</table>\
         <form method=\"post\" action=\"/oauth2/sign_out\"><button id=\"signout\" type=\"submit\">Sign out</button></form>\
         </body></html>",
        match &who {
            Some(w) => format!("Signed in as {w}"),
            None => "Not signed in".to_string(),
        }
    );
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Every `x-auth-*` request header, lowercased name → value.
pub fn identity(headers: &HeaderMap) -> Value {
    header_map(headers, |n| n.starts_with("x-auth-"))
}

fn echo(req: &Request<Incoming>) -> Value {
    json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": header_map(req.headers(), |_| true),
        "identity": identity(req.headers()),
    })
}

fn today_days() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 86_400).unwrap_or(0)
}

/// Five forecasts for the days after `today` (days since 1970-01-01, UTC).
pub fn forecasts(today: i64) -> Vec<Value> {
    let mut rng = rand::rng();
    (1..=5)
        .map(|i| {
            let c: i32 = rng.random_range(-20..55);
            let summary = SUMMARIES[rng.random_range(0..SUMMARIES.len())];
            json!({
                "date": iso_date(today + i),
                "temperatureC": c,
                "temperatureF": fahrenheit(c),
                "summary": summary,
            })
        })
        .collect()
}

/// `32 + (int)(c / 0.5556)`, C#'s truncating cast.
pub fn fahrenheit(c: i32) -> i32 {
    32 + (f64::from(c) / 0.5556) as i32
}

/// `YYYY-MM-DD` for days since 1970-01-01 (H. Hinnant's civil_from_days).
pub fn iso_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(59), "1970-03-01");
        assert_eq!(iso_date(11_016), "2000-02-29");
        assert_eq!(iso_date(11_017), "2000-03-01");
        assert_eq!(iso_date(19_782), "2024-02-29");
        assert_eq!(iso_date(20_454), "2026-01-01");
        assert_eq!(iso_date(-1), "1969-12-31");
    }

    #[test]
    fn fahrenheit_matches_the_template() {
        assert_eq!(fahrenheit(0), 32);
        assert_eq!(fahrenheit(100), 211); // 100/0.5556 = 179.98 → 179
        assert_eq!(fahrenheit(-20), -3); // -35.99 → -35 (truncation toward zero)
        assert_eq!(fahrenheit(37), 98);
    }

    #[test]
    fn five_forecasts_on_consecutive_days() {
        let f = forecasts(20_454);
        assert_eq!(f.len(), 5);
        assert_eq!(f[0]["date"], "2026-01-02");
        assert_eq!(f[4]["date"], "2026-01-06");
        for x in &f {
            let c = x["temperatureC"].as_i64().unwrap();
            assert!((-20..55).contains(&c));
            assert_eq!(
                x["temperatureF"].as_i64().unwrap(),
                i64::from(fahrenheit(i32::try_from(c).unwrap()))
            );
            assert!(SUMMARIES.contains(&x["summary"].as_str().unwrap()));
        }
    }
}
