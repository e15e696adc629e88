//! A user's AWS account (STS, S3 and the IAM calls about the caller's own key) whose
//! answers a test scripts call by call, and which records every call made to it.
//! Unscripted calls get the answers of a healthy account where everything is allowed, the
//! state bucket does not exist yet, and the key was created and used a day ago.

use super::ACCOUNT;
use crate::domain::{AccountId, BucketName, Region, Timestamp};
use crate::ports::{
    AccessKeyInspector, ActionOn, AssumeRole, AwsCredentials, AwsFailure, AwsIdentity,
    BucketAccess, BucketAdmin, CallerIdentity, CreateBucket, Denial, Hardening, HeadBucket,
    KeyLastUse,
};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

pub(crate) const USER_ARN: &str = "arn:aws:iam::123456789012:user/InfraKitchenUser";
pub(crate) const TEMP_KEY_ID: &str = "ASIATEMPORARYEXAMPLE";

/// One call into the account: the operation, and what it was called with. `key_id` and
/// `secret` are the credentials used (the secret a fake sees is a test's, not a user's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    CallerIdentity {
        key_id: String,
        secret: String,
    },
    AssumeRole {
        key_id: String,
        secret: String,
        role_arn: String,
        external_id: Option<String>,
        duration_seconds: u32,
    },
    HeadBucket {
        bucket: String,
    },
    OwnBuckets {
        prefix: String,
    },
    CreateBucket {
        key_id: String,
        region: String,
        bucket: String,
    },
    OwnedBy {
        bucket: String,
        account: String,
    },
    Harden {
        bucket: String,
        expected_owner: String,
        kms_key_arn: Option<String>,
        noncurrent_days: u32,
        tags: Vec<(String, String)>,
    },
    KeyCreated {
        key_id: String,
    },
    KeyLastUsed {
        key_id: String,
    },
    Simulate {
        key_id: String,
        principal_arn: String,
        checks: Vec<ActionOn>,
    },
}

impl Call {
    /// The operation's AWS name.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Call::CallerIdentity { .. } => "GetCallerIdentity",
            Call::AssumeRole { .. } => "AssumeRole",
            Call::HeadBucket { .. } => "HeadBucket",
            Call::OwnBuckets { .. } => "ListBuckets",
            Call::CreateBucket { .. } => "CreateBucket",
            Call::OwnedBy { .. } => "HeadBucket(ExpectedBucketOwner)",
            Call::Harden { .. } => "Harden",
            Call::KeyCreated { .. } => "ListAccessKeys",
            Call::KeyLastUsed { .. } => "GetAccessKeyLastUsed",
            Call::Simulate { .. } => "SimulatePrincipalPolicy",
        }
    }
}

type Answer<T> = VecDeque<Result<T, AwsFailure>>;

/// Answers queued per operation, used one per call, oldest first.
#[derive(Default)]
struct Script {
    caller_identity: Answer<CallerIdentity>,
    assume_role: Answer<()>,
    head_bucket: Answer<HeadBucket>,
    own_buckets: Answer<Vec<String>>,
    create_bucket: Answer<CreateBucket>,
    owned_by: Answer<bool>,
    harden: VecDeque<Vec<(&'static str, AwsFailure)>>,
    key_created: Answer<Option<Timestamp>>,
    key_last_used: Answer<KeyLastUse>,
    simulate: Answer<Vec<Denial>>,
}

#[derive(Default)]
pub(crate) struct FakeAccount {
    script: Mutex<Script>,
    calls: Mutex<Vec<Call>>,
    trace: super::Trace,
}

/// An AWS error answer, built as the adapters build it from an SDK error.
pub(crate) fn aws_error(code: &str, status: u16) -> AwsFailure {
    AwsFailure {
        code: Some(code.into()),
        status: Some(status),
        message: Some(format!("{code} (scripted)")),
        ..Default::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn secret(creds: &AwsCredentials) -> String {
    creds.secret_access_key.expose_secret().to_owned()
}

impl FakeAccount {
    /// An account whose calls also go to `trace` (by AWS operation).
    pub(crate) fn traced(trace: &super::Trace) -> Self {
        Self {
            trace: trace.clone(),
            ..Default::default()
        }
    }

    pub(crate) fn answer_caller_identity(&self, a: Result<CallerIdentity, AwsFailure>) {
        lock(&self.script).caller_identity.push_back(a);
    }
    pub(crate) fn answer_assume_role(&self, a: Result<(), AwsFailure>) {
        lock(&self.script).assume_role.push_back(a);
    }
    pub(crate) fn answer_head_bucket(&self, a: Result<HeadBucket, AwsFailure>) {
        lock(&self.script).head_bucket.push_back(a);
    }
    pub(crate) fn answer_own_buckets(&self, a: Result<Vec<String>, AwsFailure>) {
        lock(&self.script).own_buckets.push_back(a);
    }
    pub(crate) fn answer_create_bucket(&self, a: Result<CreateBucket, AwsFailure>) {
        lock(&self.script).create_bucket.push_back(a);
    }
    pub(crate) fn answer_owned_by(&self, a: Result<bool, AwsFailure>) {
        lock(&self.script).owned_by.push_back(a);
    }
    /// The settings that fail, by S3 operation, for the next `harden`.
    pub(crate) fn answer_harden(&self, failures: Vec<(&'static str, AwsFailure)>) {
        lock(&self.script).harden.push_back(failures);
    }

    pub(crate) fn answer_key_created(&self, a: Result<Option<Timestamp>, AwsFailure>) {
        lock(&self.script).key_created.push_back(a);
    }
    pub(crate) fn answer_key_last_used(&self, a: Result<KeyLastUse, AwsFailure>) {
        lock(&self.script).key_last_used.push_back(a);
    }
    pub(crate) fn answer_simulate(&self, a: Result<Vec<Denial>, AwsFailure>) {
        lock(&self.script).simulate.push_back(a);
    }

    /// Every call made so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// The operations called so far, in order.
    pub(crate) fn ops(&self) -> Vec<&'static str> {
        lock(&self.calls).iter().map(Call::op).collect()
    }

    /// Records the call, then keeps it in flight across one yield (see `Trace`).
    async fn record(&self, call: Call) {
        let op = call.op();
        lock(&self.calls).push(call);
        self.trace.call(op).await;
    }

    fn next<T>(
        &self,
        pick: impl FnOnce(&mut Script) -> &mut Answer<T>,
    ) -> Option<Result<T, AwsFailure>> {
        pick(&mut lock(&self.script)).pop_front()
    }
}

#[async_trait]
impl AwsIdentity for FakeAccount {
    async fn caller_identity(
        &self,
        creds: &AwsCredentials,
        _region: &Region,
    ) -> Result<CallerIdentity, AwsFailure> {
        self.record(Call::CallerIdentity {
            key_id: creds.access_key_id.clone(),
            secret: secret(creds),
        })
        .await;
        self.next(|s| &mut s.caller_identity).unwrap_or_else(|| {
            let arn = match creds.session_token {
                Some(_) => "arn:aws:sts::123456789012:assumed-role/InfraKitchenRole/infrakitchen",
                None => USER_ARN,
            };
            Ok(CallerIdentity {
                arn: arn.into(),
                account: ACCOUNT.into(),
            })
        })
    }

    async fn assume_role(
        &self,
        creds: &AwsCredentials,
        _region: &Region,
        req: &AssumeRole<'_>,
    ) -> Result<AwsCredentials, AwsFailure> {
        self.record(Call::AssumeRole {
            key_id: creds.access_key_id.clone(),
            secret: secret(creds),
            role_arn: req.role_arn.into(),
            external_id: req.external_id.map(str::to_owned),
            duration_seconds: req.duration_seconds,
        })
        .await;
        self.next(|s| &mut s.assume_role).unwrap_or(Ok(()))?;
        Ok(AwsCredentials {
            access_key_id: TEMP_KEY_ID.into(),
            secret_access_key: SecretString::from("temporary-secret".to_owned()),
            session_token: Some(SecretString::from("session-token".to_owned())),
        })
    }
}

#[async_trait]
impl BucketAccess for FakeAccount {
    async fn head_bucket(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        bucket: &BucketName,
    ) -> Result<HeadBucket, AwsFailure> {
        self.record(Call::HeadBucket {
            bucket: bucket.to_string(),
        })
        .await;
        self.next(|s| &mut s.head_bucket)
            .unwrap_or(Ok(HeadBucket::NotFound))
    }

    async fn own_buckets(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        prefix: &str,
    ) -> Result<Vec<String>, AwsFailure> {
        self.record(Call::OwnBuckets {
            prefix: prefix.into(),
        })
        .await;
        self.next(|s| &mut s.own_buckets).unwrap_or(Ok(vec![]))
    }
}

#[async_trait]
impl BucketAdmin for FakeAccount {
    async fn create_bucket(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
    ) -> Result<CreateBucket, AwsFailure> {
        self.record(Call::CreateBucket {
            key_id: creds.access_key_id.clone(),
            region: region.to_string(),
            bucket: bucket.to_string(),
        })
        .await;
        self.next(|s| &mut s.create_bucket)
            .unwrap_or(Ok(CreateBucket::Created))
    }

    async fn owned_by(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        bucket: &BucketName,
        account: &AccountId,
    ) -> Result<bool, AwsFailure> {
        self.record(Call::OwnedBy {
            bucket: bucket.to_string(),
            account: account.to_string(),
        })
        .await;
        self.next(|s| &mut s.owned_by).unwrap_or(Ok(true))
    }

    async fn harden(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
    ) -> Vec<(&'static str, AwsFailure)> {
        self.record(Call::Harden {
            bucket: bucket.to_string(),
            expected_owner: spec.expected_owner.to_string(),
            kms_key_arn: spec.kms_key_arn.clone(),
            noncurrent_days: spec.noncurrent_days,
            tags: spec.tags.clone(),
        })
        .await;
        lock(&self.script).harden.pop_front().unwrap_or_default()
    }
}

/// A day ago: an unscripted key is young and in use.
fn yesterday() -> Timestamp {
    Timestamp::ago(std::time::Duration::from_secs(24 * 3600))
}

#[async_trait]
impl AccessKeyInspector for FakeAccount {
    async fn key_created(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        key_id: &str,
    ) -> Result<Option<Timestamp>, AwsFailure> {
        self.record(Call::KeyCreated {
            key_id: key_id.into(),
        })
        .await;
        self.next(|s| &mut s.key_created)
            .unwrap_or_else(|| Ok(Some(yesterday())))
    }

    async fn key_last_used(
        &self,
        _creds: &AwsCredentials,
        _region: &Region,
        key_id: &str,
    ) -> Result<KeyLastUse, AwsFailure> {
        self.record(Call::KeyLastUsed {
            key_id: key_id.into(),
        })
        .await;
        self.next(|s| &mut s.key_last_used).unwrap_or_else(|| {
            Ok(KeyLastUse {
                at: Some(yesterday()),
                service: Some("sts".into()),
            })
        })
    }

    async fn simulate(
        &self,
        creds: &AwsCredentials,
        _region: &Region,
        principal_arn: &str,
        checks: &[ActionOn],
    ) -> Result<Vec<Denial>, AwsFailure> {
        self.record(Call::Simulate {
            key_id: creds.access_key_id.clone(),
            principal_arn: principal_arn.into(),
            checks: checks.to_vec(),
        })
        .await;
        self.next(|s| &mut s.simulate).unwrap_or(Ok(vec![]))
    }
}
