//! Test Connection of a role-delegation integration: the platform's own principal, then
//! the user's role assumed with the integration's External ID (retried while a new trust
//! policy propagates), then the role's identity and the state bucket, as for keys.

use super::steps::{failed, passed, skipped, step, unreachable, Budget};
use super::{checks, ConnectionTester, ConnectionUnderTest, Findings, Report, StepStatus};
use super::{Step, DELEGATION_ATTEMPTS};
use crate::domain::policies;
use crate::ports::{AssumeRole, AwsCredentials, AwsFailure, FailureKind, PlatformSession};
use serde_json::json;
use std::time::{Duration, Instant};

/// Kept free for the steps after AssumeRole (the role's identity and the bucket check,
/// each bounded by the per-call timeout): a retry never eats into them.
const RESERVE: Duration = Duration::from_secs(6);

impl ConnectionTester {
    /// platform -> assume_role -> role_identity (with the bucket check beside it) ->
    /// state_bucket: two rounds once the platform's session is cached, as with keys and a
    /// role, plus the retries of a denied AssumeRole.
    pub(super) async fn run_delegated(&self, s: &ConnectionUnderTest<'_>) -> Report {
        let budget = Budget::start(self.budget);
        let mut found = Findings::default();
        let bucket = match self.delegated_role(&budget, s, &mut found).await {
            Some(temp) => {
                let (id, bucket) = tokio::join!(
                    budget.call(self.identity.caller_identity(&temp, s.region)),
                    self.bucket_check(&budget, s, &temp),
                );
                checks::role_identity(id, s, &mut found).then_some(bucket)
            }
            None => None,
        };
        if s.check_bucket {
            checks::state_bucket(bucket.flatten(), s, &mut found);
        }
        found.into_report(s)
    }

    /// The platform's session, then the role's: its temporary credentials, or `None`
    /// with the failed and skipped steps recorded.
    async fn delegated_role(
        &self,
        budget: &Budget,
        s: &ConnectionUnderTest<'_>,
        found: &mut Findings,
    ) -> Option<AwsCredentials> {
        let platform = match &self.platform {
            Some(p) => budget.call(p.session()).await,
            None => (
                Err(AwsFailure {
                    code: Some("NotConfigured".into()),
                    message: Some("this function has no platform principal".into()),
                    ..Default::default()
                }),
                0,
            ),
        };
        let session = match platform {
            (Ok(session), ms) => {
                let detail = format!("the platform acts as {}", session.principal_arn);
                found.steps.push(passed("platform", ms, detail));
                session
            }
            (Err(f), ms) => {
                found.steps.push(platform_failure(s, &f, ms));
                skip_rest(found);
                return None;
            }
        };
        let Some(role) = s.role else {
            // A delegation record always has a role (the use cases refuse one without).
            let stop = failed(
                "assume_role",
                0,
                "the integration names no role to assume".into(),
                None,
                "Set aws_assumed_role_name to the role you created for the platform.".into(),
            );
            found.steps.push(stop);
            let next = skipped("role_identity", &found.steps[1]);
            found.steps.push(next);
            return None;
        };
        let role_arn = role.arn(s.region.partition(), s.aws_account_id);
        let (res, ms, attempts) = self
            .assume_retrying(budget, &session.credentials, s, &role_arn)
            .await;
        let retried = (attempts > 1).then_some(attempts);
        match res {
            Ok(temp) => {
                let mut detail = format!("assumed {role_arn} with the integration's External ID");
                if attempts > 1 {
                    detail.push_str(&format!(
                        " (after {attempts} attempts: AWS refused it until the role's trust \
                         policy had propagated)"
                    ));
                }
                let mut ok = passed("assume_role", ms, detail);
                ok.attempts = retried;
                found.steps.push(ok);
                found.proves.push(format!(
                    "the platform's principal {} may assume {role_arn} with this \
                     integration's External ID for {} s sessions: the role's trust policy \
                     allows it",
                    session.principal_arn, s.session_duration
                ));
                Some(temp)
            }
            Err(f) => {
                let mut stop = assume_failure(&session, &role_arn, s, &f, ms, attempts);
                stop.attempts = retried;
                let next = skipped("role_identity", &stop);
                found.steps.push(stop);
                found.steps.push(next);
                None
            }
        }
    }

    /// AssumeRole into the user's role; a denial is tried again with doubling waits while
    /// the budget leaves room for the later steps (IAM takes seconds to apply a new or
    /// changed trust policy everywhere). Returns the last answer, the time taken and the
    /// number of calls.
    async fn assume_retrying(
        &self,
        budget: &Budget,
        platform: &AwsCredentials,
        s: &ConnectionUnderTest<'_>,
        role_arn: &str,
    ) -> (Result<AwsCredentials, AwsFailure>, u64, u32) {
        let started = Instant::now();
        let mut wait = self.retry_base;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let session = AssumeRole::session_name();
            let req = AssumeRole {
                role_arn,
                session_name: &session,
                duration_seconds: s.session_duration.as_secs(),
                external_id: s.external_id.map(|e| e.as_str()),
            };
            let (res, _) = budget
                .call(self.identity.assume_role(platform, s.region, &req))
                .await;
            let denied = matches!(&res, Err(f) if f.kind() == FailureKind::Denied);
            if !denied || attempts >= DELEGATION_ATTEMPTS || budget.left() < wait + RESERVE {
                return (res, started.elapsed().as_millis() as u64, attempts);
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}

/// Every step after a platform that could not act, skipped.
fn skip_rest(found: &mut Findings) {
    for name in ["assume_role", "role_identity"] {
        let next = skipped(name, &found.steps[0]);
        found.steps.push(next);
    }
}

/// The platform's own principal could not act: the operator's side, never the user's,
/// so the test is `unreachable` (not recorded against the integration).
fn platform_failure(s: &ConnectionUnderTest<'_>, f: &AwsFailure, ms: u64) -> Step {
    if f.kind().is_outage() {
        return unreachable("platform", ms, "STS AssumeRole", s.region, f);
    }
    Step {
        aws_error_code: f.code.clone(),
        hint: Some(
            "This is not a problem with your role: the platform's own principal could not act \
             (the operator's PLATFORM_ROLE_ARN and its trust policy, see template.yaml's \
             PlatformRole). Retry later; if it persists, tell the platform's operator."
                .into(),
        ),
        ..step(
            "platform",
            StepStatus::Unreachable,
            ms,
            format!(
                "the platform's principal is not available: {}",
                f.describe()
            ),
        )
    }
}

/// Why the platform may not assume the role: the trust policy it needs, filled in.
fn assume_failure(
    session: &PlatformSession,
    role_arn: &str,
    s: &ConnectionUnderTest<'_>,
    f: &AwsFailure,
    ms: u64,
    attempts: u32,
) -> Step {
    if f.kind().is_outage() {
        return unreachable("assume_role", ms, "STS AssumeRole", s.region, f);
    }
    let principal = &session.principal_arn;
    let ext = s.external_id.map(|e| e.as_str()).unwrap_or("");
    let tried = if attempts > 1 {
        format!(" (tried {attempts} times over {} s)", ms / 1000)
    } else {
        String::new()
    };
    let mut stop = failed(
        "assume_role",
        ms,
        format!(
            "the platform's principal {principal} may not assume {role_arn} with the \
             integration's External ID: {}{tried}",
            f.describe()
        ),
        Some(f),
        format!(
            "The role's trust policy must allow sts:AssumeRole to the principal {principal} \
             with the condition sts:ExternalId = \"{ext}\" (StringEquals; see \
             policies.role_trust_policy, or create the role with the onboarding CloudFormation \
             template). Also confirm the role name and AWS Account ID. A role created or \
             changed seconds ago may need a minute before AWS applies it: test again."
        ),
    );
    stop.policies = Some(json!({
        "role_trust_policy": policies::delegation_trust_policy(principal, ext),
    }));
    stop
}
