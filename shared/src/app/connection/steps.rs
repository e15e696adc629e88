//! How a step's result is written, and the time budget every AWS call runs within.

use super::{Step, StepStatus};
use crate::domain::{AccessKeyId, Region};
use crate::ports::{AwsFailure, FailureKind};
use std::future::Future;
use std::time::{Duration, Instant};

/// The whole test's deadline.
pub(super) struct Budget {
    deadline: Instant,
    budget: Duration,
}

impl Budget {
    pub(super) fn start(budget: Duration) -> Self {
        Budget {
            deadline: Instant::now() + budget,
            budget,
        }
    }

    /// What is left of the budget.
    pub(super) fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Runs one AWS call within what is left of the budget.
    pub(super) async fn call<T>(
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

pub(super) fn step(name: &'static str, status: StepStatus, ms: u64, detail: String) -> Step {
    Step {
        name,
        status,
        duration_ms: ms,
        detail,
        aws_error_code: None,
        hint: None,
        policies: None,
        attempts: None,
    }
}

pub(super) fn passed(name: &'static str, ms: u64, detail: String) -> Step {
    step(name, StepStatus::Passed, ms, detail)
}

pub(super) fn failed(
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
pub(super) fn skipped(name: &'static str, after: &Step) -> Step {
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
pub(super) fn unreachable(
    name: &'static str,
    ms: u64,
    call: &str,
    region: &Region,
    f: &AwsFailure,
) -> Step {
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

pub(super) fn credentials_failure(
    key_id: &AccessKeyId,
    region: &Region,
    f: &AwsFailure,
    ms: u64,
) -> Step {
    let kind = f.kind();
    if kind.is_outage() {
        return unreachable("credentials", ms, "STS GetCallerIdentity", region, f);
    }
    let masked = key_id.masked();
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
