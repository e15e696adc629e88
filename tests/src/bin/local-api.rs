//! `local-api`: the whole system on this machine. Creates the table and KMS key in the
//! local AWS (DynamoDB Local for the table and its stream, moto server for the rest, as
//! `AWS_ENDPOINT_URL_DYNAMODB[_STREAMS]` and `AWS_ENDPOINT_URL` route them), then serves
//! every route on http://127.0.0.1:3000 through the real handlers, with a stand-in for
//! API Gateway's JWT authorizer and for the stream's event source mapping.

use local_harness::gateway::{self, Gateway};
use local_harness::invoke::Invoker;
use local_harness::{bootstrap, ROUTES};
use std::sync::Arc;

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
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
    let host = var("LOCAL_API_HOST", "127.0.0.1");
    let port = var("LOCAL_API_PORT", "3000");
    let token = var("LOCAL_API_TOKEN", "local-dev-token");
    let principal = var("LOCAL_API_PRINCIPAL", "local-developer");
    let table = var("TABLE_NAME", "infrakitchen-integrations");
    let key = var("KMS_KEY_ID", "alias/infrakitchen-integrations");

    let sdk = integrations_core::aws::load_config().await;
    let stack = bootstrap::ensure(&sdk, &table, &key).await?;
    if std::env::args().any(|a| a == "--bootstrap-only") {
        // For runs whose functions live elsewhere (sam local invoke): the table and key only.
        println!(
            "table: {}\nKMS key: {}\nHMAC key: {}",
            stack.table, stack.kms_key_id, stack.hmac_key_id
        );
        return Ok(());
    }
    let functions = local_harness::functions(&sdk, &sdk, &stack)?;
    let invoker = Arc::new(Invoker::from_env(functions)?);
    let gw = Arc::new(Gateway::with_invoker(
        invoker.clone(),
        token.clone(),
        principal.clone(),
    ));

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
        "API:         {base}  (token: {token}, principal: {principal}, group: {})",
        local_harness::gateway::LOCAL_TEAM
    );
    println!("other callers (tenant isolation): ");
    for (t, who) in local_harness::gateway::local_tenants() {
        println!("  {t:<26} {}", who.authorizer());
    }
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
    println!("setup page:  {base}/integrations/aws/setup  (enter the token above once)");
    println!(
        r#"
try:
  export API={base} AUTH="Authorization: Bearer {token}"
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
  curl -si -X DELETE $API/integrations/aws/<id> -H "$AUTH"
ready"#
    );
    gateway::serve(listener, gw).await?;
    Ok(())
}
