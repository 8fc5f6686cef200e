//! Hands out clients that share one HTTP connection pool, and one rate limiter per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::info;

use super::client::{ClerkClient, ClientOptions, ConfigError, RetryPolicy, build_http_client};
use super::limit::{KeyLimiter, RateLimit};
use super::observe::CallObserver;
use super::secret::{KeyFingerprint, SecretKey};

/// A source of [`ClerkClient`]s. Clerk counts requests per secret key, so every client of a
/// key (whatever its API URL) goes through that key's single limiter. Cheap to clone.
///
/// The limiter enforces the rate limit of the latest [`ClientPool::client`] call for the
/// key; a change takes effect at once for clients already handed out.
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    http: reqwest::Client,
    retry: RetryPolicy,
    limiters: Mutex<HashMap<KeyFingerprint, Arc<KeyLimiter>>>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool")
            .field("keys", &self.limiters().len())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl ClientPool {
    /// A pool whose clients use `options` (timeouts and retry policy).
    pub fn new(options: ClientOptions) -> Result<ClientPool, ConfigError> {
        Self::build(options, None)
    }

    /// Like [`ClientPool::new`], with every client's calls and rate-limiter waits reported
    /// to `observer`.
    pub fn observed(
        options: ClientOptions,
        observer: Arc<dyn CallObserver>,
    ) -> Result<ClientPool, ConfigError> {
        Self::build(options, Some(observer))
    }

    fn build(
        options: ClientOptions,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<ClientPool, ConfigError> {
        Ok(ClientPool {
            inner: Arc::new(PoolInner {
                http: build_http_client(&options)?,
                retry: options.retry,
                limiters: Mutex::new(HashMap::new()),
                observer,
            }),
        })
    }

    /// A client for `api_url` with `key`, limited to `rate_limit`, or to Clerk's default for
    /// the key's environment when `None`.
    pub fn client(
        &self,
        api_url: &str,
        key: &SecretKey,
        rate_limit: Option<RateLimit>,
    ) -> Result<ClerkClient, ConfigError> {
        let limit = rate_limit.unwrap_or_else(|| RateLimit::clerk_default(key.environment()));
        // Check the limit before touching the shared map.
        limit.quota()?;
        let limiter = {
            let mut limiters = self.limiters();
            match limiters.get(&key.fingerprint()) {
                Some(limiter) => {
                    let previous = limiter.limit();
                    if limiter.set_limit(limit)? {
                        info!(key = %key.fingerprint(), ?previous, current = ?limit, "Clerk rate limit for key changed");
                    }
                    Arc::clone(limiter)
                }
                None => {
                    let limiter = Arc::new(KeyLimiter::new(limit)?);
                    limiters.insert(key.fingerprint(), Arc::clone(&limiter));
                    limiter
                }
            }
        };
        ClerkClient::from_parts(
            self.inner.http.clone(),
            api_url,
            key.clone(),
            limiter,
            self.inner.retry.clone(),
            self.inner.observer.clone(),
        )
    }

    /// The fingerprints of the keys the pool holds a limiter for.
    pub fn keys(&self) -> Vec<KeyFingerprint> {
        self.limiters().keys().copied().collect()
    }

    fn limiters(&self) -> std::sync::MutexGuard<'_, HashMap<KeyFingerprint, Arc<KeyLimiter>>> {
        // Every update leaves the map whole, so a poisoned lock still holds a valid map.
        self.inner
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
