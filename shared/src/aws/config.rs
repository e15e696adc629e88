//! The standard AWS configuration, read from the environment variables Lambda (and
//! `sam local`, dev.sh and the tests) set: region, credentials, endpoint URLs (global and
//! per service), FIPS and dual-stack endpoints.
//!
//! Why not `aws_config::defaults(..).load()`: its loader links every credential source
//! a function never meets on Lambda (profile files, IMDS, ECS, web identity through a
//! second STS client, SSO), about 200 KB of code in each binary (`cargo bloat`), and it
//! reads `~/.aws/config` at every cold start. Lambda hands a function its role's
//! credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
//! those variables, with the SDK's own provider, are what is read here. Locally, export
//! credentials (`aws configure export-credentials --format env`) instead of a profile.

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SystemTimeSource;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// What the configuration reads from the environment, taken once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    region: Option<String>,
    endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_<SERVICE>` variables, by their full name.
    service_endpoints: Vec<(String, String)>,
    use_fips: Option<bool>,
    use_dual_stack: Option<bool>,
}

impl Environment {
    /// From the process's environment.
    pub fn from_process() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// From name/value pairs, as the SDK's loader reads them: `AWS_REGION` before
    /// `AWS_DEFAULT_REGION`; empty values count as unset; endpoint URLs are ignored when
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, v)| k.starts_with("AWS_") && !v.trim().is_empty())
            .collect();
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let flag = |name: &str| get(name).map(|v| v.eq_ignore_ascii_case("true"));
        let ignore_endpoints = flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").unwrap_or(false);
        let prefix = format!("{ENDPOINT_URL}_");
        Environment {
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            endpoint_url: get(ENDPOINT_URL).filter(|_| !ignore_endpoints),
            service_endpoints: if ignore_endpoints {
                Vec::new()
            } else {
                vars.iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.trim().to_owned()))
                    .collect()
            },
            use_fips: flag("AWS_USE_FIPS_ENDPOINT"),
            use_dual_stack: flag("AWS_USE_DUALSTACK_ENDPOINT"),
        }
    }

    /// The shared configuration: this environment plus the SDK behaviour every client
    /// gets (the HTTPS client, retries and timeouts are set by the caller).
    pub fn sdk_config(&self) -> aws_types::sdk_config::Builder {
        let mut b = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(
                EnvironmentVariableCredentialsProvider::new(),
            ))
            .sleep_impl(TokioSleep::new())
            .time_source(SystemTimeSource::new())
            .service_config(ServiceEndpoints(self.service_endpoints.clone()));
        b.set_region(self.region.clone().map(Region::new));
        b.set_endpoint_url(self.endpoint_url.clone());
        b.set_use_fips(self.use_fips);
        b.set_use_dual_stack(self.use_dual_stack);
        b
    }
}

/// `AWS_ENDPOINT_URL_<SERVICE>`: a client asks with its service id (`DynamoDB`, `S3`);
/// the variable is that id upper-cased with spaces as underscores, and falls back to
/// `AWS_ENDPOINT_URL`.
#[derive(Debug)]
struct ServiceEndpoints(Vec<(String, String)>);

impl LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let name = format!(
            "{}_{}",
            key.env(),
            key.service_id().to_uppercase().replace(' ', "_")
        );
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::body::SdkBody;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn endpoint_of(e: &Environment, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env(ENDPOINT_URL)
            .profile("endpoint_url")
            .build()
            .ok()?;
        ServiceEndpoints(e.service_endpoints.clone()).load_config(key)
    }

    #[test]
    fn aws_region_comes_before_the_default_region_and_empty_is_unset() {
        let e = env(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_REGION", "us-east-2"),
        ]);
        assert_eq!(e.region.as_deref(), Some("us-east-2"));
        let e = env(&[("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_REGION", " ")]);
        assert_eq!(e.region.as_deref(), Some("eu-west-1"));
        assert_eq!(env(&[]).region, None);
        let sdk = env(&[("AWS_REGION", "us-east-2")]).sdk_config().build();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-2"));
    }

    #[test]
    fn a_service_endpoint_wins_over_the_global_one_for_that_service_only() {
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL_SOME_SERVICE", "http://127.0.0.1:7000"),
        ]);
        assert_eq!(
            endpoint_of(&e, "DynamoDB").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(
            endpoint_of(&e, "Some Service").as_deref(),
            Some("http://127.0.0.1:7000")
        );
        // No service variable: the client falls back to the config's global endpoint.
        assert_eq!(endpoint_of(&e, "S3"), None);
        let sdk = e.sdk_config().build();
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn ignore_configured_endpoint_urls_drops_every_endpoint() {
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ]);
        assert_eq!(e.endpoint_url, None);
        assert_eq!(endpoint_of(&e, "S3"), None);
    }

    #[test]
    fn fips_and_dual_stack_are_read_as_the_sdk_reads_them() {
        let e = env(&[
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "false"),
        ]);
        let sdk = e.sdk_config().build();
        assert_eq!(sdk.use_fips(), Some(true));
        assert_eq!(sdk.use_dual_stack(), Some(false));
        assert_eq!(env(&[]).sdk_config().build().use_fips(), None);
    }

    /// An HTTP client that answers every request with a 400 and keeps its URI.
    #[derive(Debug, Clone, Default)]
    struct Uris(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl HttpConnector for Uris {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(request.uri().to_owned());
            }
            let status = 400u16.try_into().expect("a status");
            HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::empty())))
        }
    }

    impl HttpClient for Uris {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    #[tokio::test]
    async fn each_client_calls_its_service_endpoint_or_the_global_one() {
        let e = env(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ]);
        let uris = Uris::default();
        let sdk = e
            .sdk_config()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
            .http_client(uris.clone())
            .build();
        let _ = aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await;
        let _ = aws_sdk_kms::Client::new(&sdk).list_keys().send().await;
        let seen = uris.0.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(seen[0].starts_with("http://127.0.0.1:8000"), "{seen:?}");
        assert!(
            seen.last()
                .is_some_and(|u| u.starts_with("http://127.0.0.1:5000")),
            "{seen:?}"
        );
    }
}
