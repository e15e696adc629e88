//! The HTTP API's routes, keyed by API Gateway's `routeKey` (the same strings as
//! template.yaml's `Path`/`Method` pairs and the local gateway's; `scripts/check_routes.py`
//! and a unit test check them), and the one dispatch every function uses.

use super::access::caller;
use super::error::ApiError;
use super::request::strict_query;
use crate::domain::Caller;
use futures::future::BoxFuture;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::collections::HashMap;

/// The functions of template.yaml, by their binary names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    CreateIntegration,
    ManageIntegrations,
    TestConnection,
    ProvisionBucket,
    /// No route: its EventBridge schedule runs it.
    HealthCheck,
}

impl Function {
    pub const ALL: [Function; 5] = [
        Function::CreateIntegration,
        Function::ManageIntegrations,
        Function::TestConnection,
        Function::ProvisionBucket,
        Function::HealthCheck,
    ];

    pub fn binary(self) -> &'static str {
        match self {
            Function::CreateIntegration => "create-integration",
            Function::ManageIntegrations => "manage-integrations",
            Function::TestConnection => "test-connection",
            Function::ProvisionBucket => "provision-bucket",
            Function::HealthCheck => "health-check",
        }
    }

    pub fn from_binary(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.binary() == name)
    }
}

/// One route: API Gateway's `routeKey` (`METHOD /path/{param}`) and its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub key: &'static str,
    pub function: Function,
    /// Served without an authorizer: only the setup page and its assets, which a browser
    /// fetches by navigating (no bearer token) and which hold no data.
    pub public: bool,
    /// The query parameters the route reads. `dispatch` refuses any other, and any given
    /// twice, before the handler runs, so no route can forget the check. Public routes
    /// ignore their query string: they are pages a browser navigates to (with whatever
    /// tracking or cache-busting parameters a link adds), and they read none.
    pub query: &'static [&'static str],
}

impl Route {
    pub fn method(&self) -> &'static str {
        self.key.split_once(' ').map_or(self.key, |(m, _)| m)
    }

    pub fn path(&self) -> &'static str {
        self.key.split_once(' ').map_or("", |(_, p)| p)
    }

    /// The route with the query parameters it reads.
    const fn with_query(self, query: &'static [&'static str]) -> Route {
        Route { query, ..self }
    }
}

/// A route that takes no query parameters (see `Route::query`).
const fn route(key: &'static str, function: Function) -> Route {
    Route {
        key,
        function,
        public: false,
        query: &[],
    }
}

/// A public route (see `Route::public`).
const fn page(key: &'static str, function: Function) -> Route {
    Route {
        key,
        function,
        public: true,
        query: &[],
    }
}

/// The list's parameters (read in `manage::list_query`).
pub const LIST_QUERY: &[&str] = &[
    "label",
    "limit",
    "next_token",
    "health",
    "key_older_than_days",
];
/// The audit trail's parameters (read in `manage::history`).
pub const HISTORY_QUERY: &[&str] = &["limit", "next_token"];
/// The setup guide's values (read in `setup_policies::inputs`).
pub const SETUP_POLICIES_QUERY: &[&str] = &[
    "aws_account_id",
    "user_arn",
    "role_name",
    "external_id",
    "bucket_name",
    "region",
];

/// Every route of the HTTP API.
pub const ROUTES: &[Route] = &[
    route("POST /integrations/aws", Function::CreateIntegration),
    route("GET /integrations/aws", Function::ManageIntegrations).with_query(LIST_QUERY),
    route("GET /integrations/aws/{id}", Function::ManageIntegrations),
    route("PATCH /integrations/aws/{id}", Function::ManageIntegrations),
    route(
        "DELETE /integrations/aws/{id}",
        Function::ManageIntegrations,
    ),
    route(
        "GET /integrations/aws/{id}/history",
        Function::ManageIntegrations,
    )
    .with_query(HISTORY_QUERY),
    route(
        "GET /integrations/aws/{id}/onboarding",
        Function::ManageIntegrations,
    ),
    route(
        "POST /integrations/aws/test-connection",
        Function::TestConnection,
    ),
    route(
        "POST /integrations/aws/{id}/test-connection",
        Function::TestConnection,
    ),
    route(
        "GET /integrations/aws/setup-policies",
        Function::TestConnection,
    )
    .with_query(SETUP_POLICIES_QUERY),
    route(
        "POST /integrations/aws/{id}/state-bucket",
        Function::ProvisionBucket,
    ),
    route(
        "GET /integrations/aws/{id}/state-bucket",
        Function::ProvisionBucket,
    ),
    page("GET /integrations/aws/setup", Function::ManageIntegrations),
    page("HEAD /integrations/aws/setup", Function::ManageIntegrations),
    page(
        "GET /integrations/aws/setup/app.js",
        Function::ManageIntegrations,
    ),
    page(
        "GET /integrations/aws/setup/app.css",
        Function::ManageIntegrations,
    ),
    page(
        "GET /integrations/aws/setup/config.json",
        Function::ManageIntegrations,
    ),
];

/// What a method and path match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Found(Route, HashMap<String, String>),
    /// A known path without this method: the methods it has.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// Matches `/integrations/aws/01J...` against `/integrations/aws/{id}`. Like API
/// Gateway, a literal segment wins over a parameter (`/setup-policies` is not an id).
pub fn match_path(method: &str, path: &str) -> RouteMatch {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, Route, HashMap<String, String>)> = None;
    let mut best_path: Option<(usize, &'static str)> = None;
    for route in ROUTES {
        let Some(params) = bind(route.path(), &segs) else {
            continue;
        };
        // The most literal template is the path's; its methods are what `Allow` lists.
        if best_path.is_none_or(|(n, _)| params.len() < n) {
            best_path = Some((params.len(), route.path()));
        }
        let better = best.as_ref().is_none_or(|(n, _, _)| params.len() < *n);
        if route.method() == method && better {
            best = Some((params.len(), *route, params));
        }
    }
    match (best, best_path) {
        (Some((_, route, params)), _) => RouteMatch::Found(route, params),
        (None, Some((_, template))) => RouteMatch::MethodNotAllowed(
            ROUTES
                .iter()
                .filter(|r| r.path() == template)
                .map(|r| r.method())
                .collect(),
        ),
        (None, None) => RouteMatch::NotFound,
    }
}

fn bind(template: &str, segs: &[&str]) -> Option<HashMap<String, String>> {
    let tmpl: Vec<&str> = template.split('/').collect();
    if tmpl.len() != segs.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (t, s) in tmpl.iter().zip(segs) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            if s.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), (*s).to_owned());
        } else if t != s {
            return None;
        }
    }
    Some(params)
}

/// A route's handler: the function's dependencies, the authenticated caller (a handler
/// that runs is authenticated), and the request.
pub type Handler<D> =
    for<'a> fn(&'a D, Caller, Request) -> BoxFuture<'a, Result<Response<Body>, ApiError>>;

/// A function's route table: `routeKey` -> handler.
pub type Routes<D> = &'static [(&'static str, Handler<D>)];

/// A public route's handler: no caller and no dependencies, so it cannot reach data.
pub type PublicHandler = fn() -> Response<Body>;

/// A function's public routes (static pages): `routeKey` -> handler.
pub type PublicRoutes = &'static [(&'static str, PublicHandler)];

/// The `routeKey` API Gateway matched; events without one (hand-made test events) are
/// matched here by method and path.
fn route_key(req: &Request) -> Option<String> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        if let Some(key) = ctx.route_key.as_deref().filter(|k| *k != "$default") {
            return Some(key.to_owned());
        }
    }
    match match_path(req.method().as_str(), req.uri().path()) {
        RouteMatch::Found(route, _) => Some(route.key.to_owned()),
        _ => None,
    }
}

/// The error for a request no route of this function takes: `405` with `Allow` on a
/// known path, `404` otherwise.
pub fn not_routed(method: &str, path: &str) -> ApiError {
    match match_path(method, path) {
        RouteMatch::MethodNotAllowed(allow) => ApiError::MethodNotAllowed {
            method: method.to_owned(),
            allow: allow.join(", "),
        },
        _ => ApiError::NoRoute {
            method: method.to_owned(),
            path: path.to_owned(),
        },
    }
}

/// The query parameters a route reads (none for a key not in `ROUTES`, which every
/// function's table is checked against).
fn accepted_query(key: Option<&str>) -> &'static [&'static str] {
    ROUTES
        .iter()
        .find(|r| Some(r.key) == key)
        .map_or(&[], |r| r.query)
}

/// Runs the handler of the request's route (authenticated, then its query string checked
/// against `Route::query`), or answers 400/401/404/405.
pub async fn dispatch<D>(deps: &D, routes: Routes<D>, req: Request) -> Response<Body> {
    dispatch_with_public(deps, routes, &[], req).await
}

/// `dispatch` for a function that also serves public routes, which run unauthenticated.
pub async fn dispatch_with_public<D>(
    deps: &D,
    routes: Routes<D>,
    public: PublicRoutes,
    req: Request,
) -> Response<Body> {
    super::run(req, async |req: Request| {
        let key = route_key(&req);
        if let Some((_, page)) = public.iter().find(|(k, _)| Some(*k) == key.as_deref()) {
            return Ok(page());
        }
        let handler = routes
            .iter()
            .find(|(k, _)| Some(*k) == key.as_deref())
            .map(|(_, h)| *h);
        let Some(handler) = handler else {
            return Err(not_routed(req.method().as_str(), req.uri().path()));
        };
        let who = caller(&req)?;
        strict_query(&req, accepted_query(key.as_deref()))?;
        handler(deps, who, req).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        match match_path("GET", "/integrations/aws/setup-policies") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.key, "GET /integrations/aws/setup-policies");
                assert!(p.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match match_path("GET", "/integrations/aws/01J/state-bucket/") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.function, Function::ProvisionBucket);
                assert_eq!(p.get("id").map(String::as_str), Some("01J"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_known_path_lists_its_methods() {
        assert_eq!(
            match_path("PUT", "/integrations/aws/01J"),
            RouteMatch::MethodNotAllowed(vec!["GET", "PATCH", "DELETE"])
        );
        // The literal path's methods, not those of `{id}` it also matches.
        assert_eq!(
            match_path("PUT", "/integrations/aws/setup-policies"),
            RouteMatch::MethodNotAllowed(vec!["GET"])
        );
        // As in API Gateway, a method the literal lacks falls to the parameter route.
        assert!(matches!(
            match_path("DELETE", "/integrations/aws/setup-policies"),
            RouteMatch::Found(r, _) if r.key == "DELETE /integrations/aws/{id}"
        ));
        assert_eq!(
            match_path("POST", "/integrations/aws/01J/onboarding"),
            RouteMatch::MethodNotAllowed(vec!["GET"])
        );
        assert_eq!(match_path("GET", "/nope"), RouteMatch::NotFound);
        assert_eq!(
            match_path("GET", "/integrations/aws//x"),
            RouteMatch::NotFound
        );
    }

    #[test]
    fn every_function_table_is_exactly_its_share_of_the_list() {
        let tables: [(Function, Vec<&str>); 4] = [
            (
                Function::CreateIntegration,
                keys(super::super::create::ROUTES),
            ),
            (
                Function::ManageIntegrations,
                keys(super::super::manage::ROUTES)
                    .into_iter()
                    .chain(super::super::setup_page::ROUTES.iter().map(|(k, _)| *k))
                    .collect(),
            ),
            (
                Function::TestConnection,
                keys(super::super::test_connection::ROUTES),
            ),
            (
                Function::ProvisionBucket,
                keys(super::super::state_bucket::ROUTES),
            ),
        ];
        for (function, mut table) in tables {
            let mut want: Vec<&str> = ROUTES
                .iter()
                .filter(|r| r.function == function)
                .map(|r| r.key)
                .collect();
            table.sort_unstable();
            want.sort_unstable();
            assert_eq!(table, want, "{function:?}");
        }
    }

    #[test]
    fn onboarding_is_the_manage_functions_and_authenticated() {
        match match_path("GET", "/integrations/aws/01J/onboarding") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.key, "GET /integrations/aws/{id}/onboarding");
                assert_eq!(r.function, Function::ManageIntegrations);
                assert!(!r.public);
                assert!(r.query.is_empty());
                assert_eq!(p.get("id").map(String::as_str), Some("01J"));
            }
            other => panic!("{other:?}"),
        }
        // The setup page's literal paths never reach it.
        assert_eq!(
            match_path("GET", "/integrations/aws/setup/onboarding"),
            RouteMatch::Found(
                *ROUTES
                    .iter()
                    .find(|r| r.key == "GET /integrations/aws/{id}/onboarding")
                    .unwrap(),
                HashMap::from([("id".to_owned(), "setup".to_owned())])
            )
        );
    }

    #[tokio::test]
    async fn onboarding_takes_no_query_parameters_and_needs_a_caller() {
        const ONBOARDING: Routes<()> = &[("GET /integrations/aws/{id}/onboarding", ran)];
        let at = |q: &str, anonymous: bool| {
            event(
                "GET /integrations/aws/{id}/onboarding",
                "/integrations/aws/01J/onboarding",
                q,
                anonymous,
            )
        };
        let answer = |req| async move { dispatch(&(), ONBOARDING, req).await.status().as_u16() };
        assert_eq!(answer(at("", false)).await, 200);
        assert_eq!(answer(at("role_name=x", false)).await, 400);
        assert_eq!(answer(at("", true)).await, 401);
    }

    #[test]
    fn exactly_the_setup_page_routes_are_public() {
        let public: Vec<&str> = ROUTES.iter().filter(|r| r.public).map(|r| r.key).collect();
        let pages: Vec<&str> = super::super::setup_page::ROUTES
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(public, pages);
        assert!(public
            .iter()
            .all(|k| k.starts_with("GET /integrations/aws/setup")
                || *k == "HEAD /integrations/aws/setup"));
        // The literal page path wins over `{id}`, as in API Gateway.
        assert!(matches!(
            match_path("GET", "/integrations/aws/setup"),
            RouteMatch::Found(r, p) if r.public && p.is_empty()
        ));
    }

    fn keys<D>(routes: Routes<D>) -> Vec<&'static str> {
        routes.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn only_the_reading_routes_declare_query_parameters() {
        let declared: Vec<(&str, &[&str])> = ROUTES
            .iter()
            .filter(|r| !r.query.is_empty())
            .map(|r| (r.key, r.query))
            .collect();
        assert_eq!(
            declared,
            [
                ("GET /integrations/aws", LIST_QUERY),
                ("GET /integrations/aws/{id}/history", HISTORY_QUERY),
                ("GET /integrations/aws/setup-policies", SETUP_POLICIES_QUERY),
            ]
        );
    }

    /// Answers 200 "ran": the handler was reached.
    fn ran(_: &(), _: Caller, _: Request) -> BoxFuture<'_, Result<Response<Body>, ApiError>> {
        Box::pin(async { Ok(Response::new(Body::Text("ran".into()))) })
    }

    const TABLE: Routes<()> = &[
        ("GET /integrations/aws", ran),
        ("GET /integrations/aws/{id}", ran),
        ("GET /integrations/aws/{id}/history", ran),
    ];

    /// An API Gateway v2 event for `key` with `query` as its raw query string, by an
    /// authenticated user unless `anonymous`.
    fn event(key: &str, path: &str, query: &str, anonymous: bool) -> Request {
        let mut ctx = serde_json::json!({
            "accountId": "123456789012", "apiId": "api", "domainName": "x",
            "domainPrefix": "x", "requestId": "r", "routeKey": key,
            "stage": "$default", "time": "26/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "t"},
        });
        if !anonymous {
            ctx["authorizer"] =
                serde_json::json!({"jwt": {"claims": {"sub": "u1"}, "scopes": null}});
        }
        let body = serde_json::json!({
            "version": "2.0", "routeKey": key, "rawPath": path, "rawQueryString": query,
            "headers": {}, "requestContext": ctx, "isBase64Encoded": false,
        });
        lambda_http::request::from_str(&body.to_string()).unwrap()
    }

    /// Status and (field, message) of each error.
    async fn answer(req: Request) -> (u16, String, Vec<(String, String)>) {
        let resp = dispatch_with_public(&(), TABLE, super::super::setup_page::ROUTES, req).await;
        let status = resp.status().as_u16();
        let text = match resp.body() {
            Body::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        };
        let errors = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["errors"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (s("field"), s("message"))
            })
            .collect();
        (status, text, errors)
    }

    #[tokio::test]
    async fn dispatch_refuses_unknown_and_repeated_query_parameters() {
        let list = |q: &str| event("GET /integrations/aws", "/integrations/aws", q, false);
        for ok in [
            "",
            "label=prod&limit=2&next_token=",
            "limit=100",
            "label=a%2Cb",
        ] {
            let (status, text, _) = answer(list(ok)).await;
            assert_eq!((status, text.as_str()), (200, "ran"), "?{ok}");
        }

        let (status, _, errors) = answer(list("lable=prod")).await;
        assert_eq!(status, 400);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "lable");
        assert!(
            errors[0].1.contains("label, limit, next_token"),
            "{}",
            errors[0].1
        );

        let (status, _, errors) = answer(list("limit=1&limit=2")).await;
        assert_eq!(status, 400);
        assert_eq!(errors[0].0, "limit");
        assert!(errors[0].1.contains("repeated"), "{}", errors[0].1);

        // Every problem at once, in a stable order; a long name is echoed bounded.
        let long = "x".repeat(500);
        let (status, text, errors) = answer(list(&format!("zz=1&label=a&{long}=1&label=b"))).await;
        assert_eq!(status, 400);
        let fields: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(fields[0], "label");
        assert_eq!(fields[2], "zz");
        assert_eq!(fields[1].chars().count(), 65);
        assert!(!text.contains(&long));

        // A route that reads no parameter takes none.
        let get = event(
            "GET /integrations/aws/{id}",
            "/integrations/aws/01J",
            "limit=1",
            false,
        );
        let (status, _, errors) = answer(get).await;
        assert_eq!(status, 400);
        assert_eq!(errors[0].0, "limit");
        assert!(errors[0].1.contains("takes none"), "{}", errors[0].1);
        let history = |q: &str| {
            event(
                "GET /integrations/aws/{id}/history",
                "/integrations/aws/01J/history",
                q,
                false,
            )
        };
        assert_eq!(answer(history("limit=5")).await.0, 200);
        assert_eq!(answer(history("label=prod")).await.0, 400);
    }

    #[tokio::test]
    async fn the_query_is_checked_after_authentication_and_not_on_public_pages() {
        let anonymous = event(
            "GET /integrations/aws",
            "/integrations/aws",
            "lable=prod",
            true,
        );
        assert_eq!(answer(anonymous).await.0, 401);
        // A browser's link may carry any parameter; the page reads none.
        let page = event(
            "GET /integrations/aws/setup",
            "/integrations/aws/setup",
            "utm_source=mail&utm_source=x",
            true,
        );
        assert_eq!(answer(page).await.0, 200);
    }
}
