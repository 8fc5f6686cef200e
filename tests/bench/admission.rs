//! The chart's admission policies in the benchmark. The test bed installs them with the CRDs
//! (tests/support/admission.rs: rendered by `helm template` from the chart, bound to every
//! namespace not labelled `actortokens.dev/admission-policies: off`). The benchmark labels
//! its namespaces so, all but those of the runs that measure the policies: everywhere else a
//! request is as in a cluster without them, and the operator adds the finalizer itself.

use std::{future::Future, time::Duration};

pub use crate::support::admission::POLICIES_OFF_LABEL;

/// The labels of a benchmark namespace, with the admission policies in force there or not.
pub fn namespace_labels(policies: bool) -> serde_json::Value {
    if policies {
        serde_json::json!({})
    } else {
        serde_json::json!({ POLICIES_OFF_LABEL: "off" })
    }
}

/// Waits until `acts` says the policies act on a new request (e.g. a dry-run create comes back
/// with the finalizer; the API server loads a policy a moment after it is stored), at most
/// 30 s. Returns whether they did: a policy that never does is reported, not fatal.
pub async fn wait_in_force<F, Fut>(acts: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if acts().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            println!("   the admission policies put no finalizer on a new request within 30 s");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
