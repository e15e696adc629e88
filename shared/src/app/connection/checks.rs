//! The steps of Test Connection, in order: credentials, account, role, state bucket.
//! Each step here only judges an answer; `ConnectionTester::run` decides which calls go
//! out together.

use super::bucket::BucketFindings;
use super::steps::{credentials_failure, failed, passed, skipped, step, unreachable, Budget};
use super::{
    Availability, BucketReport, ConnectionTester, ConnectionUnderTest, Findings, Step, StepStatus,
};
use crate::domain::{policies, AccessKeyId, BucketName, Partition, Region};
use crate::ports::{AwsCredentials, AwsFailure, CallerIdentity, FailureKind};
use serde_json::json;

/// Step 2, account: does it match? With a role, the role's account is the one that counts
/// (checked by `role_identity`); the user may be elsewhere (cross-account).
pub(super) fn account(
    caller: Option<&CallerIdentity>,
    s: &ConnectionUnderTest<'_>,
    found: &mut Findings,
) -> bool {
    let account = s.aws_account_id;
    let Some(id) = caller else {
        let stop = skipped("account", &found.steps[0]);
        found.steps.push(stop);
        return false;
    };
    if s.role.is_some() {
        let how = if *account == id.account.as_str() {
            "the same account".to_owned()
        } else {
            format!("account {} (cross-account)", id.account)
        };
        let detail = format!("the role is in account {account}; the user is in {how}");
        found.steps.push(passed("account", 0, detail));
        return true;
    }
    if *account == id.account.as_str() {
        let fact = format!("the keys belong to account {}", id.account);
        found.steps.push(passed("account", 0, fact.clone()));
        found.proves.push(fact);
        return true;
    }
    found.steps.push(failed(
        "account",
        0,
        format!(
            "the keys belong to account {} ({}), not to {account}",
            id.account, id.arn
        ),
        None,
        format!(
            "Confirm the AWS Account ID is correct and matches the account where the user \
             exists, or set an assumed role in account {account} that this user may assume."
        ),
    ));
    false
}

/// Step 1, credentials: do the keys authenticate? The caller's identity, or `None` after a failure.
pub(super) fn credentials(
    (res, ms): (Result<CallerIdentity, AwsFailure>, u64),
    key_id: &AccessKeyId,
    s: &ConnectionUnderTest<'_>,
    found: &mut Findings,
) -> Option<CallerIdentity> {
    match res {
        Ok(id) if super::is_root_arn(&id.arn) => {
            // Nothing limits the root user: its keys are refused, and the later steps
            // still run (the keys work), so the report shows all there is to fix.
            found.steps.push(failed(
                "credentials",
                ms,
                format!(
                    "access key {} belongs to the root user of account {} ({}), not to an \
                     IAM user",
                    key_id.masked(),
                    id.account,
                    id.arn
                ),
                None,
                "Root user access keys cannot be limited by any IAM policy, and AWS advises \
                 never to create them. Create an IAM user with only the permissions the \
                 platform needs (or use role delegation, which stores no key at all), use its \
                 access key here, then delete the root user's access key (account menu > \
                 Security credentials > Access keys)."
                    .into(),
            ));
            found.caller_arn = Some(id.arn.clone());
            Some(id)
        }
        Ok(id) => {
            let detail = format!("authenticated as {}", id.arn);
            found.steps.push(passed("credentials", ms, detail));
            found.proves.push(format!(
                "access key {} is active and the secret matches it: AWS authenticates it \
                 as {}",
                key_id.masked(),
                id.arn
            ));
            found.caller_arn = Some(id.arn.clone());
            Some(id)
        }
        Err(f) => {
            let stop = credentials_failure(key_id, s.region, &f, ms);
            found.steps.push(stop);
            None
        }
    }
}

/// Step 3, role: may the user assume it? The role's temporary credentials when it may.
/// Without a caller (the keys failed) the role's steps are skipped, whatever STS said.
pub(super) fn assume_role(
    (res, ms): (Result<AwsCredentials, AwsFailure>, u64),
    role_arn: &str,
    caller: Option<&CallerIdentity>,
    s: &ConnectionUnderTest<'_>,
    found: &mut Findings,
) -> Option<AwsCredentials> {
    let Some(caller) = caller else {
        for name in ["assume_role", "role_identity"] {
            let next = skipped(name, &found.steps[0]);
            found.steps.push(next);
        }
        return None;
    };
    let temp = match res {
        Ok(temp) => temp,
        Err(f) => {
            let stop = assume_role_failure(caller, role_arn, s, &f, ms);
            let next = skipped("role_identity", &stop);
            found.steps.push(stop);
            found.steps.push(next);
            return None;
        }
    };
    found
        .steps
        .push(passed("assume_role", ms, format!("assumed {role_arn}")));
    let ext = s
        .external_id
        .map(|_| " with the configured ExternalId")
        .unwrap_or_default();
    found.proves.push(format!(
        "{} may assume {role_arn}{ext} for {} s sessions: the user's sts:AssumeRole \
         permission and the role's trust policy both allow it",
        caller.arn, s.session_duration
    ));
    Some(temp)
}

/// Step 4: do the role's temporary credentials act in the account?
pub(super) fn role_identity(
    (res, ms): (Result<CallerIdentity, AwsFailure>, u64),
    s: &ConnectionUnderTest<'_>,
    found: &mut Findings,
) -> bool {
    match res {
        Ok(id) if *s.aws_account_id == id.account.as_str() => {
            let detail = format!("acting as {} in account {}", id.arn, id.account);
            found.steps.push(passed("role_identity", ms, detail));
            found.proves.push(format!(
                "the role's temporary credentials work and act in account {} as {}",
                id.account, id.arn
            ));
            found.assumed_role_arn = Some(id.arn);
            return true;
        }
        Ok(id) => found.steps.push(failed(
            "role_identity",
            ms,
            format!(
                "the role's credentials belong to account {}, not to {}",
                id.account, s.aws_account_id
            ),
            None,
            "Confirm the AWS Account ID is the account the role lives in.".into(),
        )),
        Err(f) if f.kind().is_outage() => found.steps.push(unreachable(
            "role_identity",
            ms,
            "STS GetCallerIdentity",
            s.region,
            &f,
        )),
        Err(f) => found.steps.push(failed(
            "role_identity",
            ms,
            format!(
                "GetCallerIdentity with the role's credentials failed: {}",
                f.describe()
            ),
            Some(&f),
            "Retry; if it persists, check the role's session policies and SCPs.".into(),
        )),
    }
    false
}

/// Step 5, state bucket: is the name usable by this account? `None` when no working
/// credentials for the account were established (the check's answer, if any, is moot).
pub(super) fn state_bucket(
    checked: Option<(Step, Availability)>,
    s: &ConnectionUnderTest<'_>,
    found: &mut Findings,
) {
    let Some((step_found, availability)) = checked else {
        let outage = found
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Unreachable);
        found.steps.push(step(
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
        ));
        return;
    };
    let bucket = s.aws_account_id.state_bucket_name();
    match availability {
        Availability::Available => found.proves.push(format!(
            "the state bucket name {bucket} is free: no bucket of that name exists yet"
        )),
        Availability::Owned => found.proves.push(format!(
            "the state bucket {bucket} already exists in account {}",
            s.aws_account_id
        )),
        _ => {}
    }
    found.steps.push(step_found);
    found.state_bucket = Some(BucketReport {
        name: bucket,
        region: s.region.clone(),
        availability,
    });
}

impl ConnectionTester {
    /// The bucket check with `creds`, when the test asks for one.
    pub(super) async fn bucket_check(
        &self,
        budget: &Budget,
        s: &ConnectionUnderTest<'_>,
        creds: &AwsCredentials,
    ) -> Option<(Step, Availability)> {
        if !s.check_bucket {
            return None;
        }
        let bucket = s.aws_account_id.state_bucket_name();
        let partition = s.region.partition();
        Some(
            self.bucket_step(budget, creds, s.region, partition, &bucket)
                .await,
        )
    }

    /// HeadBucket and the caller's own buckets, at once: free, owned, taken, or unknown.
    async fn bucket_step(
        &self,
        budget: &Budget,
        creds: &AwsCredentials,
        region: &Region,
        partition: Partition,
        bucket: &BucketName,
    ) -> (Step, Availability) {
        // Independent: run both at once.
        let ((head, ms1), (own, ms2)) = tokio::join!(
            budget.call(self.buckets.head_bucket(creds, region, bucket)),
            budget.call(self.buckets.own_buckets(creds, region, bucket.as_str())),
        );
        let found = BucketFindings {
            head,
            own,
            ms: ms1.max(ms2),
            region,
            partition,
            bucket,
        };
        found.verdict()
    }
}

/// Why AssumeRole failed, with the policies that would fix a denial.
fn assume_role_failure(
    caller: &CallerIdentity,
    role_arn: &str,
    s: &ConnectionUnderTest<'_>,
    f: &AwsFailure,
    ms: u64,
) -> Step {
    match f.kind() {
        k if k.is_outage() => return unreachable("assume_role", ms, "STS AssumeRole", s.region, f),
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
                "role_trust_policy": policies::role_trust_policy(&caller.arn, s.external_id.map(|e| e.as_str())),
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
