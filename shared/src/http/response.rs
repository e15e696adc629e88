//! Building responses: JSON bodies, ETags, and the API Gateway v2 response shape.

use super::error::ApiError;
use crate::error::Error;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG};
use http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response. Integration data is per-caller and sensitive: never cached.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response<Body>, ApiError> {
    let text = serde_json::to_string(body)
        .map_err(|e| Error::internal_from("serialising a response", e))?;
    Ok(text_response(status, "application/json", text))
}

/// A response with a text body (text, not bytes: API Gateway passes it through as is).
pub fn text_response(
    status: StatusCode,
    content_type: &'static str,
    text: String,
) -> Response<Body> {
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `ETag: "<revision>"`; `If-Match` takes it back.
pub fn with_etag(mut resp: Response<Body>, revision: u64) -> Response<Body> {
    // Digits in quotes are always a valid header value.
    if let Ok(tag) = HeaderValue::try_from(format!("\"{revision}\"")) {
        resp.headers_mut().insert(ETAG, tag);
    }
    resp
}

/// What lambda_http does for HTTP-only functions, for a function with other triggers too.
pub fn apigw_v2(resp: Response<Body>) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let (is_base64_encoded, body) = match body {
        Body::Empty => (false, None),
        b @ Body::Text(_) => (false, Some(b)),
        b @ Body::Binary(_) => (true, Some(b)),
        _ => (false, None),
    };
    let mut out = aws_lambda_events::apigw::ApiGatewayV2httpResponse::default();
    out.status_code = parts.status.as_u16() as i64;
    out.headers = parts.headers;
    out.body = body;
    out.is_base64_encoded = is_base64_encoded;
    out
}
