//! State bucket provisioning. Three triggers: the integrations table's DynamoDB stream
//! (filtered to pending buckets), the sweeper's EventBridge schedule, and
//! `POST|GET /integrations/aws/{id}/state-bucket`; `events::provision_bucket` tells them apart.

use integrations_core::{aws, events, telemetry, wiring};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// A Lambda instance serves one request at a time: a current-thread runtime has no
// workers to wake or hand work between (a third less CPU per request, BENCHMARKS.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    // Only this function's use case: the binary links only the clients it uses.
    let provisioner = &wiring::provisioner_from_env(&aws::load_config())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        events::provision_bucket::handle(provisioner, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
