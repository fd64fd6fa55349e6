//! The authorization codes managed login hands out: random, single use,
//! five minutes long, each bound to the request it answers. A store of at
//! most [`MAX_CODES`]: expired codes go first, then the oldest. A redeemed
//! code is kept (until it expires) with the `origin_jti` of the tokens it
//! gave, so that a replay can revoke them (RFC 6749 §4.1.2).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a code may be redeemed.
pub(super) const CODE_TTL: Duration = Duration::from_secs(300);
/// Most codes kept at once.
pub(super) const MAX_CODES: usize = 1024;

/// What a code was issued for.
#[derive(Debug, Clone)]
pub(super) struct CodeGrant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    /// The PKCE `code_challenge` (S256), if the request had one.
    pub(super) code_challenge: Option<String>,
    pub(super) nonce: Option<String>,
    /// The granted scopes, in order.
    pub(super) scopes: Vec<String>,
    pub(super) username: String,
    /// When the user signed in.
    pub(super) auth_time: u64,
}

#[derive(Debug)]
struct Entry {
    grant: CodeGrant,
    expires: Instant,
    /// The `origin_jti` of the tokens it was redeemed for.
    redeemed: Option<String>,
}

/// Why a code cannot be redeemed.
#[derive(Debug)]
pub(super) enum Refused {
    /// Unknown, expired, or not for this request.
    Invalid,
    /// Redeemed before: the tokens of that sign-in are to be revoked.
    Replayed {
        username: String,
        origin_jti: String,
    },
}

#[derive(Debug, Default)]
pub(super) struct Codes {
    by_code: HashMap<String, Entry>,
}

impl Codes {
    /// A new code for `grant`, valid for [`CODE_TTL`] from `now`.
    pub(super) fn issue(&mut self, grant: CodeGrant, now: Instant) -> String {
        self.by_code.retain(|_, e| e.expires > now);
        while self.by_code.len() >= MAX_CODES {
            let oldest = self
                .by_code
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(c, _)| c.clone());
            match oldest {
                Some(c) => self.by_code.remove(&c),
                None => break,
            };
        }
        let code = Uuid::new_v4().to_string();
        self.by_code.insert(
            code.clone(),
            Entry {
                grant,
                expires: now + CODE_TTL,
                redeemed: None,
            },
        );
        code
    }

    /// Redeems `code` at `now` if `fits` accepts its grant: the grant and the
    /// new `origin_jti` of the tokens it gives. A code that does not fit is
    /// left as it was (a wrong guess does not burn the right client's code).
    pub(super) fn redeem(
        &mut self,
        code: &str,
        now: Instant,
        fits: impl FnOnce(&CodeGrant) -> bool,
    ) -> Result<(CodeGrant, String), Refused> {
        let Some(entry) = self.by_code.get_mut(code) else {
            return Err(Refused::Invalid);
        };
        if entry.expires <= now {
            self.by_code.remove(code);
            return Err(Refused::Invalid);
        }
        if let Some(origin_jti) = &entry.redeemed {
            return Err(Refused::Replayed {
                username: entry.grant.username.clone(),
                origin_jti: origin_jti.clone(),
            });
        }
        if !fits(&entry.grant) {
            return Err(Refused::Invalid);
        }
        let origin_jti = Uuid::new_v4().to_string();
        entry.redeemed = Some(origin_jti.clone());
        Ok((entry.grant.clone(), origin_jti))
    }

    /// How many codes are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_code.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> CodeGrant {
        CodeGrant {
            client_id: "c".into(),
            redirect_uri: "http://localhost/cb".into(),
            code_challenge: None,
            nonce: None,
            scopes: vec!["openid".into()],
            username: "u".into(),
            auth_time: 0,
        }
    }

    #[test]
    fn demo_codes_are_single_use_bounded_and_expire() {
        let mut codes = Codes::default();
        let now = Instant::now();
        let first = codes.issue(grant(), now);
        for _ in 0..MAX_CODES + 10 {
            codes.issue(grant(), now + Duration::from_millis(1));
        }
        assert_eq!(codes.len(), MAX_CODES);
        // The oldest went first.
        assert!(matches!(
            codes.redeem(&first, now, |_| true),
            Err(Refused::Invalid)
        ));
        let code = codes.issue(grant(), now);
        assert!(matches!(
            codes.redeem(&code, now, |_| false),
            Err(Refused::Invalid)
        ));
        let (_, origin) = codes.redeem(&code, now, |_| true).unwrap();
        match codes.redeem(&code, now, |_| true) {
            Err(Refused::Replayed { origin_jti, .. }) => assert_eq!(origin_jti, origin),
            other => panic!("{other:?}"),
        }
        let late = codes.issue(grant(), now);
        assert!(matches!(
            codes.redeem(&late, now + CODE_TTL, |_| true),
            Err(Refused::Invalid)
        ));
        // Expired codes are dropped on the next issue.
        codes.issue(grant(), now + CODE_TTL + Duration::from_secs(1));
        assert_eq!(codes.len(), 1);
    }
}
