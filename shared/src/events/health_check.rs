//! The health-check function's one trigger: its EventBridge schedule (template.yaml
//! `HealthCheckSchedule`). Each run logs one summary line in CloudWatch Embedded Metric
//! Format, which the template's alarms watch.

use crate::app::health::{emf_line, HealthCheck};
use serde_json::Value;

/// Entry point of the health-check Lambda.
pub async fn handle(h: &HealthCheck, payload: Value) -> Result<Value, String> {
    let text = |ptr: &str| payload.pointer(ptr).and_then(|v| v.as_str());
    if text("/source") != Some("aws.events") || text("/detail-type") != Some("Scheduled Event") {
        return Err(
            "unsupported event: the health check runs on its EventBridge schedule \
             (source aws.events, detail-type Scheduled Event)"
                .into(),
        );
    }
    // A failed run fails the invocation (the schedule's own retry policy applies); what it
    // recorded before failing stays recorded, and the next run starts where it stopped.
    let report = h.run().await.map_err(|e| {
        let chain = e.chain();
        tracing::error!(error = %chain, "health check run failed");
        format!("health check: {chain}")
    })?;
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "health-check".into());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    // Straight to stdout, one line: CloudWatch extracts the metrics from the line itself.
    println!("{}", emf_line(&report, &function, now_ms));
    serde_json::to_value(report).map_err(|e| format!("health check report: {e}"))
}

#[cfg(test)]
mod tests {
    use crate::app::health::{emf_line, HealthRunReport};
    use serde_json::Value;

    #[test]
    fn the_summary_is_one_emf_document_naming_each_metric_it_carries() {
        let r = HealthRunReport {
            checked: 7,
            failing: 2,
            became_failing: 1,
            recovered: 1,
            buckets_repaired: 1,
            remaining: 3,
            duration_ms: 1234,
            ..Default::default()
        };
        let line = emf_line(&r, "stack-health-check", 1_700_000_000_000);
        assert!(!line.contains('\n'), "one line");
        let doc: Value = serde_json::from_str(&line).expect("JSON");
        let m = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "InfraKitchen/Integrations");
        assert_eq!(m["Dimensions"], serde_json::json!([["FunctionName"]]));
        assert_eq!(doc["FunctionName"], "stack-health-check");
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        // Every declared metric has its value at the top level, as EMF requires.
        let metrics = m["Metrics"].as_array().expect("metrics");
        assert_eq!(metrics.len(), 8);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("a name");
            assert!(doc[name].is_u64(), "{name} has no value");
        }
        assert_eq!(doc["Checked"], 7);
        assert_eq!(doc["BecameFailing"], 1);
        assert_eq!(doc["Remaining"], 3);
    }
}
