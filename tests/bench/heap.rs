//! Where a cached request's bytes go, measured: the benchmark process counts, per thread,
//! what is allocated and freed (allocation-counter's global allocator: the workspace forbids
//! `unsafe`, and a `GlobalAlloc` of our own needs it), so the heap an object holds can be read
//! as the difference over building it. The operator's own process is measured from the
//! outside (/proc); this tells what one cached request costs, whole and compact.

use actor_token_operator::{api::ActorTokenRequest, reconcile::compact};
use serde::Serialize;

/// Heap held, net, by what was built on this thread. (glibc's malloc adds 8 to 24 bytes of
/// header and rounding to each allocation.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Held {
    /// Bytes asked for.
    pub bytes: i64,
    /// Allocations.
    pub chunks: i64,
}

/// Runs `f` and returns what it built and the heap that is still held afterwards (by its
/// result, or anything else it left allocated).
pub fn held_by<T>(f: impl FnOnce() -> T) -> (T, Held) {
    let mut value = None;
    let info = allocation_counter::measure(|| value = Some(f()));
    (
        value.expect("the closure ran"),
        Held {
            bytes: info.bytes_current,
            chunks: info.count_current,
        },
    )
}

/// One cached request's heap, as the watch decodes it and as the operator's cache keeps it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CachedRequest {
    /// As decoded, managedFields and all.
    pub decoded: Held,
    /// managedFields emptied but their Vec kept (what the cache held before issue 14).
    pub managed_fields_emptied: Held,
    /// What the cache keeps now (`compact::for_cache`): whole without managedFields, or
    /// compact when at rest.
    pub cached: Held,
    /// Whether the request was at rest, i.e. compacted.
    pub at_rest: bool,
}

/// Measures one request given as the API server's JSON.
pub fn cached_request(json: &str) -> CachedRequest {
    let decode =
        || -> ActorTokenRequest { serde_json::from_str(json).expect("an ActorTokenRequest") };
    let (_, decoded) = held_by(decode);
    let (_, managed_fields_emptied) = held_by(|| {
        let mut request = decode();
        if let Some(fields) = request.metadata.managed_fields.as_mut() {
            fields.clear();
        }
        request
    });
    let (kept, cached) = held_by(|| {
        let mut request = decode();
        compact::for_cache(&mut request);
        request
    });
    CachedRequest {
        decoded,
        managed_fields_emptied,
        cached,
        at_rest: compact::is_compact(&kept),
    }
}
