//! Reading what API Gateway hands a function (the caller is read in `access`): path and query
//! parameters, `If-Match`, `Idempotency-Key` and a JSON body.

use super::error::ApiError;
use crate::app::integrations::{IdempotencyRequest, Precondition};
use http::header::{CONTENT_TYPE, IF_MATCH};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

pub fn request_id(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
}

/// The `{id}` of the route. Its routes all have one, so a missing one is API Gateway's
/// contract broken: answered as no route.
pub fn path_id(req: &Request) -> Result<String, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first("id"))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::NoRoute {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
        })
}

/// A query string parameter (the first, if repeated).
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// `If-Match: "3"` (or `W/"3"`, or `*`).
pub fn precondition(req: &Request) -> Result<Precondition, ApiError> {
    let Some(raw) = req.headers().get(IF_MATCH) else {
        return Ok(Precondition::None);
    };
    let bad = || {
        ApiError::invalid(
            "If-Match",
            "must be an ETag returned by this API, e.g. \"3\"",
        )
    };
    let raw = raw.to_str().map_err(|_| bad())?.trim();
    if raw == "*" {
        return Ok(Precondition::Any);
    }
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .and_then(|r| r.parse::<u64>().ok())
        .map(Precondition::Revision)
        .ok_or_else(bad)
}

/// The request body, if it is declared as JSON (`application/json` or `+json`, any
/// parameters). An empty body needs no declaration: the route's own validation names
/// what is missing.
pub fn json_body(req: &Request) -> Result<&[u8], ApiError> {
    let body: &[u8] = req.body();
    if body.is_empty() {
        return Ok(body);
    }
    let declared = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = declared.as_deref().is_some_and(|ct| {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media == "application/json"
            || (media.starts_with("application/") && media.ends_with("+json"))
    });
    if is_json {
        Ok(body)
    } else {
        // Bounded: the header is the caller's, echoed in the detail.
        let got = declared.map(|ct| ct.chars().take(100).collect());
        Err(ApiError::UnsupportedMediaType { got })
    }
}

/// `Idempotency-Key: <1-255 visible ASCII characters>`, with a SHA-256 fingerprint of
/// the body (the fingerprint reveals nothing of the secret in it).
pub fn idempotency_key(req: &Request, body: &[u8]) -> Result<Option<IdempotencyRequest>, ApiError> {
    use sha2::Digest as _;
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters, e.g. a UUID",
            )
        })?;
    let digest = sha2::Sha256::digest(body);
    let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(IdempotencyRequest {
        key: key.to_owned(),
        fingerprint,
    }))
}
