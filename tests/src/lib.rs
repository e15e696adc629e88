//! The local stack: what API Gateway, its authorizer and Lambda's event source mapping
//! do in AWS, played on this machine in front of the real handlers and a local AWS
//! (DynamoDB Local and moto server). Used by the `local-api` binary and by the end-to-end tests.

pub mod bootstrap;
pub mod gateway;
pub mod invoke;
pub mod jwt;
pub mod schedule;
pub mod streams;

use std::sync::Arc;

/// The integration id the `events/` payloads name; tests substitute a real one.
pub const EVENT_SAMPLE_ID: &str = "01JD5Z8Y6QJ4ZC3N1W7R8T9V0X";

pub use integrations_core::http::routes::{Function, Route, ROUTES};

/// The functions' dependencies, built once through the same wiring as each Lambda's `main`.
pub type Functions = integrations_core::wiring::Services;

/// Builds the functions for a local stack: the service's own AWS (table, key) and the
/// users' AWS (STS, S3) may differ in tests (e.g. a second moto that enforces IAM); in
/// AWS both are the same configuration. Onboarding's settings come from the environment
/// (`PLATFORM_PRINCIPAL_ARN`, `DELEGATION_TEMPLATE_URL`) when set, else the onboarding
/// route has none (see [`functions_with`]).
pub fn functions(
    sdk: &aws_config::SdkConfig,
    user_sdk: &aws_config::SdkConfig,
    stack: &bootstrap::Stack,
) -> Result<Arc<Functions>, String> {
    Ok(Arc::new(services(sdk, user_sdk, stack)?))
}

/// [`functions`] with these onboarding settings: the platform principal the local
/// test-connection and provision functions act as ([`bootstrap::platform_principal`]),
/// and the template URL the quick-create link names.
pub fn functions_with(
    sdk: &aws_config::SdkConfig,
    user_sdk: &aws_config::SdkConfig,
    stack: &bootstrap::Stack,
    onboarding: integrations_core::http::onboarding::OnboardingSettings,
) -> Result<Arc<Functions>, String> {
    Ok(Arc::new(
        services(sdk, user_sdk, stack)?.with_onboarding(onboarding),
    ))
}

fn services(
    sdk: &aws_config::SdkConfig,
    user_sdk: &aws_config::SdkConfig,
    stack: &bootstrap::Stack,
) -> Result<Functions, String> {
    let config = integrations_core::wiring::Config {
        table: stack.table.clone(),
        kms_key_id: stack.kms_key_id.clone(),
        hmac_key_id: Some(stack.hmac_key_id.clone()),
        page_token_ttl: integrations_core::wiring::page_token_ttl()?,
        provisioning: integrations_core::wiring::provisioning_settings()?,
        audit_retention: integrations_core::wiring::audit_retention()?,
        access: local_access(),
        platform_role_arn: integrations_core::wiring::platform_role_arn(),
    };
    Functions::new(sdk, user_sdk, &config)
}

/// The local stack's admin group: the gateway's admin token carries it.
pub const LOCAL_ADMIN_GROUP: &str = "integrations-admins";

/// Access settings of the local stack: the groups claim named by `GROUPS_CLAIM` (the local
/// OpenID provider's `groups`, which dev.sh sets; Cognito's `cognito:groups` otherwise, as
/// the in-process suites' identities carry it) and the admin group above.
pub fn local_access() -> integrations_core::http::access::AccessConfig {
    integrations_core::http::access::AccessConfig {
        groups_claim: std::env::var("GROUPS_CLAIM")
            .ok()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "cognito:groups".into()),
        admin_group: integrations_core::domain::GroupName::parse(LOCAL_ADMIN_GROUP).ok(),
    }
}

/// Invokes a function's HTTP handler with a request built from an API Gateway event.
pub async fn invoke_http(
    functions: &Functions,
    function: Function,
    req: lambda_http::Request,
) -> lambda_http::Response<lambda_http::Body> {
    use integrations_core::http;
    match function {
        Function::CreateIntegration => http::create::handle(&functions.integrations, req).await,
        Function::ManageIntegrations => http::manage::handle(&functions.manage, req).await,
        Function::TestConnection => {
            http::test_connection::handle(&functions.test_connection, req).await
        }
        Function::ProvisionBucket => http::state_bucket::handle(&functions.provisioner, req).await,
        // No route leads here (it has none): what API Gateway would answer.
        Function::HealthCheck => lambda_http::Response::builder()
            .status(404)
            .body(lambda_http::Body::from("{\"message\":\"Not Found\"}"))
            .unwrap_or_default(),
    }
}
