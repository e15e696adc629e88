//! Test Connection: proves the keys, the account, the role and the state bucket name,
//! step by step, with a diagnosis a person can act on. Never returns an error for what
//! AWS said about the user's credentials: that is the report's content. When AWS could
//! not be reached (or answered with its own failure), the report says so and blames
//! nothing on the user: its outcome is `unreachable`, not `failed`.
//!
//! `checks` holds the steps, `steps` how a step's result is written, `hygiene` the
//! access key's own facts and the policy simulation (warnings, never failures).

mod bucket;
mod checks;
mod delegation;
mod hygiene;
mod steps;

pub use hygiene::{is_root_arn, KEY_MAX_AGE_DAYS, KEY_UNUSED_DAYS, MAX_SIMULATED_ACTIONS};

use crate::domain::{
    AccessKeyId, AccountId, BucketName, ExternalId, LastTest, Region, RoleName, SessionDuration,
    Timestamp,
};
use crate::ports::{
    AccessKeyInspector, AssumeRole, AwsCredentials, AwsIdentity, BucketAccess, CallerIdentity,
    PlatformPrincipal,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
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
    /// Calls made for this step when it was retried (role delegation's AssumeRole, while
    /// a new role's trust policy propagates); absent when it ran once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
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

/// What a warning is about; stable, for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// The access key is older than [`KEY_MAX_AGE_DAYS`]: rotate it.
    KeyAge,
    /// No use of the key for [`KEY_UNUSED_DAYS`] (or never, that long after its creation).
    KeyUnused,
    /// IAM could not tell the key's age or last use (`permission` names the refused one).
    KeyFactsUnavailable,
    /// The policy simulation denies actions the platform needs (`denied_actions`).
    PermissionsDenied,
    /// The policy simulation could not run (refused, or not answered).
    PermissionsUnchecked,
}

/// Something worth fixing that does not fail the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: WarningCode,
    pub message: String,
    /// The IAM action that, allowed, would let the test check this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// The actions the policy simulation denied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_actions: Vec<String>,
}

/// What IAM says about the access key under test, as far as it could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyFacts {
    pub created_at: Option<Timestamp>,
    /// `None`: IAM has no record of a use (or could not be asked).
    pub last_used_at: Option<Timestamp>,
    pub last_used_service: Option<String>,
}

impl AccessKeyFacts {
    /// What the record keeps: only when IAM told the key's creation.
    pub fn dates(&self) -> Option<crate::domain::KeyDates> {
        Some(crate::domain::KeyDates {
            created_at: self.created_at.clone()?,
            last_used_at: self.last_used_at.clone(),
        })
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
    /// Findings that do not fail the test (access keys only): the key's age and last
    /// use, and the permissions the platform needs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// The access key's creation and last use, when IAM told them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<AccessKeyFacts>,
    /// Saved integrations only: what was recorded (absent when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_test: Option<LastTest>,
    /// Saved integrations only: whether this test was recorded as `last_test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<bool>,
}

/// How the test reaches the account.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// The user's keys (the secret still wrapped).
    Keys {
        key_id: &'a AccessKeyId,
        secret: &'a SecretString,
    },
    /// The platform's own principal assumes `role` with `external_id`.
    Delegated,
}

/// What to test: the form's fields, with the secret still wrapped.
pub struct ConnectionUnderTest<'a> {
    pub aws_account_id: &'a AccountId,
    pub auth: Auth<'a>,
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
    /// Role delegation's principal; without it a delegation test says the platform is
    /// not configured for it.
    platform: Option<Arc<dyn PlatformPrincipal>>,
    budget: Duration,
    /// The first wait before a denied delegated AssumeRole is tried again (doubling).
    retry_base: Duration,
    /// IAM with the keys under test (credential hygiene); without it no key check runs.
    inspector: Option<Arc<dyn AccessKeyInspector>>,
    /// Actions asked of the policy simulator on any resource, besides the state bucket's.
    simulate_actions: Arc<[String]>,
    /// Now, for the key's age (tests fix it).
    clock: fn() -> Timestamp,
}

/// Calls of a delegated AssumeRole at most (waits 1 + 2 + 4 s between them by default).
pub const DELEGATION_ATTEMPTS: u32 = 4;

/// What the steps found so far.
#[derive(Default)]
struct Findings {
    steps: Vec<Step>,
    proves: Vec<String>,
    caller_arn: Option<String>,
    assumed_role_arn: Option<String>,
    state_bucket: Option<BucketReport>,
    warnings: Vec<Warning>,
    access_key: Option<AccessKeyFacts>,
}

impl ConnectionTester {
    pub fn new(identity: Arc<dyn AwsIdentity>, buckets: Arc<dyn BucketAccess>) -> Self {
        Self {
            identity,
            buckets,
            platform: None,
            budget: TEST_BUDGET,
            retry_base: Duration::from_secs(1),
            inspector: None,
            simulate_actions: Arc::from([]),
            clock: Timestamp::now,
        }
    }

    /// Reads the access key's facts and simulates the acting principal's policies with
    /// IAM (credential hygiene warnings).
    pub fn with_key_inspector(mut self, inspector: Arc<dyn AccessKeyInspector>) -> Self {
        self.inspector = Some(inspector);
        self
    }

    /// Actions (`service:Action`) the policy simulation also asks about, on any resource.
    pub fn with_simulated_actions(mut self, actions: Vec<String>) -> Self {
        self.simulate_actions = actions.into();
        self
    }

    pub fn with_platform(mut self, platform: Arc<dyn PlatformPrincipal>) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The first wait between delegated AssumeRole attempts (tests shorten it).
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Credentials, then account, then the role (if any), then the bucket name (if
    /// asked); a step that cannot run after a failure is reported as skipped. Calls that
    /// need no earlier answer go out together (the keys' identity with AssumeRole or with
    /// the bucket check, the role's identity with the bucket check): one round without a
    /// role, two with one. An answer that an earlier failure makes moot is dropped.
    pub async fn run(&self, s: &ConnectionUnderTest<'_>) -> Report {
        match s.auth {
            Auth::Keys { key_id, secret } => self.run_keys(s, key_id, secret).await,
            Auth::Delegated => self.run_delegated(s).await,
        }
    }

    /// The keys' steps, with the access key's own facts read beside them (they need no
    /// earlier answer, so they never add a round) and judged once the keys authenticate.
    async fn run_keys(
        &self,
        s: &ConnectionUnderTest<'_>,
        key_id: &AccessKeyId,
        secret: &SecretString,
    ) -> Report {
        let budget = Budget::start(self.budget);
        let mut found = Findings::default();
        let user = AwsCredentials {
            access_key_id: key_id.as_str().to_owned(),
            secret_access_key: secret.clone(),
            session_token: None,
        };
        let (caller, facts) = tokio::join!(
            self.key_steps(&budget, s, key_id, &user, &mut found),
            self.key_facts(&budget, &user, s.region, key_id),
        );
        // Facts about keys that did not authenticate are moot: dropped.
        if let (Some(_), Some(facts)) = (caller, facts) {
            hygiene::judge_key(facts, key_id, &(self.clock)(), &mut found);
        }
        // IAM's own messages may name the key in full ("The Access Key with id AKIA...
        // cannot be found"): every warning, the key's and the simulation's, shows it masked.
        let masked = key_id.masked();
        for w in &mut found.warnings {
            w.message = w.message.replace(key_id.as_str(), &masked);
        }
        found.into_report(s)
    }

    /// The steps of a test with keys; the caller's identity when the keys authenticate.
    async fn key_steps(
        &self,
        budget: &Budget,
        s: &ConnectionUnderTest<'_>,
        key_id: &AccessKeyId,
        user: &AwsCredentials,
        found: &mut Findings,
    ) -> Option<CallerIdentity> {
        let who = budget.call(self.identity.caller_identity(user, s.region));
        let (caller, bucket) = match s.role {
            None => {
                // The simulation needs the caller's ARN: it follows GetCallerIdentity,
                // while the bucket check is still out.
                let who_then_simulate = async {
                    let who = who.await;
                    let sim = match &who.0 {
                        Ok(id) => self.simulation(budget, user, s, &id.arn).await,
                        Err(_) => None,
                    };
                    (who, sim)
                };
                let ((who, sim), bucket) =
                    tokio::join!(who_then_simulate, self.bucket_check(budget, s, user));
                let caller = checks::credentials(who, key_id, s, found);
                let ok = checks::account(caller.as_ref(), s, found);
                if ok {
                    hygiene::judge_simulation(sim, found);
                }
                (caller, ok.then_some(bucket))
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
                let assume = budget.call(self.identity.assume_role(user, s.region, &req));
                let (who, assumed) = tokio::join!(who, assume);
                let caller = checks::credentials(who, key_id, s, found);
                checks::account(caller.as_ref(), s, found);
                let bucket =
                    match checks::assume_role(assumed, &role_arn, caller.as_ref(), s, found) {
                        Some(temp) => {
                            // The role acts for the platform: its own policies are simulated.
                            let (id, bucket, sim) = tokio::join!(
                                budget.call(self.identity.caller_identity(&temp, s.region)),
                                self.bucket_check(budget, s, &temp),
                                self.simulation(budget, &temp, s, &role_arn),
                            );
                            let ok = checks::role_identity(id, s, found);
                            if ok {
                                hygiene::judge_simulation(sim, found);
                            }
                            ok.then_some(bucket)
                        }
                        None => None,
                    };
                (caller, bucket)
            }
        };
        if s.check_bucket {
            checks::state_bucket(bucket.flatten(), s, found);
        }
        caller
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
            does_not_prove: not_proven(s),
            warnings: self.warnings,
            access_key: self.access_key,
            last_test: None,
            recorded: None,
        }
    }
}

/// What no step of the test can show, whatever its outcome.
fn not_proven(s: &ConnectionUnderTest<'_>) -> Vec<String> {
    let who = match s.role {
        Some(_) => "the role",
        None => "these credentials",
    };
    let mut out = vec![
        "permission to create and harden the state bucket (s3:CreateBucket, \
         s3:PutBucketVersioning, s3:PutEncryptionConfiguration, s3:PutBucketPolicy and the \
         other settings): only provisioning uses them, and its status names any that is \
         missing"
            .into(),
        format!(
            "permission to manage resources (EC2, CloudFormation, Lambda, ...) with {who}: \
             the test makes no such call"
        ),
    ];
    if let Auth::Delegated = s.auth {
        out.push(
            "that the role refuses other External IDs and other principals: the test shows \
             that the platform's principal with this integration's External ID is let in, \
             not who else is"
                .into(),
        );
    }
    out
}

/// One sentence for a person, by outcome.
fn summary(outcome: Outcome, steps: &[Step], s: &ConnectionUnderTest<'_>) -> String {
    match outcome {
        Outcome::Passed => {
            let mut shown = match s.auth {
                Auth::Keys { .. } => vec!["the keys authenticate".to_owned()],
                Auth::Delegated => vec![],
            };
            shown.push(match (s.auth, s.role) {
                (Auth::Delegated, _) => format!(
                    "the platform assumes the role in account {} with the integration's \
                     External ID",
                    s.aws_account_id
                ),
                (_, Some(_)) => format!("the role can be assumed in account {}", s.aws_account_id),
                (_, None) => format!("they belong to account {}", s.aws_account_id),
            });
            if s.check_bucket {
                shown.push("the state bucket name is usable".into());
            }
            let last = shown.pop().unwrap_or_default();
            let first = if shown.is_empty() {
                String::new()
            } else {
                format!("{} and ", shown.join(", "))
            };
            format!(
                "Passed: {first}{last} (see proves). Not tested: the permissions to create the \
                 state bucket or to manage resources (see does_not_prove)."
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
