//! Writes what the load benchmarks need: a JWKS, one Cognito-style access token, a pool of
//! distinct valid tokens (for cold verification), and tokens that must be rejected.
//!
//! `cargo run --release --example bench_tokens -- OUT_DIR ISSUER [COUNT]`
//!
//! Files: `jwks.json`, `token.txt` (scope `dotnet-demo/dotnet`), `tokens.txt` (COUNT tokens,
//! one per line, distinct `jti`), `bad_signature.txt`, `no_scope.txt`, and `user_token.txt`: a
//! password-flow user access token (`username`, `origin_jti`, the scope
//! `aws.cognito.signin.user.admin` that `GetUser` needs, plus `dotnet-demo/dotnet` as a pre token
//! generation trigger adds it), which an issuer with `revocation = "online"` checks. Its `sub`
//! is the client id too, so the benchmark's proofs read the same identity for every token.

use std::io::Write;

use cognito_sidecar::demo::keys::{self, SigningKey};
use serde_json::json;

/// The cookie key of bench/compare's sidecar-session (a bench value, not a secret).
const SESSION_KEY: &str = "YmVuY2gtb25seS1jb29raWUta2V5LTMyLWJ5dGVzISE=";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().expect("OUT_DIR"));
    let iss = args.next().expect("ISSUER");
    let count: usize = args
        .next()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(100_000);
    std::fs::create_dir_all(&out)?;
    let key = SigningKey::generate(keys::random_kid())?;
    let other = SigningKey::generate(key.kid())?;
    let now = cognito_sidecar::verify::now_secs();
    let claims = |jti: &str, scope: &str| {
        json!({
            "sub": "4qf1r2p7a8s9d0f1g2h3j4k5l6",
            "token_use": "access",
            "scope": scope,
            "auth_time": now,
            "iss": iss,
            "exp": now + 24 * 3600,
            "iat": now,
            "version": 2,
            "jti": jti,
            "client_id": "4qf1r2p7a8s9d0f1g2h3j4k5l6",
        })
    };
    std::fs::write(out.join("jwks.json"), keys::jwks(&[&key]).to_string())?;
    std::fs::write(
        out.join("token.txt"),
        key.sign(&claims(
            "5e0f9c3a-1b2d-4e6f-8a9b-0c1d2e3f4a5b",
            "dotnet-demo/dotnet",
        )),
    )?;
    std::fs::write(
        out.join("bad_signature.txt"),
        other.sign(&claims("bad", "dotnet-demo/dotnet")),
    )?;
    std::fs::write(
        out.join("no_scope.txt"),
        key.sign(&claims("noscope", "other/scope")),
    )?;
    let mut user = claims(
        "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "aws.cognito.signin.user.admin dotnet-demo/dotnet",
    );
    user["username"] = json!("bench-user");
    user["origin_jti"] = json!("0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a");
    std::fs::write(out.join("user_token.txt"), key.sign(&user))?;
    // A signed-in browser's session cookie holding token.txt (sealed with SESSION_KEY, the
    // key bench/compare gives sidecar-session), as one `Cookie:` line for bench/tokens.lua.
    let token = std::fs::read_to_string(out.join("token.txt"))?;
    let keys = cognito_sidecar::session::CookieKeys::from_base64(&[SESSION_KEY])?;
    let opts = cognito_sidecar::session::CookieOptions {
        secure: false,
        ..Default::default()
    };
    let session = cognito_sidecar::session::Session {
        access_token: token,
        refresh_token: None,
        access_exp: now + 24 * 3600,
        started_at: now,
        refreshed_at: now,
        sub: Some("4qf1r2p7a8s9d0f1g2h3j4k5l6".into()),
    };
    let cookies =
        cognito_sidecar::session::seal_session(&keys, "sidecar_session", &session, &opts, now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let header = cookies
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join("; ");
    std::fs::write(out.join("session.txt"), format!("Cookie: {header}\n"))?;
    eprintln!(
        "session cookie: {} chunk(s), {} bytes in the Cookie header",
        cookies.len(),
        header.len()
    );
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("tokens.txt"))?);
    for i in 0..count {
        let jti = format!("{:08x}-1b2d-4e6f-8a9b-{:012x}", i, i);
        writeln!(f, "{}", key.sign(&claims(&jti, "dotnet-demo/dotnet")))?;
    }
    f.flush()?;
    let len = std::fs::read_to_string(out.join("token.txt"))?.len();
    eprintln!(
        "wrote {} (token {len} bytes, {count} pool tokens)",
        out.display()
    );
    Ok(())
}
