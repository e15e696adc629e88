//! `GET /integrations/aws`, `GET|PATCH|DELETE /integrations/aws/{id}`,
//! `GET /integrations/aws/{id}/{history,onboarding}`, and the public
//! setup page `GET|HEAD /integrations/aws/setup`, `GET /integrations/aws/setup/{app.js,
//! app.css,config.json}`.
//! Routes: `integrations_core::http::manage::ROUTES` and `http::setup_page::ROUTES`.

use integrations_core::{aws, http, telemetry, wiring};
use lambda_http::{service_fn, Error, Request};

// A Lambda instance serves one request at a time: a current-thread runtime has no
// workers to wake or hand work between (a third less CPU per request, BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Only this function's use case: the binary links only the clients it uses. Onboarding's
    // settings (PLATFORM_PRINCIPAL_ARN, DELEGATION_TEMPLATE_URL) are read here, once.
    let deps = &wiring::manage_from_env(&aws::load_config())?;
    // The setup page's sign-in settings, read once here rather than on its first request.
    http::setup_page::init();
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(http::manage::handle(deps, req).await)
    }))
    .await
}
