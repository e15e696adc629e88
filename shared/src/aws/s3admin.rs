//! `BucketAdmin` on S3 with a user's credentials: create, confirm ownership, harden.

use super::customer::{failure, CustomerAccount};
use crate::domain::{AccountId, BucketName, Region};
use crate::ports::{AwsCredentials, AwsFailure, BucketAdmin, CreateBucket, FailureKind, Hardening};
use async_trait::async_trait;
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use serde_json::json;

/// Days before an interrupted multipart upload of a state file is cleaned up.
const ABORT_MULTIPART_DAYS: i32 = 7;

fn build_failure(e: impl std::fmt::Display) -> AwsFailure {
    AwsFailure {
        code: Some("InvalidRequest".into()),
        message: Some(e.to_string()),
        ..Default::default()
    }
}

/// Denies every request to the bucket or its objects that does not use TLS.
pub fn tls_only_policy(arn: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, format!("{arn}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}

async fn versioning(s3: &Client, bucket: &BucketName) -> Result<(), AwsFailure> {
    s3.put_bucket_versioning()
        .bucket(bucket.as_str())
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn encryption(s3: &Client, bucket: &BucketName, kms: Option<&str>) -> Result<(), AwsFailure> {
    let default = match kms {
        Some(key) => ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .kms_master_key_id(key),
        None => {
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256)
        }
    }
    .build()
    .map_err(build_failure)?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(default)
        // A bucket key cuts KMS requests (and cost) for SSE-KMS.
        .bucket_key_enabled(kms.is_some())
        .build();
    let config = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(build_failure)?;
    s3.put_bucket_encryption()
        .bucket(bucket.as_str())
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn public_access_block(s3: &Client, bucket: &BucketName) -> Result<(), AwsFailure> {
    s3.put_public_access_block()
        .bucket(bucket.as_str())
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn ownership(s3: &Client, bucket: &BucketName) -> Result<(), AwsFailure> {
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .map_err(build_failure)?;
    s3.put_bucket_ownership_controls()
        .bucket(bucket.as_str())
        .ownership_controls(
            OwnershipControls::builder()
                .rules(rule)
                .build()
                .map_err(build_failure)?,
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn policy(s3: &Client, bucket: &BucketName, arn: &str) -> Result<(), AwsFailure> {
    s3.put_bucket_policy()
        .bucket(bucket.as_str())
        .policy(tls_only_policy(arn))
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn lifecycle(s3: &Client, bucket: &BucketName, days: u32) -> Result<(), AwsFailure> {
    let rule = LifecycleRule::builder()
        .id("infrakitchen-state-versions")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(days as i32)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(ABORT_MULTIPART_DAYS)
                .build(),
        )
        .build()
        .map_err(build_failure)?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket.as_str())
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(build_failure)?,
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn tagging(
    s3: &Client,
    bucket: &BucketName,
    tags: &[(String, String)],
) -> Result<(), AwsFailure> {
    let mut set = Tagging::builder();
    for (k, v) in tags {
        set = set.tag_set(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(build_failure)?,
        );
    }
    s3.put_bucket_tagging()
        .bucket(bucket.as_str())
        .tagging(set.build().map_err(build_failure)?)
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

#[async_trait]
impl BucketAdmin for CustomerAccount {
    async fn create_bucket(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
    ) -> Result<CreateBucket, AwsFailure> {
        let mut req = self
            .s3(creds, region)
            .create_bucket()
            .bucket(bucket.as_str());
        // us-east-1 is the one region that takes no LocationConstraint.
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(CreateBucket::Created),
            Err(e) => match e.as_service_error() {
                Some(CreateBucketError::BucketAlreadyOwnedByYou(_)) => {
                    Ok(CreateBucket::AlreadyOwned)
                }
                Some(CreateBucketError::BucketAlreadyExists(_)) => Ok(CreateBucket::Taken),
                _ => Err(failure(&e)),
            },
        }
    }

    async fn owned_by(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        account: &AccountId,
    ) -> Result<bool, AwsFailure> {
        let res = self
            .s3(creds, region)
            .head_bucket()
            .bucket(bucket.as_str())
            .expected_bucket_owner(account.as_str())
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => {
                // ExpectedBucketOwner refuses another owner's bucket with a bare 403.
                let f = failure(&e);
                if f.kind() == FailureKind::Denied {
                    Ok(false)
                } else {
                    Err(f)
                }
            }
        }
    }

    async fn harden(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
    ) -> Vec<(&'static str, AwsFailure)> {
        let s3 = self.s3(creds, region);
        let arn = bucket.arn(spec.partition);
        // Independent settings: apply them all at once.
        let (v, e, p, o, pol, l, t) = tokio::join!(
            versioning(&s3, bucket),
            encryption(&s3, bucket, spec.kms_key_arn.as_deref()),
            public_access_block(&s3, bucket),
            ownership(&s3, bucket),
            policy(&s3, bucket, &arn),
            lifecycle(&s3, bucket, spec.noncurrent_days),
            tagging(&s3, bucket, &spec.tags),
        );
        [
            ("PutBucketVersioning", v),
            ("PutBucketEncryption", e),
            ("PutPublicAccessBlock", p),
            ("PutBucketOwnershipControls", o),
            ("PutBucketPolicy", pol),
            ("PutBucketLifecycleConfiguration", l),
            ("PutBucketTagging", t),
        ]
        .into_iter()
        .filter_map(|(op, r)| r.err().map(|f| (op, f)))
        .collect()
    }
}
