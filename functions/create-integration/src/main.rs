//! `POST /integrations/aws`: validates the form, seals the secret with KMS, stores it.
//! Routes: `integrations_core::http::create::ROUTES`.

use integrations_core::{aws, http, telemetry, wiring};
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let services = wiring::Services::from_env(&aws::load_config().await)?;
    let deps = &services.integrations;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(http::create::handle(deps, req).await)
    }))
    .await
}
