//! The floor for the runtime benchmark (`scripts/bench.sh`): a hello-world
//! `lambda_runtime` function as in lambda_runtime's examples (`#[tokio::main]`, a
//! multi-thread runtime; the functions run a current-thread one) with the functions'
//! release profile, but no SDK, TLS, tracing or use case. Its init and per-request
//! cost is what any Rust function pays; the functions' difference to it is theirs.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async move {
        // Shaped like an API Gateway answer so the benchmark checks it like the others'.
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
