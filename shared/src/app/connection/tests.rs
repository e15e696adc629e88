//! Unit tests of `connection`.

use super::*;
use crate::app::fakes::Trace;
use crate::ports::{AssumeRole, AwsFailure, CallerIdentity, HeadBucket};
use async_trait::async_trait;

/// Fake STS and S3: each call answers what the test set up; `hang` never answers.
#[derive(Clone)]
struct Fake {
    caller: Result<CallerIdentity, AwsFailure>,
    assume: Result<(), AwsFailure>,
    role_caller: Result<CallerIdentity, AwsFailure>,
    head: Result<HeadBucket, AwsFailure>,
    own: Result<Vec<String>, AwsFailure>,
    hang: bool,
    /// How the calls overlapped (rounds).
    trace: Trace,
}

const ACCOUNT: &str = "123456789012";
const USER: &str = "arn:aws:iam::123456789012:user/InfraKitchenUser";

fn id(arn: &str, account: &str) -> CallerIdentity {
    CallerIdentity {
        arn: arn.into(),
        account: account.into(),
    }
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            caller: Ok(id(USER, ACCOUNT)),
            assume: Ok(()),
            role_caller: Ok(id(
                "arn:aws:sts::123456789012:assumed-role/R/infrakitchen-x",
                ACCOUNT,
            )),
            head: Ok(HeadBucket::NotFound),
            own: Ok(vec![]),
            hang: false,
            trace: Trace::default(),
        }
    }
}

impl Fake {
    async fn answer<T: Clone>(&self, op: &str, r: &Result<T, AwsFailure>) -> Result<T, AwsFailure> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        self.trace.call(op).await;
        r.clone()
    }
}

#[async_trait]
impl AwsIdentity for Fake {
    async fn caller_identity(
        &self,
        creds: &AwsCredentials,
        _: &Region,
    ) -> Result<CallerIdentity, AwsFailure> {
        match creds.session_token {
            Some(_) => {
                self.answer("GetCallerIdentity(role)", &self.role_caller)
                    .await
            }
            None => self.answer("GetCallerIdentity", &self.caller).await,
        }
    }
    async fn assume_role(
        &self,
        _: &AwsCredentials,
        _: &Region,
        _: &AssumeRole<'_>,
    ) -> Result<AwsCredentials, AwsFailure> {
        self.answer("AssumeRole", &self.assume)
            .await
            .map(|_| AwsCredentials {
                access_key_id: "ASIATEMP".into(),
                secret_access_key: SecretString::from("temp".to_owned()),
                session_token: Some(SecretString::from("token".to_owned())),
            })
    }
}

#[async_trait]
impl BucketAccess for Fake {
    async fn head_bucket(
        &self,
        _: &AwsCredentials,
        _: &Region,
        _: &BucketName,
    ) -> Result<HeadBucket, AwsFailure> {
        self.answer("HeadBucket", &self.head).await
    }
    async fn own_buckets(
        &self,
        _: &AwsCredentials,
        _: &Region,
        _: &str,
    ) -> Result<Vec<String>, AwsFailure> {
        self.answer("ListBuckets", &self.own).await
    }
}

fn code(code: &str, status: u16) -> AwsFailure {
    AwsFailure {
        code: Some(code.into()),
        status: Some(status),
        message: Some("m".into()),
        ..Default::default()
    }
}

async fn run(fake: Fake, role: bool, bucket: bool) -> Report {
    let fake = Arc::new(fake);
    run_keys(&ConnectionTester::new(fake.clone(), fake), role, bucket).await
}

/// `tester` on account 123456789012's keys (AKIAIOSFODNN7EXAMPLE) in eu-central-1, with
/// the role InfraKitchenRole if `role`, and the state bucket if `bucket`.
pub(super) async fn run_keys(tester: &ConnectionTester, role: bool, bucket: bool) -> Report {
    let secret = SecretString::from("s".repeat(40));
    let account = AccountId::parse(ACCOUNT).unwrap();
    let key_id = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
    let role_name = RoleName::parse("InfraKitchenRole").unwrap();
    let region = Region::parse("eu-central-1").unwrap();
    tester
        .run(&ConnectionUnderTest {
            aws_account_id: &account,
            auth: Auth::Keys {
                key_id: &key_id,
                secret: &secret,
            },
            role: role.then_some(&role_name),
            external_id: None,
            session_duration: SessionDuration::default(),
            region: &region,
            check_bucket: bucket,
        })
        .await
}

fn statuses(r: &Report) -> Vec<(&str, StepStatus)> {
    r.steps.iter().map(|s| (s.name, s.status)).collect()
}

fn named<'a>(r: &'a Report, name: &str) -> &'a Step {
    r.steps.iter().find(|s| s.name == name).unwrap()
}

/// An outage step gives no key or permission advice and blames nothing on the user.
fn assert_no_key_advice(s: &Step) {
    let text = format!("{} {}", s.detail, s.hint.as_deref().unwrap_or(""));
    for advice in ["typo", "Access Key ID", "Secret", "trust policy", "Allow "] {
        assert!(!text.contains(advice), "{advice:?} in {text}");
    }
    assert!(text.contains("not a problem with your keys"), "{text}");
}

#[tokio::test]
async fn a_pass_says_what_it_proves_and_what_it_does_not() {
    let r = run(Fake::default(), true, true).await;
    assert_eq!((r.ok, r.outcome), (true, Outcome::Passed));
    assert_eq!(r.proves.len(), 4, "{:?}", r.proves);
    assert!(r.proves[0].contains("AKIA************MPLE") && r.proves[0].contains(USER));
    assert!(r.proves[1].contains("may assume arn:aws:iam::123456789012:role/InfraKitchenRole"));
    assert!(r.proves[3].contains("infrakitchen-123456789012-bucket is free"));
    assert!(r.does_not_prove[0].contains("s3:CreateBucket"));
    assert!(r.does_not_prove[1].contains("manage resources"));
    assert!(r.summary.starts_with("Passed:") && r.summary.contains("Not tested"));
    assert_eq!(r.summary.matches(" and ").count(), 1, "{}", r.summary);

    let plain = run(Fake::default(), false, false).await;
    assert_eq!(plain.proves.len(), 2, "{:?}", plain.proves);
    assert_eq!(plain.proves[1], "the keys belong to account 123456789012");
    assert!(plain.does_not_prove[1].contains("these credentials"));
}

#[tokio::test]
async fn an_unreachable_sts_is_not_the_users_mistake() {
    let mut refused = AwsFailure::unreachable("connection refused");
    refused.endpoint = Some("http://127.0.0.1:9".into());
    let r = run(
        Fake {
            caller: Err(refused),
            ..Default::default()
        },
        true,
        true,
    )
    .await;
    assert_eq!((r.ok, r.outcome), (false, Outcome::Unreachable));
    assert_eq!(r.outcome.recorded_ok(), None, "an outage is not recorded");
    let c = named(&r, "credentials");
    assert_eq!(c.status, StepStatus::Unreachable);
    assert_eq!(c.aws_error_code, None);
    assert_eq!(
        c.detail,
        "STS GetCallerIdentity in eu-central-1 (endpoint http://127.0.0.1:9) did not \
         complete: could not connect: connection refused"
    );
    assert!(c
        .hint
        .as_deref()
        .unwrap()
        .contains("AWS STS in eu-central-1"));
    assert_no_key_advice(c);
    assert_eq!(
        statuses(&r)[1..],
        [
            ("account", StepStatus::Skipped),
            ("assume_role", StepStatus::Skipped),
            ("role_identity", StepStatus::Skipped),
            ("state_bucket", StepStatus::Skipped),
        ]
    );
    assert_eq!(
        named(&r, "account").detail,
        "skipped: the credentials step could not reach AWS"
    );
    assert!(named(&r, "state_bucket")
        .detail
        .contains("could not reach AWS"));
    assert!(
        r.summary.starts_with("Not completed:") && r.summary.contains("nothing about your keys")
    );
    assert!(r.proves.is_empty());
}

#[tokio::test]
async fn server_errors_and_throttling_are_outages_with_aws_code() {
    for (f, words) in [
        (code("ServiceUnavailable", 503), "HTTP 503"),
        (code("InternalFailure", 500), "InternalFailure"),
        (
            AwsFailure {
                status: Some(502),
                ..Default::default()
            },
            "HTTP 502",
        ),
    ] {
        let r = run(
            Fake {
                caller: Err(f.clone()),
                ..Default::default()
            },
            false,
            false,
        )
        .await;
        let c = named(&r, "credentials");
        assert_eq!(c.status, StepStatus::Unreachable, "{f:?}");
        assert!(c.detail.contains(words), "{}", c.detail);
        assert_eq!(c.aws_error_code, f.code);
        assert_no_key_advice(c);
        assert_eq!(r.outcome, Outcome::Unreachable);
    }
    // Throttled at AssumeRole: the credentials step still proves what it proved.
    let r = run(
        Fake {
            assume: Err(code("Throttling", 400)),
            ..Default::default()
        },
        true,
        false,
    )
    .await;
    let a = named(&r, "assume_role");
    assert_eq!(a.status, StepStatus::Unreachable);
    assert!(a.hint.as_deref().unwrap().contains("throttling"));
    assert!(a.policies.is_none());
    assert_eq!(named(&r, "role_identity").status, StepStatus::Skipped);
    assert_eq!(r.outcome, Outcome::Unreachable);
    assert_eq!(r.proves.len(), 1);
}

#[tokio::test]
async fn s3_outages_leave_the_bucket_unknown() {
    let r = run(
        Fake {
            head: Err(AwsFailure::timed_out("no answer within 4 s")),
            ..Default::default()
        },
        false,
        true,
    )
    .await;
    let b = named(&r, "state_bucket");
    assert_eq!(b.status, StepStatus::Unreachable);
    assert!(b.detail.contains("S3 HeadBucket") && b.detail.contains("timed out"));
    assert_no_key_advice(b);
    assert_eq!(
        r.state_bucket.as_ref().unwrap().availability,
        Availability::Unknown
    );
    assert_eq!(r.outcome, Outcome::Unreachable);

    // The name exists, and ListBuckets hit an outage: not "forbidden".
    let r = run(
        Fake {
            head: Ok(HeadBucket::Forbidden),
            own: Err(code("ServiceUnavailable", 503)),
            ..Default::default()
        },
        false,
        true,
    )
    .await;
    assert_eq!(named(&r, "state_bucket").status, StepStatus::Unreachable);
    assert!(named(&r, "state_bucket").detail.contains("S3 ListBuckets"));

    // A refused ListBuckets is still the user's permission to fix.
    let r = run(
        Fake {
            head: Ok(HeadBucket::Forbidden),
            own: Err(code("AccessDenied", 403)),
            ..Default::default()
        },
        false,
        true,
    )
    .await;
    assert_eq!(named(&r, "state_bucket").status, StepStatus::Failed);
    assert_eq!(
        r.state_bucket.unwrap().availability,
        Availability::Forbidden
    );
    assert_eq!(r.outcome, Outcome::Failed);
}

#[tokio::test]
async fn a_hung_call_ends_at_the_budget() {
    let fake = Arc::new(Fake {
        hang: true,
        ..Default::default()
    });
    let mut tester = ConnectionTester::new(fake.clone(), fake);
    tester.budget = Duration::from_millis(50);
    let secret = SecretString::from("s".repeat(40));
    let account = AccountId::parse(ACCOUNT).unwrap();
    let key_id = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
    let r = tester
        .run(&ConnectionUnderTest {
            aws_account_id: &account,
            auth: Auth::Keys {
                key_id: &key_id,
                secret: &secret,
            },
            role: None,
            external_id: None,
            session_duration: SessionDuration::default(),
            region: &Region::default(),
            check_bucket: false,
        })
        .await;
    let c = named(&r, "credentials");
    assert_eq!(c.status, StepStatus::Unreachable);
    assert!(c.detail.contains("timed out"), "{}", c.detail);
    assert_no_key_advice(c);
    assert_eq!(r.outcome, Outcome::Unreachable);
}

#[tokio::test]
async fn users_mistakes_still_fail_with_advice() {
    for (c, words) in [
        ("InvalidClientTokenId", "does not recognise"),
        ("SignatureDoesNotMatch", "secret access key"),
    ] {
        let r = run(
            Fake {
                caller: Err(code(c, 403)),
                ..Default::default()
            },
            false,
            false,
        )
        .await;
        let s = named(&r, "credentials");
        assert_eq!(s.status, StepStatus::Failed);
        assert!(s.detail.contains(words));
        assert!(s.hint.as_deref().unwrap().contains("typos"));
        assert_eq!(s.aws_error_code.as_deref(), Some(c));
        assert_eq!(
            (r.outcome, r.outcome.recorded_ok()),
            (Outcome::Failed, Some(false))
        );
        assert_eq!(
            named(&r, "account").detail,
            "skipped: the credentials step failed"
        );
    }
    // Every spelling of "denied" gets the trust-policy diagnosis, and so does a bare 403.
    for f in [
        code("AccessDenied", 403),
        code("AccessDeniedException", 400),
        AwsFailure {
            status: Some(403),
            ..Default::default()
        },
    ] {
        let r = run(
            Fake {
                assume: Err(f.clone()),
                ..Default::default()
            },
            true,
            false,
        )
        .await;
        let a = named(&r, "assume_role");
        assert_eq!(a.status, StepStatus::Failed, "{f:?}");
        assert!(a.policies.is_some(), "{f:?}");
        assert!(a.hint.as_deref().unwrap().contains("trust policy"));
    }
    // A failed step outranks a later outage: there is something to fix.
    let r = run(
        Fake {
            caller: Ok(id("arn:aws:iam::999999999999:user/u", "999999999999")),
            ..Default::default()
        },
        false,
        true,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.summary.starts_with("Failed at the account step"));
}

#[test]
fn only_real_verdicts_are_recorded() {
    assert_eq!(Outcome::Passed.recorded_ok(), Some(true));
    assert_eq!(Outcome::Failed.recorded_ok(), Some(false));
    assert_eq!(Outcome::Unreachable.recorded_ok(), None);
}

/// Calls that need no earlier answer go out together (issue 19's round trips): without a
/// role the keys' identity and the bucket check are one round; with a role, the keys'
/// identity goes with AssumeRole, then the role's identity with the bucket check.
#[tokio::test]
async fn independent_calls_go_out_together() {
    let sorted = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let fake = Fake::default();
    let trace = fake.trace.clone();
    let r = run(fake, false, true).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        trace.rounds(),
        vec![sorted(&["GetCallerIdentity", "HeadBucket", "ListBuckets"])]
    );
    let fake = Fake::default();
    let trace = fake.trace.clone();
    let r = run(fake, true, true).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        trace.rounds(),
        vec![
            sorted(&["AssumeRole", "GetCallerIdentity"]),
            sorted(&["GetCallerIdentity(role)", "HeadBucket", "ListBuckets"]),
        ]
    );
    // An answer made moot by an earlier failure is dropped: bad keys skip the role and
    // the bucket whatever STS and S3 said to them.
    let fake = Fake {
        caller: Err(code("InvalidClientTokenId", 403)),
        ..Fake::default()
    };
    let r = run(fake, true, true).await;
    assert_eq!(
        statuses(&r),
        vec![
            ("credentials", StepStatus::Failed),
            ("account", StepStatus::Skipped),
            ("assume_role", StepStatus::Skipped),
            ("role_identity", StepStatus::Skipped),
            ("state_bucket", StepStatus::Skipped),
        ]
    );
    assert!(r.state_bucket.is_none() && r.assumed_role_arn.is_none());
}
