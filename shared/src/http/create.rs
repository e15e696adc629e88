//! The create-integration function: `POST /integrations/aws`.

use super::error::ApiError;
use super::request::{idempotency_key, json_body};
use super::response::{json, with_etag};
use super::routes::{dispatch, Routes};
use super::{input, BASE_PATH};
use crate::app::integrations::{Created, Integrations};
use crate::domain::Caller;
use crate::error::Error;
use http::header::{HeaderValue, LOCATION};
use http::StatusCode;
use lambda_http::{Body, Request, Response};

pub const ROUTES: Routes<Integrations> = &[("POST /integrations/aws", |s, who, r| {
    Box::pin(create(s, who, r))
})];

pub async fn handle(integrations: &Integrations, req: Request) -> Response<Body> {
    dispatch(integrations, ROUTES, req).await
}

/// 201 with the new integration (or, for a retry under the same idempotency key, the
/// first response again, marked `Idempotent-Replayed: true`).
async fn create(svc: &Integrations, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    // Parsed strictly first: a body with a member twice is refused before anything reads it.
    let body = json_body(&req)?;
    let key = idempotency_key(&req, body.raw)?;
    let form = input::new_form(&body.object)?;
    let (mut resp, id, revision) = match svc.create(&who, form, key).await? {
        Created::New(i) => (
            json(StatusCode::CREATED, &i.view())?,
            i.id.to_string(),
            i.revision,
        ),
        Created::Replayed(original) => {
            let view: serde_json::Value = serde_json::from_str(&original)
                .map_err(|e| Error::internal_from("a stored create response does not parse", e))?;
            let (Some(id), Some(revision)) = (view["id"].as_str(), view["revision"].as_u64())
            else {
                return Err(
                    Error::internal("a stored create response has no id or revision").into(),
                );
            };
            let id = id.to_owned();
            let mut resp = json(StatusCode::CREATED, &view)?;
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            (resp, id, revision)
        }
    };
    resp = with_etag(resp, revision);
    if let Ok(loc) = HeaderValue::from_str(&format!("{BASE_PATH}/{id}")) {
        resp.headers_mut().insert(LOCATION, loc);
    }
    Ok(resp)
}
