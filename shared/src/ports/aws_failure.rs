//! What a failed call into a user's account means, decided in one place.

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
