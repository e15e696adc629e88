//! `POST /integrations/aws`: validates the form, seals the secret with KMS, stores it.
//! Routes: `integrations_core::http::create::ROUTES`.

use integrations_core::{aws, http, telemetry, wiring};
use lambda_http::{service_fn, Error, Request};

// A Lambda instance serves one request at a time: a current-thread runtime has no
// workers to wake or hand work between (a third less CPU per request, BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Only this function's use case: the binary links only the clients it uses.
    let deps = &wiring::integrations_from_env(&aws::load_config())?;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(http::create::handle(deps, req).await)
    }))
    .await
}
