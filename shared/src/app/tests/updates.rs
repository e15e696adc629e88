//! `Integrations::update`: renames, preconditions, lost races, key rotation, and what
//! a change may and may not do.

use super::*;
use crate::app::fakes::{patch, Op};
use crate::app::integrations::Precondition;
use crate::domain::LastTest;
use crate::error::Error;
use serde_json::json;

const NEW_KEY_ID: &str = "AKIAJ2345ABCDEFGHIJK";
const NEW_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";

#[tokio::test]
async fn a_rename_moves_the_name() {
    let w = World::new();
    let i = w.saved(json!({"name": "aws-production"})).await;
    let next = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::None,
            patch(json!({"name": "aws-staging"})),
        )
        .await
        .unwrap();
    assert_eq!((next.name.as_str(), next.revision), ("aws-staging", 2));
    assert_eq!(w.stored(&i.id), next);
    // The old name is free again; the new one is taken, in any case.
    w.saved(json!({"name": "aws-production"})).await;
    let taken = w
        .integrations
        .create(&caller(), form(json!({"name": "AWS-STAGING"})), None)
        .await;
    assert_name_conflict(taken);
}

#[tokio::test]
async fn a_rename_to_a_taken_name_is_a_conflict_and_changes_nothing() {
    let w = World::new();
    w.saved(json!({"name": "aws-production"})).await;
    let b = w.saved(json!({"name": "aws-staging"})).await;
    let r = w
        .integrations
        .update(
            &caller(),
            b.id.as_str(),
            Precondition::None,
            patch(json!({"name": "Aws-Production"})),
        )
        .await;
    assert_name_conflict(r);
    assert_eq!(w.stored(&b.id), b);
}

#[tokio::test]
async fn if_match_on_another_revision_fails_with_the_current_one() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let r = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::Revision(7),
            patch(json!({"description": "x"})),
        )
        .await;
    assert!(
        matches!(r, Err(Error::PreconditionFailed { current: 1 })),
        "{r:?}"
    );
    assert_eq!(w.store.count(Op::Update), 0);
}

/// Another writer changes the record between the update's read and its write.
fn lose_the_race(w: &World, id: impl AsRef<str>) {
    let id = id.as_ref().to_owned();
    w.store
        .before_next(Op::Update, move |t| t.edit(&id, |r| r.revision = 5));
}

#[tokio::test]
async fn a_lost_race_with_if_match_names_the_revision_current_now() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    lose_the_race(&w, &i.id);
    let r = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::Revision(1),
            patch(json!({"description": "x"})),
        )
        .await;
    assert!(
        matches!(r, Err(Error::PreconditionFailed { current: 5 })),
        "{r:?}"
    );
    assert_eq!(w.stored(&i.id).description, None);
}

#[tokio::test]
async fn a_lost_race_without_if_match_is_a_conflict() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    lose_the_race(&w, &i.id);
    let r = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::None,
            patch(json!({"description": "x"})),
        )
        .await;
    assert!(
        matches!(r, Err(Error::Conflict { field: None, .. })),
        "{r:?}"
    );
    assert_eq!(w.stored(&i.id).description, None);
}

#[tokio::test]
async fn a_lost_race_with_a_delete_is_not_found() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let id = i.id.clone();
    w.store.before_next(Op::Update, move |t| t.remove(&id));
    let r = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::Any,
            patch(json!({"description": "x"})),
        )
        .await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
}

#[tokio::test]
async fn an_update_keeps_the_test_and_bucket_written_meanwhile() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let id = i.id.clone();
    let ready = bucket(BucketStatus::Ready, &ago(1));
    let (test, b) = (
        LastTest {
            at: ago(1),
            ok: true,
        },
        ready.clone(),
    );
    w.store.before_next(Op::Update, move |t| {
        t.edit(&id, |r| {
            (r.last_test, r.state_bucket) = (Some(test), Some(b))
        })
    });
    w.integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::None,
            patch(json!({"name": "renamed"})),
        )
        .await
        .unwrap();
    let stored = w.stored(&i.id);
    assert_eq!(stored.name, "renamed");
    assert_eq!(
        (stored.last_test.map(|t| t.ok), stored.state_bucket),
        (Some(true), Some(ready))
    );
}

#[tokio::test]
async fn rotating_keys_reseals_the_new_secret() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let body = json!({"aws_access_key_id": NEW_KEY_ID, "aws_secret_access_key": NEW_SECRET});
    w.integrations
        .update(&caller(), i.id.as_str(), Precondition::Any, patch(body))
        .await
        .unwrap();
    let stored = w.stored(&i.id);
    assert_eq!(stored.credentials.key_id().unwrap(), NEW_KEY_ID);
    assert_eq!(opened(&w, &stored).await, NEW_SECRET);
    assert_eq!(w.sealer.seals(), 2);
}

#[tokio::test]
async fn an_external_id_without_a_role_is_refused() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let r = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::None,
            patch(json!({"aws_external_id": "ext-123"})),
        )
        .await;
    match r {
        Err(Error::Validation(errors)) => assert_eq!(errors[0].field, "aws_external_id"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(w.store.count(Op::Update), 0);
}

#[tokio::test]
async fn turning_the_bucket_on_queues_a_pending_one() {
    let w = World::new();
    let i = w.saved(json!({"aws_default_region": "eu-central-1"})).await;
    let on = patch(json!({"create_state_bucket": true}));
    let next = w
        .integrations
        .update(&caller(), i.id.as_str(), Precondition::None, on)
        .await
        .unwrap();
    let b = w.bucket_of(&i.id);
    assert_eq!(
        (b.status, b.region.as_str()),
        (BucketStatus::Pending, "eu-central-1")
    );
    assert!(w.stored(&i.id).create_state_bucket);
    assert_eq!(b.status_changed_at, Some(next.updated_at));
}

#[tokio::test]
async fn turning_the_bucket_on_keeps_a_bucket_set_meanwhile() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let (id, ready) = (i.id.clone(), bucket(BucketStatus::Ready, &ago(1)));
    let b = ready.clone();
    w.store.before_next(Op::Update, move |t| {
        t.edit(&id, |r| r.state_bucket = Some(b))
    });
    let on = patch(json!({"create_state_bucket": true}));
    let r = w
        .integrations
        .update(&caller(), i.id.as_str(), Precondition::None, on)
        .await;
    // The write lost to one that left the revision alone: it is applied again on the
    // fresh record, which keeps the bucket that is there (never a second pending one).
    let updated = r.unwrap();
    assert_eq!((updated.revision, updated.create_state_bucket), (2, true));
    let stored = w.stored(&i.id);
    assert_eq!((stored.revision, stored.state_bucket), (2, Some(ready)));
    assert_eq!(
        w.store.count(Op::Update),
        2,
        "one lost write, one that landed"
    );
}
