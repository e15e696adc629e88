//! A Lambda function whose handler panics on `{"panic": true}` and echoes anything else.
//! `tests/tests/panic_strategy.rs` runs it under a stand-in Runtime API to show what the
//! functions' panic strategy (`panic = "unwind"`, set in the workspace's release profile)
//! buys: a panicking invocation is reported as that invocation's error, and the same
//! process serves the next one.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        if event.payload["panic"] == true {
            panic!("the probe panics as asked");
        }
        Ok::<_, Error>(event.payload)
    }))
    .await
}
