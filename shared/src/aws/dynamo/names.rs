//! The operator's consistency check of what the table derives from each record: its
//! name guard `N#<owner>#<name_key>` and its visibility entries `V#<id>#<partition>`.
//! Normal writes keep them together in transactions; a restore from backup, a hand edit
//! or a table written before this layout (no entries, global guards `N#<name_key>`) can
//! separate them. `check_names` scans (an operator command, never a request path);
//! `repair_names` fixes what can be fixed without choosing between two records, and
//! `backfill` brings a table of the older layout to this one, page by page.

use super::layout::*;
use super::DynamoStore;
use crate::error::{Dependency, Error, Result};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameCheck {
    pub records: usize,
    pub guards: usize,
    pub entries: usize,
    /// Records whose name has no guard at all: repairable (the guard is written).
    pub unguarded: Vec<RecordName>,
    /// Records whose name's guard points at another record: one owner has two records
    /// of one name; a person must rename one of them (PATCH works in this state).
    pub contested: Vec<RecordName>,
    /// Guards whose record is gone or now has another name, and guards of the layout
    /// before names were per owner: repairable (deleted).
    pub orphan_guards: Vec<OrphanGuard>,
    /// Records missing an entry, or with an entry that names an old name or labels:
    /// repairable (the record's entries are written again).
    pub unlisted: Vec<String>,
    /// Entries of no record, or of a partition the record is no longer in: repairable
    /// (deleted).
    pub orphan_entries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordName {
    pub id: String,
    pub owner: String,
    pub name_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanGuard {
    /// The guard's key (`N#...`).
    pub pk: String,
    pub integration_id: String,
}

impl NameCheck {
    pub fn is_consistent(&self) -> bool {
        self.unguarded.is_empty()
            && self.contested.is_empty()
            && self.orphan_guards.is_empty()
            && self.unlisted.is_empty()
            && self.orphan_entries.is_empty()
    }
}

/// What the scan keeps of a record: enough to derive its guard and entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RecordFacts {
    owner: String,
    name_key: String,
    groups: Vec<String>,
    labels: Vec<String>,
}

impl RecordFacts {
    /// Partition -> (view_sk, labels) the record's entries should hold.
    fn expected_entries(&self, id: &str) -> BTreeMap<String, (String, Vec<String>)> {
        let sk = format!("{}#{id}", self.name_key);
        std::iter::once(format!("u#{}", self.owner))
            .chain(self.groups.iter().map(|g| format!("g#{g}")))
            .chain(std::iter::once(admin_shard(id)))
            .map(|p| (p, (sk.clone(), self.labels.clone())))
            .collect()
    }
}

/// An entry as found: its integration, partition, sort key and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryFacts {
    id: String,
    partition: String,
    view_sk: String,
    labels: Vec<String>,
}

/// Compares records with guards and entries.
fn compare(
    records: &HashMap<String, RecordFacts>,
    guards: &HashMap<String, String>,
    entries: &HashMap<String, EntryFacts>,
) -> NameCheck {
    let mut check = NameCheck {
        records: records.len(),
        guards: guards.len(),
        entries: entries.len(),
        ..Default::default()
    };
    for (id, r) in records {
        let entry = RecordName {
            id: id.clone(),
            owner: r.owner.clone(),
            name_key: r.name_key.clone(),
        };
        match guards.get(&guard_key(&r.owner, &r.name_key)) {
            None => check.unguarded.push(entry),
            Some(holder) if holder != id => check.contested.push(entry),
            Some(_) => {}
        }
        let listed = r.expected_entries(id).into_iter().all(|(p, (sk, labels))| {
            entries
                .get(&entry_key(id, &p))
                .is_some_and(|e| e.view_sk == sk && e.labels == labels)
        });
        if !listed {
            check.unlisted.push(id.clone());
        }
    }
    for (pk, id) in guards {
        let owned = match parse_guard_key(pk) {
            Some((Some(owner), name_key)) => records
                .get(id)
                .is_some_and(|r| r.owner == owner && r.name_key == name_key),
            _ => false,
        };
        if !owned {
            check.orphan_guards.push(OrphanGuard {
                pk: pk.clone(),
                integration_id: id.clone(),
            });
        }
    }
    for (pk, e) in entries {
        let wanted = records
            .get(&e.id)
            .is_some_and(|r| r.expected_entries(&e.id).contains_key(&e.partition));
        if !wanted {
            check.orphan_entries.push(pk.clone());
        }
    }
    check.unguarded.sort_by(|a, b| a.name_key.cmp(&b.name_key));
    check.contested.sort_by(|a, b| a.name_key.cmp(&b.name_key));
    check.orphan_guards.sort_by(|a, b| a.pk.cmp(&b.pk));
    check.unlisted.sort();
    check.orphan_entries.sort();
    check
}

fn text<'a>(item: &'a Item, field: &str) -> Option<&'a str> {
    item.get(field)?.as_s().ok().map(String::as_str)
}

fn texts(item: &Item, field: &str) -> Vec<String> {
    item.get(field)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

/// How far a backfill got: counts so far, and where to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Backfill {
    pub scanned: usize,
    pub records: usize,
    /// Records whose guard and entries were written (already current ones included:
    /// the writes are idempotent).
    pub indexed: usize,
    /// Records whose name another record of the same owner holds (listed, not guarded:
    /// a person renames one).
    pub contested: Vec<String>,
    /// Guards of the older layout (`N#<name_key>`) deleted.
    pub legacy_guards_removed: usize,
    /// The last key scanned: `--after` resumes from it. `None` when the scan finished.
    pub resume_after: Option<String>,
}

/// Attempts per record when it changes between the backfill's read and its write.
const BACKFILL_ATTEMPTS: usize = 3;

impl DynamoStore {
    /// Scans the whole table (paginated) and compares records, guards and entries.
    pub async fn check_names(&self) -> Result<NameCheck> {
        let mut records = HashMap::new();
        let mut guards = HashMap::new();
        let mut entries = HashMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression(
                    "pk, name_key, integration_id, created_by, shared_with, labels, view_pk, view_sk",
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| super::super::unavailable(Dependency::DynamoDb, "Scan", e))?;
            for item in out.items.unwrap_or_default() {
                let Some(pk) = text(&item, "pk") else {
                    continue;
                };
                if let Some(id) = pk.strip_prefix("I#") {
                    records.insert(
                        id.to_owned(),
                        RecordFacts {
                            owner: text(&item, "created_by").unwrap_or_default().to_owned(),
                            name_key: text(&item, "name_key").unwrap_or_default().to_owned(),
                            groups: texts(&item, "shared_with"),
                            labels: texts(&item, "labels"),
                        },
                    );
                } else if pk.starts_with("N#") {
                    let id = text(&item, "integration_id").unwrap_or_default();
                    guards.insert(pk.to_owned(), id.to_owned());
                } else if let Some((id, partition)) = parse_entry_key(pk) {
                    entries.insert(
                        pk.to_owned(),
                        EntryFacts {
                            id: id.to_owned(),
                            partition: partition.to_owned(),
                            view_sk: text(&item, "view_sk").unwrap_or_default().to_owned(),
                            labels: texts(&item, "labels"),
                        },
                    );
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(compare(&records, &guards, &entries))
    }

    /// Writes the missing guards and entries and deletes the orphans found by `check`,
    /// each under a condition that holds only if nothing changed since the check.
    /// Returns how many records and items it changed; contested names are left for a
    /// person.
    pub async fn repair_names(&self, check: &NameCheck) -> Result<usize> {
        let mut changed = 0;
        for r in &check.unguarded {
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", string_attr(guard_key(&r.owner, &r.name_key)))
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
                .key("pk", string_attr(&g.pk))
                .condition_expression("integration_id = :id")
                .expression_attribute_values(":id", string_attr(&g.integration_id))
                .send()
                .await;
            changed += applied(res, "DeleteItem")?;
        }
        for id in &check.unlisted {
            if self.reindex(id, false).await? != Reindexed::Gone {
                changed += 1;
            }
        }
        for pk in &check.orphan_entries {
            // Deleted only if the record still does not list it there: a write since
            // the check may have put it back on purpose.
            let Some((id, partition)) = parse_entry_key(pk) else {
                continue;
            };
            let wanted = match self.get_record(id).await? {
                Some(i) => partitions_of(&i).iter().any(|p| p == partition),
                None => false,
            };
            if !wanted {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", string_attr(pk))
                    .send()
                    .await
                    .map_err(|e| {
                        super::super::unavailable(Dependency::DynamoDb, "DeleteItem", e)
                    })?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn get_record(&self, id: &str) -> Result<Option<crate::domain::Integration>> {
        use crate::ports::IntegrationStore as _;
        self.get(id).await
    }

    /// Writes one record's guard (with `guard`) and entries from its current state, in
    /// one transaction that holds only while the record's revision is the one read,
    /// and drops the older layout's `entity` attribute. Idempotent.
    async fn reindex(&self, id: &str, guard: bool) -> Result<Reindexed> {
        for _ in 0..BACKFILL_ATTEMPTS {
            let Some(i) = self.get_record(id).await? else {
                return Ok(Reindexed::Gone);
            };
            let record = Update::builder()
                .table_name(&self.table)
                .key("pk", string_attr(record_key(id)))
                // Records older than the health queue join it, due first.
                .update_expression(
                    "REMOVE entity SET health_pk = if_not_exists(health_pk, :hpk), \
                     health_at = if_not_exists(health_at, :hat)",
                )
                .condition_expression("revision = :r")
                .expression_attribute_values(":hpk", string_attr(health_shard(id)))
                .expression_attribute_values(":hat", string_attr(NO_TIME))
                .expression_attribute_values(
                    ":r",
                    aws_sdk_dynamodb::types::AttributeValue::N(i.revision.to_string()),
                )
                .build()
                .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
            let mut items = vec![TransactWriteItem::builder().update(record).build()];
            if guard {
                let put = Put::builder()
                    .table_name(&self.table)
                    .item("pk", string_attr(guard_key(&i.created_by, i.name.as_str())))
                    .item("integration_id", string_attr(id))
                    .condition_expression("attribute_not_exists(pk) OR integration_id = :id")
                    .expression_attribute_values(":id", string_attr(id))
                    .build()
                    .map_err(|e| Error::internal_from("building a DynamoDB request", e))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            items.extend(self.entry_writes(Some(&i), None)?);
            match self.transact_conditions(items).await? {
                None => return Ok(Reindexed::Done),
                // The record changed since the read: read it again.
                Some(failed) if failed.first() == Some(&true) => continue,
                // Another record of this owner holds the name: list it, leave the guard.
                Some(_) => {
                    return match Box::pin(self.reindex(id, false)).await? {
                        Reindexed::Done => Ok(Reindexed::Contested),
                        other => Ok(other),
                    }
                }
            }
        }
        Err(Error::Unavailable {
            dependency: Dependency::DynamoDb,
            operation: "TransactWriteItems",
            code: "RecordKeptChanging".into(),
            retry_after: std::time::Duration::from_secs(1),
            source: None,
        })
    }

    /// Brings one page of the table (after `after`, at most `page` items scanned) to
    /// this layout: each record's per-owner guard and visibility entries, and the older
    /// layout's global guard removed. Idempotent and resumable: run it again from
    /// `resume_after` (or from the start) until that is `None`.
    pub async fn backfill(&self, after: Option<&str>, page: i32) -> Result<Backfill> {
        use futures::StreamExt as _;
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("pk, name_key, integration_id")
            .set_exclusive_start_key(
                after.map(|pk| HashMap::from([("pk".to_owned(), string_attr(pk))])),
            )
            .limit(page.clamp(1, 1000))
            .send()
            .await
            .map_err(|e| super::super::unavailable(Dependency::DynamoDb, "Scan", e))?;
        let items = out.items.unwrap_or_default();
        let mut report = Backfill {
            scanned: items.len(),
            resume_after: out
                .last_evaluated_key
                .and_then(|k| k.get("pk").and_then(|v| v.as_s().ok()).cloned()),
            ..Default::default()
        };
        let ids: Vec<String> = items
            .iter()
            .filter_map(|i| text(i, "pk")?.strip_prefix("I#").map(str::to_owned))
            .collect();
        report.records = ids.len();
        // A few records at a time: each is its own small transaction.
        let results: Vec<(String, Result<Reindexed>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let r = self.reindex(&id, true).await;
                (id, r)
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (id, r) in results {
            match r? {
                Reindexed::Done => report.indexed += 1,
                Reindexed::Contested => {
                    report.indexed += 1;
                    report.contested.push(id);
                }
                Reindexed::Gone => {}
            }
        }
        for item in &items {
            let (Some(pk), Some(id)) = (text(item, "pk"), text(item, "integration_id")) else {
                continue;
            };
            if matches!(parse_guard_key(pk), Some((None, _))) {
                let res = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", string_attr(pk))
                    .condition_expression("integration_id = :id")
                    .expression_attribute_values(":id", string_attr(id))
                    .send()
                    .await;
                report.legacy_guards_removed += applied(res, "DeleteItem")?;
            }
        }
        report.contested.sort();
        Ok(report)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reindexed {
    Done,
    Contested,
    Gone,
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

    fn facts(owner: &str, name_key: &str, groups: &[&str]) -> RecordFacts {
        RecordFacts {
            owner: owner.into(),
            name_key: name_key.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            labels: vec![],
        }
    }

    fn entries_of(records: &HashMap<String, RecordFacts>) -> HashMap<String, EntryFacts> {
        let mut out = HashMap::new();
        for (id, r) in records {
            for (p, (sk, labels)) in r.expected_entries(id) {
                out.insert(
                    entry_key(id, &p),
                    EntryFacts {
                        id: id.clone(),
                        partition: p,
                        view_sk: sk,
                        labels,
                    },
                );
            }
        }
        out
    }

    #[test]
    fn finds_unguarded_contested_orphaned_and_legacy_guards() {
        let id = |c: char| c.to_string().repeat(26);
        let records = HashMap::from([
            (id('A'), facts("ann", "alpha", &[])),
            (id('B'), facts("ann", "beta", &[])),
            (id('C'), facts("ann", "gamma", &[])),
            (id('D'), facts("bob", "gamma", &[])),
        ]);
        let guards = HashMap::from([
            (guard_key("ann", "alpha"), id('A')),
            // beta: no guard; ann's gamma is held by another of ann's records
            (guard_key("ann", "gamma"), id('Z')),
            (guard_key("bob", "gamma"), id('D')),
            // the older layout's global guard
            ("N#alpha".to_owned(), id('A')),
        ]);
        let entries = entries_of(&records);
        let check = compare(&records, &guards, &entries);
        assert_eq!((check.records, check.guards), (4, 4));
        let names = |v: &[RecordName]| v.iter().map(|r| r.name_key.clone()).collect::<Vec<_>>();
        assert_eq!(names(&check.unguarded), ["beta"]);
        assert_eq!(names(&check.contested), ["gamma"]);
        let orphans: Vec<_> = check.orphan_guards.iter().map(|g| g.pk.as_str()).collect();
        assert_eq!(orphans, ["N#alpha", "N#ann#gamma"]);
        assert!(check.unlisted.is_empty() && check.orphan_entries.is_empty());
        assert!(!check.is_consistent());
    }

    #[test]
    fn finds_missing_stale_and_orphaned_entries() {
        let id = |c: char| c.to_string().repeat(26);
        let records = HashMap::from([
            (id('A'), facts("ann", "alpha", &["team"])),
            (id('B'), facts("ann", "beta", &[])),
        ]);
        let guards = HashMap::from([
            (guard_key("ann", "alpha"), id('A')),
            (guard_key("ann", "beta"), id('B')),
        ]);
        let mut entries = entries_of(&records);
        assert!(compare(&records, &guards, &entries).is_consistent());
        // A's group entry is gone; B's owner entry names an old name; a deleted record
        // and an unshared group left entries behind.
        entries.remove(&entry_key(&id('A'), "g#team"));
        entries
            .get_mut(&entry_key(&id('B'), "u#ann"))
            .unwrap()
            .view_sk = format!("old#{}", id('B'));
        for (who, p) in [(id('Z'), "u#ann"), (id('B'), "g#former")] {
            entries.insert(
                entry_key(&who, p),
                EntryFacts {
                    id: who.clone(),
                    partition: p.into(),
                    view_sk: format!("x#{who}"),
                    labels: vec![],
                },
            );
        }
        let check = compare(&records, &guards, &entries);
        assert_eq!(check.unlisted, [id('A'), id('B')]);
        assert_eq!(
            check.orphan_entries,
            [
                entry_key(&id('B'), "g#former"),
                entry_key(&id('Z'), "u#ann")
            ]
        );
    }
}
