//! `IntegrationStore` in memory, with the semantics of `crate::aws::dynamo::DynamoStore`
//! (the store contract suite runs the same cases against both): a name guard per owner
//! and lower-cased name, listings of what a caller may see sorted by name then id,
//! conditional writes on the revision, updates that write only the caller's fields,
//! idempotency keys, guarded state bucket writes and the sweep index.

use crate::domain::{
    AuditEvent, BucketStatus, Integration, KeyDates, LastTest, ListPosition, StateBucket, Timestamp,
};
use crate::error::{Dependency, Error, Result};
use crate::ports::{
    BucketGuard, CreateOutcome, HistoryPage, HistoryQuery, Idempotency, IntegrationListing,
    IntegrationStore, ViewPage, ViewQuery, WriteOutcome,
};
use crate::ports::{HealthDue, HealthQueue, HealthUpdate};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The store's operations, to script failures and interference and to count calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Get,
    Update,
    Delete,
    List,
    RecordTest,
    SetBucket,
    BucketsDue,
    History,
    HealthDue,
    RecordHealth,
}

/// Something another writer does just before an operation runs (a lost race).
type Meddling = Box<dyn FnOnce(&mut Tables) + Send>;

/// What the table holds.
#[derive(Default)]
pub struct Tables {
    records: BTreeMap<String, Integration>,
    /// (Owner, lower-cased name) -> the id holding it.
    names: HashMap<(String, String), String>,
    /// Scoped idempotency key -> (fingerprint, response).
    keys: HashMap<String, (String, String)>,
    /// Audit events, written with the change they describe.
    audit: Vec<AuditEvent>,
    /// Id -> when the health check last took it up (the `by_health_due` index key);
    /// absent: [`NEVER`], due first.
    health_queue: HashMap<String, String>,
}

/// The queue place of a record never checked: the store's earliest time.
const NEVER: &str = "1970-01-01T00:00:00.000Z";

impl Tables {
    /// Changes a stored record in place, as another writer would (no guard is moved).
    pub(crate) fn edit(&mut self, id: impl AsRef<str>, f: impl FnOnce(&mut Integration)) {
        let id = id.as_ref();
        match self.records.get_mut(id) {
            Some(record) => f(record),
            None => panic!("no record {id} to edit"),
        }
    }

    /// Deletes a record and its name guard, as a concurrent DELETE would.
    pub(crate) fn remove(&mut self, id: impl AsRef<str>) {
        if let Some(old) = self.records.remove(id.as_ref()) {
            self.names.remove(&name_key(&old));
        }
    }
}

#[derive(Default)]
struct State {
    tables: Tables,
    /// Operation -> (calls to let through first, calls to fail after them).
    failures: HashMap<Op, (u32, u32)>,
    meddling: HashMap<Op, Meddling>,
    calls: Vec<Op>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    trace: super::Trace,
}

impl MemoryStore {
    /// A store whose calls go to `trace` (by `Op`).
    pub(crate) fn traced(trace: &super::Trace) -> Self {
        Self {
            trace: trace.clone(),
            ..Default::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` calls of `op` fail with `Error::Unavailable` (DynamoDB).
    pub(crate) fn fail_next(&self, op: Op, n: u32) {
        self.fail_after(op, 0, n);
    }

    /// After `ok` more calls of `op` succeed, the `n` next ones fail.
    pub(crate) fn fail_after(&self, op: Op, ok: u32, n: u32) {
        self.lock().failures.insert(op, (ok, n));
    }

    /// Runs `f` on the tables just before the next call of `op`: another writer got
    /// there between the use case's read and its write.
    pub(crate) fn before_next(&self, op: Op, f: impl FnOnce(&mut Tables) + Send + 'static) {
        self.lock().meddling.insert(op, Box::new(f));
    }

    /// The stored record, as a fresh read would see it.
    pub(crate) fn record(&self, id: impl AsRef<str>) -> Option<Integration> {
        self.lock().tables.records.get(id.as_ref()).cloned()
    }

    /// Changes a stored record in place (set up a crashed run, an old status, ...).
    pub(crate) fn edit(&self, id: impl AsRef<str>, f: impl FnOnce(&mut Integration)) {
        self.lock().tables.edit(id, f);
    }

    /// Sets a record's state bucket directly, and `create_state_bucket` with it.
    pub(crate) fn set_state_bucket(&self, id: impl AsRef<str>, bucket: StateBucket) {
        self.edit(id, |r| {
            r.create_state_bucket = true;
            r.state_bucket = Some(bucket);
        });
    }

    /// Every stored record, as a fresh scan would see them.
    pub(crate) fn snapshot(&self) -> Vec<Integration> {
        self.lock().tables.records.values().cloned().collect()
    }

    /// Every call made so far, in order.
    pub(crate) fn calls(&self) -> Vec<Op> {
        self.lock().calls.clone()
    }

    /// How many calls of `op` were made.
    /// Every audit event written, oldest first.
    pub(crate) fn audit(&self) -> Vec<AuditEvent> {
        self.lock().tables.audit.clone()
    }

    pub(crate) fn count(&self, op: Op) -> usize {
        self.lock().calls.iter().filter(|c| **c == op).count()
    }

    /// Records the call, runs any meddling, and fails it if told to; then `f` on the tables.
    async fn call<T>(&self, op: Op, f: impl FnOnce(&mut Tables) -> Result<T>) -> Result<T> {
        self.trace.call(&format!("{op:?}")).await;
        let mut state = self.lock();
        state.calls.push(op);
        if let Some(meddle) = state.meddling.remove(&op) {
            meddle(&mut state.tables);
        }
        if let Some((ok, fail)) = state.failures.get_mut(&op) {
            if *ok > 0 {
                *ok -= 1;
            } else if *fail > 0 {
                *fail -= 1;
                return Err(Error::Unavailable {
                    dependency: Dependency::DynamoDb,
                    operation: "memory store",
                    code: "ServiceUnavailable".into(),
                    retry_after: std::time::Duration::from_secs(5),
                    source: None,
                });
            }
        }
        f(&mut state.tables)
    }
}

/// Fields a PATCH may change (`CALLER_FIELDS` of the DynamoDB store): an update writes
/// these and nothing else, so a test result or bucket written meanwhile survives it.
fn write_caller_fields(stored: &mut Integration, new: &Integration) {
    stored.name = new.name.clone();
    stored.description = new.description.clone();
    stored.labels = new.labels.clone();
    stored.credentials = new.credentials.clone();
    stored.aws_assumed_role_name = new.aws_assumed_role_name.clone();
    stored.aws_external_id = new.aws_external_id.clone();
    stored.aws_session_duration = new.aws_session_duration;
    stored.aws_default_region = new.aws_default_region.clone();
    stored.create_state_bucket = new.create_state_bucket;
    stored.shared_with = new.shared_with.clone();
    stored.updated_at = new.updated_at.clone();
    stored.revision = new.revision;
    stored.key_created_at = new.key_created_at.clone();
    stored.key_last_used_at = new.key_last_used_at.clone();
}

/// The name guard's key: the owner and the lower-cased name.
fn name_key(i: &Integration) -> (String, String) {
    (i.created_by.clone(), i.name_key())
}

/// `at < than` as DynamoDB compares them: as strings (the stored text). Every time this
/// code writes has one width, so that is the order of the times.
fn earlier(at: &Timestamp, than: &Timestamp) -> bool {
    at.as_str() < than.as_str()
}

/// `guard.seen` as the DynamoDB store checks it: the same revision, and the same bucket
/// attempts and status time (as text).
fn as_seen(record: &Integration, guard: &BucketGuard<'_>) -> bool {
    let time = |b: &StateBucket| b.status_changed_at.as_ref().map(|t| t.as_str().to_owned());
    guard.seen.is_none_or(|seen| {
        let bucket = |i: &Integration| i.state_bucket.as_ref().map(|b| (b.attempts, time(b)));
        seen.revision == record.revision && bucket(seen) == bucket(record)
    })
}

/// The DynamoDB condition of `set_bucket`, evaluated on the stored bucket.
fn guard_holds(current: Option<&StateBucket>, guard: &BucketGuard<'_>) -> bool {
    let no_clauses =
        !guard.allow_absent && guard.from.is_empty() && guard.unchanged_since_before.is_none();
    let Some(b) = current else {
        return no_clauses || guard.allow_absent;
    };
    let since = guard
        .unchanged_since_before
        .is_some_and(|(status, before)| {
            // `attribute_not_exists(...) OR ... < :before`: a missing time counts as long ago.
            b.status == status
                && b.status_changed_at
                    .as_ref()
                    .is_none_or(|at| earlier(at, before))
        });
    no_clauses || guard.from.contains(&b.status) || since
}

/// The sweep index key of a record (`sweep_pk`, `sweep_at`), as the DynamoDB store writes
/// it: a missing time is the earliest time (an index key cannot be empty), so it sorts first.
fn sweep_key(i: &Integration) -> Option<(BucketStatus, String)> {
    let b = i.state_bucket.as_ref()?;
    matches!(b.status, BucketStatus::Pending | BucketStatus::Provisioning).then(|| {
        let at = b.status_changed_at.as_ref().map(Timestamp::as_str);
        (
            b.status,
            at.unwrap_or("1970-01-01T00:00:00.000Z").to_owned(),
        )
    })
}

#[async_trait]
impl IntegrationStore for MemoryStore {
    async fn create(
        &self,
        i: &Integration,
        idempotency: Option<&Idempotency>,
        audit: &AuditEvent,
    ) -> Result<CreateOutcome> {
        self.call(Op::Create, |t| {
            // The order in which the DynamoDB store reads its transaction's failures.
            if let Some(k) = idempotency {
                if let Some((fingerprint, response)) = t.keys.get(&k.key) {
                    return Ok(if k.matches(fingerprint) {
                        CreateOutcome::Replay {
                            response: response.clone(),
                        }
                    } else {
                        CreateOutcome::KeyReused
                    });
                }
            }
            let (key, id) = (name_key(i), i.id.as_str());
            if t.names.contains_key(&key) {
                return Ok(CreateOutcome::NameTaken);
            }
            if t.records.contains_key(id) {
                return Ok(CreateOutcome::IdTaken);
            }
            t.records.insert(id.to_owned(), i.clone());
            t.names.insert(key, id.to_owned());
            if let Some(k) = idempotency {
                let entry = (k.fingerprint.clone(), k.response.clone());
                t.keys.insert(k.key.clone(), entry);
            }
            t.audit.push(audit.clone());
            Ok(CreateOutcome::Created)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Integration>> {
        self.call(Op::Get, |t| Ok(t.records.get(id).cloned())).await
    }

    async fn update(
        &self,
        new: &Integration,
        old: &Integration,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome> {
        self.call(Op::Update, |t| {
            let id = old.id.as_str();
            let adds_bucket = old.state_bucket.is_none() && new.state_bucket.is_some();
            let current = match t.records.get(id) {
                Some(c) if c.revision == old.revision => c,
                _ => return Ok(WriteOutcome::Stale),
            };
            if adds_bucket && current.state_bucket.is_some() {
                return Ok(WriteOutcome::Stale);
            }
            let (old_key, new_key) = (name_key(old), name_key(new));
            if old_key != new_key {
                if t.names.contains_key(&new_key) {
                    return Ok(WriteOutcome::NameTaken);
                }
                // A guard missing or held by another record is left alone (a repair).
                if t.names.get(&old_key).is_some_and(|holder| holder == id) {
                    t.names.remove(&old_key);
                }
                t.names.insert(new_key, id.to_owned());
            }
            if let Some(stored) = t.records.get_mut(id) {
                write_caller_fields(stored, new);
                if adds_bucket {
                    stored.state_bucket = new.state_bucket.clone();
                }
            }
            t.audit.push(audit.clone());
            Ok(WriteOutcome::Written)
        })
        .await
    }

    async fn delete(&self, old: &Integration, audit: &AuditEvent) -> Result<WriteOutcome> {
        self.call(Op::Delete, |t| {
            let id = old.id.as_str();
            match t.records.get(id) {
                Some(c) if c.revision == old.revision => {}
                _ => return Ok(WriteOutcome::Stale),
            }
            t.records.remove(id);
            let key = name_key(old);
            if t.names.get(&key).is_some_and(|holder| holder == id) {
                t.names.remove(&key);
            }
            t.audit.push(audit.clone());
            Ok(WriteOutcome::Written)
        })
        .await
    }

    async fn record_test(
        &self,
        id: &str,
        test: &LastTest,
        key: Option<&KeyDates>,
        audit: &AuditEvent,
    ) -> Result<WriteOutcome> {
        self.call(Op::RecordTest, |t| {
            Ok(match t.records.get_mut(id) {
                Some(record) => {
                    record.last_test = Some(test.clone());
                    if let Some(k) = key {
                        record.key_created_at = Some(k.created_at.clone());
                        record.key_last_used_at = k.last_used_at.clone();
                    }
                    t.audit.push(audit.clone());
                    WriteOutcome::Written
                }
                None => WriteOutcome::Stale,
            })
        })
        .await
    }

    async fn set_bucket(
        &self,
        id: &str,
        bucket: &StateBucket,
        guard: BucketGuard<'_>,
        audit: Option<&AuditEvent>,
    ) -> Result<WriteOutcome> {
        self.call(Op::SetBucket, |t| {
            Ok(match t.records.get_mut(id) {
                Some(record)
                    if guard_holds(record.state_bucket.as_ref(), &guard)
                        && as_seen(record, &guard) =>
                {
                    record.state_bucket = Some(bucket.clone());
                    record.create_state_bucket = true;
                    t.audit.extend(audit.cloned());
                    WriteOutcome::Written
                }
                _ => WriteOutcome::Stale,
            })
        })
        .await
    }

    async fn history(&self, id: &str, q: &HistoryQuery) -> Result<HistoryPage> {
        self.call(Op::History, |t| {
            let mut events: Vec<&AuditEvent> = t
                .audit
                .iter()
                .filter(|e| e.integration_id == *id)
                .filter(|e| q.next_token.as_ref().is_none_or(|b| e.event_id < *b))
                .collect();
            events.sort_by(|a, b| b.event_id.cmp(&a.event_id));
            let more = events.len() > q.limit;
            let events: Vec<AuditEvent> = events.into_iter().take(q.limit).cloned().collect();
            let next_token = events.last().filter(|_| more).map(|e| e.event_id.clone());
            Ok(HistoryPage { events, next_token })
        })
        .await
    }

    async fn buckets_due(
        &self,
        status: BucketStatus,
        changed_before: &Timestamp,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.call(Op::BucketsDue, |t| {
            // `sweep_pk = :st AND sweep_at < :before`, compared as text.
            let mut due: Vec<(String, String)> = t
                .records
                .values()
                .filter_map(|i| {
                    let (st, at) = sweep_key(i)?;
                    let is_due = st == status && at.as_str() < changed_before.as_str();
                    is_due.then(|| (at, i.id.to_string()))
                })
                .collect();
            due.sort();
            Ok(due
                .into_iter()
                .take(limit.clamp(1, 1000))
                .map(|(_, id)| id)
                .collect())
        })
        .await
    }
}

#[async_trait]
impl HealthQueue for MemoryStore {
    async fn health_due(&self, before: &Timestamp, limit: usize) -> Result<Vec<HealthDue>> {
        self.call(Op::HealthDue, |t| {
            let mut due: Vec<HealthDue> = t
                .records
                .keys()
                .map(|id| HealthDue {
                    queued_at: t
                        .health_queue
                        .get(id)
                        .map_or(NEVER, String::as_str)
                        .to_owned(),
                    id: id.clone(),
                })
                .filter(|d| d.queued_at.as_str() < before.as_str())
                .collect();
            due.sort();
            due.truncate(limit.clamp(1, 1000));
            Ok(due)
        })
        .await
    }

    async fn record_health(
        &self,
        id: &str,
        u: HealthUpdate<'_>,
        audit: &[AuditEvent],
    ) -> Result<WriteOutcome> {
        self.call(Op::RecordHealth, |t| {
            let seen = t.health_queue.get(id).map_or(NEVER, String::as_str);
            if seen != u.seen {
                return Ok(WriteOutcome::Stale);
            }
            let Some(record) = t.records.get_mut(id) else {
                return Ok(WriteOutcome::Stale);
            };
            if let Some(h) = u.health {
                record.health = Some(h.clone());
            }
            if let Some(test) = u.last_test {
                record.last_test = Some(test.clone());
            }
            if let Some(k) = u.key {
                record.key_created_at = Some(k.created_at.clone());
                record.key_last_used_at = k.last_used_at.clone();
            }
            if let Some(b) = u.bucket {
                record.state_bucket = Some(b.clone());
            }
            t.health_queue
                .insert(id.to_owned(), u.taken_at.as_str().to_owned());
            t.audit.extend(audit.iter().cloned());
            Ok(WriteOutcome::Written)
        })
        .await
    }
}

#[async_trait]
impl IntegrationListing for MemoryStore {
    async fn list(&self, q: &ViewQuery) -> Result<ViewPage> {
        self.call(Op::List, |t| {
            let mut matching: Vec<(ListPosition, &Integration)> = t
                .records
                .values()
                .filter(|i| q.visible_to.admits(i))
                // `contains(labels, :l)`: the stored labels' text against the filter's.
                .filter(|i| {
                    let label = q.label.as_deref();
                    label.is_none_or(|l| i.labels.iter().any(|x| x == l))
                })
                // The record filter, applied before paging: full pages (the real store
                // may return a short one; the contract compares what all pages hold).
                .filter(|i| q.filter.admits(i, &q.now))
                .map(|i| (ListPosition::of(i), i))
                .filter(|(p, _)| q.after.as_ref().is_none_or(|a| p > a))
                .collect();
            matching.sort_by(|a, b| a.0.cmp(&b.0));
            let more = matching.len() > q.limit;
            let entries_read = matching.len().min(q.limit + 1);
            matching.truncate(q.limit);
            Ok(ViewPage {
                last: matching.last().filter(|_| more).map(|(p, _)| p.clone()),
                items: matching.into_iter().map(|(_, i)| i.clone()).collect(),
                more,
                entries_read,
            })
        })
        .await
    }
}
