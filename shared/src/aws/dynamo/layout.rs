//! The table layout, known only here: keys, prefixes, indexes, the stream filter and
//! the item form of a record.
//!
//! Items in one table (key `pk`):
//! - `I#<id>`: the integration, with `name_key` (the lower-cased name);
//! - `N#<owner>#<name_key>`: the name guard, `integration_id = <id>`. Writing a record
//!   and its guard in one transaction makes names unique per owner without races (a
//!   `409` tells a caller only about its own names). `name_key` never holds a `#`.
//! - `V#<id>#<partition>`: a visibility entry, one per partition the integration is
//!   listed in: its owner's (`u#<owner>`), each group's it is shared with (`g#<group>`)
//!   and one of [`ADMIN_SHARDS`] partitions for callers who see everything (`a#<nn>`).
//!   The `by_viewer` index keys them by `view_pk` = the partition and `view_sk` =
//!   `<name_key>#<id>` (and carries `labels`), so a listing is one `Query` per partition
//!   the caller may see, merged by `view_sk`: it never reads another tenant's part.
//!   Entries are written in the same transaction as the record's create, update and
//!   delete; they change only when the name, labels or groups do.
//!
//! - `H#<id>#<event id>`: an audit event, with `history_of = <id>` and `history_at =
//!   <event id>` for the `by_history` index, and `expires_at` for the table's TTL.
//!
//! Every record carries `health_pk` (one of [`HEALTH_SHARDS`] partitions, by its id) and
//! `health_at` (when the health check last took it up; [`NO_TIME`] before the first):
//! the `by_health_due` index lists records least recently checked first, so a run that
//! runs out of time leaves the rest at the head of the queue for the next one.
//!
//! While a record's state bucket is `pending` or `provisioning` it also carries
//! `sweep_pk` (that status) and `sweep_at` (when it got it): the sparse `by_bucket_sweep`
//! index then lists exactly the buckets the sweeper may have to re-drive, oldest first.

use crate::domain::Visibility;
use crate::domain::{BucketStatus, Integration, IntegrationId, ListPosition, StateBucket};
use crate::error::{Error, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use serde::Serialize;
use std::collections::HashMap;

/// Lambda event filter of the stream trigger (template.yaml `FilterCriteria`): only
/// records whose new image has a pending state bucket invoke the function.
pub const STREAM_FILTER: &str = r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"state_bucket": {"M": {"status": {"S": ["pending"]}}}}}}"#;

/// The integration id of a stream image (the table's JSON form, as Lambda delivers it)
/// whose state bucket is pending: the same test as [`STREAM_FILTER`], applied again in
/// case the filter is missing.
pub fn pending_bucket_of_image(image: &serde_json::Value) -> Option<String> {
    let status = image
        .pointer("/state_bucket/M/status/S")
        .and_then(|v| v.as_str())?;
    if status != "pending" {
        return None;
    }
    image
        .pointer("/pk/S")
        .and_then(|v| v.as_str())?
        .strip_prefix("I#")
        .map(str::to_owned)
}

/// The record a stream image holds (Lambda delivers images in the table's JSON form),
/// parsed exactly as the store parses the items it reads.
pub fn integration_of_image(image: serde_dynamo::Item) -> Result<Integration> {
    from_item(image.into())
}

/// The stream image of a record as Lambda would deliver it, for unit tests of the
/// stream path.
#[cfg(test)]
pub(crate) fn image_of(i: &Integration) -> serde_dynamo::Item {
    to_item(i).expect("a valid record serialises").into()
}

/// No longer read or written (records left it with the visibility entries): kept in
/// the table's definition only because CloudFormation adds or removes one index per
/// stack update, and `by_viewer` is added in this one. Drop it in a later update.
pub const INDEX_BY_NAME: &str = "by_name";
/// Visibility entries: `view_pk` (a caller's partition), `view_sk` (`<name_key>#<id>`).
pub const INDEX_BY_VIEWER: &str = "by_viewer";
/// Partitions of the admins' view: every integration is in one of them (by its id),
/// so no single index partition takes every tenant's writes.
pub const ADMIN_SHARDS: u32 = 16;
pub const INDEX_BUCKET_SWEEP: &str = "by_bucket_sweep";
/// Audit events of one integration (`history_of`), by event id (`history_at`, a ULID).
pub const INDEX_HISTORY: &str = "by_history";
/// Records by when the health check last took them up (`health_pk`, `health_at`).
pub const INDEX_HEALTH_DUE: &str = "by_health_due";
/// Partitions of the health queue: no single index partition takes every record's
/// writes; a run reads the head of each and merges them.
pub const HEALTH_SHARDS: u32 = 16;

/// The health queue partition of an id (its last, random, ULID character).
pub(super) fn health_shard(id: &str) -> String {
    let last = id.bytes().last().unwrap_or(b'0') as u32;
    format!("h#{:02}", last % HEALTH_SHARDS)
}

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn record_key(id: &str) -> String {
    format!("I#{id}")
}

/// Idempotency keys are kept this long (the table's TTL on `expires_at` removes them).
pub(super) const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

pub(super) fn idempotency_key(scoped_key: &str) -> String {
    format!("K#{scoped_key}")
}

/// The name guard of `name` among `owner`'s integrations.
pub(super) fn guard_key(owner: &str, name: &str) -> String {
    format!("N#{owner}#{}", name.to_lowercase())
}

/// The guard's `(owner, name_key)`, or `(None, name_key)` for a guard of the layout
/// before names were per owner (`N#<name_key>`).
pub(super) fn parse_guard_key(pk: &str) -> Option<(Option<&str>, &str)> {
    let rest = pk.strip_prefix("N#")?;
    Some(match rest.rsplit_once('#') {
        Some((owner, name_key)) => (Some(owner), name_key),
        None => (None, rest),
    })
}

/// The partitions an integration is listed in (see the module's comment).
pub(super) fn partitions_of(i: &Integration) -> Vec<String> {
    let mut out = vec![format!("u#{}", i.created_by)];
    out.extend(i.shared_with.iter().map(|g| format!("g#{}", g.as_str())));
    out.push(admin_shard(i.id.as_str()));
    out
}

/// The admins' partition of an id: from its last character, which is random in a ULID.
pub(super) fn admin_shard(id: &str) -> String {
    let last = id.bytes().last().unwrap_or(b'0') as u32;
    format!("a#{:02}", last % ADMIN_SHARDS)
}

/// The partitions a caller's listing reads.
pub(super) fn partitions_for(visible: &Visibility) -> Vec<String> {
    match visible {
        Visibility::Everything => (0..ADMIN_SHARDS).map(|n| format!("a#{n:02}")).collect(),
        Visibility::OwnedOrShared { owner, groups } => std::iter::once(format!("u#{owner}"))
            .chain(groups.iter().map(|g| format!("g#{}", g.as_str())))
            .collect(),
    }
}

/// The sort key of a listing: the lower-cased name, then the id (`#` sorts before
/// every character a name may hold, so this orders by name first).
pub(super) fn view_sort_key(p: &ListPosition) -> String {
    format!("{}#{}", p.name_key, p.id.as_str())
}

pub(super) fn position_of_sort_key(sk: &str) -> Option<ListPosition> {
    let (name_key, id) = sk.rsplit_once('#')?;
    Some(ListPosition {
        name_key: name_key.to_owned(),
        id: IntegrationId::parse(id).ok()?,
    })
}

pub(super) fn entry_key(id: &str, partition: &str) -> String {
    format!("V#{id}#{partition}")
}

/// `(integration id, partition)` of an entry's key.
pub(super) fn parse_entry_key(pk: &str) -> Option<(&str, &str)> {
    let rest = pk.strip_prefix("V#")?;
    let id = rest.get(..26)?;
    let partition = rest.get(26..)?.strip_prefix('#')?;
    Some((id, partition))
}

/// The visibility entry of `i` in `partition`.
pub(super) fn entry_item(i: &Integration, partition: &str) -> Item {
    let mut item: Item = [
        (
            "pk".to_owned(),
            string_attr(entry_key(i.id.as_str(), partition)),
        ),
        ("view_pk".to_owned(), string_attr(partition)),
        (
            "view_sk".to_owned(),
            string_attr(view_sort_key(&ListPosition::of(i))),
        ),
    ]
    .into();
    if !i.labels.is_empty() {
        let labels = i.labels.iter().map(|l| string_attr(l.as_str())).collect();
        item.insert("labels".to_owned(), AttributeValue::L(labels));
    }
    item
}

pub(super) fn string_attr(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[derive(Serialize)]
struct Stored<'a> {
    pk: String,
    name_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep_pk: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep_at: Option<String>,
    health_pk: String,
    health_at: String,
    #[serde(flatten)]
    integration: &'a Integration,
}

/// The sweep index keys of a bucket: present only while it may need re-driving.
/// `sweep_at` of a waiting bucket whose status has no recorded time.
pub const NO_TIME: &str = "1970-01-01T00:00:00.000Z";

pub(super) fn sweep_keys(bucket: Option<&StateBucket>) -> Option<(&'static str, String)> {
    let b = bucket?;
    match b.status {
        BucketStatus::Pending | BucketStatus::Provisioning => Some((
            b.status.as_str(),
            // A missing time sorts first, so such a bucket is always due; an index key may
            // not be empty, so it is the earliest time rather than "".
            b.status_changed_at
                .as_ref()
                .map_or(NO_TIME, |t| t.as_str())
                .to_owned(),
        )),
        BucketStatus::Ready | BucketStatus::Failed => None,
    }
}

/// Fields a PATCH may change. Provisioning status and test results are written by
/// their own paths, so an update never overwrites them with what it read earlier.
pub(super) const CALLER_FIELDS: &[&str] = &[
    "name",
    "name_key",
    "description",
    "labels",
    // The kind and its credentials: a switch to role delegation removes the key id and
    // the ciphertext (absent from the new item), a switch back writes them.
    "auth",
    "aws_access_key_id",
    "secret_ciphertext",
    "aws_assumed_role_name",
    "aws_external_id",
    "aws_session_duration",
    "aws_default_region",
    "create_state_bucket",
    "shared_with",
    "updated_at",
    "revision",
    // Written back as read unless a key change cleared them (removed then).
    "key_created_at",
    "key_last_used_at",
];

pub(super) fn to_item(i: &Integration) -> Result<Item> {
    let sweep = sweep_keys(i.state_bucket.as_ref());
    serde_dynamo::to_item(Stored {
        pk: record_key(i.id.as_str()),
        name_key: i.name_key(),
        sweep_pk: sweep.as_ref().map(|(pk, _)| *pk),
        sweep_at: sweep.map(|(_, at)| at),
        health_pk: health_shard(i.id.as_str()),
        health_at: i
            .health
            .as_ref()
            .map_or(NO_TIME, |h| h.checked_at.as_str())
            .to_owned(),
        integration: i,
    })
    .map_err(|e| Error::internal_from("serialising an integration", e))
}

pub(super) fn from_item(item: Item) -> Result<Integration> {
    serde_dynamo::from_item(item)
        .map_err(|e| Error::internal_from("a stored integration does not parse", e))
}

/// The table as template.yaml declares it, for stacks that create it themselves (the
/// local harness): one key `pk`, the `by_viewer` index (and the retired `by_name`), the
/// sparse sweep and history indexes, a stream.
pub fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> std::result::Result<
    aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
    aws_sdk_dynamodb::error::BuildError,
> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    let index = |name: &str, hash: &str, range: &str, projection: ProjectionType| {
        let mut p = Projection::builder().projection_type(projection.clone());
        if projection == ProjectionType::Include {
            p = p.non_key_attributes("labels");
        }
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key(range, KeyType::Range)?)
            .projection(p.build())
            .build()
    };
    Ok(client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("entity")?)
        .attribute_definitions(attr("name_key")?)
        .attribute_definitions(attr("sweep_pk")?)
        .attribute_definitions(attr("sweep_at")?)
        .attribute_definitions(attr("history_of")?)
        .attribute_definitions(attr("history_at")?)
        .attribute_definitions(attr("view_pk")?)
        .attribute_definitions(attr("view_sk")?)
        .attribute_definitions(attr("health_pk")?)
        .attribute_definitions(attr("health_at")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .global_secondary_indexes(index(
            INDEX_BY_NAME,
            "entity",
            "name_key",
            ProjectionType::All,
        )?)
        // Visibility entries only; `labels` for label listings.
        .global_secondary_indexes(index(
            INDEX_BY_VIEWER,
            "view_pk",
            "view_sk",
            ProjectionType::Include,
        )?)
        // Sparse: only integrations whose bucket waits (pending/provisioning) carry the
        // keys, so the sweeper reads just those.
        .global_secondary_indexes(index(
            INDEX_BUCKET_SWEEP,
            "sweep_pk",
            "sweep_at",
            ProjectionType::KeysOnly,
        )?)
        // Every record, least recently checked first per shard.
        .global_secondary_indexes(index(
            INDEX_HEALTH_DUE,
            "health_pk",
            "health_at",
            ProjectionType::KeysOnly,
        )?)
        // Sparse too: only audit events carry its keys.
        .global_secondary_indexes(index(
            INDEX_HISTORY,
            "history_of",
            "history_at",
            ProjectionType::All,
        )?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_and_provisioning_buckets_are_in_the_sweep_index() {
        let mut b = StateBucket::pending(
            &crate::domain::AccountId::parse("123456789012").unwrap(),
            &crate::domain::Region::default(),
            crate::domain::Timestamp::parse("2026-11-26T05:35:05.000Z").unwrap(),
        );
        assert_eq!(
            sweep_keys(Some(&b)),
            Some(("pending", "2026-11-26T05:35:05.000Z".to_owned()))
        );
        b.status = BucketStatus::Provisioning;
        assert_eq!(sweep_keys(Some(&b)).map(|k| k.0), Some("provisioning"));
        for done in [BucketStatus::Ready, BucketStatus::Failed] {
            b.status = done;
            assert_eq!(sweep_keys(Some(&b)), None);
        }
        assert_eq!(sweep_keys(None), None);
    }
}
