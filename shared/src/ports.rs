//! The small traits the use cases need from the outside world. AWS adapters in
//! `crate::aws` implement them; tests may substitute their own.

use crate::error::Result;
use crate::model::{BucketStatus, Integration, LastTest, Sealed, StateBucket};
use async_trait::async_trait;
use secrecy::SecretString;

/// Binds a ciphertext to the integration it belongs to (KMS encryption context), so a
/// ciphertext copied onto another record cannot be decrypted there.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub integration_id: &'a str,
    pub aws_account_id: &'a str,
}

#[async_trait]
pub trait SecretSealer: Send + Sync {
    async fn seal(&self, secret: &SecretString, ctx: SealContext<'_>) -> Result<Sealed>;
    async fn open(&self, sealed: &Sealed, ctx: SealContext<'_>) -> Result<SecretString>;
}

/// Outcome of a conditional write the store could not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The record changed (or vanished) since it was read.
    Stale,
    /// Another integration holds the name (case-insensitively).
    NameTaken,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub label: Option<String>,
    pub limit: usize,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Integration>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct BucketGuard<'a> {
    pub allow_absent: bool,
    pub from: &'a [BucketStatus],
    pub stale_before: Option<&'a str>,
}

#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// Writes a new record and claims its name atomically.
    async fn create(&self, integration: &Integration) -> Result<WriteOutcome>;
    async fn get(&self, id: &str) -> Result<Option<Integration>>;
    /// Replaces the caller-owned fields of `old` with those of `new` if `old.revision`
    /// is still current, moving the name claim when the name changed.
    async fn update(&self, new: &Integration, old: &Integration) -> Result<WriteOutcome>;
    /// Removes the record and its name claim together, if `old.revision` is current.
    async fn delete(&self, old: &Integration) -> Result<WriteOutcome>;
    /// Sorted by name; the token is opaque to callers and validated here.
    async fn list(&self, query: &ListQuery) -> Result<Page>;
    /// Records a test result without touching anything else.
    async fn record_test(&self, id: &str, test: &LastTest) -> Result<WriteOutcome>;
    /// Sets the state bucket (and `create_state_bucket = true`) if the guard holds:
    /// no bucket yet and `allow_absent`, or its status is one of `from`, or it has been
    /// `provisioning` since before `stale_before` (a crashed run). `Stale` otherwise.
    async fn set_bucket(
        &self,
        id: &str,
        bucket: &StateBucket,
        guard: BucketGuard<'_>,
    ) -> Result<WriteOutcome>;
}
