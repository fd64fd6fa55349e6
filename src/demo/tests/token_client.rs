//! How `crate::token` names what goes wrong below the protocol: no listener,
//! no answer, a bad URL, an answer of the wrong shape.

use std::time::Duration;

use super::loopback;
use crate::demo::upstream;
use crate::token::{self, TokenClient, TokenError};

#[tokio::test]
async fn transport_failures_are_named() {
    // A port nobody listens on: bind, note it, drop the listener.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let domain = format!("http://127.0.0.1:{port}");
    let e = token::client_credentials(&domain, "id", "secret", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("cannot reach {domain}/oauth2/token: ")),
        "{shown}"
    );
    assert!(!shown.contains('\n'));
    assert!(shown.contains("Connection refused"), "{shown}");
    let e = token::password(&format!("{domain}/"), "id", "u", "p", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e:?}");

    // A listener that never answers (the kernel completes the handshake; nobody
    // accepts): the client's timeout fires.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let client = TokenClient::new(Duration::from_millis(300)).unwrap();
    let e = client
        .client_credentials(&url, "id", "secret", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Timeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("no answer from {url}/oauth2/token within 300ms")
    );
    drop(silent);

    assert!(matches!(
        token::client_credentials("ftp://example.com", "a", "b", None).await,
        Err(TokenError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn unexpected_answers_are_reported() {
    let up = upstream::start(loopback()).await.unwrap();
    // 404 JSON without "__type": not a Cognito error.
    let e = token::password(&format!("{}/nothing-here", up.url()), "id", "u", "p", None)
        .await
        .unwrap_err();
    match &e {
        TokenError::Http { status, body, .. } => {
            assert_eq!(*status, 404);
            assert!(body.contains("not_found"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    // 200 JSON of the wrong shape.
    let e = token::password(&format!("{}/echo", up.url()), "id", "u", "p", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::UnexpectedBody { .. }), "{e:?}");
    assert!(e
        .to_string()
        .contains("expected a JSON object with AuthenticationResult"));
    let e = token::client_credentials(&format!("{}/echo", up.url()), "id", "s", None)
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::UnexpectedBody { .. }), "{e:?}");
    assert!(e.to_string().contains("access_token"));
    up.shutdown().await;
}
