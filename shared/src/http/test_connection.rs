//! The test-connection function: Test Connection of a form or a saved integration, and
//! the setup guide's policy documents.

use super::error::ApiError;
use super::request::{json_body, path_id};
use super::response::json;
use super::routes::{dispatch, Routes};
use super::{input, setup_policies};
use crate::app::test_connection::TestConnection;
use crate::domain::Caller;
use http::StatusCode;
use lambda_http::{Body, Request, Response};

pub const ROUTES: Routes<TestConnection> = &[
    ("POST /integrations/aws/test-connection", |d, who, r| {
        Box::pin(test_form(d, who, r))
    }),
    (
        "POST /integrations/aws/{id}/test-connection",
        |d, who, r| Box::pin(test_saved(d, who, r)),
    ),
    ("GET /integrations/aws/setup-policies", |_, who, r| {
        Box::pin(async move { setup_policies::get(who, r) })
    }),
];

pub async fn handle(deps: &TestConnection, req: Request) -> Response<Body> {
    dispatch(deps, ROUTES, req).await
}

async fn test_form(
    d: &TestConnection,
    _: Caller,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    // Invalid forms never reach AWS.
    let form = input::new_form(&json_body(&req)?.object)?;
    json(StatusCode::OK, &d.test_form(&form).await?)
}

async fn test_saved(
    d: &TestConnection,
    who: Caller,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let report = d.test_saved(&who, &path_id(&req)?).await?;
    json(StatusCode::OK, &report)
}
