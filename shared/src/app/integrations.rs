//! Use cases for integrations: create, read, list, update, delete, record a test,
//! request a state bucket.

use crate::domain::{
    check_external_id_needs_role, BucketStatus, Caller, Integration, IntegrationId,
    IntegrationName, IntegrationPatch, LastTest, NewIntegration, StateBucket, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{
    BucketGuard, CreateOutcome, Idempotency, IntegrationStore, ListQuery, Page, SealContext,
    SecretSealer, WriteOutcome,
};
use secrecy::SecretString;
use std::sync::Arc;

/// The integration use cases over a store and a secret sealer, built once per process.
#[derive(Clone)]
pub struct Integrations {
    store: Arc<dyn IntegrationStore>,
    sealer: Arc<dyn SecretSealer>,
}

/// A caller's idempotency key for a create, with a fingerprint of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRequest {
    pub key: String,
    pub fingerprint: String,
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
            "an integration named '{name}' already exists (names are unique, ignoring case)"
        ),
        field: Some("name".into()),
    }
}

/// Writes of one update tried before it gives up against writes that keep landing
/// between its read and its write without changing the revision.
const UPDATE_ATTEMPTS: usize = 3;

impl Integrations {
    pub fn new(store: Arc<dyn IntegrationStore>, sealer: Arc<dyn SecretSealer>) -> Self {
        Self { store, sealer }
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
        let sealed = self
            .sealer
            .seal(
                form.aws_secret_access_key.secret(),
                SealContext {
                    integration_id: &id,
                    aws_account_id: &form.aws_account_id,
                },
            )
            .await?;
        let state_bucket = form.create_state_bucket.then(|| {
            StateBucket::pending(&form.aws_account_id, &form.aws_default_region, now.clone())
        });
        let integration = Integration {
            id,
            name: form.name,
            description: form.description,
            labels: form.labels,
            aws_account_id: form.aws_account_id,
            aws_access_key_id: form.aws_access_key_id,
            secret_ciphertext: sealed,
            aws_assumed_role_name: form.aws_assumed_role_name,
            aws_external_id: form.aws_external_id,
            aws_session_duration: form.aws_session_duration,
            aws_default_region: form.aws_default_region,
            create_state_bucket: form.create_state_bucket,
            state_bucket,
            last_test: None,
            created_at: now.clone(),
            updated_at: now,
            created_by: who.0.clone(),
            revision: 1,
        };
        let idempotency = match key {
            None => None,
            Some(k) => Some(Idempotency {
                key: format!("{}#{}", who.0, k.key),
                fingerprint: k.fingerprint,
                response: serde_json::to_string(&integration.view())
                    .map_err(|e| Error::internal_from("serialising the view", e))?,
            }),
        };
        match self
            .store
            .create(&integration, idempotency.as_ref())
            .await?
        {
            CreateOutcome::Created => Ok(Created::New(Box::new(integration))),
            CreateOutcome::Replay { response } => Ok(Created::Replayed(response)),
            CreateOutcome::NameTaken => Err(name_taken(&integration.name)),
            CreateOutcome::KeyReused => Err(Error::IdempotencyKeyReused),
            CreateOutcome::IdTaken => Err(Error::internal("ULID collision on create")),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Integration> {
        // Anything but an id cannot exist: a 404 without a lookup.
        let Ok(id) = IntegrationId::parse(id) else {
            return Err(Error::not_found(format!("integration '{id}'")));
        };
        self.store
            .get(id.as_str())
            .await?
            .ok_or_else(|| Error::not_found(format!("integration '{id}'")))
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page> {
        self.store.list(query).await
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
        id: &str,
        pre: Precondition,
        patch: impl FnOnce(&Integration) -> Result<IntegrationPatch>,
    ) -> Result<Integration> {
        let mut current = self.get(id).await?;
        let patch = patch(&current)?;
        for _ in 0..UPDATE_ATTEMPTS {
            Self::check_precondition(&current, pre)?;
            let next = self.apply(&current, patch.clone()).await?;
            match self.store.update(&next, &current).await? {
                WriteOutcome::Written => return Ok(next),
                WriteOutcome::NameTaken => return Err(name_taken(&next.name)),
                WriteOutcome::Stale => {
                    let now = self.get(id).await?;
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
        if let Some((key_id, secret)) = patch.keys {
            next.secret_ciphertext = self.seal_for(&next, secret.secret()).await?;
            next.aws_access_key_id = key_id;
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

    /// Decrypts the stored secret with the record's own encryption context.
    pub async fn secret_of(&self, integration: &Integration) -> Result<SecretString> {
        self.sealer
            .open(
                &integration.secret_ciphertext,
                SealContext {
                    integration_id: &integration.id,
                    aws_account_id: &integration.aws_account_id,
                },
            )
            .await
    }

    pub async fn delete(&self, id: &str, pre: Precondition) -> Result<()> {
        let current = self.get(id).await?;
        Self::check_precondition(&current, pre)?;
        match self.store.delete(&current).await? {
            WriteOutcome::Written => Ok(()),
            // Changed since our read (or deleted: then the re-read is the 404).
            WriteOutcome::Stale => Err(Self::stale(pre, self.get(id).await?.revision)),
            WriteOutcome::NameTaken => Err(Error::internal("name guard on delete")),
        }
    }

    /// Records a test's verdict as `last_test`, unless AWS could not be reached: such a
    /// test says nothing about the credentials, so nothing is written (`None`).
    pub async fn record_test(
        &self,
        id: &str,
        outcome: super::connection::Outcome,
    ) -> Result<Option<LastTest>> {
        let Some(ok) = outcome.recorded_ok() else {
            return Ok(None);
        };
        let test = LastTest {
            at: Timestamp::now(),
            ok,
        };
        match self.store.record_test(id, &test).await? {
            WriteOutcome::Written => Ok(Some(test)),
            _ => Err(Error::not_found(format!("integration '{id}'"))),
        }
    }

    /// `POST .../state-bucket`: (re)queue provisioning. A bucket that is already being
    /// provisioned or ready is left alone and reported as it is.
    pub async fn request_bucket(&self, id: &str) -> Result<StateBucket> {
        let current = self.get(id).await?;
        if let Some(b) = &current.state_bucket {
            if matches!(
                b.status,
                BucketStatus::Pending | BucketStatus::Provisioning | BucketStatus::Ready
            ) {
                return Ok(b.clone());
            }
        }
        let now = Timestamp::now();
        let mut bucket =
            StateBucket::pending(&current.aws_account_id, &current.aws_default_region, now);
        if let Some(b) = &current.state_bucket {
            bucket.attempts = b.attempts;
        }
        let guard = BucketGuard {
            allow_absent: true,
            from: &[BucketStatus::Failed],
            unchanged_since_before: None,
        };
        match self.store.set_bucket(id, &bucket, guard).await? {
            WriteOutcome::Written => Ok(bucket),
            // Someone else queued it between our read and write: report what is there now.
            _ => self
                .get(id)
                .await?
                .state_bucket
                .ok_or_else(|| Error::internal("state bucket vanished")),
        }
    }
}
