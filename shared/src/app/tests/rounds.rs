//! The sequential rounds of AWS requests one provisioning makes (issue 19), counted on
//! the fakes' shared trace as the benchmark's counting proxy counts them: a stream record
//! claims its bucket while the secret is opened, and checks the owner while hardening.
//! A change that puts one of these calls back in a row of its own fails here.

use super::*;
use crate::app::fakes::{Call, Op, KEY_ID, SECRET};
use crate::app::provisioning::Outcome;
use crate::domain::{AccessKeyId, Credentials};
use aws_lambda_events::event::dynamodb::EventRecord;
use serde_json::json;

const OWNER_CHECK: &str = "HeadBucket(ExpectedBucketOwner)";

/// A stream record whose new image is the record as stored now.
fn record_of(i: &Integration) -> EventRecord {
    let mut r = EventRecord::default();
    r.event_name = "MODIFY".into();
    r.change.new_image = crate::aws::dynamo::image_of(i);
    r
}

/// A saved integration (with these fields) whose bucket is pending; the trace starts
/// after it.
async fn pending_with(w: &World, fields: Value) -> Integration {
    let i = w.saved(fields).await;
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(1)));
    w.trace.clear();
    w.stored(&i.id)
}

fn rounds(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|r| {
            let mut r: Vec<String> = r.iter().map(|s| s.to_string()).collect();
            r.sort();
            r
        })
        .collect()
}

async fn provision_record(w: &World, i: &Integration) {
    let p = w.provisioner();
    crate::events::stream::provision_record(&p, &record_of(i))
        .await
        .expect("the record is handled");
}

#[tokio::test]
async fn a_stream_record_with_a_role_takes_five_rounds() {
    let w = World::new();
    let i = pending_with(&w, json!({"aws_assumed_role_name": "Provisioner"})).await;
    provision_record(&w, &i).await;
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
    // The secret opened beside the claim is the user's.
    let calls = w.account.calls();
    assert!(
        matches!(&calls[0], Call::AssumeRole { key_id, secret, .. } if key_id == KEY_ID && secret == SECRET),
        "{calls:?}"
    );
    assert_eq!(
        w.trace.rounds(),
        rounds(&[
            &["SetBucket", "Decrypt"],
            &["AssumeRole"],
            &["CreateBucket"],
            &[OWNER_CHECK, "Harden"],
            &["SetBucket"],
        ])
    );
    assert_eq!(w.store.count(Op::Get), 0, "the image saved the read");
}

#[tokio::test]
async fn a_stream_record_without_a_role_takes_four_rounds() {
    let w = World::new();
    let i = pending_with(&w, json!({})).await;
    provision_record(&w, &i).await;
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.attempts), (BucketStatus::Ready, 1));
    assert_eq!(
        w.trace.rounds(),
        rounds(&[
            &["SetBucket", "Decrypt"],
            &["CreateBucket"],
            &[OWNER_CHECK, "Harden"],
            &["SetBucket"],
        ])
    );
}

/// The sweeper and a retry request have only the id: they read the record first, then
/// claim while the secret is opened.
#[tokio::test]
async fn provisioning_by_id_reads_then_claims_while_opening_the_secret() {
    let w = World::new();
    let i = pending_with(&w, json!({})).await;
    assert_eq!(
        w.provisioner().provision(i.id.as_str()).await.unwrap(),
        Outcome::Ready
    );
    assert_eq!(
        w.trace.rounds(),
        rounds(&[
            &["Get"],
            &["SetBucket", "Decrypt"],
            &["CreateBucket"],
            &[OWNER_CHECK, "Harden"],
            &["SetBucket"],
        ])
    );
}

/// A record that changed after its image (here: new keys) is never provisioned from the
/// image: the claim requires the record as the image shows it, and on refusal the record
/// is read and claimed afresh, so the run uses what is stored now.
#[tokio::test]
async fn a_stale_image_is_refused_and_the_record_is_read_afresh() {
    let w = World::new();
    let i = pending_with(&w, json!({})).await;
    let rotated = "AKIAROTATEDEXAMPLEZZ";
    w.store.edit(&i.id, |r| {
        if let Credentials::AccessKeys { key_id, .. } = &mut r.credentials {
            *key_id = AccessKeyId::parse(rotated).expect("a key id");
        }
        r.revision += 1;
    });
    provision_record(&w, &i).await;
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.attempts), (BucketStatus::Ready, 1));
    let calls = w.account.calls();
    assert!(
        matches!(&calls[0], Call::CreateBucket { key_id, .. } if key_id == rotated),
        "{calls:?}"
    );
    assert_eq!(
        w.trace.rounds(),
        rounds(&[
            &["SetBucket", "Decrypt"],
            &["Get"],
            &["SetBucket", "Decrypt"],
            &["CreateBucket"],
            &[OWNER_CHECK, "Harden"],
            &["SetBucket"],
        ])
    );
}

/// Every part of the claim's view of the record counts: its revision, and its bucket's
/// attempts and status time.
#[tokio::test]
async fn an_image_claims_only_the_record_exactly_as_it_shows_it() {
    let changes: [fn(&mut Integration); 3] = [
        |r| r.revision += 1,
        |r| {
            if let Some(b) = r.state_bucket.as_mut() {
                b.attempts += 1;
            }
        },
        |r| {
            if let Some(b) = r.state_bucket.as_mut() {
                b.status_changed_at = Some(ago(0));
            }
        },
    ];
    for change in changes {
        let w = World::new();
        let i = pending_with(&w, json!({})).await;
        w.store.edit(&i.id, change);
        assert_eq!(
            w.provisioner().provision_seen(&i).await.unwrap(),
            Outcome::Ready
        );
        assert_eq!(w.store.count(Op::Get), 1, "refused, then read afresh");
        assert_eq!(w.store.count(Op::SetBucket), 3, "two claims and the result");
    }
}

/// Another run claimed the bucket after the image: the opened secret is dropped, nothing
/// is called in the user's account, and the fresh read finds the other run at work.
#[tokio::test]
async fn a_claim_lost_after_the_image_calls_nothing_in_the_users_account() {
    let w = World::new();
    let i = pending_with(&w, json!({})).await;
    let (id, theirs) = (i.id.clone(), bucket(BucketStatus::Provisioning, &ago(1)));
    let b = theirs.clone();
    w.store.before_next(Op::SetBucket, move |t| {
        t.edit(&id, |r| r.state_bucket = Some(b))
    });
    let outcome = w.provisioner().provision_seen(&i).await.unwrap();
    assert_eq!(outcome, Outcome::Skipped("another run is provisioning"));
    assert_eq!(w.bucket_of(&i.id), theirs);
    assert!(w.account.calls().is_empty());
    assert_eq!(w.sealer.opens(), 1);
    assert_eq!(
        w.trace.rounds(),
        rounds(&[&["SetBucket", "Decrypt"], &["Get"]])
    );
}

/// KMS fails while the claim is written: the claim is handed back, as when the secret
/// was opened after it.
#[tokio::test]
async fn a_sealer_outage_beside_the_claim_hands_it_back() {
    let w = World::new();
    let i = pending_with(&w, json!({})).await;
    w.sealer.fail_next(1);
    let r = w.provisioner().provision_seen(&i).await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.attempts), (BucketStatus::Pending, 1));
    assert!(w.account.calls().is_empty());
    // The retry (the record's new image) provisions it.
    provision_record(&w, &w.stored(&i.id)).await;
    let b = w.bucket_of(&i.id);
    assert_eq!((b.status, b.attempts), (BucketStatus::Ready, 2));
}

/// A delegation integration (issue 21) with its bucket pending; the trace starts after it.
async fn delegated_pending(w: &World) -> Integration {
    let i = w
        .saved(json!({
            "auth": "role_delegation",
            "aws_access_key_id": null,
            "aws_secret_access_key": null,
            "aws_assumed_role_name": "Provisioner",
        }))
        .await;
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(1)));
    w.trace.clear();
    w.stored(&i.id)
}

/// Role delegation's provisioning: the claim with the platform's session fetched beside
/// it (in place of the Decrypt that access keys need), the delegated AssumeRole, then as
/// with keys and a role: five rounds, also on a cold function.
#[tokio::test]
async fn a_delegated_stream_record_takes_five_rounds_without_a_secret() {
    let w = World::new();
    let i = delegated_pending(&w).await;
    provision_record(&w, &i).await;
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
    assert_eq!(
        w.trace.rounds(),
        rounds(&[
            &["SetBucket", "PlatformSession"],
            &["AssumeRole"],
            &["CreateBucket"],
            &[OWNER_CHECK, "Harden"],
            &["SetBucket"],
        ])
    );
    // With the platform's session cached (as it is between calls of a warm function),
    // the same five: the claim alone.
    let w = World::new();
    let i = delegated_pending(&w).await;
    w.platform.cache();
    provision_record(&w, &i).await;
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
    assert_eq!(
        w.trace.rounds(),
        rounds(&[
            &["SetBucket"],
            &["AssumeRole"],
            &["CreateBucket"],
            &[OWNER_CHECK, "Harden"],
            &["SetBucket"],
        ])
    );
}

/// Test Connection of a delegation integration: read, the platform's session, the
/// delegated AssumeRole, then the role's identity beside the bucket check (HeadBucket and
/// ListBuckets), then the verdict recorded. No Decrypt anywhere.
#[tokio::test]
async fn a_delegation_test_takes_two_aws_rounds_once_the_platform_session_is_cached() {
    let w = World::new();
    let i = delegated_pending(&w).await;
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        crate::app::connection::Outcome::Passed,
        "{}",
        report.summary
    );
    let aws_rounds = [
        &["PlatformSession"][..],
        &["AssumeRole"],
        &["GetCallerIdentity", "HeadBucket", "ListBuckets"],
    ];
    let mut expected = vec![&["Get"][..]];
    expected.extend(aws_rounds);
    expected.push(&["RecordTest"]);
    assert_eq!(w.trace.rounds(), rounds(&expected));
    // The session cached: the platform costs no round.
    w.platform.cache();
    w.trace.clear();
    w.test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    let mut expected = vec![&["Get"][..]];
    expected.extend(&aws_rounds[1..]);
    expected.push(&["RecordTest"]);
    assert_eq!(w.trace.rounds(), rounds(&expected));
    assert_eq!(w.platform.sessions(), 2);
}
