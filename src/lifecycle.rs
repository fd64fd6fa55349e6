//! Running until told to stop: SIGHUP reloads the config file (a bad file is refused and the
//! old config keeps serving), SIGTERM and SIGINT drain in-flight requests and return.

use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::server::Sidecar;

/// Serves `config` (loaded from `path`) until SIGTERM or SIGINT.
pub async fn run(path: PathBuf, config: Config) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let release = config.runtime.release_startup_code;
    let sidecar = Sidecar::start(config).await?;
    if release {
        let shared = std::sync::Arc::clone(sidecar.shared());
        tokio::spawn(async move {
            // Once the first keys are in (the start's last one-off work), or after a minute.
            for _ in 0..600 {
                if shared.ready() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let r = crate::memory::release_startup_code();
            tracing::debug!(
                bytes = r.bytes,
                mappings = r.mappings,
                "released the resident pages of start-up code"
            );
        });
    }
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&sidecar, &path),
            _ = term.recv() => { tracing::info!("SIGTERM: draining"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: draining"); break; }
        }
    }
    sidecar.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn reload(sidecar: &Sidecar, path: &std::path::Path) {
    let metrics = sidecar.metrics();
    match Config::load(path) {
        Ok(config) => match sidecar.reload(config) {
            Ok(()) => {
                metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(file = %path.display(), "config reloaded");
            }
            Err(e) => {
                metrics.reloads.with_label_values(&["error"]).inc();
                tracing::error!(file = %path.display(), error = format!("{e:#}"), "reload refused; old config keeps serving");
            }
        },
        Err(e) => {
            metrics.reloads.with_label_values(&["error"]).inc();
            let msg = e.to_string().replace('\n', "; ");
            tracing::error!(file = %path.display(), error = %msg, "reload refused; old config keeps serving");
        }
    }
}
