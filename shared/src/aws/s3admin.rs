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
pub(super) const ABORT_MULTIPART_DAYS: i32 = 7;

pub(super) fn build_failure(e: impl std::fmt::Display) -> AwsFailure {
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

pub(super) async fn versioning(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
) -> Result<(), AwsFailure> {
    s3.put_bucket_versioning()
        .bucket(bucket.as_str())
        .expected_bucket_owner(owner)
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

pub(super) async fn encryption(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
    kms: Option<&str>,
) -> Result<(), AwsFailure> {
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
        .expected_bucket_owner(owner)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

pub(super) async fn public_access_block(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
) -> Result<(), AwsFailure> {
    s3.put_public_access_block()
        .bucket(bucket.as_str())
        .expected_bucket_owner(owner)
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

pub(super) async fn ownership(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
) -> Result<(), AwsFailure> {
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .map_err(build_failure)?;
    s3.put_bucket_ownership_controls()
        .bucket(bucket.as_str())
        .expected_bucket_owner(owner)
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

async fn policy(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
    arn: &str,
) -> Result<(), AwsFailure> {
    s3.put_bucket_policy()
        .bucket(bucket.as_str())
        .expected_bucket_owner(owner)
        .policy(tls_only_policy(arn))
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

/// The state bucket's lifecycle rule: old state versions expire, and interrupted
/// uploads are cleaned up.
pub(super) const LIFECYCLE_RULE_ID: &str = "infrakitchen-state-versions";

pub(super) fn lifecycle_rule(days: u32) -> Result<LifecycleRule, AwsFailure> {
    LifecycleRule::builder()
        .id(LIFECYCLE_RULE_ID)
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
        .map_err(build_failure)
}

/// Puts `rules` as the bucket's whole lifecycle configuration.
pub(super) async fn put_lifecycle(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
    rules: Vec<LifecycleRule>,
) -> Result<(), AwsFailure> {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket.as_str())
        .expected_bucket_owner(owner)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(build_failure)?,
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| failure(&e))
}

async fn lifecycle(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
    days: u32,
) -> Result<(), AwsFailure> {
    put_lifecycle(s3, bucket, owner, vec![lifecycle_rule(days)?]).await
}

async fn tagging(
    s3: &Client,
    bucket: &BucketName,
    owner: &str,
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
        .expected_bucket_owner(owner)
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
        // Every setting names the owner it expects: S3 refuses it (403) on a bucket of
        // another account, so nothing here ever changes someone else's bucket.
        let owner = spec.expected_owner.as_str();
        // Independent settings: apply them all at once.
        let (v, e, p, o, pol, l, t) = tokio::join!(
            versioning(&s3, bucket, owner),
            encryption(&s3, bucket, owner, spec.kms_key_arn.as_deref()),
            public_access_block(&s3, bucket, owner),
            ownership(&s3, bucket, owner),
            policy(&s3, bucket, owner, &arn),
            lifecycle(&s3, bucket, owner, spec.noncurrent_days),
            tagging(&s3, bucket, owner, &spec.tags),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::body::SdkBody;
    use std::sync::{Arc, Mutex};

    /// A request's method and the `ExpectedBucketOwner` header it carried.
    type Seen = (String, Option<String>);

    /// An HTTP client that answers every request with an empty 200 and keeps what it saw.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Seen>>>);

    impl HttpConnector for Recorder {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let owner = request.headers().get("x-amz-expected-bucket-owner");
            let seen = (request.method().to_owned(), owner.map(str::to_owned));
            self.0.lock().unwrap().push(seen);
            let status = 200u16.try_into().unwrap();
            HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::empty())))
        }
    }

    impl HttpClient for Recorder {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    /// Every hardening setting and the owner check name the expected owner, so S3 never
    /// applies a setting to another account's bucket (moto ignores the header: this is
    /// where it is proven to be sent).
    #[tokio::test]
    async fn every_setting_and_the_owner_check_name_the_expected_owner() {
        let recorder = Recorder::default();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(recorder.clone())
            .load()
            .await;
        let account = CustomerAccount::new(&sdk);
        let creds = AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "secret".to_owned().into(),
            session_token: None,
        };
        let owner = AccountId::parse("123456789012").unwrap();
        let region = Region::parse("us-east-1").unwrap();
        let bucket = owner.state_bucket_name();
        let spec = Hardening {
            expected_owner: owner.clone(),
            partition: region.partition(),
            noncurrent_days: 90,
            kms_key_arn: None,
            tags: vec![("k".into(), "v".into())],
        };
        assert!(account
            .harden(&creds, &region, &bucket, &spec)
            .await
            .is_empty());
        let owned = account.owned_by(&creds, &region, &bucket, &owner).await;
        assert!(matches!(owned, Ok(true)), "{owned:?}");
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 8, "{seen:?}");
        for (method, expected) in seen {
            assert_eq!(expected.as_deref(), Some("123456789012"), "{method}");
        }
    }
}
