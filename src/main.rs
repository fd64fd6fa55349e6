//! The `cognito-sidecar` command line: parse arguments, set up logging, load the config,
//! and turn the library's result into an exit code. No proxy logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr as _;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use std::net::SocketAddr;

use cognito_sidecar::config::{Config, IssuerForm, LogFormat};
use cognito_sidecar::demo::run::DemoAddrs;

#[derive(Parser)]
#[command(
    name = "cognito-sidecar",
    version,
    about = "An authenticating reverse-proxy sidecar for Amazon Cognito and OIDC issuers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// The config file (default ./config.toml, or $SIDECAR_CONFIG).
    #[arg(
        long,
        short = 'c',
        env = "SIDECAR_CONFIG",
        default_value = "config.toml",
        global = true
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Validate the config; print the effective config and the route table.
    Check,
    /// Decode a token and say which issuer accepts it and which routes it may call.
    Inspect {
        /// The JWT (a leading "Bearer " is ignored).
        token: String,
        /// The request side of the routes' `when` conditions (default GET /).
        #[arg(long, num_args = 2, value_names = ["METHOD", "PATH"])]
        request: Option<Vec<String>>,
    },
    /// Offline demo: a local Cognito-compatible issuer, a sample upstream and the sidecar in one
    /// process on loopback; prints ready-to-paste shell lines for both flows.
    Demo {
        /// The sidecar's address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The sidecar's admin address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// The demo issuer's address (token endpoint, InitiateAuth, JWKS).
        #[arg(long, default_value = "127.0.0.1:9000")]
        issuer: SocketAddr,
        /// The sample upstream's address.
        #[arg(long, default_value = "127.0.0.1:5000")]
        upstream: SocketAddr,
        /// The form of the demo pool's issuer (iss): original
        /// (https://cognito-idp.<region>.amazonaws.com/<pool>) or updated
        /// (https://issuer-cognito-idp.<region>.amazonaws.com/<pool>).
        #[arg(long, default_value = "original", value_parser = IssuerForm::from_str)]
        issuer_form: IssuerForm,
    },
    /// Get a token from Cognito (or the demo issuer) the way clients do.
    Token {
        #[command(subcommand)]
        flow: TokenFlow,
    },
    /// Exit 0 if the URL (default: the admin /readyz) answers 2xx; for container health checks.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9901/readyz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum TokenFlow {
    /// Client-credentials grant: POST <domain>/oauth2/token.
    ClientCredentials {
        /// The user pool's domain, e.g. https://mypool.auth.eu-west-1.amazoncognito.com.
        #[arg(long)]
        domain: String,
        #[arg(long)]
        client_id: String,
        #[arg(long, allow_hyphen_values = true)]
        client_secret: String,
        /// Space-separated scopes (default: all the client may have).
        #[arg(long)]
        scope: Option<String>,
        /// Print the whole answer as JSON instead of the access token.
        #[arg(long)]
        json: bool,
    },
    /// InitiateAuth USER_PASSWORD_AUTH (with SECRET_HASH when a secret is given).
    Password {
        #[command(flatten)]
        idp: IdpEndpoint,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        username: String,
        #[arg(long, allow_hyphen_values = true)]
        password: String,
        #[arg(long, allow_hyphen_values = true)]
        client_secret: Option<String>,
        /// Print the ID token instead of the access token.
        #[arg(long, conflicts_with = "json")]
        id_token: bool,
        /// Print the whole AuthenticationResult as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a refresh token (and the tokens issued with it): POST <domain>/oauth2/revoke.
    Revoke {
        /// The user pool's domain, e.g. https://mypool.auth.eu-west-1.amazoncognito.com.
        #[arg(long)]
        domain: String,
        #[arg(long, allow_hyphen_values = true)]
        refresh_token: String,
        #[arg(long)]
        client_id: String,
        /// The app client's secret, if it has one (sent with HTTP Basic).
        #[arg(long, allow_hyphen_values = true)]
        client_secret: Option<String>,
    },
    /// GlobalSignOut: revoke every token issued to the user of an access token.
    SignOut {
        #[command(flatten)]
        idp: IdpEndpoint,
        #[arg(long, allow_hyphen_values = true)]
        access_token: String,
    },
}

/// Where the Cognito IdP API is: a region's, or an explicit endpoint.
#[derive(Args)]
struct IdpEndpoint {
    /// The pool's region, e.g. eu-west-1.
    #[arg(long)]
    region: Option<String>,
    /// The IdP endpoint (default https://cognito-idp.<region>.amazonaws.com/).
    #[arg(long)]
    endpoint: Option<String>,
}

impl IdpEndpoint {
    fn url(self) -> anyhow::Result<String> {
        match (self.endpoint, self.region) {
            (Some(e), _) => Ok(e),
            (None, Some(r)) => Ok(cognito_sidecar::token::default_idp_endpoint(&r)),
            (None, None) => anyhow::bail!("pass --region (or --endpoint)"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config.config),
        Command::Check => check(&cli.config.config),
        Command::Inspect { token, request } => inspect(&cli.config.config, &token, request),
        Command::Healthcheck { url } => healthcheck(&url),
        Command::Demo {
            listen,
            admin,
            issuer,
            upstream,
            issuer_form,
        } => demo(DemoAddrs {
            proxy: listen,
            admin,
            issuer,
            upstream,
            issuer_form,
        }),
        Command::Token { flow } => token(flow),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cognito-sidecar: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    if !path.exists() {
        anyhow::bail!(
            "{}: config file not found (pass --config FILE or set SIDECAR_CONFIG)",
            path.display()
        );
    }
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn init_logging(format: LogFormat) -> cognito_sidecar::logbuf::FlushGuard {
    init_logging_to(format, "info", Box::new(std::io::stdout()))
}

/// Logs go through [`cognito_sidecar::logbuf::BatchWriter`]: written out every 100 ms, at most
/// 8 MiB held, never blocking a request.
fn init_logging_to(
    format: LogFormat,
    default_filter: &str,
    out: Box<dyn std::io::Write + Send>,
) -> cognito_sidecar::logbuf::FlushGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let (writer, guard) = cognito_sidecar::logbuf::BatchWriter::new(
        out,
        std::time::Duration::from_millis(100),
        8 * 1024 * 1024,
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    guard
}

fn runtime(worker_threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = if worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if worker_threads > 1 {
            b.worker_threads(worker_threads);
        }
        b.enable_all().build()?
    };
    Ok(rt)
}

fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let _guard = init_logging(config.log.format);
    let rt = runtime(config.runtime.worker_threads)?;
    rt.block_on(cognito_sidecar::lifecycle::run(path.to_path_buf(), config))?;
    Ok(ExitCode::SUCCESS)
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::fmt::Write as _;
    let config = load(path)?;
    let mut o = format!("{}: OK\n\n", path.display());
    let warnings = config.warnings();
    if !warnings.is_empty() {
        o.push_str("# warnings\n");
        for w in &warnings {
            let _ = writeln!(o, "# - {w}");
        }
        o.push('\n');
    }
    o.push_str("# effective configuration\n");
    let _ = writeln!(o, "{}", cognito_sidecar::describe::effective(&config));
    o.push_str("# routes (first match wins)\n");
    o.push_str(&cognito_sidecar::describe::route_table(&config));
    print_out(&o)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout; a reader that went away (`check | head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn inspect(
    path: &std::path::Path,
    token: &str,
    request: Option<Vec<String>>,
) -> anyhow::Result<ExitCode> {
    let config = load(path)?;
    let request = match request.as_deref() {
        Some([method, path]) => Some(cognito_sidecar::inspect::AskedRequest {
            method: http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("--request: {method:?} is not an HTTP method"))?,
            path: path.clone(),
        }),
        _ => None,
    };
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    let rt = runtime(1)?;
    let report = rt.block_on(cognito_sidecar::inspect::inspect_request(
        &config, token, request,
    ))?;
    print_out(&report)?;
    Ok(ExitCode::SUCCESS)
}

fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    let rt = runtime(1)?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(cognito_sidecar::tls::client_config(None)?)
            .timeout(std::time::Duration::from_secs(3))
            .no_proxy()
            .build()?;
        let resp = client
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if resp.status().is_success() {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("{url}: HTTP {}", resp.status());
            Ok(ExitCode::from(1))
        }
    })
}

fn demo(addrs: DemoAddrs) -> anyhow::Result<ExitCode> {
    let rt = runtime(1)?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let demo = cognito_sidecar::demo::run::start(&addrs).await?;
        print!("{}", cognito_sidecar::demo::run::script(&demo));
        use std::io::Write as _;
        std::io::stdout().flush()?;
        // Access log lines go to stderr, after the script, as requests arrive.
        let _guard = init_logging_to(
            LogFormat::Text,
            "warn,cognito_sidecar::access=info",
            Box::new(std::io::stderr()),
        );
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        eprintln!("demo: stopping");
        demo.sidecar.shutdown().await;
        demo.issuer.shutdown().await;
        demo.upstream.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn token(flow: TokenFlow) -> anyhow::Result<ExitCode> {
    use cognito_sidecar::token;
    let rt = runtime(1)?;
    rt.block_on(async {
        let out = match flow {
            TokenFlow::ClientCredentials {
                domain,
                client_id,
                client_secret,
                scope,
                json,
            } => {
                let t = token::client_credentials(
                    &domain,
                    &client_id,
                    &client_secret,
                    scope.as_deref(),
                )
                .await?;
                if json {
                    serde_json::to_string_pretty(&t)?
                } else {
                    t.access_token
                }
            }
            TokenFlow::Password {
                idp,
                client_id,
                username,
                password,
                client_secret,
                id_token,
                json,
            } => {
                let endpoint = idp.url()?;
                let r = token::password(
                    &endpoint,
                    &client_id,
                    &username,
                    &password,
                    client_secret.as_deref(),
                )
                .await?;
                if json {
                    // Cognito's own shape, as `aws cognito-idp initiate-auth` prints it.
                    serde_json::to_string_pretty(&serde_json::json!({
                        "AuthenticationResult": {
                            "AccessToken": r.access_token,
                            "IdToken": r.id_token,
                            "RefreshToken": r.refresh_token,
                            "ExpiresIn": r.expires_in,
                            "TokenType": r.token_type,
                        }
                    }))?
                } else if id_token {
                    r.id_token
                } else {
                    r.access_token
                }
            }
            TokenFlow::Revoke {
                domain,
                refresh_token,
                client_id,
                client_secret,
            } => {
                token::revoke(
                    &domain,
                    &refresh_token,
                    &client_id,
                    client_secret.as_deref(),
                )
                .await?;
                "revoked".to_owned()
            }
            TokenFlow::SignOut { idp, access_token } => {
                token::sign_out(&idp.url()?, &access_token).await?;
                "signed out".to_owned()
            }
        };
        println!("{out}");
        Ok(ExitCode::SUCCESS)
    })
}
