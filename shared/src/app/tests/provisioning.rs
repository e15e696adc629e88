//! `Provisioner::provision` and `Provisioner::sweep`: claims, runs in the user's account,
//! the reasons of failures, and what happens to the claim when our own dependency fails.

use super::*;
use crate::app::fakes::{aws_error, Call, Op, KEY_ID, TEMP_KEY_ID};
use crate::app::provisioning::{Outcome, SweepReport, SWEEP_BATCH};
use crate::error::{Dependency, Error};
use crate::ports::CreateBucket;
use serde_json::json;

const BUCKET: &str = "infrakitchen-123456789012-bucket";
const OTHER_ACCOUNT: &str = "is owned by another AWS account";

/// A saved integration with a bucket pending for a minute (the stream's usual case).
async fn pending(w: &World) -> Integration {
    w.with_bucket("aws-production", BucketStatus::Pending, &ago(60))
        .await
}

fn failure(outcome: Outcome) -> String {
    match outcome {
        Outcome::Failed(why) => why,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pending_bucket_is_created_hardened_and_ready() {
    let w = World::new();
    let i = pending(&w).await;
    let outcome = w.provisioner().provision(i.id.as_str()).await.unwrap();
    assert_eq!(outcome, Outcome::Ready);
    let b = w.bucket_of(&i.id);
    assert_eq!(
        (b.status, b.attempts, b.reason),
        (BucketStatus::Ready, 1, None)
    );
    assert_eq!(
        b.arn.as_deref(),
        Some("arn:aws:s3:::infrakitchen-123456789012-bucket")
    );
    let backend = b.backend.unwrap_or_default();
    for part in [BUCKET, "aws-production/terraform.tfstate", "\"us-east-1\""] {
        assert!(backend.contains(part), "{part} not in {backend}");
    }
    let calls = w.account.calls();
    assert_eq!(
        calls[..2],
        [
            Call::CreateBucket {
                key_id: KEY_ID.into(),
                region: "us-east-1".into(),
                bucket: BUCKET.into(),
            },
            Call::OwnedBy {
                bucket: BUCKET.into(),
                account: i.aws_account_id.to_string(),
            },
        ]
    );
    let Call::Harden {
        tags,
        noncurrent_days,
        ..
    } = &calls[2]
    else {
        panic!("expected hardening, got {calls:?}");
    };
    assert_eq!(*noncurrent_days, 90);
    assert!(tags.contains(&("infrakitchen:integration-id".into(), i.id.to_string())));
}

#[tokio::test]
async fn nothing_is_done_when_deleted_unrequested_ready_failed_or_freshly_claimed() {
    let w = World::new();
    let none = w.saved(json!({"name": "none"})).await;
    let ready = w
        .with_bucket("ready", BucketStatus::Ready, &ago(3600))
        .await;
    let failed = w
        .with_bucket("failed", BucketStatus::Failed, &ago(3600))
        .await;
    let busy = w
        .with_bucket("busy", BucketStatus::Provisioning, &ago(60))
        .await;
    let p = w.provisioner();
    for (id, why) in [
        (MISSING, "integration deleted"),
        (none.id.as_str(), "no state bucket requested"),
        (ready.id.as_str(), "already ready"),
        (failed.id.as_str(), "failed; waiting for a retry request"),
        (busy.id.as_str(), "another run is provisioning"),
    ] {
        assert_eq!(p.provision(id).await.unwrap(), Outcome::Skipped(why));
    }
    assert_eq!(w.store.count(Op::SetBucket), 0);
    assert!(w.account.calls().is_empty());
    for i in [ready, failed, busy] {
        assert_eq!(w.stored(&i.id), i);
    }
}

#[tokio::test]
async fn a_stale_provisioning_is_taken_over() {
    let w = World::new();
    let i = w
        .with_bucket("crashed", BucketStatus::Provisioning, &ago(3600))
        .await;
    w.store.edit(&i.id, |r| {
        if let Some(b) = r.state_bucket.as_mut() {
            b.attempts = 1;
        }
    });
    assert_eq!(
        w.provisioner().provision(i.id.as_str()).await.unwrap(),
        Outcome::Ready
    );
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.attempts), (BucketStatus::Ready, 2));
}

#[tokio::test]
async fn a_claim_lost_to_another_run_is_skipped() {
    let w = World::new();
    let i = pending(&w).await;
    let (id, theirs) = (i.id.clone(), bucket(BucketStatus::Provisioning, &ago(1)));
    let b = theirs.clone();
    w.store.before_next(Op::SetBucket, move |t| {
        t.edit(&id, |r| r.state_bucket = Some(b))
    });
    let outcome = w.provisioner().provision(i.id.as_str()).await.unwrap();
    assert_eq!(outcome, Outcome::Skipped("another run claimed it"));
    assert_eq!(w.bucket_of(&i.id), theirs);
    assert!(w.account.calls().is_empty());
}

#[tokio::test]
async fn a_bucket_the_account_already_owns_is_adopted_and_hardened() {
    let w = World::new();
    let i = pending(&w).await;
    w.account
        .answer_create_bucket(Ok(CreateBucket::AlreadyOwned));
    assert_eq!(
        w.provisioner().provision(i.id.as_str()).await.unwrap(),
        Outcome::Ready
    );
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
    assert_eq!(w.account.ops().last(), Some(&"Harden"));
}

#[tokio::test]
async fn a_name_taken_by_another_account_fails_with_that_reason() {
    let w = World::new();
    let i = pending(&w).await;
    w.account.answer_create_bucket(Ok(CreateBucket::Taken));
    let why = failure(w.provisioner().provision(i.id.as_str()).await.unwrap());
    assert!(why.contains(OTHER_ACCOUNT), "{why}");
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.reason), (BucketStatus::Failed, Some(why)));
    assert_eq!(w.account.ops(), ["CreateBucket"]);
}

/// The owner check runs beside the hardening, which names the account as the bucket's
/// expected owner (so S3 applies none of it to another account's bucket); the check's
/// answer decides, whatever the hardening answered.
#[tokio::test]
async fn a_bucket_the_account_does_not_own_fails_as_taken() {
    let w = World::new();
    let i = pending(&w).await;
    w.account.answer_owned_by(Ok(false));
    let why = failure(w.provisioner().provision(i.id.as_str()).await.unwrap());
    assert!(why.contains(OTHER_ACCOUNT), "{why}");
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Failed);
    assert_eq!(
        w.account.ops(),
        ["CreateBucket", "HeadBucket(ExpectedBucketOwner)", "Harden"]
    );
    let calls = w.account.calls();
    assert!(
        matches!(&calls[2], Call::Harden { expected_owner, .. } if *expected_owner == i.aws_account_id.to_string()),
        "{calls:?}"
    );
}

#[tokio::test]
async fn an_owner_check_that_fails_decides_over_the_hardening() {
    let w = World::new();
    let i = pending(&w).await;
    w.account
        .answer_owned_by(Err(aws_error("ServiceUnavailable", 503)));
    w.account
        .answer_harden(vec![("PutBucketTagging", aws_error("AccessDenied", 403))]);
    let why = failure(w.provisioner().provision(i.id.as_str()).await.unwrap());
    assert!(
        why.starts_with("HeadBucket could not be completed"),
        "{why}"
    );
    assert!(!why.contains("PutBucketTagging"), "{why}");
}

#[tokio::test]
async fn hardening_failures_fail_with_a_reason_for_each() {
    let w = World::new();
    let i = pending(&w).await;
    w.account.answer_harden(vec![
        ("PutBucketVersioning", aws_error("AccessDenied", 403)),
        ("PutBucketPolicy", aws_error("ServiceUnavailable", 503)),
    ]);
    let why = failure(w.provisioner().provision(i.id.as_str()).await.unwrap());
    assert!(
        why.starts_with("the bucket exists but is not fully hardened"),
        "{why}"
    );
    assert!(
        why.contains("the credentials lack s3:PutBucketVersioning"),
        "{why}"
    );
    assert!(
        why.contains("PutBucketPolicy could not be completed"),
        "{why}"
    );
    assert_eq!(w.bucket_of(&i.id).reason, Some(why));
}

#[tokio::test]
async fn the_bucket_is_made_with_the_roles_credentials() {
    let w = World::new();
    let i = w
        .saved(json!({"aws_assumed_role_name": "team/Provisioner", "aws_external_id": "ext-1"}))
        .await;
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(60)));
    assert_eq!(
        w.provisioner().provision(i.id.as_str()).await.unwrap(),
        Outcome::Ready
    );
    let calls = w.account.calls();
    let Call::AssumeRole {
        role_arn,
        external_id,
        key_id,
        ..
    } = &calls[0]
    else {
        panic!("expected AssumeRole first, got {calls:?}");
    };
    assert_eq!(role_arn, "arn:aws:iam::123456789012:role/team/Provisioner");
    assert_eq!(
        (external_id.as_deref(), key_id.as_str()),
        (Some("ext-1"), KEY_ID)
    );
    assert!(matches!(&calls[1], Call::CreateBucket { key_id, .. } if key_id == TEMP_KEY_ID));
}

#[tokio::test]
async fn a_denied_assume_role_fails_naming_sts_assume_role() {
    let w = World::new();
    let i = w
        .saved(json!({"aws_assumed_role_name": "Provisioner"}))
        .await;
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(60)));
    w.account
        .answer_assume_role(Err(aws_error("AccessDenied", 403)));
    let why = failure(w.provisioner().provision(i.id.as_str()).await.unwrap());
    assert!(why.contains("sts:AssumeRole"), "{why}");
    assert!(
        why.contains("arn:aws:iam::123456789012:role/Provisioner"),
        "{why}"
    );
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Failed);
    assert_eq!(w.account.ops(), ["AssumeRole"]);
}

#[tokio::test]
async fn a_sealer_outage_hands_the_claim_back_and_is_an_error() {
    let w = World::new();
    let i = pending(&w).await;
    let before = w.bucket_of(&i.id);
    w.sealer.fail_next(1);
    let r = w.provisioner().provision(i.id.as_str()).await;
    assert!(
        matches!(
            r,
            Err(Error::Unavailable {
                dependency: Dependency::Kms,
                ..
            })
        ),
        "{r:?}"
    );
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.attempts), (BucketStatus::Pending, 1));
    assert!(b.status_changed_at > before.status_changed_at);
    assert!(w.account.calls().is_empty());
}

#[tokio::test]
async fn a_store_outage_on_the_claim_is_an_error_and_changes_nothing() {
    let w = World::new();
    let i = pending(&w).await;
    w.store.fail_next(Op::SetBucket, 1);
    let r = w.provisioner().provision(i.id.as_str()).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert_eq!(w.stored(&i.id), i);
    assert!(w.account.calls().is_empty());
}

/// The result of a finished run cannot be written: the claim is not handed back, so the
/// bucket stays `provisioning` until a takeover (the sweeper, after `stale_after`).
#[tokio::test]
async fn a_store_outage_when_recording_the_result_leaves_the_claim_for_a_takeover() {
    let w = World::new();
    let i = pending(&w).await;
    w.store.fail_after(Op::SetBucket, 1, 1);
    let r = w.provisioner().provision(i.id.as_str()).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Provisioning);
    assert_eq!(
        w.account.ops().last(),
        Some(&"Harden"),
        "the bucket was made"
    );
    // The stream's retry of the event finds a fresh claim and does nothing.
    let again = w.provisioner().provision(i.id.as_str()).await.unwrap();
    assert_eq!(again, Outcome::Skipped("another run is provisioning"));
}

#[tokio::test]
async fn a_sweep_provisions_due_buckets_and_leaves_the_rest() {
    let w = World::new();
    let lost = w
        .with_bucket("lost", BucketStatus::Pending, &ago(600))
        .await;
    let crashed = w
        .with_bucket("crashed", BucketStatus::Provisioning, &ago(3600))
        .await;
    let untouched = [
        w.with_bucket("fresh", BucketStatus::Pending, &ago(10))
            .await,
        w.with_bucket("busy", BucketStatus::Provisioning, &ago(60))
            .await,
        w.with_bucket("ready", BucketStatus::Ready, &ago(3600))
            .await,
        w.with_bucket("failed", BucketStatus::Failed, &ago(3600))
            .await,
    ];
    let report = w.provisioner().sweep().await.unwrap();
    let expected = SweepReport {
        due: 2,
        ready: 2,
        ..Default::default()
    };
    assert_eq!(report, expected);
    for i in [lost, crashed] {
        assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
    }
    for i in untouched {
        assert_eq!(w.stored(&i.id), i);
    }
}

#[tokio::test]
async fn a_sweep_counts_failures_and_errors_apart() {
    let w = World::new();
    let mut ids = vec![];
    for name in ["one", "two", "three"] {
        ids.push(
            w.with_bucket(name, BucketStatus::Pending, &ago(600))
                .await
                .id,
        );
    }
    w.sealer.fail_next(1);
    w.account.answer_create_bucket(Ok(CreateBucket::Taken));
    let report = w.provisioner().sweep().await.unwrap();
    let expected = SweepReport {
        due: 3,
        ready: 1,
        failed: 1,
        errors: 1,
        ..Default::default()
    };
    assert_eq!(report, expected);
    let mut statuses: Vec<&str> = ids
        .iter()
        .map(|id| w.bucket_of(id).status.as_str())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["failed", "pending", "ready"]);
}

#[tokio::test]
async fn a_sweep_takes_one_batch_oldest_first() {
    let w = World::new();
    let mut ids = vec![];
    for n in 0..SWEEP_BATCH as u64 + 2 {
        let age = 600 + 60 * n;
        ids.push(
            w.with_bucket(&format!("b{n}"), BucketStatus::Pending, &ago(age))
                .await
                .id,
        );
    }
    let report = w.provisioner().sweep().await.unwrap();
    assert_eq!((report.due, report.ready), (SWEEP_BATCH, SWEEP_BATCH));
    // The two youngest wait for the next sweep.
    let waiting: Vec<_> = ids
        .iter()
        .filter(|id| w.bucket_of(id).status == BucketStatus::Pending)
        .collect();
    assert_eq!(waiting, [&ids[0], &ids[1]]);
}

#[tokio::test]
async fn a_sweep_that_cannot_find_its_work_is_an_error() {
    let w = World::new();
    let i = w
        .with_bucket("lost", BucketStatus::Pending, &ago(600))
        .await;
    w.store.fail_next(Op::BucketsDue, 1);
    assert!(w.provisioner().sweep().await.is_err());
    assert_eq!(w.stored(&i.id), i);
}
