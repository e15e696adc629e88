//! The HTTP layer's error: a use-case error, or what only HTTP can get wrong.

use crate::error::Error;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    App(#[from] Error),

    #[error("no authenticated principal in the request context")]
    Unauthenticated,

    #[error("method {method} is not allowed here")]
    MethodNotAllowed { method: String, allow: String },

    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },

    /// A request body that is not declared as JSON (`Content-Type`).
    #[error("the body must be JSON: send Content-Type: application/json (got {})", got.as_deref().unwrap_or("no Content-Type"))]
    UnsupportedMediaType { got: Option<String> },
}

impl ApiError {
    /// A request that breaks the contract in one field (a header or query parameter).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::App(Error::validation(field, message))
    }
}
