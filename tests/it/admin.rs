//! The admin listener: health, readiness, metrics.

use crate::support::*;

#[tokio::test]
async fn healthz_readyz_and_metrics_count_requests() {
    let jwks = Jwks::start_with(JwksMode::Status(500)).await;
    let upstream = Upstream::start().await;
    let text = config_text(
        &upstream.url(),
        &jwks.url(),
        "[[routes]]\npath = \"/open\"\nauth = \"public\"\n",
    );
    let sidecar = cognito_sidecar::Sidecar::start(config(&text))
        .await
        .unwrap();
    let admin = sidecar.admin_addr().unwrap();
    assert_eq!(get(admin, "/healthz").await.status, 200);
    let r = get(admin, "/readyz").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("test"), "{}", r.body);
    jwks.set_keys(&[&KEY_A]);
    eventually(std::time::Duration::from_secs(10), || async move {
        get(admin, "/readyz").await.status == 200
    })
    .await;

    for _ in 0..3 {
        assert_eq!(get(sidecar.local_addr(), "/open").await.status, 200);
    }
    assert_eq!(get(sidecar.local_addr(), "/closed").await.status, 401);
    let m = get(admin, "/metrics").await;
    assert_eq!(m.status, 200);
    let body = m.body;
    assert!(
        body.contains("sidecar_requests_total{outcome=\"forwarded\",route=\"/open\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("sidecar_requests_total{outcome=\"missing\",route=\"default\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("sidecar_request_duration_seconds_count{route=\"/open\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("sidecar_jwks_fetches_total{issuer=\"test\",result=\"ok\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("sidecar_jwks_keys{issuer=\"test\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("sidecar_jwks_age_seconds{issuer=\"test\"}"),
        "{body}"
    );
    assert!(body.contains("sidecar_connections_active"), "{body}");
    assert_eq!(get(admin, "/nope").await.status, 404);
}
