//! Logging set-up: JSON lines for CloudWatch (Lambda's JSON log format), level from
//! `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`. Nothing logged anywhere carries a secret.
//! When the function is traced, [`xray`] also sends the AWS SDK's calls to X-Ray.

pub mod xray;

use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// HTTP/SDK internals whose debug/trace output describes requests and responses (a KMS
/// Encrypt body carries the secret, an AssumeRole answer temporary keys). None logs
/// bodies today (the tests check at trace); capping them at `info` keeps it so.
const PAYLOAD_LOGGERS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
];

/// The configured filter (`info`, or `target=level,...` as in `RUST_LOG`) with the
/// payload-carrying targets capped. A per-target filter, not tracing's `EnvFilter`: that
/// one matches span fields with regular expressions, which would put a regex engine in
/// every function for a feature no deployment uses.
pub fn filter(configured: &str) -> Targets {
    let mut directives = configured.to_owned();
    for target in PAYLOAD_LOGGERS {
        directives.push_str(&format!(",{target}=info"));
    }
    directives.parse().unwrap_or_else(|_| {
        Targets::new()
            .with_default(tracing::Level::INFO)
            .with_targets(PAYLOAD_LOGGERS.iter().map(|t| (*t, tracing::Level::INFO)))
    })
}

/// The JSON log lines, with their own filter (the X-Ray layer has its own: neither
/// changes what the other sees).
pub(crate) fn log_layer<S, W>(configured: &str, writer: W) -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_target(false)
        .with_writer(writer)
        .with_filter(filter(configured))
}

pub fn init() {
    let configured = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let _ = tracing_subscriber::registry()
        .with(log_layer(&configured, std::io::stdout))
        // None (not installed) unless Lambda runs an X-Ray daemon for this function.
        .with(xray::layer())
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn payload_loggers_are_capped_even_at_trace() {
        use tracing::Level;
        let f = super::filter("trace");
        for target in super::PAYLOAD_LOGGERS {
            let inner = format!("{target}::client::orchestrator");
            assert!(!f.would_enable(&inner, &Level::DEBUG), "{target}");
            assert!(f.would_enable(&inner, &Level::INFO), "{target}");
        }
        assert!(f.would_enable("integrations_core::app", &Level::TRACE));
    }

    #[test]
    fn levels_and_targets_are_read_and_nonsense_is_info() {
        use tracing::Level;
        let f = super::filter("warn,integrations_core=debug");
        assert!(f.would_enable("integrations_core::http", &Level::DEBUG));
        assert!(!f.would_enable("tokio", &Level::INFO));
        let f = super::filter("[span{field=1}]=nonsense");
        assert!(f.would_enable("integrations_core", &Level::INFO));
        assert!(!f.would_enable("integrations_core", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::DEBUG));
    }
}
