//! Where the functions run for the local stand-ins: in this process (the default: fast,
//! one binary), or as the real `bootstrap` binaries behind a Lambda Invoke API, served by
//! `sam local start-lambda` (in containers, under SAM's Runtime Interface Emulator) or by
//! `cargo lambda watch` (on the host). The gateway, the stream poller and the schedule
//! send the same events either way.
//!
//!   LOCAL_LAMBDA_ENDPOINT  e.g. http://127.0.0.1:3001: invoke through that API
//!   LOCAL_LAMBDA_NAMES     `template` (logical ids, as sam names them; the default) or
//!                          `binary` (binary names, as cargo lambda names them)

use crate::Function;
use crate::Functions;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How functions are named by the Invoke API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// template.yaml's logical ids (`CreateIntegrationFunction`): `sam local start-lambda`.
    Template,
    /// The binaries' names (`create-integration`): `cargo lambda watch`.
    Binary,
}

pub enum Invoker {
    InProcess(Arc<Functions>),
    LambdaApi {
        endpoint: String,
        naming: Naming,
        client: reqwest::Client,
    },
}

/// The logical id of a function in template.yaml.
pub fn logical_id(function: Function) -> &'static str {
    match function {
        Function::CreateIntegration => "CreateIntegrationFunction",
        Function::ManageIntegrations => "ManageIntegrationsFunction",
        Function::TestConnection => "TestConnectionFunction",
        Function::ProvisionBucket => "ProvisionBucketFunction",
        Function::HealthCheck => "HealthCheckFunction",
    }
}

/// What one invocation answered: the function's payload, or why there is none.
pub type Invocation = Result<Value, String>;

impl Invoker {
    /// In process unless `LOCAL_LAMBDA_ENDPOINT` names an Invoke API.
    pub fn from_env(functions: Arc<Functions>) -> Result<Self, String> {
        let Some(endpoint) = std::env::var("LOCAL_LAMBDA_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
        else {
            return Ok(Invoker::InProcess(functions));
        };
        let naming = match std::env::var("LOCAL_LAMBDA_NAMES").as_deref() {
            Err(_) | Ok("") | Ok("template") => Naming::Template,
            Ok("binary") => Naming::Binary,
            Ok(other) => {
                return Err(format!(
                    "LOCAL_LAMBDA_NAMES must be `template` or `binary`, not {other:?}"
                ))
            }
        };
        // A cold container (first call, or after a rebuild) takes seconds; the longest
        // function timeout (provisioning, 120 s) bounds a warm call.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(150))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Invoker::LambdaApi {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            naming,
            client,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Invoker::InProcess(_) => "in this process".to_owned(),
            Invoker::LambdaApi {
                endpoint, naming, ..
            } => format!("through the Lambda Invoke API at {endpoint} ({naming:?} names)"),
        }
    }

    /// Invokes `function` with `payload` (any event), as Lambda's synchronous Invoke does.
    pub async fn invoke(&self, function: Function, payload: Value) -> Invocation {
        match self {
            Invoker::InProcess(functions) => in_process(functions, function, payload).await,
            Invoker::LambdaApi {
                endpoint,
                naming,
                client,
            } => {
                let name = match naming {
                    Naming::Template => logical_id(function),
                    Naming::Binary => function.binary(),
                };
                let url = format!("{endpoint}/2015-03-31/functions/{name}/invocations");
                let resp = client
                    .post(&url)
                    .json(&payload)
                    .send()
                    .await
                    .map_err(|e| format!("invoking {name} at {url}: {e}"))?;
                let status = resp.status();
                // A function error is reported in this header with the error as payload.
                let failed = resp.headers().get("x-amz-function-error").is_some();
                let text = resp
                    .text()
                    .await
                    .map_err(|e| format!("reading {name}'s answer: {e}"))?;
                if !status.is_success() || failed {
                    return Err(format!("{name} failed ({status}): {text}"));
                }
                serde_json::from_str(&text)
                    .map_err(|e| format!("{name} answered no JSON ({e}): {text}"))
            }
        }
    }

    /// Invokes a function with an API Gateway v2 event and reads its HTTP answer.
    pub async fn http(
        &self,
        function: Function,
        event: &Value,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        if let Invoker::InProcess(functions) = self {
            // The handler's own response, without a JSON round trip.
            return match lambda_http::request::from_str(&event.to_string()) {
                Ok(req) => crate::gateway::response_parts(
                    crate::invoke_http(functions, function, req).await,
                ),
                Err(e) => bad_gateway(&format!("event does not deserialise: {e}")),
            };
        }
        match self.invoke(function, event.clone()).await {
            Ok(answer) => apigw_response(&answer),
            Err(e) => bad_gateway(&e),
        }
    }
}

async fn in_process(functions: &Functions, function: Function, payload: Value) -> Invocation {
    if function == Function::HealthCheck {
        return integrations_core::events::health_check::handle(&functions.health, payload).await;
    }
    if function == Function::ProvisionBucket {
        return integrations_core::events::provision_bucket::handle(
            &functions.provisioner,
            payload,
        )
        .await;
    }
    let req = lambda_http::request::from_str(&payload.to_string())
        .map_err(|e| format!("event does not deserialise: {e}"))?;
    let resp = crate::invoke_http(functions, function, req).await;
    serde_json::to_value(integrations_core::http::response::apigw_v2(resp))
        .map_err(|e| format!("response: {e}"))
}

/// API Gateway's 502 when the integration failed.
pub fn bad_gateway(why: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    tracing::error!(error = why, "function invocation failed");
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "message": "Internal Server Error" });
    (StatusCode::BAD_GATEWAY, h, body.to_string().into_bytes())
}

/// What API Gateway makes of a function's payload-v2 answer.
pub fn apigw_response(answer: &Value) -> (StatusCode, HeaderMap, Vec<u8>) {
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return bad_gateway(&format!("no statusCode in the answer: {answer}"));
    };
    let mut headers = HeaderMap::new();
    if let Some(map) = answer["headers"].as_object() {
        for (k, v) in map {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                headers.append(name, value);
            }
        }
    }
    let body = match answer["body"].as_str() {
        None => Vec::new(),
        Some(text) if answer["isBase64Encoded"] == Value::Bool(true) => {
            use base64::Engine as _;
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => bytes,
                Err(e) => return bad_gateway(&format!("body is not base64: {e}")),
            }
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    (status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_payload_v2_answer_becomes_the_http_response() {
        let (status, headers, body) = apigw_response(&json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "etag": "\"1\""},
            "body": "{\"id\":\"x\"}",
            "isBase64Encoded": false
        }));
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers["etag"], "\"1\"");
        assert_eq!(body, b"{\"id\":\"x\"}");
        let (status, _, body) = apigw_response(&json!({"statusCode": 204}));
        assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
        let (status, _, body) = apigw_response(&json!({
            "statusCode": 200, "body": "aGk=", "isBase64Encoded": true
        }));
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"hi"[..]));
        let (status, _, _) = apigw_response(&json!({"errorMessage": "boom"}));
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn template_names_are_the_logical_ids() {
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
                .expect("template.yaml");
        for f in [
            Function::CreateIntegration,
            Function::ManageIntegrations,
            Function::TestConnection,
            Function::ProvisionBucket,
        ] {
            let id = logical_id(f);
            assert!(
                template.contains(&format!("\n  {id}:\n    Type: AWS::Serverless::Function")),
                "{id} is a function of template.yaml"
            );
        }
    }
}
