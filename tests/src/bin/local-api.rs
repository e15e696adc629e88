//! `local-api`: the whole system on this machine. Creates the table and KMS key in the
//! local AWS (DynamoDB Local for the table and its stream, moto server for the rest, as
//! `AWS_ENDPOINT_URL_DYNAMODB[_STREAMS]` and `AWS_ENDPOINT_URL` route them), then serves
//! every route on http://127.0.0.1:3000 through the real handlers, with a stand-in for
//! API Gateway's JWT authorizer and for the stream's event source mapping.
//!
//! The JWT authorizer trusts the OpenID provider named by `LOCAL_JWT_ISSUER` (required),
//! for the audiences in `LOCAL_JWT_AUDIENCE` (comma-separated, required), requiring one of
//! `LOCAL_JWT_SCOPES` (comma-separated, optional) when set. `--routes`, `--permissions`
//! and `--bootstrap-only` need none of them.
//!
//! Onboarding (`GET /integrations/aws/{id}/onboarding`) names the platform principal
//! `PLATFORM_PRINCIPAL_ARN`, by default the identity the local test-connection and
//! provision functions act as (see `bootstrap::platform_principal`), and the template URL
//! `DELEGATION_TEMPLATE_URL` (optional).

use local_harness::gateway::{self, Gateway};
use local_harness::invoke::Invoker;
use local_harness::jwt::{JwtAuthorizer, JwtConfig};
use local_harness::{bootstrap, ROUTES};
use std::sync::Arc;

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A comma-separated list (blanks dropped).
fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The JWT authorizer's settings from the environment.
fn jwt_config() -> Result<JwtConfig, String> {
    let issuer = std::env::var("LOCAL_JWT_ISSUER")
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(
            "LOCAL_JWT_ISSUER is not set: the issuer URL of the local OpenID provider, as its \
             tokens' `iss` has it (e.g. http://127.0.0.1:9400)",
        )?;
    // The harness speaks plain HTTP only: its provider runs on this machine.
    if !issuer.starts_with("http://") {
        return Err(format!(
            "LOCAL_JWT_ISSUER must be an http:// URL of a provider on this machine, not {issuer:?}"
        ));
    }
    let audiences = list(&std::env::var("LOCAL_JWT_AUDIENCE").unwrap_or_default());
    if audiences.is_empty() {
        return Err(
            "LOCAL_JWT_AUDIENCE is not set: the audiences (comma-separated) a token's `aud`, \
             or `client_id` without `aud`, must name"
                .into(),
        );
    }
    Ok(JwtConfig {
        scopes: list(&std::env::var("LOCAL_JWT_SCOPES").unwrap_or_default()),
        ..JwtConfig::new(issuer, audiences)
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if std::env::args().any(|a| a == "--routes") {
        // One line per route, for the template drift check (scripts/check_routes.py);
        // public routes (no authorizer) end with `public`.
        for r in ROUTES {
            let public = if r.public { " public" } else { "" };
            println!(
                "{} {} {}{public}",
                r.method(),
                r.path(),
                r.function.binary()
            );
        }
        return Ok(());
    }
    if let Some(i) = std::env::args().position(|a| a == "--delegation-template") {
        // The role delegation's CloudFormation template for a platform principal, for
        // cfn-lint (scripts/check-template.sh) and the trust-policy proof.
        let principal = std::env::args()
            .nth(i + 1)
            .ok_or("--delegation-template needs the platform principal's ARN")?;
        let template = integrations_core::domain::policies::delegation_role_template(&principal);
        println!("{}", serde_json::to_string_pretty(&template)?);
        return Ok(());
    }
    if std::env::args().any(|a| a == "--permissions") {
        // One line per granted action, for scripts/check_permissions.py.
        for (binary, actions) in integrations_core::aws::permissions::PERMISSIONS {
            for action in *actions {
                println!("{binary} {action}");
            }
        }
        return Ok(());
    }
    integrations_core::telemetry::init();
    let bootstrap_only = std::env::args().any(|a| a == "--bootstrap-only");
    // Checked before the local AWS is touched, so a missing setting fails at once.
    let jwt = if bootstrap_only {
        None
    } else {
        Some(JwtAuthorizer::new(jwt_config()?)?)
    };
    let host = var("LOCAL_API_HOST", "127.0.0.1");
    let port = var("LOCAL_API_PORT", "3000");
    let table = var("TABLE_NAME", "infrakitchen-integrations");
    let key = var("KMS_KEY_ID", "alias/infrakitchen-integrations");

    let sdk = integrations_core::aws::load_config();
    let stack = bootstrap::ensure(&sdk, &table, &key).await?;
    let Some(jwt) = jwt else {
        // --bootstrap-only, for runs whose functions live elsewhere (sam local invoke): the
        // table and key only.
        println!(
            "table: {}\nKMS key: {}\nHMAC key: {}",
            stack.table, stack.kms_key_id, stack.hmac_key_id
        );
        return Ok(());
    };
    // The principal users' delegated roles must trust: what the functions act as here.
    let principal = bootstrap::platform_principal(&sdk).await?;
    let onboarding = integrations_core::http::onboarding::OnboardingSettings {
        platform_principal: principal.clone(),
        template_url: match integrations_core::wiring::env("DELEGATION_TEMPLATE_URL") {
            Ok(url) => Some(integrations_core::wiring::template_url(&url)?),
            Err(_) => None,
        },
    };
    let template_url = onboarding.template_url.clone();
    let functions = local_harness::functions_with(&sdk, &sdk, &stack, onboarding)?;
    let invoker = Arc::new(Invoker::from_env(functions)?);
    let issuer = jwt.config().issuer.clone();
    let audiences = jwt.config().audiences.join(", ");
    let scopes = jwt.config().scopes.join(", ");
    let gw = Arc::new(Gateway::with_jwt(invoker.clone(), jwt));
    // Reads the provider's keys ahead of the first request; if the provider is not up yet,
    // the first request tries again, so the start order does not matter.
    let warm = gw.clone();
    tokio::spawn(async move {
        if let gateway::Authorizer::Jwt(jwt) = &warm.authorizer {
            match jwt.prefetch().await {
                Ok(keys) => tracing::info!(keys, "JWT authorizer: the provider's keys read"),
                Err(e) => tracing::info!(
                    reason = %e,
                    "JWT authorizer: provider not reachable yet; keys are read on the first request"
                ),
            }
        }
    });

    if let Some(arn) = stack.stream_arn.clone() {
        // Plays the event source mapping: pending buckets are provisioned with no extra step.
        tokio::spawn(local_harness::streams::run(
            sdk.clone(),
            arn,
            invoker.clone(),
        ));
    }
    // Plays the sweeper's EventBridge schedule (template.yaml: every 5 minutes).
    let sweep_every = var("LOCAL_SWEEP_INTERVAL_SECONDS", "60")
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or("LOCAL_SWEEP_INTERVAL_SECONDS must be a positive whole number")?;
    tokio::spawn(local_harness::schedule::run(
        invoker.clone(),
        std::time::Duration::from_secs(sweep_every),
    ));
    // Plays the health check's schedule (template.yaml: daily); here every 5 minutes, and
    // each integration is re-tested at most every HEALTH_CHECK_MIN_INTERVAL_SECONDS.
    let health_every = var("LOCAL_HEALTH_CHECK_INTERVAL_SECONDS", "300")
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or("LOCAL_HEALTH_CHECK_INTERVAL_SECONDS must be a positive whole number")?;
    tokio::spawn(local_harness::schedule::run_health_check(
        invoker.clone(),
        std::time::Duration::from_secs(health_every),
    ));
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}")).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let endpoint = |service: &str| {
        std::env::var(format!("AWS_ENDPOINT_URL_{service}"))
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| "(AWS itself)".to_owned())
    };
    println!(
        "local AWS:   DynamoDB {} (streams {}); KMS, STS, IAM, S3 {}",
        endpoint("DYNAMODB"),
        endpoint("DYNAMODB_STREAMS"),
        sdk.endpoint_url().unwrap_or("(AWS itself)")
    );
    println!("functions:   {}", invoker.describe());
    println!("table:       {}", stack.table);
    println!("KMS key:     {}", stack.kms_key_id);
    println!("HMAC key:    {}", stack.hmac_key_id);
    println!(
        "platform:    {principal} (the principal delegated roles trust; PLATFORM_PRINCIPAL_ARN)"
    );
    println!(
        "template:    {} (DELEGATION_TEMPLATE_URL: the quick-create link's template)",
        template_url.as_deref().unwrap_or("none")
    );
    println!("API:         {base}");
    println!("JWT issuer:  {issuer}");
    println!("audiences:   {audiences}");
    if !scopes.is_empty() {
        println!("scopes:      {scopes} (a token needs one of them)");
    }
    println!(
        "get a token: OIDC_ISSUER={issuer} bash scripts/token.sh [developer|teammate|other-tenant|admin]"
    );
    println!("routes:");
    for r in ROUTES {
        println!(
            "  {:<7}{:<45}-> {}{}",
            r.method(),
            r.path(),
            r.function.binary(),
            if r.public { " (public: no token)" } else { "" }
        );
    }
    println!("setup page:  {base}/integrations/aws/setup");
    println!(
        r#"
try:
  export API={base} AUTH="Authorization: Bearer $(OIDC_ISSUER={issuer} bash scripts/token.sh developer)"
  curl -s -X POST $API/integrations/aws -H "$AUTH" -H 'content-type: application/json' -d '{{
    "name": "aws-production", "labels": ["production"],
    "aws_account_id": "123456789012",
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}'
  curl -s "$API/integrations/aws?label=production&limit=10" -H "$AUTH"
  curl -si $API/integrations/aws/<id> -H "$AUTH"
  curl -s -X PATCH $API/integrations/aws/<id> -H "$AUTH" -H 'content-type: application/json' -H 'If-Match: "1"' -d '{{"description": "prod account"}}'
  curl -s -X POST $API/integrations/aws/test-connection -H "$AUTH" -H 'content-type: application/json' -d '<the create form>'
  curl -s -X POST $API/integrations/aws/<id>/test-connection -H "$AUTH"
  curl -s "$API/integrations/aws/setup-policies?aws_account_id=123456789012&user_arn=arn:aws:iam::123456789012:user/InfraKitchenUser&role_name=InfraKitchenRole" -H "$AUTH"
  curl -s -X POST $API/integrations/aws/<id>/state-bucket -H "$AUTH"
  curl -s $API/integrations/aws/<id>/state-bucket -H "$AUTH"
  curl -s $API/integrations/aws/<id>/onboarding -H "$AUTH"     # a role_delegation integration
  curl -si -X DELETE $API/integrations/aws/<id> -H "$AUTH"
ready"#
    );
    gateway::serve(listener, gw).await?;
    Ok(())
}
