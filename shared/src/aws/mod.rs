//! AWS SDK adapters for the ports, and the one SDK configuration they share.

pub mod config;
pub mod customer;
pub mod dynamo;
pub mod iam;
pub mod kms;
pub mod permissions;
pub mod platform;
pub mod s3admin;
pub mod s3drift;

use crate::error::{Dependency, Error};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::time::Duration;

/// Timeouts for the service's own calls (DynamoDB, KMS). Every call is bounded; API
/// Gateway gives up after 30 s, so one request's worst case stays well under that.
pub fn service_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(4))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(9))
        .build()
}

/// The HTTPS client every SDK client uses: hyper with rustls on ring (the SDK's default
/// would bring aws-lc). Every configuration must get it: a client without one fails its
/// first call, so no path can fall back silently.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(OnFirstUse(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https(),
    ))
}

/// The SDK's HTTPS client, minus one thing: when an SDK client is constructed, the SDK
/// builds a throw-away connector "so that native certs load at client initialization",
/// and each such build parses the whole system trust store again. A function builds two
/// to four clients at start, so start-up parsed it that many times, and the first
/// request then built the connector it keeps anyway. Here connectors are built only when
/// a request needs one (and cached by the SDK's client, as before).
#[derive(Debug)]
struct OnFirstUse(SharedHttpClient);

impl HttpClient for OnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The standard AWS configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`, ...: [`config`]), read once per process, so the same binary runs
/// against AWS, moto or LocalStack.
pub fn load_config() -> SdkConfig {
    config::Environment::from_process()
        .sdk_config()
        .http_client(http_client())
        .timeout_config(service_timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .build()
}

/// S3 needs path-style addressing behind a plain `host:port` endpoint (moto, LocalStack).
pub fn s3_config(sdk: &SdkConfig) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some())
}

/// Turns a failed SDK call into a retryable `Unavailable`, keeping the SDK error as its
/// source; it is logged once, where it is mapped. SDK error texts carry codes and request
/// ids, never request payloads.
pub fn unavailable<E, R>(
    dependency: Dependency,
    operation: &'static str,
    err: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, secs) = match &err {
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), 1),
        SdkError::DispatchFailure(_) => ("ConnectionFailure".to_owned(), 1),
        SdkError::ResponseError(_) => ("InvalidResponse".to_owned(), 2),
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or("Unknown").to_owned();
            let secs = if crate::ports::THROTTLED.contains(&code.as_str()) {
                1
            } else {
                5
            };
            (code, secs)
        }
        _ => ("RequestNotSent".to_owned(), 5),
    };
    Error::Unavailable {
        dependency,
        operation,
        code,
        retry_after: Duration::from_secs(secs),
        source: Some(Box::new(err)),
    }
}
