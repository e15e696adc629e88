//! The health check's queue: the `by_health_due` index (every record, least recently
//! checked first, in [`HEALTH_SHARDS`] partitions) and the check's conditional write.

use super::layout::*;
use super::DynamoStore;
use crate::domain::{AuditEvent, KeyDates, Timestamp};
use crate::error::{Dependency, Error, Result};
use crate::ports::{HealthDue, HealthQueue, HealthUpdate, WriteOutcome};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::HashMap;

/// Shard queries of one `health_due` in flight at once.
const SHARDS_AT_ONCE: usize = 8;

impl DynamoStore {
    /// The head of one shard: at most `limit` records taken up before `before`.
    async fn shard_due(&self, shard: String, before: String, limit: i32) -> Result<Vec<HealthDue>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_HEALTH_DUE)
            .key_condition_expression("health_pk = :p AND health_at < :before")
            .expression_attribute_values(":p", string_attr(shard))
            .expression_attribute_values(":before", string_attr(before))
            .limit(limit)
            .send()
            .await
            .map_err(|e| crate::aws::unavailable(Dependency::DynamoDb, "Query", e))?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                let id = item.get("pk")?.as_s().ok()?.strip_prefix("I#")?;
                let at = item.get("health_at")?.as_s().ok()?;
                Some(HealthDue {
                    queued_at: at.clone(),
                    id: id.to_owned(),
                })
            })
            .collect())
    }
}

#[async_trait]
impl HealthQueue for DynamoStore {
    /// Each shard's head (at most `limit` each), merged: the `limit` least recently
    /// checked across the table.
    async fn health_due(&self, before: &Timestamp, limit: usize) -> Result<Vec<HealthDue>> {
        let limit = limit.clamp(1, 1000);
        let before = before.as_str().to_owned();
        let mut due: Vec<HealthDue> = futures::stream::iter(0..HEALTH_SHARDS)
            .map(|n| self.shard_due(format!("h#{n:02}"), before.clone(), limit as i32))
            .buffer_unordered(SHARDS_AT_ONCE)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        due.sort();
        due.truncate(limit);
        Ok(due)
    }

    async fn record_health(
        &self,
        id: &str,
        u: HealthUpdate<'_>,
        audit: &[AuditEvent],
    ) -> Result<WriteOutcome> {
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":at".to_owned(), string_attr(u.taken_at.as_str())),
            (":seen".to_owned(), string_attr(u.seen)),
        ]);
        let mut set = vec!["health_at = :at"];
        if let Some(h) = u.health {
            values.insert(":h".into(), attr(h)?);
            set.push("health = :h");
        }
        if let Some(t) = u.last_test {
            values.insert(":t".into(), attr(t)?);
            set.push("last_test = :t");
        }
        let mut remove_sweep = false;
        if let Some(b) = u.bucket {
            values.insert(":b".into(), attr(b)?);
            set.push("state_bucket = :b");
            remove_sweep = sweep_keys(Some(b)).is_none();
        }
        let mut expression =
            key_dates_update(&format!("SET {}", set.join(", ")), u.key, &mut values);
        if remove_sweep {
            expression.push_str(if expression.contains(" REMOVE ") {
                ", sweep_pk, sweep_at"
            } else {
                " REMOVE sweep_pk, sweep_at"
            });
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", string_attr(record_key(id)))
            .update_expression(expression)
            // Still where this run found it: another run has not recorded a check since
            // (and the record was not deleted meanwhile).
            .condition_expression("health_at = :seen")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        for e in audit {
            items.push(self.audit_item(e)?);
        }
        self.transact(items, |_| WriteOutcome::Stale).await
    }
}

/// `set` (a `SET ...` expression) extended with the access key's dates: a key IAM knows
/// no use of loses its `key_last_used_at` (a REMOVE clause, which comes last).
pub(super) fn key_dates_update(
    set: &str,
    key: Option<&KeyDates>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    let Some(k) = key else {
        return set.to_owned();
    };
    values.insert(":kc".into(), string_attr(k.created_at.as_str()));
    match &k.last_used_at {
        Some(used) => {
            values.insert(":ku".into(), string_attr(used.as_str()));
            format!("{set}, key_created_at = :kc, key_last_used_at = :ku")
        }
        None => format!("{set}, key_created_at = :kc REMOVE key_last_used_at"),
    }
}

fn attr<T: serde::Serialize>(v: &T) -> Result<AttributeValue> {
    serde_dynamo::to_attribute_value(v)
        .map_err(|e| Error::internal_from("serialising a health check", e))
}
