//! The DynamoDB stream trigger: one function handles one record; a small wrapper runs a
//! batch concurrently and reports only the records that failed, so Lambda retries those
//! and not the whole batch.

use crate::app::provisioning::Provisioner;
use crate::error::Error;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt as _;
use std::future::Future;

/// Records handled at once. A provisioning run has up to 8 requests in flight; a whole
/// batch of 10 at once (70-80 requests with their connections and buffers) took the
/// function's peak memory from 8.7 to 13.4 MB, 4 at once to 10.6 MB, 2 to 9.8 MB
/// (scripts/bench.sh, issue 19's target 10 MB). The price: a burst of 10 pending buckets
/// takes 5 runs' time, not 1 (a lone record, the usual case, is not slowed).
const RECORDS_AT_ONCE: usize = 2;

/// Runs `handle` on the records, [`RECORDS_AT_ONCE`] at a time; the answer names the
/// sequence numbers of the records whose handling failed (each failure is logged here,
/// once).
pub async fn for_each_record<'a, F, Fut>(event: &'a Event, handle: F) -> DynamoDbEventResponse
where
    F: Fn(&'a EventRecord) -> Fut,
    Fut: Future<Output = Result<(), Error>> + 'a,
{
    // Collected first: a stream over the lazy `map` is not `Send` for every lifetime.
    let jobs: Vec<_> = event
        .records
        .iter()
        .map(|r| {
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
        })
        .collect();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = futures::stream::iter(jobs)
        .buffered(RECORDS_AT_ONCE)
        .collect::<Vec<_>>()
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

/// Provisions the bucket a record announces (records about anything else are done). The
/// new image holds the whole record, so provisioning starts from it without reading it
/// again; an image that does not parse leaves the decision to a fresh read.
pub async fn provision_record(p: &Provisioner, r: &EventRecord) -> Result<(), Error> {
    let Some(id) = pending_integration(r) else {
        return Ok(());
    };
    let outcome = match crate::aws::dynamo::integration_of_image(r.change.new_image.clone()) {
        Ok(seen) if seen.id.as_str() == id => p.provision_seen(&seen).await?,
        _ => p.provision(&id).await?,
    };
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

    /// A batch runs its records a few at a time (peak memory), but more than one at once.
    #[tokio::test]
    async fn records_run_a_bounded_number_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let mut event = Event::default();
        event.records = (0..10).map(|n| record(&n.to_string())).collect();
        let (now, most, done) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let response = for_each_record(&event, |_| async {
            most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            now.fetch_sub(1, SeqCst);
            done.fetch_add(1, SeqCst);
            Ok(())
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(done.load(SeqCst), 10);
        assert_eq!(most.load(SeqCst), RECORDS_AT_ONCE);
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
        // The image is the whole record, ciphertext included, as the store reads it.
        let image = event.records[0].change.new_image.clone();
        let seen = crate::aws::dynamo::integration_of_image(image).expect("the image parses");
        assert_eq!(Some(seen.id.to_string()), ids.first().cloned());
        assert_eq!(
            seen.state_bucket.map(|b| b.status),
            Some(crate::domain::BucketStatus::Pending)
        );
        assert!(seen
            .credentials
            .sealed()
            .unwrap()
            .0
            .starts_with(b"\x01\x02\x02\x00"));
    }
}
