//! A real browser: headless Chromium (Debian's `chromium`, driven through `chromium-driver`
//! over WebDriver, both installed by `./test.sh`) signs in to the demo through its managed
//! login, sees its identity, reloads without signing in again, signs out and is sent to sign
//! in again.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cognito_sidecar::demo::issuer;
use cognito_sidecar::demo::run::{self, DemoAddrs};
use fantoccini::{ClientBuilder, Locator};

use crate::support::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Waits (bounded) until `cond` holds for the browser's current URL.
async fn wait_for_url(c: &fantoccini::Client, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap().to_string();
        if cond(&url) {
            return url;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn chromium_signs_in_reloads_and_signs_out() {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} / {CHROMEDRIVER} not found: ./test.sh installs Debian's chromium and chromium-driver"
    );
    let addrs = DemoAddrs {
        proxy: addr(),
        admin: addr(),
        issuer: addr(),
        upstream: addr(),
        issuer_form: cognito_sidecar::config::IssuerForm::Original,
    };
    let demo = run::start(&addrs).await.unwrap();
    let port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let wd: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually(Duration::from_secs(20), || async move {
        tokio::net::TcpStream::connect(wd).await.is_ok()
    })
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://{wd}"))
        .await
        .expect("a Chromium session");
    let app = format!("http://{}", addrs.proxy);
    let issuer_origin = format!("http://{}", addrs.issuer);

    // The app's page sends the browser to the managed login.
    c.goto(&format!("{app}/")).await.unwrap();
    wait_for_url(&c, "to the sign-in form", |u| u.starts_with(&issuer_origin)).await;
    assert_eq!(c.title().await.unwrap(), "Sign in");
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys(issuer::DEMO_USERNAME)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(issuer::DEMO_PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Id("signin"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Back on the page first asked for, which shows who the app sees.
    wait_for_url(&c, "back to the app", |u| u == format!("{app}/")).await;
    let who = c
        .find(Locator::Id("who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, format!("Signed in as {}", issuer::DEMO_USERNAME));
    // The session is the browser's, HttpOnly: no script can read it.
    let script_cookies = c.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(
        script_cookies,
        serde_json::json!(""),
        "session cookies are HttpOnly"
    );

    // A reload: still signed in, no second sign-in.
    c.refresh().await.unwrap();
    assert_eq!(c.current_url().await.unwrap().as_str(), format!("{app}/"));
    let who = c
        .find(Locator::Id("who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, format!("Signed in as {}", issuer::DEMO_USERNAME));

    // Sign out: through the managed logout, back to the app, which asks to sign in again.
    c.find(Locator::Id("signout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(&c, "sent to sign in again", |u| {
        u.starts_with(&format!("{issuer_origin}/oauth2/authorize"))
    })
    .await;
    assert_eq!(c.title().await.unwrap(), "Sign in");
    c.close().await.unwrap();
    drop(demo);
}
