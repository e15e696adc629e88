//! Test Connection: proves the keys, the account, the role and the state bucket name,
//! step by step, with a diagnosis a person can act on. Never returns an error for what
//! AWS said about the user's credentials: that is the report's content. When AWS could
//! not be reached (or answered with its own failure), the report says so and blames
//! nothing on the user: its outcome is `unreachable`, not `failed`.
//!
//! `checks` holds the steps, `steps` how a step's result is written.

mod bucket;
mod checks;
mod steps;

use crate::domain::{
    AccessKeyId, AccountId, BucketName, ExternalId, LastTest, Region, RoleName, SessionDuration,
};
use crate::ports::{AssumeRole, AwsCredentials, AwsIdentity, BucketAccess};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use steps::Budget;

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
    pub name: BucketName,
    pub region: Region,
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
    pub aws_account_id: &'a AccountId,
    pub aws_access_key_id: &'a AccessKeyId,
    pub secret: &'a SecretString,
    pub role: Option<&'a RoleName>,
    pub external_id: Option<&'a ExternalId>,
    pub session_duration: SessionDuration,
    pub region: &'a Region,
    pub check_bucket: bool,
}

/// Runs Test Connection against a user's account, built once per process.
#[derive(Clone)]
pub struct ConnectionTester {
    identity: Arc<dyn AwsIdentity>,
    buckets: Arc<dyn BucketAccess>,
    budget: Duration,
}

/// What the steps found so far.
#[derive(Default)]
struct Findings {
    steps: Vec<Step>,
    proves: Vec<String>,
    caller_arn: Option<String>,
    assumed_role_arn: Option<String>,
    state_bucket: Option<BucketReport>,
}

impl ConnectionTester {
    pub fn new(identity: Arc<dyn AwsIdentity>, buckets: Arc<dyn BucketAccess>) -> Self {
        Self {
            identity,
            buckets,
            budget: TEST_BUDGET,
        }
    }

    /// Credentials, then account, then the role (if any), then the bucket name (if
    /// asked); a step that cannot run after a failure is reported as skipped. Calls that
    /// need no earlier answer go out together (the keys' identity with AssumeRole or with
    /// the bucket check, the role's identity with the bucket check): one round without a
    /// role, two with one. An answer that an earlier failure makes moot is dropped.
    pub async fn run(&self, s: &ConnectionUnderTest<'_>) -> Report {
        let budget = Budget::start(self.budget);
        let mut found = Findings::default();
        let user = AwsCredentials {
            access_key_id: s.aws_access_key_id.as_str().to_owned(),
            secret_access_key: s.secret.clone(),
            session_token: None,
        };
        let who = budget.call(self.identity.caller_identity(&user, s.region));
        let bucket = match s.role {
            None => {
                let (who, bucket) = tokio::join!(who, self.bucket_check(&budget, s, &user));
                let caller = checks::credentials(who, s, &mut found);
                checks::account(caller.as_ref(), s, &mut found).then_some(bucket)
            }
            Some(role) => {
                let role_arn = role.arn(s.region.partition(), s.aws_account_id);
                let session = AssumeRole::session_name();
                let req = AssumeRole {
                    role_arn: &role_arn,
                    session_name: &session,
                    duration_seconds: s.session_duration.as_secs(),
                    external_id: s.external_id.map(|e| e.as_str()),
                };
                let assume = budget.call(self.identity.assume_role(&user, s.region, &req));
                let (who, assumed) = tokio::join!(who, assume);
                let caller = checks::credentials(who, s, &mut found);
                checks::account(caller.as_ref(), s, &mut found);
                match checks::assume_role(assumed, &role_arn, caller.as_ref(), s, &mut found) {
                    Some(temp) => {
                        let (id, bucket) = tokio::join!(
                            budget.call(self.identity.caller_identity(&temp, s.region)),
                            self.bucket_check(&budget, s, &temp),
                        );
                        checks::role_identity(id, s, &mut found).then_some(bucket)
                    }
                    None => None,
                }
            }
        };
        if s.check_bucket {
            checks::state_bucket(bucket.flatten(), s, &mut found);
        }
        found.into_report(s)
    }
}

impl Findings {
    fn into_report(self, s: &ConnectionUnderTest<'_>) -> Report {
        let has = |status| self.steps.iter().any(|step| step.status == status);
        let outcome = if has(StepStatus::Failed) {
            Outcome::Failed
        } else if has(StepStatus::Unreachable) {
            Outcome::Unreachable
        } else {
            Outcome::Passed
        };
        Report {
            ok: outcome == Outcome::Passed,
            outcome,
            summary: summary(outcome, &self.steps, s),
            steps: self.steps,
            caller_arn: self.caller_arn,
            assumed_role_arn: self.assumed_role_arn,
            state_bucket: self.state_bucket,
            proves: self.proves,
            does_not_prove: not_proven(s.role),
            last_test: None,
            recorded: None,
        }
    }
}

/// What no step of the test can show, whatever its outcome.
fn not_proven(role: Option<&RoleName>) -> Vec<String> {
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
