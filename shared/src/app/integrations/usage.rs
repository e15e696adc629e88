//! What callers do with an integration besides changing it: read its audit trail,
//! record a test's verdict, request its state bucket.

use super::Integrations;
use crate::domain::LastTest;
use crate::domain::{AuditAction, AuditEvent, BucketStatus, Caller, Integration, KeyDates};
use crate::domain::{IntegrationId, StateBucket, Timestamp};
use crate::error::{Error, Result};
use crate::ports::{BucketGuard, HistoryPage, HistoryQuery, WriteOutcome};

impl Integrations {
    /// The audit trail of an integration the caller may see. After a delete, only
    /// callers who see everything (admins, services) can still read it.
    pub async fn history(
        &self,
        who: &Caller,
        id: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage> {
        let gone = || Error::not_found(format!("integration '{id}'"));
        // Only an id can have had events: anything else never reaches the store.
        if IntegrationId::parse(id).is_err() {
            return Err(gone());
        }
        match self.store.get(id).await? {
            Some(i) if who.may_see(&i) => self.store.history(id, query).await,
            Some(_) => Err(gone()),
            None if who.sees_everything() => {
                let page = self.store.history(id, query).await?;
                if page.events.is_empty() && query.next_token.is_none() {
                    return Err(gone());
                }
                Ok(page)
            }
            None => Err(gone()),
        }
    }

    /// Records a test's verdict as `last_test` (and the access key's dates when the test
    /// read them), unless AWS could not be reached: such a test says nothing about the
    /// credentials, so nothing is written (`None`).
    pub async fn record_test(
        &self,
        who: &Caller,
        integration: &Integration,
        outcome: crate::app::connection::Outcome,
        key: Option<&KeyDates>,
    ) -> Result<Option<LastTest>> {
        let Some(ok) = outcome.recorded_ok() else {
            return Ok(None);
        };
        let test = LastTest {
            at: Timestamp::now(),
            ok,
        };
        let id = integration.id.as_str();
        let audit = AuditEvent::new(who, &integration.id, AuditAction::Tested).with_detail(if ok {
            "passed"
        } else {
            "failed"
        });
        match self.store.record_test(id, &test, key, &audit).await? {
            WriteOutcome::Written => Ok(Some(test)),
            _ => Err(Error::not_found(format!("integration '{id}'"))),
        }
    }

    /// `POST .../state-bucket`: (re)queue provisioning. A bucket that is already being
    /// provisioned or ready is left alone and reported as it is.
    pub async fn request_bucket(&self, who: &Caller, id: &str) -> Result<StateBucket> {
        let current = self.get(who, id).await?;
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
            ..Default::default()
        };
        let audit = AuditEvent::new(who, &current.id, AuditAction::BucketRequested)
            .with_detail(format!("bucket '{}' queued", bucket.name));
        match self
            .store
            .set_bucket(id, &bucket, guard, Some(&audit))
            .await?
        {
            WriteOutcome::Written => Ok(bucket),
            // Someone else queued it between our read and write: report what is there now.
            _ => self
                .get(who, id)
                .await?
                .state_bucket
                .ok_or_else(|| Error::internal("state bucket vanished")),
        }
    }
}
