//! actor-token-operator: turns `ActorTokenRequest` objects into Clerk actor tokens, delivered
//! in Secrets, and revokes them on delete and at expiry.
//!
//! Floors, each using only those below it: `runtime` (controller wiring, metrics, health) →
//! `reconcile` (`decide`: pure decisions; `apply`: carries them out) → `api` (CRD types) and
//! `clerk` (Clerk's Backend API client).

pub mod admission;
pub mod api;
pub mod clerk;
pub mod governance;
pub mod metrics;
pub mod reconcile;
pub mod runtime;
