//! The two queries: a page of integrations by name (the `by_name` index, optionally
//! filtered by label), and the buckets due for the sweeper (the sparse sweep index).

use super::layout::*;
use super::token::{decode_token, encode_token, Token};
use super::DynamoStore;
use crate::domain::{BucketStatus, Integration, Timestamp, Visibility};
use crate::error::{Dependency, Result};
use crate::ports::{ListQuery, Page};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

impl DynamoStore {
    /// A page of integrations sorted by name, optionally of one label.
    pub(super) async fn query_page(&self, q: &ListQuery) -> Result<Page> {
        let mut start = match &q.next_token {
            Some(raw) => {
                let t = decode_token(raw, &q.label)?;
                Some(HashMap::from([
                    ("pk".to_owned(), string_attr(record_key(&t.id))),
                    ("entity".to_owned(), string_attr(ENTITY)),
                    ("name_key".to_owned(), string_attr(t.name_key)),
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
                .expression_attribute_values(":e", string_attr(ENTITY))
                .set_exclusive_start_key(start.take());
            req = match filter(q) {
                // A filter is applied after the read, so read more than we need.
                Some((expr, values)) => {
                    let mut req = req.filter_expression(expr).limit(100);
                    for (k, v) in values {
                        req = req.expression_attribute_values(k, v);
                    }
                    req
                }
                None => req.limit(want as i32),
            };
            let out = req
                .send()
                .await
                .map_err(|e| crate::aws::unavailable(Dependency::DynamoDb, "Query", e))?;
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
                items
                    .last()
                    .map(|i| (i.id.to_string(), i.name.as_str().to_lowercase()))
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
        let next_token = resume
            .map(|(id, name_key)| {
                encode_token(&Token {
                    v: 1,
                    id,
                    name_key,
                    label: q.label.clone(),
                })
            })
            .transpose()?;
        Ok(Page { items, next_token })
    }
}

/// Groups of a caller a listing looks at (a filter expression holds at most 4 KB).
pub const MAX_LIST_GROUPS: usize = 100;

/// The filter of a listing: its label, and for a user what it owns or shares a group
/// with. DynamoDB refuses redundant parentheses, so only alternatives get them.
fn filter(q: &ListQuery) -> Option<(String, Vec<(String, AttributeValue)>)> {
    let mut clauses = vec![];
    let mut values = vec![];
    if let Some(label) = &q.label {
        clauses.push("contains(labels, :l)".to_owned());
        values.push((":l".to_owned(), string_attr(label)));
    }
    if let Visibility::OwnedOrShared { owner, groups } = &q.visible_to {
        let mut alternatives = vec!["created_by = :me".to_owned()];
        values.push((":me".to_owned(), string_attr(owner)));
        for (n, g) in groups.iter().take(MAX_LIST_GROUPS).enumerate() {
            alternatives.push(format!("contains(shared_with, :g{n})"));
            values.push((format!(":g{n}"), string_attr(g.as_str())));
        }
        clauses.push(match alternatives.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(" OR ")),
        });
    }
    (!clauses.is_empty()).then(|| (clauses.join(" AND "), values))
}

impl DynamoStore {
    /// The sweep index: buckets with `status` since before `changed_before`.
    pub(super) async fn query_buckets_due(
        &self,
        status: BucketStatus,
        changed_before: &Timestamp,
        limit: usize,
    ) -> Result<Vec<String>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX_BUCKET_SWEEP)
            .key_condition_expression("sweep_pk = :st AND sweep_at < :before")
            .expression_attribute_values(":st", string_attr(status.as_str()))
            .expression_attribute_values(":before", string_attr(changed_before.as_str()))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| crate::aws::unavailable(Dependency::DynamoDb, "Query", e))?;
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
