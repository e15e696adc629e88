//! The building blocks of the store's writes: conditional puts, name guards, the update
//! of a caller's fields, an update with its audit event, and the conditions of bucket
//! writes.

use super::layout::*;
use super::DynamoStore;
use crate::domain::{AuditEvent, Integration};
use crate::error::{Dependency, Error, Result};
use crate::ports::{BucketGuard, WriteOutcome};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;

impl DynamoStore {
    /// A conditional update with its audit event in the same transaction; without an
    /// event (a provisioning claim or release, which is bookkeeping) a plain UpdateItem.
    pub(super) async fn update_audited(
        &self,
        update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
        audit: Option<&AuditEvent>,
    ) -> Result<WriteOutcome> {
        let Some(audit) = audit else {
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(update.get_key().clone())
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

    pub(super) fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The claim of `i`'s name among its owner's integrations.
    pub(super) fn guard_item(&self, i: &Integration) -> Result<TransactWriteItem> {
        let item: Item = [
            (
                "pk".to_owned(),
                string_attr(guard_key(&i.created_by, i.name.as_str())),
            ),
            ("integration_id".to_owned(), string_attr(i.id.as_str())),
        ]
        .into();
        self.put(item, "attribute_not_exists(pk)")
    }

    /// Releases `i`'s name claim, if it is still `i`'s.
    pub(super) fn delete_guard(&self, i: &Integration) -> Result<TransactWriteItem> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key("pk", string_attr(guard_key(&i.created_by, i.name.as_str())))
            .condition_expression("integration_id = :id")
            .expression_attribute_values(":id", string_attr(i.id.as_str()))
            .build()
            .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
        Ok(TransactWriteItem::builder().delete(del).build())
    }

    /// The visibility entries of `new` (written whole, so an update also repairs any
    /// that drifted), and the deletes of `old`'s entries in partitions `new` left.
    pub(super) fn entry_writes(
        &self,
        new: Option<&Integration>,
        old: Option<&Integration>,
    ) -> Result<Vec<TransactWriteItem>> {
        let keep: Vec<String> = new.map(partitions_of).unwrap_or_default();
        let mut out = Vec::new();
        if let Some(n) = new {
            for p in &keep {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(entry_item(n, p)))
                    .build()
                    .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
                out.push(TransactWriteItem::builder().put(put).build());
            }
        }
        if let Some(o) = old {
            for p in partitions_of(o).iter().filter(|p| !keep.contains(p)) {
                let del = Delete::builder()
                    .table_name(&self.table)
                    .key("pk", string_attr(entry_key(o.id.as_str(), p)))
                    .build()
                    .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
                out.push(TransactWriteItem::builder().delete(del).build());
            }
        }
        Ok(out)
    }

    /// The conditional update of the caller-owned fields (`CALLER_FIELDS`) of `old` to
    /// those of `new`, valid only while `old.revision` is current.
    pub(super) fn update_item(
        &self,
        new: &Integration,
        old: &Integration,
    ) -> Result<TransactWriteItem> {
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

/// The condition of a bucket write under `guard`, adding its values to `values`.
/// DynamoDB refuses redundant parentheses, so only alternatives get them.
pub(super) fn guard_condition(
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
    let mut condition = match clauses.as_slice() {
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
    if let Some(seen) = guard.seen {
        // Every caller-field write moves `revision`; every bucket write stamps
        // `status_changed_at`, and a claim also counts `attempts`.
        condition.push_str(" AND revision = :seen_rev");
        values.insert(
            ":seen_rev".into(),
            AttributeValue::N(seen.revision.to_string()),
        );
        match &seen.state_bucket {
            None => condition.push_str(" AND attribute_not_exists(state_bucket)"),
            Some(b) => {
                condition.push_str(" AND state_bucket.attempts = :seen_att");
                values.insert(
                    ":seen_att".into(),
                    AttributeValue::N(b.attempts.to_string()),
                );
                match &b.status_changed_at {
                    Some(at) => {
                        condition.push_str(" AND state_bucket.#at = :seen_at");
                        values.insert(":seen_at".into(), string_attr(at.as_str()));
                    }
                    None => condition.push_str(" AND attribute_not_exists(state_bucket.#at)"),
                }
            }
        }
    }
    condition
}

pub(super) fn conditional<T>(
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
        Err(e) => Err(crate::aws::unavailable(Dependency::DynamoDb, op, e)),
    }
}
