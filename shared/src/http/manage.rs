//! The manage-integrations function: list, read, change and delete integrations, read
//! their audit trail and a role delegation's onboarding (`onboarding`); it also serves the
//! setup page (`setup_page`).

use super::error::ApiError;
use super::input;
use super::onboarding::{self, OnboardingSettings};
use super::request::{json_body, path_id, precondition, query};
use super::response::{json, with_etag};
use super::routes::{dispatch_with_public, Routes};
use super::setup_page;
use crate::app::integrations::Integrations;
use crate::domain::{Caller, HealthStatus, IntegrationView, Label};
use crate::error::FieldError;
use crate::ports::{HistoryQuery, ListQuery};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json as value;

/// The function's dependencies: the use case, and onboarding's settings (read once at
/// start; the deployed function requires them, see `wiring::manage_from_env`).
#[derive(Clone)]
pub struct Manage {
    pub integrations: Integrations,
    pub onboarding: Option<OnboardingSettings>,
}

pub const ROUTES: Routes<Manage> = &[
    ("GET /integrations/aws", |s, who, r| {
        Box::pin(list(&s.integrations, who, r))
    }),
    ("GET /integrations/aws/{id}", |s, who, r| {
        Box::pin(get(&s.integrations, who, r))
    }),
    ("PATCH /integrations/aws/{id}", |s, who, r| {
        Box::pin(update(&s.integrations, who, r))
    }),
    ("DELETE /integrations/aws/{id}", |s, who, r| {
        Box::pin(delete(&s.integrations, who, r))
    }),
    ("GET /integrations/aws/{id}/history", |s, who, r| {
        Box::pin(history(&s.integrations, who, r))
    }),
    ("GET /integrations/aws/{id}/onboarding", |s, who, r| {
        Box::pin(onboarding::get(
            &s.integrations,
            s.onboarding.as_ref(),
            who,
            r,
        ))
    }),
];

/// Also serves the setup page (`setup_page::ROUTES`, public).
pub async fn handle(manage: &Manage, req: Request) -> Response<Body> {
    dispatch_with_public(manage, ROUTES, setup_page::ROUTES, req).await
}

async fn list(svc: &Integrations, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let page = svc.list(&who, list_query(&req)?).await?;
    // Serialised straight to text: a `serde_json::Value` in between cost about a tenth
    // of a listing's CPU.
    #[derive(serde::Serialize)]
    struct Page<'a> {
        items: Vec<IntegrationView<'a>>,
        next_token: Option<String>,
    }
    let items = page.items.iter().map(|i| i.view()).collect();
    json(
        StatusCode::OK,
        &Page {
            items,
            next_token: page.next_token,
        },
    )
}

async fn get(svc: &Integrations, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let i = svc.get(&who, &path_id(&req)?).await?;
    Ok(with_etag(json(StatusCode::OK, &i.view())?, i.revision))
}

async fn update(svc: &Integrations, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let id = path_id(&req)?;
    let pre = precondition(&req)?;
    // Parsed strictly before the record is read; its fields are checked against it.
    let body = json_body(&req)?;
    let i = svc
        .update(&who, &id, pre, |current| {
            input::patch_form(
                &body.object,
                &current.aws_account_id,
                current.credentials.kind(),
            )
        })
        .await?;
    Ok(with_etag(json(StatusCode::OK, &i.view())?, i.revision))
}

async fn delete(svc: &Integrations, who: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let id = path_id(&req)?;
    svc.delete(&who, &id, precondition(&req)?).await?;
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// The audit trail, newest first: `?limit=1..100&next_token=<token>`.
async fn history(
    svc: &Integrations,
    who: Caller,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let id = path_id(&req)?;
    let mut errors = Vec::new();
    let limit = limit(&req, &mut errors);
    if !errors.is_empty() {
        return Err(crate::error::Error::Validation(errors).into());
    }
    let q = HistoryQuery {
        limit,
        next_token: query(&req, "next_token").filter(|t| !t.is_empty()),
    };
    let page = svc.history(&who, &id, &q).await?;
    json(
        StatusCode::OK,
        &value!({"integration_id": id, "events": page.events, "next_token": page.next_token}),
    )
}

/// `?limit=1..100` (50 when absent), or a field error.
fn limit(req: &Request, errors: &mut Vec<FieldError>) -> usize {
    match query(req, "limit") {
        None => 50,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100",
                ));
                50
            }
        },
    }
}

/// `?limit=1..100&label=<label>&health=ok|failing&key_older_than_days=N&next_token=<token>`;
/// every bad parameter named at once.
fn list_query(req: &Request) -> Result<ListQuery, ApiError> {
    let mut errors = Vec::new();
    let limit = limit(req, &mut errors);
    // Normalised as stored labels are, so `?label=Prod` finds `prod`.
    let label = query(req, "label").and_then(|l| match Label::parse(&l) {
        Ok(l) => Some(l.into()),
        Err(m) => {
            errors.push(FieldError::new("label", m));
            None
        }
    });
    let health = query(req, "health").and_then(|h| match HealthStatus::parse(&h) {
        Ok(h) => Some(h),
        Err(m) => {
            errors.push(FieldError::new("health", m));
            None
        }
    });
    let key_older_than_days =
        query(req, "key_older_than_days").and_then(|d| match d.parse::<u32>() {
            Ok(n) if (0..=3650).contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new(
                    "key_older_than_days",
                    "must be a whole number of days from 0 to 3650 (0: any key whose creation is known)",
                ));
                None
            }
        });
    if !errors.is_empty() {
        return Err(crate::error::Error::Validation(errors).into());
    }
    Ok(ListQuery {
        label,
        limit,
        filter: crate::ports::RecordFilter {
            health,
            key_older_than_days,
        },
        // `?next_token=` (empty) is the first page, as if absent.
        next_token: query(req, "next_token").filter(|t| !t.is_empty()),
    })
}
