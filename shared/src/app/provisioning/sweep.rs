//! The scheduled sweeper: provisions buckets whose stream event was lost or whose run
//! crashed, so no bucket stays `pending` or `provisioning` for ever.

use super::{Outcome, Provisioner};
use crate::domain::{BucketStatus, Timestamp};
use crate::error::Result;
use futures::StreamExt as _;
use std::time::Duration;

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub due: usize,
    pub ready: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Our own dependency failed for these: they stay due for the next sweep.
    pub errors: usize,
    /// Not started within the sweep's time budget: due again next time.
    pub deferred: usize,
}

/// Buckets one sweep takes on (per status), how many it provisions at once, and how
/// long it keeps starting new ones: a sweep runs inside the function's 120 s timeout
/// (one provisioning takes seconds, ~10 s at worst with the per-call timeouts), and a
/// backlog drains over a few scheduled runs rather than in one long one.
pub const SWEEP_BATCH: usize = 25;
const SWEEP_CONCURRENCY: usize = 5;
const SWEEP_START_BUDGET: Duration = Duration::from_secs(60);

impl Provisioner {
    /// The scheduled sweeper: provisions every bucket that has been `pending` longer than
    /// `pending_after` or `provisioning` longer than `stale_after`. The claim is the same
    /// conditional update as the stream's, so a sweep never races a live run.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let store = &self.store;
        let pending_before = Timestamp::ago(self.settings.pending_after);
        let stale_before = Timestamp::ago(self.settings.stale_after);
        let (pending, stale) = tokio::join!(
            store.buckets_due(BucketStatus::Pending, &pending_before, SWEEP_BATCH),
            store.buckets_due(BucketStatus::Provisioning, &stale_before, SWEEP_BATCH),
        );
        let mut ids = pending?;
        ids.extend(stale?);
        ids.dedup();
        let mut report = SweepReport {
            due: ids.len(),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let outcomes: Vec<(String, Option<Result<Outcome>>)> =
            futures::stream::iter(ids.into_iter().map(|id| async move {
                if started.elapsed() > SWEEP_START_BUDGET {
                    return (id, None);
                }
                let outcome = self.provision(&id).await;
                (id, Some(outcome))
            }))
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        for (id, outcome) in outcomes {
            match outcome {
                None => report.deferred += 1,
                Some(Ok(Outcome::Ready)) => report.ready += 1,
                Some(Ok(Outcome::Failed(_))) => report.failed += 1,
                Some(Ok(Outcome::Skipped(_))) => report.skipped += 1,
                Some(Err(e)) => {
                    tracing::warn!(integration_id = %id, error = %e, "sweep could not provision; due again next time");
                    report.errors += 1;
                }
            }
        }
        if report.due > 0 {
            tracing::info!(?report, "state bucket sweep");
        }
        Ok(report)
    }
}
