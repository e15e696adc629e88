//! A fault-injecting HTTP proxy between the code under test and the local AWS: it
//! forwards every request to its upstream (DynamoDB Local or moto) unless a rule for the
//! request's operation says to answer with an error status, cut the connection, or wait
//! first. Operations are named as AWS names them: the `X-Amz-Target` suffix for JSON
//! protocols (`TransactWriteItems`, `Encrypt`), else `METHOD /path?query-keys` (S3:
//! `PUT /<bucket>/?` is CreateBucket, `PUT /<bucket>/?versioning` PutBucketVersioning).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Fault {
    /// An AWS error answer: status and error code (e.g. 400 `ThrottlingException`,
    /// 500 `InternalServerError`, 503 `ServiceUnavailable`, 503 `SlowDown`).
    Status(u16, &'static str),
    /// The connection is cut before a response is complete.
    Reset,
    /// The request is forwarded after this long (past the SDK's attempt timeout).
    Delay(Duration),
}

#[derive(Debug)]
struct Rule {
    operation: String,
    fault: Fault,
    remaining: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    injected: u32,
    seen: Vec<String>,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// A proxy on an ephemeral loopback port in front of `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
            async move { forward(state, client, upstream, req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultProxy { url, state }
    }

    /// The next `times` requests of `operation` get `fault`.
    pub fn inject(&self, operation: &str, fault: Fault, times: u32) {
        self.state.lock().unwrap().rules.push(Rule {
            operation: operation.to_owned(),
            fault,
            remaining: times,
        });
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u32 {
        self.state.lock().unwrap().injected
    }

    /// Every operation that reached the proxy, in order.
    pub fn operations(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests of `operation` reached the proxy (faulted or not).
    pub fn seen(&self, operation: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.seen.iter().filter(|o| *o == operation).count()
    }
}

fn operation(req: &Request) -> String {
    if let Some(target) = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let keys: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split('=').next())
        .filter(|k| !k.is_empty())
        .collect();
    format!("{} {}?{}", req.method(), req.uri().path(), keys.join("&"))
}

fn error_answer(status: u16, code: &str, json: bool) -> Response {
    let (ctype, body) = if json {
        (
            "application/x-amz-json-1.0",
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected {code}"}}"#
            ),
        )
    } else {
        (
            "application/xml",
            format!("<Error><Code>{code}</Code><Message>injected {code}</Message></Error>"),
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .header("x-amzn-errortype", code)
        .body(Body::from(body))
        .unwrap()
}

async fn forward(
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    upstream: String,
    req: Request,
) -> Response {
    let op = operation(&req);
    let json = req.headers().contains_key("x-amz-target");
    let fault = {
        let mut s = state.lock().unwrap();
        s.seen.push(op.clone());
        let hit = s
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && op == r.operation)
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            });
        if hit.is_some() {
            s.injected += 1;
        }
        hit
    };
    match fault {
        Some(Fault::Status(status, code)) => return error_answer(status, code, json),
        Some(Fault::Reset) => {
            // A body that fails at once: the server drops the connection mid-response.
            let broken = futures::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("injected reset"))
            });
            return Response::builder()
                .status(200)
                .header("content-length", "1024")
                .body(Body::from_stream(broken))
                .unwrap();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = client.request(parts.method.clone(), format!("{upstream}{path}"));
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let resp = match out.body(bytes).send().await {
        Ok(r) => r,
        Err(e) => return error_answer(502, &format!("ProxyError {e}").replace(' ', "_"), json),
    };
    let mut answer = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k != "transfer-encoding" && k != "content-length" {
            answer = answer.header(k, v);
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    answer.body(Body::from(body)).unwrap()
}
