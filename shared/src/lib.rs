//! Shared crate of the InfraKitchen AWS integration functions.
//!
//! - `model`, `validation`, `service`: the domain and its use cases;
//! - `ports`: the small traits the use cases need from the outside world;
//! - `aws`: adapters implementing them with the AWS SDK;
//! - `api`: the HTTP side (routes, problem responses) used by the Lambda handlers.

pub mod api;
pub mod aws;
pub mod connection;
pub mod error;
pub mod model;
pub mod policies;
pub mod ports;
pub mod provision;
pub mod service;
pub mod telemetry;
pub mod validation;

pub use error::{Error, FieldError};

/// Reads a required environment variable at start-up, naming it when missing.
pub fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("environment variable {name} must be set"))
}

/// Everything the integration routes need, built once per process.
pub fn integration_service(
    sdk: &aws_config::SdkConfig,
    table: &str,
    kms_key_id: &str,
) -> service::IntegrationService {
    let store = aws::dynamo::DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table);
    let sealer = aws::kms::KmsSealer::new(aws_sdk_kms::Client::new(sdk), kms_key_id);
    service::IntegrationService::new(std::sync::Arc::new(store), std::sync::Arc::new(sealer))
}

/// `integration_service` configured from `TABLE_NAME` and `KMS_KEY_ID`.
pub fn integration_service_from_env(
    sdk: &aws_config::SdkConfig,
) -> Result<service::IntegrationService, String> {
    Ok(integration_service(
        sdk,
        &env("TABLE_NAME")?,
        &env("KMS_KEY_ID")?,
    ))
}

/// Everything the test-connection function needs, built once per process.
pub fn test_connection_deps(
    sdk: &aws_config::SdkConfig,
    integrations: service::IntegrationService,
) -> api::TestConnectionDeps {
    let user = std::sync::Arc::new(aws::user::UserAws::new(sdk));
    api::TestConnectionDeps {
        integrations,
        tester: connection::ConnectionTester::new(user.clone(), user),
    }
}

/// Everything the provision-bucket function needs, built once per process.
pub fn provisioner(
    sdk: &aws_config::SdkConfig,
    integrations: service::IntegrationService,
    settings: provision::Settings,
) -> provision::Provisioner {
    let user = std::sync::Arc::new(aws::user::UserAws::new(sdk));
    provision::Provisioner::new(integrations, user.clone(), user, settings)
}
