//! HTTP side of the functions (API Gateway HTTP API, payload v2): request parsing,
//! the routes' handlers, and the one mapping from `Error` to RFC 9457 problem responses.

use crate::error::Error;
use crate::model::Principal;
use crate::ports::ListQuery;
use crate::service::{Created, IdempotencyRequest, IntegrationService, Precondition};
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

pub const BASE_PATH: &str = "/integrations/aws";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Builds a JSON response. Integration data is per-caller and sensitive: never cached.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    // Text, not bytes: API Gateway then passes it through without base64.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn problem_type(slug: &str) -> String {
    format!("/problems/{slug}")
}

/// Field errors one problem lists; the rest are counted in `errors_omitted`, so a body
/// full of bad entries cannot make an answer larger than a page.
pub const MAX_FIELD_ERRORS: usize = 50;

/// The one place errors become HTTP responses (RFC 9457 `application/problem+json`).
pub fn problem(err: &Error, instance: &str, request_id: Option<&str>) -> Response<Body> {
    let (status, slug, title) = match err {
        Error::Validation(_) => (
            StatusCode::BAD_REQUEST,
            "validation-failed",
            "Invalid request",
        ),
        Error::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
        ),
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
        Error::PreconditionFailed { .. } => (
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
        ),
        Error::MethodNotAllowed { .. } => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        ),
        Error::NoRoute { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        Error::IdempotencyKeyReused => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
        ),
        Error::UnsupportedMediaType { .. } => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        ),
        Error::Unavailable { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency-unavailable",
            "A dependency is unavailable; retry later",
        ),
        Error::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        ),
    };
    let detail = match err {
        Error::Validation(errors) => match errors.as_slice() {
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
        Error::Unavailable {
            dependency,
            operation,
            code,
            ..
        } => format!(
            "{} {operation} failed ({code}); nothing was changed, retry the request",
            dependency.as_str()
        ),
        // Internal details go to the log, not to callers.
        Error::Internal(_) => "an unexpected error occurred; it has been logged".into(),
        other => other.to_string(),
    };
    let mut body = json!({
        "type": problem_type(slug),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "instance": instance,
    });
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    match err {
        Error::Validation(errors) => {
            body["errors"] = json!(&errors[..errors.len().min(MAX_FIELD_ERRORS)]);
            if errors.len() > MAX_FIELD_ERRORS {
                body["errors_omitted"] = json!(errors.len() - MAX_FIELD_ERRORS);
            }
        }
        Error::Conflict {
            field: Some(field), ..
        } => body["errors"] = json!([{"field": field, "message": detail}]),
        Error::PreconditionFailed { current } => body["current_revision"] = json!(current),
        _ => {}
    }
    let mut resp = json_response(status, &body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    match err {
        Error::Unavailable { retry_after, .. } => {
            h.insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
        }
        Error::MethodNotAllowed { allow, .. } => {
            h.insert(ALLOW, HeaderValue::from_static(allow));
        }
        Error::Unauthenticated => {
            h.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        Error::Internal(msg) => tracing::error!(error = %msg, "internal error"),
        _ => {}
    }
    resp
}

/// The authenticated caller from the API Gateway authorizer: a JWT subject, or the IAM
/// principal's ARN for SigV4-signed calls. API Gateway only forwards verified identities.
pub fn principal(req: &Request) -> Result<Principal, Error> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(Error::Unauthenticated);
    };
    let Some(auth) = ctx.authorizer.as_ref() else {
        return Err(Error::Unauthenticated);
    };
    let from_jwt = auth
        .jwt
        .as_ref()
        .and_then(|j| j.claims.get("sub").or_else(|| j.claims.get("client_id")));
    let from_iam = auth.iam.as_ref().and_then(|i| i.user_arn.as_ref());
    let from_lambda = auth.fields.get("principal").and_then(|v| v.as_str());
    from_jwt
        .map(String::as_str)
        .or(from_iam.map(String::as_str))
        .or(from_lambda)
        .filter(|p| !p.trim().is_empty())
        .map(|p| Principal(p.to_owned()))
        .ok_or(Error::Unauthenticated)
}

pub fn request_id(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
}

pub fn path_id(req: &Request) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|p| p.first("id"))
        .map(str::to_owned)
}

/// `If-Match: "3"` (or `W/"3"`, or `*`).
pub fn precondition(req: &Request) -> Result<Precondition, Error> {
    let Some(raw) = req.headers().get(IF_MATCH) else {
        return Ok(Precondition::None);
    };
    let bad = || {
        Error::validation(
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

pub fn etag(revision: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The request body, if it is declared as JSON (`application/json` or `+json`, any
/// parameters). An empty body needs no declaration: the route's own validation names
/// what is missing.
pub fn json_body(req: &Request) -> Result<&[u8], Error> {
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
        Err(Error::UnsupportedMediaType { got })
    }
}

/// `Idempotency-Key: <1-255 visible ASCII characters>`, with a SHA-256 fingerprint of
/// the body (the fingerprint reveals nothing of the secret in it).
fn idempotency_key(req: &Request, body: &[u8]) -> Result<Option<IdempotencyRequest>, Error> {
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
            Error::validation(
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

/// Runs a route's logic, maps its error, and logs one line per request (no bodies).
pub async fn serve<F>(req: Request, route: F) -> Response<Body>
where
    F: AsyncFnOnce(Request) -> Result<Response<Body>, Error>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = request_id(&req);
    let resp = match route(req).await {
        Ok(r) => r,
        Err(e) => problem(&e, &path, request_id.as_deref()),
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

fn with_etag(mut resp: Response<Body>, revision: u64) -> Response<Body> {
    resp.headers_mut().insert(ETAG, etag(revision));
    resp
}

/// `POST /integrations/aws`.
pub async fn create_integration(svc: &IntegrationService, req: Request) -> Response<Body> {
    serve(req, async |req: Request| {
        if req.method() != Method::POST {
            return Err(Error::MethodNotAllowed {
                method: req.method().to_string(),
                allow: "POST",
            });
        }
        let who = principal(&req)?;
        let body = json_body(&req)?;
        let key = idempotency_key(&req, body)?;
        let form = crate::validation::parse_new(body)?;
        let (mut resp, id, revision) = match svc.create(&who, form, key).await? {
            Created::New(i) => (
                json_response(StatusCode::CREATED, &i.view()),
                i.id.clone(),
                i.revision,
            ),
            Created::Replayed(original) => {
                let view: serde_json::Value = serde_json::from_str(&original)
                    .map_err(|e| Error::Internal(format!("stored response: {e}")))?;
                let id = view["id"].as_str().unwrap_or_default().to_owned();
                let revision = view["revision"].as_u64().unwrap_or(1);
                let mut resp = json_response(StatusCode::CREATED, &view);
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
    })
    .await
}

fn list_query(req: &Request) -> Result<ListQuery, Error> {
    let params = req.query_string_parameters_ref();
    let get = |k: &str| params.and_then(|p| p.first(k)).map(str::to_owned);
    let mut errors = Vec::new();
    let limit = match get("limit") {
        None => 50,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                errors.push(crate::error::FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100",
                ));
                50
            }
        },
    };
    // Normalised as stored labels are, so `?label=Prod` finds `prod`.
    let label = get("label").and_then(|l| match crate::validation::label(&l) {
        Ok(l) => Some(l),
        Err(m) => {
            errors.push(crate::error::FieldError::new("label", m));
            None
        }
    });
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(ListQuery {
        label,
        limit,
        next_token: get("next_token").filter(|t| !t.is_empty()),
    })
}

/// `GET/PATCH/DELETE /integrations/aws/{id}` and `GET /integrations/aws`.
pub async fn manage_integrations(svc: &IntegrationService, req: Request) -> Response<Body> {
    serve(req, async |req: Request| {
        principal(&req)?;
        let id = path_id(&req);
        match (req.method().clone(), id) {
            (Method::GET, None) => {
                let page = svc.list(&list_query(&req)?).await?;
                let items: Vec<_> = page.items.iter().map(|i| i.view()).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"items": items, "next_token": page.next_token}),
                ))
            }
            (Method::GET, Some(id)) => {
                let i = svc.get(&id).await?;
                Ok(with_etag(
                    json_response(StatusCode::OK, &i.view()),
                    i.revision,
                ))
            }
            (Method::PATCH, Some(id)) => {
                let pre = precondition(&req)?;
                let i = svc.update(&id, json_body(&req)?, pre).await?;
                Ok(with_etag(
                    json_response(StatusCode::OK, &i.view()),
                    i.revision,
                ))
            }
            (Method::DELETE, Some(id)) => {
                let pre = precondition(&req)?;
                svc.delete(&id, pre).await?;
                let mut resp = Response::new(Body::Empty);
                *resp.status_mut() = StatusCode::NO_CONTENT;
                Ok(resp)
            }
            (m, None) => Err(Error::MethodNotAllowed {
                method: m.to_string(),
                allow: "GET, POST",
            }),
            (m, Some(_)) => Err(Error::MethodNotAllowed {
                method: m.to_string(),
                allow: "GET, PATCH, DELETE",
            }),
        }
    })
    .await
}

/// Dependencies of the test-connection function.
#[derive(Clone)]
pub struct TestConnectionDeps {
    pub integrations: IntegrationService,
    pub tester: crate::connection::ConnectionTester,
}

/// `POST /integrations/aws/test-connection` (unsaved form),
/// `POST /integrations/aws/{id}/test-connection` (saved integration) and
/// `GET /integrations/aws/setup-policies`.
pub async fn test_connection(deps: &TestConnectionDeps, req: Request) -> Response<Body> {
    use crate::connection::Subject;
    serve(req, async |req: Request| {
        principal(&req)?;
        if req.uri().path().ends_with("/setup-policies") {
            return match *req.method() {
                Method::GET => setup_policies(&req),
                _ => Err(Error::MethodNotAllowed {
                    method: req.method().to_string(),
                    allow: "GET",
                }),
            };
        }
        if req.method() != Method::POST {
            return Err(Error::MethodNotAllowed {
                method: req.method().to_string(),
                allow: "POST",
            });
        }
        match path_id(&req) {
            None => {
                // Invalid forms never reach AWS.
                let form = crate::validation::parse_new(json_body(&req)?)?;
                let report = deps
                    .tester
                    .run(&Subject {
                        aws_account_id: &form.aws_account_id,
                        aws_access_key_id: &form.aws_access_key_id,
                        secret: &form.aws_secret_access_key,
                        role: form.aws_assumed_role_name.as_deref(),
                        external_id: form.aws_external_id.as_deref(),
                        session_duration: form.aws_session_duration,
                        region: &form.aws_default_region,
                        check_bucket: form.create_state_bucket,
                    })
                    .await;
                Ok(json_response(StatusCode::OK, &report))
            }
            Some(id) => {
                let i = deps.integrations.get(&id).await?;
                let secret = deps.integrations.secret_of(&i).await?;
                let mut report = deps
                    .tester
                    .run(&Subject {
                        aws_account_id: &i.aws_account_id,
                        aws_access_key_id: &i.aws_access_key_id,
                        secret: &secret,
                        role: i.aws_assumed_role_name.as_deref(),
                        external_id: i.aws_external_id.as_deref(),
                        session_duration: i.aws_session_duration,
                        region: &i.aws_default_region,
                        check_bucket: i.create_state_bucket,
                    })
                    .await;
                drop(secret);
                // An outage says nothing about the credentials: last_test keeps its value.
                report.last_test = deps.integrations.record_test(&id, report.outcome).await?;
                report.recorded = Some(report.last_test.is_some());
                if report.last_test.is_none() {
                    report.summary.push_str(
                        " Not recorded: the integration's last_test keeps its previous value.",
                    );
                }
                Ok(json_response(StatusCode::OK, &report))
            }
        }
    })
    .await
}

/// The policy documents of the setup guide, filled in with the caller's values.
fn setup_policies(req: &Request) -> Result<Response<Body>, Error> {
    use crate::error::FieldError;
    use crate::model::{bucket_arn, role_arn, state_bucket_name, Partition};
    use crate::validation as v;
    let params = req.query_string_parameters_ref();
    let get = |k: &str| params.and_then(|p| p.first(k)).map(str::to_owned);
    let mut errors = Vec::new();
    let mut check =
        |field: &str, value: Option<String>, rule: fn(&str) -> Result<String, String>| {
            value.and_then(|raw| match rule(&raw) {
                Ok(v) => Some(v),
                Err(m) => {
                    errors.push(FieldError::new(field, m));
                    None
                }
            })
        };
    let account = check("aws_account_id", get("aws_account_id"), v::account_id);
    let region = check("region", get("region"), v::region);
    let role = check("role_name", get("role_name"), v::role_name);
    let external = check("external_id", get("external_id"), v::external_id);
    let user_arn = check("user_arn", get("user_arn"), v::principal_arn);
    let bucket = check("bucket_name", get("bucket_name"), v::bucket_name);
    if get("aws_account_id").is_none() {
        errors.push(FieldError::new("aws_account_id", "is required"));
    }
    if role.is_some() && get("user_arn").is_none() {
        errors.push(FieldError::new(
            "user_arn",
            "is required with role_name (the trust policy names the user)",
        ));
    }
    if external.is_some() && get("role_name").is_none() {
        errors.push(FieldError::new(
            "external_id",
            "is only used with role_name",
        ));
    }
    if get("user_arn").is_some() && get("role_name").is_none() {
        errors.push(FieldError::new(
            "user_arn",
            "is only used with role_name (it is the principal of the role's trust policy)",
        ));
    }
    if let (Some(arn), Some(r)) = (&user_arn, &region) {
        if v::arn_partition(arn) != Partition::of_region(r) {
            errors.push(FieldError::new(
                "region",
                "is in another AWS partition than user_arn",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let account = account.ok_or_else(|| Error::validation("aws_account_id", "is required"))?;
    let partition = match (&user_arn, &region) {
        (_, Some(r)) => Partition::of_region(r),
        (Some(arn), None) => v::arn_partition(arn),
        (None, None) => Partition::Aws,
    };
    let bucket = bucket.unwrap_or_else(|| state_bucket_name(&account));
    let mut policies = serde_json::Map::new();
    let mut body = json!({
        "aws_account_id": account,
        "partition": partition.as_str(),
        "bucket_arn": bucket_arn(partition, &bucket),
    });
    if let (Some(role), Some(user)) = (&role, &user_arn) {
        let arn = role_arn(partition, &account, role);
        policies.insert(
            "role_trust_policy".into(),
            crate::policies::role_trust_policy(user, external.as_deref()),
        );
        policies.insert(
            "user_assume_role_policy".into(),
            crate::policies::user_assume_role_policy(&arn),
        );
        body["role_arn"] = json!(arn);
        body["user_arn"] = json!(user);
    }
    policies.insert(
        "state_bucket_policy".into(),
        crate::policies::state_bucket_policy(partition, &bucket),
    );
    body["policies"] = serde_json::Value::Object(policies);
    Ok(json_response(StatusCode::OK, &body))
}

/// The state bucket as the API shows it: the bucket status with its integration id.
fn bucket_body(id: &str, b: &crate::model::StateBucket) -> serde_json::Value {
    let mut body = json!({ "integration_id": id });
    if let (Some(obj), Ok(serde_json::Value::Object(fields))) =
        (body.as_object_mut(), serde_json::to_value(b))
    {
        obj.extend(fields);
    }
    body
}

/// `POST /integrations/aws/{id}/state-bucket` (202: queued or under way; 200: ready) and
/// `GET /integrations/aws/{id}/state-bucket`.
pub async fn state_bucket(p: &crate::provision::Provisioner, req: Request) -> Response<Body> {
    serve(req, async |req: Request| {
        principal(&req)?;
        let Some(id) = path_id(&req) else {
            return Err(Error::NoRoute {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            });
        };
        match *req.method() {
            Method::POST => {
                let b = crate::provision::request(p, &id).await?;
                // 202: queued or under way; a ready bucket has nothing queued.
                let status = if b.status == crate::model::BucketStatus::Ready {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                };
                Ok(json_response(status, &bucket_body(&id, &b)))
            }
            Method::GET => {
                let b = crate::provision::status(p, &id).await?;
                Ok(json_response(StatusCode::OK, &bucket_body(&id, &b)))
            }
            _ => Err(Error::MethodNotAllowed {
                method: req.method().to_string(),
                allow: "GET, POST",
            }),
        }
    })
    .await
}

/// What lambda_http does for HTTP-only functions, for a function with other triggers too.
pub fn apigw_v2_response(
    resp: Response<Body>,
) -> aws_lambda_events::apigw::ApiGatewayV2httpResponse {
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
