//! One ALB public key (EC P-256, from the PEM an ALB's key server serves), parsed once, and
//! its ES256 check over a raw 64-byte `R || S` signature (aws-lc-rs's fixed-size form, so a
//! DER signature never verifies). Fetching and caching the keys is `alb.rs`'s.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;

/// One ALB public key: an EC P-256 key, parsed once.
pub struct AlbKey {
    pub kid: String,
    key: ParsedPublicKey,
}

impl std::fmt::Debug for AlbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlbKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AlbKey {
    /// A key from its PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo), which must be
    /// an EC P-256 key.
    pub fn from_pem(kid: &str, pem: &[u8]) -> Result<AlbKey, String> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM public key: {e}"))?;
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, der.as_ref())
            .map_err(|e| format!("not an EC P-256 public key: {e}"))?;
        Ok(AlbKey {
            kid: kid.to_string(),
            key,
        })
    }

    /// ES256 over `message` with a raw 64-byte `R || S` signature.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}
