//! `IntegrationStore` on DynamoDB (the table layout is in `layout`).

use crate::domain::{AuditEvent, BucketStatus, Integration, LastTest, StateBucket, Timestamp};
use crate::error::{Dependency, Error, Result};
use crate::ports::{
    BucketGuard, CreateOutcome, HistoryPage, HistoryQuery, Idempotency, IntegrationStore,
    ListQuery, Page, WriteOutcome,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

mod audit;
mod layout;
mod names;
mod query;
mod token;
mod transact;

#[cfg(test)]
mod roundtrip_tests;

pub use layout::{
    create_table, pending_bucket_of_image, INDEX_BUCKET_SWEEP, INDEX_BY_NAME, INDEX_HISTORY,
    STREAM_FILTER,
};
pub use names::{NameCheck, OrphanGuard, RecordName};

use layout::*;

pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long audit events are kept (the table's TTL removes them after).
    audit_retention: std::time::Duration,
}

/// Audit events are kept this long unless configured (`AUDIT_RETENTION_DAYS`).
pub const DEFAULT_AUDIT_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

impl DynamoStore {
    /// The outcome of a create whose idempotency key exists: the stored response when
    /// the request is the same, else `KeyReused`.
    async fn replay(&self, k: &Idempotency) -> Result<CreateOutcome> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", string_attr(idempotency_key(&k.key)))
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
            audit_retention: DEFAULT_AUDIT_RETENTION,
        }
    }

    pub fn with_audit_retention(mut self, retention: std::time::Duration) -> Self {
        self.audit_retention = retention;
        self
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
            ("pk".to_owned(), string_attr(guard_key(name))),
            ("integration_id".to_owned(), string_attr(id)),
        ]
        .into();
        self.put(item, "attribute_not_exists(pk)")
    }

    fn delete_guard(&self, name: &str, id: &str) -> Result<TransactWriteItem> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key("pk", string_attr(guard_key(name)))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", string_attr(id))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }

    /// The conditional update of the caller-owned fields (`CALLER_FIELDS`) of `old` to
    /// those of `new`, valid only while `old.revision` is current.
    fn update_item(&self, new: &Integration, old: &Integration) -> Result<TransactWriteItem> {
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
            .key("pk", string_attr(record_key(old.id.as_str())))
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
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl IntegrationStore for DynamoStore {
    async fn create(
        &self,
        i: &Integration,
        idempotency: Option<&Idempotency>,
        audit: &AuditEvent,
    ) -> Result<CreateOutcome> {
        let mut items = vec![
            self.put(to_item(i)?, "attribute_not_exists(pk)")?,
            self.guard_item(i.name.as_str(), i.id.as_str())?,
        ];
        if let Some(k) = idempotency {
            let expires = time::OffsetDateTime::now_utc().unix_timestamp() + IDEMPOTENCY_TTL_SECS;
            let item: Item = [
                ("pk".to_owned(), string_attr(idempotency_key(&k.key))),
                ("fingerprint".to_owned(), string_attr(&k.fingerprint)),
                ("integration_id".to_owned(), string_attr(i.id.as_str())),
                ("response".to_owned(), string_attr(&k.response)),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires.to_string()),
                ),
            ]
            .into();
            items.push(self.put(item, "attribute_not_exists(pk)")?);
        }
        // Last, so the positions above keep their meaning in the failure list.
        items.push(self.audit_item(audit)?);
        match self.transact_conditions(items).await? {
            None => Ok(CreateOutcome::Created),
            Some(failed) => match (idempotency, failed.as_slice()) {
                (Some(k), [_, _, true, ..]) => self.replay(k).await,
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
            .key("pk", string_attr(record_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::unavailable(Dependency::DynamoDb, "GetItem", e))?;
        out.item.map(from_item).transpose()
    }

    async fn update(
        &self,
        new: &Integration,
        old: &Integration,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome> {
        let update = self.update_item(new, old)?;
        let event = self.audit_item(audit)?;
        let renamed = new.name.as_str().to_lowercase() != old.name.as_str().to_lowercase();
        if !renamed {
            return self
                .transact(vec![update, event], |_| WriteOutcome::Stale)
                .await;
        }
        let new_guard = self.guard_item(new.name.as_str(), new.id.as_str())?;
        let items = vec![
            update.clone(),
            self.delete_guard(old.name.as_str(), old.id.as_str())?,
            new_guard.clone(),
            event.clone(),
        ];
        // By position: the record, the old guard, the new guard (the event never fails).
        let outcome = |failed: &[bool]| match failed {
            [true, ..] => WriteOutcome::Stale,
            [_, _, true, ..] => WriteOutcome::NameTaken,
            _ => WriteOutcome::Stale,
        };
        match self.transact_conditions(items).await? {
            None => Ok(WriteOutcome::Written),
            // Only the old guard failed: it is missing or held by another record (a
            // restore, a hand edit). Rename anyway, which repairs the record's guard.
            Some(failed) if failed[..3] == [false, true, false] => {
                tracing::warn!(integration_id = %old.id, "old name guard missing or not this record's; renaming without it");
                Ok(
                    match self
                        .transact_conditions(vec![update, new_guard, event])
                        .await?
                    {
                        None => WriteOutcome::Written,
                        Some(failed) => outcome(&[failed[0], false, failed.get(1) == Some(&true)]),
                    },
                )
            }
            Some(failed) => Ok(outcome(&failed)),
        }
    }

    async fn delete(&self, old: &Integration, audit: &AuditEvent) -> Result<WriteOutcome> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key("pk", string_attr(record_key(old.id.as_str())))
            .condition_expression("revision = :expected")
            .expression_attribute_values(":expected", AttributeValue::N(old.revision.to_string()))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        let record = TransactWriteItem::builder().delete(del).build();
        let event = self.audit_item(audit)?;
        let items = vec![
            record.clone(),
            self.delete_guard(old.name.as_str(), old.id.as_str())?,
            event.clone(),
        ];
        match self.transact_conditions(items).await? {
            None => Ok(WriteOutcome::Written),
            // Only the guard failed: it is missing or held by another record. The record
            // still goes; another record's guard is left alone.
            Some(failed) if failed[..2] == [false, true] => {
                tracing::warn!(integration_id = %old.id, "name guard missing or not this record's; deleting the record alone");
                self.transact(vec![record, event], |_| WriteOutcome::Stale)
                    .await
            }
            Some(_) => Ok(WriteOutcome::Stale),
        }
    }

    async fn list(&self, q: &ListQuery) -> Result<Page> {
        self.query_page(q).await
    }

    async fn record_test(
        &self,
        id: &str,
        test: &LastTest,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome> {
        let value = serde_dynamo::to_attribute_value(test)
            .map_err(|e| Error::internal_from("serialising last_test", e))?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", string_attr(record_key(id)))
            .update_expression("SET last_test = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", value)
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_item(audit)?,
        ];
        self.transact(items, |_| WriteOutcome::Stale).await
    }

    async fn set_bucket(
        &self,
        id: &str,
        bucket: &StateBucket,
        guard: BucketGuard<'_>,
        audit: Option<&AuditEvent>,
    ) -> Result<WriteOutcome> {
        let value = serde_dynamo::to_attribute_value(bucket)
            .map_err(|e| Error::internal_from("serialising a state bucket", e))?;
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":b".to_owned(), value),
            (":t".to_owned(), AttributeValue::Bool(true)),
        ]);
        let condition = guard_condition(&guard, &mut values);
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
                values.insert(":spk".into(), string_attr(pk));
                values.insert(":sat".into(), string_attr(at));
            }
            None => update.push_str(" REMOVE sweep_pk, sweep_at"),
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", string_attr(record_key(id)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values));
        let Some(audit) = audit else {
            // Claims and releases are bookkeeping, not audited: a plain conditional update.
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", string_attr(record_key(id)))
                .set_update_expression(update.get_update_expression().clone())
                .set_condition_expression(update.get_condition_expression().clone())
                .set_expression_attribute_names(update.get_expression_attribute_names().clone())
                .set_expression_attribute_values(update.get_expression_attribute_values().clone())
                .send()
                .await;
            return conditional(res, "UpdateItem");
        };
        let update = update
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_item(audit)?,
        ];
        self.transact(items, |_| WriteOutcome::Stale).await
    }

    async fn history(&self, id: &str, query: &HistoryQuery) -> Result<HistoryPage> {
        self.query_history(id, query).await
    }

    async fn buckets_due(
        &self,
        status: BucketStatus,
        changed_before: &Timestamp,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.query_buckets_due(status, changed_before, limit).await
    }
}

/// The condition of a bucket write under `guard`, adding its values to `values`.
/// DynamoDB refuses redundant parentheses, so only alternatives get them.
fn guard_condition(
    guard: &BucketGuard<'_>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    let mut clauses = vec![];
    if guard.allow_absent {
        clauses.push("attribute_not_exists(state_bucket)".to_owned());
    }
    for (n, st) in guard.from.iter().enumerate() {
        clauses.push(format!("state_bucket.#st = :from{n}"));
        values.insert(format!(":from{n}"), string_attr(st.as_str()));
    }
    if let Some((status, before)) = guard.unchanged_since_before {
        // A missing time counts as long ago (as `Timestamp::is_before` has it), so a
        // record without one can still be taken over.
        clauses.push(
            "state_bucket.#st = :since_st AND (attribute_not_exists(state_bucket.#at) OR \
             state_bucket.#at < :before)"
                .to_owned(),
        );
        values.insert(":since_st".into(), string_attr(status.as_str()));
        values.insert(":before".into(), string_attr(before.as_str()));
    }
    match clauses.as_slice() {
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
