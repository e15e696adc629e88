//! The small traits the use cases need from the outside world. AWS adapters in
//! `crate::aws` implement them; tests may substitute their own.

use crate::app::error::Result;
use crate::domain::{BucketStatus, Integration, LastTest, Sealed, StateBucket};
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

/// A create made under an `Idempotency-Key`: the key (scoped to the caller), a
/// fingerprint of the request, and the response to replay for a retry of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
    pub response: String,
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
    /// Also allowed: the bucket has had this status since before this (fixed-width)
    /// timestamp, e.g. a `provisioning` run that crashed or a `pending` whose event was lost.
    pub unchanged_since_before: Option<(BucketStatus, &'a str)>,
}

#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// Writes a new record and claims its name atomically, and with an idempotency key
    /// records it in the same transaction (or reports its earlier use).
    async fn create(
        &self,
        integration: &Integration,
        idempotency: Option<&Idempotency>,
    ) -> Result<CreateOutcome>;
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
    /// no bucket yet and `allow_absent`, or its status is one of `from`, or it has had
    /// the guard's status since before its time. `Stale` otherwise.
    async fn set_bucket(
        &self,
        id: &str,
        bucket: &StateBucket,
        guard: BucketGuard<'_>,
    ) -> Result<WriteOutcome>;
    /// Ids of integrations whose bucket has had `status` (`pending` or `provisioning`)
    /// since before `changed_before`, oldest first, at most `limit`: the sweeper's work.
    async fn buckets_due(
        &self,
        status: BucketStatus,
        changed_before: &str,
        limit: usize,
    ) -> Result<Vec<String>>;
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

/// A failed call into a user's account: the AWS error code (from the SDK, or read from
/// the raw response when the SDK could not), the HTTP status, AWS's own message, and
/// whether the call got no answer at all. None of it carries credentials. What it means
/// for people (denied, bad keys, outage, ...) is decided once, by [`AwsFailure::kind`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsFailure {
    /// AWS's error code, when AWS answered with one.
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: Option<String>,
    /// Set when AWS never answered: the connection failed or the call ran out of time.
    pub no_answer: Option<NoAnswer>,
    /// The endpoint called, when it is not the service's default one (a local AWS).
    pub endpoint: Option<String>,
}

/// Why a call got no answer from AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// Connection refused or reset, DNS lookup failed, TLS failed: AWS was not reached.
    ConnectFailed,
    /// Connected (or still connecting) but no answer in time.
    TimedOut,
}

/// What a failure means, for the decision "whose problem is it?". Computed in one place
/// ([`AwsFailure::kind`]); Test Connection and provisioning both act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// AWS understood who is calling and refused: a missing permission (403, AccessDenied).
    Denied,
    /// AWS does not accept the credentials: unknown or inactive key, wrong secret, expired.
    InvalidCredentials,
    /// The endpoint could not be reached (connection refused or reset, DNS, TLS).
    Unreachable,
    /// No answer in time.
    TimedOut,
    /// AWS answered "too many requests".
    Throttled,
    /// AWS answered with its own failure (HTTP 5xx, InternalFailure, ServiceUnavailable).
    ServerError,
    /// Anything else: a real answer about this request (bad parameter, missing entity, ...).
    Other,
}

impl FailureKind {
    /// AWS could not be asked, or could not answer: this says nothing about the caller's
    /// credentials or permissions, and a retry later may succeed.
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable
                | FailureKind::TimedOut
                | FailureKind::Throttled
                | FailureKind::ServerError
        )
    }
}

/// Codes of a refused permission (IAM, S3, service-specific spellings).
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AuthorizationError",
    "Forbidden",
    "AllAccessDisabled",
];

/// Codes of credentials AWS does not accept.
const INVALID_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "AuthFailure",
];

/// Every AWS error code that means "slow down" (users' STS/S3 and our DynamoDB/KMS).
pub const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
];

const SERVER_ERROR: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceFailure",
    "Unavailable",
];

/// Codes AWS sends when the request itself took too long to arrive.
const TIMED_OUT: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

impl AwsFailure {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// No answer within `what` (e.g. "4 s").
    pub fn timed_out(what: impl Into<String>) -> Self {
        AwsFailure {
            message: Some(what.into()),
            no_answer: Some(NoAnswer::TimedOut),
            ..Default::default()
        }
    }

    /// AWS was not reached; `what` says how (e.g. "connection refused").
    pub fn unreachable(what: impl Into<String>) -> Self {
        AwsFailure {
            message: Some(what.into()),
            no_answer: Some(NoAnswer::ConnectFailed),
            ..Default::default()
        }
    }

    /// The one classification of AWS failures. A code decides first (a 403 with
    /// `SignatureDoesNotMatch` is bad keys, not a missing permission), then the status.
    pub fn kind(&self) -> FailureKind {
        match self.no_answer {
            Some(NoAnswer::ConnectFailed) => return FailureKind::Unreachable,
            Some(NoAnswer::TimedOut) => return FailureKind::TimedOut,
            None => {}
        }
        if let Some(code) = self.code.as_deref() {
            for (codes, kind) in [
                (INVALID_CREDENTIALS, FailureKind::InvalidCredentials),
                (DENIED, FailureKind::Denied),
                (THROTTLED, FailureKind::Throttled),
                (SERVER_ERROR, FailureKind::ServerError),
                (TIMED_OUT, FailureKind::TimedOut),
            ] {
                if codes.contains(&code) {
                    return kind;
                }
            }
        }
        match self.status {
            Some(401) => FailureKind::InvalidCredentials,
            Some(403) => FailureKind::Denied,
            Some(429) => FailureKind::Throttled,
            Some(500..=599) => FailureKind::ServerError,
            _ => FailureKind::Other,
        }
    }

    /// `SignatureDoesNotMatch (HTTP 403): <AWS message>`, `timed out: no answer within
    /// 4 s` or `could not connect: connection refused`.
    pub fn describe(&self) -> String {
        let what = self.message.as_deref();
        match self.no_answer {
            Some(NoAnswer::TimedOut) => {
                return format!(
                    "timed out: {}",
                    what.unwrap_or("no answer from AWS in time")
                )
            }
            Some(NoAnswer::ConnectFailed) => {
                return format!(
                    "could not connect: {}",
                    what.unwrap_or("AWS was not reached")
                )
            }
            None => {}
        }
        let mut s = match (&self.code, self.status) {
            (Some(c), Some(st)) => format!("{c} (HTTP {st})"),
            (Some(c), None) => c.clone(),
            (None, Some(st)) => format!("HTTP {st}"),
            (None, None) => "error".into(),
        };
        if let Some(m) = what {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: Option<&str>, status: u16) -> AwsFailure {
        AwsFailure {
            code: code.map(str::to_owned),
            status: Some(status),
            ..Default::default()
        }
    }

    #[test]
    fn one_classification_of_aws_failures() {
        use FailureKind::*;
        let cases = [
            (Some("AccessDenied"), 403, Denied),
            (Some("AccessDeniedException"), 400, Denied),
            (None, 403, Denied),
            (Some("UnauthorizedOperation"), 403, Denied),
            (Some("InvalidClientTokenId"), 403, InvalidCredentials),
            (Some("InvalidAccessKeyId"), 403, InvalidCredentials),
            (Some("SignatureDoesNotMatch"), 403, InvalidCredentials),
            (Some("UnrecognizedClientException"), 400, InvalidCredentials),
            (Some("ExpiredToken"), 400, InvalidCredentials),
            (None, 401, InvalidCredentials),
            (Some("Throttling"), 400, Throttled),
            (Some("ThrottlingException"), 400, Throttled),
            (Some("TooManyRequestsException"), 429, Throttled),
            (Some("RequestLimitExceeded"), 503, Throttled),
            (Some("SlowDown"), 503, Throttled),
            (None, 429, Throttled),
            (Some("InternalFailure"), 500, ServerError),
            (Some("InternalError"), 500, ServerError),
            (Some("ServiceUnavailable"), 503, ServerError),
            (None, 500, ServerError),
            (None, 503, ServerError),
            (None, 504, ServerError),
            (Some("RequestTimeout"), 400, TimedOut),
            (Some("NoSuchEntity"), 404, Other),
            (Some("ValidationError"), 400, Other),
            (Some("MalformedPolicyDocument"), 400, Other),
            (None, 400, Other),
        ];
        for (code, status, kind) in cases {
            assert_eq!(answer(code, status).kind(), kind, "{code:?} {status}");
        }
        assert_eq!(
            AwsFailure::unreachable("connection refused").kind(),
            Unreachable
        );
        assert_eq!(
            AwsFailure::timed_out("no answer within 4 s").kind(),
            TimedOut
        );
        assert_eq!(AwsFailure::default().kind(), Other);
    }

    #[test]
    fn outages_are_not_the_callers_doing() {
        use FailureKind::*;
        for k in [Unreachable, TimedOut, Throttled, ServerError] {
            assert!(k.is_outage(), "{k:?}");
        }
        for k in [Denied, InvalidCredentials, Other] {
            assert!(!k.is_outage(), "{k:?}");
        }
    }

    #[test]
    fn describes_answers_and_silences() {
        let mut f = answer(Some("SignatureDoesNotMatch"), 403);
        f.message = Some("bad sig".into());
        assert_eq!(f.describe(), "SignatureDoesNotMatch (HTTP 403): bad sig");
        assert_eq!(answer(None, 503).describe(), "HTTP 503");
        assert_eq!(
            AwsFailure::unreachable("connection refused").describe(),
            "could not connect: connection refused"
        );
        assert_eq!(
            AwsFailure::timed_out("no answer within 4 s").describe(),
            "timed out: no answer within 4 s"
        );
    }
}
