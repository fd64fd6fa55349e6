//! Loading and validation as a whole: defaults, every problem reported with its key, the
//! environment overlay. Section details are tested next to their validators.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::problems::key_path;
use super::*;

const MIN: &str = r#"
[upstream]
url = "http://127.0.0.1:5000"
[[issuers]]
user_pool_id = "ap-south-1_p7GD1CkXO"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str("test.toml", text, &[])
}

fn problems(text: &str) -> Vec<Problem> {
    load(text).expect_err("config should be refused").problems
}

#[test]
fn the_soft_upstream_limit_needs_a_wait() {
    let c = load(MIN).unwrap();
    assert_eq!(c.upstream.soft_max_connections, 32);
    assert_eq!(
        c.upstream.soft_max_wait,
        std::time::Duration::from_millis(20)
    );
    let with = |extra: &str| MIN.replace("[[issuers]]", &format!("{extra}\n[[issuers]]"));
    let p = problems(&with("soft_max_wait = \"0s\""));
    assert!(
        p.iter()
            .any(|p| p.key == "upstream.soft_max_wait" && p.reason.contains("greater than zero")),
        "{p:?}"
    );
    assert!(problems(&with("soft_max_wait = \"soon\""))
        .iter()
        .any(|p| p.key == "upstream.soft_max_wait"));
    // Off, or replaced by the hard limit: the wait does not matter.
    assert!(load(&with("soft_max_connections = 0\nsoft_max_wait = \"0s\"")).is_ok());
    assert!(load(&with("max_connections = 8\nsoft_max_wait = \"0s\"")).is_ok());
}

#[test]
fn the_upstream_protocol_is_named_and_checked() {
    assert_eq!(
        load(MIN).unwrap().upstream.protocol,
        UpstreamProtocol::Http1
    );
    let with = |extra: &str| MIN.replace("[[issuers]]", &format!("{extra}\n[[issuers]]"));
    for (text, want) in [
        ("http1", UpstreamProtocol::Http1),
        ("h2c", UpstreamProtocol::H2c),
        ("auto", UpstreamProtocol::Auto),
    ] {
        let c = load(&with(&format!("protocol = \"{text}\""))).unwrap();
        assert_eq!(c.upstream.protocol, want);
    }
    for bad in ["h2", "HTTP1", "", "grpc"] {
        let p = problems(&with(&format!("protocol = \"{bad}\"")));
        assert!(
            p.iter().any(|p| p.key == "upstream.protocol"
                && p.reason.contains("http1")
                && p.reason.contains("h2c")),
            "{bad}: {p:?}"
        );
    }
    // h2c is cleartext; an https upstream negotiates HTTP/2 with "auto".
    let https = MIN.replace("http://127.0.0.1:5000", "https://127.0.0.1:5000");
    let p = problems(&https.replace("[[issuers]]", "protocol = \"h2c\"\n[[issuers]]"));
    assert!(
        p.iter()
            .any(|p| p.key == "upstream.protocol" && p.reason.contains("auto")),
        "{p:?}"
    );
    assert!(load(&https.replace("[[issuers]]", "protocol = \"auto\"\n[[issuers]]")).is_ok());
}

#[test]
fn minimal_config_derives_cognito_issuer_and_jwks() {
    let c = load(MIN).unwrap();
    assert_eq!(
        c.issuers[0].issuer,
        "https://cognito-idp.ap-south-1.amazonaws.com/ap-south-1_p7GD1CkXO"
    );
    assert_eq!(
        c.issuers[0].jwks_url,
        "https://cognito-idp.ap-south-1.amazonaws.com/ap-south-1_p7GD1CkXO/.well-known/jwks.json"
    );
    assert_eq!(c.issuers[0].algorithms, vec![Algorithm::RS256]);
    assert_eq!(c.default.auth, AuthMode::Required);
    assert_eq!(c.forward.headers.len(), 5);
    assert_eq!(c.listener.header_read_timeout, Duration::from_secs(10));
}

#[test]
fn unknown_key_is_named_with_its_path() {
    let p = problems(&format!(
        "{MIN}\n[[routes]]\npath = \"/a\"\nscope = [\"x\"]\n"
    ));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "routes[0].scope");
    assert!(p[0].reason.starts_with("unknown key"), "{:?}", p[0]);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = r#"
[listener]
address = "nowhere"
header_read_timeout = "ten seconds"
[upstream]
url = "ftp://x"
[[issuers]]
name = "a"
[forward.headers]
"X-Auth-Sub" = "sub"
"x_auth_sub" = "username"
"#;
    let p = problems(text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "listener.address",
        "listener.header_read_timeout",
        "upstream.url",
        "issuers[0].user_pool_id",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    assert!(
        p.iter().any(|p| p.reason.contains("duplicate header name")),
        "{p:?}"
    );
    let shown = load(text).unwrap_err().to_string();
    assert!(shown.starts_with("test.toml: "), "{shown}");
}

#[test]
fn hs256_and_none_are_config_errors() {
    let p = problems(&format!("{MIN}algorithms = [\"HS256\", \"none\"]\n"));
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key, "issuers[0].algorithms[0]");
}

#[test]
fn env_overrides_index_into_arrays_and_name_the_variable() {
    let env = vec![
        (
            "SIDECAR_UPSTREAM__URL".to_string(),
            "http://127.0.0.1:7000".to_string(),
        ),
        (
            "SIDECAR_ISSUERS__0__USER_POOL_ID".to_string(),
            "eu-west-1_Abc".to_string(),
        ),
        (
            "SIDECAR_ISSUERS__0__CLIENT_IDS".to_string(),
            "[\"123\"]".to_string(),
        ),
        ("SIDECAR_CONFIG".to_string(), "ignored.toml".to_string()),
        // What the demo's walkthrough exports: names no key (no `__`), so it is left alone.
        (
            "SIDECAR_URL".to_string(),
            "http://127.0.0.1:8080".to_string(),
        ),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let c = Config::from_toml_str("t.toml", MIN, &env).unwrap();
    assert_eq!(c.upstream.url.unwrap(), "http://127.0.0.1:7000");
    assert_eq!(
        c.issuers[0].issuer,
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
    );
    assert_eq!(c.issuers[0].client_ids, vec!["123".to_string()]);

    let env = vec![("SIDECAR_LISTENER__BOGUS".to_string(), "1".to_string())];
    let e = Config::from_toml_str("t.toml", MIN, &env).unwrap_err();
    assert_eq!(
        e.problems[0].key,
        "listener.bogus (from env SIDECAR_LISTENER__BOGUS)"
    );
}

#[test]
fn env_can_create_an_issuer_without_a_file_entry() {
    let env = vec![(
        "SIDECAR_ISSUERS__0__USER_POOL_ID".to_string(),
        "us-east-1_X1".to_string(),
    )];
    let c =
        Config::from_toml_str("t.toml", "[upstream]\nurl=\"http://127.0.0.1:1\"\n", &env).unwrap();
    assert_eq!(c.issuers.len(), 1);
}

#[test]
fn required_without_issuers_is_an_error() {
    let p = problems("[upstream]\nurl = \"http://127.0.0.1:1\"\n");
    assert_eq!(p[0].key, "default.auth");
    assert!(
        load("[upstream]\nurl = \"http://127.0.0.1:1\"\n[default]\nauth = \"public\"\n").is_ok()
    );
}

#[test]
fn key_paths_render_indices() {
    let p: Vec<String> = ["routes", "2", "scopes"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(key_path(&p), "routes[2].scopes");
}

#[test]
fn bad_toml_is_reported_with_the_source() {
    let e = load("[listener\n").unwrap_err();
    assert!(e.to_string().starts_with("test.toml"), "{e}");
}

#[test]
fn env_values_take_the_type_the_schema_gives_the_key() {
    let var = |k: &str, v: &str| (format!("SIDECAR_{k}"), v.to_string());
    let env = vec![
        var("LISTENER__MAX_CONNECTIONS", "5"),
        var("TOKEN__WEBSOCKET_PROTOCOL", "true"),
        var("FORWARD__STRIP_AUTHORIZATION", "false"),
        var("ISSUERS__0__NAME", "123"),
        var("ISSUERS__0__LEEWAY", "30s"),
        var("ISSUERS__0__CLIENT_IDS__0", "0123"),
        var("TOKEN__COOKIE", "1"),
        var("FORWARD__HEADERS__X-TENANT", "42"),
    ];
    let c = Config::from_toml_str("t.toml", MIN, &env).unwrap();
    assert_eq!(c.listener.max_connections, 5);
    assert!(c.token.websocket_protocol);
    assert!(!c.forward.strip_authorization);
    assert_eq!(c.issuers[0].name, "123");
    assert_eq!(c.issuers[0].leeway, Duration::from_secs(30));
    assert_eq!(c.issuers[0].client_ids, vec!["0123".to_string()]);
    assert_eq!(c.token.cookie.as_deref(), Some("1"));
    assert!(c
        .forward
        .headers
        .iter()
        .any(|(h, claim)| h == "x-tenant" && claim == "42"));

    // A number the schema wants is still checked, and the variable is named.
    let bad = [var("LISTENER__MAX_CONNECTIONS", "many")];
    let p = Config::from_toml_str("t.toml", MIN, &bad)
        .unwrap_err()
        .problems;
    let want = "listener.max_connections (from env SIDECAR_LISTENER__MAX_CONNECTIONS)";
    assert_eq!(p[0].key, want, "{p:?}");
}

#[test]
fn bad_enum_values_name_the_key_and_the_accepted_values_with_every_other_problem() {
    let text = format!(
        "{MIN}[default]\nauth = \"maybe\"\npreflight = \"skip\"\npath_case = \"upper\"\n\
         [log]\nformat = \"xml\"\n[listener]\ndrain_timeout = \"later\"\n"
    );
    let p = problems(&text);
    let reason = |k: &str| {
        p.iter()
            .find(|p| p.key == k)
            .unwrap_or_else(|| panic!("no {k} in {p:?}"))
            .reason
            .clone()
    };
    assert_eq!(
        reason("default.auth"),
        "unknown auth mode \"maybe\": expected \"required\", \"public\", \"deny\" or \"login\""
    );
    assert!(reason("default.preflight").contains("\"check\" or \"forward\""));
    assert!(reason("default.path_case").contains("\"insensitive\" or \"sensitive\""));
    assert!(reason("log.format").contains("\"text\" or \"json\""));
    assert!(reason("listener.drain_timeout").starts_with("invalid duration"));
    let p = problems(&format!("{MIN}token_use = [\"access\", \"refresh\"]\n"));
    assert_eq!(p[0].key, "issuers[0].token_use[1]");
    assert!(p[0].reason.contains("\"access\" or \"id\""), "{p:?}");
}

const ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";

fn alb(extra: &str) -> String {
    format!(
        "[upstream]\nurl = \"http://127.0.0.1:5000\"\n[[issuers]]\nkind = \"alb\"\nregion = \"eu-west-1\"\nsigner_arns = [\"{ARN}\"]\n{extra}\n"
    )
}

fn keys_of(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn alb_issuer_defaults() {
    let c = load(&alb("")).unwrap();
    assert!(c.issuers.is_empty());
    let a = &c.alb_issuers[0];
    assert_eq!(a.region, "eu-west-1");
    assert_eq!(a.signer_arns, vec![ARN.to_string()]);
    assert_eq!(
        a.keys_url,
        "https://public-keys.auth.elb.eu-west-1.amazonaws.com"
    );
    assert_eq!(a.keys_min_refetch, Duration::from_secs(10));
    assert_eq!(a.leeway, Duration::from_secs(60));
    assert!(c.token.alb_data);
    let gov = load(
        "[upstream]\nurl = \"http://127.0.0.1:5000\"\n[[issuers]]\nkind = \"alb\"\nregion = \"us-gov-west-1\"\nsigner_arns = [\"arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188\"]\n",
    )
    .unwrap();
    assert_eq!(
        gov.alb_issuers[0].keys_url,
        "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1"
    );
}

#[test]
fn alb_issuer_needs_region_and_signers() {
    let e = load("[upstream]\nurl = \"http://127.0.0.1:5000\"\n[[issuers]]\nkind = \"alb\"\n")
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("test.toml: issuers[0].region: an ALB issuer needs region"),
        "{text}"
    );
    assert!(
        text.contains("test.toml: issuers[0].signer_arns: an ALB issuer needs signer_arns"),
        "{text}"
    );
    let p = problems(&alb("").replace(&format!("[\"{ARN}\"]"), "[]"));
    assert_eq!(keys_of(&p), vec!["issuers[0].signer_arns"]);
}

#[test]
fn alb_signer_arns_are_alb_arns_of_the_region() {
    for (arn, why) in [
        ("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188", "not the issuer's region eu-west-1"),
        ("arn:aws:elasticloadbalancing:eu-west-1:12345678901:loadbalancer/app/web/50dc6c495c0c9188", "is not an ALB ARN"),
        ("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/web/50dc6c495c0c9188", "is not an ALB ARN"),
        ("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/50dc6c495c0c9188", "is not an ALB ARN"),
        ("arn:aws:ec2:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188", "is not an ALB ARN"),
        ("arn:aws-cn:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188", "not in partition aws-cn"),
        ("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c918", "is not an ALB ARN"),
        ("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188/x", "is not an ALB ARN"),
        ("*", "is not an ALB ARN"),
    ] {
        let e = load(&alb("").replace(ARN, arn)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("test.toml: issuers[0].signer_arns[0]: ") && text.contains(why),
            "{arn}: {text}"
        );
    }
}

#[test]
fn keys_of_one_issuer_kind_are_refused_on_the_other() {
    let p = problems(&alb("jwks_url = \"https://x.example.com/jwks.json\"\nrevocation = \"off\"\ntoken_use = [\"access\"]\nuser_pool_id = \"eu-west-1_AbC\""));
    assert_eq!(
        keys_of(&p),
        vec![
            "issuers[0].user_pool_id",
            "issuers[0].jwks_url",
            "issuers[0].token_use",
            "issuers[0].revocation",
        ]
    );
    assert!(p[0]
        .reason
        .contains("applies to kind = \"jwks\" issuers only"));
    let e = load(&format!(
        "{MIN}region = \"eu-west-1\"\nkeys_url = \"http://127.0.0.1:1\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("test.toml: issuers[0].region: applies to kind = \"alb\" issuers only"),
        "{e}"
    );
    assert!(
        e.contains("test.toml: issuers[0].keys_url: applies to kind = \"alb\""),
        "{e}"
    );
}

#[test]
fn token_header_and_an_alb_issuer_are_one_way_too_many() {
    let e = load(&alb("[token]\nheader = \"x-amzn-oidc-accesstoken\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test.toml: token.header: x-amzn-oidc-accesstoken cannot be a token source beside an ALB issuer (issuers[0].kind = \"alb\""),
        "{e}"
    );
}

#[test]
fn a_signer_names_one_issuer_and_an_alb_shares_no_key_with_jwks() {
    let two = format!(
        "{}[[issuers]]\nname = \"b\"\nkind = \"alb\"\nregion = \"eu-west-1\"\nsigner_arns = [\"{ARN}\"]\n",
        alb("name = \"a\"")
    );
    assert_eq!(keys_of(&problems(&two)), vec!["issuers[1].signer_arns[0]"]);
    // An ALB issuer's iss may be a JWKS issuer's too: tokens are told apart by signer.
    let both = format!(
        "{}issuer = \"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC\"\n[[issuers]]\nuser_pool_id = \"eu-west-1_AbC\"\n",
        alb("")
    );
    let c = load(&both).unwrap();
    assert_eq!(c.issuers[0].position, 1);
    assert_eq!(c.alb_issuers[0].position, 0);
    let p = problems(&alb("kind = \"nginx\"").replacen("kind = \"alb\"\n", "", 1));
    assert_eq!(keys_of(&p)[0], "issuers[0].kind");
}

#[test]
fn tracing_defaults_and_endpoints() {
    let c = load(MIN).unwrap();
    let t = &c.tracing;
    assert_eq!(t.otlp_endpoint, None);
    assert_eq!(t.otlp_protocol, OtlpProtocol::HttpProtobuf);
    assert!(t.trust_incoming && t.propagate);
    assert_eq!(t.sample_ratio, 1.0);
    assert_eq!(t.service_name, "cognito-sidecar");
    assert_eq!(t.max_queue_size, 2048);
    let with = |extra: &str| format!("{MIN}\n[tracing]\n{extra}\n");
    let c = load(&with("otlp_endpoint = \"http://collector:4318/\"")).unwrap();
    assert_eq!(
        c.tracing.otlp_endpoint.as_deref(),
        Some("http://collector:4318/v1/traces")
    );
    let c = load(&with(
        "otlp_endpoint = \"http://collector:4317\"\notlp_protocol = \"grpc\"",
    ))
    .unwrap();
    assert_eq!(
        c.tracing.otlp_endpoint.as_deref(),
        Some("http://collector:4317")
    );
    assert_eq!(c.tracing.otlp_protocol, OtlpProtocol::Grpc);
}

#[test]
fn tracing_reads_the_otel_variables_and_the_file_wins() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let e = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        ("OTEL_SERVICE_NAME", "orders-edge"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%20ecret"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ]);
    let c = Config::from_toml_str("test.toml", MIN, &e).unwrap();
    assert_eq!(
        c.tracing.otlp_endpoint.as_deref(),
        Some("http://generic:4318/v1/traces")
    );
    assert_eq!(c.tracing.service_name, "orders-edge");
    assert_eq!(
        c.tracing.headers,
        vec![("api-key".to_string(), "s ecret".to_string())]
    );
    assert_eq!(c.tracing.timeout, Duration::from_millis(2500));
    // The signal-specific variable is used as it is, and wins over the generic one.
    let mut e2 = e.clone();
    e2.push((
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(),
        "http://traces:4318/custom".into(),
    ));
    let c = Config::from_toml_str("test.toml", MIN, &e2).unwrap();
    assert_eq!(
        c.tracing.otlp_endpoint.as_deref(),
        Some("http://traces:4318/custom")
    );
    // The file's keys win over the variables.
    let text = format!(
        "{MIN}\n[tracing]\notlp_endpoint = \"http://file:4317\"\notlp_protocol = \"grpc\"\n"
    );
    let mut e3 = e2.clone();
    e3.push(("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()));
    let c = Config::from_toml_str("test.toml", &text, &e3).unwrap();
    assert_eq!(c.tracing.otlp_endpoint.as_deref(), Some("http://file:4317"));
    assert_eq!(c.tracing.otlp_protocol, OtlpProtocol::Grpc);
    // The printed config never shows the headers (they may hold credentials).
    let printed = effective(&c);
    assert!(!printed.contains("s ecret"), "{printed}");
    assert!(
        printed.contains("[tracing]\notlp_endpoint = \"http://file:4317\""),
        "{printed}"
    );
}

#[test]
fn bad_tracing_values_name_their_key() {
    let with = |extra: &str| format!("{MIN}\n[tracing]\n{extra}\n");
    let keyed = |text: &str, env: &[(&str, &str)], key: &str, needle: &str| {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = Config::from_toml_str("test.toml", text, &env)
            .expect_err("refused")
            .problems;
        assert!(
            p.iter().any(|p| p.key == key && p.reason.contains(needle)),
            "{key}: {p:?}"
        );
    };
    keyed(
        &with("sample_ratio = 1.5"),
        &[],
        "tracing.sample_ratio",
        "ratio",
    );
    keyed(
        &with("sample_ratio = -0.1"),
        &[],
        "tracing.sample_ratio",
        "ratio",
    );
    keyed(
        &with("otlp_protocol = \"http/json\""),
        &[],
        "tracing.otlp_protocol",
        "grpc",
    );
    keyed(
        &with("otlp_endpoint = \"collector:4318\""),
        &[],
        "tracing.otlp_endpoint",
        "http://",
    );
    keyed(
        &with("otlp_endpoint = \"ftp://collector\""),
        &[],
        "tracing.otlp_endpoint",
        "http://",
    );
    keyed(
        &with("otlp_endpoint = \"https://c:4317\"\notlp_protocol = \"grpc\""),
        &[],
        "tracing.otlp_protocol",
        "plaintext",
    );
    keyed(
        &with("max_queue_size = 0"),
        &[],
        "tracing.max_queue_size",
        "at least 1",
    );
    keyed(
        &with("schedule_delay = \"soon\""),
        &[],
        "tracing.schedule_delay",
        "duration",
    );
    keyed(&with("sampling = 1.0"), &[], "tracing.sampling", "");
    keyed(
        MIN,
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
        "env OTEL_EXPORTER_OTLP_PROTOCOL",
        "grpc",
    );
    keyed(
        MIN,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
        "env OTEL_EXPORTER_OTLP_ENDPOINT",
        "URL",
    );
    keyed(
        MIN,
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
        "env OTEL_EXPORTER_OTLP_TIMEOUT",
        "milliseconds",
    );
    keyed(
        MIN,
        &[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
        "env OTEL_EXPORTER_OTLP_HEADERS",
        "key=value",
    );
}
