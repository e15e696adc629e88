//! The one error type of the use cases and their ports. Adapters translate AWS SDK
//! errors into it, keeping the SDK error as the `source`; `http::problem` is the one
//! place that turns it into an HTTP problem response and logs it. No variant carries a secret: messages are
//! built from field names, ids and AWS codes.

use serde::Serialize;
use std::time::Duration;

/// A cause kept for the log (the SDK error, a serde error, ...), never shown to callers.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One violation of the request contract, named by the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which outside service failed, for operators reading a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    DynamoDb,
    Kms,
    Sts,
    S3,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::DynamoDb => "DynamoDB",
            Dependency::Kms => "KMS",
            Dependency::Sts => "STS",
            Dependency::S3 => "S3",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request is invalid ({} problem(s))", .0.len())]
    Validation(Vec<FieldError>),

    #[error("{what} not found")]
    NotFound { what: String },

    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<String>,
    },

    /// The caller may see the integration but not do this to it (e.g. a group member
    /// deleting it). Callers who may not see it get `NotFound` instead.
    #[error("{detail}")]
    Forbidden { detail: String },

    #[error("the resource changed: its current revision is {current}")]
    PreconditionFailed { current: u64 },

    /// An idempotency key already used for a different request.
    #[error("this Idempotency-Key was already used for a different request; use a new key for a new request")]
    IdempotencyKeyReused,

    /// An AWS dependency failed or is throttled; the caller may retry. Nothing was half-written.
    #[error("{} {operation} failed: {code}", dependency.as_str())]
    Unavailable {
        dependency: Dependency,
        operation: &'static str,
        code: String,
        retry_after: Duration,
        #[source]
        source: Option<Cause>,
    },

    /// The stored secret cannot be decrypted with its record's context (a damaged
    /// ciphertext, or one copied from another record): retrying cannot help, new keys do.
    #[error("the stored secret access key cannot be decrypted (its ciphertext is damaged or belongs to another record): rotate the keys (PATCH both key fields)")]
    SecretUnreadable {
        #[source]
        source: Option<Cause>,
    },

    /// A bug or broken invariant (e.g. a stored record that no longer parses).
    #[error("internal error: {what}")]
    Internal {
        what: String,
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// A broken invariant with no underlying error.
    pub fn internal(what: impl Into<String>) -> Self {
        Error::Internal {
            what: what.into(),
            source: None,
        }
    }

    /// A broken invariant caused by `source` (kept for the log).
    pub fn internal_from(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Internal {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The error and its causes, one per line, for the one log line where it is mapped.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_and_chained() {
        let parse = serde_json::from_str::<u32>("x").unwrap_err();
        let e = Error::internal_from("stored integration does not parse", parse);
        assert!(std::error::Error::source(&e).is_some());
        assert!(e
            .chain()
            .starts_with("internal error: stored integration does not parse: "));
        assert_eq!(Error::internal("x").chain(), "internal error: x");
    }
}
