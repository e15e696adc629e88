//! Tenant isolation and the audit trail, through the use cases: who sees, uses and
//! manages which integration, and what each change leaves in the history.

use super::*;
use crate::app::connection::Outcome as Verdict;
use crate::app::fakes::{patch, SECRET};
use crate::app::integrations::Precondition;
use crate::domain::{AuditAction, GroupName};
use crate::ports::{HistoryQuery, ListQuery};
use serde_json::json;

fn group(g: &str) -> GroupName {
    GroupName::parse(g).unwrap()
}

fn alice() -> Caller {
    Caller::user("alice", vec![group("team-x")])
}
fn bob() -> Caller {
    Caller::user("bob", vec![group("team-y")])
}
/// In alice's team, not the owner.
fn carol() -> Caller {
    Caller::user("carol", vec![group("team-x")])
}

fn all() -> ListQuery {
    ListQuery {
        filter: Default::default(),
        label: None,
        limit: 100,
        next_token: None,
    }
}

fn history() -> HistoryQuery {
    HistoryQuery {
        limit: 100,
        next_token: None,
    }
}

async fn create_as(w: &World, who: &Caller, fields: Value) -> Integration {
    match w.integrations.create(who, form(fields), None).await {
        Ok(Created::New(i)) => *i,
        other => panic!("create failed: {other:?}"),
    }
}

async fn names_seen_by(w: &World, who: &Caller) -> Vec<String> {
    let page = w.integrations.list(who, all()).await.unwrap();
    page.items.into_iter().map(|i| i.name.into()).collect()
}

fn not_found<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
}

#[tokio::test]
async fn others_get_404_on_every_use_case_and_group_members_may_use_but_not_manage() {
    let w = World::new();
    let a = create_as(
        &w,
        &alice(),
        json!({"name": "alice-prod", "shared_with": ["team-x"]}),
    )
    .await;
    let b = create_as(&w, &bob(), json!({"name": "bob-prod"})).await;
    assert_eq!(a.created_by, "alice");
    let id = a.id.as_str();

    // Bob: alice's integration does not exist for him, whatever he does.
    assert_eq!(names_seen_by(&w, &bob()).await, ["bob-prod"]);
    not_found(w.integrations.get(&bob(), id).await);
    not_found(
        w.integrations
            .update(&bob(), id, Precondition::None, patch(json!({"name": "x"})))
            .await,
    );
    not_found(w.integrations.delete(&bob(), id, Precondition::None).await);
    not_found(w.integrations.history(&bob(), id, &history()).await);
    not_found(w.test_connection().test_saved(&bob(), id).await);
    not_found(w.provisioner().request(&bob(), id).await);
    not_found(w.provisioner().status(&bob(), id).await);
    assert_eq!(
        w.store.record(id).unwrap().name,
        "alice-prod",
        "nothing changed"
    );

    // Carol (team-x) sees, tests and reads it, but may not change or delete it.
    assert_eq!(names_seen_by(&w, &carol()).await, ["alice-prod"]);
    assert_eq!(w.integrations.get(&carol(), id).await.unwrap().id, a.id);
    w.test_connection().test_saved(&carol(), id).await.unwrap();
    w.provisioner().request(&carol(), id).await.unwrap();
    let r = w
        .integrations
        .update(
            &carol(),
            id,
            Precondition::None,
            patch(json!({"name": "x"})),
        )
        .await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");
    let r = w
        .integrations
        .delete(&carol(), id, Precondition::None)
        .await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");

    // Admins and services see and manage everything.
    for who in [
        Caller::admin("root", vec![group("admins")]),
        Caller::service("arn:aws:iam::111122223333:role/platform"),
    ] {
        assert_eq!(names_seen_by(&w, &who).await, ["alice-prod", "bob-prod"]);
        w.integrations.get(&who, b.id.as_str()).await.unwrap();
    }
    let admin = Caller::admin("root", vec![]);
    let renamed = w
        .integrations
        .update(
            &admin,
            b.id.as_str(),
            Precondition::None,
            patch(json!({"description": "checked"})),
        )
        .await
        .unwrap();
    assert_eq!(
        renamed.created_by, "bob",
        "an admin's change keeps the owner"
    );

    // The owner stops sharing: carol no longer sees it.
    w.integrations
        .update(
            &alice(),
            id,
            Precondition::None,
            patch(json!({"shared_with": []})),
        )
        .await
        .unwrap();
    not_found(w.integrations.get(&carol(), id).await);
    assert!(names_seen_by(&w, &carol()).await.is_empty());
}

#[tokio::test]
async fn every_change_leaves_an_audit_event_newest_first_and_none_holds_a_secret() {
    let w = World::new();
    let owner = alice();
    let i = create_as(&w, &owner, json!({"name": "audited"})).await;
    let id = i.id.as_str();
    w.integrations
        .update(
            &owner,
            id,
            Precondition::None,
            patch(json!({"name": "audited-2", "labels": ["prod"]})),
        )
        .await
        .unwrap();
    let other_secret = "Zz9yXwVuTsRqPoNmLkJiHgFeDcBa0123456789+/";
    w.integrations
        .update(&owner, id, Precondition::None, patch(json!({"aws_access_key_id": "AKIAIOSFODNN7OTHERAB", "aws_secret_access_key": other_secret})))
        .await
        .unwrap();
    let current = w.store.record(id).unwrap();
    w.integrations
        .record_test(&carol(), &current, Verdict::Passed, None)
        .await
        .unwrap();
    // A test that could not reach AWS records nothing, so it leaves no event either.
    w.integrations
        .record_test(&owner, &current, Verdict::Unreachable, None)
        .await
        .unwrap();
    w.provisioner().request(&owner, id).await.unwrap();
    w.provisioner().provision(id).await.unwrap();
    // A change that fails writes nothing, event included.
    create_as(&w, &owner, json!({"name": "taken"})).await;
    let r = w
        .integrations
        .update(
            &owner,
            id,
            Precondition::None,
            patch(json!({"name": "TAKEN"})),
        )
        .await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    w.integrations
        .delete(&owner, id, Precondition::None)
        .await
        .unwrap();

    let admin = Caller::admin("root", vec![]);
    let page = w
        .integrations
        .history(&admin, id, &history())
        .await
        .unwrap();
    let actions: Vec<AuditAction> = page.events.iter().map(|e| e.action).collect();
    use AuditAction::*;
    assert_eq!(
        actions,
        [
            Deleted,
            BucketReady,
            BucketRequested,
            Tested,
            KeysRotated,
            Updated,
            Created
        ]
    );
    let by = |a: AuditAction| page.events.iter().find(|e| e.action == a).unwrap();
    assert_eq!(
        (by(Tested).actor.as_str(), by(Tested).detail.as_deref()),
        ("carol", Some("passed"))
    );
    assert_eq!(
        by(BucketReady).actor_kind,
        crate::domain::CallerKind::System
    );
    let fields =
        |a: AuditAction| -> Vec<String> { by(a).changes.iter().map(|c| c.field.clone()).collect() };
    // In the order of the view's fields.
    assert_eq!(fields(Updated), ["name", "labels"]);
    assert_eq!(
        fields(KeysRotated),
        ["aws_access_key_id", "aws_secret_access_key"]
    );
    let rename = &by(Updated).changes[0];
    assert_eq!(
        (rename.from.as_str(), rename.to.as_str()),
        (Some("audited"), Some("audited-2"))
    );
    assert!(fields(Created).contains(&"aws_account_id".to_string()));

    // No secret, no ciphertext, no whole key id in any event.
    let text = serde_json::to_string(&w.store.audit()).unwrap();
    for secret in [
        SECRET,
        other_secret,
        "AKIAIOSFODNN7OTHERAB",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(!text.contains(secret), "{secret} in the audit trail");
    }

    // After the delete only callers who see everything can read it; pages chain.
    not_found(w.integrations.history(&owner, id, &history()).await);
    let first = w
        .integrations
        .history(
            &admin,
            id,
            &HistoryQuery {
                limit: 4,
                next_token: None,
            },
        )
        .await
        .unwrap();
    let rest = w
        .integrations
        .history(
            &admin,
            id,
            &HistoryQuery {
                limit: 4,
                next_token: first.next_token.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (first.events.len(), rest.events.len(), rest.next_token),
        (4, 3, None)
    );
    assert!(first.events[3].event_id > rest.events[0].event_id);
    not_found(w.integrations.history(&admin, MISSING, &history()).await);
    let calls = w.store.count(crate::app::fakes::Op::History);
    not_found(
        w.integrations
            .history(&admin, &"x".repeat(3000), &history())
            .await,
    );
    assert_eq!(
        w.store.count(crate::app::fakes::Op::History),
        calls,
        "a non-id never reaches the store"
    );
}
