//! Credentials we mint or check: Fleet server secrets, consent states, API keys.
//!
//! Every random value comes from the operating system's generator. Secrets are
//! kept only as SHA-256 digests (they are 128-bit random values, so a slow
//! password hash would add nothing), and every comparison of a presented value
//! against a stored one runs in constant time.

use std::fmt;
use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng;
use rand::rngs::SysRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A SHA-256 digest of a secret value.
pub type Digest = [u8; 32];

/// The operating system could not supply random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct RandomError(String);

/// 128 random bits as 32 lower-case hex characters: URL-safe, so it survives
/// every query encoding Fleet's clients have used.
pub fn random_token() -> Result<String, RandomError> {
    let mut bytes = [0u8; 16];
    SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomError(e.to_string()))?;
    Ok(hex(&bytes))
}

/// The digest under which a secret or state is stored.
pub fn digest(value: &str) -> Digest {
    Sha256::digest(value.as_bytes()).into()
}

/// Whether `presented` hashes to `stored`, compared in constant time.
pub fn verify(presented: &str, stored: &[u8]) -> bool {
    digest(presented).ct_eq(stored).into()
}

/// The consent state handed out for one integration.
///
/// It is derived from the integration's secret and a stored random nonce, so
/// `settings` can hand out the same state on every call until it expires while
/// the database holds neither the secret nor the state itself.
pub fn consent_state(secret: &str, nonce: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(b"compliance-proxy consent state\0");
    mac.update(nonce.as_bytes());
    let tag = mac.finalize().into_bytes();
    hex(&tag[..16])
}

/// The set of API keys Fleet servers may present; several at once for rotation.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<Digest>,
}

impl ApiKeys {
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> ApiKeys {
        ApiKeys {
            digests: keys.into_iter().map(digest).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Every key is compared, and the
    /// comparison is of fixed-length digests, so neither the position of a match
    /// nor a shared prefix shows in the timing.
    pub fn accepts(&self, presented: &str) -> bool {
        let candidate = digest(presented);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&candidate)
            })
            .into()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").expect("writing to a String cannot fail");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_characters_and_differ() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn verify_matches_only_the_hashed_value() {
        let stored = digest("3fa9c1d27be04e8a9c5d1f20b7e6a4c3");
        assert!(verify("3fa9c1d27be04e8a9c5d1f20b7e6a4c3", &stored));
        assert!(!verify("3fa9c1d27be04e8a9c5d1f20b7e6a4c", &stored));
        assert!(!verify("", &stored));
        assert!(!verify("3fa9c1d27be04e8a9c5d1f20b7e6a4c3", &stored[..31]));
    }

    #[test]
    fn consent_state_depends_on_secret_and_nonce() {
        let s = consent_state("secret-a", "nonce-1");
        assert_eq!(s, consent_state("secret-a", "nonce-1"));
        assert_ne!(s, consent_state("secret-b", "nonce-1"));
        assert_ne!(s, consent_state("secret-a", "nonce-2"));
        assert_eq!(s.len(), 32);
    }

    #[test]
    fn api_keys_accept_any_configured_key_and_nothing_else() {
        let keys = ApiKeys::new(["old-key", "new-key"]);
        assert!(keys.accepts("old-key"));
        assert!(keys.accepts("new-key"));
        assert!(!keys.accepts("new-ke"));
        assert!(!keys.accepts("new-key2"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::default().accepts(""));
        assert_eq!(format!("{keys:?}"), "ApiKeys(2 keys)");
    }
}
