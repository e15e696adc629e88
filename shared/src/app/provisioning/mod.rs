//! State bucket provisioning: claims a `pending` bucket with a conditional update, creates
//! (or adopts) it with the integration's own credentials, hardens it, and records
//! `ready` with a Terraform backend block, or `failed` with a reason a person can act on.

use crate::app::integrations::Integrations;
use crate::domain::{backend_block, BucketStatus, StateBucket, Timestamp};
use crate::error::{Error, Result};
use crate::ports::IntegrationStore;
use crate::ports::{AwsIdentity, BucketAdmin, BucketGuard, WriteOutcome};
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

/// What one provisioning attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: no bucket requested, already ready/failed, or another run holds it.
    Skipped(&'static str),
    Ready,
    Failed(String),
}

mod run;
mod sweep;

pub use sweep::{SweepReport, SWEEP_BATCH};

/// The provisioning use cases, built once per process.
#[derive(Clone)]
pub struct Provisioner {
    integrations: Integrations,
    store: Arc<dyn IntegrationStore>,
    identity: Arc<dyn AwsIdentity>,
    s3: Arc<dyn BucketAdmin>,
    settings: Settings,
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
            settings,
        }
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
        let Some(bucket) = integration.state_bucket.clone() else {
            return Ok(Outcome::Skipped("no state bucket requested"));
        };
        let stale_before = Timestamp::ago(self.settings.stale_after);
        match bucket.status {
            BucketStatus::Pending => {}
            BucketStatus::Provisioning
                if Timestamp::is_before(bucket.status_changed_at.as_ref(), &stale_before) => {}
            BucketStatus::Provisioning => {
                return Ok(Outcome::Skipped("another run is provisioning"))
            }
            BucketStatus::Ready => return Ok(Outcome::Skipped("already ready")),
            BucketStatus::Failed => {
                return Ok(Outcome::Skipped("failed; waiting for a retry request"))
            }
        }
        let mut claimed = StateBucket {
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
        };
        if self.store.set_bucket(id, &claimed, guard).await? != WriteOutcome::Written {
            return Ok(Outcome::Skipped("another run claimed it"));
        }
        tracing::info!(integration_id = id, bucket = %claimed.name, attempt = claimed.attempts, "provisioning state bucket");

        let result = self.run(&integration, &claimed).await;
        let outcome = match result {
            Ok(Ok(arn)) => {
                claimed.status = BucketStatus::Ready;
                claimed.arn = Some(arn);
                claimed.backend = Some(backend_block(
                    &claimed.name,
                    &claimed.region,
                    integration.name.as_str(),
                ));
                Outcome::Ready
            }
            Ok(Err(why)) => {
                claimed.status = BucketStatus::Failed;
                claimed.reason = Some(why.clone());
                Outcome::Failed(why)
            }
            Err(e) => {
                // Our own dependency failed (e.g. KMS): hand the claim back so a retry can
                // take it at once, and let the caller report the record as failed.
                claimed.status = BucketStatus::Pending;
                claimed.status_changed_at = Some(Timestamp::now());
                let back = BucketGuard {
                    from: &[BucketStatus::Provisioning],
                    ..Default::default()
                };
                if let Err(release) = self.store.set_bucket(id, &claimed, back).await {
                    tracing::warn!(integration_id = id, error = %release, "could not release the claim");
                }
                return Err(e);
            }
        };
        claimed.status_changed_at = Some(Timestamp::now());
        let done = BucketGuard {
            from: &[BucketStatus::Provisioning],
            ..Default::default()
        };
        self.store.set_bucket(id, &claimed, done).await?;
        tracing::info!(
            integration_id = id,
            status = claimed.status.as_str(),
            reason = claimed.reason.as_deref(),
            "state bucket provisioning finished"
        );
        Ok(outcome)
    }

    /// `POST .../state-bucket`: queues a bucket that was not requested or failed; re-drives
    /// one stuck in `pending` (its event was lost) or `provisioning` (its run crashed) past
    /// the thresholds by writing it `pending` again, which the stream delivers anew; leaves
    /// a fresh `pending`/`provisioning` and a `ready` bucket as they are.
    pub async fn request(&self, id: &str) -> Result<StateBucket> {
        let current = self.integrations.get(id).await?;
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
                    if self.store.set_bucket(id, &again, guard).await? == WriteOutcome::Written {
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
        self.integrations.request_bucket(id).await
    }

    /// `GET .../state-bucket`: the status, or 404 when none was requested.
    pub async fn status(&self, id: &str) -> Result<StateBucket> {
        self.integrations
            .get(id)
            .await?
            .state_bucket
            .ok_or_else(|| {
                Error::not_found(format!(
                    "state bucket of integration '{id}' (none requested; POST to request one)"
                ))
            })
    }
}
