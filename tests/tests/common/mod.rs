//! Test harness: a fresh table (in DynamoDB Local) and KMS key (in moto) per test, the
//! local gateway in front of the real handlers on an ephemeral port, and a small HTTP
//! client.
#![allow(dead_code)]

pub mod faults;
pub mod iam;
pub mod terraform;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_types::origin::Origin;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use local_harness::bootstrap::{self, Stack};
use local_harness::gateway::{self, Gateway};
use local_harness::Functions;
use serde_json::Value;
use std::sync::Arc;

pub const TOKEN: &str = "test-token";
pub const PRINCIPAL: &str = "tester@example.com";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

pub fn moto_url() -> String {
    std::env::var("IK_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

/// DynamoDB Local: the service's table and its stream (`IK_DYNAMODB_URL`, set by
/// scripts/test.sh; dev.sh's default port otherwise).
pub fn dynamodb_url() -> String {
    std::env::var("IK_DYNAMODB_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// SDK configuration for a local endpoint, with the service's own timeouts. The open
/// moto (`moto_url()`) stands for the service's own account: its DynamoDB and DynamoDB
/// Streams calls go to DynamoDB Local (`dynamodb_url()`), as `AWS_ENDPOINT_URL_DYNAMODB`
/// and `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` route them in dev.sh. Any other endpoint (the
/// moto that enforces IAM, a dead or hanging port) takes every call.
pub async fn sdk_for(endpoint: &str, key: &str, secret: &str) -> SdkConfig {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(integrations_core::aws::http_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .timeout_config(integrations_core::aws::service_timeouts())
        .load()
        .await;
    if endpoint != moto_url() {
        return sdk;
    }
    with_dynamodb_endpoint(sdk, dynamodb_url())
}

/// An endpoint nobody listens on: a loopback port held by a socket that is bound but never
/// listens, so a connection is refused. Binding then closing a port is not enough: a test
/// running beside this one can bind the freed port (CI once got a gateway's 404 there).
/// Without SO_REUSEADDR on this socket no one else can bind the port while it is held.
pub fn closed_endpoint() -> (String, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(false).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (format!("http://{addr}"), socket)
}

/// Sends DynamoDB and DynamoDB Streams to `url`, every other service to the configuration's
/// endpoint: what the per-service endpoint variables do for a configuration from the
/// environment. (A client ignores them when the endpoint was set in code, so the origin of
/// the shared endpoint is marked as coming from the environment.)
pub fn with_dynamodb_endpoint(sdk: SdkConfig, url: String) -> SdkConfig {
    #[derive(Debug)]
    struct DynamoDbEndpoint(String);
    impl LoadServiceConfig for DynamoDbEndpoint {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            let dynamodb = matches!(key.service_id(), "DynamoDB" | "DynamoDB Streams");
            (dynamodb && key.env() == "AWS_ENDPOINT_URL").then(|| self.0.clone())
        }
    }
    let mut b = sdk.into_builder();
    b.insert_origin("endpoint_url", Origin::shared_environment_variable());
    b.service_config(DynamoDbEndpoint(url)).build()
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fields named in a problem response's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct TestEnv {
    pub base: String,
    pub http: reqwest::Client,
    pub sdk: SdkConfig,
    pub stack: Stack,
    pub functions: Arc<Functions>,
    pub gateway: Arc<Gateway>,
}

impl TestEnv {
    /// The stack's table through the service's own DynamoDB adapter, for tests that set
    /// up states the API cannot reach (a crashed run, a lost event).
    #[allow(dead_code)]
    pub fn store(&self) -> Arc<dyn integrations_core::ports::IntegrationStore> {
        Arc::new(integrations_core::aws::dynamo::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.stack.table,
        ))
    }

    /// The operator's consistency check of records and name guards, on this env's table.
    pub async fn name_check(&self) -> integrations_core::aws::dynamo::NameCheck {
        integrations_core::aws::dynamo::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &self.stack.table,
        )
        .check_names()
        .await
        .unwrap()
    }

    pub async fn new() -> Self {
        let sdk = sdk_for(&moto_url(), "test", "test").await;
        Self::with_sdk(sdk).await
    }

    pub async fn with_sdk(sdk: SdkConfig) -> Self {
        let stack = bootstrap::ensure(&sdk, &unique("it"), &unique("alias/it"))
            .await
            .expect("bootstrap the local stack (DynamoDB Local and moto)");
        Self::serve(sdk, stack).await
    }

    /// Serves the gateway over an existing stack with the given SDK configuration.
    pub async fn serve(sdk: SdkConfig, stack: Stack) -> Self {
        let functions =
            local_harness::functions(&sdk, &sdk, &stack).expect("provisioning settings");
        Self::serve_functions(sdk, stack, functions).await
    }

    pub async fn serve_functions(sdk: SdkConfig, stack: Stack, functions: Arc<Functions>) -> Self {
        let gateway = Arc::new(Gateway::new(
            functions.clone(),
            TOKEN.into(),
            PRINCIPAL.into(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(gateway::serve(listener, gateway.clone()));
        Self {
            base,
            http: reqwest::Client::new(),
            sdk,
            stack,
            functions,
            gateway,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send_as(TOKEN, method, path, body, headers).await
    }

    /// A request by the caller the bearer token stands for (`gateway::local_tenants`).
    pub async fn send_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{}", self.base, path))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("local API answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        record(method, path, status, &headers, &body);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body), &[]).await
    }

    /// Every raw item in the table (small test tables only).
    pub async fn raw_items(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(&self.stack.table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }
}

pub fn form(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "description": "test account",
        "labels": ["test"],
        "aws_account_id": "123456789012",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
    })
}

impl TestEnv {
    /// The gateway over a fresh stack in the local AWS, with users' calls (STS, S3) going
    /// to `user_sdk` instead.
    pub async fn with_user_sdk(user_sdk: SdkConfig) -> Self {
        let sdk = sdk_for(&moto_url(), "test", "test").await;
        let stack = bootstrap::ensure(&sdk, &unique("it"), &unique("alias/it"))
            .await
            .expect("bootstrap the local stack (DynamoDB Local and moto)");
        let functions =
            local_harness::functions(&sdk, &user_sdk, &stack).expect("provisioning settings");
        Self::serve_functions(sdk, stack, functions).await
    }
}

/// Everything the code under test logs, at the most verbose level the service allows.
pub static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::prelude::*;
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(|| LogWriter)
                    // The most verbose setting an operator could choose: trace, with the
                    // service's own caps on payload-carrying SDK targets.
                    .with_filter(integrations_core::telemetry::filter("trace")),
            )
            .try_init();
    });
}

/// Whether the logs hold `needle` as text or base64 (as in a KMS request body).
pub fn logs_contain(needle: &str) -> bool {
    use base64::Engine as _;
    let logs = LOGS.lock().unwrap();
    let text = String::from_utf8_lossy(&logs);
    let b64 = base64::engine::general_purpose::STANDARD.encode(needle);
    // Any 3-byte-aligned slice of the encoding shows up whatever precedes it.
    text.contains(needle) || text.contains(&b64[..b64.len().min(40)])
}

pub fn logs_len() -> usize {
    LOGS.lock().unwrap().len()
}

impl TestEnv {
    /// Plays the event source mapping for this env's table, as the local API does.
    pub fn start_stream_poller(&self) {
        let arn = self.stack.stream_arn.clone().expect("table has a stream");
        tokio::spawn(local_harness::streams::run(
            self.sdk.clone(),
            arn,
            Arc::new(local_harness::invoke::Invoker::InProcess(
                self.functions.clone(),
            )),
        ));
    }

    /// Waits until the state bucket of `id` is `ready` or `failed`.
    pub async fn settled_bucket(&self, id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = self
                .get(&format!("/integrations/aws/{id}/state-bucket"))
                .await;
            let status = r.body["status"].as_str().unwrap_or("").to_owned();
            if status == "ready" || status == "failed" {
                return r.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "bucket never settled: {}",
                r.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// A random 12-digit account id, so tests never share a bucket name.
/// A Test Connection report's step by name (panics, showing the report, if absent).
pub fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {report}"))
}

pub fn random_account() -> String {
    let n = ulid::Ulid::new().random() % 900_000_000_000 + 100_000_000_000;
    n.to_string()
}

/// Appends each response to `$IK_RESPONSES` (JSON lines) for the OpenAPI contract check
/// (scripts/check_openapi.py), keyed by the route template it was served by (`null` for a
/// path no route matches, which the gateway answers). Without the variable (a plain
/// `cargo test`) nothing is recorded; with it, a response that cannot be written fails
/// the test, so the check never reads a partial recording.
pub fn record(
    method: &str,
    path: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    use std::io::Write;
    static FILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let Ok(file) = std::env::var("IK_RESPONSES") else {
        return;
    };
    let route_path = path.split('?').next().unwrap_or(path);
    let route = match integrations_core::http::routes::match_path(method, route_path) {
        integrations_core::http::routes::RouteMatch::Found(route, _) => Some(route.path()),
        _ => None,
    };
    let hdrs: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(v.to_str().unwrap_or("").to_owned()),
            )
        })
        .collect();
    let line = serde_json::json!({
        "method": method,
        "route": route,
        "path": route_path,
        "status": status,
        "content_type": headers.get("content-type").and_then(|v| v.to_str().ok()),
        "headers": hdrs,
        "body": if body.is_null() { Value::Null } else { body.clone() },
    });
    let _guard = FILE.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut f| writeln!(f, "{line}"))
        .unwrap_or_else(|e| panic!("recording a response in {file}: {e}"));
}
