//! State bucket provisioning. Three triggers: the integrations table's DynamoDB stream
//! (filtered to pending buckets), the sweeper's EventBridge schedule, and
//! `POST|GET /integrations/aws/{id}/state-bucket`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ik_shared::telemetry::init();
    let sdk = ik_shared::aws::load_config().await;
    let settings = ik_shared::provision::Settings::from_env()?;
    let p = ik_shared::provisioner(
        &sdk,
        ik_shared::integration_service_from_env(&sdk)?,
        settings,
    );
    let p = &p;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        ik_shared::provision::dispatch(p, event.payload)
            .await
            .map_err(Error::from)
    }))
    .await
}
