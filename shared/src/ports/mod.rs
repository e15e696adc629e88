//! The small traits the use cases need from the outside world. AWS adapters in
//! `crate::aws` implement them; tests may substitute their own.

use crate::domain::Visibility;
use crate::domain::{AccountId, BucketName, IntegrationId, ListPosition, Region, Timestamp};
use crate::domain::{AuditEvent, BucketStatus, Health, Integration, KeyDates, LastTest};
use crate::domain::{Sealed, StateBucket};
use crate::error::Result;
use async_trait::async_trait;
use secrecy::SecretString;

mod aws_failure;
pub use aws_failure::{AwsFailure, FailureKind, NoAnswer, THROTTLED};
mod key_facts;
pub use key_facts::{AccessKeyInspector, ActionOn, Denial, KeyLastUse};

/// Binds a ciphertext to the integration it belongs to (KMS encryption context), so a
/// ciphertext copied onto another record cannot be decrypted there.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    pub integration_id: &'a IntegrationId,
    pub aws_account_id: &'a AccountId,
}

#[async_trait]
pub trait SecretSealer: Send + Sync {
    async fn seal(&self, secret: &SecretString, ctx: SealContext<'_>) -> Result<Sealed>;
    async fn open(&self, sealed: &Sealed, ctx: SealContext<'_>) -> Result<SecretString>;
}

/// Derives the service's own keys (page tokens, idempotency fingerprints) from a key
/// that never leaves the platform's key service: the same label gives the same 32
/// bytes in every process, so no key is stored and every instance agrees.
#[async_trait]
pub trait KeyDeriver: Send + Sync {
    async fn derive(&self, label: &str) -> Result<secrecy::SecretBox<[u8; 32]>>;
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

/// A create made under an `Idempotency-Key`: the key (scoped to the caller), a keyed
/// fingerprint of the request, and the response to replay for a retry of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// HMAC of the request under the service's fingerprint key (`h1:<hex>`): stored.
    pub fingerprint: String,
    /// The unkeyed SHA-256 that keys stored before fingerprints were keyed hold, so a
    /// retry of such a create still replays (they expire within a day). Compared,
    /// never written.
    pub legacy_fingerprint: Option<String>,
    pub response: String,
}

impl Idempotency {
    /// Whether a stored fingerprint is this request's.
    pub fn matches(&self, stored: &str) -> bool {
        stored == self.fingerprint || self.legacy_fingerprint.as_deref() == Some(stored)
    }
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// Another integration holds the name (case-insensitively).
    NameTaken,
    /// The id exists already (a ULID collision: never in practice).
    IdTaken,
    /// The idempotency key was used before for the same request: its stored response.
    Replay {
        response: String,
    },
    /// The idempotency key was used before for another request.
    KeyReused,
}

/// A caller's listing, as the API takes it: the token is opaque and checked by the
/// use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub label: Option<String>,
    pub limit: usize,
    pub next_token: Option<String>,
    pub filter: RecordFilter,
}

/// What a listing keeps of the records it reads (of the caller's own, already): their
/// health, or keys older than some days. Unknown (never checked, key age never read)
/// matches neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    pub health: Option<crate::domain::HealthStatus>,
    pub key_older_than_days: Option<u32>,
}

impl RecordFilter {
    pub fn is_empty(&self) -> bool {
        self.health.is_none() && self.key_older_than_days.is_none()
    }

    /// Does `i` match, `now` being the listing's time?
    pub fn admits(&self, i: &Integration, now: &Timestamp) -> bool {
        let health = self
            .health
            .is_none_or(|h| i.health.as_ref().is_some_and(|x| x.status == h));
        let old = self.key_older_than_days.is_none_or(|days| {
            let cutoff = now.instant() - time::Duration::days(i64::from(days));
            i.key_created_at
                .as_ref()
                .is_some_and(|c| c.instant() < cutoff)
        });
        health && old
    }
}

/// A listing as the store runs it: what the caller may see (the store reads only that
/// part of the table), sorted by [`ListPosition`], after a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewQuery {
    pub visible_to: Visibility,
    pub label: Option<String>,
    pub limit: usize,
    pub after: Option<ListPosition>,
    /// Kept after the records are read (see [`RecordFilter`]), with the listing's time.
    pub filter: RecordFilter,
    pub now: Timestamp,
}

/// At most `limit` items; `more` when at least one more match exists after them.
#[derive(Debug, Clone)]
pub struct ViewPage {
    pub items: Vec<Integration>,
    /// Where the next page starts (the last item the page considered), when `more`.
    pub last: Option<ListPosition>,
    pub more: bool,
    /// Index entries the store read for the page (DynamoDB's `ScannedCount`): for the
    /// benchmark and the tests, never shown to callers.
    pub entries_read: usize,
}

/// A page of an integration's audit trail, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: usize,
    /// Opaque, from the previous page; validated by the store.
    pub next_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub events: Vec<AuditEvent>,
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
    /// Also allowed: the bucket has had this status since before this (fixed-width)
    /// timestamp, e.g. a `provisioning` run that crashed or a `pending` whose event was lost.
    pub unchanged_since_before: Option<(BucketStatus, &'a Timestamp)>,
    /// Required besides: the record is still as this copy of it shows it (the same
    /// `revision`, and the same bucket `attempts` and `status_changed_at`), so a write
    /// decided on a copy that did not come from a fresh read (a stream image) never
    /// lands on a record that changed since.
    pub seen: Option<&'a Integration>,
}

#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// Writes a new record, claims its name and records `audit`, atomically, and with an
    /// idempotency key records it in the same transaction (or reports its earlier use).
    /// Every write below writes its audit event in the same transaction as the change:
    /// no change without its event, no event for a change that did not happen.
    async fn create(
        &self,
        integration: &Integration,
        idempotency: Option<&Idempotency>,
        audit: &AuditEvent,
    ) -> Result<CreateOutcome>;
    async fn get(&self, id: &str) -> Result<Option<Integration>>;
    /// Replaces the caller-owned fields of `old` with those of `new` if `old.revision`
    /// is still current, moving the name claim when the name changed.
    async fn update(
        &self,
        new: &Integration,
        old: &Integration,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome>;
    /// Removes the record and its name claim together, if `old.revision` is current.
    async fn delete(&self, old: &Integration, audit: &AuditEvent) -> Result<WriteOutcome>;
    /// Records a test result, and the access key's dates when the test read them,
    /// without touching anything else.
    async fn record_test(
        &self,
        id: &str,
        test: &LastTest,
        key: Option<&KeyDates>,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome>;
    /// Sets the state bucket (and `create_state_bucket = true`) if the guard holds:
    /// no bucket yet and `allow_absent`, or its status is one of `from`, or it has had
    /// the guard's status since before its time. `Stale` otherwise.
    async fn set_bucket(
        &self,
        id: &str,
        bucket: &StateBucket,
        guard: BucketGuard<'_>,
        audit: Option<&AuditEvent>,
    ) -> Result<WriteOutcome>;
    /// The integration's audit events, newest first (kept for the configured time,
    /// also after the integration is deleted).
    async fn history(&self, id: &str, query: &HistoryQuery) -> Result<HistoryPage>;
    /// Ids of integrations whose bucket has had `status` (`pending` or `provisioning`)
    /// since before `changed_before`, oldest first, at most `limit`: the sweeper's work.
    async fn buckets_due(
        &self,
        status: BucketStatus,
        changed_before: &Timestamp,
        limit: usize,
    ) -> Result<Vec<String>>;
}

/// What one health check writes to a record.
#[derive(Debug, Clone, Copy)]
pub struct HealthUpdate<'a> {
    /// The verdict; `None` when the check reached none (AWS could not be reached): only
    /// the record's place in the queue moves.
    pub health: Option<&'a Health>,
    /// The test the check ran, when its outcome says something about the setup.
    pub last_test: Option<&'a LastTest>,
    /// A ready bucket the check found deleted or taken over (now `failed`, with why).
    pub bucket: Option<&'a StateBucket>,
    /// The access key's dates, when the test could read them.
    pub key: Option<&'a KeyDates>,
    /// When this run took the record up: its new place in the queue.
    pub taken_at: &'a Timestamp,
    /// The place it was taken from ([`HealthDue::queued_at`]): the write holds only
    /// while it is still there, so two overlapping runs never both record a check.
    pub seen: &'a str,
}

/// An integration due for a health check, and its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HealthDue {
    /// When it was last taken up (a fixed-width timestamp; the earliest for never).
    pub queued_at: String,
    pub id: String,
}

/// The health check's queue, apart from [`IntegrationStore`]: only the health-check
/// function links it.
#[async_trait]
pub trait HealthQueue: Send + Sync {
    /// Integrations last taken up before `before` (never-checked first), least recently
    /// checked first, at most `limit`.
    async fn health_due(&self, before: &Timestamp, limit: usize) -> Result<Vec<HealthDue>>;
    /// Records a check (see [`HealthUpdate`]) with its audit events, in one write.
    async fn record_health(
        &self,
        id: &str,
        update: HealthUpdate<'_>,
        audit: &[AuditEvent],
    ) -> Result<WriteOutcome>;
}

/// Listing, apart from [`IntegrationStore`]: only the functions that list link it (the
/// visibility index's queries and the batch read of records).
#[async_trait]
pub trait IntegrationListing: Send + Sync {
    /// The integrations `query.visible_to` admits, sorted by [`ListPosition`], reading
    /// only the caller's own part of the table.
    async fn list(&self, query: &ViewQuery) -> Result<ViewPage>;
}

/// Credentials of a user's AWS principal (long-term keys, or a role's temporary ones).
/// Debug shows only the masked key id.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field(
                "access_key_id",
                &crate::domain::mask_key_id(&self.access_key_id),
            )
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub arn: String,
    pub account: String,
}

#[derive(Debug, Clone)]
pub struct AssumeRole<'a> {
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub duration_seconds: u32,
    pub external_id: Option<&'a str>,
}

impl AssumeRole<'_> {
    /// A fresh session name, `infrakitchen-<ulid>`: how the platform's sessions appear in
    /// the user's CloudTrail.
    pub fn session_name() -> String {
        format!(
            "infrakitchen-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        )
    }
}

/// STS with a user's credentials.
#[async_trait]
pub trait AwsIdentity: Send + Sync {
    async fn caller_identity(
        &self,
        creds: &AwsCredentials,
        region: &Region,
    ) -> std::result::Result<CallerIdentity, AwsFailure>;
    async fn assume_role(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        req: &AssumeRole<'_>,
    ) -> std::result::Result<AwsCredentials, AwsFailure>;
}

/// The credentials the platform itself acts with in role delegation, and the ARN a
/// user's trust policy must name for them.
#[derive(Debug, Clone)]
pub struct PlatformSession {
    pub credentials: AwsCredentials,
    /// The principal a delegated role's trust policy names (a role or user ARN, never a
    /// session's `assumed-role` ARN).
    pub principal_arn: String,
}

/// The platform's own principal: a dedicated role in the operator's account (assumed with
/// a session policy that allows only `sts:AssumeRole` into users' roles), or the
/// function's own credentials where no such role is configured (a local stack).
#[async_trait]
pub trait PlatformPrincipal: Send + Sync {
    async fn session(&self) -> std::result::Result<PlatformSession, AwsFailure>;
}

/// What an S3 HeadBucket said about a bucket name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadBucket {
    /// Exists and these credentials may list it.
    Accessible {
        region: Option<String>,
    },
    NotFound,
    /// Exists (or cannot be told apart): 403.
    Forbidden,
}

/// S3 with a user's credentials.
#[async_trait]
pub trait BucketAccess: Send + Sync {
    async fn head_bucket(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
    ) -> std::result::Result<HeadBucket, AwsFailure>;
    /// Names of the caller's own buckets that start with `prefix`.
    async fn own_buckets(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        prefix: &str,
    ) -> std::result::Result<Vec<String>, AwsFailure>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateBucket {
    Created,
    /// Already exists in the caller's account (200 in us-east-1, or BucketAlreadyOwnedByYou).
    AlreadyOwned,
    /// The name belongs to another account.
    Taken,
}

/// The hardened state of a Terraform state bucket, applied on every run so reruns converge.
#[derive(Debug, Clone)]
pub struct Hardening {
    /// Every setting is sent with this `ExpectedBucketOwner`: AWS refuses it on a bucket
    /// another account owns, so hardening may run before the owner check answers.
    pub expected_owner: AccountId,
    pub partition: crate::domain::Partition,
    pub noncurrent_days: u32,
    /// SSE-KMS (with a bucket key) under this key; SSE-S3 when `None`.
    pub kms_key_arn: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// S3 bucket administration with a user's credentials.
#[async_trait]
pub trait BucketAdmin: Send + Sync {
    async fn create_bucket(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
    ) -> std::result::Result<CreateBucket, AwsFailure>;
    /// HeadBucket with `ExpectedBucketOwner`: does `account` own it?
    async fn owned_by(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        account: &AccountId,
    ) -> std::result::Result<bool, AwsFailure>;
    /// Applies every setting (concurrently), each only if `spec.expected_owner` owns the
    /// bucket; returns the ones that failed, by S3 operation.
    async fn harden(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
    ) -> Vec<(&'static str, AwsFailure)>;
}

/// One hardening setting of a state bucket, as the health check compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setting {
    Versioning,
    Encryption,
    PublicAccessBlock,
    OwnershipControls,
    TlsOnlyPolicy,
    Lifecycle,
}

impl Setting {
    pub const ALL: [Setting; 6] = [
        Setting::Versioning,
        Setting::Encryption,
        Setting::PublicAccessBlock,
        Setting::OwnershipControls,
        Setting::TlsOnlyPolicy,
        Setting::Lifecycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Versioning => "versioning",
            Setting::Encryption => "default encryption",
            Setting::PublicAccessBlock => "public access block",
            Setting::OwnershipControls => "ownership controls",
            Setting::TlsOnlyPolicy => "TLS-only bucket policy",
            Setting::Lifecycle => "lifecycle rule",
        }
    }
}

/// What the health check found of a ready state bucket.
#[derive(Debug, Clone)]
pub enum BucketCheck {
    /// S3 says it does not exist (deleted outside the platform).
    Missing,
    /// The account does not own it (or may not even see it): never re-created or changed.
    NotOwned,
    /// It is there and the account's: the settings that drifted, and those that could
    /// not be read (with why).
    Present {
        drifted: Vec<Setting>,
        unreadable: Vec<(Setting, AwsFailure)>,
    },
}

/// Reading a state bucket's hardening and re-applying what drifted, with a user's
/// credentials; apart from [`BucketAdmin`], so only the health check links it.
#[async_trait]
pub trait BucketInspector: Send + Sync {
    /// Every setting read at once, each with `spec.expected_owner` as the expected owner.
    async fn inspect(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
    ) -> std::result::Result<BucketCheck, AwsFailure>;
    /// Re-applies `settings` (keeping the bucket's other policy statements and lifecycle
    /// rules); returns the ones that failed.
    async fn repair(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
        settings: &[Setting],
    ) -> Vec<(Setting, AwsFailure)>;
}
