//! Use cases for integrations: create, read, list, update, delete, record a test,
//! request a state bucket.

use crate::app::keys::{hex, ServiceKeys, TokenBinding};
use crate::domain::{
    check_external_id_needs_role, AuditEvent, AuthKind, Caller, Credentials, ExternalId,
    Integration, IntegrationId, IntegrationName, IntegrationPatch, NewCredentials, NewIntegration,
    StateBucket, Timestamp, Visibility,
};
use crate::error::{Error, FieldError, Result};
use crate::ports::{
    CreateOutcome, Idempotency, IntegrationListing, IntegrationStore, ListQuery, Page, SealContext,
    SecretSealer, ViewQuery, WriteOutcome,
};
use secrecy::SecretString;

mod usage;
use std::sync::Arc;

/// The integration use cases over a store and a secret sealer, built once per process.
#[derive(Clone)]
pub struct Integrations {
    store: Arc<dyn IntegrationStore>,
    sealer: Arc<dyn SecretSealer>,
    /// Page tokens and idempotency fingerprints; only the functions that list or create
    /// get them (the others link no MAC client).
    keys: Option<Arc<ServiceKeys>>,
    /// Only the function that lists gets it (the others link no listing queries).
    listing: Option<Arc<dyn IntegrationListing>>,
}

/// A caller's idempotency key for a create, with the SHA-256 of the request body. The
/// digest is of a body holding a secret: it is keyed before it is stored, and never
/// shown (Debug prints the key only).
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyRequest {
    pub key: String,
    pub body_sha256: [u8; 32],
}

impl std::fmt::Debug for IdempotencyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyRequest")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A create's result: a new integration, or the response of the create this request
/// repeats (same idempotency key and body).
#[derive(Debug, Clone)]
pub enum Created {
    New(Box<Integration>),
    Replayed(String),
}

/// The revision a caller expects to change (none, any existing one, or exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    None,
    Any,
    Revision(u64),
}

fn name_taken(name: &IntegrationName) -> Error {
    Error::Conflict {
        detail: format!(
            "its owner already has an integration named '{name}' (names are unique per owner, \
             ignoring case)"
        ),
        field: Some("name".into()),
    }
}

/// Writes of one update tried before it gives up against writes that keep landing
/// between its read and its write without changing the revision.
const UPDATE_ATTEMPTS: usize = 3;

impl Integrations {
    pub fn new(store: Arc<dyn IntegrationStore>, sealer: Arc<dyn SecretSealer>) -> Self {
        Self {
            store,
            sealer,
            keys: None,
            listing: None,
        }
    }

    pub fn with_listing(mut self, listing: Arc<dyn IntegrationListing>) -> Self {
        self.listing = Some(listing);
        self
    }

    pub fn with_keys(mut self, keys: Arc<ServiceKeys>) -> Self {
        self.keys = Some(keys);
        self
    }

    fn keys(&self) -> Result<&ServiceKeys> {
        self.keys
            .as_deref()
            .ok_or_else(|| Error::internal("this function was built without the service keys"))
    }

    /// Creates an integration. With an idempotency key (scoped to the caller), a retry of
    /// the same request gets the first one's response back, and another request under
    /// the same key is refused: a client that timed out can retry without a `409` for
    /// its own record.
    pub async fn create(
        &self,
        who: &Caller,
        form: NewIntegration,
        key: Option<IdempotencyRequest>,
    ) -> Result<Created> {
        let id = IntegrationId::new();
        let now = Timestamp::now();
        let (credentials, external_id) = match form.credentials {
            NewCredentials::AccessKeys { key_id, secret } => {
                let ctx = SealContext {
                    integration_id: &id,
                    aws_account_id: &form.aws_account_id,
                };
                let sealed = self.sealer.seal(secret.secret(), ctx).await?;
                let secret = sealed;
                (
                    Credentials::AccessKeys { key_id, secret },
                    form.aws_external_id,
                )
            }
            // The platform's External ID, never one the caller chose (the form refuses
            // one): that is what keeps another tenant from naming this role.
            NewCredentials::RoleDelegation => {
                (Credentials::RoleDelegation, Some(generate_external_id()?))
            }
        };
        let state_bucket = form.create_state_bucket.then(|| {
            StateBucket::pending(&form.aws_account_id, &form.aws_default_region, now.clone())
        });
        let integration = Integration {
            id,
            name: form.name,
            description: form.description,
            labels: form.labels,
            aws_account_id: form.aws_account_id,
            credentials,
            aws_assumed_role_name: form.aws_assumed_role_name,
            aws_external_id: external_id,
            aws_session_duration: form.aws_session_duration,
            aws_default_region: form.aws_default_region,
            create_state_bucket: form.create_state_bucket,
            state_bucket,
            last_test: None,
            health: None,
            key_created_at: None,
            key_last_used_at: None,
            created_at: now.clone(),
            updated_at: now,
            created_by: who.id.clone(),
            shared_with: form.shared_with,
            revision: 1,
        };
        let idempotency = match key {
            None => None,
            Some(k) => Some(Idempotency {
                key: format!("{}#{}", who.id, k.key),
                fingerprint: self.keys()?.fingerprint(&k.body_sha256).await?,
                legacy_fingerprint: Some(hex(&k.body_sha256)),
                response: serde_json::to_string(&integration.view())
                    .map_err(|e| Error::internal_from("serialising the view", e))?,
            }),
        };
        let audit = AuditEvent::created(who, &integration);
        match self
            .store
            .create(&integration, idempotency.as_ref(), &audit)
            .await?
        {
            CreateOutcome::Created => Ok(Created::New(Box::new(integration))),
            CreateOutcome::Replay { response } => Ok(Created::Replayed(response)),
            CreateOutcome::NameTaken => Err(name_taken(&integration.name)),
            CreateOutcome::KeyReused => Err(Error::IdempotencyKeyReused),
            CreateOutcome::IdTaken => Err(Error::internal("ULID collision on create")),
        }
    }

    /// The integration, if it exists for this caller: one it may not see is a 404 like
    /// one that does not exist, so ids of others' integrations are never confirmed.
    pub async fn get(&self, who: &Caller, id: &str) -> Result<Integration> {
        match self.find(id).await? {
            Some(i) if who.may_see(&i) => Ok(i),
            _ => Err(Error::not_found(format!("integration '{id}'"))),
        }
    }

    async fn find(&self, id: &str) -> Result<Option<Integration>> {
        // Anything but an id cannot exist: a 404 without a lookup.
        match IntegrationId::parse(id) {
            Ok(id) => self.store.get(id.as_str()).await,
            Err(_) => Ok(None),
        }
    }

    /// The integration, if this caller may also change it (its owner, an admin or a
    /// service); a group member who may only see it gets a 403.
    async fn get_managed(&self, who: &Caller, id: &str) -> Result<Integration> {
        let current = self.get(who, id).await?;
        if who.may_manage(&current) {
            Ok(current)
        } else {
            Err(Error::Forbidden {
                detail: format!(
                    "integration '{id}' is shared with your group: you may read and test it, \
                     but only its owner or an admin may change, share or delete it"
                ),
            })
        }
    }

    /// A page of the integrations this caller may see. The token is opaque: it holds a
    /// position in this caller's own listing, sealed for this caller and query.
    pub async fn list(&self, who: &Caller, query: ListQuery) -> Result<Page> {
        let binding = TokenBinding {
            caller: who,
            label: query.label.as_deref(),
            limit: query.limit,
            filter: &query.filter,
        };
        let after = match &query.next_token {
            Some(t) => Some(self.keys()?.open(t, &binding).await?),
            None => None,
        };
        let listing = self
            .listing
            .as_ref()
            .ok_or_else(|| Error::internal("this function was built without listing"))?;
        let page = listing
            .list(&ViewQuery {
                visible_to: Visibility::of(who),
                label: query.label.clone(),
                limit: query.limit,
                after,
                filter: query.filter.clone(),
                now: crate::domain::Timestamp::now(),
            })
            .await?;
        let next_token = match page.last.as_ref().filter(|_| page.more) {
            Some(last) => Some(self.keys()?.seal(last, &binding).await?),
            None => None,
        };
        Ok(Page {
            items: page.items,
            next_token,
        })
    }

    fn check_precondition(current: &Integration, pre: Precondition) -> Result<()> {
        match pre {
            Precondition::Revision(r) if r != current.revision => Err(Error::PreconditionFailed {
                current: current.revision,
            }),
            _ => Ok(()),
        }
    }

    /// The error for a write that lost to another change of the record: with `If-Match`,
    /// a `412` naming the revision current now (so a client can retry with it), else a
    /// `409`.
    fn stale(pre: Precondition, current: u64) -> Error {
        match pre {
            Precondition::None => Error::Conflict {
                detail: "the integration was changed by another request; read it again and retry"
                    .into(),
                field: None,
            },
            _ => Error::PreconditionFailed { current },
        }
    }

    /// Applies a change. `patch` builds it from the current record: what a change may
    /// contain depends on it (a pasted role ARN must name the stored, immutable account).
    ///
    /// A write that loses to one that changed the revision is the caller's conflict
    /// (`409`, or `412` naming the revision current now). A write that loses to one that
    /// did not (a bucket status or a test result, written apart from the caller's fields)
    /// is applied again on the fresh record: nothing the caller sent is out of date.
    pub async fn update(
        &self,
        who: &Caller,
        id: &str,
        pre: Precondition,
        patch: impl FnOnce(&Integration) -> Result<IntegrationPatch>,
    ) -> Result<Integration> {
        let mut current = self.get_managed(who, id).await?;
        let patch = patch(&current)?;
        for _ in 0..UPDATE_ATTEMPTS {
            Self::check_precondition(&current, pre)?;
            let next = self.apply(&current, patch.clone()).await?;
            let audit = AuditEvent::updated(who, &current, &next);
            match self.store.update(&next, &current, &audit).await? {
                WriteOutcome::Written => return Ok(next),
                WriteOutcome::NameTaken => return Err(name_taken(&next.name)),
                WriteOutcome::Stale => {
                    let now = self.get_managed(who, id).await?;
                    if now.revision != current.revision {
                        return Err(Self::stale(pre, now.revision));
                    }
                    current = now;
                }
            }
        }
        Err(Self::stale(pre, current.revision))
    }

    async fn apply(&self, current: &Integration, patch: IntegrationPatch) -> Result<Integration> {
        let mut next = current.clone();
        let sets_external_id = patch.aws_external_id.is_some();
        if let Some(n) = patch.name {
            next.name = n;
        }
        if let Some(d) = patch.description {
            next.description = d;
        }
        if let Some(l) = patch.labels {
            next.labels = l;
        }
        if let Some(r) = patch.aws_assumed_role_name {
            next.aws_assumed_role_name = r;
        }
        if let Some(x) = patch.aws_external_id {
            next.aws_external_id = x;
        }
        if let Some(d) = patch.aws_session_duration {
            next.aws_session_duration = d;
        }
        if let Some(r) = patch.aws_default_region {
            next.aws_default_region = r;
        }
        if let Some(g) = patch.shared_with {
            next.shared_with = g;
        }
        self.apply_credentials(current, &mut next, patch.auth, patch.keys, sets_external_id)
            .await?;
        check_external_id_needs_role(
            next.aws_assumed_role_name.as_ref(),
            next.aws_external_id.as_ref(),
        )
        .map_err(|m| Error::validation("aws_external_id", m))?;
        let now = Timestamp::now();
        if let Some(b) = patch.create_state_bucket {
            next.create_state_bucket = b;
            // Turning it off never removes a bucket or its record: state history is precious.
            if b && next.state_bucket.is_none() {
                next.state_bucket = Some(StateBucket::pending(
                    &next.aws_account_id,
                    &next.aws_default_region,
                    now.clone(),
                ));
            }
        }
        next.updated_at = now;
        next.revision = current.revision + 1;
        Ok(next)
    }

    async fn seal_for(
        &self,
        integration: &Integration,
        secret: &SecretString,
    ) -> Result<crate::domain::Sealed> {
        self.sealer
            .seal(
                secret,
                SealContext {
                    integration_id: &integration.id,
                    aws_account_id: &integration.aws_account_id,
                },
            )
            .await
    }

    /// The credentials part of a change: a key rotation, or a switch of kind. A switch to
    /// role delegation drops the key id and ciphertext (the write removes both attributes)
    /// and generates the External ID; a switch back needs new keys and clears the
    /// generated External ID unless the change sets one. The form has refused what does
    /// not fit the kind (`input::patch_form`); what depends on the result is checked here.
    async fn apply_credentials(
        &self,
        current: &Integration,
        next: &mut Integration,
        auth: Option<AuthKind>,
        keys: Option<(crate::domain::AccessKeyId, crate::domain::SecretAccessKey)>,
        sets_external_id: bool,
    ) -> Result<()> {
        let was = current.credentials.kind();
        let kind = auth.unwrap_or(was);
        match (kind, keys) {
            (AuthKind::AccessKeys, Some((key_id, secret))) => {
                if current.credentials.key_id() != Some(&key_id) {
                    // Another key: what IAM told of the old one does not hold for it.
                    next.key_created_at = None;
                    next.key_last_used_at = None;
                }
                let secret = self.seal_for(next, secret.secret()).await?;
                next.credentials = Credentials::AccessKeys { key_id, secret };
                if was == AuthKind::RoleDelegation && !sets_external_id {
                    next.aws_external_id = None;
                }
            }
            (AuthKind::AccessKeys, None) if was == AuthKind::RoleDelegation => {
                return Err(Error::Validation(
                    ["aws_access_key_id", "aws_secret_access_key"]
                        .map(|f| FieldError::new(f, "is required to switch auth to access_keys"))
                        .into(),
                ));
            }
            (AuthKind::AccessKeys, None) => {}
            (AuthKind::RoleDelegation, _) => {
                if next.aws_assumed_role_name.is_none() {
                    return Err(Error::validation(
                        "aws_assumed_role_name",
                        "is required with auth role_delegation (the role the platform assumes)",
                    ));
                }
                if was == AuthKind::AccessKeys {
                    next.credentials = Credentials::RoleDelegation;
                    next.key_created_at = None;
                    next.key_last_used_at = None;
                    next.aws_external_id = Some(generate_external_id()?);
                }
            }
        }
        Ok(())
    }

    /// Decrypts the stored secret with the record's own encryption context; `None` for a
    /// role-delegation integration, which has none.
    pub async fn secret_of(&self, integration: &Integration) -> Result<Option<SecretString>> {
        let Some(sealed) = integration.credentials.sealed() else {
            return Ok(None);
        };
        self.sealer
            .open(
                sealed,
                SealContext {
                    integration_id: &integration.id,
                    aws_account_id: &integration.aws_account_id,
                },
            )
            .await
            .map(Some)
    }

    pub async fn delete(&self, who: &Caller, id: &str, pre: Precondition) -> Result<()> {
        let current = self.get_managed(who, id).await?;
        Self::check_precondition(&current, pre)?;
        match self
            .store
            .delete(&current, &AuditEvent::deleted(who, &current))
            .await?
        {
            WriteOutcome::Written => Ok(()),
            // Changed since our read (or deleted: then the re-read is the 404).
            WriteOutcome::Stale => Err(Self::stale(pre, self.get(who, id).await?.revision)),
            WriteOutcome::NameTaken => Err(Error::internal("name guard on delete")),
        }
    }
}

/// A fresh External ID from 128 bits of the OS's random number generator (ring's, already
/// linked for TLS and the page tokens).
fn generate_external_id() -> Result<ExternalId> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal("the OS random number generator failed"))?;
    Ok(ExternalId::generated(bytes))
}
