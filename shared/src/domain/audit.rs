//! The audit trail: one event per change of an integration, saying who did what and
//! what changed. Built from the views callers see, so it never holds a secret: a new
//! secret key shows only as replaced, the key id only masked.

use super::access::{Caller, CallerKind};
use super::integration::Integration;
use super::values::{IntegrationId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Created,
    Updated,
    /// An update that changed only the access keys.
    KeysRotated,
    Tested,
    BucketRequested,
    BucketReady,
    BucketFailed,
    Deleted,
    /// The health check found it failing (it was ok, or never checked).
    HealthFailing,
    /// The health check found it ok again.
    HealthRecovered,
    /// The health check re-applied state bucket settings that had drifted.
    BucketRepaired,
    /// The health check found the ready state bucket deleted or owned by another account.
    BucketLost,
}

/// One changed field, as callers see it (`null` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    #[serde(default)]
    pub from: Value,
    #[serde(default)]
    pub to: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// A ULID: events sort by time, and two in one millisecond stay apart.
    pub event_id: String,
    pub integration_id: IntegrationId,
    pub at: Timestamp,
    pub action: AuditAction,
    pub actor: String,
    pub actor_kind: CallerKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Fields of the view that are bookkeeping, not something a caller changed.
const NOT_CHANGES: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "created_by",
    "revision",
    "last_test",
    "state_bucket",
    "health",
    "key_created_at",
    "key_last_used_at",
];

/// What the stored secret shows as in a change: never the secret, nor its ciphertext.
pub const SECRET_SET: &str = "(set)";
pub const SECRET_REPLACED: &str = "(replaced)";
pub const SECRET_DESTROYED: &str = "(destroyed)";

/// A ULID that sorts after every earlier one of this process, also within one
/// millisecond (plain ULIDs are random there, and a history would show a create after
/// the update that followed it).
fn next_event_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(ulid::Generator::new)
        .generate()
        // 2^80 ids in one millisecond: not in practice; a plain ULID is still unique.
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

impl AuditEvent {
    pub fn new(who: &Caller, integration_id: &IntegrationId, action: AuditAction) -> Self {
        AuditEvent {
            event_id: next_event_id(),
            integration_id: integration_id.clone(),
            at: Timestamp::now(),
            action,
            actor: who.id.clone(),
            actor_kind: who.kind,
            changes: vec![],
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A create: every field the caller set, as changed from nothing.
    pub fn created(who: &Caller, i: &Integration) -> Self {
        let mut e = Self::new(who, &i.id, AuditAction::Created);
        e.changes = diff(None, i);
        e
    }

    /// An update: the fields that differ (`KeysRotated` when only the keys did).
    pub fn updated(who: &Caller, old: &Integration, new: &Integration) -> Self {
        let changes = diff(Some(old), new);
        let keys_only = !changes.is_empty()
            && changes
                .iter()
                .all(|c| c.field == "aws_access_key_id" || c.field == "aws_secret_access_key");
        let action = if keys_only {
            AuditAction::KeysRotated
        } else {
            AuditAction::Updated
        };
        let mut e = Self::new(who, &new.id, action);
        e.changes = changes;
        let (from, to) = (old.credentials.kind(), new.credentials.kind());
        if from != to {
            let destroyed = if old.credentials.sealed().is_some() {
                "; the stored access key and its secret (ciphertext) were destroyed"
            } else {
                ""
            };
            e.detail = Some(format!(
                "auth switched from {} to {}{destroyed}",
                from.as_str(),
                to.as_str()
            ));
        }
        e
    }

    pub fn deleted(who: &Caller, i: &Integration) -> Self {
        Self::new(who, &i.id, AuditAction::Deleted).with_detail(format!("name '{}'", i.name))
    }
}

fn view_fields(i: &Integration) -> serde_json::Map<String, Value> {
    match serde_json::to_value(i.view()) {
        Ok(Value::Object(m)) => m,
        // The view is a struct of plain fields: it always serialises to an object.
        _ => serde_json::Map::new(),
    }
}

fn diff(old: Option<&Integration>, new: &Integration) -> Vec<Change> {
    let before = old.map(view_fields).unwrap_or_default();
    let after = view_fields(new);
    let mut changes: Vec<Change> = after
        .into_iter()
        .filter(|(k, _)| !NOT_CHANGES.contains(&k.as_str()))
        .filter_map(|(field, to)| {
            let from = before.get(&field).cloned().unwrap_or(Value::Null);
            let empty = to.is_null() || to.as_array().is_some_and(Vec::is_empty);
            (from != to && !(old.is_none() && empty)).then_some(Change { field, from, to })
        })
        .collect();
    // The secret shows only as set, replaced or destroyed (a switch to role delegation
    // deletes the stored key and its ciphertext).
    let before = old.map(|o| o.credentials.sealed());
    let marker = match (before, new.credentials.sealed()) {
        (None | Some(None), Some(_)) => Some((Value::Null, SECRET_SET)),
        (Some(Some(a)), Some(b)) if a != b => Some((Value::Null, SECRET_REPLACED)),
        (Some(Some(_)), None) => Some((Value::String(SECRET_SET.into()), SECRET_DESTROYED)),
        _ => None,
    };
    if let Some((from, to)) = marker {
        changes.push(Change {
            field: "aws_secret_access_key".into(),
            from,
            to: Value::String(to.into()),
        });
    }
    changes
}
