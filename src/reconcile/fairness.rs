//! Fair shares of the reconcile slots (`--concurrency`) between namespaces, so that no
//! namespace can hold up another's requests, and their revocations above all.
//!
//! Nothing in a reconcile waits long (rate limiters give back a time to return at; Clerk
//! calls are bounded), but a reconcile still holds its slot for as long as a Clerk call takes,
//! and a slow or unreachable Clerk of one tenant could otherwise fill every slot. So:
//! - A namespace may run at most `ceil((concurrency - reserve) / busy)` reconciles at once,
//!   where `busy` counts the namespaces with reconciles running (itself included), and
//!   `reserve` (an eighth of the slots, at least one) is kept free for a namespace that has
//!   none running. A namespace alone may use all but the reserve; several share it evenly.
//! - Within its share, a namespace keeps one slot for revocations (requests being deleted,
//!   tokens set aside, issued tokens to expire or revoke): issuing never takes the last one.
//! - A reconcile past its share returns at once and comes back in about a second, having
//!   done nothing; it costs no API call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// The kind of work a reconcile is likely to do, as far as the cached request tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Minting: the request is pending.
    Issue,
    /// Revoking or expiring: the request is being deleted, has tokens set aside, or is issued.
    Revoke,
}

/// How many reconciles of one namespace may run at once, for `work`, when `busy` namespaces
/// (the one asking included) have reconciles running.
pub fn share(concurrency: usize, busy: usize, work: Work) -> usize {
    let reserve = (concurrency / 8).max(1);
    let shared = concurrency.saturating_sub(reserve);
    let busy = busy.max(1);
    let share = shared.div_ceil(busy).max(1);
    match work {
        Work::Revoke => share,
        Work::Issue if share >= 2 => share - 1,
        Work::Issue => share,
    }
}

/// The reconciles running, by namespace.
pub struct FairShare {
    concurrency: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// A slot held by one reconcile of a namespace; given back when dropped.
pub struct Slot {
    owner: Arc<FairShare>,
    namespace: String,
}

impl FairShare {
    pub fn new(concurrency: usize) -> Arc<FairShare> {
        Arc::new(FairShare {
            concurrency: concurrency.max(1),
            running: Mutex::default(),
        })
    }

    /// A slot for a reconcile of `namespace`, or `None` when the namespace has its share.
    pub fn enter(self: &Arc<Self>, namespace: &str, work: Work) -> Option<Slot> {
        let mut running = self.lock();
        let mine = running.get(namespace).copied().unwrap_or(0);
        let busy = running.len() + usize::from(mine == 0);
        if mine >= share(self.concurrency, busy, work) {
            return None;
        }
        *running.entry(namespace.to_owned()).or_insert(0) += 1;
        Some(Slot {
            owner: Arc::clone(self),
            namespace: namespace.to_owned(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Every update leaves the map whole.
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.owner.lock();
        if let Some(n) = running.get_mut(&self.namespace) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.namespace);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_alone_uses_all_but_the_reserve() {
        assert_eq!(share(16, 1, Work::Revoke), 14);
        assert_eq!(share(16, 1, Work::Issue), 13);
        assert_eq!(share(4, 1, Work::Revoke), 3);
    }

    #[test]
    fn busy_namespaces_share_evenly_and_leave_the_reserve() {
        assert_eq!(share(16, 2, Work::Revoke), 7);
        assert_eq!(share(16, 2, Work::Issue), 6);
        assert_eq!(share(16, 7, Work::Revoke), 2);
        // Many namespaces: each gets at least one.
        assert_eq!(share(16, 100, Work::Revoke), 1);
        assert_eq!(share(16, 100, Work::Issue), 1);
        // One slot in all: no reserve to keep, one at a time.
        assert_eq!(share(1, 1, Work::Issue), 1);
    }

    #[test]
    fn a_hog_leaves_slots_for_a_newcomer_and_for_its_own_revocations() {
        let fair = FairShare::new(16);
        let mut hog = Vec::new();
        while let Some(slot) = fair.enter("hog", Work::Issue) {
            hog.push(slot);
        }
        assert_eq!(hog.len(), 13, "issuing leaves one for revoking");
        let revoking = fair
            .enter("hog", Work::Revoke)
            .expect("its revocations go on");
        assert!(
            fair.enter("hog", Work::Revoke).is_none(),
            "its share is full"
        );
        // A newcomer gets in, though the hog holds more than its new share.
        let newcomer = fair
            .enter("newcomer", Work::Issue)
            .expect("a newcomer gets a slot");
        // Now two share: the hog gets nothing more until it is under 7.
        drop(hog.pop());
        assert!(fair.enter("hog", Work::Revoke).is_none());
        while hog.len() > 5 {
            hog.pop();
        }
        assert!(fair.enter("hog", Work::Revoke).is_some());
        drop((revoking, newcomer));
    }

    #[test]
    fn slots_are_given_back() {
        let fair = FairShare::new(2);
        let slot = fair.enter("a", Work::Revoke).unwrap();
        assert!(fair.enter("a", Work::Revoke).is_none());
        drop(slot);
        assert!(fair.enter("a", Work::Revoke).is_some());
        assert!(fair.lock().is_empty(), "no namespace is left counted");
    }
}
