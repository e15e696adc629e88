//! The one place errors become HTTP responses (RFC 9457 `application/problem+json`), and
//! the one place they are logged.

use super::error::ApiError;
use super::response::text_response;
use crate::error::Error;
use http::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Field errors one problem lists; the rest are counted in `errors_omitted`, so a body
/// full of bad entries cannot make an answer larger than a page.
pub const MAX_FIELD_ERRORS: usize = 50;

/// Codes of a call that got no (complete) answer, and the operations that write.
const NO_ANSWER: &[&str] = &["Timeout", "ConnectionFailure", "InvalidResponse"];
const WRITES: &[&str] = &["TransactWriteItems", "UpdateItem", "PutItem", "DeleteItem"];

/// Status, `type` slug and title of each error.
fn kind(err: &ApiError) -> (StatusCode, &'static str, &'static str) {
    use StatusCode as S;
    match err {
        ApiError::Unauthenticated => (
            S::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
        ),
        ApiError::MethodNotAllowed { .. } => (
            S::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        ),
        ApiError::NoRoute { .. } => (S::NOT_FOUND, "not-found", "Not found"),
        ApiError::UnsupportedMediaType { .. } => (
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        ),
        ApiError::App(e) => match e {
            Error::Validation(_) => (S::BAD_REQUEST, "validation-failed", "Invalid request"),
            Error::NotFound { .. } => (S::NOT_FOUND, "not-found", "Not found"),
            Error::Conflict { .. } => (S::CONFLICT, "conflict", "Conflict"),
            Error::Forbidden { .. } => (S::FORBIDDEN, "forbidden", "Not allowed"),
            Error::PreconditionFailed { .. } => (
                S::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            Error::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            Error::Unavailable { .. } => (
                S::SERVICE_UNAVAILABLE,
                "dependency-unavailable",
                "A dependency is unavailable; retry later",
            ),
            Error::SecretUnreadable { .. } => (
                S::INTERNAL_SERVER_ERROR,
                "secret-unreadable",
                "Stored secret unreadable",
            ),
            Error::Internal { .. } => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        },
    }
}

/// The `detail` a caller reads: what went wrong and what to do, never internals.
fn detail(err: &ApiError) -> String {
    match err {
        ApiError::App(Error::Validation(errors)) => match errors.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            many => {
                let mut d = format!(
                    "{} fields are invalid: {}",
                    many.len(),
                    many.iter()
                        .take(MAX_FIELD_ERRORS)
                        .map(|e| e.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if many.len() > MAX_FIELD_ERRORS {
                    d.push_str(&format!(" and {} more", many.len() - MAX_FIELD_ERRORS));
                }
                d
            }
        },
        // A write that got no answer may still land: say so, and how to retry safely.
        ApiError::App(Error::Unavailable {
            dependency,
            operation,
            code,
            ..
        }) if NO_ANSWER.contains(&code.as_str()) && WRITES.contains(operation) => format!(
            "{} {operation} did not answer ({code}): the change may have been applied; \
             retry the request (a create retried with the same Idempotency-Key returns \
             the original result)",
            dependency.as_str()
        ),
        ApiError::App(Error::Unavailable {
            dependency,
            operation,
            code,
            ..
        }) => format!(
            "{} {operation} failed ({code}); nothing was changed, retry the request",
            dependency.as_str()
        ),
        ApiError::App(Error::PreconditionFailed { current }) => {
            format!("the resource changed: revision {current} does not match If-Match")
        }
        // Internal details go to the log, not to callers.
        ApiError::App(Error::Internal { .. }) => {
            "an unexpected error occurred; it has been logged".into()
        }
        other => other.to_string(),
    }
}

/// Logs what operators must see, with the whole cause chain, once.
fn log(err: &ApiError, instance: &str, request_id: Option<&str>) {
    match err {
        ApiError::App(e @ (Error::Internal { .. } | Error::SecretUnreadable { .. })) => {
            tracing::error!(error = %e.chain(), instance, request_id, "internal error")
        }
        ApiError::App(
            e @ Error::Unavailable {
                dependency,
                operation,
                code,
                ..
            },
        ) => {
            tracing::warn!(
                dependency = dependency.as_str(),
                operation,
                code,
                error = %e.chain(),
                instance,
                request_id,
                "dependency call failed"
            )
        }
        _ => {}
    }
}

pub fn problem(err: &ApiError, instance: &str, request_id: Option<&str>) -> Response<Body> {
    log(err, instance, request_id);
    let (status, slug, title) = kind(err);
    let detail = detail(err);
    let mut body = json!({
        "type": format!("/problems/{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance,
    });
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    match err {
        ApiError::App(Error::Validation(errors)) => {
            body["errors"] = json!(&errors[..errors.len().min(MAX_FIELD_ERRORS)]);
            if errors.len() > MAX_FIELD_ERRORS {
                body["errors_omitted"] = json!(errors.len() - MAX_FIELD_ERRORS);
            }
        }
        ApiError::App(Error::Conflict {
            field: Some(field), ..
        }) => body["errors"] = json!([{"field": field, "message": detail}]),
        ApiError::App(Error::PreconditionFailed { current }) => {
            body["current_revision"] = json!(current)
        }
        _ => {}
    }
    // A `Value` always serialises.
    let mut resp = text_response(status, PROBLEM_JSON, body.to_string());
    let h = resp.headers_mut();
    match err {
        ApiError::App(Error::Unavailable { retry_after, .. }) => {
            h.insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs()));
        }
        ApiError::MethodNotAllowed { allow, .. } => {
            if let Ok(allow) = HeaderValue::from_str(allow) {
                h.insert(ALLOW, allow);
            }
        }
        ApiError::Unauthenticated => {
            h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    resp
}
