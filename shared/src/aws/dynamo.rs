//! `IntegrationStore` on DynamoDB.
//!
//! Items in one table (key `pk`):
//! - `I#<id>`: the integration, with `entity = "integration"` and `name_key` (the
//!   lower-cased name) for the `by_name` index that lists integrations sorted by name;
//! - `N#<name_key>`: the name guard, `integration_id = <id>`. Writing a record and its
//!   guard in one transaction makes names unique without races.

use crate::error::{Dependency, Error, Result};
use crate::model::{Integration, LastTest, StateBucket};
use crate::ports::{BucketGuard, IntegrationStore, ListQuery, Page, WriteOutcome};
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

pub const INDEX_BY_NAME: &str = "by_name";
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
    #[serde(flatten)]
    integration: &'a Integration,
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
    serde_dynamo::to_item(Stored {
        pk: record_key(&i.id),
        entity: ENTITY,
        name_key: i.name.to_lowercase(),
        integration: i,
    })
    .map_err(|e| Error::Internal(format!("serialising integration: {e}")))
}

fn from_item(item: Item) -> Result<Integration> {
    serde_dynamo::from_item(item)
        .map_err(|e| Error::Internal(format!("stored integration does not parse: {e}")))
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
    if t.v != 1 || !crate::service::is_valid_id(&t.id) {
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

/// Which items of a cancelled transaction failed their condition.
fn cancelled_items(err: &SdkError<TransactWriteItemsError>) -> Option<Vec<bool>> {
    let SdkError::ServiceError(e) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(tc) = e.err() else {
        return None;
    };
    Some(
        tc.cancellation_reasons()
            .iter()
            .map(|r| r.code() == Some("ConditionalCheckFailed"))
            .collect(),
    )
}

impl DynamoStore {
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
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(e) => match cancelled_items(&e) {
                Some(failed) if failed.iter().any(|f| *f) => Ok(outcome_of(&failed)),
                _ => Err(super::unavailable(
                    Dependency::DynamoDb,
                    "TransactWriteItems",
                    &e,
                )),
            },
        }
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
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
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }
}

#[async_trait]
impl IntegrationStore for DynamoStore {
    async fn create(&self, i: &Integration) -> Result<WriteOutcome> {
        let items = vec![
            self.put(to_item(i)?, "attribute_not_exists(pk)")?,
            self.guard_item(&i.name, &i.id)?,
        ];
        self.transact(items, |failed| {
            if failed.get(1) == Some(&true) {
                WriteOutcome::NameTaken
            } else {
                WriteOutcome::Stale
            }
        })
        .await
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
            .map_err(|e| super::unavailable(Dependency::DynamoDb, "GetItem", &e))?;
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
        if let Some(sb) = item.get("state_bucket") {
            // Only when the caller turned the bucket on; an existing one is never replaced.
            names.insert("#sb".into(), "state_bucket".into());
            values.insert(":sb".into(), sb.clone());
            set.push("#sb = if_not_exists(#sb, :sb)".into());
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
            .condition_expression("#rev = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        let renamed = new.name.to_lowercase() != old.name.to_lowercase();
        if renamed {
            items.push(self.delete_guard(&old.name, &old.id)?);
            items.push(self.guard_item(&new.name, &new.id)?);
        }
        self.transact(items, |failed| {
            if failed.get(2) == Some(&true) {
                WriteOutcome::NameTaken
            } else {
                WriteOutcome::Stale
            }
        })
        .await
    }

    async fn delete(&self, old: &Integration) -> Result<WriteOutcome> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(record_key(&old.id)))
            .condition_expression("revision = :expected")
            .expression_attribute_values(":expected", AttributeValue::N(old.revision.to_string()))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().delete(del).build(),
            self.delete_guard(&old.name, &old.id)?,
        ];
        self.transact(items, |_| WriteOutcome::Stale).await
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
                .map_err(|e| super::unavailable(Dependency::DynamoDb, "Query", &e))?;
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
        let value =
            serde_dynamo::to_attribute_value(test).map_err(|e| Error::Internal(e.to_string()))?;
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
        let value =
            serde_dynamo::to_attribute_value(bucket).map_err(|e| Error::Internal(e.to_string()))?;
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
        if let Some(before) = guard.stale_before {
            clauses.push("(state_bucket.#st = :prov AND state_bucket.#at < :before)".to_owned());
            values.insert(":prov".into(), s("provisioning"));
            values.insert(":before".into(), s(before));
        }
        let condition = if clauses.is_empty() {
            "attribute_exists(pk)".to_owned()
        } else {
            format!("attribute_exists(pk) AND ({})", clauses.join(" OR "))
        };
        let mut names = HashMap::new();
        if condition.contains("#st") {
            names.insert("#st".to_owned(), "status".to_owned());
        }
        if condition.contains("#at") {
            names.insert("#at".to_owned(), "status_changed_at".to_owned());
        }
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(record_key(id)))
            .update_expression("SET state_bucket = :b, create_state_bucket = :t")
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional(res, "UpdateItem")
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
        Err(e) => Err(super::unavailable(Dependency::DynamoDb, op, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
