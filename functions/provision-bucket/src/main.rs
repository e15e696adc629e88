//! State bucket provisioning. Three triggers: the integrations table's DynamoDB stream
//! (filtered to pending buckets), the sweeper's EventBridge schedule, and
//! `POST|GET /integrations/aws/{id}/state-bucket`; `events::provision_bucket` tells them apart.

use integrations_core::{aws, events, telemetry, wiring};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let services = wiring::Services::from_env(&aws::load_config().await)?;
    let provisioner = &services.provisioner;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        events::provision_bucket::handle(provisioner, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
