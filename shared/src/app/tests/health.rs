//! The scheduled health check on the fakes: transitions and what is recorded, and a
//! simulation at 10,000 integrations showing that capped runs take the least recently
//! checked first, so every integration is checked once per pass and none starves.

use super::*;
use crate::app::fakes::{aws_error, Op};
use crate::app::health::{HealthCheck, HealthSettings};
use crate::domain::{AuditAction, BucketName, HealthStatus};
use crate::ports::{AwsCredentials, AwsFailure, BucketCheck, BucketInspector, Hardening, Setting};
use async_trait::async_trait;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A state bucket whose hardening never drifted; counts the inspections.
#[derive(Default)]
struct UndriftedBuckets {
    inspected: AtomicUsize,
}

#[async_trait]
impl BucketInspector for UndriftedBuckets {
    async fn inspect(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        _bucket: &BucketName,
        _spec: &Hardening,
    ) -> Result<BucketCheck, AwsFailure> {
        self.inspected.fetch_add(1, Ordering::SeqCst);
        Ok(BucketCheck::Present {
            drifted: vec![],
            unreadable: vec![],
        })
    }

    async fn repair(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        _bucket: &BucketName,
        _spec: &Hardening,
        _settings: &[Setting],
    ) -> Vec<(Setting, AwsFailure)> {
        vec![]
    }
}

impl World {
    /// The health check as `wiring` builds it (key hygiene on), on the fakes.
    fn health(&self, buckets: Arc<UndriftedBuckets>, settings: HealthSettings) -> HealthCheck {
        HealthCheck::new(
            self.integrations.clone(),
            self.store.clone(),
            self.store.clone(),
            self.tester().with_key_inspector(self.account.clone()),
            self.account.clone(),
            Some(self.platform.clone()),
            buckets,
            settings,
        )
    }
}

/// The queue's times have millisecond resolution: a run in the same millisecond as the
/// last would find nothing due yet.
async fn next_ms() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

/// Every integration due at once (no minimum interval), no time limit to speak of.
fn eager() -> HealthSettings {
    HealthSettings {
        min_interval: Duration::ZERO,
        budget: Duration::from_secs(3600),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_key_aws_refuses_turns_failing_then_recovers_and_both_transitions_are_audited() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let check = w.health(Arc::default(), eager());

    w.account
        .answer_caller_identity(Err(aws_error("InvalidClientTokenId", 403)));
    let first = check.run().await.unwrap();
    assert_eq!(
        (first.checked, first.failing, first.became_failing),
        (1, 1, 1)
    );
    let failing = w.stored(&i.id);
    let h = failing.health.clone().expect("a verdict");
    assert_eq!(h.status, HealthStatus::Failing);
    assert_eq!(h.step.as_deref(), Some("credentials"));
    assert!(h.hint.is_some(), "{h:?}");
    assert_eq!(failing.last_test.as_ref().map(|t| t.ok), Some(false));
    // Keys AWS refused: what IAM says of them is moot, nothing recorded.
    assert_eq!(failing.key_created_at, None);
    assert_eq!(failing.revision, i.revision, "a check is not a revision");

    // Still failing: `since` stays, no second event.
    next_ms().await;
    w.account
        .answer_caller_identity(Err(aws_error("InvalidClientTokenId", 403)));
    let again = check.run().await.unwrap();
    assert_eq!((again.failing, again.became_failing), (1, 0));
    let still = w.stored(&i.id).health.unwrap();
    assert_eq!(still.since, h.since);
    assert!(still.checked_at >= h.checked_at);

    // The user fixed the keys: ok again, with the key's dates from IAM.
    next_ms().await;
    let fixed = check.run().await.unwrap();
    assert_eq!((fixed.ok, fixed.recovered), (1, 1));
    let ok = w.stored(&i.id);
    assert_eq!(ok.health.as_ref().map(|h| h.status), Some(HealthStatus::Ok));
    assert!(ok.key_created_at.is_some() && ok.key_last_used_at.is_some());
    let actions: Vec<AuditAction> = w
        .store
        .audit()
        .into_iter()
        .filter(|e| e.integration_id == i.id)
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            AuditAction::Created,
            AuditAction::HealthFailing,
            AuditAction::HealthRecovered
        ]
    );
}

#[tokio::test]
async fn an_unreachable_aws_records_no_verdict_and_the_integration_moves_back_in_the_queue() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let check = w.health(Arc::default(), eager());
    check.run().await.unwrap();
    let before = w.stored(&i.id);

    next_ms().await;
    w.account
        .answer_caller_identity(Err(AwsFailure::unreachable("connection refused")));
    let r = check.run().await.unwrap();
    assert_eq!((r.checked, r.unreachable, r.ok, r.failing), (1, 1, 0, 0));
    let after = w.stored(&i.id);
    assert_eq!(after.health, before.health, "an outage says nothing");
    assert_eq!(after.last_test, before.last_test);
    // The write happened (the queue moved), so it is not taken first again at once.
    assert_eq!(w.store.count(Op::RecordHealth), 2);
}

#[tokio::test]
async fn only_ready_buckets_of_passing_integrations_are_inspected() {
    let w = World::new();
    let ready = w.with_bucket("ready", BucketStatus::Ready, &ago(60)).await;
    w.with_bucket("pending", BucketStatus::Pending, &ago(60))
        .await;
    w.saved(json!({ "name": "no-bucket" })).await;
    let buckets = Arc::new(UndriftedBuckets::default());
    let r = w.health(buckets.clone(), eager()).run().await.unwrap();
    assert_eq!((r.checked, r.ok, r.buckets_checked), (3, 3, 1));
    assert_eq!(buckets.inspected.load(Ordering::SeqCst), 1);
    assert_eq!(
        w.bucket_of(&ready.id).status,
        BucketStatus::Ready,
        "an undrifted bucket is left alone"
    );
}

/// 10,000 integrations, runs capped at 1,000 checks: ten runs check each exactly once,
/// an eleventh finds nothing due within the interval; with every integration due again,
/// ten more runs check each once more, least recently checked first. A check that took
/// the same integrations again (or the newest first) would leave some unchecked.
#[tokio::test]
async fn at_ten_thousand_integrations_capped_runs_check_each_once_per_pass_oldest_first() {
    const N: usize = 10_000;
    const PER_RUN: usize = 1_000;
    let w = World::new();
    for n in 0..N {
        w.saved(json!({ "name": format!("aws-{n:05}") })).await;
    }
    let capped = |min_interval| HealthSettings {
        max_checks: Some(PER_RUN),
        concurrency: 16,
        min_interval,
        budget: Duration::from_secs(3600),
        ..Default::default()
    };
    let buckets: Arc<UndriftedBuckets> = Arc::default();
    let hourly = w.health(buckets.clone(), capped(Duration::from_secs(3600)));
    for run in 1..=N / PER_RUN {
        let r = hourly.run().await.unwrap();
        assert_eq!((r.checked, r.ok), (PER_RUN, PER_RUN), "run {run}");
        assert_eq!(r.remaining, (N - run * PER_RUN).min(1000), "run {run}");
    }
    let checked_at = |w: &World| -> Vec<Timestamp> {
        w.store
            .snapshot()
            .into_iter()
            .map(|i| i.health.expect("every integration checked").checked_at)
            .collect()
    };
    let first_pass = checked_at(&w);
    assert_eq!(first_pass.len(), N);
    assert_eq!(w.store.count(Op::RecordHealth), N, "each exactly once");
    // Checked an hour ago at most: nothing is due.
    let idle = hourly.run().await.unwrap();
    assert_eq!((idle.checked, idle.remaining), (0, 0));

    // Every integration due again: the second pass takes those checked longest ago.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second_started = Timestamp::now();
    let always = hourly.with_settings(capped(Duration::ZERO));
    for run in 1..=N / PER_RUN {
        let r = always.run().await.unwrap();
        assert_eq!(r.checked, PER_RUN, "second pass, run {run}");
    }
    assert_eq!(w.store.count(Op::RecordHealth), 2 * N);
    let late = checked_at(&w)
        .into_iter()
        .filter(|t| t < &second_started)
        .count();
    assert_eq!(
        late, 0,
        "every integration is checked once in the second pass"
    );
    assert_eq!(buckets.inspected.load(Ordering::SeqCst), 0);
}
