//! The deny list of an issuer (`revoked_file`): tokens to refuse at once, whatever the
//! cache, the online check or the token's lifetime say. For immediate kills, and for machine
//! clients, whose client-credentials tokens Cognito cannot revoke.
//!
//! One entry a line, `kind:value`, with `#` comments and blank lines ignored:
//!
//! ```text
//! # a leaked token, by its jti
//! jti:1f2e3d4c-5b6a-7980-a1b2-c3d4e5f6a7b8
//! # every token of one sign-in (access and ID token share origin_jti)
//! origin_jti:aa11bb22-...
//! # every token of a user, or of a machine client
//! sub:11111111-2222-3333-4444-555555555555
//! client_id:4qf1r2p7a8s9d0f1g2h3j4k5l6
//! ```
//!
//! The file is read at start (a bad line stops the start, naming the line), read again when it
//! changes (polled every second) and on SIGHUP; a bad line then is logged with its number and
//! the old list keeps serving.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::metrics::Metrics;

/// How often the file is looked at for a change.
const POLL: Duration = Duration::from_secs(1);

/// The parsed entries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entries {
    jti: HashSet<Box<str>>,
    origin_jti: HashSet<Box<str>>,
    sub: HashSet<Box<str>>,
    client_id: HashSet<Box<str>>,
}

impl Entries {
    /// Parses the file's text; the first bad line is `Err((line number, reason))`.
    pub fn parse(text: &str) -> Result<Entries, (usize, String)> {
        let mut e = Entries::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| Err((i + 1, reason));
            let Some((kind, value)) = line.split_once(':') else {
                return bad(format!(
                    "{line:?} is not kind:value (jti:, origin_jti:, sub: or client_id:)"
                ));
            };
            let value = value.trim();
            if value.is_empty() || value.contains(char::is_whitespace) {
                return bad(format!("{line:?}: the value is empty or has spaces"));
            }
            let set = match kind.trim() {
                "jti" => &mut e.jti,
                "origin_jti" => &mut e.origin_jti,
                "sub" => &mut e.sub,
                "client_id" => &mut e.client_id,
                other => {
                    return bad(format!(
                        "unknown kind {other:?} (expected jti, origin_jti, sub or client_id)"
                    ))
                }
            };
            set.insert(value.into());
        }
        Ok(e)
    }

    pub fn len(&self) -> usize {
        self.jti.len() + self.origin_jti.len() + self.sub.len() + self.client_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a token with these ids is listed, by any of them.
    pub fn matches(&self, ids: &Ids<'_>) -> bool {
        let hit = |set: &HashSet<Box<str>>, id: Option<&str>| id.is_some_and(|id| set.contains(id));
        hit(&self.jti, ids.jti)
            || hit(&self.origin_jti, ids.origin_jti)
            || hit(&self.sub, ids.sub)
            || hit(&self.client_id, ids.client_id)
    }
}

/// The ids of a verified token that a deny list can name.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ids<'a> {
    pub jti: Option<&'a str>,
    pub origin_jti: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

/// A file's identity for change detection: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The deny list of one issuer, swapped whole on each good read of its file.
pub struct DenyList {
    issuer: String,
    path: PathBuf,
    entries: ArcSwap<Entries>,
    seen: Mutex<Stamp>,
    metrics: Arc<Metrics>,
}

impl DenyList {
    /// Reads `path` for `issuer`; a bad file is an error naming the line. Starts watching it
    /// for changes (the watch ends when the list is dropped).
    pub fn load(issuer: &str, path: &Path, metrics: Arc<Metrics>) -> anyhow::Result<Arc<DenyList>> {
        let seen = stamp(path);
        let entries = read(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let list = Arc::new(DenyList {
            issuer: issuer.to_string(),
            path: path.to_path_buf(),
            entries: ArcSwap::from_pointee(Entries::default()),
            seen: Mutex::new(seen),
            metrics,
        });
        list.install(entries);
        // Outside a runtime (a benchmark, a one-off tool) there is nothing to watch with.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(watch(Arc::downgrade(&list)));
        }
        Ok(list)
    }

    /// Whether a token with these ids is listed.
    pub fn matches(&self, ids: &Ids<'_>) -> bool {
        self.entries.load().matches(ids)
    }

    pub fn len(&self) -> usize {
        self.entries.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn install(&self, entries: Entries) {
        let n = entries.len();
        self.entries.store(Arc::new(entries));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.metrics
            .denylist_entries
            .with_label_values(&[&self.issuer])
            .set(n as i64);
        self.metrics
            .denylist_loaded
            .with_label_values(&[&self.issuer])
            .set(now);
    }

    /// Reads the file again if it changed since the last look.
    fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        {
            let mut seen = self.seen.lock().expect("lock poisoned");
            if *seen == now {
                return;
            }
            *seen = now;
        }
        match read(&self.path) {
            Ok(entries) => {
                tracing::info!(issuer = %self.issuer, file = %self.path.display(), entries = entries.len(), "deny list reloaded");
                self.install(entries);
            }
            Err(e) => {
                self.metrics
                    .denylist_errors
                    .with_label_values(&[&self.issuer])
                    .inc();
                tracing::error!(issuer = %self.issuer, error = %e, "deny list refused; the old list stays");
            }
        }
    }
}

/// Reads and parses `path`; errors name the file (and the line).
pub fn read(path: &Path) -> Result<Entries, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the deny list: {e}", path.display()))?;
    Entries::parse(&text).map_err(|(line, reason)| format!("{}:{line}: {reason}", path.display()))
}

async fn watch(list: Weak<DenyList>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(list) = list.upgrade() else { return };
        list.reload_if_changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_comments_and_report_the_bad_one() {
        let e =
            Entries::parse("# comment\n\njti:a\norigin_jti: b \nsub:c\nclient_id:d\nclient_id:d\n")
                .unwrap();
        assert_eq!(e.len(), 4);
        assert!(e.jti.contains("a") && e.origin_jti.contains("b"));
        for (text, line, needle) in [
            ("jti:a\nnope\n", 2, "not kind:value"),
            ("jti:a\n\nuser:x\n", 3, "unknown kind"),
            ("sub:\n", 1, "empty"),
            ("sub:a b\n", 1, "spaces"),
        ] {
            let (n, reason) = Entries::parse(text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(reason.contains(needle), "{text:?}: {reason}");
        }
    }
}
