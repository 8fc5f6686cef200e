//! Credentials: the Clerk secret key, and the actor token's `token` and `url`.
//!
//! None of them may show up in logs, error messages or status fields, so each lives in a
//! newtype whose `Debug` redacts it and whose value is only reachable through `expose()`.
//! None of them implements `Display` or `Serialize`.

use std::fmt;

use sha2::{Digest, Sha256};

/// A secret credential that Clerk handed out: the actor token's `token` or its sign-in
/// `url`. Anyone holding it can sign in as the impersonated user.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself. Call only where it must leave the process (a Kubernetes
    /// Secret), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The credential itself, consuming the wrapper.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Which kind of Clerk instance a secret key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyEnvironment {
    /// `sk_test_…`: a development instance.
    Development,
    /// `sk_live_…`: a production instance.
    Production,
}

/// Why a string is not a Clerk secret key. Never holds any part of the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the Clerk secret key is empty")]
    Empty,
    #[error("the Clerk secret key does not start with sk_test_ or sk_live_")]
    UnknownPrefix,
    #[error("the Clerk secret key has nothing after its sk_test_/sk_live_ prefix")]
    MissingSecret,
    #[error(
        "the Clerk secret key holds a character other than letters, digits, '_' and '-' \
         (at byte {position})"
    )]
    InvalidCharacter { position: usize },
}

/// A short, non-reversible digest of a secret key: the first 8 bytes of a SHA-256 over a
/// domain-separated copy of the key, shown as 16 hex digits. Safe to log and to use as a
/// map key (two keys share a fingerprint only by a 2^-64 accident).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint([u8; 8]);

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

impl std::str::FromStr for KeyFingerprint {
    type Err = String;

    /// Reads the 16 hex digits [`fmt::Display`] writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("{text:?} is not a key fingerprint (16 hex digits)");
        if text.len() != 16 || !text.is_ascii() {
            return Err(invalid());
        }
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(KeyFingerprint(bytes))
    }
}

/// A well-formed Clerk secret key (`sk_test_…` or `sk_live_…`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    value: String,
    environment: KeyEnvironment,
    fingerprint: KeyFingerprint,
}

const DEVELOPMENT_PREFIX: &str = "sk_test_";
const PRODUCTION_PREFIX: &str = "sk_live_";

impl SecretKey {
    /// Checks and wraps a secret key. Surrounding whitespace is dropped, since keys are
    /// often written into Secrets with a trailing newline; anything else must be the
    /// prefix `sk_test_` or `sk_live_` followed by a non-empty run of URL-safe characters
    /// (`A-Z a-z 0-9 _ -`).
    pub fn parse(raw: &str) -> Result<SecretKey, KeyError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(KeyError::Empty);
        }
        let (environment, secret) = if let Some(rest) = value.strip_prefix(DEVELOPMENT_PREFIX) {
            (KeyEnvironment::Development, rest)
        } else if let Some(rest) = value.strip_prefix(PRODUCTION_PREFIX) {
            (KeyEnvironment::Production, rest)
        } else {
            return Err(KeyError::UnknownPrefix);
        };
        if secret.is_empty() {
            return Err(KeyError::MissingSecret);
        }
        if let Some(offset) = secret
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(KeyError::InvalidCharacter {
                position: DEVELOPMENT_PREFIX.len() + offset,
            });
        }
        let digest = Sha256::new()
            .chain_update(b"actor-token-operator/clerk-secret-key/v1\0")
            .chain_update(value.as_bytes())
            .finalize();
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest[..8]);
        Ok(SecretKey {
            value: value.to_owned(),
            environment,
            fingerprint: KeyFingerprint(fingerprint),
        })
    }

    /// The kind of instance the key belongs to, read from its prefix.
    pub fn environment(&self) -> KeyEnvironment {
        self.environment
    }

    /// A digest of the key, safe to log and to use as a map key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("environment", &self.environment)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk_test_Abc123_-xyzSECRETPART";

    #[test]
    fn parses_development_and_production_keys() {
        let dev = SecretKey::parse(KEY).unwrap();
        assert_eq!(dev.environment(), KeyEnvironment::Development);
        assert_eq!(dev.expose(), KEY);
        let live = SecretKey::parse("sk_live_Q9").unwrap();
        assert_eq!(live.environment(), KeyEnvironment::Production);
    }

    #[test]
    fn trims_the_newline_a_secret_file_often_ends_with() {
        let key = SecretKey::parse(&format!("{KEY}\n")).unwrap();
        assert_eq!(key.expose(), KEY);
        let key = SecretKey::parse(&format!("{KEY}\r\n")).unwrap();
        assert_eq!(key.expose(), KEY);
        assert_eq!(key, SecretKey::parse(KEY).unwrap());
    }

    #[test]
    fn rejects_malformed_keys_without_echoing_them() {
        assert_eq!(SecretKey::parse(""), Err(KeyError::Empty));
        assert_eq!(SecretKey::parse(" \n"), Err(KeyError::Empty));
        assert_eq!(
            SecretKey::parse("pk_test_SECRETPART"),
            Err(KeyError::UnknownPrefix)
        );
        assert_eq!(
            SecretKey::parse("sk_prod_SECRETPART"),
            Err(KeyError::UnknownPrefix)
        );
        assert_eq!(
            SecretKey::parse("SK_TEST_SECRETPART"),
            Err(KeyError::UnknownPrefix)
        );
        assert_eq!(SecretKey::parse("sk_test_"), Err(KeyError::MissingSecret));
        assert_eq!(SecretKey::parse("sk_live_\n"), Err(KeyError::MissingSecret));
        for bad in [
            "sk_test_SECRET PART",
            "sk_test_SECRET\nPART",
            "sk_test_SECRET/PART",
            "sk_test_SECRET+PART=",
            "sk_test_SECRETÉPART",
        ] {
            let err = SecretKey::parse(bad).unwrap_err();
            assert!(
                matches!(err, KeyError::InvalidCharacter { position: 14 }),
                "{bad:?}: {err:?}"
            );
            for shown in [format!("{err}"), format!("{err:?}")] {
                assert!(!shown.contains("SECRET"), "{shown}");
            }
        }
    }

    #[test]
    fn fingerprint_is_stable_distinct_and_not_the_key() {
        let a = SecretKey::parse(KEY).unwrap();
        let b = SecretKey::parse("sk_test_Abc123_-xyzSECRETPARU").unwrap();
        assert_eq!(
            a.fingerprint(),
            SecretKey::parse(KEY).unwrap().fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
        let shown = a.fingerprint().to_string();
        assert_eq!(shown.len(), 16);
        assert!(shown.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!KEY.contains(&shown));
        assert_eq!(shown.parse::<KeyFingerprint>(), Ok(a.fingerprint()));
        assert!("not hex at all!!".parse::<KeyFingerprint>().is_err());
        assert!("abc".parse::<KeyFingerprint>().is_err());
    }

    #[test]
    fn debug_output_redacts_credentials() {
        let key = SecretKey::parse(KEY).unwrap();
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("SECRETPART"), "{shown}");
        assert!(!shown.contains("sk_test_"), "{shown}");
        assert!(shown.contains(&key.fingerprint().to_string()), "{shown}");

        let token = Credential::new("eyJSECRETTOKEN");
        let shown = format!("{token:?} {token:#?}");
        assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert_eq!(token.expose(), "eyJSECRETTOKEN");
    }
}
