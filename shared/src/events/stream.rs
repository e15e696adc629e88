//! The DynamoDB stream trigger: one function handles one record; a small wrapper runs a
//! batch concurrently and reports only the records that failed, so Lambda retries those
//! and not the whole batch.

use crate::app::provisioning::Provisioner;
use crate::error::Error;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use std::future::Future;

/// Runs `handle` on every record at once; the answer names the sequence numbers of the
/// records whose handling failed (each failure is logged here, once).
pub async fn for_each_record<'a, F, Fut>(event: &'a Event, handle: F) -> DynamoDbEventResponse
where
    F: Fn(&'a EventRecord) -> Fut,
    Fut: Future<Output = Result<(), Error>> + 'a,
{
    let jobs = event.records.iter().map(|r| {
        let fut = handle(r);
        async move {
            match fut.await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(
                        sequence_number = r.change.sequence_number.as_deref(),
                        error = %e.chain(),
                        "stream record failed; Lambda will retry it"
                    );
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = r.change.sequence_number.clone();
                    Some(failure)
                }
            }
        }
    });
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = futures::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect();
    response
}

/// The integration id of an inserted or modified record whose bucket is pending.
pub fn pending_integration(r: &EventRecord) -> Option<String> {
    if r.event_name != "INSERT" && r.event_name != "MODIFY" {
        return None;
    }
    let image = serde_json::to_value(&r.change.new_image).ok()?;
    crate::aws::dynamo::pending_bucket_of_image(&image)
}

/// Provisions the bucket a record announces (records about anything else are done).
pub async fn provision_record(p: &Provisioner, r: &EventRecord) -> Result<(), Error> {
    let Some(id) = pending_integration(r) else {
        return Ok(());
    };
    let outcome = p.provision(&id).await?;
    tracing::debug!(integration_id = %id, ?outcome, "stream record handled");
    Ok(())
}

/// A stream batch for the provisioner.
pub async fn handle(p: &Provisioner, event: &Event) -> DynamoDbEventResponse {
    for_each_record(event, |r| provision_record(p, r)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str) -> EventRecord {
        let mut r = EventRecord::default();
        r.event_name = "MODIFY".into();
        r.change.sequence_number = Some(seq.into());
        r
    }

    #[tokio::test]
    async fn only_the_failed_records_are_reported() {
        let mut event = Event::default();
        event.records = vec![record("1"), record("2"), record("3")];
        let response = for_each_record(&event, |r| async move {
            match r.change.sequence_number.as_deref() {
                Some("2") => Err(Error::internal("boom")),
                _ => Ok(()),
            }
        })
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_deref())
            .collect();
        assert_eq!(failed, vec![Some("2")]);
    }

    #[tokio::test]
    async fn an_empty_batch_reports_nothing() {
        let response = for_each_record(&Event::default(), |_| async { Ok(()) }).await;
        assert!(response.batch_item_failures.is_empty());
    }

    #[test]
    fn only_pending_buckets_of_integrations_are_picked() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/provision-bucket.stream.json"
        ))
        .expect("sample stream event");
        let event: Event = serde_json::from_str(&text).expect("stream event parses");
        let ids: Vec<_> = event
            .records
            .iter()
            .filter_map(pending_integration)
            .collect();
        assert!(!ids.is_empty(), "the sample announces a pending bucket");
        let mut removed = event.records[0].clone();
        removed.event_name = "REMOVE".into();
        assert_eq!(pending_integration(&removed), None);
    }
}
