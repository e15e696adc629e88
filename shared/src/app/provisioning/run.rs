//! One provisioning run in the user's account: assume the role if one is set, create or
//! adopt the bucket, check its owner while hardening it; and the reasons a person can act on.

use super::{Means, Provisioner};
use crate::domain::{AccountId, BucketName, Integration, RoleName, StateBucket};
use crate::error::{Error, Result};
use crate::ports::{
    AssumeRole, AwsCredentials, AwsFailure, AwsIdentity, CreateBucket, FailureKind, Hardening,
    PlatformSession,
};

/// The integration's role, assumed with `base` (the user's keys or the platform's
/// session) for work on its state bucket, in the bucket's region: its temporary
/// credentials, or the role's ARN and why AssumeRole failed. Provisioning and the health
/// check act on the bucket this way.
pub(crate) async fn assume_integration_role(
    identity: &dyn AwsIdentity,
    i: &Integration,
    role: &RoleName,
    bucket: &StateBucket,
    base: &AwsCredentials,
) -> std::result::Result<AwsCredentials, (String, AwsFailure)> {
    let arn = role.arn(bucket.region.partition(), &i.aws_account_id);
    let session = AssumeRole::session_name();
    let req = AssumeRole {
        role_arn: &arn,
        session_name: &session,
        duration_seconds: i.aws_session_duration.as_secs(),
        external_id: i.aws_external_id.as_ref().map(|e| e.as_str()),
    };
    match identity.assume_role(base, &bucket.region, &req).await {
        Ok(creds) => Ok(creds),
        Err(f) => Err((arn, f)),
    }
}

/// A run's verdict on the user's side: the bucket's ARN, or why it failed.
type Verdict = std::result::Result<String, String>;

impl Provisioner {
    /// `Ok(Ok(arn))` ready, `Ok(Err(reason))` failed in the user's account, `Err` ours
    /// (including the secret that could not be opened).
    pub(super) async fn run(
        &self,
        i: &Integration,
        bucket: &StateBucket,
        means: Means,
    ) -> Result<Verdict> {
        let secret = match means {
            Means::Secret(secret) => secret?,
            Means::Platform(session) => {
                return Ok(match self.delegated(i, bucket, session).await {
                    Ok(creds) => self.create_and_harden(i, bucket, &creds).await,
                    Err(why) => Err(why),
                })
            }
        };
        let creds = match (i.credentials.key_id(), secret) {
            (Some(key_id), Some(secret)) => {
                let user = AwsCredentials {
                    access_key_id: key_id.as_str().to_owned(),
                    secret_access_key: secret,
                    session_token: None,
                };
                match &i.aws_assumed_role_name {
                    None => Ok(user),
                    Some(role) => self.assume(i, role, bucket, &user).await,
                }
            }
            _ => {
                return Err(Error::internal(
                    "an integration's key id and secret disagree",
                ))
            }
        };
        match creds {
            Ok(creds) => Ok(self.create_and_harden(i, bucket, &creds).await),
            Err(why) => Ok(Err(why)),
        }
    }

    /// Role delegation: the platform's own session (fetched beside the claim) assumes the
    /// user's role with the integration's External ID.
    async fn delegated(
        &self,
        i: &Integration,
        bucket: &StateBucket,
        session: Option<std::result::Result<PlatformSession, AwsFailure>>,
    ) -> std::result::Result<AwsCredentials, String> {
        let Some(session) = session else {
            return Err(
                "role delegation is not configured on the platform (no platform \
                        principal); tell the platform's operator"
                    .into(),
            );
        };
        let Some(role) = &i.aws_assumed_role_name else {
            return Err(
                "the integration names no role to assume: set aws_assumed_role_name, \
                        then retry with POST .../state-bucket"
                    .into(),
            );
        };
        let session = session.map_err(|f| {
            format!(
                "the platform's own principal could not act ({}); this is not a problem with \
                 your role: retry with POST .../state-bucket",
                f.describe()
            )
        })?;
        let ext = i.aws_external_id.as_ref().map_or("", |e| e.as_str());
        self.assume(i, role, bucket, &session.credentials)
            .await
            .map_err(|why| {
                format!(
                    "{why}. With role delegation the role's trust policy must allow \
                     sts:AssumeRole to {} with the condition sts:ExternalId = \"{ext}\"",
                    session.principal_arn
                )
            })
    }

    /// The role's temporary credentials, or why AssumeRole failed.
    async fn assume(
        &self,
        i: &Integration,
        role: &RoleName,
        bucket: &StateBucket,
        user: &AwsCredentials,
    ) -> std::result::Result<AwsCredentials, String> {
        assume_integration_role(self.identity.as_ref(), i, role, bucket, user)
            .await
            .map_err(|(arn, f)| reason("AssumeRole", &arn, &f))
    }

    /// Creates (or adopts) the bucket, then checks that the account owns it while every
    /// hardening setting is applied; reruns converge.
    async fn create_and_harden(
        &self,
        i: &Integration,
        bucket: &StateBucket,
        creds: &AwsCredentials,
    ) -> Verdict {
        let (region, name, account) = (&bucket.region, &bucket.name, &i.aws_account_id);
        let partition = region.partition();
        let arn = name.arn(partition);
        match self.s3.create_bucket(creds, region, name).await {
            Ok(CreateBucket::Created | CreateBucket::AlreadyOwned) => {}
            Ok(CreateBucket::Taken) => return Err(taken(name, account)),
            Err(f) => return Err(reason("CreateBucket", &arn, &f)),
        }
        let spec = Hardening {
            expected_owner: account.clone(),
            partition,
            noncurrent_days: self.settings.noncurrent_days,
            kms_key_arn: self.settings.kms_key_arn.clone(),
            tags: vec![
                ("infrakitchen:integration-id".into(), i.id.to_string()),
                ("infrakitchen:integration-name".into(), i.name.to_string()),
                ("infrakitchen:purpose".into(), "terraform-state".into()),
            ],
        };
        // Independent: every setting expects the account as the owner, so S3 applies none
        // to another account's bucket; the owner check decides first, whatever they say.
        let (owned, failures) = tokio::join!(
            self.s3.owned_by(creds, region, name, account),
            self.s3.harden(creds, region, name, &spec),
        );
        match owned {
            Ok(true) => {}
            Ok(false) => return Err(taken(name, account)),
            Err(f) => return Err(reason("HeadBucket", &arn, &f)),
        }
        if !failures.is_empty() {
            let reasons: Vec<String> = failures.iter().map(|(op, f)| reason(op, &arn, f)).collect();
            return Err(format!(
                "the bucket exists but is not fully hardened: {}",
                reasons.join("; ")
            ));
        }
        Ok(arn)
    }
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
    use FailureKind as K;
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

fn taken(bucket: &BucketName, account: &AccountId) -> String {
    format!(
        "bucket name {bucket} is owned by another AWS account: S3 names are global. Ask that \
         account's owner to delete it, or register the integration for the account that owns \
         it; the name is fixed to infrakitchen-{account}-bucket"
    )
}
