//! Seals on token records: proof that the operator itself recorded a token ID for a request.
//!
//! Anyone who may write a request's status, or create Secrets in its namespace, could
//! otherwise put another request's token ID where the operator looks for this request's,
//! and have the operator revoke it. So every record the operator writes of a token (the
//! status, each `pendingRevokes` entry, the Secret) carries a seal: an HMAC-SHA256, cut to
//! 128 bits, over the request's UID, the token's ID, its expiry and the fingerprint of the
//! key that issued it, keyed by a secret only the operator reads (a Secret in its own
//! namespace). A record whose seal doesn't check is not the operator's, and no token is
//! revoked on its word.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sha2::Sha256;

use crate::clerk::KeyFingerprint;

/// Bytes of the HMAC kept: 128 bits, plenty against forgery (there is no offline check).
const SEAL_BYTES: usize = 16;
/// How long after the sealing key's making unsealed records of older requests are trusted:
/// the longest a token lives.
const LEGACY_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// Separates this use of the key from any other.
const DOMAIN: &[u8] = b"actor-token-operator/token-seal/v1\0";

/// The operator's sealing key, and since when it exists (records older than it were written
/// by an operator version that didn't seal, see [`Trust`]).
#[derive(Clone)]
pub struct SealKey {
    key: Vec<u8>,
    since: Timestamp,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

/// What is sealed: one token, for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRecord<'a> {
    pub request_uid: &'a str,
    pub token_id: &'a str,
    /// `None` where a record has none (sealed as 0).
    pub expires_at: Option<Timestamp>,
    /// The key that issued it; `None` where it isn't known.
    pub key: Option<KeyFingerprint>,
}

/// Whether a record can be acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Its seal checks: the operator wrote it.
    Sealed,
    /// No seal, on a request older than the sealing key, within a day of the key's making:
    /// written before the operator sealed records (an upgrade), so as trustworthy as records
    /// were then. A day on, every token from before has expired, and no unsealed record is
    /// trusted any more.
    Legacy,
    /// A missing or wrong seal on a request the sealing operator has always served: not the
    /// operator's record.
    Forged,
}

impl Trust {
    pub fn is_trusted(self) -> bool {
        !matches!(self, Trust::Forged)
    }
}

impl SealKey {
    /// The smallest key accepted: 256 bits.
    pub const MIN_BYTES: usize = 32;

    pub fn new(key: Vec<u8>, since: Timestamp) -> Result<SealKey, String> {
        if key.len() < Self::MIN_BYTES {
            return Err(format!(
                "the token seal key has {} bytes; at least {} are needed",
                key.len(),
                Self::MIN_BYTES
            ));
        }
        Ok(SealKey { key, since })
    }

    /// A fresh random key.
    pub fn generate() -> Vec<u8> {
        rand::random::<[u8; 32]>().to_vec()
    }

    /// The seal of `record`, as stored: 32 lowercase hex digits.
    pub fn seal(&self, record: &TokenRecord<'_>) -> String {
        let tag = self.mac(record).finalize().into_bytes();
        tag[..SEAL_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// How far `record` can be trusted, given the `seal` stored with it (if any), when its
    /// request was created, and the time.
    pub fn trust(
        &self,
        record: &TokenRecord<'_>,
        seal: Option<&str>,
        request_created: Option<Timestamp>,
        now: Timestamp,
    ) -> Trust {
        match seal {
            Some(seal) => match decode_hex(seal) {
                Some(tag) if tag.len() == SEAL_BYTES => {
                    if self.mac(record).verify_truncated_left(&tag).is_ok() {
                        Trust::Sealed
                    } else {
                        Trust::Forged
                    }
                }
                _ => Trust::Forged,
            },
            None if request_created.is_some_and(|created| created < self.since)
                && now < self.since + LEGACY_WINDOW =>
            {
                Trust::Legacy
            }
            None => Trust::Forged,
        }
    }

    fn mac(&self, record: &TokenRecord<'_>) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(DOMAIN);
        // Each field ends with a NUL, which none of them can hold, so no two records share
        // an input.
        let key = record.key.map(|k| k.to_string()).unwrap_or_default();
        for field in [
            record.request_uid,
            record.token_id,
            &record.expires_at.map_or(0, |at| at.as_second()).to_string(),
            &key,
        ] {
            mac.update(field.as_bytes());
            mac.update(b"\0");
        }
        mac
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clerk::SecretKey;

    fn key() -> SealKey {
        SealKey::new(vec![7; 32], Timestamp::from_second(1_700_000_000).unwrap()).unwrap()
    }

    fn record<'a>(uid: &'a str, token: &'a str) -> TokenRecord<'a> {
        TokenRecord {
            request_uid: uid,
            token_id: token,
            expires_at: Some(Timestamp::from_second(1_800_000_000).unwrap()),
            key: Some(SecretKey::parse("sk_test_abc").unwrap().fingerprint()),
        }
    }

    const AFTER: Option<Timestamp> = None;

    /// A moment within a day of the key's making.
    fn soon() -> Timestamp {
        Timestamp::from_second(1_700_000_100).unwrap()
    }

    fn created_after() -> Option<Timestamp> {
        Some(Timestamp::from_second(1_750_000_000).unwrap())
    }

    #[test]
    fn a_record_the_operator_sealed_checks() {
        let key = key();
        let seal = key.seal(&record("uid-1", "act_1"));
        assert_eq!(seal.len(), 32);
        assert!(seal.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            key.trust(
                &record("uid-1", "act_1"),
                Some(&seal),
                created_after(),
                soon()
            ),
            Trust::Sealed
        );
    }

    #[test]
    fn a_seal_moved_to_another_token_request_expiry_or_key_does_not_check() {
        let key = key();
        let seal = key.seal(&record("uid-1", "act_1"));
        // Another request's token, under this request's seal; this token under another's.
        assert_eq!(
            key.trust(
                &record("uid-1", "act_2"),
                Some(&seal),
                created_after(),
                soon()
            ),
            Trust::Forged
        );
        assert_eq!(
            key.trust(
                &record("uid-2", "act_1"),
                Some(&seal),
                created_after(),
                soon()
            ),
            Trust::Forged
        );
        let mut later = record("uid-1", "act_1");
        later.expires_at = Some(Timestamp::from_second(1_800_000_001).unwrap());
        assert_eq!(
            key.trust(&later, Some(&seal), created_after(), soon()),
            Trust::Forged
        );
        let mut other_key = record("uid-1", "act_1");
        other_key.key = None;
        assert_eq!(
            key.trust(&other_key, Some(&seal), created_after(), soon()),
            Trust::Forged
        );
        // Field boundaries count: "uid-1" + "act_1" is not "uid-1act" + "_1".
        assert_eq!(
            key.trust(
                &record("uid-1act", "_1"),
                Some(&seal),
                created_after(),
                soon()
            ),
            Trust::Forged
        );
    }

    #[test]
    fn only_the_operators_key_makes_a_seal_that_checks() {
        let other =
            SealKey::new(vec![8; 32], Timestamp::from_second(1_700_000_000).unwrap()).unwrap();
        let forged = other.seal(&record("uid-1", "act_1"));
        assert_eq!(
            key().trust(
                &record("uid-1", "act_1"),
                Some(&forged),
                created_after(),
                soon()
            ),
            Trust::Forged
        );
        for garbage in ["", "zz", "00", &"0".repeat(32), &"0".repeat(64)] {
            assert_eq!(
                key().trust(
                    &record("uid-1", "act_1"),
                    Some(garbage),
                    created_after(),
                    soon()
                ),
                Trust::Forged,
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn an_unsealed_record_is_trusted_only_on_a_request_older_than_the_key() {
        let key = key();
        let record = record("uid-1", "act_1");
        let before = Some(Timestamp::from_second(1_600_000_000).unwrap());
        assert_eq!(key.trust(&record, None, before, soon()), Trust::Legacy);
        assert_eq!(
            key.trust(&record, None, created_after(), soon()),
            Trust::Forged
        );
        assert_eq!(key.trust(&record, None, AFTER, soon()), Trust::Forged);
        // A day after the key was made, every token from before has expired.
        let day_after = Timestamp::from_second(1_700_000_000 + 86_400).unwrap();
        assert_eq!(key.trust(&record, None, before, day_after), Trust::Forged);
        assert!(Trust::Legacy.is_trusted() && !Trust::Forged.is_trusted());
    }

    #[test]
    fn short_keys_are_refused_and_debug_shows_no_key() {
        assert!(SealKey::new(vec![1; 31], Timestamp::UNIX_EPOCH).is_err());
        let shown = format!(
            "{:?}",
            SealKey::new(vec![0xab; 32], Timestamp::UNIX_EPOCH).unwrap()
        );
        assert!(!shown.contains("171"), "{shown}");
        assert_eq!(SealKey::generate().len(), 32);
        assert_ne!(SealKey::generate(), SealKey::generate());
    }
}
