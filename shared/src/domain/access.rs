//! Who may see and act on an integration. An integration belongs to the caller who
//! created it and may be shared with groups; an admin group sees everything; IAM-signed
//! callers are the platform's own services and are trusted like admins.

use super::integration::Integration;
use super::values::GroupName;
use serde::{Deserialize, Serialize};

/// What kind of principal called, as the gateway's authorizer established it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// A person (JWT subject), who sees their own integrations and their groups' ones.
    User,
    /// A member of the configured admin group: sees and manages everything.
    Admin,
    /// An IAM-signed caller: one of the platform's own services.
    Service,
    /// This service itself (e.g. the provisioner), in the audit trail only.
    System,
}

impl CallerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerKind::User => "user",
            CallerKind::Admin => "admin",
            CallerKind::Service => "service",
            CallerKind::System => "system",
        }
    }
}

/// The verified caller of one request: its id (JWT `sub` or IAM ARN), kind and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub kind: CallerKind,
    pub groups: Vec<GroupName>,
}

impl Caller {
    pub fn user(id: impl Into<String>, groups: Vec<GroupName>) -> Self {
        Caller {
            id: id.into(),
            kind: CallerKind::User,
            groups,
        }
    }

    pub fn admin(id: impl Into<String>, groups: Vec<GroupName>) -> Self {
        Caller {
            kind: CallerKind::Admin,
            ..Caller::user(id, groups)
        }
    }

    pub fn service(arn: impl Into<String>) -> Self {
        Caller {
            kind: CallerKind::Service,
            ..Caller::user(arn, vec![])
        }
    }

    pub fn system(name: &str) -> Self {
        Caller {
            kind: CallerKind::System,
            ..Caller::user(name, vec![])
        }
    }

    /// Admins, services and the system itself see every integration.
    pub fn sees_everything(&self) -> bool {
        self.kind != CallerKind::User
    }

    /// Whether the integration exists for this caller at all (others get a 404, so
    /// ids are not confirmed): its owner, a member of a group it is shared with, or a
    /// caller who sees everything.
    pub fn may_see(&self, i: &Integration) -> bool {
        self.sees_everything() || owned_or_shared(i, &self.id, &self.groups)
    }

    /// Whether the caller may change, rotate, share or delete it: its owner or a caller
    /// who sees everything. Group members may read, test and request its bucket.
    pub fn may_manage(&self, i: &Integration) -> bool {
        self.sees_everything() || i.created_by == self.id
    }
}

/// The one rule for a person: they own it, or it is shared with one of their groups.
fn owned_or_shared(i: &Integration, owner: &str, groups: &[GroupName]) -> bool {
    i.created_by == owner || i.shared_with.iter().any(|g| groups.contains(g))
}

/// What a list may return for a caller: everything, or what it owns or shares a group with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    Everything,
    OwnedOrShared {
        owner: String,
        groups: Vec<GroupName>,
    },
}

impl Visibility {
    pub fn of(who: &Caller) -> Self {
        if who.sees_everything() {
            Visibility::Everything
        } else {
            Visibility::OwnedOrShared {
                owner: who.id.clone(),
                groups: who.groups.clone(),
            }
        }
    }

    pub fn admits(&self, i: &Integration) -> bool {
        match self {
            Visibility::Everything => true,
            Visibility::OwnedOrShared { owner, groups } => owned_or_shared(i, owner, groups),
        }
    }
}
