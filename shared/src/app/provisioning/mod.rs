//! State bucket provisioning: claims a `pending` bucket with a conditional update, creates
//! (or adopts) it with the integration's own credentials, hardens it, and records
//! `ready` with a Terraform backend block, or `failed` with a reason a person can act on.

use crate::app::integrations::Integrations;
use crate::domain::{
    backend_block, AuditAction, AuditEvent, AuthKind, BucketStatus, Caller, Integration,
    StateBucket, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::IntegrationStore;
use crate::ports::{
    AwsFailure, AwsIdentity, BucketAdmin, BucketGuard, PlatformPrincipal, PlatformSession,
    WriteOutcome,
};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

/// Provisioning settings (the function's environment, read by `wiring`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub noncurrent_days: u32,
    pub kms_key_arn: Option<String>,
    /// A `provisioning` status older than this belongs to a crashed run and may be taken over.
    pub stale_after: Duration,
    /// A `pending` status older than this has lost its stream event (record age limit,
    /// on-failure queue, a disabled trigger): a retry request or the sweeper re-drives it.
    pub pending_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            noncurrent_days: 90,
            kms_key_arn: None,
            stale_after: Duration::from_secs(900),
            pending_after: Duration::from_secs(300),
        }
    }
}

/// What a run acts in the user's account with, fetched beside the claim (the two are
/// independent). No `Debug`: it may hold the user's secret.
pub(super) enum Means {
    /// Access keys: the user's secret, or why it could not be opened.
    Secret(Result<Option<SecretString>>),
    /// Role delegation: the platform's own session, or why it could not act; `None` when
    /// the platform has no principal configured.
    Platform(Option<std::result::Result<PlatformSession, AwsFailure>>),
}

/// What a claim came to. No `Debug`: it may hold the user's secret.
enum Claim {
    /// Ours now, with what the run acts with.
    Taken(Box<StateBucket>, Means),
    /// Nothing to do, and why.
    Skipped(&'static str),
    /// The conditional write was refused: another run claimed it, or the record changed.
    Refused,
}

/// What one provisioning attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: no bucket requested, already ready/failed, or another run holds it.
    Skipped(&'static str),
    Ready,
    Failed(String),
}

mod run;
pub(crate) use run::assume_integration_role;
mod sweep;

pub use sweep::{SweepReport, SWEEP_BATCH};

/// The provisioning use cases, built once per process.
#[derive(Clone)]
pub struct Provisioner {
    integrations: Integrations,
    store: Arc<dyn IntegrationStore>,
    identity: Arc<dyn AwsIdentity>,
    s3: Arc<dyn BucketAdmin>,
    /// Role delegation's principal (absent: delegated buckets fail saying so).
    platform: Option<Arc<dyn PlatformPrincipal>>,
    settings: Settings,
    /// Who the audit trail names for provisioning outcomes.
    me: Caller,
}

impl Provisioner {
    pub fn new(
        integrations: Integrations,
        store: Arc<dyn IntegrationStore>,
        identity: Arc<dyn AwsIdentity>,
        s3: Arc<dyn BucketAdmin>,
        settings: Settings,
    ) -> Self {
        Self {
            integrations,
            store,
            identity,
            s3,
            platform: None,
            settings,
            me: Caller::system("provision-bucket"),
        }
    }

    pub fn with_platform(mut self, platform: Arc<dyn PlatformPrincipal>) -> Self {
        self.platform = Some(platform);
        self
    }

    /// How long a bucket may keep `status` before a retry request or the sweeper
    /// re-drives it; `None` for the statuses that are never re-driven.
    fn redrive_after(&self, status: BucketStatus) -> Option<Duration> {
        match status {
            BucketStatus::Pending => Some(self.settings.pending_after),
            BucketStatus::Provisioning => Some(self.settings.stale_after),
            BucketStatus::Ready | BucketStatus::Failed => None,
        }
    }

    /// Provisions the integration's bucket if it is pending (or stuck). Errors are this
    /// service's own dependency failures (DynamoDB, KMS): the caller should retry.
    pub async fn provision(&self, id: &str) -> Result<Outcome> {
        let Some(integration) = self.store.get(id).await? else {
            return Ok(Outcome::Skipped("integration deleted"));
        };
        let outcome = self.provision_from(&integration, false).await?;
        Ok(outcome.unwrap_or(Outcome::Skipped("another run claimed it")))
    }

    /// [`Provisioner::provision`] from a copy of the record that was not just read (a
    /// stream image, which holds all of it), saving the read: the claim holds only if the
    /// record is still exactly that copy (`BucketGuard::seen`). When it is not (changed
    /// since, or claimed by another run), the record is read and decided afresh, as
    /// `provision` does, so a stale copy never runs.
    pub async fn provision_seen(&self, seen: &Integration) -> Result<Outcome> {
        match self.provision_from(seen, true).await? {
            Some(outcome) => Ok(outcome),
            None => self.provision(seen.id.as_str()).await,
        }
    }

    /// Claims the bucket of `integration` (only as `exactly` that copy when asked), runs
    /// the provisioning and records its result; `None` when the claim was refused.
    async fn provision_from(
        &self,
        integration: &Integration,
        exactly: bool,
    ) -> Result<Option<Outcome>> {
        let id = integration.id.as_str();
        let (mut claimed, means) = match self.claim(integration, exactly).await? {
            Claim::Taken(claimed, means) => (*claimed, means),
            Claim::Skipped(why) => return Ok(Some(Outcome::Skipped(why))),
            Claim::Refused => return Ok(None),
        };
        tracing::info!(integration_id = id, bucket = %claimed.name, attempt = claimed.attempts, "provisioning state bucket");
        let outcome = match self.run(integration, &claimed, means).await {
            Ok(Ok(arn)) => {
                claimed.status = BucketStatus::Ready;
                claimed.arn = Some(arn);
                let name = integration.name.as_str();
                claimed.backend = Some(backend_block(&claimed.name, &claimed.region, name));
                Outcome::Ready
            }
            Ok(Err(why)) => {
                claimed.status = BucketStatus::Failed;
                claimed.reason = Some(why.clone());
                Outcome::Failed(why)
            }
            // No retry can open this secret: the bucket fails with what fixes it.
            Err(e @ Error::SecretUnreadable { .. }) => {
                let why = e.to_string();
                claimed.status = BucketStatus::Failed;
                claimed.reason = Some(why.clone());
                Outcome::Failed(why)
            }
            Err(e) => {
                self.release(id, claimed).await;
                return Err(e);
            }
        };
        claimed.status_changed_at = Some(Timestamp::now());
        let done = BucketGuard {
            from: &[BucketStatus::Provisioning],
            ..Default::default()
        };
        let audit = match &outcome {
            Outcome::Failed(why) => {
                AuditEvent::new(&self.me, &integration.id, AuditAction::BucketFailed)
                    .with_detail(why.clone())
            }
            _ => AuditEvent::new(&self.me, &integration.id, AuditAction::BucketReady)
                .with_detail(format!("bucket '{}' ready", claimed.name)),
        };
        self.store
            .set_bucket(id, &claimed, done, Some(&audit))
            .await?;
        tracing::info!(
            integration_id = id,
            status = claimed.status.as_str(),
            reason = claimed.reason.as_deref(),
            "state bucket provisioning finished"
        );
        Ok(Some(outcome))
    }

    /// Takes a pending bucket, or a `provisioning` one whose run crashed, with a
    /// conditional write (that also requires the record unchanged when `exactly`). The
    /// secret is opened (or, for role delegation, the platform's session fetched)
    /// meanwhile: the two are independent, and a refused claim drops it.
    async fn claim(&self, i: &Integration, exactly: bool) -> Result<Claim> {
        let Some(bucket) = i.state_bucket.as_ref() else {
            return Ok(Claim::Skipped("no state bucket requested"));
        };
        let stale_before = Timestamp::ago(self.settings.stale_after);
        let crashed = Timestamp::is_before(bucket.status_changed_at.as_ref(), &stale_before);
        match bucket.status {
            BucketStatus::Pending => {}
            BucketStatus::Provisioning if crashed => {}
            BucketStatus::Provisioning => return Ok(Claim::Skipped("another run is provisioning")),
            BucketStatus::Ready => return Ok(Claim::Skipped("already ready")),
            BucketStatus::Failed => {
                return Ok(Claim::Skipped("failed; waiting for a retry request"))
            }
        }
        let claimed = StateBucket {
            status: BucketStatus::Provisioning,
            reason: None,
            attempts: bucket.attempts + 1,
            status_changed_at: Some(Timestamp::now()),
            ..bucket.clone()
        };
        let guard = BucketGuard {
            allow_absent: false,
            from: &[BucketStatus::Pending],
            unchanged_since_before: Some((BucketStatus::Provisioning, &stale_before)),
            seen: exactly.then_some(i),
        };
        let means = async {
            match (i.credentials.kind(), &self.platform) {
                (AuthKind::RoleDelegation, Some(platform)) => {
                    Means::Platform(Some(platform.session().await))
                }
                (AuthKind::RoleDelegation, None) => Means::Platform(None),
                (AuthKind::AccessKeys, _) => Means::Secret(self.integrations.secret_of(i).await),
            }
        };
        let (written, means) = tokio::join!(
            self.store.set_bucket(i.id.as_str(), &claimed, guard, None),
            means,
        );
        Ok(match written? {
            WriteOutcome::Written => Claim::Taken(Box::new(claimed), means),
            _ => Claim::Refused,
        })
    }

    /// Our own dependency failed (e.g. KMS): hands the claim back so a retry can take it
    /// at once; the caller reports the failure.
    async fn release(&self, id: &str, mut claimed: StateBucket) {
        claimed.status = BucketStatus::Pending;
        claimed.status_changed_at = Some(Timestamp::now());
        let back = BucketGuard {
            from: &[BucketStatus::Provisioning],
            ..Default::default()
        };
        if let Err(e) = self.store.set_bucket(id, &claimed, back, None).await {
            tracing::warn!(integration_id = id, error = %e.chain(), "could not release the claim");
        }
    }

    /// `POST .../state-bucket`: queues a bucket that was not requested or failed; re-drives
    /// one stuck in `pending` (its event was lost) or `provisioning` (its run crashed) past
    /// the thresholds by writing it `pending` again, which the stream delivers anew; leaves
    /// a fresh `pending`/`provisioning` and a `ready` bucket as they are.
    pub async fn request(&self, who: &Caller, id: &str) -> Result<StateBucket> {
        let current = self.integrations.get(who, id).await?;
        if let Some(b) = &current.state_bucket {
            if let Some(after) = self.redrive_after(b.status) {
                let before = Timestamp::ago(after);
                if Timestamp::is_before(b.status_changed_at.as_ref(), &before) {
                    let again = StateBucket {
                        status: BucketStatus::Pending,
                        status_changed_at: Some(Timestamp::now()),
                        ..b.clone()
                    };
                    let guard = BucketGuard {
                        unchanged_since_before: Some((b.status, &before)),
                        ..Default::default()
                    };
                    let audit = AuditEvent::new(who, &current.id, AuditAction::BucketRequested)
                        .with_detail(format!(
                            "bucket '{}' re-driven (it was {} too long)",
                            b.name,
                            b.status.as_str()
                        ));
                    let written = self
                        .store
                        .set_bucket(id, &again, guard, Some(&audit))
                        .await?;
                    if written == WriteOutcome::Written {
                        tracing::info!(
                            integration_id = id,
                            was = b.status.as_str(),
                            since = b.status_changed_at.as_ref().map(|t| t.as_str()),
                            "state bucket re-driven on request"
                        );
                        return Ok(again);
                    }
                }
            }
        }
        self.integrations.request_bucket(who, id).await
    }

    /// `GET .../state-bucket`: the status, or 404 when none was requested.
    pub async fn status(&self, who: &Caller, id: &str) -> Result<StateBucket> {
        self.integrations
            .get(who, id)
            .await?
            .state_bucket
            .ok_or_else(|| {
                Error::not_found(format!(
                    "state bucket of integration '{id}' (none requested; POST to request one)"
                ))
            })
    }
}
