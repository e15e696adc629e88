//! Logging set-up: JSON lines for CloudWatch (Lambda's JSON log format), level from
//! `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`. Nothing logged anywhere carries a secret.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(
                std::env::var("AWS_LAMBDA_LOG_LEVEL")
                    .unwrap_or_else(|_| "info".into())
                    .to_lowercase(),
            )
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_target(false)
        .try_init();
}
