//! Who the caller is, from what API Gateway's authorizer verified: a JWT's subject and
//! groups (the admin group makes an admin), or an IAM principal (a platform service).
//! The claim names come from the environment once per process.

use super::error::ApiError;
use crate::domain::{Caller, GroupName};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use std::sync::OnceLock;

/// Groups of one caller that are considered (a token with more is cut, and logged).
pub const MAX_CALLER_GROUPS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// The JWT claim that lists the caller's groups (`GROUPS_CLAIM`, default
    /// `cognito:groups`).
    pub groups_claim: String,
    /// Members of this group see and manage every integration (`ADMIN_GROUP`; none
    /// when unset).
    pub admin_group: Option<GroupName>,
}

impl AccessConfig {
    pub fn from_env() -> Result<Self, String> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let admin_group = match var("ADMIN_GROUP") {
            Some(g) => Some(GroupName::parse(g.trim()).map_err(|m| format!("ADMIN_GROUP {m}"))?),
            None => None,
        };
        Ok(AccessConfig {
            groups_claim: var("GROUPS_CLAIM").unwrap_or_else(|| "cognito:groups".into()),
            admin_group,
        })
    }
}

static CONFIG: OnceLock<AccessConfig> = OnceLock::new();

/// Sets the process's access configuration (the first call wins); `wiring` calls it at
/// start-up so a bad value stops the function before it serves anything.
pub fn configure(config: AccessConfig) -> &'static AccessConfig {
    CONFIG.get_or_init(|| config)
}

fn config() -> &'static AccessConfig {
    CONFIG.get_or_init(|| {
        AccessConfig::from_env().unwrap_or_else(|e| {
            tracing::error!(error = e, "access configuration invalid; no admin group");
            AccessConfig {
                groups_claim: "cognito:groups".into(),
                admin_group: None,
            }
        })
    })
}

/// A groups claim as API Gateway passes it: a JWT array arrives as `[a b c]`, a JSON
/// array string or a comma-separated list are read too. Values that cannot be group
/// names are skipped (they can match no integration's groups anyway).
pub fn parse_groups(raw: &str) -> Vec<GroupName> {
    let raw = raw.trim();
    let words: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
        Ok(list) => list,
        Err(_) => raw
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(str::to_owned)
            .collect(),
    };
    let mut groups: Vec<GroupName> = Vec::new();
    for g in words.iter().filter_map(|w| GroupName::parse(w).ok()) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    if groups.len() > MAX_CALLER_GROUPS {
        tracing::warn!(
            groups = groups.len(),
            "caller has more groups than considered; using the first {MAX_CALLER_GROUPS}"
        );
        groups.truncate(MAX_CALLER_GROUPS);
    }
    groups
}

fn user(id: &str, groups: Vec<GroupName>, config: &AccessConfig) -> Caller {
    let admin = config
        .admin_group
        .as_ref()
        .is_some_and(|a| groups.contains(a));
    if admin {
        Caller::admin(id, groups)
    } else {
        Caller::user(id, groups)
    }
}

/// The authenticated caller: a JWT subject (or client id) with its groups, an IAM
/// principal's ARN for SigV4-signed calls (a trusted service), or a Lambda authorizer's
/// `principal` (and `groups`). API Gateway only forwards verified identities.
pub fn caller(req: &Request) -> Result<Caller, ApiError> {
    caller_with(req, config())
}

pub fn caller_with(req: &Request, config: &AccessConfig) -> Result<Caller, ApiError> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(ApiError::Unauthenticated);
    };
    let Some(auth) = ctx.authorizer.as_ref() else {
        return Err(ApiError::Unauthenticated);
    };
    let present = |s: &&String| !s.trim().is_empty();
    if let Some(jwt) = auth.jwt.as_ref() {
        let id = jwt
            .claims
            .get("sub")
            .or_else(|| jwt.claims.get("client_id"));
        if let Some(id) = id.filter(present) {
            let groups = jwt
                .claims
                .get(&config.groups_claim)
                .map(|g| parse_groups(g))
                .unwrap_or_default();
            return Ok(user(id, groups, config));
        }
    }
    if let Some(arn) = auth.iam.as_ref().and_then(|i| i.user_arn.as_ref()) {
        if present(&arn) {
            return Ok(Caller::service(arn.clone()));
        }
    }
    if let Some(id) = auth.fields.get("principal").and_then(|v| v.as_str()) {
        if !id.trim().is_empty() {
            let groups = match auth.fields.get("groups") {
                Some(serde_json::Value::String(s)) => parse_groups(s),
                Some(v @ serde_json::Value::Array(_)) => parse_groups(&v.to_string()),
                _ => vec![],
            };
            return Ok(user(id, groups, config));
        }
    }
    Err(ApiError::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallerKind;

    fn groups(raw: &str) -> Vec<String> {
        parse_groups(raw).into_iter().map(String::from).collect()
    }

    #[test]
    fn groups_claims_are_read_in_every_form_api_gateway_passes() {
        assert_eq!(groups("[team-a team-b]"), ["team-a", "team-b"]);
        assert_eq!(groups(r#"["team-a","team-b"]"#), ["team-a", "team-b"]);
        assert_eq!(groups("team-a,team-b"), ["team-a", "team-b"]);
        assert_eq!(groups("team-a"), ["team-a"]);
        assert_eq!(groups("[]"), Vec::<String>::new());
        assert_eq!(groups(""), Vec::<String>::new());
        assert_eq!(groups("[a a b]"), ["a", "b"]);
        let many: Vec<String> = (0..150).map(|n| format!("g{n}")).collect();
        assert_eq!(
            parse_groups(&format!("[{}]", many.join(" "))).len(),
            MAX_CALLER_GROUPS
        );
    }

    fn event(authorizer: serde_json::Value) -> Request {
        let body = serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /integrations/aws",
            "rawPath": "/integrations/aws",
            "rawQueryString": "",
            "headers": {},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "x",
                "domainPrefix": "x", "requestId": "r", "routeKey": "GET /integrations/aws",
                "stage": "$default", "time": "26/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": "/integrations/aws", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "t"},
                "authorizer": authorizer
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&body.to_string()).unwrap()
    }

    #[test]
    fn callers_are_users_admins_or_services_by_what_the_authorizer_verified() {
        let config = AccessConfig {
            groups_claim: "cognito:groups".into(),
            admin_group: Some(GroupName::parse("ops-admins").unwrap()),
        };
        let jwt = |claims: serde_json::Value| {
            event(serde_json::json!({"jwt": {"claims": claims, "scopes": null}}))
        };
        let c = caller_with(
            &jwt(serde_json::json!({"sub": "u1", "cognito:groups": "[team-a]"})),
            &config,
        )
        .unwrap();
        assert_eq!((c.id.as_str(), c.kind), ("u1", CallerKind::User));
        assert_eq!(c.groups, [GroupName::parse("team-a").unwrap()]);
        let c = caller_with(
            &jwt(serde_json::json!({"sub": "u2", "cognito:groups": "[team-a ops-admins]"})),
            &config,
        )
        .unwrap();
        assert_eq!(c.kind, CallerKind::Admin);
        // Another claim name is configurable; the default one is then ignored.
        let other = AccessConfig {
            groups_claim: "groups".into(),
            ..config.clone()
        };
        let c = caller_with(
            &jwt(serde_json::json!({"sub": "u3", "cognito:groups": "[ops-admins]"})),
            &other,
        )
        .unwrap();
        assert_eq!(c.kind, CallerKind::User);
        let iam = event(
            serde_json::json!({"iam": {"userArn": "arn:aws:iam::123456789012:role/platform", "accountId": "123456789012"}}),
        );
        let c = caller_with(&iam, &config).unwrap();
        assert_eq!(
            (c.id.as_str(), c.kind),
            (
                "arn:aws:iam::123456789012:role/platform",
                CallerKind::Service
            )
        );
        for missing in [
            serde_json::json!({"jwt": {"claims": {"sub": " "}, "scopes": null}}),
            serde_json::json!({}),
        ] {
            assert!(matches!(
                caller_with(&event(missing), &config),
                Err(ApiError::Unauthenticated)
            ));
        }
    }
}
