//! Test Connection: proves the keys, the account, the role and the state bucket name,
//! step by step, with a diagnosis a person can act on. Never returns an error for what
//! AWS said about the user's credentials: that is the report's content. When AWS could
//! not be reached (or answered with its own failure), the report says so and blames
//! nothing on the user: its outcome is `unreachable`, not `failed`.

use crate::model::{bucket_arn, mask_key_id, role_arn, state_bucket_name, LastTest, Partition};
use crate::policies;
use crate::ports::{
    AssumeRole, AwsCredentials, AwsFailure, AwsIdentity, BucketAccess, CallerIdentity, FailureKind,
    HeadBucket,
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The whole test answers within this, even when an endpoint hangs (API Gateway waits 30 s).
pub const TEST_BUDGET: Duration = Duration::from_secs(18);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Passed,
    /// What AWS said about the user's keys, account, role or bucket: the user can fix it.
    Failed,
    /// AWS could not be reached or answered with its own failure: says nothing about the
    /// user's setup.
    Unreachable,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: StepStatus,
    pub duration_ms: u64,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Filled-in policy documents that would fix the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Available,
    Owned,
    Taken,
    Forbidden,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketReport {
    pub name: String,
    pub region: String,
    pub availability: Availability,
}

/// The verdict of a whole test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every step passed.
    Passed,
    /// A step failed: something in the user's setup needs fixing (see its hint).
    Failed,
    /// No step failed, but one could not reach AWS: retry later.
    Unreachable,
}

impl Outcome {
    /// What a saved integration records as `last_test.ok`. An outage says nothing about
    /// the credentials, so it is not recorded at all (`None`).
    pub fn recorded_ok(self) -> Option<bool> {
        match self {
            Outcome::Passed => Some(true),
            Outcome::Failed => Some(false),
            Outcome::Unreachable => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `outcome == passed`.
    pub ok: bool,
    pub outcome: Outcome,
    /// One sentence for a person: what passed, what failed, or that AWS was not reached.
    pub summary: String,
    pub steps: Vec<Step>,
    pub caller_arn: Option<String>,
    pub assumed_role_arn: Option<String>,
    pub state_bucket: Option<BucketReport>,
    /// What the passed steps established, one fact each.
    pub proves: Vec<String>,
    /// What no step tests, so a pass is not read as more than it is.
    pub does_not_prove: Vec<String>,
    /// Saved integrations only: what was recorded (absent when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_test: Option<LastTest>,
    /// Saved integrations only: whether this test was recorded as `last_test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<bool>,
}

/// What to test: the form's fields, with the secret still wrapped.
pub struct Subject<'a> {
    pub aws_account_id: &'a str,
    pub aws_access_key_id: &'a str,
    pub secret: &'a SecretString,
    pub role: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub session_duration: u32,
    pub region: &'a str,
    pub check_bucket: bool,
}

#[derive(Clone)]
pub struct ConnectionTester {
    identity: Arc<dyn AwsIdentity>,
    buckets: Arc<dyn BucketAccess>,
    budget: Duration,
}

struct Clock {
    deadline: Instant,
    budget: Duration,
}

impl Clock {
    /// Runs one AWS call within what is left of the budget.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, AwsFailure>>,
    ) -> (Result<T, AwsFailure>, u64) {
        let started = Instant::now();
        let left = self.deadline.saturating_duration_since(started);
        let out = match tokio::time::timeout(left, fut).await {
            Ok(r) => r,
            Err(_) => Err(AwsFailure::timed_out(format!(
                "no answer before the test's {} s budget ran out",
                self.budget.as_secs()
            ))),
        };
        (out, started.elapsed().as_millis() as u64)
    }
}

fn step(name: &'static str, status: StepStatus, ms: u64, detail: String) -> Step {
    Step {
        name,
        status,
        duration_ms: ms,
        detail,
        aws_error_code: None,
        hint: None,
        policies: None,
    }
}

fn passed(name: &'static str, ms: u64, detail: String) -> Step {
    step(name, StepStatus::Passed, ms, detail)
}

fn failed(
    name: &'static str,
    ms: u64,
    detail: String,
    f: Option<&AwsFailure>,
    hint: String,
) -> Step {
    Step {
        aws_error_code: f.and_then(|f| f.code.clone()),
        hint: Some(hint),
        ..step(name, StepStatus::Failed, ms, detail)
    }
}

/// A later step that could not run; `after` is the step that stopped it.
fn skipped(name: &'static str, after: &Step) -> Step {
    let why = match after.status {
        StepStatus::Unreachable => "could not reach AWS",
        _ => "failed",
    };
    step(
        name,
        StepStatus::Skipped,
        0,
        format!("skipped: the {} step {why}", after.name),
    )
}

/// A call that hit an outage (`f.kind().is_outage()`): names the service, region,
/// endpoint and what happened, and gives no advice about keys or permissions.
fn unreachable(name: &'static str, ms: u64, call: &str, region: &str, f: &AwsFailure) -> Step {
    let service = call.split_whitespace().next().unwrap_or("AWS");
    let at = f
        .endpoint
        .as_deref()
        .map(|e| format!(" (endpoint {e})"))
        .unwrap_or_default();
    let kind = f.kind();
    let what = match kind {
        FailureKind::Throttled => format!("AWS throttled it: {}", f.describe()),
        FailureKind::ServerError => format!("AWS answered with its own failure: {}", f.describe()),
        _ => f.describe(),
    };
    let happened = match kind {
        FailureKind::Throttled => format!("AWS {service} in {region} is throttling requests"),
        FailureKind::ServerError => {
            format!("AWS {service} in {region} answered with its own failure")
        }
        _ => format!("the platform could not reach AWS {service} in {region}"),
    };
    Step {
        // AWS's own code for its own failure (ServiceUnavailable, Throttling); never one
        // made up for a connection that failed.
        aws_error_code: f.code.clone(),
        hint: Some(format!(
            "This is not a problem with your keys or permissions: {happened}. Retry in a \
             minute; if it keeps happening, check the AWS Health Dashboard for {service} in \
             {region}."
        )),
        ..step(
            name,
            StepStatus::Unreachable,
            ms,
            format!("{call} in {region}{at} did not complete: {what}"),
        )
    }
}

const TYPO_HINT: &str = "Re-check the Access Key ID / Secret for typos.";

fn credentials_failure(key_id: &str, region: &str, f: &AwsFailure, ms: u64) -> Step {
    let kind = f.kind();
    if kind.is_outage() {
        return unreachable("credentials", ms, "STS GetCallerIdentity", region, f);
    }
    let masked = mask_key_id(key_id);
    let (detail, hint) = match (kind, f.code.as_deref()) {
        (
            FailureKind::InvalidCredentials,
            Some("InvalidClientTokenId" | "InvalidAccessKeyId" | "UnrecognizedClientException"),
        ) => (
            format!(
                "AWS does not recognise access key ID {masked}: it does not exist, was deleted, \
                 or is inactive"
            ),
            format!(
                "{TYPO_HINT} In IAM > Users > Security credentials, confirm that the key \
                 exists and its status is Active; create a new access key if it was deleted."
            ),
        ),
        (FailureKind::InvalidCredentials, Some("SignatureDoesNotMatch")) => (
            format!("the secret access key does not belong to access key ID {masked}"),
            format!(
                "{TYPO_HINT} Paste the Secret Access Key again (it is shown only once, when \
                 the key is created; create a new key if it was lost)."
            ),
        ),
        (FailureKind::InvalidCredentials, Some("ExpiredToken" | "ExpiredTokenException")) => (
            "the credentials have expired".into(),
            "Use a long-term access key of an IAM user (AKIA...).".into(),
        ),
        _ => (
            format!("STS GetCallerIdentity failed: {}", f.describe()),
            format!(
                "{TYPO_HINT} Then verify that the IAM user exists and is not restricted by an SCP."
            ),
        ),
    };
    failed("credentials", ms, detail, Some(f), hint)
}

/// What no step of the test can show, whatever its outcome.
fn not_proven(role: Option<&str>) -> Vec<String> {
    let who = match role {
        Some(_) => "the role",
        None => "these credentials",
    };
    vec![
        "permission to create and harden the state bucket (s3:CreateBucket, \
         s3:PutBucketVersioning, s3:PutEncryptionConfiguration, s3:PutBucketPolicy and the \
         other settings): only provisioning uses them, and its status names any that is \
         missing"
            .into(),
        format!(
            "permission to manage resources (EC2, CloudFormation, Lambda, ...) with {who}: \
             the test makes no such call"
        ),
    ]
}

impl ConnectionTester {
    pub fn new(identity: Arc<dyn AwsIdentity>, buckets: Arc<dyn BucketAccess>) -> Self {
        Self {
            identity,
            buckets,
            budget: TEST_BUDGET,
        }
    }

    pub async fn run(&self, s: &Subject<'_>) -> Report {
        let clock = Clock {
            deadline: Instant::now() + self.budget,
            budget: self.budget,
        };
        let partition = Partition::of_region(s.region);
        let mut steps = Vec::new();
        let mut proves = Vec::new();
        let mut caller_arn = None;
        let mut assumed_role_arn = None;
        let mut state_bucket = None;
        let user = AwsCredentials {
            access_key_id: s.aws_access_key_id.to_owned(),
            secret_access_key: s.secret.clone(),
            session_token: None,
        };
        let role_arn = s.role.map(|r| role_arn(partition, s.aws_account_id, r));
        let bucket = state_bucket_name(s.aws_account_id);

        // 1. credentials
        let (res, ms) = clock
            .call(self.identity.caller_identity(&user, s.region))
            .await;
        let caller: Option<CallerIdentity> = match res {
            Ok(id) => {
                steps.push(passed(
                    "credentials",
                    ms,
                    format!("authenticated as {}", id.arn),
                ));
                proves.push(format!(
                    "access key {} is active and the secret matches it: AWS authenticates it \
                     as {}",
                    mask_key_id(s.aws_access_key_id),
                    id.arn
                ));
                caller_arn = Some(id.arn.clone());
                Some(id)
            }
            Err(f) => {
                steps.push(credentials_failure(s.aws_access_key_id, s.region, &f, ms));
                None
            }
        };

        // 2. account
        let account_ok = match &caller {
            None => {
                let stop = skipped("account", &steps[0]);
                steps.push(stop);
                false
            }
            Some(id) if role_arn.is_some() => {
                let how = if id.account == s.aws_account_id {
                    "the same account".to_owned()
                } else {
                    format!("account {} (cross-account)", id.account)
                };
                steps.push(passed(
                    "account",
                    0,
                    format!(
                        "the role is in account {}; the user is in {how}",
                        s.aws_account_id
                    ),
                ));
                true
            }
            Some(id) if id.account == s.aws_account_id => {
                steps.push(passed(
                    "account",
                    0,
                    format!("the keys belong to account {}", id.account),
                ));
                proves.push(format!("the keys belong to account {}", id.account));
                true
            }
            Some(id) => {
                steps.push(failed(
                    "account",
                    0,
                    format!(
                        "the keys belong to account {} ({}), not to {}",
                        id.account, id.arn, s.aws_account_id
                    ),
                    None,
                    format!(
                        "Confirm the AWS Account ID is correct and matches the account where the \
                         user exists, or set an assumed role in account {} that this user may assume.",
                        s.aws_account_id
                    ),
                ));
                false
            }
        };

        // 3-4. role
        let mut effective = account_ok.then(|| user.clone());
        if let (Some(role_arn), Some(caller)) = (&role_arn, &caller) {
            effective = None;
            let session = format!(
                "infrakitchen-{}",
                ulid::Ulid::new().to_string().to_lowercase()
            );
            let req = AssumeRole {
                role_arn,
                session_name: &session,
                duration_seconds: s.session_duration,
                external_id: s.external_id,
            };
            let (res, ms) = clock
                .call(self.identity.assume_role(&user, s.region, &req))
                .await;
            match res {
                Ok(temp) => {
                    steps.push(passed("assume_role", ms, format!("assumed {role_arn}")));
                    let ext = s
                        .external_id
                        .map(|_| " with the configured ExternalId")
                        .unwrap_or_default();
                    proves.push(format!(
                        "{} may assume {role_arn}{ext} for {} s sessions: the user's \
                         sts:AssumeRole permission and the role's trust policy both allow it",
                        caller.arn, s.session_duration
                    ));
                    let (res, ms) = clock
                        .call(self.identity.caller_identity(&temp, s.region))
                        .await;
                    match res {
                        Ok(id) if id.account == s.aws_account_id => {
                            steps.push(passed(
                                "role_identity",
                                ms,
                                format!("acting as {} in account {}", id.arn, id.account),
                            ));
                            proves.push(format!(
                                "the role's temporary credentials work and act in account {} \
                                 as {}",
                                id.account, id.arn
                            ));
                            assumed_role_arn = Some(id.arn);
                            effective = Some(temp);
                        }
                        Ok(id) => steps.push(failed(
                            "role_identity",
                            ms,
                            format!(
                                "the role's credentials belong to account {}, not to {}",
                                id.account, s.aws_account_id
                            ),
                            None,
                            "Confirm the AWS Account ID is the account the role lives in.".into(),
                        )),
                        Err(f) if f.kind().is_outage() => steps.push(unreachable(
                            "role_identity",
                            ms,
                            "STS GetCallerIdentity",
                            s.region,
                            &f,
                        )),
                        Err(f) => steps.push(failed(
                            "role_identity",
                            ms,
                            format!(
                                "GetCallerIdentity with the role's credentials failed: {}",
                                f.describe()
                            ),
                            Some(&f),
                            "Retry; if it persists, check the role's session policies and SCPs."
                                .into(),
                        )),
                    }
                }
                Err(f) => {
                    let stop = self.assume_role_failure(caller, role_arn, s, &f, ms);
                    let next = skipped("role_identity", &stop);
                    steps.push(stop);
                    steps.push(next);
                }
            }
        } else if s.role.is_some() {
            for name in ["assume_role", "role_identity"] {
                let next = skipped(name, &steps[0]);
                steps.push(next);
            }
        }

        // 5. state bucket
        if s.check_bucket {
            match &effective {
                None => {
                    let outage = steps.iter().any(|s| s.status == StepStatus::Unreachable);
                    steps.push(step(
                        "state_bucket",
                        StepStatus::Skipped,
                        0,
                        format!(
                            "skipped: no working credentials for the account (an earlier step {})",
                            if outage {
                                "could not reach AWS"
                            } else {
                                "failed"
                            }
                        ),
                    ))
                }
                Some(creds) => {
                    let (step, availability) = self
                        .bucket_step(&clock, creds, s.region, partition, &bucket)
                        .await;
                    match availability {
                        Availability::Available => proves.push(format!(
                            "the state bucket name {bucket} is free: no bucket of that name \
                             exists yet"
                        )),
                        Availability::Owned => proves.push(format!(
                            "the state bucket {bucket} already exists in account {}",
                            s.aws_account_id
                        )),
                        _ => {}
                    }
                    steps.push(step);
                    state_bucket = Some(BucketReport {
                        name: bucket.clone(),
                        region: s.region.to_owned(),
                        availability,
                    });
                }
            }
        }

        let outcome = if steps.iter().any(|s| s.status == StepStatus::Failed) {
            Outcome::Failed
        } else if steps.iter().any(|s| s.status == StepStatus::Unreachable) {
            Outcome::Unreachable
        } else {
            Outcome::Passed
        };
        Report {
            ok: outcome == Outcome::Passed,
            outcome,
            summary: summary(outcome, &steps, s),
            steps,
            caller_arn,
            assumed_role_arn,
            state_bucket,
            proves,
            does_not_prove: not_proven(s.role),
            last_test: None,
            recorded: None,
        }
    }

    fn assume_role_failure(
        &self,
        caller: &CallerIdentity,
        role_arn: &str,
        s: &Subject<'_>,
        f: &AwsFailure,
        ms: u64,
    ) -> Step {
        match f.kind() {
            k if k.is_outage() => {
                return unreachable("assume_role", ms, "STS AssumeRole", s.region, f)
            }
            FailureKind::Denied => {
                let ext = s
                    .external_id
                    .map(|e| format!(" with the condition sts:ExternalId = \"{e}\""))
                    .unwrap_or_default();
                let mut step = failed(
                    "assume_role",
                    ms,
                    format!("{} may not assume {role_arn}: {}", caller.arn, f.describe()),
                    Some(f),
                    format!(
                        "Both sides must allow it: (1) the user {user} needs sts:AssumeRole on \
                         {role_arn} (policies.user_assume_role_policy); (2) the role's trust policy \
                         must name {user} as principal{ext} (policies.role_trust_policy). Also \
                         confirm the role name and AWS Account ID.",
                        user = caller.arn
                    ),
                );
                step.policies = Some(json!({
                    "user_assume_role_policy": policies::user_assume_role_policy(role_arn),
                    "role_trust_policy": policies::role_trust_policy(&caller.arn, s.external_id),
                }));
                return step;
            }
            _ => {}
        }
        let hint = if f
            .message
            .as_deref()
            .unwrap_or("")
            .contains("DurationSeconds")
        {
            format!(
                "aws_session_duration ({}) exceeds the role's maximum session duration: raise \
                 the role's maximum in IAM or lower the field.",
                s.session_duration
            )
        } else {
            "Confirm the role name and AWS Account ID, then retry.".into()
        };
        failed(
            "assume_role",
            ms,
            format!("STS AssumeRole of {role_arn} failed: {}", f.describe()),
            Some(f),
            hint,
        )
    }

    async fn bucket_step(
        &self,
        clock: &Clock,
        creds: &AwsCredentials,
        region: &str,
        partition: Partition,
        bucket: &str,
    ) -> (Step, Availability) {
        let arn = bucket_arn(partition, bucket);
        // Independent: run both at once.
        let ((head, ms1), (own, ms2)) = tokio::join!(
            clock.call(self.buckets.head_bucket(creds, region, bucket)),
            clock.call(self.buckets.own_buckets(creds, region, bucket)),
        );
        let ms = ms1.max(ms2);
        let owned = own
            .as_ref()
            .ok()
            .map(|names| names.iter().any(|n| n == bucket));
        let policy = || {
            Some(json!({"state_bucket_policy": policies::state_bucket_policy(partition, bucket)}))
        };
        let (step, availability) = match (&head, owned) {
            (Err(f), _) if f.kind().is_outage() => (
                unreachable("state_bucket", ms, "S3 HeadBucket", region, f),
                Availability::Unknown,
            ),
            (Err(f), _) => (
                failed(
                    "state_bucket",
                    ms,
                    format!("S3 HeadBucket on {bucket} failed: {}", f.describe()),
                    Some(f),
                    "Check aws_default_region and the credentials' S3 permissions \
                     (policies.state_bucket_policy), then retry."
                        .into(),
                ),
                Availability::Unknown,
            ),
            (Ok(HeadBucket::NotFound), _) => (
                passed(
                    "state_bucket",
                    ms,
                    format!("{bucket} does not exist yet: it can be created in {region}"),
                ),
                Availability::Available,
            ),
            (Ok(_), Some(true)) => (
                passed(
                    "state_bucket",
                    ms,
                    format!("{bucket} already exists in this account: provisioning will adopt and harden it"),
                ),
                Availability::Owned,
            ),
            (Ok(_), Some(false)) => (
                failed(
                    "state_bucket",
                    ms,
                    format!(
                        "{bucket} exists and belongs to another AWS account: provisioning would fail"
                    ),
                    None,
                    "S3 names are global. Ask the owner of that bucket to delete it, or \
                     register an account whose default bucket name is free."
                        .into(),
                ),
                Availability::Taken,
            ),
            // The bucket exists, and S3 could not be asked whose it is.
            (Ok(_), None) if own.as_ref().is_err_and(|f| f.kind().is_outage()) => {
                let f = own.as_ref().err().cloned().unwrap_or_default();
                (
                    unreachable("state_bucket", ms, "S3 ListBuckets", region, &f),
                    Availability::Unknown,
                )
            }
            (Ok(h), None) => {
                let missing = match h {
                    HeadBucket::Forbidden => "s3:ListBucket on {arn} and s3:ListAllMyBuckets",
                    _ => "s3:ListAllMyBuckets",
                }
                .replace("{arn}", &arn);
                let mut step = failed(
                    "state_bucket",
                    ms,
                    format!(
                        "cannot tell whether {bucket} is yours: the credentials lack {missing}"
                    ),
                    own.as_ref().err(),
                    format!(
                        "Allow {missing} (see policies.state_bucket_policy, scoped to {arn})."
                    ),
                );
                step.policies = policy();
                (step, Availability::Forbidden)
            }
        };
        (step, availability)
    }
}

/// One sentence for a person, by outcome.
fn summary(outcome: Outcome, steps: &[Step], s: &Subject<'_>) -> String {
    match outcome {
        Outcome::Passed => {
            let mut shown = vec!["the keys authenticate".to_owned()];
            shown.push(match s.role {
                Some(_) => format!("the role can be assumed in account {}", s.aws_account_id),
                None => format!("they belong to account {}", s.aws_account_id),
            });
            if s.check_bucket {
                shown.push("the state bucket name is usable".into());
            }
            let last = shown.pop().unwrap_or_default();
            format!(
                "Passed: {} and {last} (see proves). Not tested: the permissions to create the \
                 state bucket or to manage resources (see does_not_prove).",
                shown.join(", ")
            )
        }
        Outcome::Failed => match steps.iter().find(|s| s.status == StepStatus::Failed) {
            Some(f) => format!("Failed at the {} step: {}.", f.name, f.detail),
            None => "Failed.".into(),
        },
        Outcome::Unreachable => match steps.iter().find(|s| s.status == StepStatus::Unreachable) {
            Some(u) => format!(
                "Not completed: {}. This says nothing about your keys or permissions; retry \
                 in a minute.",
                u.detail
            ),
            None => "Not completed: AWS could not be reached; retry in a minute.".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            }
        }
    }

    impl Fake {
        async fn answer<T: Clone>(&self, r: &Result<T, AwsFailure>) -> Result<T, AwsFailure> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            r.clone()
        }
    }

    #[async_trait]
    impl AwsIdentity for Fake {
        async fn caller_identity(
            &self,
            creds: &AwsCredentials,
            _: &str,
        ) -> Result<CallerIdentity, AwsFailure> {
            match creds.session_token {
                Some(_) => self.answer(&self.role_caller).await,
                None => self.answer(&self.caller).await,
            }
        }
        async fn assume_role(
            &self,
            _: &AwsCredentials,
            _: &str,
            _: &AssumeRole<'_>,
        ) -> Result<AwsCredentials, AwsFailure> {
            self.answer(&self.assume).await.map(|_| AwsCredentials {
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
            _: &str,
            _: &str,
        ) -> Result<HeadBucket, AwsFailure> {
            self.answer(&self.head).await
        }
        async fn own_buckets(
            &self,
            _: &AwsCredentials,
            _: &str,
            _: &str,
        ) -> Result<Vec<String>, AwsFailure> {
            self.answer(&self.own).await
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
        let secret = SecretString::from("s".repeat(40));
        let fake = Arc::new(fake);
        let tester = ConnectionTester::new(fake.clone(), fake);
        tester
            .run(&Subject {
                aws_account_id: ACCOUNT,
                aws_access_key_id: "AKIAIOSFODNN7EXAMPLE",
                secret: &secret,
                role: role.then_some("InfraKitchenRole"),
                external_id: None,
                session_duration: 3600,
                region: "eu-central-1",
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
            r.summary.starts_with("Not completed:")
                && r.summary.contains("nothing about your keys")
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
        let r = tester
            .run(&Subject {
                aws_account_id: ACCOUNT,
                aws_access_key_id: "AKIAIOSFODNN7EXAMPLE",
                secret: &secret,
                role: None,
                external_id: None,
                session_duration: 3600,
                region: "us-east-1",
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
}
