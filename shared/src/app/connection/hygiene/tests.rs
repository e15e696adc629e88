//! Credential hygiene on the fakes: root keys, the key's age and last use, refused and
//! failed IAM calls, the policy simulation, and what it costs in rounds.

use crate::app::connection::{
    is_root_arn, Auth, ConnectionTester, ConnectionUnderTest, Outcome, Report, StepStatus,
    WarningCode,
};
use crate::app::fakes::{aws_error, Call, FakeAccount, FakePlatform, Trace, TEMP_KEY_ID, USER_ARN};
use crate::domain::{AccountId, ExternalId, Region, RoleName, SessionDuration, Timestamp};
use crate::ports::{AwsFailure, CallerIdentity, Denial, KeyLastUse};
use std::sync::Arc;

const ACCOUNT: &str = "123456789012";
const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const ROOT: &str = "arn:aws:iam::123456789012:root";
const BUCKET_ARN: &str = "arn:aws:s3:::infrakitchen-123456789012-bucket";

/// The tests' fixed now.
fn now() -> Timestamp {
    Timestamp::parse("2026-06-01T12:00:00.000Z").expect("a time")
}

fn days_ago(n: i64) -> Timestamp {
    Timestamp::from(now().instant() - time::Duration::days(n))
}

fn used(at: Option<Timestamp>) -> Result<KeyLastUse, AwsFailure> {
    Ok(KeyLastUse {
        service: at.as_ref().map(|_| "s3".to_owned()),
        at,
    })
}

/// The tester as the wiring builds it, on `account`, with the clock fixed.
fn tester(account: &Arc<FakeAccount>, extra: &[&str]) -> ConnectionTester {
    let mut t = ConnectionTester::new(account.clone(), account.clone())
        .with_key_inspector(account.clone())
        .with_simulated_actions(extra.iter().map(|a| a.to_string()).collect());
    t.clock = now;
    t
}

/// The connection tests' runner: the same keys, account and region.
async fn run_with(t: &ConnectionTester, role: bool, bucket: bool) -> Report {
    crate::app::connection::tests::run_keys(t, role, bucket).await
}

async fn run(account: &Arc<FakeAccount>, bucket: bool) -> Report {
    run_with(&tester(account, &[]), false, bucket).await
}

fn codes(r: &Report) -> Vec<WarningCode> {
    r.warnings.iter().map(|w| w.code).collect()
}

fn step_status(r: &Report, name: &str) -> StepStatus {
    r.steps
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.status)
        .unwrap_or_else(|| panic!("no step {name}: {r:?}"))
}

#[test]
fn only_the_accounts_root_arn_is_the_root() {
    assert!(is_root_arn(ROOT));
    assert!(is_root_arn("arn:aws-cn:iam::123456789012:root"));
    for not in [
        USER_ARN,
        "arn:aws:iam::123456789012:user/root",
        "arn:aws:sts::123456789012:assumed-role/root/x",
        "arn:aws:iam::1234:root",
        "arn:aws:iam::123456789012:root/x",
    ] {
        assert!(!is_root_arn(not), "{not}");
    }
}

#[tokio::test]
async fn root_keys_fail_the_credentials_step_and_every_other_step_still_runs() {
    let account = Arc::new(FakeAccount::default());
    account.answer_caller_identity(Ok(CallerIdentity {
        arn: ROOT.into(),
        account: ACCOUNT.into(),
    }));
    let r = run(&account, true).await;
    assert_eq!((r.ok, r.outcome), (false, Outcome::Failed));
    assert_eq!(r.outcome.recorded_ok(), Some(false));
    let c = &r.steps[0];
    assert_eq!((c.name, c.status), ("credentials", StepStatus::Failed));
    assert!(
        c.detail.contains("root user") && c.detail.contains(ROOT),
        "{}",
        c.detail
    );
    let hint = c.hint.as_deref().unwrap_or("");
    for words in [
        "cannot be limited",
        "never",
        "IAM user",
        "role delegation",
        "delete",
    ] {
        assert!(hint.contains(words), "{words:?} in {hint}");
    }
    assert_eq!(c.aws_error_code, None);
    // The keys work: the account and the bucket are still checked, not skipped.
    assert_eq!(step_status(&r, "account"), StepStatus::Passed);
    assert_eq!(step_status(&r, "state_bucket"), StepStatus::Passed);
    assert!(
        r.summary.starts_with("Failed at the credentials step"),
        "{}",
        r.summary
    );
    assert_eq!(r.caller_arn.as_deref(), Some(ROOT));
    // The key's own facts are still read; no policy limits the root: nothing simulated.
    assert!(r.access_key.is_some());
    assert!(!account.ops().contains(&"SimulatePrincipalPolicy"));
    // A user's keys pass.
    let r = run(&Arc::new(FakeAccount::default()), false).await;
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
}

#[tokio::test]
async fn a_key_older_than_90_days_gets_a_key_age_warning_and_the_test_still_passes() {
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Ok(Some(days_ago(91))));
    account.answer_key_last_used(used(Some(days_ago(1))));
    let r = run(&account, false).await;
    assert_eq!((r.ok, r.outcome), (true, Outcome::Passed));
    assert_eq!(codes(&r), [WarningCode::KeyAge]);
    let w = &r.warnings[0];
    assert!(
        w.message.contains("AKIA************MPLE")
            && w.message.contains("91 days ago")
            && w.message.contains("CIS AWS Foundations Benchmark 1.14")
            && w.message.contains("2026-03-02"),
        "{}",
        w.message
    );
    assert_eq!((w.permission.as_ref(), w.denied_actions.len()), (None, 0));
    let facts = r.access_key.expect("the key's facts");
    assert_eq!(facts.created_at, Some(days_ago(91)));
    assert_eq!(facts.last_used_at, Some(days_ago(1)));
    assert_eq!(facts.last_used_service.as_deref(), Some("s3"));
    // 89 days: nothing to say.
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Ok(Some(days_ago(89))));
    account.answer_key_last_used(used(Some(days_ago(1))));
    assert!(run(&account, false).await.warnings.is_empty());
}

#[tokio::test]
async fn an_unused_key_gets_a_key_unused_warning_but_a_new_one_does_not() {
    // Last used 120 days ago.
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Ok(Some(days_ago(200))));
    account.answer_key_last_used(used(Some(days_ago(120))));
    let r = run(&account, false).await;
    assert_eq!(codes(&r), [WarningCode::KeyAge, WarningCode::KeyUnused]);
    assert!(
        r.warnings[1].message.contains("120 days ago") && r.warnings[1].message.contains("by s3"),
        "{}",
        r.warnings[1].message
    );
    assert_eq!(r.outcome, Outcome::Passed);
    // Never used, created 90 days ago.
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Ok(Some(days_ago(90))));
    account.answer_key_last_used(used(None));
    let r = run(&account, false).await;
    assert_eq!(codes(&r), [WarningCode::KeyAge, WarningCode::KeyUnused]);
    assert!(r.warnings[1].message.contains("no record of any use"));
    assert_eq!(r.access_key.and_then(|k| k.last_used_at), None);
    // Never used, created yesterday: a key made for this integration, not yet on record.
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Ok(Some(days_ago(1))));
    account.answer_key_last_used(used(None));
    assert!(run(&account, false).await.warnings.is_empty());
}

#[tokio::test]
async fn a_refused_iam_call_names_the_permission_that_would_allow_the_check() {
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Err(aws_error("AccessDenied", 403)));
    account.answer_key_last_used(used(Some(days_ago(100))));
    let r = run(&account, false).await;
    assert_eq!(
        codes(&r),
        [WarningCode::KeyFactsUnavailable, WarningCode::KeyUnused]
    );
    let w = &r.warnings[0];
    assert_eq!(w.permission.as_deref(), Some("iam:ListAccessKeys"));
    assert!(
        w.message.contains("age") && w.message.contains("key_hygiene_policy"),
        "{}",
        w.message
    );
    let facts = r.access_key.expect("the last use is known");
    assert_eq!(
        (facts.created_at, facts.last_used_at),
        (None, Some(days_ago(100)))
    );
    assert_eq!(r.outcome, Outcome::Passed);

    // Both refused: no facts at all, each permission named once.
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Err(aws_error("AccessDenied", 403)));
    account.answer_key_last_used(Err(aws_error("AccessDenied", 403)));
    let r = run(&account, false).await;
    let named: Vec<_> = r.warnings.iter().map(|w| w.permission.as_deref()).collect();
    assert_eq!(
        named,
        [Some("iam:ListAccessKeys"), Some("iam:GetAccessKeyLastUsed")]
    );
    assert!(r.access_key.is_none());
}

/// IAM down says nothing about the key: no age or use verdict, no permission to blame,
/// and the test's own verdict is untouched.
#[tokio::test]
async fn an_iam_outage_is_no_verdict_on_the_key() {
    let account = Arc::new(FakeAccount::default());
    account.answer_key_created(Err(AwsFailure::timed_out("no answer within 4 s")));
    account.answer_key_last_used(Err(aws_error("ServiceUnavailable", 503)));
    let r = run(&account, false).await;
    assert_eq!((r.ok, r.outcome), (true, Outcome::Passed));
    assert_eq!(
        codes(&r),
        [
            WarningCode::KeyFactsUnavailable,
            WarningCode::KeyFactsUnavailable
        ]
    );
    for w in &r.warnings {
        assert_eq!(w.permission, None, "{w:?}");
        assert!(
            w.message.contains("did not complete")
                && w.message.contains("says nothing about the key"),
            "{}",
            w.message
        );
        assert!(!w.message.contains("Allow"), "{}", w.message);
    }
    assert!(r.access_key.is_none());
}

#[tokio::test]
async fn keys_that_do_not_authenticate_get_no_key_verdict() {
    let account = Arc::new(FakeAccount::default());
    account.answer_caller_identity(Err(aws_error("InvalidClientTokenId", 403)));
    account.answer_key_created(Ok(Some(days_ago(400))));
    let r = run(&account, true).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.warnings.is_empty() && r.access_key.is_none(), "{r:?}");
    // An outage at STS: no verdict either.
    let account = Arc::new(FakeAccount::default());
    account.answer_caller_identity(Err(AwsFailure::unreachable("connection refused")));
    account.answer_key_created(Ok(Some(days_ago(400))));
    let r = run(&account, false).await;
    assert_eq!(r.outcome, Outcome::Unreachable);
    assert!(r.warnings.is_empty() && r.access_key.is_none(), "{r:?}");
}

#[tokio::test]
async fn the_simulation_asks_for_the_buckets_and_the_configured_actions_and_names_the_denied() {
    let account = Arc::new(FakeAccount::default());
    account.answer_simulate(Ok(vec![
        Denial {
            action: "s3:PutBucketPolicy".into(),
            resource: BUCKET_ARN.into(),
            decision: "explicitDeny".into(),
        },
        Denial {
            action: "ec2:DescribeInstances".into(),
            resource: "*".into(),
            decision: "implicitDeny".into(),
        },
    ]));
    let r = run_with(&tester(&account, &["ec2:DescribeInstances"]), false, true).await;
    assert_eq!((r.ok, r.outcome), (true, Outcome::Passed));
    assert_eq!(codes(&r), [WarningCode::PermissionsDenied]);
    let w = &r.warnings[0];
    assert_eq!(
        w.denied_actions,
        ["s3:PutBucketPolicy", "ec2:DescribeInstances"]
    );
    assert!(
        w.message.contains(USER_ARN) && w.message.contains("2 of the 22 actions"),
        "{}",
        w.message
    );
    let asked = account.calls().into_iter().find_map(|c| match c {
        Call::Simulate {
            key_id,
            principal_arn,
            checks,
        } => Some((key_id, principal_arn, checks)),
        _ => None,
    });
    let (key_id, principal, checks) = asked.expect("a simulation");
    assert_eq!((key_id.as_str(), principal.as_str()), (KEY, USER_ARN));
    assert!(checks
        .iter()
        .any(|c| c.action == "s3:CreateBucket" && c.resource == BUCKET_ARN));
    assert!(checks
        .iter()
        .any(|c| c.action == "s3:PutObject" && c.resource == format!("{BUCKET_ARN}/*")));
    assert_eq!(
        checks
            .last()
            .map(|c| (c.action.as_str(), c.resource.as_str())),
        Some(("ec2:DescribeInstances", "*"))
    );

    // With a role, the role acts for the platform: its policies, with its credentials.
    let account = Arc::new(FakeAccount::default());
    run_with(&tester(&account, &[]), true, true).await;
    let principal = account.calls().into_iter().find_map(|c| match c {
        Call::Simulate {
            key_id,
            principal_arn,
            ..
        } => Some((key_id, principal_arn)),
        _ => None,
    });
    assert_eq!(
        principal,
        Some((
            TEMP_KEY_ID.to_owned(),
            "arn:aws:iam::123456789012:role/InfraKitchenRole".to_owned()
        ))
    );
}

#[tokio::test]
async fn a_refused_or_absent_simulation_is_unchecked_not_denied() {
    let account = Arc::new(FakeAccount::default());
    account.answer_simulate(Err(aws_error("AccessDenied", 403)));
    let r = run(&account, true).await;
    assert_eq!(codes(&r), [WarningCode::PermissionsUnchecked]);
    assert_eq!(
        r.warnings[0].permission.as_deref(),
        Some("iam:SimulatePrincipalPolicy")
    );
    assert!(r.warnings[0].denied_actions.is_empty());
    assert_eq!(r.outcome, Outcome::Passed);
    // moto's answer: an HTML 500 page.
    let account = Arc::new(FakeAccount::default());
    account.answer_simulate(Err(AwsFailure {
        status: Some(500),
        ..Default::default()
    }));
    let r = run(&account, true).await;
    assert_eq!(codes(&r), [WarningCode::PermissionsUnchecked]);
    assert_eq!(r.warnings[0].permission, None);
    assert!(
        r.warnings[0].message.contains("SimulatePrincipalPolicy")
            && r.warnings[0].message.contains("HTTP 500"),
        "{}",
        r.warnings[0].message
    );
    // Nothing to ask about (no bucket, no configured actions): no simulation at all.
    let account = Arc::new(FakeAccount::default());
    let r = run(&account, false).await;
    assert!(r.warnings.is_empty());
    assert!(!account.ops().contains(&"SimulatePrincipalPolicy"));
}

#[tokio::test]
async fn a_delegation_test_runs_no_key_checks() {
    let account = Arc::new(FakeAccount::default());
    let t = tester(&account, &["ec2:DescribeInstances"])
        .with_platform(Arc::new(FakePlatform::default()));
    let account_id = AccountId::parse(ACCOUNT).expect("an account");
    let role = RoleName::parse("InfraKitchenRole").expect("a role");
    let external = ExternalId::parse("ik-01JABCDEFGHJKMNPQRSTVWXYZ0").expect("an id");
    let r = t
        .run(&ConnectionUnderTest {
            aws_account_id: &account_id,
            auth: Auth::Delegated,
            role: Some(&role),
            external_id: Some(&external),
            session_duration: SessionDuration::default(),
            region: &Region::default(),
            check_bucket: true,
        })
        .await;
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
    assert!(r.warnings.is_empty() && r.access_key.is_none());
    for op in [
        "ListAccessKeys",
        "GetAccessKeyLastUsed",
        "SimulatePrincipalPolicy",
    ] {
        assert!(!account.ops().contains(&op), "{op}: {:?}", account.ops());
    }
}

/// The key's facts need no earlier answer: they go out with the first round and add none.
/// The simulation needs the acting principal's ARN: with a role it goes with the role's
/// identity in the second round (no round added); without one it follows the keys'
/// GetCallerIdentity, the one call that waits for another, and only when there are
/// actions to ask about (the state bucket's, or configured ones).
#[tokio::test]
async fn key_checks_add_no_round_and_the_simulation_at_most_one() {
    let sorted = |r: &[&str]| {
        let mut r: Vec<String> = r.iter().map(|s| s.to_string()).collect();
        r.sort();
        r
    };
    let rounds_of = |role: bool, bucket: bool| async move {
        let trace = Trace::default();
        let account = Arc::new(FakeAccount::traced(&trace));
        let r = run_with(&tester(&account, &[]), role, bucket).await;
        assert!(r.ok, "{r:?}");
        trace.rounds()
    };
    assert_eq!(
        rounds_of(false, false).await,
        [sorted(&[
            "GetAccessKeyLastUsed",
            "GetCallerIdentity",
            "ListAccessKeys"
        ])]
    );
    assert_eq!(
        rounds_of(true, true).await,
        [
            sorted(&[
                "AssumeRole",
                "GetAccessKeyLastUsed",
                "GetCallerIdentity",
                "ListAccessKeys"
            ]),
            sorted(&[
                "GetCallerIdentity",
                "HeadBucket",
                "ListBuckets",
                "SimulatePrincipalPolicy"
            ]),
        ]
    );
    let plain = rounds_of(false, true).await;
    let first = sorted(&[
        "GetAccessKeyLastUsed",
        "GetCallerIdentity",
        "HeadBucket",
        "ListAccessKeys",
        "ListBuckets",
    ]);
    assert_eq!(plain, [first, sorted(&["SimulatePrincipalPolicy"])]);
}

#[tokio::test]
async fn iams_own_messages_naming_the_key_are_masked() {
    let account = Arc::new(FakeAccount::default());
    let said = |op: &str| AwsFailure {
        message: Some(format!(
            "The Access Key with id {KEY} cannot be found ({op})."
        )),
        ..aws_error("NoSuchEntity", 404)
    };
    account.answer_key_created(Err(said("ListAccessKeys")));
    account.answer_key_last_used(Err(said("GetAccessKeyLastUsed")));
    let r = run(&account, false).await;
    assert_eq!(
        codes(&r),
        [
            WarningCode::KeyFactsUnavailable,
            WarningCode::KeyFactsUnavailable
        ]
    );
    let text = serde_json::to_string(&r.warnings).expect("json");
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("AKIA************MPLE"), "{text}");
}
