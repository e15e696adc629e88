//! Logging set-up: JSON lines for CloudWatch (Lambda's JSON log format), level from
//! `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`. Nothing logged anywhere carries a secret.

use tracing_subscriber::EnvFilter;

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

/// The configured filter with the payload-carrying targets capped.
pub fn filter(configured: &str) -> EnvFilter {
    let mut directives = configured.to_owned();
    for target in PAYLOAD_LOGGERS {
        directives.push_str(&format!(",{target}=info"));
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

pub fn init() {
    let configured = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter(&configured))
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn payload_loggers_are_capped_even_at_trace() {
        let f = super::filter("trace").to_string();
        assert!(f.contains("aws_smithy_runtime=info"), "{f}");
        assert!(f.contains("trace"), "{f}");
    }
}
