//! `POST .../state-bucket` (`Provisioner::request`, falling back to
//! `Integrations::request_bucket`): queue, re-queue, re-drive, or leave alone.

use super::*;
use crate::app::fakes::Op;
use crate::error::Error;
use serde_json::json;

#[tokio::test]
async fn a_bucket_is_queued_when_none_was_requested() {
    let w = World::new();
    let i = w.saved(json!({"aws_default_region": "eu-west-1"})).await;
    let b = w
        .provisioner()
        .request(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!((b.status, b.attempts), (BucketStatus::Pending, 0));
    assert_eq!(b.region, "eu-west-1");
    assert_eq!(w.bucket_of(&i.id), b);
    assert!(w.stored(&i.id).create_state_bucket);
}

#[tokio::test]
async fn a_failed_bucket_is_queued_again_keeping_its_attempts() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let failed = StateBucket {
        attempts: 3,
        reason: Some("CreateBucket was denied".into()),
        ..bucket(BucketStatus::Failed, &ago(3600))
    };
    w.store.set_state_bucket(&i.id, failed.clone());
    let b = w
        .provisioner()
        .request(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        (b.status, b.attempts, &b.reason),
        (BucketStatus::Pending, 3, &None)
    );
    assert!(b.status_changed_at > failed.status_changed_at);
    assert_eq!(w.bucket_of(&i.id), b);
}

#[tokio::test]
async fn fresh_pending_or_provisioning_and_ready_buckets_are_left_as_they_are() {
    let w = World::new();
    let p = w.provisioner();
    for (name, status, since) in [
        ("fresh", BucketStatus::Pending, ago(10)),
        ("busy", BucketStatus::Provisioning, ago(60)),
        ("ready", BucketStatus::Ready, ago(3600)),
    ] {
        let i = w.with_bucket(name, status, &since).await;
        let b = p.request(&caller(), i.id.as_str()).await.unwrap();
        assert_eq!(Some(&b), i.state_bucket.as_ref(), "{name}");
        assert_eq!(w.stored(&i.id), i, "{name}");
    }
    assert_eq!(w.store.count(Op::SetBucket), 0);
}

#[tokio::test]
async fn an_overdue_pending_or_stale_provisioning_is_driven_again() {
    let w = World::new();
    let p = w.provisioner();
    for (name, status, since) in [
        ("lost", BucketStatus::Pending, ago(600)),
        ("crashed", BucketStatus::Provisioning, ago(3600)),
    ] {
        let i = w.with_bucket(name, status, &since).await;
        w.store.edit(&i.id, |r| {
            if let Some(b) = r.state_bucket.as_mut() {
                b.attempts = 2;
            }
        });
        let b = p.request(&caller(), i.id.as_str()).await.unwrap();
        assert_eq!((b.status, b.attempts), (BucketStatus::Pending, 2), "{name}");
        assert!(b.status_changed_at > Some(since), "{name}");
        assert_eq!(w.bucket_of(&i.id), b, "{name}");
    }
}

#[tokio::test]
async fn a_bucket_queued_meanwhile_is_reported_as_it_is_now() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let (id, theirs) = (i.id.clone(), bucket(BucketStatus::Provisioning, &ago(1)));
    let b = theirs.clone();
    w.store.before_next(Op::SetBucket, move |t| {
        t.edit(&id, |r| r.state_bucket = Some(b))
    });
    assert_eq!(
        w.provisioner()
            .request(&caller(), i.id.as_str())
            .await
            .unwrap(),
        theirs
    );
    assert_eq!(w.bucket_of(&i.id), theirs);
}

#[tokio::test]
async fn requesting_a_bucket_of_a_missing_integration_is_not_found() {
    let w = World::new();
    let r = w.provisioner().request(&caller(), MISSING).await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert_eq!(w.store.count(Op::SetBucket), 0);
}
