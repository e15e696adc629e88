//! The deployed functions' panic strategy. cargo-lambda builds release binaries with
//! `panic = "abort"` unless the profile says otherwise; the workspace says `unwind`, so a
//! panic in a handler is caught by lambda_runtime and reported as that invocation's error
//! while the instance stays warm. With `abort` the process dies: the caller gets Lambda's
//! `Runtime.ExitError` and the next request pays a cold start.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn the_release_profile_unwinds() {
    let manifest = include_str!("../../Cargo.toml");
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("the workspace has a [profile.release]");
    let panic: Vec<&str> = release
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("panic"))
        .collect();
    assert_eq!(panic, ["panic = \"unwind\""], "{release}");
}

/// What the stand-in Runtime API hands out and what it was told.
#[derive(Default)]
struct RuntimeApi {
    events: Mutex<Vec<Value>>,
    answers: Mutex<Vec<(String, String, Value)>>,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> axum::response::Response {
    let event = {
        let mut events = api.events.lock().unwrap();
        (!events.is_empty()).then(|| events.remove(0))
    };
    let Some(event) = event else {
        // Nothing more to invoke: hold the long poll, as Lambda does between requests.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return axum::response::Response::new(axum::body::Body::empty());
    };
    let id = event["id"].as_str().unwrap().to_owned();
    axum::response::Response::builder()
        .header("lambda-runtime-aws-request-id", id)
        .header("lambda-runtime-deadline-ms", "4102444800000")
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:probe",
        )
        .header("content-type", "application/json")
        .body(axum::body::Body::from(event.to_string()))
        .unwrap()
}

async fn answer(
    State(api): State<Arc<RuntimeApi>>,
    Path((id, kind)): Path<(String, String)>,
    body: String,
) -> &'static str {
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    api.answers.lock().unwrap().push((id, kind, body));
    "{}"
}

#[tokio::test]
async fn a_panicking_invocation_is_an_error_and_the_process_serves_the_next() {
    let api = Arc::new(RuntimeApi::default());
    api.events.lock().unwrap().extend([
        json!({"id": "first", "panic": true}),
        json!({"id": "second", "n": 2}),
    ]);
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut probe = std::process::Command::new(env!("CARGO_BIN_EXE_panic-probe"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "probe")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the probe starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while api.answers.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let still_running = probe.try_wait().unwrap().is_none();
    let _ = probe.kill();
    let answers = api.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 2, "{answers:?}");
    let (id, kind, error) = &answers[0];
    assert_eq!((id.as_str(), kind.as_str()), ("first", "error"), "{error}");
    assert!(
        error.to_string().contains("the probe panics as asked"),
        "{error}"
    );
    assert_eq!(
        answers[1],
        (
            "second".into(),
            "response".into(),
            json!({"id": "second", "n": 2})
        )
    );
    assert!(still_running, "the process survived its panic");
}
