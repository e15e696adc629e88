//! Test Connection: `POST /integrations/aws/test-connection`,
//! `POST /integrations/aws/{id}/test-connection`, `GET /integrations/aws/setup-policies`.

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ik_shared::telemetry::init();
    let sdk = ik_shared::aws::load_config().await;
    let deps =
        ik_shared::test_connection_deps(&sdk, ik_shared::integration_service_from_env(&sdk)?);
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(ik_shared::api::test_connection(deps, req).await)
    }))
    .await
}
