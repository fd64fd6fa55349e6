//! The two Cognito issuer forms: the `iss` tokens and discovery carry, with
//! every endpoint and the keys still on loopback.

use serde_json::json;

use super::{client, get_json, jwks, loopback, sign_in, verify};
use crate::config::IssuerForm;
use crate::demo::issuer;
use crate::token::{self, TokenClient, DEFAULT_TIMEOUT, GET_USER_TARGET};

#[tokio::test]
async fn both_issuer_forms_carry_the_cognito_iss_and_serve_on_loopback() {
    assert_eq!(issuer::demo_config().issuer_form, IssuerForm::Original);
    for (form, host) in [
        (IssuerForm::Original, "cognito-idp"),
        (IssuerForm::Updated, "issuer-cognito-idp"),
    ] {
        let h = issuer::start(loopback(), issuer::demo_config_with(form))
            .await
            .unwrap();
        let iss = format!("https://{host}.local-1.amazonaws.com/local-1_DemoPool");
        assert_eq!(h.issuer_url(), iss, "{form}");
        let domain = h.domain();
        assert!(domain.starts_with("http://127.0.0.1:"), "{domain}");
        assert_eq!(h.base_url(), domain);
        assert_eq!(h.idp_endpoint(), format!("{domain}/"));
        assert_eq!(h.idp_url(), h.idp_endpoint());
        assert_eq!(
            h.jwks_url(),
            format!("{domain}/local-1_DemoPool/.well-known/jwks.json")
        );
        let d = get_json(h.discovery_url()).await;
        assert_eq!(d["issuer"], iss.as_str(), "{form}");
        assert_eq!(d["jwks_uri"], h.jwks_url().as_str());
        assert_eq!(
            d["token_endpoint"],
            format!("{domain}/oauth2/token").as_str()
        );
        assert_eq!(
            d["revocation_endpoint"],
            format!("{domain}/oauth2/revoke").as_str()
        );

        // Tokens of both flows carry that iss and verify with the served keys.
        let set = jwks(&h).await;
        let app = client(&h, issuer::DEMO_PASSWORD_CLIENT);
        let r = sign_in(&h, app).await;
        verify(&set, &iss, &r.access_token, None);
        verify(&set, &iss, &r.id_token, Some(&app.client_id));
        let m2m = client(&h, issuer::DEMO_M2M_CLIENT);
        let secret = m2m.client_secret.as_deref().unwrap();
        let t = token::client_credentials(&domain, &m2m.client_id, secret, None)
            .await
            .unwrap();
        let (claims, _) = verify(&set, &iss, &t.access_token, None);
        assert_eq!(claims["iss"], iss.as_str());
        // And the issuer takes its own tokens back.
        let input = json!({ "AccessToken": r.access_token });
        let user = TokenClient::new(DEFAULT_TIMEOUT)
            .unwrap()
            .idp_request(&h.idp_endpoint(), GET_USER_TARGET, &input)
            .await
            .unwrap();
        assert_eq!(user["Username"], issuer::DEMO_USERNAME);
    }
}
