//! `TestConnection`: a form or a saved integration against the (fake) user's account.

use super::*;
use crate::app::connection::Outcome as Verdict;
use crate::app::fakes::{aws_error, Call, Op, KEY_ID, SECRET, TEMP_KEY_ID, USER_ARN};
use crate::domain::LastTest;
use crate::error::Error;
use crate::ports::{AwsFailure, HeadBucket};
use serde_json::json;

const BUCKET: &str = "infrakitchen-123456789012-bucket";

fn user_call() -> Call {
    Call::CallerIdentity {
        key_id: KEY_ID.into(),
        secret: SECRET.into(),
    }
}

#[tokio::test]
async fn a_pass_is_recorded_and_uses_the_stored_secret() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.recorded),
        (Verdict::Passed, Some(true))
    );
    let stored = w.stored(&i.id);
    assert_eq!(stored.last_test.as_ref().map(|t| t.ok), Some(true));
    assert_eq!(report.last_test, stored.last_test);
    assert_eq!(report.caller_arn.as_deref(), Some(USER_ARN));
    assert_eq!(w.account.calls(), [user_call()]);
}

#[tokio::test]
async fn a_failure_is_recorded_as_not_ok() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    w.account
        .answer_caller_identity(Err(aws_error("InvalidClientTokenId", 403)));
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.recorded),
        (Verdict::Failed, Some(true))
    );
    assert_eq!(w.stored(&i.id).last_test.map(|t| t.ok), Some(false));
}

#[tokio::test]
async fn an_outage_is_reported_but_keeps_the_previous_last_test() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let earlier = LastTest {
        at: ago(3600),
        ok: true,
    };
    w.store.edit(&i.id, |r| r.last_test = Some(earlier.clone()));
    w.account
        .answer_caller_identity(Err(AwsFailure::unreachable("connection refused")));
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.recorded),
        (Verdict::Unreachable, Some(false))
    );
    assert_eq!(report.last_test, None);
    assert!(
        report.summary.contains("Not recorded"),
        "{}",
        report.summary
    );
    assert_eq!(w.stored(&i.id).last_test, Some(earlier));
    assert_eq!(w.store.count(Op::RecordTest), 0);
}

#[tokio::test]
async fn a_saved_role_is_assumed_with_its_external_id_and_duration() {
    let w = World::new();
    let i = w
        .saved(json!({
            "aws_assumed_role_name": "InfraKitchenRole",
            "aws_external_id": "ext-123",
            "aws_session_duration": 1800,
            "create_state_bucket": true,
        }))
        .await;
    // The bucket exists and is the account's own: a pass (provisioning adopts it).
    w.account.answer_head_bucket(Ok(HeadBucket::Forbidden));
    w.account.answer_own_buckets(Ok(vec![BUCKET.into()]));
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(report.outcome, Verdict::Passed, "{}", report.summary);
    let calls = w.account.calls();
    assert_eq!(calls[0], user_call());
    assert_eq!(
        calls[1],
        Call::AssumeRole {
            key_id: KEY_ID.into(),
            secret: SECRET.into(),
            role_arn: "arn:aws:iam::123456789012:role/InfraKitchenRole".into(),
            external_id: Some("ext-123".into()),
            duration_seconds: 1800,
        }
    );
    assert!(matches!(&calls[2], Call::CallerIdentity { key_id, .. } if key_id == TEMP_KEY_ID));
    assert!(calls.contains(&Call::OwnBuckets {
        prefix: BUCKET.into()
    }));
    assert_eq!(w.stored(&i.id).last_test.map(|t| t.ok), Some(true));
}

#[tokio::test]
async fn a_bucket_name_owned_elsewhere_fails_the_test() {
    let w = World::new();
    let i = w.saved(json!({"create_state_bucket": true})).await;
    w.account.answer_head_bucket(Ok(HeadBucket::Forbidden));
    w.account.answer_own_buckets(Ok(vec![]));
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(report.outcome, Verdict::Failed);
    assert!(
        report.summary.contains("another AWS account"),
        "{}",
        report.summary
    );
    assert_eq!(w.stored(&i.id).last_test.map(|t| t.ok), Some(false));
}

#[tokio::test]
async fn a_missing_integration_is_not_found_and_aws_is_not_called() {
    let w = World::new();
    let r = w.test_connection().test_saved(&caller(), MISSING).await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert!(w.account.calls().is_empty());
}

#[tokio::test]
async fn a_ciphertext_copied_from_another_record_does_not_open() {
    let w = World::new();
    let a = w.saved(json!({"name": "a"})).await;
    let b = w.saved(json!({"name": "b"})).await;
    w.store
        .edit(&b.id, |r| r.credentials = a.credentials.clone());
    let r = w
        .test_connection()
        .test_saved(&caller(), b.id.as_str())
        .await;
    // Not a retryable outage: new keys are what fixes it.
    match r {
        Err(e @ Error::SecretUnreadable { .. }) => {
            assert!(e.to_string().contains("rotate the keys"), "{e}")
        }
        other => panic!("expected an unreadable secret, got {other:?}"),
    }
    assert!(w.account.calls().is_empty());
    assert_eq!(w.stored(&b.id).last_test, None);
}

#[tokio::test]
async fn a_kms_outage_tests_nothing_and_records_nothing() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    w.sealer.fail_next(1);
    let r = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await;
    assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    assert!(w.account.calls().is_empty());
    assert_eq!(w.store.count(Op::RecordTest), 0);
}

#[tokio::test]
async fn an_unsaved_form_is_tested_without_the_store_or_the_sealer() {
    let w = World::new();
    let report = w
        .test_connection()
        .test_form(&form(json!({})))
        .await
        .unwrap();
    assert_eq!(report.outcome, Verdict::Passed);
    assert_eq!((report.recorded, report.last_test), (None, None));
    assert_eq!(w.account.calls(), [user_call()]);
    assert!(w.store.calls().is_empty());
    assert_eq!((w.sealer.seals(), w.sealer.opens()), (0, 0));
}
