//! The state-bucket routes of the provision-bucket function (its other triggers are in
//! `events`).

use super::error::ApiError;
use super::request::path_id;
use super::response::json;
use super::routes::{dispatch, Routes};
use crate::app::provisioning::Provisioner;
use crate::domain::{BucketStatus, Caller, StateBucket};
use http::StatusCode;
use lambda_http::{Body, Request, Response};

pub const ROUTES: Routes<Provisioner> = &[
    ("POST /integrations/aws/{id}/state-bucket", |p, who, r| {
        Box::pin(request(p, who, r))
    }),
    ("GET /integrations/aws/{id}/state-bucket", |p, who, r| {
        Box::pin(status(p, who, r))
    }),
];

pub async fn handle(p: &Provisioner, req: Request) -> Response<Body> {
    dispatch(p, ROUTES, req).await
}

/// 202: queued or under way; 200: ready (nothing was queued).
async fn request(p: &Provisioner, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let id = path_id(&req)?;
    let b = p.request(&who, &id).await?;
    let status = if b.status == BucketStatus::Ready {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    json(
        status,
        &BucketView {
            integration_id: &id,
            bucket: &b,
        },
    )
}

async fn status(p: &Provisioner, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let id = path_id(&req)?;
    let b = p.status(&who, &id).await?;
    json(
        StatusCode::OK,
        &BucketView {
            integration_id: &id,
            bucket: &b,
        },
    )
}

/// The state bucket as the API shows it: the bucket status with its integration id.
#[derive(serde::Serialize)]
struct BucketView<'a> {
    integration_id: &'a str,
    #[serde(flatten)]
    bucket: &'a StateBucket,
}
