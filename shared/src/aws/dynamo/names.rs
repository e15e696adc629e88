//! The operator's consistency check of name guards: every record `I#<id>` should have a
//! guard `N#<name_key>` pointing back at it, and every guard a record with that name.
//! Normal writes keep them together in transactions; a restore from backup or a hand
//! edit can separate them. `check_names` scans (an operator command, never a request
//! path); `repair_names` fixes what can be fixed without choosing between two records.

use super::layout::{guard_key, string_attr, Item};
use super::DynamoStore;
use crate::error::{Dependency, Error, Result};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameCheck {
    pub records: usize,
    pub guards: usize,
    /// Records whose name has no guard at all: repairable (the guard is written).
    pub unguarded: Vec<RecordName>,
    /// Records whose name's guard points at another record: two records share a name;
    /// a person must rename one of them (PATCH works in this state).
    pub contested: Vec<RecordName>,
    /// Guards whose record is gone or now has another name: repairable (deleted).
    pub orphan_guards: Vec<OrphanGuard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordName {
    pub id: String,
    pub name_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanGuard {
    pub name_key: String,
    pub integration_id: String,
}

impl NameCheck {
    pub fn is_consistent(&self) -> bool {
        self.unguarded.is_empty() && self.contested.is_empty() && self.orphan_guards.is_empty()
    }
}

/// Compares records (id -> name_key) with guards (name_key -> id).
fn compare(records: &HashMap<String, String>, guards: &HashMap<String, String>) -> NameCheck {
    let mut check = NameCheck {
        records: records.len(),
        guards: guards.len(),
        ..Default::default()
    };
    for (id, name_key) in records {
        let entry = RecordName {
            id: id.clone(),
            name_key: name_key.clone(),
        };
        match guards.get(name_key) {
            None => check.unguarded.push(entry),
            Some(owner) if owner != id => check.contested.push(entry),
            Some(_) => {}
        }
    }
    for (name_key, id) in guards {
        if records.get(id) != Some(name_key) {
            check.orphan_guards.push(OrphanGuard {
                name_key: name_key.clone(),
                integration_id: id.clone(),
            });
        }
    }
    check.unguarded.sort_by(|a, b| a.name_key.cmp(&b.name_key));
    check.contested.sort_by(|a, b| a.name_key.cmp(&b.name_key));
    check
        .orphan_guards
        .sort_by(|a, b| a.name_key.cmp(&b.name_key));
    check
}

fn text<'a>(item: &'a Item, field: &str) -> Option<&'a str> {
    item.get(field)?.as_s().ok().map(String::as_str)
}

impl DynamoStore {
    /// Scans the whole table (paginated) and compares records with guards.
    pub async fn check_names(&self) -> Result<NameCheck> {
        let mut records = HashMap::new();
        let mut guards = HashMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("pk, name_key, integration_id")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| super::super::unavailable(Dependency::DynamoDb, "Scan", e))?;
            for item in out.items.unwrap_or_default() {
                let Some(pk) = text(&item, "pk") else {
                    continue;
                };
                if let Some(id) = pk.strip_prefix("I#") {
                    let name_key = text(&item, "name_key").unwrap_or_default();
                    records.insert(id.to_owned(), name_key.to_owned());
                } else if let Some(name_key) = pk.strip_prefix("N#") {
                    let id = text(&item, "integration_id").unwrap_or_default();
                    guards.insert(name_key.to_owned(), id.to_owned());
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(compare(&records, &guards))
    }

    /// Writes the missing guards and deletes the orphans found by `check`, each under a
    /// condition that still holds only if nothing changed since the check. Returns how
    /// many items it changed; contested names are left for a person.
    pub async fn repair_names(&self, check: &NameCheck) -> Result<usize> {
        let mut changed = 0;
        for r in &check.unguarded {
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", string_attr(guard_key(&r.name_key)))
                .item("integration_id", string_attr(&r.id))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            changed += applied(res, "PutItem")?;
        }
        for g in &check.orphan_guards {
            let res = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", string_attr(guard_key(&g.name_key)))
                .condition_expression("integration_id = :id")
                .expression_attribute_values(":id", string_attr(&g.integration_id))
                .send()
                .await;
            changed += applied(res, "DeleteItem")?;
        }
        Ok(changed)
    }
}

/// 1 when written, 0 when the condition no longer held (someone fixed or changed it).
fn applied<T, E>(
    res: std::result::Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
    op: &'static str,
) -> Result<usize>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match res {
        Ok(_) => Ok(1),
        Err(e)
            if e.as_service_error().and_then(|s| s.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(0)
        }
        Err(e) => Err::<usize, Error>(super::super::unavailable(Dependency::DynamoDb, op, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unguarded_contested_and_orphaned_names() {
        let records = HashMap::from([
            ("A".to_owned(), "alpha".to_owned()),
            ("B".to_owned(), "beta".to_owned()),
            ("C".to_owned(), "gamma".to_owned()),
            ("D".to_owned(), "delta".to_owned()),
        ]);
        let guards = HashMap::from([
            ("alpha".to_owned(), "A".to_owned()),
            // beta: no guard; gamma's guard is D's; delta's guard was renamed away
            ("gamma".to_owned(), "D".to_owned()),
            ("ghost".to_owned(), "Z".to_owned()),
        ]);
        let check = compare(&records, &guards);
        assert_eq!((check.records, check.guards), (4, 3));
        let names = |v: &[RecordName]| v.iter().map(|r| r.name_key.clone()).collect::<Vec<_>>();
        assert_eq!(names(&check.unguarded), ["beta", "delta"]);
        assert_eq!(names(&check.contested), ["gamma"]);
        let orphans: Vec<_> = check
            .orphan_guards
            .iter()
            .map(|g| g.name_key.as_str())
            .collect();
        assert_eq!(orphans, ["gamma", "ghost"]);
        assert!(!check.is_consistent());
        assert!(compare(&records, &HashMap::new()).orphan_guards.is_empty());
    }
}
