//! Starting and stopping the issuer: a closed port after shutdown, and the
//! configurations `start` refuses.

use super::{client, loopback};
use crate::demo::issuer;
use crate::token::{self, TokenError};

#[tokio::test]
async fn shutdown_closes_the_port() {
    let h = issuer::start(loopback(), issuer::demo_config())
        .await
        .unwrap();
    let base = h.base_url();
    let m2m = client(&h, issuer::DEMO_M2M_CLIENT).clone();
    let secret = m2m.client_secret.clone().unwrap();
    token::client_credentials(&base, &m2m.client_id, &secret, None)
        .await
        .unwrap();
    h.shutdown().await;
    let e = token::client_credentials(&base, &m2m.client_id, &secret, None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn bad_configs_are_refused() {
    let mut cfg = issuer::demo_config();
    cfg.clients[0].allowed_scopes.push("nope/x".into());
    let e = issuer::start(loopback(), cfg).await.unwrap_err();
    assert!(format!("{e:#}").contains("nope/x"), "{e:#}");
    let mut cfg = issuer::demo_config();
    cfg.clients[1].client_id = cfg.clients[0].client_id.clone();
    assert!(issuer::start(loopback(), cfg).await.is_err());
    let mut cfg = issuer::demo_config();
    cfg.clients[0].client_secret = None;
    assert!(issuer::start(loopback(), cfg).await.is_err());
    // The region goes into the iss host name.
    let mut cfg = issuer::demo_config();
    cfg.region = "Local 1".into();
    let e = issuer::start(loopback(), cfg).await.unwrap_err();
    assert!(format!("{e:#}").contains("region"), "{e:#}");
}
