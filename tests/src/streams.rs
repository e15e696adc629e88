//! A local stand-in for Lambda's DynamoDB event source mapping: reads the table's stream
//! from the local AWS, applies the trigger's filter, invokes the provisioning handler with
//! the same batch payload, and re-delivers the records it reports as failed.

use crate::Functions;
use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use ik_shared::provision::STREAM_FILTER;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Same bounds as template.yaml's event source mapping.
pub const BATCH_SIZE: usize = 10;
pub const MAX_RETRIES: usize = 3;

/// Does `event` match an EventBridge-style pattern (objects nest; arrays list allowed values)?
pub fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(k, p)| event.get(k).is_some_and(|v| matches(p, v))),
        Value::Array(allowed) => allowed.contains(event),
        other => other == event,
    }
}

/// The record as Lambda delivers it in a DynamoDB stream event.
pub fn lambda_record(r: &Record, stream_arn: &str, region: &str) -> Value {
    let change = r.dynamodb.as_ref();
    let image = |i: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        i.map(|m| serde_json::to_value(serde_dynamo::Item::from(m.clone())).unwrap_or(Value::Null))
    };
    let mut ddb = json!({
        "ApproximateCreationDateTime": change
            .and_then(|c| c.approximate_creation_date_time)
            .map(|t| t.secs())
            .unwrap_or(0),
        "Keys": image(change.and_then(|c| c.keys.as_ref())).unwrap_or(json!({})),
        "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
        "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or(0),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(n) = image(change.and_then(|c| c.new_image.as_ref())) {
        ddb["NewImage"] = n;
    }
    if let Some(o) = image(change.and_then(|c| c.old_image.as_ref())) {
        ddb["OldImage"] = o;
    }
    json!({
        "eventID": r.event_id,
        "eventName": r.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
        "dynamodb": ddb,
    })
}

/// Invokes the handler with a batch, re-delivering only the reported failures.
pub async fn deliver(functions: &Functions, records: Vec<Value>) {
    let mut batch = records;
    for attempt in 0..=MAX_RETRIES {
        if batch.is_empty() {
            return;
        }
        let event: Event = match serde_json::from_value(json!({ "Records": batch })) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "stream batch does not deserialise");
                return;
            }
        };
        let response = functions.provisioner.handle_stream(event).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect();
        batch.retain(|r| {
            r.pointer("/dynamodb/SequenceNumber")
                .and_then(|s| s.as_str())
                .is_some_and(|s| failed.iter().any(|f| f == s))
        });
        if !batch.is_empty() && attempt < MAX_RETRIES {
            tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
        }
    }
    if !batch.is_empty() {
        tracing::error!(
            records = batch.len(),
            "stream records exhausted their retries (on-failure destination in AWS)"
        );
    }
}

/// Polls every shard of the stream until the process ends.
pub async fn run(sdk: SdkConfig, stream_arn: String, functions: Arc<Functions>) {
    let client = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let pattern: Value = serde_json::from_str(STREAM_FILTER).unwrap_or(Value::Null);
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        if let Ok(desc) = client
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
        {
            for shard in desc
                .stream_description
                .and_then(|d| d.shards)
                .unwrap_or_default()
            {
                let Some(id) = shard.shard_id else { continue };
                if iterators.contains_key(&id) {
                    continue;
                }
                let it = client
                    .get_shard_iterator()
                    .stream_arn(&stream_arn)
                    .shard_id(&id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.shard_iterator);
                iterators.insert(id, it);
            }
        }
        for it in iterators.values_mut() {
            let Some(current) = it.clone() else { continue };
            match client.get_records().shard_iterator(&current).send().await {
                Ok(out) => {
                    let records: Vec<Value> = out
                        .records
                        .unwrap_or_default()
                        .iter()
                        .map(|r| lambda_record(r, &stream_arn, &region))
                        .filter(|r| matches(&pattern, r))
                        .collect();
                    for chunk in records.chunks(BATCH_SIZE) {
                        deliver(&functions, chunk.to_vec()).await;
                    }
                    *it = out.next_shard_iterator;
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e), "GetRecords failed");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
