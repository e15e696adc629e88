//! A local stand-in for API Gateway (HTTP API, payload v2) and its authorizer: it matches
//! the route, checks the `Authorization` header (not on the setup page's public routes),
//! builds the same event API Gateway would send, and hands it to the function's real
//! handler.
//!
//! The authorizer is either the real JWT check ([`crate::jwt::JwtAuthorizer`], what the
//! local stack runs) or a table of fixed tokens, kept for the in-process cargo suites that
//! need no identity provider.

use crate::invoke::Invoker;
use crate::jwt::{JwtAuthorizer, JwtContext};
use crate::{Function, Functions, Route};
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode};
use integrations_core::http::routes::{match_path, RouteMatch};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Gateway {
    /// Runs the functions: in this process, or through a Lambda Invoke API.
    pub invoker: Arc<Invoker>,
    /// Who decides which requests reach a function, and as whom.
    pub authorizer: Authorizer,
    counter: AtomicU64,
}

/// How bearer tokens are checked.
// One per gateway, built once and never moved about: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Authorizer {
    /// API Gateway's JWT authorizer: signed tokens of an OpenID provider.
    Jwt(JwtAuthorizer),
    /// Fixed token strings, each standing for an identity: only for the in-process cargo
    /// suites (tests/tests/common), which run without an identity provider. The only mode
    /// with an IAM caller (`local-service-token`).
    FixedTokens(HashMap<String, Identity>),
}

impl Authorizer {
    /// The main token (a person in [`LOCAL_TEAM`]) and [`local_tenants`].
    pub fn fixed_tokens(token: &str, principal: &str) -> Self {
        let mut identities: HashMap<String, Identity> = local_tenants()
            .into_iter()
            .map(|(t, who)| (t.to_owned(), who))
            .collect();
        identities.insert(token.to_owned(), Identity::user(principal, &[LOCAL_TEAM]));
        Authorizer::FixedTokens(identities)
    }

    /// Who the request's Authorization header stands for, or why nobody.
    pub async fn identify(&self, headers: &HeaderMap) -> Result<Identity, String> {
        let authorization = match headers.get(http::header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| "the Authorization header is not text".to_owned())?,
            ),
        };
        match self {
            Authorizer::Jwt(jwt) => jwt
                .authorize(authorization)
                .await
                .map(Identity::Jwt)
                .map_err(|r| r.to_string()),
            Authorizer::FixedTokens(identities) => authorization
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .and_then(|t| identities.get(t))
                .cloned()
                .ok_or_else(|| "not one of the fixed tokens".to_owned()),
        }
    }
}

/// Who a request stands for: a verified JWT's claims (a person, groups included), as API
/// Gateway passes them on, or an IAM principal's ARN (a SigV4-signed platform service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Jwt(JwtContext),
    Iam(String),
}

impl Identity {
    /// A person with these groups, as a Cognito access token has them (API Gateway hands
    /// an array claim to the function as `[a b]`).
    pub fn user(sub: &str, groups: &[&str]) -> Self {
        let mut claims = BTreeMap::from([
            ("sub".to_owned(), sub.to_owned()),
            ("iss".to_owned(), "local-api".to_owned()),
        ]);
        if !groups.is_empty() {
            claims.insert(
                "cognito:groups".to_owned(),
                format!("[{}]", groups.join(" ")),
            );
        }
        Identity::Jwt(JwtContext {
            claims,
            scopes: None,
        })
    }

    /// The authorizer block of the API Gateway event.
    pub fn authorizer(&self) -> Value {
        match self {
            Identity::Jwt(jwt) => json!({ "jwt": jwt.to_json() }),
            Identity::Iam(arn) => json!({"iam": {
                "userArn": arn,
                "accountId": arn.split(':').nth(4).unwrap_or_default(),
                "callerId": "local",
            }}),
        }
    }
}

/// The team of the main token's person: share an integration with it to show it to
/// the teammate.
pub const LOCAL_TEAM: &str = "local-team";

/// Extra callers of every local stack, for trying (and testing) tenant isolation:
/// (token, who). The main token (`local-dev-token` by default) is a person in
/// [`LOCAL_TEAM`].
pub fn local_tenants() -> Vec<(&'static str, Identity)> {
    vec![
        (
            "local-teammate-token",
            Identity::user("local-teammate", &[LOCAL_TEAM]),
        ),
        (
            "local-other-tenant-token",
            Identity::user("local-other-tenant", &["other-team"]),
        ),
        (
            "local-admin-token",
            Identity::user("local-admin", &[crate::LOCAL_ADMIN_GROUP]),
        ),
        (
            "local-service-token",
            Identity::Iam("arn:aws:iam::000000000000:role/local-platform-service".into()),
        ),
    ]
}

/// The API Gateway v2 event for one request, as the real service builds it.
#[allow(clippy::too_many_arguments)]
pub fn apigw_event(
    route: &Route,
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    path_params: &HashMap<String, String>,
    authorizer: Option<&Value>,
    request_id: &str,
) -> Value {
    let mut hdrs = Map::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match hdrs.get_mut(k.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                hdrs.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let mut query = Map::new();
    for (k, v) in url_pairs(raw_query) {
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let route_key = route.key;
    let (body, b64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut ctx = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": "127.0.0.1",
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": hdrs.get("user-agent").cloned().unwrap_or(json!("")),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "timeEpoch": now,
    });
    if let Some(authorizer) = authorizer {
        ctx["authorizer"] = authorizer.clone();
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": hdrs,
        "requestContext": ctx,
        "isBase64Encoded": b64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !path_params.is_empty() {
        event["pathParameters"] = json!(path_params);
    }
    if !body.is_empty() {
        event["body"] = json!(body);
    }
    event
}

fn url_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns a handler's response into plain HTTP parts.
pub fn response_parts(
    resp: lambda_http::Response<lambda_http::Body>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    (parts.status, parts.headers, bytes)
}

fn gateway_message(status: StatusCode, message: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    (
        status,
        h,
        json!({ "message": message }).to_string().into_bytes(),
    )
}

impl Gateway {
    /// Functions in this process behind fixed tokens: `token` is a person (`principal`)
    /// in [`LOCAL_TEAM`], [`local_tenants`] are the other callers.
    pub fn new(functions: Arc<Functions>, token: String, principal: String) -> Self {
        Self::with_invoker(Arc::new(Invoker::InProcess(functions)), token, principal)
    }

    /// As [`Gateway::new`], with the functions wherever `invoker` runs them.
    pub fn with_invoker(invoker: Arc<Invoker>, token: String, principal: String) -> Self {
        Self::with_authorizer(invoker, Authorizer::fixed_tokens(&token, &principal))
    }

    /// Behind API Gateway's JWT authorizer, as the local stack runs.
    pub fn with_jwt(invoker: Arc<Invoker>, jwt: JwtAuthorizer) -> Self {
        Self::with_authorizer(invoker, Authorizer::Jwt(jwt))
    }

    pub fn with_authorizer(invoker: Arc<Invoker>, authorizer: Authorizer) -> Self {
        Self {
            invoker,
            authorizer,
            counter: AtomicU64::new(0),
        }
    }

    /// Handles one HTTP request as API Gateway + authorizer + Lambda would.
    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        raw_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (route, params) = match match_path(method.as_str(), path) {
            RouteMatch::Found(r, p) => (r, p),
            RouteMatch::MethodNotAllowed(_) | RouteMatch::NotFound => {
                return gateway_message(StatusCode::NOT_FOUND, "Not Found")
            }
        };
        // The setup page's routes have no authorizer (template.yaml): no token, no claims.
        if route.public {
            return self
                .forward(
                    &route, method, path, raw_query, headers, body, &params, None,
                )
                .await;
        }
        // The authorizer rejects before the function runs, as API Gateway does.
        let identity = match self.authorizer.identify(headers).await {
            Ok(identity) => identity,
            Err(why) => {
                // Why, for whoever runs the stack; never the token itself.
                tracing::info!(
                    method = method.as_str(),
                    path,
                    reason = %why,
                    "authorizer refused the request"
                );
                let mut r = gateway_message(StatusCode::UNAUTHORIZED, "Unauthorized");
                r.1.insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        };
        let authorizer = identity.authorizer();
        self.forward(
            &route,
            method,
            path,
            raw_query,
            headers,
            body,
            &params,
            Some(&authorizer),
        )
        .await
    }

    /// Builds the route's event (with the authorizer's block, if any) and runs it.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        route: &Route,
        method: &Method,
        path: &str,
        raw_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        params: &HashMap<String, String>,
        authorizer: Option<&Value>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("local-{:x}-{n}", std::process::id());
        let event = apigw_event(
            route,
            method.as_str(),
            path,
            raw_query,
            headers,
            body,
            params,
            authorizer,
            &request_id,
        );
        self.invoke_event(route.function, &event).await
    }

    /// Feeds an API Gateway v2 event (e.g. a file from `events/`) to a function.
    pub async fn invoke_event(
        &self,
        function: Function,
        event: &Value,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.invoker.http(function, event).await
    }
}

/// Deserialises the event exactly as lambda_http does in Lambda, then runs the handler
/// in this process.
pub async fn invoke_event(
    functions: &Arc<Functions>,
    function: Function,
    event: &Value,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    Invoker::InProcess(functions.clone())
        .http(function, event)
        .await
}

/// Lambda's synchronous invocation payload limit (6 MB), which bounds request bodies.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// Serves the gateway on a bound listener until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let gw = gateway.clone();
        async move {
            let (parts, body) = req.into_parts();
            // A body over Lambda's invocation payload limit never reaches a function:
            // API Gateway answers 413 with its own message.
            let (status, headers, body) = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
                Ok(bytes) => {
                    gw.handle(
                        &parts.method,
                        parts.uri.path(),
                        parts.uri.query().unwrap_or(""),
                        &parts.headers,
                        &bytes,
                    )
                    .await
                }
                Err(_) => {
                    gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
                }
            };
            let mut resp = axum::response::Response::new(axum::body::Body::from(body));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            resp
        }
    });
    axum::serve(listener, app).await
}
