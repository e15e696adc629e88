//! The integration as stored, the view callers get, and the validated create and
//! change requests.

use super::bucket::StateBucket;
use super::health::Health;
use super::values::{
    AccessKeyId, AccountId, Description, ExternalId, GroupName, IntegrationId, IntegrationName,
    Label, Region, RoleName, SecretAccessKey, SessionDuration, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// KMS ciphertext of the secret access key. Debug shows only its length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

/// How the platform reaches the user's account: with the user's access keys (the guide's
/// way, the default), or by assuming the user's role from the platform's own principal
/// with a generated External ID (no user secret exists at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    #[default]
    AccessKeys,
    RoleDelegation,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::AccessKeys => "access_keys",
            AuthKind::RoleDelegation => "role_delegation",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "access_keys" => Ok(AuthKind::AccessKeys),
            "role_delegation" => Ok(AuthKind::RoleDelegation),
            _ => Err("must be \"access_keys\" or \"role_delegation\"".into()),
        }
    }
}

/// What the record holds to act in the user's account. An access-key record always has
/// its key id and ciphertext; a delegation record has neither (the platform's own
/// principal assumes the role), so neither state can be built the other way round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredCredentials", into = "StoredCredentials")]
pub enum Credentials {
    AccessKeys { key_id: AccessKeyId, secret: Sealed },
    RoleDelegation,
}

impl Credentials {
    pub fn kind(&self) -> AuthKind {
        match self {
            Credentials::AccessKeys { .. } => AuthKind::AccessKeys,
            Credentials::RoleDelegation => AuthKind::RoleDelegation,
        }
    }

    pub fn key_id(&self) -> Option<&AccessKeyId> {
        match self {
            Credentials::AccessKeys { key_id, .. } => Some(key_id),
            Credentials::RoleDelegation => None,
        }
    }

    pub fn sealed(&self) -> Option<&Sealed> {
        match self {
            Credentials::AccessKeys { secret, .. } => Some(secret),
            Credentials::RoleDelegation => None,
        }
    }
}

/// The stored attributes of [`Credentials`]. Records written before delegation existed
/// have no `auth`: they are access-key records.
#[derive(Clone, Serialize, Deserialize)]
struct StoredCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<AuthKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aws_access_key_id: Option<AccessKeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_ciphertext: Option<Sealed>,
}

impl TryFrom<StoredCredentials> for Credentials {
    type Error = String;

    fn try_from(s: StoredCredentials) -> Result<Self, String> {
        match (
            s.auth.unwrap_or_default(),
            s.aws_access_key_id,
            s.secret_ciphertext,
        ) {
            (AuthKind::AccessKeys, Some(key_id), Some(secret)) => {
                Ok(Credentials::AccessKeys { key_id, secret })
            }
            (AuthKind::AccessKeys, _, _) => {
                Err("an access-key integration without its key id or ciphertext".into())
            }
            (AuthKind::RoleDelegation, None, None) => Ok(Credentials::RoleDelegation),
            (AuthKind::RoleDelegation, _, _) => {
                Err("a role-delegation integration that holds an access key".into())
            }
        }
    }
}

impl From<Credentials> for StoredCredentials {
    fn from(c: Credentials) -> Self {
        let auth = Some(c.kind());
        match c {
            Credentials::AccessKeys { key_id, secret } => StoredCredentials {
                auth,
                aws_access_key_id: Some(key_id),
                secret_ciphertext: Some(secret),
            },
            Credentials::RoleDelegation => StoredCredentials {
                auth,
                aws_access_key_id: None,
                secret_ciphertext: None,
            },
        }
    }
}

/// What IAM told a test of an integration's access key, kept on the record (its
/// `key_created_at` / `key_last_used_at`) so the list can find old keys without IAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDates {
    pub created_at: Timestamp,
    /// `None`: IAM knows of no use.
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTest {
    pub at: Timestamp,
    pub ok: bool,
}

/// The integration as stored. It holds the secret only as KMS ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub id: IntegrationId,
    pub name: IntegrationName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(default)]
    pub labels: Vec<Label>,
    pub aws_account_id: AccountId,
    /// `auth`, `aws_access_key_id` and `secret_ciphertext`, as one value.
    #[serde(flatten)]
    pub credentials: Credentials,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_assumed_role_name: Option<RoleName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_external_id: Option<ExternalId>,
    pub aws_session_duration: SessionDuration,
    pub aws_default_region: Region,
    pub create_state_bucket: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bucket: Option<StateBucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test: Option<LastTest>,
    /// What the scheduled health check last found (absent until its first verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Access keys only, when IAM let a test read them: the key's creation and last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The owner: the caller who created it (a JWT subject or an IAM principal's ARN).
    pub created_by: String,
    /// Groups whose members may see and use it (not change, rotate or delete it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<GroupName>,
    pub revision: u64,
}

impl Integration {
    pub fn view(&self) -> IntegrationView<'_> {
        IntegrationView {
            id: self.id.as_str(),
            name: self.name.as_str(),
            description: self.description.as_ref().map(Description::as_str),
            labels: self.labels.iter().map(Label::as_str).collect(),
            aws_account_id: self.aws_account_id.as_str(),
            auth: self.credentials.kind().as_str(),
            aws_access_key_id: self.credentials.key_id().map(AccessKeyId::masked),
            aws_assumed_role_name: self.aws_assumed_role_name.as_ref().map(RoleName::as_str),
            aws_external_id: self.aws_external_id.as_ref().map(ExternalId::as_str),
            aws_session_duration: self.aws_session_duration.as_secs(),
            aws_default_region: self.aws_default_region.as_str(),
            create_state_bucket: self.create_state_bucket,
            state_bucket: self.state_bucket.as_ref(),
            last_test: self.last_test.as_ref(),
            health: self.health.as_ref(),
            key_created_at: self.key_created_at.as_ref().map(Timestamp::as_str),
            key_last_used_at: self.key_last_used_at.as_ref().map(Timestamp::as_str),
            created_at: self.created_at.as_str(),
            updated_at: self.updated_at.as_str(),
            created_by: &self.created_by,
            shared_with: self.shared_with.iter().map(GroupName::as_str).collect(),
            revision: self.revision,
        }
    }
}

/// Where a listing stands. Lists are sorted by the lower-cased name, then by id (two
/// owners may use one name), so a position is both; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListPosition {
    pub name_key: String,
    pub id: IntegrationId,
}

impl ListPosition {
    pub fn of(i: &Integration) -> Self {
        ListPosition {
            name_key: i.name_key(),
            id: i.id.clone(),
        }
    }
}

impl Integration {
    /// The name as names are compared: unique per owner, ignoring case.
    pub fn name_key(&self) -> String {
        self.name.as_str().to_lowercase()
    }
}

/// What callers see: no secret, no ciphertext, the key id masked.
#[derive(Debug, Serialize)]
pub struct IntegrationView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub labels: Vec<&'a str>,
    pub aws_account_id: &'a str,
    pub auth: &'static str,
    /// Masked; `null` for role delegation (no key exists).
    pub aws_access_key_id: Option<String>,
    pub aws_assumed_role_name: Option<&'a str>,
    pub aws_external_id: Option<&'a str>,
    pub aws_session_duration: u32,
    pub aws_default_region: &'a str,
    pub create_state_bucket: bool,
    pub state_bucket: Option<&'a StateBucket>,
    pub last_test: Option<&'a LastTest>,
    pub health: Option<&'a Health>,
    pub key_created_at: Option<&'a str>,
    pub key_last_used_at: Option<&'a str>,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub created_by: &'a str,
    pub shared_with: Vec<&'a str>,
    pub revision: u64,
}

/// What a form gives to act in the account: keys (the secret still wrapped), or nothing
/// at all for role delegation (the platform generates the External ID on save).
#[derive(Debug, Clone)]
pub enum NewCredentials {
    AccessKeys {
        key_id: AccessKeyId,
        secret: SecretAccessKey,
    },
    RoleDelegation,
}

impl NewCredentials {
    pub fn kind(&self) -> AuthKind {
        match self {
            NewCredentials::AccessKeys { .. } => AuthKind::AccessKeys,
            NewCredentials::RoleDelegation => AuthKind::RoleDelegation,
        }
    }
}

/// A validated create (or test-connection) form. The secret stays wrapped.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub name: IntegrationName,
    pub description: Option<Description>,
    pub labels: Vec<Label>,
    pub aws_account_id: AccountId,
    pub credentials: NewCredentials,
    pub aws_assumed_role_name: Option<RoleName>,
    pub aws_external_id: Option<ExternalId>,
    pub aws_session_duration: SessionDuration,
    pub aws_default_region: Region,
    pub create_state_bucket: bool,
    pub shared_with: Vec<GroupName>,
}

/// A validated PATCH. `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct IntegrationPatch {
    pub name: Option<IntegrationName>,
    pub description: Option<Option<Description>>,
    pub labels: Option<Vec<Label>>,
    /// A switch of kind (`auth`); switching to access keys needs `keys` too.
    pub auth: Option<AuthKind>,
    pub keys: Option<(AccessKeyId, SecretAccessKey)>,
    pub aws_assumed_role_name: Option<Option<RoleName>>,
    pub aws_external_id: Option<Option<ExternalId>>,
    pub aws_session_duration: Option<SessionDuration>,
    pub aws_default_region: Option<Region>,
    pub create_state_bucket: Option<bool>,
    pub shared_with: Option<Vec<GroupName>>,
}

impl IntegrationPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.labels.is_none()
            && self.auth.is_none()
            && self.keys.is_none()
            && self.aws_assumed_role_name.is_none()
            && self.aws_external_id.is_none()
            && self.aws_session_duration.is_none()
            && self.aws_default_region.is_none()
            && self.create_state_bucket.is_none()
            && self.shared_with.is_none()
    }
}
