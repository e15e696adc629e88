//! The one error type of the use-case layer. Adapters translate AWS SDK errors into it;
//! `api::problem` is the one place that turns it into an HTTP problem response.
//! No variant carries a secret: messages are built from field names, ids and AWS codes.

use serde::Serialize;
use std::time::Duration;

/// One violation of the request contract, named by the JSON field it concerns.
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

    #[error("no authenticated principal in the request context")]
    Unauthenticated,

    #[error("{what} not found")]
    NotFound { what: String },

    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<String>,
    },

    #[error("the resource changed: revision {current} does not match If-Match")]
    PreconditionFailed { current: u64 },

    #[error("method {method} is not allowed here")]
    MethodNotAllowed { method: String, allow: &'static str },

    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },

    /// An `Idempotency-Key` already used for a different request.
    #[error("this Idempotency-Key was already used for a different request; use a new key for a new request")]
    IdempotencyKeyReused,

    /// A request body that is not declared as JSON (`Content-Type`).
    #[error("the body must be JSON: send Content-Type: application/json (got {})", got.as_deref().unwrap_or("no Content-Type"))]
    UnsupportedMediaType { got: Option<String> },

    /// An AWS dependency failed or is throttled; the caller may retry. Nothing was half-written.
    #[error("{} {operation} failed: {code}", dependency.as_str())]
    Unavailable {
        dependency: Dependency,
        operation: &'static str,
        code: String,
        retry_after: Duration,
    },

    /// A bug or broken invariant (e.g. a stored record that no longer parses).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
