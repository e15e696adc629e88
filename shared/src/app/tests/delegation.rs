//! Role delegation (issue 21) through the use cases: the generated External ID, no secret
//! sealed or opened, switching kind both ways, Test Connection through the platform's
//! principal (with the retries of a denied AssumeRole) and provisioning through the
//! delegated role.

use super::*;
use crate::app::connection::{Outcome as Verdict, Report, Step, StepStatus};
use crate::app::fakes::{aws_error, patch, Call, KEY_ID, SECRET, TEMP_KEY_ID};
use crate::app::fakes::{PLATFORM_ARN, PLATFORM_KEY_ID, PLATFORM_SECRET};
use crate::app::integrations::{IdempotencyRequest, Precondition};
use crate::app::provisioning::Outcome;
use crate::domain::{AuditAction, AuthKind, Credentials, LastTest};
use crate::ports::AwsFailure;
use serde_json::json;
use std::time::Instant;

const ROLE: &str = "InfraKitchenRole";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/InfraKitchenRole";
const NEW_KEY_ID: &str = "AKIAJ2345ABCDEFGHIJK";
const NEW_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";

/// A delegation form with these fields: a role, no keys.
fn delegation(fields: Value) -> Value {
    let mut body = json!({
        "auth": "role_delegation",
        "aws_access_key_id": null,
        "aws_secret_access_key": null,
        "aws_assumed_role_name": ROLE,
    });
    if let (Some(base), Value::Object(extra)) = (body.as_object_mut(), fields) {
        base.extend(extra);
    }
    body
}

async fn delegated(w: &World, fields: Value) -> Integration {
    w.saved(delegation(fields)).await
}

fn external_id(i: &Integration) -> String {
    i.aws_external_id
        .as_ref()
        .expect("a delegation record has an External ID")
        .as_str()
        .to_owned()
}

/// `ik-` and 26 characters of Crockford's base32 (128 bits).
fn assert_generated(ext: &str) {
    let body = ext
        .strip_prefix("ik-")
        .unwrap_or_else(|| panic!("{ext}: not ik-"));
    assert_eq!(body.len(), 26, "{ext}");
    assert!(
        body.chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(c))),
        "{ext}: not Crockford base32"
    );
}

fn step<'a>(r: &'a Report, name: &str) -> &'a Step {
    r.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {:?}", r.steps))
}

fn statuses(r: &Report) -> Vec<(&'static str, StepStatus)> {
    r.steps.iter().map(|s| (s.name, s.status)).collect()
}

/// The platform's AssumeRole into the user's role with this External ID.
fn delegated_assume(ext: &str) -> Call {
    Call::AssumeRole {
        key_id: PLATFORM_KEY_ID.into(),
        secret: PLATFORM_SECRET.into(),
        role_arn: ROLE_ARN.into(),
        external_id: Some(ext.into()),
        duration_seconds: 3600,
    }
}

fn denied() -> AwsFailure {
    aws_error("AccessDenied", 403)
}

#[tokio::test]
async fn each_delegation_create_generates_its_own_external_id_and_seals_nothing() {
    let w = World::new();
    let a = delegated(&w, json!({"name": "a"})).await;
    let b = delegated(&w, json!({"name": "b"})).await;
    let (xa, xb) = (external_id(&a), external_id(&b));
    assert_generated(&xa);
    assert_generated(&xb);
    assert_ne!(xa, xb, "two integrations share an External ID");
    for i in [&a, &b] {
        assert_eq!(w.stored(&i.id), *i);
        assert_eq!(i.credentials, Credentials::RoleDelegation);
        let view = serde_json::to_value(i.view()).unwrap();
        assert_eq!(view["auth"], "role_delegation");
        assert_eq!(view["aws_access_key_id"], Value::Null);
        assert_eq!(view["aws_external_id"], external_id(i).as_str());
    }
    // No secret exists: nothing sealed, and the audit trail sets none.
    assert_eq!((w.sealer.seals(), w.sealer.opens()), (0, 0));
    assert!(!w.trace.rounds().concat().contains(&"Encrypt".to_owned()));
    for e in w.store.audit() {
        assert_eq!(e.action, AuditAction::Created);
        assert!(
            !e.changes.iter().any(|c| c.field == "aws_secret_access_key"),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn an_idempotent_replay_returns_the_first_external_id() {
    let key = || {
        use sha2::Digest as _;
        Some(IdempotencyRequest {
            key: "retry-delegation".into(),
            body_sha256: sha2::Sha256::digest(b"the same body").into(),
        })
    };
    let w = World::new();
    let first = match w
        .integrations
        .create(&caller(), form(delegation(json!({}))), key())
        .await
    {
        Ok(Created::New(i)) => i,
        other => panic!("{other:?}"),
    };
    let retry = w
        .integrations
        .create(&caller(), form(delegation(json!({}))), key())
        .await;
    let Ok(Created::Replayed(response)) = retry else {
        panic!("expected a replay, got {retry:?}");
    };
    let replayed: Value = serde_json::from_str(&response).unwrap();
    assert_eq!(replayed["aws_external_id"], external_id(&first).as_str());
    assert_eq!(replayed["id"], first.id.as_str());
    // The retry's own (fresh) External ID was never stored.
    assert_eq!(w.stored(&first.id), *first);
    assert_eq!(w.store.count(crate::app::fakes::Op::Create), 2);
    assert_eq!(w.sealer.seals(), 0);
}

#[tokio::test]
async fn switching_to_delegation_destroys_the_key_and_ciphertext_and_audits_it() {
    let w = World::new();
    let i = w.saved(json!({"aws_assumed_role_name": ROLE})).await;
    let ciphertext = i.credentials.sealed().expect("sealed").0.clone();
    let next = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::None,
            patch(json!({"auth": "role_delegation"})),
        )
        .await
        .unwrap();
    let stored = w.stored(&i.id);
    assert_eq!(stored, next);
    assert_eq!(stored.credentials, Credentials::RoleDelegation);
    assert_eq!(stored.credentials.kind(), AuthKind::RoleDelegation);
    assert_generated(&external_id(&stored));
    // The only seal was the create's; nothing was opened to switch.
    assert_eq!((w.sealer.seals(), w.sealer.opens()), (1, 0));

    let event = w.store.audit().pop().expect("an audit event");
    assert_eq!(event.action, AuditAction::Updated);
    let detail = event.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("access_keys to role_delegation") && detail.contains("destroyed"),
        "{detail}"
    );
    let change = |field: &str| {
        event
            .changes
            .iter()
            .find(|c| c.field == field)
            .unwrap_or_else(|| panic!("no change of {field}: {event:?}"))
            .clone()
    };
    let secret = change("aws_secret_access_key");
    assert_eq!(
        (secret.from, secret.to),
        (json!("(set)"), json!("(destroyed)"))
    );
    let key = change("aws_access_key_id");
    assert_eq!(key.to, Value::Null);
    // No secret in the event: not the secret, the full key id, nor the ciphertext.
    let text = serde_json::to_string(&event).unwrap();
    let sealed_text = String::from_utf8_lossy(&ciphertext).into_owned();
    use base64::Engine as _;
    let sealed_b64 = base64::engine::general_purpose::STANDARD.encode(&ciphertext);
    for leak in [SECRET, KEY_ID, sealed_text.as_str(), sealed_b64.as_str()] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}

#[tokio::test]
async fn switching_to_delegation_needs_a_role_and_keeps_the_keys_when_refused() {
    let w = World::new();
    let i = w.saved(json!({})).await;
    let r = w
        .integrations
        .update(
            &caller(),
            i.id.as_str(),
            Precondition::None,
            patch(json!({"auth": "role_delegation"})),
        )
        .await;
    match r {
        Err(Error::Validation(errors)) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["aws_assumed_role_name"], "{errors:?}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(w.stored(&i.id), i, "a refused switch leaves the record");
    assert_eq!(opened(&w, &i).await, SECRET);
}

#[tokio::test]
async fn switching_back_to_keys_needs_both_and_seals_the_new_ones() {
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    let who = caller();
    let update = |body: Value| {
        w.integrations
            .update(&who, i.id.as_str(), Precondition::None, patch(body))
    };
    match update(json!({"auth": "access_keys"})).await {
        Err(Error::Validation(errors)) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["aws_access_key_id", "aws_secret_access_key"]);
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(w.sealer.seals(), 0);
    update(
        json!({"auth": "access_keys", "aws_access_key_id": NEW_KEY_ID,
                  "aws_secret_access_key": NEW_SECRET}),
    )
    .await
    .unwrap();
    let stored = w.stored(&i.id);
    assert_eq!(stored.credentials.kind(), AuthKind::AccessKeys);
    assert_eq!(stored.credentials.key_id().unwrap(), NEW_KEY_ID);
    assert_eq!(opened(&w, &stored).await, NEW_SECRET);
    assert_eq!(w.sealer.seals(), 1);
    // The generated External ID went with the delegation.
    assert_eq!(stored.aws_external_id, None);
    let event = w.store.audit().pop().expect("an audit event");
    assert!(event
        .changes
        .iter()
        .any(|c| c.field == "aws_secret_access_key"
            && c.from == Value::Null
            && c.to == json!("(set)")));
    assert!(!serde_json::to_string(&event).unwrap().contains(NEW_SECRET));
}

#[tokio::test]
async fn a_delegation_test_goes_platform_then_role_then_identity_and_bucket() {
    let w = World::new();
    let i = delegated(&w, json!({"create_state_bucket": true})).await;
    let ext = external_id(&i);
    let report = w
        .test_connection()
        .test_saved(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(report.outcome, Verdict::Passed, "{}", report.summary);
    assert_eq!(
        statuses(&report),
        [
            ("platform", StepStatus::Passed),
            ("assume_role", StepStatus::Passed),
            ("role_identity", StepStatus::Passed),
            ("state_bucket", StepStatus::Passed),
        ]
    );
    assert!(step(&report, "platform").detail.contains(PLATFORM_ARN));
    assert_eq!(step(&report, "assume_role").attempts, None, "ran once");
    // AssumeRole with the platform's session and the integration's External ID; the
    // role's credentials then show the identity and look at the bucket.
    let calls = w.account.calls();
    assert_eq!(calls[0], delegated_assume(&ext));
    assert!(
        matches!(&calls[1], Call::CallerIdentity { key_id, .. } if key_id == TEMP_KEY_ID),
        "{calls:?}"
    );
    assert_eq!(
        w.account.ops()[1..]
            .iter()
            .filter(|o| o.contains("Bucket"))
            .count(),
        2,
        "HeadBucket and ListBuckets: {calls:?}"
    );
    assert_eq!(w.platform.sessions(), 1);
    assert_eq!(
        (report.recorded, w.stored(&i.id).last_test.map(|t| t.ok)),
        (Some(true), Some(true))
    );
    // Never a user secret: nothing opened, no key id anywhere in the calls.
    assert_eq!(w.sealer.opens(), 0);
    assert!(!format!("{calls:?}").contains(KEY_ID));
}

#[tokio::test]
async fn a_denied_assume_role_is_retried_with_back_off_until_the_trust_policy_applies() {
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    let ext = external_id(&i);
    w.account.answer_assume_role(Err(denied()));
    w.account.answer_assume_role(Err(denied()));
    let base = Duration::from_millis(20);
    let tc = TestConnection {
        integrations: w.integrations.clone(),
        tester: w.tester().with_retry_base(base),
    };
    let started = Instant::now();
    let report = tc.test_saved(&caller(), i.id.as_str()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome, Verdict::Passed, "{}", report.summary);
    let s = step(&report, "assume_role");
    assert_eq!(s.attempts, Some(3));
    assert!(s.detail.contains("after 3 attempts"), "{}", s.detail);
    // Waited 20 then 40 ms between the three calls (doubling), not more.
    assert!(took >= base * 3, "no back-off: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(
        w.account.calls()[..3],
        [
            delegated_assume(&ext),
            delegated_assume(&ext),
            delegated_assume(&ext)
        ]
    );
    assert_eq!(
        w.platform.sessions(),
        1,
        "one platform session for all tries"
    );
    assert_eq!(w.stored(&i.id).last_test.map(|t| t.ok), Some(true));
}

#[tokio::test]
async fn a_role_that_keeps_refusing_fails_after_the_attempts_naming_the_condition() {
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    let ext = external_id(&i);
    for _ in 0..10 {
        w.account.answer_assume_role(Err(denied()));
    }
    let tc = TestConnection {
        integrations: w.integrations.clone(),
        tester: w.tester().with_retry_base(Duration::from_millis(5)),
    };
    let report = tc.test_saved(&caller(), i.id.as_str()).await.unwrap();
    assert_eq!(report.outcome, Verdict::Failed);
    let s = step(&report, "assume_role");
    assert_eq!(s.status, StepStatus::Failed);
    assert_eq!(s.aws_error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(
        s.attempts,
        Some(crate::app::connection::DELEGATION_ATTEMPTS)
    );
    let hint = s.hint.clone().unwrap_or_default();
    assert!(
        hint.contains(&format!("sts:ExternalId = \"{ext}\"")) && hint.contains(PLATFORM_ARN),
        "{hint}"
    );
    let trust = &s.policies.as_ref().expect("policies")["role_trust_policy"]["Statement"][0];
    assert_eq!(trust["Principal"]["AWS"], PLATFORM_ARN);
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        ext.as_str()
    );
    assert_eq!(step(&report, "role_identity").status, StepStatus::Skipped);
    assert_eq!(
        w.account.ops(),
        vec!["AssumeRole"; crate::app::connection::DELEGATION_ATTEMPTS as usize]
    );
    // The user's setup is wrong: recorded against the integration.
    assert_eq!(report.recorded, Some(true));
    assert_eq!(w.stored(&i.id).last_test.map(|t| t.ok), Some(false));
}

/// A wait that would not leave the later steps their reserve inside the 18 s budget is
/// never started: the denial is the answer at once.
#[tokio::test]
async fn no_retry_waits_past_the_budget() {
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    w.account.answer_assume_role(Err(denied()));
    let tc = TestConnection {
        integrations: w.integrations.clone(),
        tester: w.tester().with_retry_base(Duration::from_secs(15)),
    };
    let started = Instant::now();
    let report = tc.test_saved(&caller(), i.id.as_str()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "it waited");
    let s = step(&report, "assume_role");
    assert_eq!((s.status, s.attempts), (StepStatus::Failed, None), "{s:?}");
    assert_eq!(w.account.ops(), ["AssumeRole"]);
}

/// Only a denial is retried: an outage is `unreachable` at once and not recorded.
#[tokio::test]
async fn an_sts_outage_on_the_role_is_not_retried_nor_recorded() {
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    w.account
        .answer_assume_role(Err(AwsFailure::unreachable("connection refused")));
    let tc = TestConnection {
        integrations: w.integrations.clone(),
        tester: w.tester().with_retry_base(Duration::from_millis(5)),
    };
    let report = tc.test_saved(&caller(), i.id.as_str()).await.unwrap();
    assert_eq!(report.outcome, Verdict::Unreachable);
    assert_eq!(step(&report, "assume_role").attempts, None);
    assert_eq!(w.account.ops(), ["AssumeRole"]);
    assert_eq!(report.recorded, Some(false));
}

/// The platform's own principal failing is the operator's problem: `unreachable`, the
/// user's role never asked, and the integration's last test kept as it was.
#[tokio::test]
async fn a_platform_principal_failure_is_unreachable_and_not_held_against_the_user() {
    for failure in [
        denied(),
        aws_error("InvalidClientTokenId", 403),
        AwsFailure::unreachable("connection refused"),
    ] {
        let w = World::new();
        let i = delegated(&w, json!({"create_state_bucket": true})).await;
        let earlier = LastTest {
            at: ago(3600),
            ok: true,
        };
        w.store.edit(&i.id, |r| r.last_test = Some(earlier.clone()));
        w.platform.answer(Err(failure.clone()));
        let report = w
            .test_connection()
            .test_saved(&caller(), i.id.as_str())
            .await
            .unwrap();
        assert_eq!(report.outcome, Verdict::Unreachable, "{failure:?}");
        assert_eq!(step(&report, "platform").status, StepStatus::Unreachable);
        for later in ["assume_role", "role_identity"] {
            assert_eq!(step(&report, later).status, StepStatus::Skipped);
        }
        assert!(w.account.calls().is_empty(), "the user's role was asked");
        assert_eq!(report.recorded, Some(false));
        assert_eq!(w.stored(&i.id).last_test, Some(earlier));
        assert_eq!(w.store.count(crate::app::fakes::Op::RecordTest), 0);
    }
    // A function built without the platform's principal says so, the same way.
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    let tc = TestConnection {
        integrations: w.integrations.clone(),
        tester: ConnectionTester::new(w.account.clone(), w.account.clone()),
    };
    let report = tc.test_saved(&caller(), i.id.as_str()).await.unwrap();
    assert_eq!(report.outcome, Verdict::Unreachable);
    assert_eq!(
        step(&report, "platform").aws_error_code.as_deref(),
        Some("NotConfigured")
    );
    assert_eq!(report.recorded, Some(false));
}

#[tokio::test]
async fn a_delegated_bucket_is_provisioned_through_the_role_without_a_secret() {
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    let ext = external_id(&i);
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(60)));
    let outcome = w.provisioner().provision(i.id.as_str()).await.unwrap();
    assert_eq!(outcome, Outcome::Ready);
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
    let calls = w.account.calls();
    assert_eq!(calls[0], delegated_assume(&ext));
    assert!(
        matches!(&calls[1], Call::CreateBucket { key_id, .. } if key_id == TEMP_KEY_ID),
        "the bucket is created with the role's session: {calls:?}"
    );
    assert_eq!(w.platform.sessions(), 1);
    assert_eq!((w.sealer.seals(), w.sealer.opens()), (0, 0));
}

#[tokio::test]
async fn a_delegated_bucket_fails_naming_the_trust_policy_or_the_platform() {
    // The role refuses: the reason names the principal and the External ID condition.
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    let ext = external_id(&i);
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(60)));
    w.account.answer_assume_role(Err(denied()));
    let Outcome::Failed(why) = w.provisioner().provision(i.id.as_str()).await.unwrap() else {
        panic!("expected a failure");
    };
    assert!(
        why.contains(PLATFORM_ARN) && why.contains(&format!("sts:ExternalId = \"{ext}\"")),
        "{why}"
    );
    assert_eq!(w.account.ops(), ["AssumeRole"]);

    // The platform's principal cannot act: not the user's role, and nothing called.
    let w = World::new();
    let i = delegated(&w, json!({})).await;
    w.store
        .set_state_bucket(&i.id, bucket(BucketStatus::Pending, &ago(60)));
    w.platform.answer(Err(denied()));
    let Outcome::Failed(why) = w.provisioner().provision(i.id.as_str()).await.unwrap() else {
        panic!("expected a failure");
    };
    assert!(why.contains("not a problem with your role"), "{why}");
    assert!(w.account.calls().is_empty());
    assert_eq!(w.sealer.opens(), 0);
}
