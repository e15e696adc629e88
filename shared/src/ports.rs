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
                &crate::model::mask_key_id(&self.access_key_id),
            )
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// A failed call into a user's account, classified for people: the AWS error code (from
/// the SDK, or read from the raw response when the SDK could not), the HTTP status, and
/// AWS's own message. None of it carries credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsFailure {
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: Option<String>,
    pub timed_out: bool,
}

impl AwsFailure {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn timed_out() -> Self {
        AwsFailure {
            timed_out: true,
            ..Default::default()
        }
    }

    /// `SignatureDoesNotMatch (HTTP 403): <AWS message>` or `timed out`.
    pub fn describe(&self) -> String {
        if self.timed_out {
            return "timed out: no answer from AWS in time".into();
        }
        let mut s = self.code.clone().unwrap_or_else(|| "error".into());
        if let Some(st) = self.status {
            s.push_str(&format!(" (HTTP {st})"));
        }
        if let Some(m) = &self.message {
            s.push_str(": ");
            s.push_str(m);
        }
        s
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

/// STS with a user's credentials.
#[async_trait]
pub trait AwsIdentity: Send + Sync {
    async fn caller_identity(
        &self,
        creds: &AwsCredentials,
        region: &str,
    ) -> std::result::Result<CallerIdentity, AwsFailure>;
    async fn assume_role(
        &self,
        creds: &AwsCredentials,
        region: &str,
        req: &AssumeRole<'_>,
    ) -> std::result::Result<AwsCredentials, AwsFailure>;
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
        region: &str,
        bucket: &str,
    ) -> std::result::Result<HeadBucket, AwsFailure>;
    /// Names of the caller's own buckets that start with `prefix`.
    async fn own_buckets(
        &self,
        creds: &AwsCredentials,
        region: &str,
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
    pub partition: crate::model::Partition,
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
        region: &str,
        bucket: &str,
    ) -> std::result::Result<CreateBucket, AwsFailure>;
    /// HeadBucket with `ExpectedBucketOwner`: does `account` own it?
    async fn owned_by(
        &self,
        creds: &AwsCredentials,
        region: &str,
        bucket: &str,
        account: &str,
    ) -> std::result::Result<bool, AwsFailure>;
    /// Applies every setting (concurrently); returns the ones that failed, by S3 operation.
    async fn harden(
        &self,
        creds: &AwsCredentials,
        region: &str,
        bucket: &str,
        spec: &Hardening,
    ) -> Vec<(&'static str, AwsFailure)>;
}
