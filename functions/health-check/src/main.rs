//! The scheduled health check: re-tests every integration, repairs drifted state bucket
//! hardening, and logs one Embedded Metric Format summary per run
//! (`events::health_check`).

use integrations_core::{aws, events, telemetry, wiring};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One run at a time per instance; the checks inside it run concurrently on one thread
// (they wait on the network).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let health = &wiring::health_check_from_env(&aws::load_config())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        events::health_check::handle(health, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
