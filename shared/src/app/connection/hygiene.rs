//! Credential hygiene of an access-key integration (issue 22): the key's age and last use
//! as IAM records them, and IAM's policy simulation of the principal the platform acts
//! as. All of it is advice: a finding is a warning, never a failed step. (The one hygiene
//! finding that fails the test, keys of the account's root user, is the credentials
//! step's: see `checks::credentials`.)
//!
//! IAM answers with the keys under test, about themselves: `iam:ListAccessKeys` and
//! `iam:GetAccessKeyLastUsed` on the user, `iam:SimulatePrincipalPolicy` on the acting
//! principal. A refused one is named in its warning, so the user can allow it.

use super::steps::Budget;
use super::{
    AccessKeyFacts, ConnectionTester, ConnectionUnderTest, Findings, Warning, WarningCode,
};
use crate::domain::{policies, AccessKeyId, Region, Timestamp};
use crate::ports::{ActionOn, AwsCredentials, AwsFailure, Denial, FailureKind, KeyLastUse};

/// CIS AWS Foundations Benchmark 1.14: "Ensure access keys are rotated every 90 days or
/// less". A key this old gets a `key_age` warning.
pub const KEY_MAX_AGE_DAYS: i64 = 90;

/// A key with no recorded use for this long gets a `key_unused` warning, and so does a
/// key never used this long after its creation (a key created for this integration and
/// tested at once has no use on record yet: IAM records uses hours late, so "never used"
/// alone would warn about every new key). CIS 1.12 asks to disable credentials unused for
/// 45 days; the platform itself uses the key, so only a long-idle integration gets here.
pub const KEY_UNUSED_DAYS: i64 = 90;

/// At most this many configured actions (`HYGIENE_SIMULATE_ACTIONS`) are simulated.
pub const MAX_SIMULATED_ACTIONS: usize = 100;

type Answer<T> = (Result<T, AwsFailure>, u64);

/// What IAM answered about the key under test.
pub(super) struct KeyAnswers {
    created: Answer<Option<Timestamp>>,
    last_used: Answer<KeyLastUse>,
}

/// The policy simulation's answer, and whom it was about.
pub(super) struct Simulated {
    principal: String,
    asked: usize,
    answer: Result<Vec<Denial>, AwsFailure>,
}

/// `arn:<partition>:iam::<account>:root`: the account's root user, whom no policy limits.
pub fn is_root_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    matches!(parts.as_slice(), ["arn", _, "iam", "", account, "root"]
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
}

/// An IAM user's or role's ARN: a principal IAM can simulate.
fn simulable(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "iam", "", _, resource]
        if resource.starts_with("user/") || resource.starts_with("role/"))
}

impl ConnectionTester {
    /// ListAccessKeys and GetAccessKeyLastUsed at once, within the budget; `None` without
    /// an inspector.
    pub(super) async fn key_facts(
        &self,
        budget: &Budget,
        creds: &AwsCredentials,
        region: &Region,
        key_id: &AccessKeyId,
    ) -> Option<KeyAnswers> {
        let iam = self.inspector.as_ref()?;
        let (created, last_used) = tokio::join!(
            budget.call(iam.key_created(creds, region, key_id.as_str())),
            budget.call(iam.key_last_used(creds, region, key_id.as_str())),
        );
        Some(KeyAnswers { created, last_used })
    }

    /// IAM's simulation of `principal`'s policies (with its own `creds`) for the actions
    /// the platform needs; `None` without an inspector, without actions to ask about, or
    /// for a principal no policy limits (the root user).
    pub(super) async fn simulation(
        &self,
        budget: &Budget,
        creds: &AwsCredentials,
        s: &ConnectionUnderTest<'_>,
        principal: &str,
    ) -> Option<Simulated> {
        let iam = self.inspector.as_ref()?;
        let checks = self.actions_needed(s);
        if checks.is_empty() || !simulable(principal) {
            return None;
        }
        let (answer, _) = budget
            .call(iam.simulate(creds, s.region, principal, &checks))
            .await;
        Some(Simulated {
            principal: principal.to_owned(),
            asked: checks.len(),
            answer,
        })
    }

    /// The state bucket's actions (when the test checks the bucket: provisioning will use
    /// them), then the configured ones on any resource.
    fn actions_needed(&self, s: &ConnectionUnderTest<'_>) -> Vec<ActionOn> {
        let mut checks = Vec::new();
        if s.check_bucket {
            let bucket = s.aws_account_id.state_bucket_name();
            checks.extend(
                policies::state_bucket_actions(s.region.partition(), &bucket)
                    .into_iter()
                    .map(|(action, resource)| ActionOn { action, resource }),
            );
        }
        checks.extend(
            self.simulate_actions
                .iter()
                .map(|a| ActionOn::new(a.as_str(), "*")),
        );
        checks
    }
}

fn warning(code: WarningCode, message: String) -> Warning {
    Warning {
        code,
        message,
        permission: None,
        denied_actions: vec![],
    }
}

/// Whole days from `t` to `now` (0 for a time after `now`).
fn days(t: &Timestamp, now: &Timestamp) -> i64 {
    (now.instant() - t.instant()).whole_days().max(0)
}

fn date(t: &Timestamp) -> String {
    t.instant().date().to_string()
}

/// A fact IAM did not give: the permission that would, when refused.
fn unavailable(f: &AwsFailure, op: &str, what: &str) -> Warning {
    let action = format!("iam:{op}");
    let kind = f.kind();
    let message = if kind == FailureKind::Denied {
        format!(
            "could not check {what}: the user may not call {action} on itself ({}). Allow \
             it (the setup guide's key_hygiene_policy) to have the key checked.",
            f.describe()
        )
    } else if kind.is_outage() {
        format!(
            "could not check {what}: IAM {op} did not complete: {}. This says nothing about \
             the key; test again later.",
            f.describe()
        )
    } else {
        format!("could not check {what}: IAM {op} failed: {}.", f.describe())
    };
    Warning {
        permission: (kind == FailureKind::Denied).then_some(action),
        ..warning(WarningCode::KeyFactsUnavailable, message)
    }
}

/// The key's age and last use against the thresholds, as of `now`; the facts IAM gave go
/// to the report's `access_key`. Its warnings come first in the report.
pub(super) fn judge_key(
    a: KeyAnswers,
    key_id: &AccessKeyId,
    now: &Timestamp,
    found: &mut Findings,
) {
    let key = key_id.masked();
    let mut warnings = Vec::new();
    let mut facts = AccessKeyFacts::default();
    let mut known = false;
    match a.created.0 {
        Ok(created) => {
            known = true;
            facts.created_at = created;
        }
        Err(f) => warnings.push(unavailable(&f, "ListAccessKeys", "the key's age")),
    }
    let last_use_known = match a.last_used.0 {
        Ok(used) => {
            known = true;
            facts.last_used_at = used.at;
            facts.last_used_service = used.service;
            true
        }
        Err(f) => {
            warnings.push(unavailable(
                &f,
                "GetAccessKeyLastUsed",
                "when the key was last used",
            ));
            false
        }
    };
    if let Some(created) = &facts.created_at {
        let age = days(created, now);
        if age >= KEY_MAX_AGE_DAYS {
            warnings.push(warning(
                WarningCode::KeyAge,
                format!(
                    "access key {key} was created on {} ({age} days ago): rotate access keys \
                     every {KEY_MAX_AGE_DAYS} days or less (CIS AWS Foundations Benchmark \
                     1.14). Create a second key for the user, put it in this integration, \
                     then deactivate and delete this one.",
                    date(created)
                ),
            ));
        }
    }
    match (&facts.last_used_at, &facts.created_at) {
        (Some(at), _) if days(at, now) >= KEY_UNUSED_DAYS => {
            let by = facts
                .last_used_service
                .as_ref()
                .map(|s| format!(" (by {s})"))
                .unwrap_or_default();
            warnings.push(warning(
                WarningCode::KeyUnused,
                format!(
                    "access key {key} was last used on {}{by}, {} days ago: a key nothing \
                     uses is a standing risk. If this integration is still needed, use it; \
                     otherwise deactivate and delete the key.",
                    date(at),
                    days(at, now)
                ),
            ));
        }
        (None, Some(created)) if last_use_known && days(created, now) >= KEY_UNUSED_DAYS => {
            warnings.push(warning(
                WarningCode::KeyUnused,
                format!(
                    "IAM has no record of any use of access key {key}, created {} days ago: \
                     a key nothing uses is a standing risk. If this integration is still \
                     needed, use it; otherwise deactivate and delete the key.",
                    days(created, now)
                ),
            ));
        }
        _ => {}
    }
    found.warnings.splice(0..0, warnings);
    found.access_key = known.then_some(facts);
}

/// The simulation's verdict: the actions denied, or why it could not tell.
pub(super) fn judge_simulation(sim: Option<Simulated>, found: &mut Findings) {
    let Some(Simulated {
        principal,
        asked,
        answer,
    }) = sim
    else {
        return;
    };
    let w = match answer {
        Ok(denied) if denied.is_empty() => return,
        Ok(denied) => {
            let list: Vec<String> = denied
                .iter()
                .map(|d| format!("{} on {} ({})", d.action, d.resource, d.decision))
                .collect();
            let mut actions: Vec<String> = Vec::new();
            for d in denied {
                if !actions.contains(&d.action) {
                    actions.push(d.action);
                }
            }
            Warning {
                denied_actions: actions,
                ..warning(
                    WarningCode::PermissionsDenied,
                    format!(
                        "IAM's policy simulator denies {principal} {} of the {asked} actions \
                         the platform needs: {}. What needs them would fail (provisioning \
                         names the first missing one): grant them (the state bucket's are in \
                         policies.state_bucket_policy of the setup guide).",
                        list.len(),
                        list.join(", ")
                    ),
                )
            }
        }
        Err(f) if f.kind() == FailureKind::Denied => Warning {
            permission: Some("iam:SimulatePrincipalPolicy".into()),
            ..warning(
                WarningCode::PermissionsUnchecked,
                format!(
                    "could not check the {asked} actions the platform needs: {principal} may \
                     not call iam:SimulatePrincipalPolicy on itself ({}). Allow it to have \
                     them checked here; until then a missing one shows only when it is used.",
                    f.describe()
                ),
            )
        },
        Err(f) => warning(
            WarningCode::PermissionsUnchecked,
            format!(
                "could not check the {asked} actions the platform needs: IAM \
                 SimulatePrincipalPolicy gave no simulation: {}.",
                f.describe()
            ),
        ),
    };
    found.warnings.push(w);
}

#[cfg(test)]
mod tests;
