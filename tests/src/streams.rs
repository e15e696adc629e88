//! A local stand-in for Lambda's DynamoDB event source mapping: reads the table's stream
//! from the local AWS (DynamoDB Local), applies the trigger's filter, invokes the
//! provisioning handler with the same batch payload, and re-delivers the records it
//! reports as failed.
//!
//! It follows real stream semantics, as the event source mapping does: it keeps the last
//! processed sequence number of every shard and follows `NextShardIterator`; an iterator
//! that expired (they live 15 minutes), was trimmed, or failed in any way is re-acquired
//! `AFTER_SEQUENCE_NUMBER` of the last processed record (`TRIM_HORIZON` when none was);
//! a shard whose `NextShardIterator` is null is closed and done; new shards come from
//! `DescribeStream` (all pages), and a child shard is read only once its parent is done.
//! Every failed call is logged with its error and retried with backoff.

use crate::invoke::Invoker;
use crate::Function;
use aws_config::SdkConfig;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use integrations_core::aws::dynamo::STREAM_FILTER;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Same bounds as template.yaml's event source mapping.
pub const BATCH_SIZE: usize = 10;
pub const MAX_RETRIES: usize = 3;

/// How often an idle shard is polled (Lambda: 4 times a second per shard).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the shard list is read again when nothing asks for it sooner.
const DESCRIBE_INTERVAL: Duration = Duration::from_secs(10);
/// Backoff after failed calls: doubles from the first to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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
pub async fn deliver(invoker: &Invoker, records: Vec<Value>) {
    let mut batch = records;
    for attempt in 0..=MAX_RETRIES {
        if batch.is_empty() {
            return;
        }
        let answer = invoker
            .invoke(Function::ProvisionBucket, json!({ "Records": batch }))
            .await;
        // A failed invocation retries the whole batch, as the event source mapping does.
        let failed: Vec<String> = match answer {
            Ok(answer) => match serde_json::from_value::<DynamoDbEventResponse>(answer) {
                Ok(r) => r
                    .batch_item_failures
                    .into_iter()
                    .filter_map(|f| f.item_identifier)
                    .collect(),
                Err(e) => {
                    tracing::error!(error = %e, "the stream handler's answer does not parse");
                    all_sequence_numbers(&batch)
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "stream batch invocation failed; retrying it");
                all_sequence_numbers(&batch)
            }
        };
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

fn all_sequence_numbers(batch: &[Value]) -> Vec<String> {
    batch
        .iter()
        .filter_map(|r| {
            r.pointer("/dynamodb/SequenceNumber")
                .and_then(|s| s.as_str())
        })
        .map(str::to_owned)
        .collect()
}

/// A shard as `DescribeStream` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    pub parent: Option<String>,
}

/// Where to take a new iterator for a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    TrimHorizon,
    AfterSequenceNumber(String),
}

#[derive(Debug, Default)]
struct ShardState {
    parent: Option<String>,
    /// The iterator to read next; `None` when one has to be (re-)acquired.
    iterator: Option<String>,
    /// The sequence number of the last record handed to the handler (or filtered out).
    last_sequence: Option<String>,
    /// Closed and every record read: never read again.
    done: bool,
}

/// The event source mapping's bookkeeping, free of I/O: which shards exist, which may be
/// read now (a child only after its parent is done), where each one stands.
#[derive(Debug, Default)]
pub struct ShardTracker {
    shards: BTreeMap<String, ShardState>,
}

impl ShardTracker {
    /// Takes in a complete shard list. New shards are added; finished shards that the
    /// stream no longer lists (trimmed after 24 hours) are forgotten.
    pub fn observe(&mut self, listed: &[ShardInfo]) {
        for s in listed {
            self.shards
                .entry(s.id.clone())
                .or_insert_with(|| ShardState {
                    parent: s.parent.clone(),
                    ..ShardState::default()
                });
        }
        let ids: HashSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        self.shards
            .retain(|id, state| !state.done || ids.contains(id.as_str()));
    }

    /// Shards to read now, in shard id order: not done, and whose parent is done or no
    /// longer known (a parent trimmed from the stream has nothing left to read).
    pub fn ready(&self) -> Vec<String> {
        self.shards
            .iter()
            .filter(|(_, s)| !s.done)
            .filter(|(_, s)| match &s.parent {
                None => true,
                Some(p) => self.shards.get(p).is_none_or(|ps| ps.done),
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn is_done(&self, id: &str) -> bool {
        self.shards.get(id).is_some_and(|s| s.done)
    }

    pub fn iterator(&self, id: &str) -> Option<&str> {
        self.shards.get(id).and_then(|s| s.iterator.as_deref())
    }

    /// Where a fresh iterator for `id` must start: right after the last processed record,
    /// or at the oldest record when none was processed yet.
    pub fn start(&self, id: &str) -> Start {
        match self.shards.get(id).and_then(|s| s.last_sequence.clone()) {
            Some(seq) => Start::AfterSequenceNumber(seq),
            None => Start::TrimHorizon,
        }
    }

    pub fn set_iterator(&mut self, id: &str, iterator: String) {
        if let Some(s) = self.shards.get_mut(id) {
            s.iterator = Some(iterator);
        }
    }

    /// The iterator failed (expired, trimmed, any error): take a new one next time.
    pub fn iterator_lost(&mut self, id: &str) {
        if let Some(s) = self.shards.get_mut(id) {
            s.iterator = None;
        }
    }

    /// The sequence number recorded as processed is gone from the stream (trimmed): the
    /// next iterator starts at the oldest record still there.
    pub fn restart_at_trim_horizon(&mut self, id: &str) {
        if let Some(s) = self.shards.get_mut(id) {
            s.iterator = None;
            s.last_sequence = None;
        }
    }

    /// A `GetRecords` result was processed: `last_sequence` is its last record's (if it
    /// had any), `next` its `NextShardIterator` (`None`: the shard is closed and read).
    /// Returns whether the shard is now done.
    pub fn advanced(
        &mut self,
        id: &str,
        last_sequence: Option<String>,
        next: Option<String>,
    ) -> bool {
        let Some(s) = self.shards.get_mut(id) else {
            return false;
        };
        if last_sequence.is_some() {
            s.last_sequence = last_sequence;
        }
        s.done = next.is_none();
        s.iterator = next;
        s.done
    }
}

/// Doubling backoff between `BACKOFF_MIN` and `BACKOFF_MAX`.
#[derive(Debug)]
struct Backoff(Option<Duration>);

impl Backoff {
    fn failed(&mut self) -> Duration {
        let next = self.0.map_or(BACKOFF_MIN, |d| (d * 2).min(BACKOFF_MAX));
        self.0 = Some(next);
        next
    }
    fn succeeded(&mut self) {
        self.0 = None;
    }
}

/// Reads the whole shard list, following `LastEvaluatedShardId` page by page.
async fn describe_all(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> Result<Vec<ShardInfo>, String> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let out = client
            .describe_stream()
            .stream_arn(stream_arn)
            .set_exclusive_start_shard_id(start.clone())
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        let Some(desc) = out.stream_description else {
            return Err("DescribeStream returned no stream description".into());
        };
        for s in desc.shards.unwrap_or_default() {
            if let Some(id) = s.shard_id {
                shards.push(ShardInfo {
                    id,
                    parent: s.parent_shard_id,
                });
            }
        }
        match desc.last_evaluated_shard_id {
            Some(last) if start.as_deref() != Some(last.as_str()) => start = Some(last),
            _ => return Ok(shards),
        }
    }
}

/// Polls every shard of the stream until the process ends.
pub async fn run(sdk: SdkConfig, stream_arn: String, invoker: Arc<Invoker>) {
    let client = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let pattern: Value = serde_json::from_str(STREAM_FILTER).unwrap_or(Value::Null);
    let mut tracker = ShardTracker::default();
    let mut describe_backoff = Backoff(None);
    let mut next_describe = Instant::now();
    // Per shard: no call before this instant (after a failure).
    let mut shard_backoff: HashMap<String, (Backoff, Instant)> = HashMap::new();
    loop {
        if Instant::now() >= next_describe {
            match describe_all(&client, &stream_arn).await {
                Ok(shards) => {
                    describe_backoff.succeeded();
                    tracker.observe(&shards);
                    next_describe = Instant::now() + DESCRIBE_INTERVAL;
                }
                Err(error) => {
                    let pause = describe_backoff.failed();
                    tracing::warn!(%error, stream = %stream_arn, retry_in = ?pause, "DescribeStream failed");
                    next_describe = Instant::now() + pause;
                }
            }
        }
        let mut read_any = false;
        for shard in tracker.ready() {
            if shard_backoff
                .get(&shard)
                .is_some_and(|(_, until)| Instant::now() < *until)
            {
                continue;
            }
            match poll_shard(
                &client,
                &stream_arn,
                &region,
                &pattern,
                &invoker,
                &mut tracker,
                &shard,
            )
            .await
            {
                Ok(read) => {
                    shard_backoff.remove(&shard);
                    read_any |= read;
                    if tracker.is_done(&shard) {
                        tracing::info!(%shard, "stream shard closed and fully processed");
                        // Its children may be listed already, or appear now.
                        next_describe = Instant::now();
                    }
                }
                Err(error) => {
                    let entry = shard_backoff
                        .entry(shard.clone())
                        .or_insert_with(|| (Backoff(None), Instant::now()));
                    let pause = entry.0.failed();
                    entry.1 = Instant::now() + pause;
                    tracing::warn!(%error, %shard, retry_in = ?pause, "reading the stream failed");
                }
            }
        }
        shard_backoff.retain(|id, _| !tracker.is_done(id));
        if !read_any {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// One step on one shard: acquire an iterator if needed, read one page, deliver the
/// matching records. `Ok(true)` when records were read; `Err` names the failed call.
async fn poll_shard(
    client: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
    region: &str,
    pattern: &Value,
    invoker: &Invoker,
    tracker: &mut ShardTracker,
    shard: &str,
) -> Result<bool, String> {
    let iterator = match tracker.iterator(shard) {
        Some(it) => it.to_owned(),
        None => {
            let start = tracker.start(shard);
            let req = client
                .get_shard_iterator()
                .stream_arn(stream_arn)
                .shard_id(shard);
            let req = match &start {
                Start::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
                Start::AfterSequenceNumber(seq) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
            };
            match req.send().await {
                Ok(out) => match out.shard_iterator {
                    Some(it) => {
                        tracker.set_iterator(shard, it.clone());
                        it
                    }
                    None => {
                        return Err(format!("GetShardIterator ({start:?}) returned no iterator"))
                    }
                },
                Err(e) => {
                    let trimmed = e
                        .as_service_error()
                        .is_some_and(|s| s.is_trimmed_data_access_exception());
                    if trimmed && start != Start::TrimHorizon {
                        // The records after our last one aged out before we read them:
                        // in AWS they are lost (MaximumRecordAge); go on from the oldest.
                        tracing::error!(%shard, ?start, "stream records were trimmed before they were processed; continuing at TRIM_HORIZON");
                        tracker.restart_at_trim_horizon(shard);
                    }
                    return Err(format!(
                        "GetShardIterator ({start:?}): {}",
                        DisplayErrorContext(&e)
                    ));
                }
            }
        }
    };
    let out = match client.get_records().shard_iterator(&iterator).send().await {
        Ok(out) => out,
        Err(e) => {
            // Expired (15 minutes), trimmed, or anything else: a fresh iterator from the
            // last processed record next time.
            tracker.iterator_lost(shard);
            return Err(format!("GetRecords: {}", DisplayErrorContext(&e)));
        }
    };
    let records = out.records.unwrap_or_default();
    let last_sequence = records
        .iter()
        .rev()
        .find_map(|r| r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone()));
    let matching: Vec<Value> = records
        .iter()
        .map(|r| lambda_record(r, stream_arn, region))
        .filter(|r| matches(pattern, r))
        .collect();
    for chunk in matching.chunks(BATCH_SIZE) {
        deliver(invoker, chunk.to_vec()).await;
    }
    tracker.advanced(shard, last_sequence, out.next_shard_iterator);
    Ok(!records.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
        }
    }

    #[test]
    fn a_new_shard_starts_at_trim_horizon_then_after_the_last_processed_record() {
        let mut t = ShardTracker::default();
        t.observe(&[shard("s1", None)]);
        assert_eq!(t.ready(), vec!["s1"]);
        assert_eq!(t.start("s1"), Start::TrimHorizon);
        assert_eq!(t.iterator("s1"), None);
        t.set_iterator("s1", "it-1".into());
        assert_eq!(t.iterator("s1"), Some("it-1"));
        // A page with records moves the position; an empty one keeps it.
        assert!(!t.advanced("s1", Some("100".into()), Some("it-2".into())));
        assert!(!t.advanced("s1", None, Some("it-3".into())));
        assert_eq!(t.iterator("s1"), Some("it-3"));
        assert_eq!(t.start("s1"), Start::AfterSequenceNumber("100".into()));
    }

    #[test]
    fn a_lost_iterator_is_reacquired_after_the_last_sequence_number() {
        let mut t = ShardTracker::default();
        t.observe(&[shard("s1", None)]);
        t.set_iterator("s1", "it-1".into());
        t.advanced("s1", Some("200".into()), Some("it-2".into()));
        t.iterator_lost("s1");
        assert_eq!(t.iterator("s1"), None);
        assert_eq!(t.start("s1"), Start::AfterSequenceNumber("200".into()));
        assert_eq!(t.ready(), vec!["s1"], "still read, from a new iterator");
        // When even that record was trimmed, start again at the oldest one.
        t.restart_at_trim_horizon("s1");
        assert_eq!(t.start("s1"), Start::TrimHorizon);
    }

    #[test]
    fn a_closed_shard_is_done_and_its_children_follow_it() {
        let mut t = ShardTracker::default();
        t.observe(&[shard("parent", None), shard("child-a", Some("parent"))]);
        assert_eq!(t.ready(), vec!["parent"], "children wait for their parent");
        t.advanced("parent", Some("5".into()), Some("it".into()));
        assert_eq!(t.ready(), vec!["parent"]);
        // The last page of a closed shard has no NextShardIterator.
        assert!(t.advanced("parent", Some("9".into()), None));
        assert!(t.is_done("parent"));
        assert_eq!(t.ready(), vec!["child-a"]);
        // A sibling listed later joins; the parent is never read again.
        t.observe(&[
            shard("parent", None),
            shard("child-a", Some("parent")),
            shard("child-b", Some("parent")),
        ]);
        assert_eq!(t.ready(), vec!["child-a", "child-b"]);
        assert_eq!(t.start("child-b"), Start::TrimHorizon);
    }

    #[test]
    fn grandchildren_wait_for_the_whole_line() {
        let mut t = ShardTracker::default();
        t.observe(&[
            shard("a", None),
            shard("b", Some("a")),
            shard("c", Some("b")),
        ]);
        assert_eq!(t.ready(), vec!["a"]);
        t.advanced("a", None, None);
        assert_eq!(t.ready(), vec!["b"]);
        t.advanced("b", None, None);
        assert_eq!(t.ready(), vec!["c"]);
    }

    #[test]
    fn a_child_whose_parent_was_trimmed_is_read_and_finished_shards_are_forgotten() {
        let mut t = ShardTracker::default();
        // The parent aged out of the stream before we ever saw it.
        t.observe(&[shard("child", Some("gone"))]);
        assert_eq!(t.ready(), vec!["child"]);
        // A finished shard that the stream stops listing is dropped; an unfinished one
        // is kept (a shard list can lag).
        t.observe(&[shard("old", None), shard("open", None)]);
        t.advanced("old", None, None);
        t.observe(&[shard("child", Some("gone"))]);
        assert!(!t.is_done("old"));
        assert_eq!(t.ready(), vec!["child", "open"]);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff(None);
        assert_eq!(b.failed(), BACKOFF_MIN);
        assert_eq!(b.failed(), BACKOFF_MIN * 2);
        for _ in 0..10 {
            b.failed();
        }
        assert_eq!(b.failed(), BACKOFF_MAX);
        b.succeeded();
        assert_eq!(b.failed(), BACKOFF_MIN);
    }

    #[test]
    fn the_filter_matches_pending_buckets_only() {
        let pattern: Value = serde_json::from_str(STREAM_FILTER).unwrap();
        let event = |name: &str, status: &str| json!({"eventName": name, "dynamodb": {"NewImage": {"state_bucket": {"M": {"status": {"S": status}}}}}});
        assert!(matches(&pattern, &event("INSERT", "pending")));
        assert!(matches(&pattern, &event("MODIFY", "pending")));
        assert!(!matches(&pattern, &event("MODIFY", "ready")));
        assert!(!matches(&pattern, &event("REMOVE", "pending")));
    }
}
