//! The domain: validated values, the integration record and its state bucket, and the
//! policy documents of the setup guide. Pure data and rules: no I/O.

pub mod access;
pub mod audit;
pub mod bucket;
pub mod health;
pub mod integration;
pub mod policies;
pub mod values;

pub use access::{Caller, CallerKind, Visibility};
pub use audit::{AuditAction, AuditEvent, Change};
pub use bucket::{backend_block, BucketStatus, StateBucket};
pub use health::{Health, HealthStatus, Transition, Verdict};
pub use integration::{
    AuthKind, Credentials, Integration, IntegrationPatch, IntegrationView, KeyDates, LastTest,
    ListPosition, NewCredentials, NewIntegration, Sealed,
};
pub use values::*;
