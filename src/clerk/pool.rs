//! Hands out clients that share one HTTP connection pool, a rate limiter per instance, and
//! one per secret key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::info;

use super::client::ClerkClient;
use super::config::{ClientOptions, ConfigError, RetryPolicy, build_http_client};
use super::limit::{Limiter, RateLimit};
use super::observe::CallObserver;
use super::retry::Engine;
use super::secret::{KeyFingerprint, SecretKey};

/// A source of [`ClerkClient`]s. Cheap to clone.
///
/// Every call takes a cell from two limiters:
/// - its **instance's**, at the instance's own `rateLimit` (default: Clerk's limit for the
///   key's environment). Only that instance's calls count against it, and only that
///   instance's settings change it: two instances sharing a key can't loosen or tighten each
///   other's limit.
/// - its **key's**, at Clerk's published limit for the key's environment (100 per 10 s for
///   `sk_test_`, 1000 per 10 s for `sk_live_`), shared by every instance using the key,
///   because that is what Clerk counts. Whichever of the two is lower holds.
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    http: reqwest::Client,
    retry: RetryPolicy,
    max_rate_limit_wait: Duration,
    keys: Mutex<HashMap<KeyFingerprint, Arc<Limiter>>>,
    instances: Mutex<HashMap<String, Arc<Limiter>>>,
    draining: Arc<AtomicBool>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool")
            .field("keys", &lock(&self.inner.keys).len())
            .field("instances", &lock(&self.inner.instances).len())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl ClientPool {
    /// A pool whose clients use `options` (timeouts, retry policy, limiter wait bound).
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
                max_rate_limit_wait: options.max_rate_limit_wait,
                keys: Mutex::default(),
                instances: Mutex::default(),
                draining: Arc::default(),
                observer,
            }),
        })
    }

    /// A client for the instance named `instance` (any stable name, e.g. `ClerkInstance
    /// ns/name`), at `api_url` with `key`, limited to `rate_limit`, or to Clerk's default
    /// for the key's environment when `None`.
    pub fn client(
        &self,
        instance: &str,
        api_url: &str,
        key: &SecretKey,
        rate_limit: Option<RateLimit>,
    ) -> Result<ClerkClient, ConfigError> {
        let clerk_limit = RateLimit::clerk_default(key.environment());
        let limit = rate_limit.unwrap_or(clerk_limit);
        // Check the limit before touching the shared maps.
        limit.quota()?;
        let instance_limiter = {
            let mut instances = lock(&self.inner.instances);
            match instances.get(instance) {
                Some(limiter) if limiter.limit() == limit => Arc::clone(limiter),
                previous => {
                    if let Some(previous) = previous {
                        info!(instance, previous = %previous.limit(), current = %limit, "instance rate limit changed");
                    }
                    let limiter = Arc::new(Limiter::new(limit)?);
                    instances.insert(instance.to_owned(), Arc::clone(&limiter));
                    limiter
                }
            }
        };
        let key_limiter = {
            let mut keys = lock(&self.inner.keys);
            match keys.get(&key.fingerprint()) {
                Some(limiter) => Arc::clone(limiter),
                None => {
                    let limiter = Arc::new(Limiter::new(clerk_limit)?);
                    keys.insert(key.fingerprint(), Arc::clone(&limiter));
                    limiter
                }
            }
        };
        let engine = Engine {
            instance_limiter,
            key_limiter,
            retry: self.inner.retry.clone(),
            max_rate_limit_wait: self.inner.max_rate_limit_wait,
            draining: Arc::clone(&self.inner.draining),
            observer: self.inner.observer.clone(),
        };
        ClerkClient::from_parts(self.inner.http.clone(), api_url, key.clone(), engine)
    }

    /// From now on, no client of this pool waits for a limiter or retries: the process is
    /// shutting down, and in-flight work must end within its grace period.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// The fingerprints of the keys the pool holds a limiter for.
    pub fn keys(&self) -> Vec<KeyFingerprint> {
        lock(&self.inner.keys).keys().copied().collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the map whole, so a poisoned lock still holds a valid map.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
