//! Who may impersonate whom. The admission policies (generated in `crate::admission`, shipped
//! by the chart) are the first line; this is the second: the same rules, checked by the
//! operator just before every mint, pure where they decide (`gate`), thin where they ask the
//! API server (`access`). Also where a key may be sent (`api_url`), when finished requests go
//! (`cleanup`), and the audit trail (`audit`).

pub mod access;
pub mod api_url;
pub mod audit;
pub mod cleanup;
pub mod gate;
pub mod judge;
pub mod provenance;
pub mod reason;
pub mod selector;
