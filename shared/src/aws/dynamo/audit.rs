//! The audit trail in the table: one item per event, `H#<integration id>#<event id>`,
//! written in the same transaction as the change it describes, listed newest first by
//! the `by_history` index and removed by the table's TTL after the retention time.

use super::layout::{string_attr, Item, INDEX_HISTORY};
use super::DynamoStore;
use crate::domain::AuditEvent;
use crate::error::{Dependency, Error, Result};
use crate::ports::{HistoryPage, HistoryQuery};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

fn event_key(integration_id: &str, event_id: &str) -> String {
    format!("H#{integration_id}#{event_id}")
}

/// A page token is the last event id of the page: a ULID, checked before use.
fn decode_token(raw: &str) -> Result<String> {
    if raw.len() == 26 && ulid::Ulid::from_string(raw).is_ok() {
        Ok(raw.to_owned())
    } else {
        Err(Error::validation(
            "next_token",
            "is not a token this API returned",
        ))
    }
}

impl DynamoStore {
    /// The put of an audit event, for the transaction of its change.
    pub(super) fn audit_item(&self, e: &AuditEvent) -> Result<TransactWriteItem> {
        let mut item: Item = serde_dynamo::to_item(e)
            .map_err(|err| Error::internal_from("serialising an audit event", err))?;
        let id = e.integration_id.as_str();
        let expires = time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(self.audit_retention.as_secs()).unwrap_or(i64::MAX / 2);
        item.insert("pk".into(), string_attr(event_key(id, &e.event_id)));
        item.insert("history_of".into(), string_attr(id));
        item.insert("history_at".into(), string_attr(&e.event_id));
        item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|err| Error::internal_from("building a DynamoDB request", err))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) async fn query_history(&self, id: &str, q: &HistoryQuery) -> Result<HistoryPage> {
        let start = match &q.next_token {
            Some(raw) => {
                let after = decode_token(raw)?;
                Some(
                    [
                        ("pk".to_owned(), string_attr(event_key(id, &after))),
                        ("history_of".to_owned(), string_attr(id)),
                        ("history_at".to_owned(), string_attr(after)),
                    ]
                    .into(),
                )
            }
            None => None,
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_HISTORY)
            .key_condition_expression("history_of = :id")
            .expression_attribute_values(":id", string_attr(id))
            .scan_index_forward(false)
            .limit(q.limit.clamp(1, 100) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| super::super::unavailable(Dependency::DynamoDb, "Query", e))?;
        let events = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| Error::internal_from("a stored audit event does not parse", e))
            })
            .collect::<Result<Vec<AuditEvent>>>()?;
        let next_token = out
            .last_evaluated_key
            .and_then(|k| k.get("history_at")?.as_s().ok().cloned());
        Ok(HistoryPage { events, next_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_tokens_are_event_ids_only() {
        let id = ulid::Ulid::new().to_string();
        assert_eq!(decode_token(&id).unwrap(), id);
        for bad in ["", "x", &"U".repeat(26), &format!("{id}#I#x")] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }
}
