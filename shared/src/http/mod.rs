//! The HTTP side (API Gateway HTTP API, payload v2): one module per function, each
//! opening with its route table; request reading, responses, and the one mapping from
//! errors to RFC 9457 problems.

pub mod access;
pub mod create;
pub mod error;
pub mod input;
pub mod json;
pub mod manage;
pub mod onboarding;
pub mod problem;
pub mod request;
pub mod response;
pub mod routes;
pub mod setup_page;
pub mod setup_policies;
pub mod state_bucket;
pub mod test_connection;

pub use error::ApiError;

use lambda_http::{Body, Request, Response};
use std::time::Instant;

pub const BASE_PATH: &str = "/integrations/aws";

/// Runs a request's handling, maps its error, and logs one line per request (no bodies).
pub async fn run<F>(req: Request, handle: F) -> Response<Body>
where
    F: AsyncFnOnce(Request) -> Result<Response<Body>, ApiError>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = request::request_id(&req);
    let resp = match handle(req).await {
        Ok(r) => r,
        Err(e) => problem::problem(&e, &path, request_id.as_deref()),
    };
    tracing::info!(
        %method,
        path,
        status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        request_id,
        "request"
    );
    resp
}
