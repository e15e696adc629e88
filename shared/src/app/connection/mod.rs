//! Test Connection: proves the keys, the account, the role and the state bucket name,
//! step by step, with a diagnosis a person can act on. Never returns an error for what
//! AWS said about the user's credentials: that is the report's content. When AWS could
//! not be reached (or answered with its own failure), the report says so and blames
//! nothing on the user: its outcome is `unreachable`, not `failed`.

use crate::domain::policies;
use crate::domain::{bucket_arn, mask_key_id, role_arn, state_bucket_name, LastTest, Partition};
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
pub struct ConnectionUnderTest<'a> {
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

struct Budget {
    deadline: Instant,
    budget: Duration,
}

impl Budget {
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

    pub async fn run(&self, s: &ConnectionUnderTest<'_>) -> Report {
        let clock = Budget {
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
        s: &ConnectionUnderTest<'_>,
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
        clock: &Budget,
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
fn summary(outcome: Outcome, steps: &[Step], s: &ConnectionUnderTest<'_>) -> String {
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
mod tests;
