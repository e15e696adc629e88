//! The two queries: a page of what a caller may see (one `Query` per partition of the
//! `by_viewer` index the caller may read, merged by name, then the records themselves),
//! and the buckets due for the sweeper (the sparse sweep index).

use super::layout::*;
use super::DynamoStore;
use crate::domain::{BucketStatus, Integration, ListPosition, Timestamp};
use crate::error::{Dependency, Error, Result};
use crate::ports::{ViewPage, ViewQuery};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures::{StreamExt as _, TryStreamExt as _};
use std::collections::{HashMap, HashSet};

/// At most this many entries per filtered `Query` page (a label listing reads on until
/// it has its matches; the entries are small, so a page stays far below DynamoDB's 1 MB).
const FILTERED_PAGE: i32 = 200;
/// Pages of entries a filtered listing reads at most for one page of results.
const FILTER_ROUNDS: usize = 10;
/// Partition queries of one listing in flight at once.
const PARTITIONS_AT_ONCE: usize = 16;
/// BatchGetItem rounds for keys DynamoDB left unprocessed (throttling) before a 503.
const BATCH_GET_ATTEMPTS: u32 = 4;

/// What one partition gave: sort keys in order, and the entries it read.
struct Run {
    keys: Vec<ListPosition>,
    read: usize,
}

impl DynamoStore {
    /// A page of what `q.visible_to` admits. Each partition gives at most `limit + 1`
    /// matches after `q.after`, so the merge knows whether more remain; then the
    /// records of the first `limit` are read (consistently) in one BatchGetItem.
    pub(super) async fn query_page(&self, q: &ViewQuery) -> Result<ViewPage> {
        if q.filter.is_empty() {
            return self.query_entries(q).await;
        }
        // A record filter: pages of the caller's entries, their records read and kept
        // when they match, until `limit` matches or [`FILTER_ROUNDS`] pages. Only the
        // caller's own partitions are read, as for any listing; a page may then come
        // back short (with `more`), as DynamoDB's own filtered queries do.
        let mut page_q = q.clone();
        let mut out = ViewPage {
            items: Vec::new(),
            last: None,
            more: false,
            entries_read: 0,
        };
        for _ in 0..FILTER_ROUNDS {
            let page = self.query_entries(&page_q).await?;
            out.entries_read += page.entries_read;
            for i in page.items {
                if q.filter.admits(&i, &q.now) {
                    out.items.push(i);
                }
            }
            if out.items.len() >= q.limit {
                out.items.truncate(q.limit);
                out.last = out.items.last().map(ListPosition::of);
                out.more = true;
                return Ok(out);
            }
            if !page.more {
                out.more = false;
                out.last = None;
                return Ok(out);
            }
            out.more = true;
            out.last = page.last.clone();
            page_q.after = page.last;
        }
        Ok(out)
    }

    /// A page of the caller's entries (by label, if any) and their records.
    async fn query_entries(&self, q: &ViewQuery) -> Result<ViewPage> {
        let want = q.limit + 1;
        let after = q.after.as_ref().map(view_sort_key);
        // Concurrently, but not 101 connections at once for a caller in 100 groups.
        let runs: Vec<Run> = futures::stream::iter(partitions_for(&q.visible_to))
            .map(|p| self.read_partition(p, after.clone(), q.label.clone(), want))
            .buffer_unordered(PARTITIONS_AT_ONCE)
            .try_collect()
            .await?;
        let entries_read = runs.iter().map(|r| r.read).sum();
        // One integration is in several of a caller's partitions (its owner's and a
        // group's): the same position, kept once.
        let mut merged: Vec<ListPosition> = runs.into_iter().flat_map(|r| r.keys).collect();
        merged.sort();
        merged.dedup();
        let more = merged.len() > q.limit;
        merged.truncate(q.limit);
        let mut records = self.records(merged.iter().map(|p| p.id.as_str())).await?;
        // The index is eventually consistent: a record deleted, unshared or relabelled a
        // moment ago may still have its entry. The record itself decides.
        let items = merged
            .iter()
            .filter_map(|p| records.remove(p.id.as_str()))
            .filter(|i| q.visible_to.admits(i))
            .filter(|i| {
                q.label
                    .as_ref()
                    .is_none_or(|l| i.labels.iter().any(|x| x.as_str() == l))
            })
            .collect();
        Ok(ViewPage {
            items,
            last: if more { merged.last().cloned() } else { None },
            more,
            entries_read,
        })
    }

    /// Up to `want` entries of one partition after `after` (with the label, if any).
    async fn read_partition(
        &self,
        partition: String,
        after: Option<String>,
        label: Option<String>,
        want: usize,
    ) -> Result<Run> {
        let mut run = Run {
            keys: Vec::new(),
            read: 0,
        };
        let mut start = None;
        // A label listing reads 4 x `want` entries first: one round while at least a
        // quarter of the caller's integrations carry the label (only matches come back,
        // and only their sort keys), then larger pages while matches are sparse.
        let mut filtered_page = (want as i32).saturating_mul(4).min(FILTERED_PAGE);
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(INDEX_BY_VIEWER)
                .expression_attribute_values(":p", string_attr(&partition))
                .projection_expression("view_sk")
                .set_exclusive_start_key(start.take());
            req = match &after {
                Some(a) => req
                    .key_condition_expression("view_pk = :p AND view_sk > :after")
                    .expression_attribute_values(":after", string_attr(a)),
                None => req.key_condition_expression("view_pk = :p"),
            };
            req = match &label {
                Some(l) => {
                    let page = filtered_page;
                    filtered_page = (filtered_page * 4).min(FILTERED_PAGE);
                    req.filter_expression("contains(labels, :l)")
                        .expression_attribute_values(":l", string_attr(l))
                        .limit(page)
                }
                None => req.limit((want - run.keys.len()) as i32),
            };
            let out = req
                .send()
                .await
                .map_err(|e| crate::aws::unavailable(Dependency::DynamoDb, "Query", e))?;
            run.read += out.scanned_count.max(0) as usize;
            for item in out.items.unwrap_or_default() {
                let sk = item.get("view_sk").and_then(|v| v.as_s().ok());
                match sk.and_then(|sk| position_of_sort_key(sk)) {
                    Some(p) if run.keys.len() < want => run.keys.push(p),
                    Some(_) => break,
                    None => return Err(Error::internal("a visibility entry has no valid view_sk")),
                }
            }
            start = out.last_evaluated_key;
            if run.keys.len() >= want || start.is_none() {
                return Ok(run);
            }
        }
    }

    /// The records of `ids` by id (strongly consistent), those that exist.
    async fn records<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<String, Integration>> {
        let keys: Vec<HashMap<String, AttributeValue>> = ids
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|id| HashMap::from([("pk".to_owned(), string_attr(record_key(id)))]))
            .collect();
        let mut found = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| Error::internal_from("building a DynamoDB request", e))?,
        );
        for attempt in 0..BATCH_GET_ATTEMPTS {
            let Some(request) = pending.take() else {
                break;
            };
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| crate::aws::unavailable(Dependency::DynamoDb, "BatchGetItem", e))?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default()
            {
                let i = from_item(item)?;
                found.insert(i.id.as_str().to_owned(), i);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
        }
        if pending.is_some() {
            return Err(Error::Unavailable {
                dependency: Dependency::DynamoDb,
                operation: "BatchGetItem",
                code: "UnprocessedKeys".into(),
                retry_after: std::time::Duration::from_secs(1),
                source: None,
            });
        }
        Ok(found)
    }
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
