//! `POST /integrations/aws`: validates the form, seals the secret with KMS, stores it.

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    ik_shared::telemetry::init();
    let sdk = ik_shared::aws::load_config().await;
    let svc = ik_shared::integration_service_from_env(&sdk)?;
    let svc = &svc;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(ik_shared::api::create_integration(svc, req).await)
    }))
    .await
}
