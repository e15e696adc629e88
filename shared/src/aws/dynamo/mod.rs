//! `IntegrationStore` on DynamoDB (the table layout is in `layout`).

use crate::domain::Timestamp;
use crate::domain::{AuditEvent, BucketStatus, Integration, KeyDates, LastTest, StateBucket};
use crate::error::{Dependency, Error, Result};
use crate::ports::{
    BucketGuard, CreateOutcome, HistoryPage, HistoryQuery, Idempotency, IntegrationListing,
    IntegrationStore, ViewPage, ViewQuery, WriteOutcome,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

mod audit;
mod health;
mod layout;
mod names;
mod query;
mod transact;
mod writes;

#[cfg(test)]
mod roundtrip_tests;

pub use layout::{
    create_table, integration_of_image, pending_bucket_of_image, ADMIN_SHARDS, HEALTH_SHARDS,
    INDEX_BUCKET_SWEEP, INDEX_BY_NAME, INDEX_BY_VIEWER, INDEX_HEALTH_DUE, INDEX_HISTORY,
    STREAM_FILTER,
};
pub use names::{NameCheck, OrphanGuard, RecordName};

#[cfg(test)]
pub(crate) use layout::image_of;

use layout::*;
use writes::guard_condition;

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
            (Some(f), Some(response)) if k.matches(&f) => Ok(CreateOutcome::Replay { response }),
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
            self.guard_item(i)?,
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
        // After the conditional items, so their positions keep their meaning in the
        // failure list.
        items.push(self.audit_item(audit)?);
        items.extend(self.entry_writes(Some(i), None)?);
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
        let entries = self.entry_writes(Some(new), Some(old))?;
        let renamed = new.name_key() != old.name_key();
        if !renamed {
            let mut items = vec![update, event];
            items.extend(entries);
            return self.transact(items, |_| WriteOutcome::Stale).await;
        }
        let new_guard = self.guard_item(new)?;
        let mut items = vec![
            update.clone(),
            self.delete_guard(old)?,
            new_guard.clone(),
            event.clone(),
        ];
        items.extend(entries.iter().cloned());
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
                let mut items = vec![update, new_guard, event];
                items.extend(entries);
                Ok(match self.transact_conditions(items).await? {
                    None => WriteOutcome::Written,
                    Some(failed) => outcome(&[failed[0], false, failed.get(1) == Some(&true)]),
                })
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
        let entries = self.entry_writes(None, Some(old))?;
        let mut items = vec![record.clone(), self.delete_guard(old)?, event.clone()];
        items.extend(entries.iter().cloned());
        match self.transact_conditions(items).await? {
            None => Ok(WriteOutcome::Written),
            // Only the guard failed: it is missing or held by another record. The record
            // still goes; another record's guard is left alone.
            Some(failed) if failed[..2] == [false, true] => {
                tracing::warn!(integration_id = %old.id, "name guard missing or not this record's; deleting the record alone");
                let mut items = vec![record, event];
                items.extend(entries);
                self.transact(items, |_| WriteOutcome::Stale).await
            }
            Some(_) => Ok(WriteOutcome::Stale),
        }
    }

    async fn record_test(
        &self,
        id: &str,
        test: &LastTest,
        key: Option<&KeyDates>,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome> {
        let value = serde_dynamo::to_attribute_value(test)
            .map_err(|e| Error::internal_from("serialising last_test", e))?;
        let mut values = HashMap::from([(":t".to_owned(), value)]);
        let expression = health::key_dates_update("SET last_test = :t", key, &mut values);
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", string_attr(record_key(id)))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_values(Some(values));
        self.update_audited(update, Some(audit)).await
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
        self.update_audited(update, audit).await
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

#[async_trait]
impl IntegrationListing for DynamoStore {
    async fn list(&self, q: &ViewQuery) -> Result<ViewPage> {
        self.query_page(q).await
    }
}
