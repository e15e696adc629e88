//! X-Ray subsegments for the AWS SDK's calls: one per operation (`DynamoDB` / `PutItem`,
//! `KMS` / `Decrypt`, `STS` / `AssumeRole`, `S3` / `PutBucketPolicy`, ...), under the
//! function's segment, so a sampled trace shows where an invocation spent its time.
//!
//! The SDK for Rust sends nothing to X-Ray itself, but it wraps every operation in a
//! `debug` span (`aws_sdk_<service>::operation::<op>`, named `<Service>.<Operation>`,
//! fields `rpc.service` and `rpc.method`) and every attempt in a `try_attempt` span, and
//! reports each HTTP response in a `trace` event of its orchestrator. This layer turns a
//! sampled invocation's operation spans into subsegments and sends each one, when its
//! span closes, as a UDP datagram to the X-Ray daemon Lambda runs beside the function
//! (`AWS_XRAY_DAEMON_ADDRESS`): no extra process, no extra crate, no wait.
//!
//! Cost: without `AWS_XRAY_DAEMON_ADDRESS` the layer is not installed at all. With it,
//! an unsampled invocation pays one read of `_X_AMZN_TRACE_ID` per SDK call (the span is
//! then not even created); its own filter never enables anything for the log output.
//!
//! What a subsegment holds: the service, the operation, its timings, the HTTP status of
//! the last attempt, the retries, the AWS request id. Nothing of a request or a response
//! body: the response is read through [`ResponseHead`], which stops formatting it at its
//! body, and headers that the SDK marks sensitive are redacted by the SDK before that.

use serde::Serialize;
use std::fmt::{self, Write as _};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Set by Lambda when the function is traced: `host:port`, or `tcp:host:port udp:host:port`.
pub const DAEMON_ADDRESS: &str = "AWS_XRAY_DAEMON_ADDRESS";
/// Set by the runtime (lambda_runtime, sequential mode) for each invocation.
pub const TRACE_HEADER: &str = "_X_AMZN_TRACE_ID";

/// The daemon's datagram header (X-Ray's "sending segment documents to the daemon").
const DATAGRAM_HEADER: &[u8] = b"{\"format\": \"json\", \"version\": 1}\n";
/// The orchestrator's module: its `try_attempt` spans and its response events.
const ORCHESTRATOR: &str = "aws_smithy_runtime::client::orchestrator";

/// Where a sampled invocation's subsegments hang: its trace and its segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: String,
}

impl TraceHeader {
    /// `Root=1-...;Parent=...;Sampled=1[;Lineage=...]`, only when sampled and both ids
    /// are there (an id that is not plain hex is refused: it goes into JSON unescaped
    /// nowhere, but a header is input).
    pub fn parse_sampled(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v),
                Some(("Parent", v)) => parent = Some(v),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        let id_like = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        };
        match (root, parent) {
            (Some(r), Some(p)) if sampled && id_like(r) && id_like(p) => Some(TraceHeader {
                root: r.to_owned(),
                parent: p.to_owned(),
            }),
            _ => None,
        }
    }
}

/// The daemon's UDP address from `AWS_XRAY_DAEMON_ADDRESS`'s value.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let udp = words
        .iter()
        .find_map(|w| w.strip_prefix("udp:"))
        .or_else(|| words.iter().copied().find(|w| !w.contains("tcp:")))?;
    udp.parse()
        .ok()
        .or_else(|| udp.to_socket_addrs().ok()?.next())
}

/// Reads the current invocation's trace header (the environment in a function; the
/// tests give each subscriber its own).
type HeaderSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

struct Shared {
    daemon: SocketAddr,
    socket: OnceLock<Option<UdpSocket>>,
    header: HeaderSource,
    /// Operation spans open for this layer: attempts and responses matter only then.
    open: AtomicUsize,
}

impl Shared {
    fn sampled(&self) -> Option<TraceHeader> {
        (self.header)().and_then(|h| TraceHeader::parse_sampled(&h))
    }

    /// Fire and forget: a datagram the daemon misses costs a subsegment, never the call.
    fn send(&self, document: &[u8]) {
        let socket = self.socket.get_or_init(|| {
            let local: SocketAddr = if self.daemon.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let s = UdpSocket::bind(local).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        });
        if let Some(s) = socket {
            let mut datagram = Vec::with_capacity(DATAGRAM_HEADER.len() + document.len());
            datagram.extend_from_slice(DATAGRAM_HEADER);
            datagram.extend_from_slice(document);
            let _ = s.send_to(&datagram, self.daemon);
        }
    }
}

/// The layer: builds and sends the subsegments.
pub struct XrayLayer {
    shared: Arc<Shared>,
}

/// Its own filter: only the SDK's operation spans of a sampled invocation, and within
/// them the attempts and responses. The log output's filter is not touched.
pub struct SdkCalls {
    shared: Arc<Shared>,
}

/// The layer with its filter, when `AWS_XRAY_DAEMON_ADDRESS` names a daemon; `None`
/// (nothing installed, nothing checked) otherwise.
pub fn layer<S>() -> Option<Filtered<XrayLayer, SdkCalls, S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let daemon = daemon_address(&std::env::var(DAEMON_ADDRESS).ok()?)?;
    Some(layer_with(
        daemon,
        Arc::new(|| std::env::var(TRACE_HEADER).ok()),
    ))
}

fn layer_with<S>(daemon: SocketAddr, header: HeaderSource) -> Filtered<XrayLayer, SdkCalls, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let shared = Arc::new(Shared {
        daemon,
        socket: OnceLock::new(),
        header,
        open: AtomicUsize::new(0),
    });
    XrayLayer {
        shared: shared.clone(),
    }
    .with_filter(SdkCalls { shared })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Operation,
    Attempt,
    Response,
}

fn kind(meta: &Metadata<'_>) -> Option<Kind> {
    if meta.is_span()
        && meta.target().starts_with("aws_sdk_")
        && meta.fields().field("rpc.service").is_some()
        && meta.fields().field("rpc.method").is_some()
    {
        Some(Kind::Operation)
    } else if meta.is_span() && meta.target() == ORCHESTRATOR && meta.name() == "try_attempt" {
        Some(Kind::Attempt)
    } else if meta.is_event()
        && meta.target() == ORCHESTRATOR
        && meta.fields().field("response").is_some()
    {
        Some(Kind::Response)
    } else {
        None
    }
}

impl<S> Filter<S> for SdkCalls {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        match kind(meta) {
            Some(Kind::Operation) => self.shared.sampled().is_some(),
            Some(Kind::Attempt | Kind::Response) => self.shared.open.load(Ordering::Relaxed) > 0,
            None => false,
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Decided per call (sampled or not), so never cached as "always".
        match kind(meta) {
            Some(_) => Interest::sometimes(),
            None => Interest::never(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The response event is at `trace`. Every other callsite is cached as "never",
        // so this costs the other macros one cached check, and logs nothing.
        Some(LevelFilter::TRACE)
    }
}

/// One SDK operation in flight, kept in its span.
struct Call {
    service: String,
    operation: String,
    id: String,
    trace_id: String,
    parent_id: String,
    start: f64,
    attempts: u32,
    status: Option<u16>,
    request_id: Option<String>,
}

#[derive(Default)]
struct RpcFields {
    service: Option<String>,
    method: Option<String>,
}

impl Visit for RpcFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "rpc.service" => self.service = Some(value.to_owned()),
            "rpc.method" => self.method = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// The status and request id of the orchestrator's `response` field.
#[derive(Default)]
struct ResponseFields(Option<(Option<u16>, Option<String>)>);

impl Visit for ResponseFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "response" {
            let mut head = ResponseHead::default();
            // Stops with an error at the body, by design.
            let _ = write!(head, "{value:?}");
            self.0 = Some((head.status(), head.request_id()));
        }
    }
}

/// The start of a response's `Debug` text: `Response { status: StatusCode(200), headers:
/// {"x-amzn-requestid": "...", ...}, body: ...`. Writing fails once `body:` (or 4 KB)
/// is reached, so the body is never formatted.
#[derive(Default)]
struct ResponseHead(String);

impl ResponseHead {
    const LIMIT: usize = 4096;

    fn status(&self) -> Option<u16> {
        let rest = &self.0[self.0.find("status: StatusCode(")? + "status: StatusCode(".len()..];
        rest[..rest.find(')')?].parse().ok()
    }

    fn request_id(&self) -> Option<String> {
        ["\"x-amzn-requestid\": \"", "\"x-amz-request-id\": \""]
            .iter()
            .find_map(|key| {
                let rest = &self.0[self.0.find(key)? + key.len()..];
                let value = &rest[..rest.find('"')?];
                let plain = !value.is_empty()
                    && value.len() <= 128
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_+/=.".contains(c));
                plain.then(|| value.to_owned())
            })
    }
}

impl fmt::Write for ResponseHead {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.0.len() + s.len() > Self::LIMIT {
            return Err(fmt::Error);
        }
        self.0.push_str(s);
        if self.0.contains("body:") {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A 64-bit id as 16 hex digits (X-Ray's segment id), from the system's random source.
fn new_id() -> String {
    use ring::rand::SecureRandom;
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Unique within the trace is all X-Ray asks: time and a counter will do.
        let n = now().to_bits() ^ (COUNTER.fetch_add(1, Ordering::Relaxed) as u64);
        b = n.to_be_bytes();
    }
    format!("{:016x}", u64::from_be_bytes(b))
}

#[derive(Serialize)]
struct Subsegment<'a> {
    name: &'a str,
    id: &'a str,
    trace_id: &'a str,
    parent_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    namespace: &'static str,
    start_time: f64,
    end_time: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    error: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    throttle: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fault: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpPart>,
    aws: AwsPart<'a>,
}

#[derive(Serialize)]
struct HttpPart {
    response: StatusPart,
}

#[derive(Serialize)]
struct StatusPart {
    status: u16,
}

#[derive(Serialize)]
struct AwsPart<'a> {
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    retries: u32,
}

impl Call {
    /// The subsegment: 4xx is an error (429 also a throttle), 5xx a fault, and no
    /// response at all (connection, timeout, cancelled) a fault too.
    fn document(&self, end: f64) -> Option<Vec<u8>> {
        let status = self.status;
        serde_json::to_vec(&Subsegment {
            name: &self.service,
            id: &self.id,
            trace_id: &self.trace_id,
            parent_id: &self.parent_id,
            kind: "subsegment",
            namespace: "aws",
            start_time: self.start,
            end_time: end,
            error: status.is_some_and(|s| (400..500).contains(&s)),
            throttle: status == Some(429),
            fault: status.is_none_or(|s| s >= 500),
            http: status.map(|status| HttpPart {
                response: StatusPart { status },
            }),
            aws: AwsPart {
                operation: &self.operation,
                request_id: self.request_id.as_deref(),
                retries: self.attempts.saturating_sub(1),
            },
        })
        .ok()
    }
}

impl<S> Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        match kind(attrs.metadata()) {
            Some(Kind::Operation) => {
                let Some(header) = self.shared.sampled() else {
                    return;
                };
                let mut fields = RpcFields::default();
                attrs.record(&mut fields);
                let (Some(service), Some(operation)) = (fields.service, fields.method) else {
                    return;
                };
                // A call made inside another (credentials resolved within an S3 call)
                // hangs under it; any other under the function's segment.
                let parent_id = span
                    .scope()
                    .skip(1)
                    .find_map(|s| s.extensions().get::<Call>().map(|c| c.id.clone()))
                    .unwrap_or(header.parent);
                span.extensions_mut().insert(Call {
                    service,
                    operation,
                    id: new_id(),
                    trace_id: header.root,
                    parent_id,
                    start: now(),
                    attempts: 0,
                    status: None,
                    request_id: None,
                });
                self.shared.open.fetch_add(1, Ordering::Relaxed);
            }
            Some(Kind::Attempt) => {
                for s in span.scope().skip(1) {
                    if let Some(call) = s.extensions_mut().get_mut::<Call>() {
                        call.attempts += 1;
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if kind(event.metadata()) != Some(Kind::Response) {
            return;
        }
        let mut fields = ResponseFields::default();
        event.record(&mut fields);
        let Some((status, request_id)) = fields.0 else {
            return;
        };
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for s in scope {
            if let Some(call) = s.extensions_mut().get_mut::<Call>() {
                call.status = status;
                call.request_id = request_id.or(call.request_id.take());
                break;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(call) = span.extensions_mut().remove::<Call>() else {
            return;
        };
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(document) = call.document(now()) {
            self.shared.send(&document);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::retry::RetryConfig;
    use serde_json::Value;
    use std::sync::Mutex;
    use std::time::Duration;
    use tracing_subscriber::prelude::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const PARENT: &str = "53995c3f42cd8ad8";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// Answers each request with the next status of its list (the last one repeats),
    /// a request id header and a body holding a marker that must never reach X-Ray.
    #[derive(Debug, Clone)]
    struct Stub(Arc<Mutex<Vec<u16>>>);

    impl Stub {
        fn new(statuses: &[u16]) -> Self {
            Stub(Arc::new(Mutex::new(
                statuses.iter().rev().copied().collect(),
            )))
        }
    }

    impl HttpConnector for Stub {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            // Logged inside the SDK's spans: the log output must not change (below).
            tracing::info!("stub answers");
            let status = {
                let mut left = self.0.lock().expect("lock");
                if left.len() > 1 {
                    left.pop()
                } else {
                    left.last().copied()
                }
            }
            .unwrap_or(200);
            let body = if status == 200 {
                format!("{{\"Item\":{{\"secret\":{{\"S\":\"{SECRET}\"}}}}}}")
            } else {
                format!("{{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\",\"message\":\"{SECRET}\"}}")
            };
            let mut response =
                HttpResponse::new(status.try_into().expect("a status"), SdkBody::from(body));
            response
                .headers_mut()
                .insert("x-amzn-requestid", "REQ0123456789ABCDEF");
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    impl HttpClient for Stub {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    fn dynamodb(stub: Stub) -> aws_sdk_dynamodb::Client {
        let sdk = crate::aws::config::Environment::from_vars([(
            "AWS_REGION".to_owned(),
            "us-east-1".to_owned(),
        )])
        .sdk_config()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            SECRET,
            None,
            None,
            "test",
        )))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .http_client(stub)
        .build();
        aws_sdk_dynamodb::Client::new(&sdk)
    }

    /// A daemon on a local port: the datagrams it got, once the calls are done.
    struct Daemon(UdpSocket);

    impl Daemon {
        fn new() -> Self {
            let s = UdpSocket::bind("127.0.0.1:0").expect("a local port");
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            Daemon(s)
        }

        fn address(&self) -> SocketAddr {
            self.0.local_addr().expect("bound")
        }

        fn received(&self) -> Vec<String> {
            let mut out = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = self.0.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            out
        }

        /// The documents, each checked to carry the daemon's header line.
        fn documents(&self) -> Vec<Value> {
            Self::parse(&self.received())
        }

        fn parse(datagrams: &[String]) -> Vec<Value> {
            datagrams
                .iter()
                .map(|d| {
                    let (head, doc) = d.split_once('\n').expect("header line");
                    assert_eq!(head, r#"{"format": "json", "version": 1}"#);
                    serde_json::from_str(doc).expect("a JSON document")
                })
                .collect()
        }
    }

    /// Runs `calls` on this thread under a subscriber with the X-Ray layer (daemon
    /// `daemon`, trace header `header`) and a JSON log layer as `telemetry::init` builds
    /// it; returns the log output.
    fn traced<F: std::future::Future<Output = ()>>(
        daemon: Option<SocketAddr>,
        header: Option<&str>,
        calls: F,
    ) -> String {
        let logs = Logs::default();
        let header = header.map(str::to_owned);
        let xray = daemon.map(|d| layer_with(d, Arc::new(move || header.clone())));
        let subscriber = tracing_subscriber::registry()
            .with(super::super::log_layer("info", logs.clone()))
            .with(xray);
        let _guard = tracing::subscriber::set_default(subscriber);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(calls);
        logs.text()
    }

    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
        type Writer = Logs;
        fn make_writer(&'a self) -> Logs {
            self.clone()
        }
    }

    fn sampled() -> String {
        format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:0")
    }

    async fn get_and_put(client: &aws_sdk_dynamodb::Client) {
        let _ = client
            .get_item()
            .table_name("t")
            .key("pk", AttributeValue::S("I#1".into()))
            .send()
            .await;
        let _ = client
            .put_item()
            .table_name("t")
            .item("pk", AttributeValue::S(SECRET.into()))
            .send()
            .await;
    }

    #[test]
    fn a_sampled_invocation_sends_one_named_subsegment_per_sdk_call() {
        let daemon = Daemon::new();
        let client = dynamodb(Stub::new(&[200]));
        traced(
            Some(daemon.address()),
            Some(&sampled()),
            get_and_put(&client),
        );
        let datagrams = daemon.received();
        let raw = datagrams.join("\n");
        assert!(!raw.contains(SECRET), "a secret or payload was sent: {raw}");
        assert!(!raw.contains("AKIDEXAMPLE"), "{raw}");
        let docs = Daemon::parse(&datagrams);
        assert_eq!(docs.len(), 2, "{docs:?}");
        let ops: Vec<&str> = docs
            .iter()
            .map(|d| d["aws"]["operation"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(ops, ["GetItem", "PutItem"]);
        for d in &docs {
            assert_eq!(d["name"], "DynamoDB");
            assert_eq!(d["namespace"], "aws");
            assert_eq!(d["type"], "subsegment");
            assert_eq!(d["trace_id"], ROOT);
            assert_eq!(d["parent_id"], PARENT);
            assert_eq!(d["http"]["response"]["status"], 200);
            assert_eq!(d["aws"]["request_id"], "REQ0123456789ABCDEF");
            assert_eq!(d["aws"]["retries"], 0);
            assert!(d.get("error").is_none() && d.get("fault").is_none(), "{d}");
            let id = d["id"].as_str().unwrap_or_default();
            assert!(
                id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
            let (start, end) = (d["start_time"].as_f64(), d["end_time"].as_f64());
            assert!(
                matches!((start, end), (Some(s), Some(e)) if s > 1.6e9 && s <= e),
                "{d}"
            );
            // Only what the module promises, nothing else.
            let keys: Vec<&str> = d
                .as_object()
                .map_or(vec![], |o| o.keys().map(String::as_str).collect());
            assert_eq!(
                keys,
                [
                    "name",
                    "id",
                    "trace_id",
                    "parent_id",
                    "type",
                    "namespace",
                    "start_time",
                    "end_time",
                    "http",
                    "aws"
                ]
            );
        }
        assert_ne!(docs[0]["id"], docs[1]["id"]);
    }

    #[test]
    fn failed_calls_are_marked_error_or_fault_with_their_retries() {
        let daemon = Daemon::new();
        // A conditional check failure (400), then a 500 retried into another 500.
        let client = dynamodb(Stub::new(&[400, 500]));
        traced(Some(daemon.address()), Some(&sampled()), async {
            let _ = client
                .put_item()
                .table_name("t")
                .item("pk", AttributeValue::S("I#1".into()))
                .send()
                .await;
            let _ = client
                .delete_item()
                .table_name("t")
                .key("pk", AttributeValue::S("I#1".into()))
                .send()
                .await;
        });
        let docs = daemon.documents();
        assert_eq!(docs.len(), 2, "{docs:?}");
        let (client_error, server_error) = (&docs[0], &docs[1]);
        assert_eq!(client_error["aws"]["operation"], "PutItem");
        assert_eq!(client_error["error"], true);
        assert!(client_error.get("fault").is_none(), "{client_error}");
        assert_eq!(client_error["http"]["response"]["status"], 400);
        assert_eq!(client_error["aws"]["retries"], 0);
        assert_eq!(server_error["aws"]["operation"], "DeleteItem");
        assert_eq!(server_error["fault"], true);
        assert!(server_error.get("error").is_none(), "{server_error}");
        assert_eq!(server_error["http"]["response"]["status"], 500);
        assert_eq!(server_error["aws"]["retries"], 1);
    }

    #[test]
    fn unsampled_or_without_a_daemon_nothing_is_sent() {
        let daemon = Daemon::new();
        let client = dynamodb(Stub::new(&[200]));
        let unsampled = format!("Root={ROOT};Parent={PARENT};Sampled=0");
        traced(
            Some(daemon.address()),
            Some(&unsampled),
            get_and_put(&client),
        );
        traced(Some(daemon.address()), None, get_and_put(&client));
        // No daemon address: no layer (the header says sampled).
        traced(None, Some(&sampled()), get_and_put(&client));
        assert_eq!(daemon.received(), Vec::<String>::new());
    }

    #[test]
    fn the_log_output_is_the_same_with_the_layer() {
        let daemon = Daemon::new();
        let run = |address: Option<SocketAddr>| {
            let client = dynamodb(Stub::new(&[200]));
            traced(address, Some(&sampled()), get_and_put(&client))
        };
        let without = run(None);
        let with = run(Some(daemon.address()));
        assert_eq!(with, without);
        assert_eq!(with.lines().count(), 2, "{with}");
        assert!(!with.contains("DynamoDB"), "{with}");
        assert_eq!(daemon.documents().len(), 2);
    }

    #[test]
    fn the_trace_header_and_daemon_address_are_read_as_lambda_writes_them() {
        assert_eq!(
            TraceHeader::parse_sampled(&sampled()),
            Some(TraceHeader {
                root: ROOT.into(),
                parent: PARENT.into()
            })
        );
        for unsampled in [
            format!("Root={ROOT};Parent={PARENT};Sampled=0"),
            format!("Root={ROOT};Parent={PARENT}"),
            format!("Root={ROOT};Sampled=1"),
            format!("Root={ROOT};Parent=\"x\";Sampled=1"),
            String::new(),
        ] {
            assert_eq!(TraceHeader::parse_sampled(&unsampled), None, "{unsampled}");
        }
        let v4: SocketAddr = "169.254.79.129:2000".parse().expect("address");
        assert_eq!(daemon_address("169.254.79.129:2000"), Some(v4));
        assert_eq!(
            daemon_address("tcp:127.0.0.1:2000 udp:169.254.79.129:2000"),
            Some(v4)
        );
        assert_eq!(daemon_address(""), None);
        assert_eq!(daemon_address("nonsense"), None);
    }

    #[test]
    fn the_response_head_stops_at_the_body() {
        let mut response = HttpResponse::new(
            503u16.try_into().expect("a status"),
            SdkBody::from(format!("{{\"secret\":\"{SECRET}\"}}")),
        );
        response.headers_mut().insert("x-amz-request-id", "AB12");
        response.headers_mut().insert("authorization", SECRET);
        let mut head = ResponseHead::default();
        assert!(write!(head, "{response:?}").is_err());
        assert!(!head.0.contains(SECRET), "{}", head.0);
        assert_eq!(head.status(), Some(503));
        assert_eq!(head.request_id().as_deref(), Some("AB12"));
        // Unplain ids are left out.
        let head = ResponseHead("\"x-amzn-requestid\": \"a b\"".into());
        assert_eq!(head.request_id(), None);
    }
}
