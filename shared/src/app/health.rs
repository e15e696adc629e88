//! The scheduled health check: re-tests every integration (least recently checked
//! first, a few at a time, within a time budget), records `health` and `last_test`,
//! checks each ready state bucket's hardening and re-applies what drifted, and records
//! every transition in the audit trail. A run that runs out of time leaves the rest at
//! the head of the queue: the next run starts with them, so none starves.

use super::connection::{ConnectionTester, Outcome, Report, StepStatus};
use super::integrations::Integrations;
use super::provisioning::assume_integration_role;
use super::test_connection::saved_under_test;
use crate::domain::{
    AuditAction, AuditEvent, BucketStatus, Caller, Health, Integration, LastTest, StateBucket,
    Timestamp, Transition, Verdict,
};
use crate::error::Result;
use crate::ports::{
    AwsCredentials, AwsIdentity, BucketCheck, BucketInspector, Hardening, HealthDue, HealthQueue,
    HealthUpdate, IntegrationStore, PlatformPrincipal, Setting, WriteOutcome,
};
use futures::StreamExt as _;
use secrecy::SecretString;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the health check (the function's environment, read by `wiring`).
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// A run starts no check after this long; the function's timeout leaves at least
    /// [`CHECK_MAX`] beyond it for the checks in flight.
    pub budget: Duration,
    /// Checks in flight at once.
    pub concurrency: usize,
    /// An integration checked more recently than this is not due (a run on a schedule
    /// shorter than this picks up only what earlier runs left).
    pub min_interval: Duration,
    /// At most this many checks per run (unbounded when `None`): for simulations.
    pub max_checks: Option<usize>,
    pub noncurrent_days: u32,
    pub kms_key_arn: Option<String>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            budget: Duration::from_secs(600),
            concurrency: 8,
            min_interval: Duration::from_secs(20 * 3600),
            max_checks: None,
            noncurrent_days: 90,
            kms_key_arn: None,
        }
    }
}

/// The longest one check can take: Test Connection's budget plus the bucket's reads and
/// repairs (each bounded by the per-call timeouts).
pub const CHECK_MAX: Duration = Duration::from_secs(30);

/// What one run found and did: the summary an operator alarms on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HealthRunReport {
    pub checked: usize,
    pub ok: usize,
    pub failing: usize,
    pub became_failing: usize,
    pub recovered: usize,
    /// AWS could not be reached: no verdict recorded, checked again next run.
    pub unreachable: usize,
    pub buckets_checked: usize,
    pub buckets_repaired: usize,
    pub buckets_lost: usize,
    /// Our own dependency failed (DynamoDB, KMS): checked again next run.
    pub errors: usize,
    /// Another run recorded a check of the same integration first.
    pub skipped: usize,
    /// Due but not started before the budget ran out (at most 1,000 counted): first in
    /// the next run.
    pub remaining: usize,
    pub duration_ms: u64,
}

/// What one check came to, for the run's counts.
#[derive(Debug, Default)]
struct Checked {
    verdict: Option<bool>,
    transition: Option<Transition>,
    bucket_checked: bool,
    repaired: bool,
    lost: bool,
    stale: bool,
}

/// The health check, built once per process.
#[derive(Clone)]
pub struct HealthCheck {
    integrations: Integrations,
    store: Arc<dyn IntegrationStore>,
    queue: Arc<dyn HealthQueue>,
    tester: ConnectionTester,
    identity: Arc<dyn AwsIdentity>,
    platform: Option<Arc<dyn PlatformPrincipal>>,
    buckets: Arc<dyn BucketInspector>,
    settings: HealthSettings,
    me: Caller,
}

impl HealthCheck {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        integrations: Integrations,
        store: Arc<dyn IntegrationStore>,
        queue: Arc<dyn HealthQueue>,
        tester: ConnectionTester,
        identity: Arc<dyn AwsIdentity>,
        platform: Option<Arc<dyn PlatformPrincipal>>,
        buckets: Arc<dyn BucketInspector>,
        settings: HealthSettings,
    ) -> Self {
        HealthCheck {
            integrations,
            store,
            queue,
            tester,
            identity,
            platform,
            buckets,
            settings,
            me: Caller::system("health-check"),
        }
    }

    /// The same check with other settings (a test's budget, interval or cap).
    pub fn with_settings(mut self, settings: HealthSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    /// One run: batches of the least recently checked, `concurrency` at a time, until
    /// none is due or the budget (less one check's worst case) is spent.
    pub async fn run(&self) -> Result<HealthRunReport> {
        let started = Instant::now();
        let s = &self.settings;
        let stop_at = s.budget;
        let batch = (s.concurrency * 4).clamp(1, 1000);
        let mut report = HealthRunReport::default();
        // Ids taken up in this run: one that could not be recorded (our dependency
        // failed) stays at the head of the queue, and must not be taken up again now.
        let mut attempted: HashSet<String> = HashSet::new();
        let mut out_of_time = false;
        loop {
            let left = s.max_checks.map(|m| m.saturating_sub(attempted.len()));
            if left == Some(0) || started.elapsed() >= stop_at {
                out_of_time = true;
                break;
            }
            let before = Timestamp::ago(s.min_interval);
            let due: Vec<HealthDue> = self
                .queue
                .health_due(&before, batch + attempted.len().min(1000))
                .await?
                .into_iter()
                .filter(|d| !attempted.contains(&d.id))
                .take(left.unwrap_or(batch).min(batch))
                .collect();
            if due.is_empty() {
                break;
            }
            attempted.extend(due.iter().map(|d| d.id.clone()));
            let results: Vec<Option<Result<Checked>>> = futures::stream::iter(due)
                .map(|d| async move {
                    // Not started once the budget is spent: first in the next run.
                    if started.elapsed() >= stop_at {
                        return None;
                    }
                    let res = self.check(&d).await;
                    if let Err(e) = &res {
                        tracing::warn!(integration_id = %d.id, error = %e, "health check could not check; first again next run");
                    }
                    Some(res)
                })
                .buffer_unordered(s.concurrency.max(1))
                .collect()
                .await;
            for r in results {
                match r {
                    None => {
                        out_of_time = true;
                        report.remaining += 1;
                    }
                    Some(Err(_)) => report.errors += 1,
                    Some(Ok(c)) => report.count(&c),
                }
            }
        }
        if out_of_time {
            // What is still due: the next run's head (not a scan: at most 1,000 read).
            let before = Timestamp::ago(s.min_interval);
            let still = self.queue.health_due(&before, 1000).await?;
            report.remaining += still.iter().filter(|d| !attempted.contains(&d.id)).count();
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// One integration: test it, check its ready bucket, record the verdict.
    async fn check(&self, due: &HealthDue) -> Result<Checked> {
        let Some(i) = self.store.get(&due.id).await? else {
            // Deleted since the queue was read: its queue entry went with it.
            return Ok(Checked {
                stale: true,
                ..Default::default()
            });
        };
        let secret = self.integrations.secret_of(&i).await?;
        let test = self
            .tester
            .run(&saved_under_test(&i, secret.as_ref())?)
            .await;
        let now = Timestamp::now();
        let mut checked = Checked::default();
        let mut audit = Vec::new();
        let mut lost_bucket: Option<StateBucket> = None;
        let mut bucket_problem: Option<Verdict> = None;
        let ready = i
            .state_bucket
            .as_ref()
            .filter(|b| b.status == BucketStatus::Ready);
        if let (Outcome::Passed, Some(bucket)) = (test.outcome, ready) {
            checked.bucket_checked = true;
            let found = self.bucket(&i, bucket, secret.as_ref(), &now).await;
            if let Some(e) = found.event {
                audit.push(e);
            }
            checked.repaired = found.repaired;
            checked.lost = found.lost.is_some();
            lost_bucket = found.lost;
            bucket_problem = found.problem;
        }
        drop(secret);
        let verdict = match (test.outcome, bucket_problem) {
            (Outcome::Unreachable, _) => None,
            (Outcome::Failed, _) => Some(failing_step(&test)),
            (Outcome::Passed, Some(problem)) => Some(problem),
            (Outcome::Passed, None) => Some(Verdict::Ok),
        };
        let (health, transition) = match verdict {
            Some(v) => {
                let (h, t) = Health::next(i.health.as_ref(), v, &now);
                (Some(h), Some(t))
            }
            None => (None, None),
        };
        if let (Some(h), Some(t)) = (&health, transition) {
            if let Some(e) = self.transition_event(&i, h, t) {
                audit.push(e);
            }
        }
        let last_test = test.outcome.recorded_ok().map(|ok| LastTest {
            at: now.clone(),
            ok,
        });
        checked.verdict = health
            .as_ref()
            .map(|h| h.status == crate::domain::HealthStatus::Ok);
        checked.transition = transition;
        let key = test.access_key.as_ref().and_then(|k| k.dates());
        let update = HealthUpdate {
            health: health.as_ref(),
            last_test: last_test.as_ref(),
            bucket: lost_bucket.as_ref(),
            key: key.as_ref(),
            taken_at: &now,
            seen: &due.queued_at,
        };
        if self
            .queue
            .record_health(i.id.as_str(), update, &audit)
            .await?
            == WriteOutcome::Stale
        {
            checked = Checked {
                stale: true,
                ..Default::default()
            };
        }
        Ok(checked)
    }

    fn transition_event(&self, i: &Integration, h: &Health, t: Transition) -> Option<AuditEvent> {
        let (action, detail) = match t {
            Transition::None => return None,
            Transition::BecameFailing => (
                AuditAction::HealthFailing,
                format!(
                    "health check: failing at the {} step: {}",
                    h.step.as_deref().unwrap_or("unknown"),
                    h.detail.as_deref().unwrap_or("no detail")
                ),
            ),
            Transition::Recovered => (
                AuditAction::HealthRecovered,
                "health check: ok again".to_owned(),
            ),
        };
        Some(AuditEvent::new(&self.me, &i.id, action).with_detail(detail))
    }

    /// The credentials the bucket is read and repaired with: the keys (through the role
    /// when one is set), or the platform's session through the delegated role.
    async fn acting(
        &self,
        i: &Integration,
        bucket: &StateBucket,
        secret: Option<&SecretString>,
    ) -> std::result::Result<AwsCredentials, String> {
        let base = match (i.credentials.key_id(), secret) {
            (Some(key_id), Some(secret)) => AwsCredentials {
                access_key_id: key_id.as_str().to_owned(),
                secret_access_key: secret.clone(),
                session_token: None,
            },
            _ => match &self.platform {
                Some(p) => p.session().await.map_err(|f| f.describe())?.credentials,
                None => return Err("role delegation is not configured on the platform".into()),
            },
        };
        let Some(role) = &i.aws_assumed_role_name else {
            return Ok(base);
        };
        assume_integration_role(self.identity.as_ref(), i, role, bucket, &base)
            .await
            .map_err(|(_, f)| f.describe())
    }

    /// Reads the ready bucket's hardening and re-applies what drifted.
    async fn bucket(
        &self,
        i: &Integration,
        bucket: &StateBucket,
        secret: Option<&SecretString>,
        now: &Timestamp,
    ) -> BucketFound {
        let mut found = BucketFound::default();
        let creds = match self.acting(i, bucket, secret).await {
            Ok(c) => c,
            Err(why) => {
                // The test passed a moment ago: a failure now is transient; next run.
                tracing::warn!(integration_id = %i.id, why, "health check: no credentials for the bucket check");
                return found;
            }
        };
        let spec = Hardening {
            expected_owner: i.aws_account_id.clone(),
            partition: bucket.region.partition(),
            noncurrent_days: self.settings.noncurrent_days,
            kms_key_arn: self.settings.kms_key_arn.clone(),
            tags: Vec::new(),
        };
        let name = &bucket.name;
        let check = self
            .buckets
            .inspect(&creds, &bucket.region, name, &spec)
            .await;
        match check {
            Err(f) => {
                tracing::warn!(integration_id = %i.id, failure = %f.describe(), "health check: could not read the state bucket");
            }
            Ok(BucketCheck::Missing) => {
                let why = format!(
                    "the state bucket {name} no longer exists (deleted outside the platform); \
                     it was not re-created: request it again with POST \
                     /integrations/aws/{}/state-bucket",
                    i.id
                );
                let mut b = bucket.clone();
                b.status = BucketStatus::Failed;
                b.reason = Some(why.clone());
                b.status_changed_at = Some(now.clone());
                found.lost = Some(b);
                found.event = Some(self.event(i, AuditAction::BucketLost, &why));
                found.problem = Some(Verdict::Failing {
                    step: "state_bucket".into(),
                    detail: why,
                    hint: Some(
                        "If Terraform state was in it, restore it from a backup before \
                         requesting the bucket again."
                            .into(),
                    ),
                });
            }
            Ok(BucketCheck::NotOwned) => {
                let why = format!(
                    "the state bucket {name} is not owned by account {} any more (or these \
                     credentials may no longer see it: s3:ListBucket); the platform changed \
                     nothing in it",
                    i.aws_account_id
                );
                found.event = Some(self.event(i, AuditAction::BucketLost, &why));
                found.problem = Some(Verdict::Failing {
                    step: "state_bucket".into(),
                    detail: why,
                    hint: Some(
                        "Check who owns the bucket; never point Terraform at a bucket of \
                         another account."
                            .into(),
                    ),
                });
                // Kept `ready`: a lost permission is not a lost bucket; the health says.
                found.lost = None;
            }
            Ok(BucketCheck::Present {
                drifted,
                unreadable,
            }) => {
                for (setting, f) in &unreadable {
                    tracing::warn!(integration_id = %i.id, setting = setting.as_str(), failure = %f.describe(), "health check: a bucket setting could not be read");
                }
                if drifted.is_empty() {
                    return found;
                }
                let failed = self
                    .buckets
                    .repair(&creds, &bucket.region, name, &spec, &drifted)
                    .await;
                let fixed: Vec<Setting> = drifted
                    .iter()
                    .copied()
                    .filter(|s| !failed.iter().any(|(f, _)| f == s))
                    .collect();
                let names =
                    |v: &[Setting]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
                let mut detail = format!(
                    "state bucket {name}: drifted: {}; re-applied: {}",
                    names(&drifted),
                    if fixed.is_empty() {
                        "none".to_owned()
                    } else {
                        names(&fixed)
                    }
                );
                if !failed.is_empty() {
                    let why: Vec<String> = failed
                        .iter()
                        .map(|(s, f)| format!("{}: {}", s.as_str(), f.describe()))
                        .collect();
                    detail.push_str(&format!("; could not re-apply: {}", why.join("; ")));
                    found.problem = Some(Verdict::Failing {
                        step: "state_bucket_hardening".into(),
                        detail: detail.clone(),
                        hint: Some(
                            "Grant the role or user the bucket's s3:Put* permissions \
                             (GET .../setup-policies), or restore the settings by hand."
                                .into(),
                        ),
                    });
                }
                found.repaired = !fixed.is_empty();
                found.event = Some(self.event(i, AuditAction::BucketRepaired, &detail));
            }
        }
        found
    }

    fn event(&self, i: &Integration, action: AuditAction, detail: &str) -> AuditEvent {
        AuditEvent::new(&self.me, &i.id, action).with_detail(detail.to_owned())
    }
}

/// What the bucket check found.
#[derive(Default)]
struct BucketFound {
    /// The bucket as it is to be recorded (deleted: `failed`).
    lost: Option<StateBucket>,
    event: Option<AuditEvent>,
    problem: Option<Verdict>,
    repaired: bool,
}

impl HealthRunReport {
    fn count(&mut self, c: &Checked) {
        if c.stale {
            self.skipped += 1;
            return;
        }
        self.checked += 1;
        match c.verdict {
            Some(true) => self.ok += 1,
            Some(false) => self.failing += 1,
            None => self.unreachable += 1,
        }
        match c.transition {
            Some(Transition::BecameFailing) => self.became_failing += 1,
            Some(Transition::Recovered) => self.recovered += 1,
            _ => {}
        }
        self.buckets_checked += usize::from(c.bucket_checked);
        self.buckets_repaired += usize::from(c.repaired);
        self.buckets_lost += usize::from(c.lost);
    }
}

/// The failing verdict of a failed test: its first failed step.
fn failing_step(r: &Report) -> Verdict {
    match r.steps.iter().find(|s| s.status == StepStatus::Failed) {
        Some(s) => Verdict::Failing {
            step: s.name.to_owned(),
            detail: s.detail.clone(),
            hint: s.hint.clone(),
        },
        None => Verdict::Failing {
            step: "unknown".into(),
            detail: r.summary.clone(),
            hint: None,
        },
    }
}

/// The run's summary as one CloudWatch Embedded Metric Format line: CloudWatch turns
/// it into metrics (namespace `InfraKitchen/Integrations`, by function name) that the
/// template's alarms watch; the same line is the run's structured log.
pub fn emf_line(r: &HealthRunReport, function_name: &str, now_ms: u128) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": "InfraKitchen/Integrations",
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "Checked", "Unit": "Count"},
                    {"Name": "Failing", "Unit": "Count"},
                    {"Name": "BecameFailing", "Unit": "Count"},
                    {"Name": "Recovered", "Unit": "Count"},
                    {"Name": "BucketsRepaired", "Unit": "Count"},
                    {"Name": "BucketsLost", "Unit": "Count"},
                    {"Name": "Remaining", "Unit": "Count"},
                    {"Name": "DurationMs", "Unit": "Milliseconds"}
                ]
            }]
        },
        "FunctionName": function_name,
        "message": "health check run",
        "Checked": r.checked,
        "Failing": r.failing,
        "BecameFailing": r.became_failing,
        "Recovered": r.recovered,
        "BucketsRepaired": r.buckets_repaired,
        "BucketsLost": r.buckets_lost,
        "Remaining": r.remaining,
        "DurationMs": r.duration_ms,
        "report": r,
    })
    .to_string()
}
