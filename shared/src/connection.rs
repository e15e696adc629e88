//! Test Connection: proves the keys, the account, the role and the state bucket name,
//! step by step, with a diagnosis a person can act on. Never returns an error for what
//! AWS said about the user's credentials: that is the report's content.

use crate::model::{bucket_arn, mask_key_id, role_arn, state_bucket_name, LastTest, Partition};
use crate::policies;
use crate::ports::{
    AssumeRole, AwsCredentials, AwsFailure, AwsIdentity, BucketAccess, CallerIdentity, HeadBucket,
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
    Failed,
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

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub steps: Vec<Step>,
    pub caller_arn: Option<String>,
    pub assumed_role_arn: Option<String>,
    pub state_bucket: Option<BucketReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_test: Option<LastTest>,
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
            Err(_) => Err(AwsFailure::timed_out()),
        };
        (out, started.elapsed().as_millis() as u64)
    }
}

fn passed(name: &'static str, ms: u64, detail: String) -> Step {
    Step {
        name,
        status: StepStatus::Passed,
        duration_ms: ms,
        detail,
        aws_error_code: None,
        hint: None,
        policies: None,
    }
}

fn failed(
    name: &'static str,
    ms: u64,
    detail: String,
    f: Option<&AwsFailure>,
    hint: String,
) -> Step {
    Step {
        name,
        status: StepStatus::Failed,
        duration_ms: ms,
        detail,
        aws_error_code: f.and_then(|f| f.code.clone()),
        hint: Some(hint),
        policies: None,
    }
}

fn skipped(name: &'static str, because: &str) -> Step {
    Step {
        name,
        status: StepStatus::Skipped,
        duration_ms: 0,
        detail: format!("skipped: {because}"),
        aws_error_code: None,
        hint: None,
        policies: None,
    }
}

const TYPO_HINT: &str = "Re-check the Access Key ID / Secret for typos.";

fn credentials_failure(key_id: &str, region: &str, f: &AwsFailure, ms: u64) -> Step {
    let masked = mask_key_id(key_id);
    let (detail, hint) = if f.timed_out {
        (
            format!("STS in {region} did not answer in time (timed out)"),
            format!("Check that this service can reach the STS endpoint of {region}, then retry."),
        )
    } else {
        match f.code.as_deref() {
            Some("InvalidClientTokenId" | "InvalidAccessKeyId" | "UnrecognizedClientException") => (
                format!(
                    "AWS does not recognise access key ID {masked}: it does not exist, was deleted, \
                     or is inactive"
                ),
                format!(
                    "{TYPO_HINT} In IAM > Users > Security credentials, confirm that the key \
                     exists and its status is Active; create a new access key if it was deleted."
                ),
            ),
            Some("SignatureDoesNotMatch") => (
                format!("the secret access key does not belong to access key ID {masked}"),
                format!(
                    "{TYPO_HINT} Paste the Secret Access Key again (it is shown only once, when \
                     the key is created; create a new key if it was lost)."
                ),
            ),
            Some("ExpiredToken" | "ExpiredTokenException") => (
                "the credentials have expired".into(),
                "Use a long-term access key of an IAM user (AKIA...).".into(),
            ),
            _ => (
                format!("STS GetCallerIdentity failed: {}", f.describe()),
                format!("{TYPO_HINT} Then verify that the IAM user exists and is not restricted by an SCP."),
            ),
        }
    };
    failed("credentials", ms, detail, Some(f), hint)
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
        };
        let partition = Partition::of_region(s.region);
        let mut steps = Vec::new();
        let mut report = Report {
            ok: false,
            steps: Vec::new(),
            caller_arn: None,
            assumed_role_arn: None,
            state_bucket: None,
            last_test: None,
        };
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
                report.caller_arn = Some(id.arn.clone());
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
                steps.push(skipped("account", "the credentials step failed"));
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
                            report.assumed_role_arn = Some(id.arn);
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
                    steps.push(self.assume_role_failure(caller, role_arn, s, &f, ms));
                    steps.push(skipped("role_identity", "the assume_role step failed"));
                }
            }
        } else if s.role.is_some() {
            steps.push(skipped("assume_role", "the credentials step failed"));
            steps.push(skipped("role_identity", "the credentials step failed"));
        }

        // 5. state bucket
        if s.check_bucket {
            match &effective {
                None => steps.push(skipped(
                    "state_bucket",
                    "no working credentials for the account (an earlier step failed)",
                )),
                Some(creds) => {
                    let (step, availability) = self
                        .bucket_step(&clock, creds, s.region, partition, &bucket)
                        .await;
                    steps.push(step);
                    report.state_bucket = Some(BucketReport {
                        name: bucket.clone(),
                        region: s.region.to_owned(),
                        availability,
                    });
                }
            }
        }

        report.ok = steps.iter().all(|s| s.status == StepStatus::Passed);
        report.steps = steps;
        report
    }

    fn assume_role_failure(
        &self,
        caller: &CallerIdentity,
        role_arn: &str,
        s: &Subject<'_>,
        f: &AwsFailure,
        ms: u64,
    ) -> Step {
        if f.timed_out {
            return failed(
                "assume_role",
                ms,
                format!("STS AssumeRole of {role_arn} timed out"),
                Some(f),
                "Retry; check that this service can reach STS.".into(),
            );
        }
        let denied = f.is("AccessDenied") || f.status == Some(403);
        if denied {
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
            (Err(f), _) => (
                failed(
                    "state_bucket",
                    ms,
                    format!("S3 HeadBucket on {bucket} failed: {}", f.describe()),
                    Some(f),
                    "Retry; check that this service can reach S3 in the chosen region.".into(),
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
                    "S3 bucket names are global. Ask the owner of that bucket to delete it, or \
                     register an account whose default bucket name is free."
                        .into(),
                ),
                Availability::Taken,
            ),
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
