//! `Integrations`: create, get, list, delete and record a test.

use super::*;
use crate::app::connection::Outcome as Verdict;
use crate::app::fakes::{Op, SECRET};
use crate::app::integrations::{IdempotencyRequest, Precondition};
use crate::error::{Dependency, Error};
use crate::ports::ListQuery;
use serde_json::json;

/// The idempotency key `retry-1` for a request whose body hashes to `body` (the
/// fingerprint is keyed from it by the use case).
fn key(body: &str) -> Option<IdempotencyRequest> {
    use sha2::Digest as _;
    Some(IdempotencyRequest {
        key: "retry-1".into(),
        body_sha256: sha2::Sha256::digest(body.as_bytes()).into(),
    })
}

/// The names of every stored integration, as a listing gives them.
async fn names(w: &World) -> Vec<String> {
    let all = ListQuery {
        filter: Default::default(),
        label: None,
        limit: 100,
        next_token: None,
    };
    let page = w.integrations.list(&caller(), all.clone()).await.unwrap();
    page.items.into_iter().map(|i| i.name.into()).collect()
}

#[tokio::test]
async fn create_stores_the_record_with_its_secret_sealed_to_it() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    assert_eq!(w.stored(&i.id), i);
    assert_eq!((i.revision, i.created_by.as_str()), (1, "user-1"));
    assert_eq!((i.create_state_bucket, &i.state_bucket), (false, &None));
    let ciphertext = String::from_utf8_lossy(&i.credentials.sealed().unwrap().0).into_owned();
    assert!(
        !ciphertext.contains(SECRET),
        "the secret is stored in clear"
    );
    assert_eq!(opened(&w, &i).await, SECRET);
}

#[tokio::test]
async fn a_name_taken_in_another_case_is_a_conflict_on_name() {
    let w = World::new();
    w.saved(json!({"name": "aws-production"})).await;
    let again = w
        .integrations
        .create(&caller(), form(json!({"name": "AWS-Production"})), None)
        .await;
    assert_name_conflict(again);
    assert_eq!(names(&w).await, ["aws-production"]);
}

#[tokio::test]
async fn a_retried_create_replays_the_first_response() {
    let w = World::new();
    let first = match w
        .integrations
        .create(&caller(), form(json!({})), key("fp-1"))
        .await
    {
        Ok(Created::New(i)) => i,
        other => panic!("{other:?}"),
    };
    let retry = w
        .integrations
        .create(&caller(), form(json!({})), key("fp-1"))
        .await;
    let Ok(Created::Replayed(response)) = retry else {
        panic!("expected a replay, got {retry:?}");
    };
    assert_eq!(response, serde_json::to_string(&first.view()).unwrap());
    assert_eq!(names(&w).await, ["aws-production"]);
}

#[tokio::test]
async fn the_same_key_for_another_request_is_refused() {
    let w = World::new();
    w.integrations
        .create(&caller(), form(json!({})), key("fp-1"))
        .await
        .unwrap();
    let other = form(json!({"name": "aws-staging"}));
    let reused = w.integrations.create(&caller(), other, key("fp-2")).await;
    assert!(
        matches!(reused, Err(Error::IdempotencyKeyReused)),
        "{reused:?}"
    );
    assert_eq!(names(&w).await, ["aws-production"]);
}

#[tokio::test]
async fn a_sealer_outage_fails_the_create_and_stores_nothing() {
    let w = World::new();
    w.sealer.fail_next(1);
    let r = w
        .integrations
        .create(&caller(), form(json!({})), None)
        .await;
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
    assert_eq!(w.store.count(Op::Create), 0);
    assert!(names(&w).await.is_empty());
}

#[tokio::test]
async fn asking_for_a_bucket_on_create_queues_a_pending_one() {
    let w = World::new();
    let i = w
        .saved(json!({"create_state_bucket": true, "aws_default_region": "eu-west-1"}))
        .await;
    let b = w.bucket_of(&i.id);
    assert_eq!(b.name, "infrakitchen-123456789012-bucket");
    assert_eq!(
        (b.status, b.region.as_str()),
        (BucketStatus::Pending, "eu-west-1")
    );
    assert_eq!((b.attempts, b.status_changed_at), (0, Some(i.created_at)));
}

#[tokio::test]
async fn an_id_that_is_not_a_ulid_is_not_found_without_a_read() {
    let w = World::new();
    let r = w.integrations.get(&caller(), "not-an-id").await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert!(w.store.calls().is_empty());
}

#[tokio::test]
async fn a_missing_integration_is_not_found() {
    let w = World::new();
    let r = w.integrations.get(&caller(), MISSING).await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert_eq!(w.store.calls(), [Op::Get]);
}

#[tokio::test]
async fn list_is_sorted_by_name_filtered_by_label_and_paged() {
    let w = World::new();
    w.saved(json!({"name": "b-two", "labels": ["prod"]})).await;
    w.saved(json!({"name": "A-one", "labels": ["prod"]})).await;
    w.saved(json!({"name": "c-three"})).await;
    let mut q = ListQuery {
        filter: Default::default(),
        label: Some("prod".into()),
        limit: 1,
        next_token: None,
    };
    let first = w.integrations.list(&caller(), q.clone()).await.unwrap();
    assert_eq!(first.items[0].name, "A-one");
    q.next_token = first.next_token;
    let second = w.integrations.list(&caller(), q.clone()).await.unwrap();
    assert_eq!(
        (second.items[0].name.as_str(), second.next_token),
        ("b-two", None)
    );
    // A token is only good for the listing it came from.
    q.label = None;
    let r = w.integrations.list(&caller(), q.clone()).await;
    assert!(matches!(r, Err(Error::Validation(_))), "{r:?}");
}

#[tokio::test]
async fn delete_removes_the_record_and_frees_its_name() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    w.integrations
        .delete(&caller(), i.id.as_str(), Precondition::Revision(1))
        .await
        .unwrap();
    assert_eq!(w.store.record(&i.id), None);
    w.saved(json!({})).await;
}

#[tokio::test]
async fn delete_with_a_stale_revision_fails_with_the_current_one() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let r = w
        .integrations
        .delete(&caller(), i.id.as_str(), Precondition::Revision(3))
        .await;
    assert!(
        matches!(r, Err(Error::PreconditionFailed { current: 1 })),
        "{r:?}"
    );
    // And when another write lands between the read and the delete.
    let id = i.id.clone();
    w.store
        .before_next(Op::Delete, move |t| t.edit(&id, |r| r.revision = 2));
    let r = w
        .integrations
        .delete(&caller(), i.id.as_str(), Precondition::Revision(1))
        .await;
    assert!(
        matches!(r, Err(Error::PreconditionFailed { current: 2 })),
        "{r:?}"
    );
    assert!(w.store.record(&i.id).is_some());
}

#[tokio::test]
async fn deleting_a_missing_integration_is_not_found() {
    let w = World::new();
    let r = w
        .integrations
        .delete(&caller(), MISSING, Precondition::None)
        .await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert_eq!(w.store.count(Op::Delete), 0);
}

#[tokio::test]
async fn passed_and_failed_tests_are_recorded() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    for (verdict, ok) in [(Verdict::Passed, true), (Verdict::Failed, false)] {
        let recorded = w
            .integrations
            .record_test(&caller(), &i, verdict, None)
            .await
            .unwrap();
        assert_eq!(recorded.as_ref().map(|t| t.ok), Some(ok));
        assert_eq!(w.stored(&i.id).last_test, recorded);
    }
    assert_eq!(
        w.stored(&i.id).revision,
        1,
        "a test result is not a revision"
    );
}

#[tokio::test]
async fn an_unreachable_test_is_not_recorded() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let before = w
        .integrations
        .record_test(&caller(), &i, Verdict::Passed, None)
        .await
        .unwrap();
    let r = w
        .integrations
        .record_test(&caller(), &i, Verdict::Unreachable, None)
        .await;
    assert_eq!(r.unwrap(), None);
    assert_eq!(w.store.count(Op::RecordTest), 1);
    assert_eq!(w.stored(&i.id).last_test, before);
}
