//! A local stand-in for the sweeper's EventBridge schedule (template.yaml
//! `StateBucketSweep`): invokes the provision-bucket function with the same scheduled
//! event, through the same entry point, every `every`.

use crate::invoke::Invoker;
use crate::Function;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The event EventBridge sends for a `rate(...)` schedule (events/provision-bucket.sweep.json).
pub fn scheduled_event() -> Value {
    let now = integrations_core::domain::Timestamp::now();
    json!({
        "version": "0",
        "id": format!("local-sweep-{now}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/local-state-bucket-sweep"],
        "detail": {}
    })
}

/// Runs the sweep every `every` until the process ends. A failed sweep is logged and the
/// schedule goes on, as EventBridge's does.
pub async fn run(invoker: Arc<Invoker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the schedule's first run is not
    loop {
        tick.tick().await;
        match invoker
            .invoke(Function::ProvisionBucket, scheduled_event())
            .await
        {
            Ok(report) if report["due"] != 0 => {
                tracing::info!(%report, "scheduled state bucket sweep")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "scheduled state bucket sweep failed"),
        }
    }
}

/// Plays the health check's EventBridge schedule (template.yaml `HealthCheckSchedule`):
/// the health-check function with the scheduled event, every `every`, and at once on
/// SIGUSR1 (`kill -USR1 <local-api pid>`: what `sam local invoke HealthCheckFunction`
/// does for a deployed-like run, without waiting for the next tick).
pub async fn run_health_check(invoker: Arc<Invoker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut now = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(|e| tracing::warn!(error = %e, "no SIGUSR1 trigger for the health check"))
        .ok();
    loop {
        match now.as_mut() {
            Some(signal) => {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = signal.recv() => tracing::info!("SIGUSR1: running the health check now"),
                }
            }
            None => {
                tick.tick().await;
            }
        }
        match invoker
            .invoke(Function::HealthCheck, scheduled_event())
            .await
        {
            Ok(report) if report["checked"] != 0 => {
                tracing::info!(%report, "scheduled health check")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "scheduled health check failed"),
        }
    }
}
