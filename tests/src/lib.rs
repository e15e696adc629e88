//! The local stack: what API Gateway, its authorizer and Lambda's event source mapping
//! do in AWS, played on this machine in front of the real handlers and a local AWS
//! (moto server). Used by the `local-api` binary and by the end-to-end tests.

pub mod bootstrap;
pub mod gateway;
pub mod schedule;
pub mod streams;

use std::sync::Arc;

/// The integration id the `events/` payloads name; tests substitute a real one.
pub const EVENT_SAMPLE_ID: &str = "01JD5Z8Y6QJ4ZC3N1W7R8T9V0X";

/// The functions of template.yaml, by their binary names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    CreateIntegration,
    ManageIntegrations,
    TestConnection,
    ProvisionBucket,
}

impl Function {
    pub fn binary(self) -> &'static str {
        match self {
            Function::CreateIntegration => "create-integration",
            Function::ManageIntegrations => "manage-integrations",
            Function::TestConnection => "test-connection",
            Function::ProvisionBucket => "provision-bucket",
        }
    }

    pub fn from_binary(name: &str) -> Option<Self> {
        [
            Function::CreateIntegration,
            Function::ManageIntegrations,
            Function::TestConnection,
            Function::ProvisionBucket,
        ]
        .into_iter()
        .find(|f| f.binary() == name)
    }
}

/// One HTTP API route: `METHOD /path/{param}` served by a function.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
}

/// Every route of the HTTP API. template.yaml declares the same set (a test checks).
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/integrations/aws",
        function: Function::CreateIntegration,
    },
    Route {
        method: "GET",
        path: "/integrations/aws",
        function: Function::ManageIntegrations,
    },
    Route {
        method: "GET",
        path: "/integrations/aws/{id}",
        function: Function::ManageIntegrations,
    },
    Route {
        method: "PATCH",
        path: "/integrations/aws/{id}",
        function: Function::ManageIntegrations,
    },
    Route {
        method: "DELETE",
        path: "/integrations/aws/{id}",
        function: Function::ManageIntegrations,
    },
    Route {
        method: "POST",
        path: "/integrations/aws/test-connection",
        function: Function::TestConnection,
    },
    Route {
        method: "POST",
        path: "/integrations/aws/{id}/test-connection",
        function: Function::TestConnection,
    },
    Route {
        method: "GET",
        path: "/integrations/aws/setup-policies",
        function: Function::TestConnection,
    },
    Route {
        method: "POST",
        path: "/integrations/aws/{id}/state-bucket",
        function: Function::ProvisionBucket,
    },
    Route {
        method: "GET",
        path: "/integrations/aws/{id}/state-bucket",
        function: Function::ProvisionBucket,
    },
];

/// The handlers' dependencies, built once, as each Lambda's `main` does.
#[derive(Clone)]
pub struct Functions {
    pub integrations: ik_shared::service::IntegrationService,
    pub test_connection: ik_shared::api::TestConnectionDeps,
    pub provisioner: ik_shared::provision::Provisioner,
}

impl Functions {
    pub fn new(sdk: &aws_config::SdkConfig, stack: &bootstrap::Stack) -> Arc<Self> {
        Self::with_user_sdk(sdk, sdk, stack)
    }

    /// Tests only: the service's own AWS (table, key) and the users' AWS (STS, S3) apart,
    /// e.g. a second moto that enforces IAM. In AWS both are the same configuration.
    pub fn with_user_sdk(
        sdk: &aws_config::SdkConfig,
        user_sdk: &aws_config::SdkConfig,
        stack: &bootstrap::Stack,
    ) -> Arc<Self> {
        let integrations = ik_shared::integration_service(sdk, &stack.table, &stack.kms_key_id);
        Arc::new(Self {
            test_connection: ik_shared::test_connection_deps(user_sdk, integrations.clone()),
            provisioner: ik_shared::provisioner(user_sdk, integrations.clone(), settings()),
            integrations,
        })
    }

    /// Invokes a function's HTTP handler with a request built from an API Gateway event.
    pub async fn invoke_http(
        &self,
        function: Function,
        req: lambda_http::Request,
    ) -> lambda_http::Response<lambda_http::Body> {
        match function {
            Function::CreateIntegration => {
                ik_shared::api::create_integration(&self.integrations, req).await
            }
            Function::ManageIntegrations => {
                ik_shared::api::manage_integrations(&self.integrations, req).await
            }
            Function::TestConnection => {
                ik_shared::api::test_connection(&self.test_connection, req).await
            }
            Function::ProvisionBucket => ik_shared::api::state_bucket(&self.provisioner, req).await,
        }
    }
}

/// Provisioning settings from the environment (as in Lambda), defaults otherwise.
fn settings() -> ik_shared::provision::Settings {
    ik_shared::provision::Settings::from_env().unwrap_or_default()
}
