//! `IntegrationStore` on DynamoDB.
//!
//! Items in one table (key `pk`):
//! - `I#<id>`: the integration, with `entity = "integration"` and `name_key` (the
//!   lower-cased name) for the `by_name` index that lists integrations sorted by name;
//! - `N#<name_key>`: the name guard, `integration_id = <id>`. Writing a record and its
//!   guard in one transaction makes names unique without races.
//!
//! While a record's state bucket is `pending` or `provisioning` it also carries
//! `sweep_pk` (that status) and `sweep_at` (when it got it): the sparse `by_bucket_sweep`
//! index then lists exactly the buckets the sweeper may have to re-drive, oldest first.

use crate::app::error::{Dependency, Error, Result};
use crate::domain::{BucketStatus, Integration, LastTest, StateBucket};
use crate::ports::{
    BucketGuard, CreateOutcome, Idempotency, IntegrationStore, ListQuery, Page, WriteOutcome,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

mod names;
pub use names::{NameCheck, OrphanGuard, RecordName};

/// Lambda event filter of the stream trigger (template.yaml `FilterCriteria`): only
/// records whose new image has a pending state bucket invoke the function.
pub const STREAM_FILTER: &str = r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"state_bucket": {"M": {"status": {"S": ["pending"]}}}}}}"#;

/// The integration id of a stream image (the table's JSON form, as Lambda delivers it)
/// whose state bucket is pending: the same test as [`STREAM_FILTER`], applied again in
/// case the filter is missing.
pub fn pending_bucket_of_image(image: &serde_json::Value) -> Option<String> {
    let status = image
        .pointer("/state_bucket/M/status/S")
        .and_then(|v| v.as_str())?;
    if status != "pending" {
        return None;
    }
    image
        .pointer("/pk/S")
        .and_then(|v| v.as_str())?
        .strip_prefix("I#")
        .map(str::to_owned)
}

pub const INDEX_BY_NAME: &str = "by_name";
pub const INDEX_BUCKET_SWEEP: &str = "by_bucket_sweep";
const ENTITY: &str = "integration";
/// Query pages read while looking for label matches before returning a short page.
const MAX_PAGES_PER_LIST: usize = 10;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
}

fn record_key(id: &str) -> String {
    format!("I#{id}")
}

/// Idempotency keys are kept this long (the table's TTL on `expires_at` removes them).
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

fn idempotency_key(scoped_key: &str) -> String {
    format!("K#{scoped_key}")
}

fn guard_key(name: &str) -> String {
    format!("N#{}", name.to_lowercase())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[derive(Serialize)]
struct Stored<'a> {
    pk: String,
    entity: &'static str,
    name_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep_pk: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep_at: Option<String>,
    #[serde(flatten)]
    integration: &'a Integration,
}

/// The sweep index keys of a bucket: present only while it may need re-driving.
fn sweep_keys(bucket: Option<&StateBucket>) -> Option<(&'static str, String)> {
    let b = bucket?;
    match b.status {
        BucketStatus::Pending | BucketStatus::Provisioning => Some((
            b.status.as_str(),
            // A missing time sorts first: such a bucket is always due.
            b.status_changed_at.clone().unwrap_or_default(),
        )),
        BucketStatus::Ready | BucketStatus::Failed => None,
    }
}

/// Fields a PATCH may change. Provisioning status and test results are written by
/// their own paths, so an update never overwrites them with what it read earlier.
const CALLER_FIELDS: &[&str] = &[
    "name",
    "name_key",
    "description",
    "labels",
    "aws_access_key_id",
    "secret_ciphertext",
    "aws_assumed_role_name",
    "aws_external_id",
    "aws_session_duration",
    "aws_default_region",
    "create_state_bucket",
    "updated_at",
    "revision",
];

fn to_item(i: &Integration) -> Result<Item> {
    let sweep = sweep_keys(i.state_bucket.as_ref());
    serde_dynamo::to_item(Stored {
        pk: record_key(&i.id),
        entity: ENTITY,
        name_key: i.name.to_lowercase(),
        sweep_pk: sweep.as_ref().map(|(pk, _)| *pk),
        sweep_at: sweep.map(|(_, at)| at),
        integration: i,
    })
    .map_err(|e| Error::internal_from("serialising an integration", e))
}

fn from_item(item: Item) -> Result<Integration> {
    serde_dynamo::from_item(item)
        .map_err(|e| Error::internal_from("a stored integration does not parse", e))
}

/// Continuation token: where the previous page stopped, and the filter it was for.
#[derive(Serialize, Deserialize)]
struct Token {
    v: u8,
    id: String,
    name_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

fn encode_token(t: &Token) -> String {
    let json = serde_json::to_vec(t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(raw: &str, label: &Option<String>) -> Result<Token> {
    let bad = || Error::validation("next_token", "is not a token this API returned");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    // Every decoded field is checked: a forged sort key (empty, too long) would otherwise
    // reach DynamoDB as an invalid ExclusiveStartKey and come back as a 503.
    let name_key_ok =
        crate::http::input::name(&t.name_key).is_ok() && t.name_key == t.name_key.to_lowercase();
    if t.v != 1 || !crate::domain::is_integration_id(&t.id) || !name_key_ok {
        return Err(bad());
    }
    if &t.label != label {
        return Err(Error::validation(
            "next_token",
            "belongs to a listing with another label filter",
        ));
    }
    Ok(t)
}

/// Why DynamoDB cancelled a transaction, as far as the caller can act on it.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// Which items failed their condition (`true`): the caller's outcome.
    Conditions(Vec<bool>),
    /// Another transaction held one of the items (`TransactionConflict`): nothing was
    /// written and the same transaction may simply be tried again.
    Conflict,
}

/// Classifies the per-item reason codes of a `TransactionCanceledException`. A failed
/// condition decides the outcome even when another item also conflicted; any other
/// reason (throttling, validation, ...) is not a cancellation the caller can act on.
fn classify_cancellation(codes: &[Option<&str>]) -> Option<Cancellation> {
    let failed: Vec<bool> = codes
        .iter()
        .map(|c| *c == Some("ConditionalCheckFailed"))
        .collect();
    if failed.iter().any(|f| *f) {
        Some(Cancellation::Conditions(failed))
    } else if codes.contains(&Some("TransactionConflict")) {
        Some(Cancellation::Conflict)
    } else {
        None
    }
}

/// Which items of a cancelled transaction failed their condition, or whether it only
/// ran into a concurrent transaction on the same items.
fn cancelled_items(err: &SdkError<TransactWriteItemsError>) -> Option<Cancellation> {
    let SdkError::ServiceError(e) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(tc) = e.err() else {
        return None;
    };
    let codes: Vec<Option<&str>> = tc.cancellation_reasons().iter().map(|r| r.code()).collect();
    classify_cancellation(&codes)
}

/// Bounds for re-running a transaction that lost a `TransactionConflict`: a few tries
/// with short jittered backoff, never longer than `CONFLICT_RETRY_BUDGET` in all.
const CONFLICT_ATTEMPTS: u32 = 8;
const CONFLICT_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_millis(2_000);

/// Full jitter: a random delay up to 20 ms * 2^retry (at most 320 ms).
fn conflict_backoff(retry: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let cap_ms = 20u64 << retry.min(4);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(retry);
    std::time::Duration::from_millis(1 + h.finish() % cap_ms)
}

impl DynamoStore {
    /// The outcome of a create whose idempotency key exists: the stored response when
    /// the request is the same, else `KeyReused`.
    async fn replay(&self, k: &Idempotency) -> Result<CreateOutcome> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(idempotency_key(&k.key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::unavailable(Dependency::DynamoDb, "GetItem", e))?;
        let item = out.item.unwrap_or_default();
        let text = |f: &str| item.get(f).and_then(|v| v.as_s().ok()).cloned();
        match (text("fingerprint"), text("response")) {
            (Some(f), Some(response)) if f == k.fingerprint => {
                Ok(CreateOutcome::Replay { response })
            }
            (Some(_), _) => Ok(CreateOutcome::KeyReused),
            // Expired between the write and this read: the caller may retry afresh.
            (None, _) => Err(Error::Unavailable {
                dependency: Dependency::DynamoDb,
                operation: "GetItem",
                code: "IdempotencyKeyExpired".into(),
                retry_after: std::time::Duration::from_secs(1),
                source: None,
            }),
        }
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        outcome_of: impl Fn(&[bool]) -> WriteOutcome,
    ) -> Result<WriteOutcome> {
        Ok(match self.transact_conditions(items).await? {
            None => WriteOutcome::Written,
            Some(failed) => outcome_of(&failed),
        })
    }

    /// Runs a transaction: `None` when written, else which items failed their condition.
    ///
    /// TransactWriteItems is idempotent through its ClientRequestToken: the SDK fills
    /// one per `send()` and keeps it across its own retries, so a retry after a time-out
    /// whose first attempt did land is not applied twice (the unit tests pin that).
    async fn transact_conditions(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<bool>>> {
        // Concurrent transactions on the same items (e.g. two creates of one name) can be
        // cancelled with `TransactionConflict` before either condition is evaluated. Run
        // it again: the rerun sees the winner's write and fails its condition (409/412).
        let started = std::time::Instant::now();
        let mut retry = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let e = match sent {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            match cancelled_items(&e) {
                Some(Cancellation::Conditions(failed)) => return Ok(Some(failed)),
                Some(Cancellation::Conflict)
                    if retry + 1 < CONFLICT_ATTEMPTS
                        && started.elapsed() < CONFLICT_RETRY_BUDGET =>
                {
                    let pause = conflict_backoff(retry);
                    tracing::debug!(retry, ?pause, "transaction conflict; trying again");
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
                _ => {
                    return Err(super::unavailable(
                        Dependency::DynamoDb,
                        "TransactWriteItems",
                        e,
                    ))
                }
            }
        }
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn guard_item(&self, name: &str, id: &str) -> Result<TransactWriteItem> {
        let item: Item = [
            ("pk".to_owned(), s(guard_key(name))),
            ("integration_id".to_owned(), s(id)),
        ]
        .into();
        self.put(item, "attribute_not_exists(pk)")
    }

    fn delete_guard(&self, name: &str, id: &str) -> Result<TransactWriteItem> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(guard_key(name)))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", s(id))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }
}

#[async_trait]
impl IntegrationStore for DynamoStore {
    async fn create(
        &self,
        i: &Integration,
        idempotency: Option<&Idempotency>,
    ) -> Result<CreateOutcome> {
        let mut items = vec![
            self.put(to_item(i)?, "attribute_not_exists(pk)")?,
            self.guard_item(&i.name, &i.id)?,
        ];
        if let Some(k) = idempotency {
            let expires = time::OffsetDateTime::now_utc().unix_timestamp() + IDEMPOTENCY_TTL_SECS;
            let item: Item = [
                ("pk".to_owned(), s(idempotency_key(&k.key))),
                ("fingerprint".to_owned(), s(&k.fingerprint)),
                ("integration_id".to_owned(), s(&i.id)),
                ("response".to_owned(), s(&k.response)),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires.to_string()),
                ),
            ]
            .into();
            items.push(self.put(item, "attribute_not_exists(pk)")?);
        }
        match self.transact_conditions(items).await? {
            None => Ok(CreateOutcome::Created),
            Some(failed) => match (idempotency, failed.as_slice()) {
                (Some(k), [_, _, true]) => self.replay(k).await,
                (_, [_, true, ..]) => Ok(CreateOutcome::NameTaken),
                _ => Ok(CreateOutcome::IdTaken),
            },
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Integration>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(record_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::unavailable(Dependency::DynamoDb, "GetItem", e))?;
        out.item.map(from_item).transpose()
    }

    async fn update(&self, new: &Integration, old: &Integration) -> Result<WriteOutcome> {
        let item = to_item(new)?;
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut set = Vec::new();
        let mut remove = Vec::new();
        for (n, field) in CALLER_FIELDS.iter().enumerate() {
            names.insert(format!("#f{n}"), (*field).to_owned());
            match item.get(*field) {
                Some(v) => {
                    set.push(format!("#f{n} = :v{n}"));
                    values.insert(format!(":v{n}"), v.clone());
                }
                None => remove.push(format!("#f{n}")),
            }
        }
        // A bucket is only ever added here (the caller turned it on and there was none);
        // after that only set_bucket writes it. If one appeared since our read, the
        // revision check below does not see it, so the condition asks for its absence.
        let adds_bucket = old.state_bucket.is_none() && item.contains_key("state_bucket");
        if adds_bucket {
            for field in ["state_bucket", "sweep_pk", "sweep_at"] {
                if let Some(v) = item.get(field) {
                    names.insert(format!("#{field}"), field.to_owned());
                    values.insert(format!(":{field}"), v.clone());
                    set.push(format!("#{field} = :{field}"));
                }
            }
        }
        names.insert("#rev".into(), "revision".into());
        values.insert(
            ":expected".into(),
            AttributeValue::N(old.revision.to_string()),
        );
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(record_key(&old.id)))
            .update_expression(expr)
            .condition_expression(if adds_bucket {
                "#rev = :expected AND attribute_not_exists(#state_bucket)"
            } else {
                "#rev = :expected"
            })
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        let update = TransactWriteItem::builder().update(update).build();
        let renamed = new.name.to_lowercase() != old.name.to_lowercase();
        if !renamed {
            return self.transact(vec![update], |_| WriteOutcome::Stale).await;
        }
        let new_guard = self.guard_item(&new.name, &new.id)?;
        let items = vec![
            update.clone(),
            self.delete_guard(&old.name, &old.id)?,
            new_guard.clone(),
        ];
        let outcome = |failed: &[bool]| match failed {
            [true, ..] => WriteOutcome::Stale,
            [_, .., true] => WriteOutcome::NameTaken,
            _ => WriteOutcome::Stale,
        };
        match self.transact_conditions(items).await? {
            None => Ok(WriteOutcome::Written),
            // Only the old guard failed: it is missing or held by another record (a
            // restore, a hand edit). Rename anyway, which repairs the record's guard.
            Some(failed) if failed == [false, true, false] => {
                tracing::warn!(integration_id = %old.id, "old name guard missing or not this record's; renaming without it");
                Ok(
                    match self.transact_conditions(vec![update, new_guard]).await? {
                        None => WriteOutcome::Written,
                        Some(failed) => outcome(&[failed[0], false, failed.get(1) == Some(&true)]),
                    },
                )
            }
            Some(failed) => Ok(outcome(&failed)),
        }
    }

    async fn delete(&self, old: &Integration) -> Result<WriteOutcome> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(record_key(&old.id)))
            .condition_expression("revision = :expected")
            .expression_attribute_values(":expected", AttributeValue::N(old.revision.to_string()))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        let record = TransactWriteItem::builder().delete(del).build();
        let items = vec![record.clone(), self.delete_guard(&old.name, &old.id)?];
        match self.transact_conditions(items).await? {
            None => Ok(WriteOutcome::Written),
            // Only the guard failed: it is missing or held by another record. The record
            // still goes; another record's guard is left alone.
            Some(failed) if failed == [false, true] => {
                tracing::warn!(integration_id = %old.id, "name guard missing or not this record's; deleting the record alone");
                self.transact(vec![record], |_| WriteOutcome::Stale).await
            }
            Some(_) => Ok(WriteOutcome::Stale),
        }
    }

    async fn list(&self, q: &ListQuery) -> Result<Page> {
        let mut start = match &q.next_token {
            Some(raw) => {
                let t = decode_token(raw, &q.label)?;
                Some(HashMap::from([
                    ("pk".to_owned(), s(record_key(&t.id))),
                    ("entity".to_owned(), s(ENTITY)),
                    ("name_key".to_owned(), s(t.name_key)),
                ]))
            }
            None => None,
        };
        let mut items: Vec<Integration> = Vec::new();
        // Where the next page starts: after the last item returned when we stopped
        // inside a DynamoDB page, else after the last item DynamoDB evaluated.
        let mut resume: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES_PER_LIST {
            let want = q.limit - items.len();
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_BY_NAME)
                .key_condition_expression("entity = :e")
                .expression_attribute_values(":e", s(ENTITY))
                .set_exclusive_start_key(start.take());
            req = match &q.label {
                // A filter is applied after the read, so read more than we need.
                Some(label) => req
                    .filter_expression("contains(labels, :l)")
                    .expression_attribute_values(":l", s(label))
                    .limit(100),
                None => req.limit(want as i32),
            };
            let out = req
                .send()
                .await
                .map_err(|e| super::unavailable(Dependency::DynamoDb, "Query", e))?;
            let mut cut = false;
            for item in out.items.unwrap_or_default() {
                if items.len() == q.limit {
                    cut = true;
                    break;
                }
                items.push(from_item(item)?);
            }
            start = out.last_evaluated_key;
            resume = if cut {
                items.last().map(|i| (i.id.clone(), i.name.to_lowercase()))
            } else {
                start.as_ref().and_then(|k| {
                    let id = k.get("pk")?.as_s().ok()?.strip_prefix("I#")?.to_owned();
                    Some((id, k.get("name_key")?.as_s().ok()?.clone()))
                })
            };
            if items.len() == q.limit || resume.is_none() {
                break;
            }
        }
        let next_token = resume.map(|(id, name_key)| {
            encode_token(&Token {
                v: 1,
                id,
                name_key,
                label: q.label.clone(),
            })
        });
        Ok(Page { items, next_token })
    }

    async fn record_test(&self, id: &str, test: &LastTest) -> Result<WriteOutcome> {
        let value = serde_dynamo::to_attribute_value(test)
            .map_err(|e| Error::internal_from("serialising last_test", e))?;
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_key(id)))
            .update_expression("SET last_test = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", value)
            .send()
            .await;
        conditional(res, "UpdateItem")
    }

    async fn set_bucket(
        &self,
        id: &str,
        bucket: &StateBucket,
        guard: BucketGuard<'_>,
    ) -> Result<WriteOutcome> {
        let value = serde_dynamo::to_attribute_value(bucket)
            .map_err(|e| Error::internal_from("serialising a state bucket", e))?;
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":b".to_owned(), value),
            (":t".to_owned(), AttributeValue::Bool(true)),
        ]);
        let mut clauses = vec![];
        if guard.allow_absent {
            clauses.push("attribute_not_exists(state_bucket)".to_owned());
        }
        for (n, st) in guard.from.iter().enumerate() {
            clauses.push(format!("state_bucket.#st = :from{n}"));
            values.insert(format!(":from{n}"), s(st.as_str()));
        }
        if let Some((status, before)) = guard.unchanged_since_before {
            clauses.push("state_bucket.#st = :since_st AND state_bucket.#at < :before".to_owned());
            values.insert(":since_st".into(), s(status.as_str()));
            values.insert(":before".into(), s(before));
        }
        // DynamoDB refuses redundant parentheses, so only alternatives get them.
        let condition = match clauses.as_slice() {
            [] => "attribute_exists(pk)".to_owned(),
            [one] => format!("attribute_exists(pk) AND {one}"),
            many => {
                let alternatives: Vec<String> = many
                    .iter()
                    .map(|c| {
                        if c.contains(" AND ") {
                            format!("({c})")
                        } else {
                            c.clone()
                        }
                    })
                    .collect();
                format!("attribute_exists(pk) AND ({})", alternatives.join(" OR "))
            }
        };
        let mut names = HashMap::new();
        if condition.contains("#st") {
            names.insert("#st".to_owned(), "status".to_owned());
        }
        if condition.contains("#at") {
            names.insert("#at".to_owned(), "status_changed_at".to_owned());
        }
        let mut update = "SET state_bucket = :b, create_state_bucket = :t".to_owned();
        match sweep_keys(Some(bucket)) {
            Some((pk, at)) => {
                update.push_str(", sweep_pk = :spk, sweep_at = :sat");
                values.insert(":spk".into(), s(pk));
                values.insert(":sat".into(), s(at));
            }
            None => update.push_str(" REMOVE sweep_pk, sweep_at"),
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_key(id)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional(res, "UpdateItem")
    }

    async fn buckets_due(
        &self,
        status: BucketStatus,
        changed_before: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BUCKET_SWEEP)
            .key_condition_expression("sweep_pk = :st AND sweep_at < :before")
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":before", s(changed_before))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| super::unavailable(Dependency::DynamoDb, "Query", e))?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                item.get("pk")?
                    .as_s()
                    .ok()?
                    .strip_prefix("I#")
                    .map(str::to_owned)
            })
            .collect())
    }
}

fn conditional<T>(
    res: std::result::Result<
        T,
        SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>,
    >,
    op: &'static str,
) -> Result<WriteOutcome> {
    match res {
        Ok(_) => Ok(WriteOutcome::Written),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(WriteOutcome::Stale)
        }
        Err(e) => Err(super::unavailable(Dependency::DynamoDb, op, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellations_are_classified_by_their_reason_codes() {
        use Cancellation::*;
        let ccf = Some("ConditionalCheckFailed");
        let conflict = Some("TransactionConflict");
        assert_eq!(
            classify_cancellation(&[Some("None"), ccf]),
            Some(Conditions(vec![false, true]))
        );
        // A failed condition decides even when another item conflicted.
        assert_eq!(
            classify_cancellation(&[conflict, ccf]),
            Some(Conditions(vec![false, true]))
        );
        assert_eq!(
            classify_cancellation(&[conflict, Some("None")]),
            Some(Conflict)
        );
        assert_eq!(classify_cancellation(&[None, conflict]), Some(Conflict));
        // Anything else is the dependency's problem (a retryable 503).
        assert_eq!(
            classify_cancellation(&[Some("ThrottlingError"), Some("None")]),
            None
        );
        assert_eq!(classify_cancellation(&[]), None);
    }

    fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;
        let mut e = TransactionCanceledException::builder().message("cancelled");
        for c in codes {
            e = e.cancellation_reasons(CancellationReason::builder().code(*c).build());
        }
        TransactWriteItemsError::TransactionCanceledException(e.build())
    }

    async fn transact_with(rule: &aws_smithy_mocks::Rule) -> Result<WriteOutcome> {
        let client = aws_smithy_mocks::mock_client!(
            aws_sdk_dynamodb,
            aws_smithy_mocks::RuleMode::MatchAny,
            [rule]
        );
        DynamoStore::new(client, "table")
            .transact(vec![], |failed| {
                if failed.get(1) == Some(&true) {
                    WriteOutcome::NameTaken
                } else {
                    WriteOutcome::Stale
                }
            })
            .await
    }

    #[tokio::test]
    async fn a_conflicting_transaction_is_run_again_until_its_condition_decides() {
        use aws_smithy_mocks::mock;
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["None", "TransactionConflict"]))
            .times(2)
            .error(|| cancelled(&["None", "ConditionalCheckFailed"]))
            .build();
        assert!(matches!(
            transact_with(&rule).await,
            Ok(WriteOutcome::NameTaken)
        ));
        assert_eq!(rule.num_calls(), 3);

        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["TransactionConflict", "None"]))
            .output(|| {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                    .build()
            })
            .build();
        assert!(matches!(
            transact_with(&rule).await,
            Ok(WriteOutcome::Written)
        ));
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn every_transaction_carries_a_client_request_token() {
        use aws_smithy_mocks::mock;
        // The token is what makes the SDK's own retries idempotent in DynamoDB.
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .match_requests(|r| r.client_request_token().is_some_and(|t| !t.is_empty()))
            .then_output(|| {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                    .build()
            });
        let client = aws_smithy_mocks::mock_client!(
            aws_sdk_dynamodb,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&rule]
        );
        let store = DynamoStore::new(client, "table");
        assert_eq!(store.transact_conditions(vec![]).await.unwrap(), None);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn endless_conflicts_give_up_in_bounded_time_as_unavailable() {
        use aws_smithy_mocks::mock;
        let rule = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .error(|| cancelled(&["TransactionConflict", "TransactionConflict"]))
            .repeatedly()
            .build();
        let started = std::time::Instant::now();
        let outcome = transact_with(&rule).await;
        assert!(
            matches!(outcome, Err(Error::Unavailable { .. })),
            "{outcome:?}"
        );
        assert!(rule.num_calls() <= CONFLICT_ATTEMPTS as usize);
        assert!(started.elapsed() < CONFLICT_RETRY_BUDGET + std::time::Duration::from_secs(1));
    }

    #[test]
    fn conflict_backoff_is_short_jittered_and_bounded() {
        for retry in 0..CONFLICT_ATTEMPTS {
            let d = conflict_backoff(retry);
            assert!(d >= std::time::Duration::from_millis(1));
            assert!(d <= std::time::Duration::from_millis(320), "{d:?}");
        }
        let worst: u64 = (0..CONFLICT_ATTEMPTS).map(|r| 20u64 << r.min(4)).sum();
        assert!(worst < 3_000, "{worst} ms");
    }

    #[test]
    fn only_pending_and_provisioning_buckets_are_in_the_sweep_index() {
        let mut b = StateBucket::pending("123456789012", "us-east-1", "2026-11-26T05:35:05.000Z");
        assert_eq!(
            sweep_keys(Some(&b)),
            Some(("pending", "2026-11-26T05:35:05.000Z".to_owned()))
        );
        b.status = BucketStatus::Provisioning;
        assert_eq!(sweep_keys(Some(&b)).map(|k| k.0), Some("provisioning"));
        for done in [BucketStatus::Ready, BucketStatus::Failed] {
            b.status = done;
            assert_eq!(sweep_keys(Some(&b)), None);
        }
        assert_eq!(sweep_keys(None), None);
    }

    #[test]
    fn token_round_trip_and_tamper() {
        let t = Token {
            v: 1,
            id: "01J00000000000000000000000".into(),
            name_key: "aws-prod".into(),
            label: Some("prod".into()),
        };
        let raw = encode_token(&t);
        let back = decode_token(&raw, &Some("prod".into())).unwrap();
        assert_eq!(back.name_key, "aws-prod");
        assert!(decode_token(&raw, &None).is_err());
        assert!(decode_token("not-a-token", &None).is_err());
        assert!(decode_token(&format!("{raw}x"), &Some("prod".into())).is_err());
        // Forged sort keys: empty, far too long, not a lower-cased name.
        for forged in ["", &"a".repeat(2000), "AWS-Prod", "a b"] {
            let t = Token {
                v: 1,
                id: "01J00000000000000000000000".into(),
                name_key: forged.to_owned(),
                label: None,
            };
            assert!(
                decode_token(&encode_token(&t), &None).is_err(),
                "{forged:?}"
            );
        }
    }
}
