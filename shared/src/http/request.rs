//! Reading what API Gateway hands a function (the caller is read in `access`): path and query
//! parameters, `If-Match`, `Idempotency-Key` and a JSON body.

use super::error::ApiError;
use super::json::{echoed_name, JsonObject};
use crate::app::integrations::{IdempotencyRequest, Precondition};
use crate::error::{Error, FieldError};
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

/// A query string parameter. `routes::dispatch` has refused the request if the parameter
/// is repeated or not one the route declares.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// Refuses query parameters the route does not read (`?lable=prod` would otherwise list
/// everything) and repeated ones (which copy counts is a guess a proxy may make
/// differently), every one named at once. lambda_http reads API Gateway's
/// `rawQueryString`, so repeats are seen as such, not joined with commas.
pub fn strict_query(req: &Request, accepted: &[&str]) -> Result<(), ApiError> {
    let Some(params) = req.query_string_parameters_ref() else {
        return Ok(());
    };
    // Sorted, so the errors come in a stable order.
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for (name, _) in params.iter() {
        *counts.entry(name).or_default() += 1;
    }
    let errors: Vec<FieldError> = counts
        .into_iter()
        .filter_map(|(name, n)| {
            let message = if !accepted.contains(&name) {
                if accepted.is_empty() {
                    "is not a query parameter of this route, which takes none".to_owned()
                } else {
                    format!(
                        "is not a query parameter of this route, which takes {}",
                        accepted.join(", ")
                    )
                }
            } else if n > 1 {
                format!("is repeated ({n} times): send it once")
            } else {
                return None;
            };
            // Bounded: the name is the caller's text.
            Some(FieldError::new(echoed_name(name), message))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors).into())
    }
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

/// A JSON request body: its bytes as sent, and the one object they hold.
pub struct JsonBody<'a> {
    pub raw: &'a [u8],
    pub object: JsonObject,
}

/// The request body, declared as JSON (`application/json` or `+json`, any parameters) and
/// parsed strictly (`json`: one object, no member twice at any depth) before anything
/// else reads it. An empty body needs no declaration: it is refused as field `body`.
pub fn json_body(req: &Request) -> Result<JsonBody<'_>, ApiError> {
    let body: &[u8] = req.body();
    if body.is_empty() {
        return Err(Error::validation("body", "a JSON object is required").into());
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
        Ok(JsonBody {
            raw: body,
            object: JsonObject::parse(body)?,
        })
    } else {
        // Bounded: the header is the caller's, echoed in the detail.
        let got = declared.map(|ct| ct.chars().take(100).collect());
        Err(ApiError::UnsupportedMediaType { got })
    }
}

/// `Idempotency-Key: <1-255 visible ASCII characters>`, with the body's SHA-256 (the
/// use case keys it before anything is stored: an unkeyed hash of a body holding a
/// secret could be checked against guesses).
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
    Ok(Some(IdempotencyRequest {
        key: key.to_owned(),
        body_sha256: sha2::Sha256::digest(body).into(),
    }))
}
