//! The sample upstream: forecasts, the identity headers it echoes, its 404s
//! and 405s.

use serde_json::{json, Value};

use super::{get_json, loopback, raw_client};
use crate::demo::upstream;

#[tokio::test]
async fn upstream_serves_forecasts_and_echoes_identity_headers() {
    let up = upstream::start(loopback()).await.unwrap();
    let c = raw_client();
    let r = c
        .get(format!("{}/weatherforecast", up.url()))
        .header("X-Auth-Sub", "abc")
        .header("X-Auth-Groups", "readers,writers")
        .header("Authorization", "Bearer t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["forecasts"].as_array().unwrap().len(), 5);
    assert_eq!(
        v["identity"],
        json!({"x-auth-sub": "abc", "x-auth-groups": "readers,writers"})
    );
    let f = &v["forecasts"][0];
    let date = f["date"].as_str().unwrap();
    assert_eq!(date.len(), 10);
    assert_eq!(&date[4..5], "-");
    assert!(f["temperatureC"].is_i64() && f["temperatureF"].is_i64());

    let me = get_json(format!("{}/me", up.url())).await;
    assert_eq!(me, json!({"identity": {}}));
    let health = get_json(format!("{}/health", up.url())).await;
    assert_eq!(health, json!({"status": "ok"}));

    let r = c.get(format!("{}/nope", up.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "not_found", "path": "/nope"})
    );
    let r = c.post(format!("{}/me", up.url())).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    let echo: Value = c
        .delete(format!("{}/echo/a/b?x=1&y=2", up.url()))
        .header("X-Auth-Sub", "s")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(echo["path"], "/echo/a/b");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["identity"], json!({"x-auth-sub": "s"}));
    assert_eq!(echo["headers"]["x-auth-sub"], "s");
    up.shutdown().await;
}
