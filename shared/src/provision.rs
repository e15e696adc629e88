//! State bucket provisioning: claims a `pending` bucket with a conditional update, creates
//! (or adopts) it with the integration's own credentials, hardens it, and records
//! `ready` with a Terraform backend block, or `failed` with a reason a person can act on.

use crate::error::{Error, Result};
use crate::model::{
    bucket_arn, is_before, now_rfc3339, role_arn, timestamp_ago, BucketStatus, Integration,
    Partition, StateBucket,
};
use crate::ports::{
    AssumeRole, AwsCredentials, AwsFailure, AwsIdentity, BucketAdmin, BucketGuard, CreateBucket,
    Hardening, WriteOutcome,
};
use crate::service::IntegrationService;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;

/// Lambda event filter of the stream trigger (template.yaml `FilterCriteria`): only
/// records whose new image has a pending state bucket invoke the function.
pub const STREAM_FILTER: &str = r#"{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"state_bucket": {"M": {"status": {"S": ["pending"]}}}}}}"#;

#[derive(Debug, Clone)]
pub struct Settings {
    pub noncurrent_days: u32,
    pub kms_key_arn: Option<String>,
    /// A `provisioning` status older than this belongs to a crashed run and may be taken over.
    pub stale_after: Duration,
    /// A `pending` status older than this has lost its stream event (record age limit,
    /// on-failure queue, a disabled trigger): a retry request or the sweeper re-drives it.
    pub pending_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            noncurrent_days: 90,
            kms_key_arn: None,
            stale_after: Duration::from_secs(900),
            pending_after: Duration::from_secs(300),
        }
    }
}

impl Settings {
    /// `STATE_BUCKET_NONCURRENT_DAYS`, `STATE_BUCKET_KMS_KEY_ARN`,
    /// `PROVISION_STALE_AFTER_SECONDS`, `PROVISION_PENDING_AFTER_SECONDS`.
    pub fn from_env() -> std::result::Result<Self, String> {
        let d = Settings::default();
        let num = |name: &str, default: u64| -> std::result::Result<u64, String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} must be a positive whole number")),
                _ => Ok(default),
            }
        };
        Ok(Settings {
            noncurrent_days: num("STATE_BUCKET_NONCURRENT_DAYS", d.noncurrent_days as u64)? as u32,
            kms_key_arn: std::env::var("STATE_BUCKET_KMS_KEY_ARN")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            stale_after: Duration::from_secs(num(
                "PROVISION_STALE_AFTER_SECONDS",
                d.stale_after.as_secs(),
            )?),
            pending_after: Duration::from_secs(num(
                "PROVISION_PENDING_AFTER_SECONDS",
                d.pending_after.as_secs(),
            )?),
        })
    }
}

/// What one provisioning attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: no bucket requested, already ready/failed, or another run holds it.
    Skipped(&'static str),
    Ready,
    Failed(String),
}

#[derive(Clone)]
pub struct Provisioner {
    integrations: IntegrationService,
    identity: Arc<dyn AwsIdentity>,
    s3: Arc<dyn BucketAdmin>,
    settings: Settings,
}

/// The IAM permission an S3 operation needs, for failure reasons.
fn permission(op: &str) -> &'static str {
    match op {
        "CreateBucket" => "s3:CreateBucket",
        "HeadBucket" => "s3:ListBucket",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "PutBucketEncryption" => "s3:PutEncryptionConfiguration",
        "PutPublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "PutBucketOwnershipControls" => "s3:PutBucketOwnershipControls",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "PutBucketLifecycleConfiguration" => "s3:PutLifecycleConfiguration",
        "PutBucketTagging" => "s3:PutBucketTagging",
        "AssumeRole" => "sts:AssumeRole",
        _ => "the matching permission",
    }
}

fn reason(op: &str, resource: &str, f: &AwsFailure) -> String {
    // One classification for every caller (`AwsFailure::kind`).
    use crate::ports::FailureKind as K;
    match f.kind() {
        K::Denied => format!(
            "{op} was denied ({}): the credentials lack {} on {resource}",
            f.describe(),
            permission(op)
        ),
        K::InvalidCredentials => format!(
            "{op} was refused: AWS does not accept the integration's access key ({}); \
             rotate the keys (PATCH with both key fields), then retry with POST .../state-bucket",
            f.describe()
        ),
        k if k.is_outage() => format!(
            "{op} could not be completed because AWS could not be reached or answered with \
             its own failure ({}); this is not a permission problem: retry with POST \
             .../state-bucket",
            f.describe()
        ),
        _ => format!("{op} failed: {}", f.describe()),
    }
}

/// The block users paste into their Terraform/OpenTofu configuration. Workspaces other
/// than `default` get their own keys under `workspace_key_prefix`.
pub fn backend_block(bucket: &str, region: &str, integration_name: &str) -> String {
    format!(
        r#"terraform {{
  backend "s3" {{
    bucket               = "{bucket}"
    key                  = "{integration_name}/terraform.tfstate"
    workspace_key_prefix = "workspaces"
    region               = "{region}"
    encrypt              = true
    use_lockfile         = true
  }}
}}
"#
    )
}

impl Provisioner {
    pub fn new(
        integrations: IntegrationService,
        identity: Arc<dyn AwsIdentity>,
        s3: Arc<dyn BucketAdmin>,
        settings: Settings,
    ) -> Self {
        Self {
            integrations,
            identity,
            s3,
            settings,
        }
    }

    /// How long a bucket may keep `status` before a retry request or the sweeper
    /// re-drives it; `None` for the statuses that are never re-driven.
    fn redrive_after(&self, status: BucketStatus) -> Option<Duration> {
        match status {
            BucketStatus::Pending => Some(self.settings.pending_after),
            BucketStatus::Provisioning => Some(self.settings.stale_after),
            BucketStatus::Ready | BucketStatus::Failed => None,
        }
    }

    /// Provisions the integration's bucket if it is pending (or stuck). Errors are this
    /// service's own dependency failures (DynamoDB, KMS): the caller should retry.
    pub async fn provision(&self, id: &str) -> Result<Outcome> {
        let Some(integration) = self.integrations.store().get(id).await? else {
            return Ok(Outcome::Skipped("integration deleted"));
        };
        let Some(bucket) = integration.state_bucket.clone() else {
            return Ok(Outcome::Skipped("no state bucket requested"));
        };
        let stale_before = timestamp_ago(self.settings.stale_after);
        match bucket.status {
            BucketStatus::Pending => {}
            BucketStatus::Provisioning
                if is_before(bucket.status_changed_at.as_deref(), &stale_before) => {}
            BucketStatus::Provisioning => {
                return Ok(Outcome::Skipped("another run is provisioning"))
            }
            BucketStatus::Ready => return Ok(Outcome::Skipped("already ready")),
            BucketStatus::Failed => {
                return Ok(Outcome::Skipped("failed; waiting for a retry request"))
            }
        }
        let mut claimed = StateBucket {
            status: BucketStatus::Provisioning,
            reason: None,
            attempts: bucket.attempts + 1,
            status_changed_at: Some(now_rfc3339()),
            ..bucket.clone()
        };
        let guard = BucketGuard {
            allow_absent: false,
            from: &[BucketStatus::Pending],
            unchanged_since_before: Some((BucketStatus::Provisioning, &stale_before)),
        };
        if self
            .integrations
            .store()
            .set_bucket(id, &claimed, guard)
            .await?
            != WriteOutcome::Written
        {
            return Ok(Outcome::Skipped("another run claimed it"));
        }
        tracing::info!(integration_id = id, bucket = %claimed.name, attempt = claimed.attempts, "provisioning state bucket");

        let result = self.run(&integration, &claimed).await;
        let outcome = match result {
            Ok(Ok(arn)) => {
                claimed.status = BucketStatus::Ready;
                claimed.arn = Some(arn);
                claimed.backend = Some(backend_block(
                    &claimed.name,
                    &claimed.region,
                    &integration.name,
                ));
                Outcome::Ready
            }
            Ok(Err(why)) => {
                claimed.status = BucketStatus::Failed;
                claimed.reason = Some(why.clone());
                Outcome::Failed(why)
            }
            Err(e) => {
                // Our own dependency failed (e.g. KMS): hand the claim back so a retry can
                // take it at once, and let the caller report the record as failed.
                claimed.status = BucketStatus::Pending;
                claimed.status_changed_at = Some(now_rfc3339());
                let back = BucketGuard {
                    from: &[BucketStatus::Provisioning],
                    ..Default::default()
                };
                if let Err(release) = self
                    .integrations
                    .store()
                    .set_bucket(id, &claimed, back)
                    .await
                {
                    tracing::warn!(integration_id = id, error = %release, "could not release the claim");
                }
                return Err(e);
            }
        };
        claimed.status_changed_at = Some(now_rfc3339());
        let done = BucketGuard {
            from: &[BucketStatus::Provisioning],
            ..Default::default()
        };
        self.integrations
            .store()
            .set_bucket(id, &claimed, done)
            .await?;
        tracing::info!(
            integration_id = id,
            status = claimed.status.as_str(),
            reason = claimed.reason.as_deref(),
            "state bucket provisioning finished"
        );
        Ok(outcome)
    }

    /// `Ok(Ok(arn))` ready, `Ok(Err(reason))` failed in the user's account, `Err` ours.
    async fn run(
        &self,
        i: &Integration,
        bucket: &StateBucket,
    ) -> Result<std::result::Result<String, String>> {
        let partition = Partition::of_region(&bucket.region);
        let secret = self.integrations.secret_of(i).await?;
        let user = AwsCredentials {
            access_key_id: i.aws_access_key_id.clone(),
            secret_access_key: secret,
            session_token: None,
        };
        let creds = match &i.aws_assumed_role_name {
            None => user,
            Some(role) => {
                let arn = role_arn(partition, &i.aws_account_id, role);
                let session = format!(
                    "infrakitchen-{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                let req = AssumeRole {
                    role_arn: &arn,
                    session_name: &session,
                    duration_seconds: i.aws_session_duration,
                    external_id: i.aws_external_id.as_deref(),
                };
                match self.identity.assume_role(&user, &bucket.region, &req).await {
                    Ok(c) => c,
                    Err(f) => return Ok(Err(reason("AssumeRole", &arn, &f))),
                }
            }
        };
        let arn = bucket_arn(partition, &bucket.name);
        match self
            .s3
            .create_bucket(&creds, &bucket.region, &bucket.name)
            .await
        {
            Ok(CreateBucket::Created | CreateBucket::AlreadyOwned) => {}
            Ok(CreateBucket::Taken) => return Ok(Err(taken(&bucket.name, &i.aws_account_id))),
            Err(f) => return Ok(Err(reason("CreateBucket", &arn, &f))),
        }
        match self
            .s3
            .owned_by(&creds, &bucket.region, &bucket.name, &i.aws_account_id)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(Err(taken(&bucket.name, &i.aws_account_id))),
            Err(f) => return Ok(Err(reason("HeadBucket", &arn, &f))),
        }
        let spec = Hardening {
            partition,
            noncurrent_days: self.settings.noncurrent_days,
            kms_key_arn: self.settings.kms_key_arn.clone(),
            tags: vec![
                ("infrakitchen:integration-id".into(), i.id.clone()),
                ("infrakitchen:integration-name".into(), i.name.clone()),
                ("infrakitchen:purpose".into(), "terraform-state".into()),
            ],
        };
        let failures = self
            .s3
            .harden(&creds, &bucket.region, &bucket.name, &spec)
            .await;
        if !failures.is_empty() {
            let reasons: Vec<String> = failures.iter().map(|(op, f)| reason(op, &arn, f)).collect();
            return Ok(Err(format!(
                "the bucket exists but is not fully hardened: {}",
                reasons.join("; ")
            )));
        }
        Ok(Ok(arn))
    }

    /// Handles a DynamoDB stream batch; reports only the records that must be retried.
    pub async fn handle_stream(&self, event: Event) -> DynamoDbEventResponse {
        let jobs = event.records.iter().map(|r| async move {
            let id = pending_integration(r)?;
            match self.provision(&id).await {
                Ok(outcome) => {
                    tracing::debug!(integration_id = %id, ?outcome, "stream record handled");
                    None
                }
                Err(e) => {
                    tracing::warn!(integration_id = %id, error = %e, "stream record failed; will be retried");
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = r.change.sequence_number.clone();
                    Some(failure)
                }
            }
        });
        let failures = futures::future::join_all(jobs)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failures;
        response
    }
}

fn taken(bucket: &str, account: &str) -> String {
    format!(
        "bucket name {bucket} is owned by another AWS account: S3 names are global. Ask that \
         account's owner to delete it, or register the integration for the account that owns \
         it; the name is fixed to infrakitchen-{account}-bucket"
    )
}

/// The integration id of a stream record whose new image has a pending state bucket
/// (the same test as the trigger's filter, applied again in case the filter is missing).
pub fn pending_integration(r: &EventRecord) -> Option<String> {
    if r.event_name != "INSERT" && r.event_name != "MODIFY" {
        return None;
    }
    let image = serde_json::to_value(&r.change.new_image).ok()?;
    let status = image
        .pointer("/state_bucket/M/status/S")
        .and_then(|v| v.as_str())?;
    if status != "pending" {
        return None;
    }
    image
        .pointer("/pk/S")
        .and_then(|v| v.as_str())?
        .strip_prefix("I#")
        .map(str::to_owned)
}

/// `POST .../state-bucket`: queues a bucket that was not requested or failed; re-drives
/// one stuck in `pending` (its event was lost) or `provisioning` (its run crashed) past
/// the thresholds by writing it `pending` again, which the stream delivers anew; leaves
/// a fresh `pending`/`provisioning` and a `ready` bucket as they are.
pub async fn request(p: &Provisioner, id: &str) -> Result<StateBucket> {
    let current = p.integrations.get(id).await?;
    if let Some(b) = &current.state_bucket {
        if let Some(after) = p.redrive_after(b.status) {
            let before = timestamp_ago(after);
            if is_before(b.status_changed_at.as_deref(), &before) {
                let again = StateBucket {
                    status: BucketStatus::Pending,
                    status_changed_at: Some(now_rfc3339()),
                    ..b.clone()
                };
                let guard = BucketGuard {
                    unchanged_since_before: Some((b.status, &before)),
                    ..Default::default()
                };
                if p.integrations.store().set_bucket(id, &again, guard).await?
                    == WriteOutcome::Written
                {
                    tracing::info!(
                        integration_id = id,
                        was = b.status.as_str(),
                        since = b.status_changed_at.as_deref(),
                        "state bucket re-driven on request"
                    );
                    return Ok(again);
                }
            }
        }
    }
    p.integrations.request_bucket(id).await
}

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub due: usize,
    pub ready: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Our own dependency failed for these: they stay due for the next sweep.
    pub errors: usize,
    /// Not started within the sweep's time budget: due again next time.
    pub deferred: usize,
}

/// Buckets one sweep takes on (per status), how many it provisions at once, and how
/// long it keeps starting new ones: a sweep runs inside the function's 120 s timeout
/// (one provisioning takes seconds, ~10 s at worst with the per-call timeouts), and a
/// backlog drains over a few scheduled runs rather than in one long one.
pub const SWEEP_BATCH: usize = 25;
const SWEEP_CONCURRENCY: usize = 5;
const SWEEP_START_BUDGET: Duration = Duration::from_secs(60);

impl Provisioner {
    /// The scheduled sweeper: provisions every bucket that has been `pending` longer than
    /// `pending_after` or `provisioning` longer than `stale_after`. The claim is the same
    /// conditional update as the stream's, so a sweep never races a live run.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let store = self.integrations.store();
        let pending_before = timestamp_ago(self.settings.pending_after);
        let stale_before = timestamp_ago(self.settings.stale_after);
        let (pending, stale) = tokio::join!(
            store.buckets_due(BucketStatus::Pending, &pending_before, SWEEP_BATCH),
            store.buckets_due(BucketStatus::Provisioning, &stale_before, SWEEP_BATCH),
        );
        let mut ids = pending?;
        ids.extend(stale?);
        ids.dedup();
        let mut report = SweepReport {
            due: ids.len(),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let outcomes: Vec<(String, Option<Result<Outcome>>)> =
            futures::stream::iter(ids.into_iter().map(|id| async move {
                if started.elapsed() > SWEEP_START_BUDGET {
                    return (id, None);
                }
                let outcome = self.provision(&id).await;
                (id, Some(outcome))
            }))
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        for (id, outcome) in outcomes {
            match outcome {
                None => report.deferred += 1,
                Some(Ok(Outcome::Ready)) => report.ready += 1,
                Some(Ok(Outcome::Failed(_))) => report.failed += 1,
                Some(Ok(Outcome::Skipped(_))) => report.skipped += 1,
                Some(Err(e)) => {
                    tracing::warn!(integration_id = %id, error = %e, "sweep could not provision; due again next time");
                    report.errors += 1;
                }
            }
        }
        if report.due > 0 {
            tracing::info!(?report, "state bucket sweep");
        }
        Ok(report)
    }
}

/// `GET .../state-bucket`: the status, or 404 when none was requested.
pub async fn status(p: &Provisioner, id: &str) -> Result<StateBucket> {
    p.integrations.get(id).await?.state_bucket.ok_or_else(|| {
        Error::not_found(format!(
            "state bucket of integration '{id}' (none requested; POST to request one)"
        ))
    })
}

/// The three triggers of the provision-bucket Lambda (template.yaml): the table's stream,
/// the EventBridge schedule of the sweeper, and API Gateway (the state-bucket routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Stream,
    Schedule,
    Http,
}

impl Trigger {
    /// Each source names itself in its envelope: DynamoDB stream records carry
    /// `eventSource: aws:dynamodb`, EventBridge events `source: aws.events`; anything else
    /// must parse as an API Gateway request.
    pub fn of(payload: &serde_json::Value) -> Self {
        let text = |ptr: &str| payload.pointer(ptr).and_then(|v| v.as_str());
        if text("/Records/0/eventSource") == Some("aws:dynamodb") {
            Trigger::Stream
        } else if text("/source") == Some("aws.events")
            && text("/detail-type") == Some("Scheduled Event")
        {
            Trigger::Schedule
        } else {
            Trigger::Http
        }
    }
}

/// Entry point of the provision-bucket Lambda: dispatches on the trigger.
pub async fn dispatch(
    p: &Provisioner,
    payload: serde_json::Value,
) -> std::result::Result<serde_json::Value, String> {
    match Trigger::of(&payload) {
        Trigger::Stream => {
            let event: Event =
                serde_json::from_value(payload).map_err(|e| format!("stream event: {e}"))?;
            serde_json::to_value(p.handle_stream(event).await).map_err(|e| e.to_string())
        }
        Trigger::Schedule => {
            // A failed sweep fails the invocation: EventBridge retries it, and the next
            // scheduled run finds the same buckets due anyway.
            let report = p.sweep().await.map_err(|e| format!("sweep: {e}"))?;
            serde_json::to_value(report).map_err(|e| e.to_string())
        }
        Trigger::Http => {
            let lambda_req: lambda_http::request::LambdaRequest =
                serde_json::from_value(payload).map_err(|e| format!("unsupported event: {e}"))?;
            let resp = crate::api::state_bucket(p, lambda_req.into()).await;
            serde_json::to_value(crate::api::apigw_v2_response(resp)).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trigger_is_read_from_the_envelope() {
        let stream = json!({"Records": [{"eventSource": "aws:dynamodb", "eventName": "MODIFY"}]});
        let schedule = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let other_event = json!({"source": "aws.events", "detail-type": "Object Created"});
        let http = json!({"version": "2.0", "routeKey": "GET /integrations/aws/{id}/state-bucket"});
        assert_eq!(Trigger::of(&stream), Trigger::Stream);
        assert_eq!(Trigger::of(&schedule), Trigger::Schedule);
        assert_eq!(Trigger::of(&other_event), Trigger::Http);
        assert_eq!(Trigger::of(&http), Trigger::Http);
        let events = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/");
        for (file, want) in [
            ("provision-bucket.stream.json", Trigger::Stream),
            ("provision-bucket.sweep.json", Trigger::Schedule),
            ("provision-bucket.post.json", Trigger::Http),
            ("provision-bucket.get.json", Trigger::Http),
        ] {
            let text = std::fs::read_to_string(format!("{events}{file}")).expect(file);
            let payload: serde_json::Value = serde_json::from_str(&text).expect(file);
            assert_eq!(Trigger::of(&payload), want, "{file}");
        }
    }
}
