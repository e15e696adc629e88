//! `BucketInspector` on S3: reads a ready state bucket's hardening and re-applies what
//! drifted, with a user's credentials. Every call names the expected owner, so nothing
//! here reads or changes another account's bucket.

use super::customer::{failure, CustomerAccount};
use super::s3admin::{
    encryption, lifecycle_rule, ownership, public_access_block, put_lifecycle, tls_only_policy,
    versioning, LIFECYCLE_RULE_ID,
};
use crate::domain::{BucketName, Region};
use crate::ports::{
    AwsCredentials, AwsFailure, BucketCheck, BucketInspector, FailureKind, Hardening, Setting,
};
use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ExpirationStatus, LifecycleRule, ObjectOwnership, ServerSideEncryption,
};
use aws_sdk_s3::Client;
use serde_json::Value;

/// Error codes S3 answers for a setting that was never set (or was deleted): drift, not
/// a failure to read.
const NOT_SET: &[&str] = &[
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
    "OwnershipControlsNotFoundError",
    "NoSuchBucketPolicy",
    "NoSuchLifecycleConfiguration",
];

/// `Ok(true)` as hardened, `Ok(false)` drifted.
type Read = Result<bool, AwsFailure>;

fn read<T, E>(
    res: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    ok: impl FnOnce(T) -> bool,
) -> Read
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match res {
        Ok(out) => Ok(ok(out)),
        Err(e) => {
            let f = failure(&e);
            if f.code.as_deref().is_some_and(|c| NOT_SET.contains(&c)) {
                Ok(false)
            } else {
                Err(f)
            }
        }
    }
}

/// Does a policy document deny every request without TLS to the bucket and its objects?
pub(crate) fn denies_insecure_transport(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return false,
    };
    statements.iter().any(|s| {
        let deny = s.get("Effect").and_then(Value::as_str) == Some("Deny");
        let all = match s.get("Action") {
            Some(Value::String(a)) => a == "s3:*",
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some("s3:*")),
            _ => false,
        };
        let insecure = s
            .pointer("/Condition/Bool/aws:SecureTransport")
            .is_some_and(|v| v.as_str() == Some("false") || v.as_bool() == Some(false));
        let everyone = match s.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(p) => p.pointer("/AWS").is_some_and(|a| a.as_str() == Some("*")),
            None => false,
        };
        deny && all && insecure && everyone
    })
}

/// The bucket's policy with the TLS-only statement added (the bucket's other
/// statements kept), or ours alone when it has none or it does not parse.
pub(crate) fn with_tls_statement(existing: Option<&str>, arn: &str) -> String {
    let ours: Value = serde_json::from_str(&tls_only_policy(arn)).unwrap_or(Value::Null);
    let Some(mut doc) = existing.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return tls_only_policy(arn);
    };
    let Some(statement) = ours.pointer("/Statement/0").cloned() else {
        return tls_only_policy(arn);
    };
    match doc.get_mut("Statement") {
        Some(Value::Array(a)) => {
            // A statement of ours that no longer denies (edited by hand) is replaced.
            a.retain(|s| s.get("Sid").and_then(Value::as_str) != Some("DenyInsecureTransport"));
            a.push(statement);
        }
        Some(one) => {
            let kept = one.take();
            *one = Value::Array(vec![kept, statement]);
        }
        None => return tls_only_policy(arn),
    }
    doc.to_string()
}

fn lifecycle_holds(rules: &[LifecycleRule], days: u32) -> bool {
    rules.iter().any(|r| {
        r.id() == Some(LIFECYCLE_RULE_ID)
            && r.status() == &ExpirationStatus::Enabled
            && r.noncurrent_version_expiration()
                .and_then(|n| n.noncurrent_days())
                == Some(days as i32)
            && r.abort_incomplete_multipart_upload().is_some()
    })
}

async fn read_versioning(s3: &Client, bucket: &str, owner: &str) -> Read {
    let res = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await;
    if let Err(aws_sdk_s3::error::SdkError::ServiceError(e)) = &res {
        // A 200 the SDK could not parse (moto names the XML root after the operation):
        // the status is still in the body, and misreading it would "repair" nothing.
        let raw = e.raw();
        if raw.status().is_success() {
            let body = raw.body().bytes().map(String::from_utf8_lossy);
            return Ok(body.is_some_and(|b| b.contains("<Status>Enabled</Status>")));
        }
    }
    read(res, |o| {
        o.status() == Some(&BucketVersioningStatus::Enabled)
    })
}

async fn read_encryption(s3: &Client, bucket: &str, owner: &str, kms: Option<&str>) -> Read {
    let res = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await;
    read(res, |o| {
        let rules = o
            .server_side_encryption_configuration()
            .map(|c| c.rules())
            .unwrap_or_default();
        rules.iter().any(|r| {
            let Some(d) = r.apply_server_side_encryption_by_default() else {
                return false;
            };
            match kms {
                Some(key) => {
                    d.sse_algorithm() == &ServerSideEncryption::AwsKms
                        && d.kms_master_key_id() == Some(key)
                }
                None => d.sse_algorithm() == &ServerSideEncryption::Aes256,
            }
        })
    })
}

async fn read_public_access_block(s3: &Client, bucket: &str, owner: &str) -> Read {
    let res = s3
        .get_public_access_block()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await;
    read(res, |o| {
        o.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        })
    })
}

async fn read_ownership(s3: &Client, bucket: &str, owner: &str) -> Read {
    let res = s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await;
    read(res, |o| {
        o.ownership_controls().is_some_and(|c| {
            c.rules()
                .iter()
                .any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
        })
    })
}

async fn read_policy(s3: &Client, bucket: &str, owner: &str) -> Result<Option<String>, AwsFailure> {
    let res = s3
        .get_bucket_policy()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await;
    match res {
        Ok(o) => Ok(o.policy().map(str::to_owned)),
        Err(e) => {
            let f = failure(&e);
            if f.code.as_deref() == Some("NoSuchBucketPolicy") {
                Ok(None)
            } else {
                Err(f)
            }
        }
    }
}

async fn read_lifecycle(
    s3: &Client,
    bucket: &str,
    owner: &str,
) -> Result<Vec<LifecycleRule>, AwsFailure> {
    let res = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await;
    match res {
        Ok(o) => Ok(o.rules().to_vec()),
        Err(e) => {
            let f = failure(&e);
            if f.code.as_deref() == Some("NoSuchLifecycleConfiguration") {
                Ok(Vec::new())
            } else {
                Err(f)
            }
        }
    }
}

fn is_missing(f: &AwsFailure) -> bool {
    f.status == Some(404) || matches!(f.code.as_deref(), Some("NoSuchBucket" | "NotFound"))
}

#[async_trait]
impl BucketInspector for CustomerAccount {
    async fn inspect(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
    ) -> Result<BucketCheck, AwsFailure> {
        let s3 = self.s3(creds, region);
        let owner = spec.expected_owner.as_str();
        let name = bucket.as_str();
        // The owner check and every read at once: each read names the expected owner,
        // so none reads another account's bucket; the owner check decides first.
        let head = s3
            .head_bucket()
            .bucket(name)
            .expected_bucket_owner(owner)
            .send();
        let (head, v, e, p, o, pol, l) = tokio::join!(
            head,
            read_versioning(&s3, name, owner),
            read_encryption(&s3, name, owner, spec.kms_key_arn.as_deref()),
            read_public_access_block(&s3, name, owner),
            read_ownership(&s3, name, owner),
            read_policy(&s3, name, owner),
            read_lifecycle(&s3, name, owner),
        );
        if let Err(err) = head {
            let f = failure(&err);
            return match f.kind() {
                _ if is_missing(&f) => Ok(BucketCheck::Missing),
                // ExpectedBucketOwner refuses another owner's bucket with a bare 403.
                FailureKind::Denied => Ok(BucketCheck::NotOwned),
                _ => Err(f),
            };
        }
        let pol = pol.map(|p| p.is_some_and(|p| denies_insecure_transport(&p)));
        let l = l.map(|rules| lifecycle_holds(&rules, spec.noncurrent_days));
        let (mut drifted, mut unreadable) = (Vec::new(), Vec::new());
        for (setting, r) in [
            (Setting::Versioning, v),
            (Setting::Encryption, e),
            (Setting::PublicAccessBlock, p),
            (Setting::OwnershipControls, o),
            (Setting::TlsOnlyPolicy, pol),
            (Setting::Lifecycle, l),
        ] {
            match r {
                Ok(true) => {}
                Ok(false) => drifted.push(setting),
                Err(f) if is_missing(&f) => return Ok(BucketCheck::Missing),
                Err(f) => unreadable.push((setting, f)),
            }
        }
        Ok(BucketCheck::Present {
            drifted,
            unreadable,
        })
    }

    async fn repair(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
        spec: &Hardening,
        settings: &[Setting],
    ) -> Vec<(Setting, AwsFailure)> {
        let s3 = &self.s3(creds, region);
        let owner = spec.expected_owner.as_str();
        let arn = bucket.arn(spec.partition);
        let repairs = settings.iter().map(|&setting| {
            let arn = arn.clone();
            async move {
                let res = match setting {
                    Setting::Versioning => versioning(s3, bucket, owner).await,
                    Setting::Encryption => {
                        encryption(s3, bucket, owner, spec.kms_key_arn.as_deref()).await
                    }
                    Setting::PublicAccessBlock => public_access_block(s3, bucket, owner).await,
                    Setting::OwnershipControls => ownership(s3, bucket, owner).await,
                    // Read again right before the write: the bucket's other statements and
                    // rules are kept.
                    Setting::TlsOnlyPolicy => match read_policy(s3, bucket.as_str(), owner).await {
                        Ok(existing) => s3
                            .put_bucket_policy()
                            .bucket(bucket.as_str())
                            .expected_bucket_owner(owner)
                            .policy(with_tls_statement(existing.as_deref(), &arn))
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| failure(&e)),
                        Err(f) => Err(f),
                    },
                    Setting::Lifecycle => {
                        match (
                            read_lifecycle(s3, bucket.as_str(), owner).await,
                            lifecycle_rule(spec.noncurrent_days),
                        ) {
                            (Ok(mut rules), Ok(ours)) => {
                                rules.retain(|r| r.id() != Some(LIFECYCLE_RULE_ID));
                                rules.push(ours);
                                put_lifecycle(s3, bucket, owner, rules).await
                            }
                            (Err(f), _) | (_, Err(f)) => Err(f),
                        }
                    }
                };
                res.err().map(|f| (setting, f))
            }
        });
        futures::future::join_all(repairs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:s3:::infrakitchen-123456789012-bucket";

    #[test]
    fn our_policy_denies_insecure_transport_and_others_do_not() {
        assert!(denies_insecure_transport(&tls_only_policy(ARN)));
        let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
        assert!(!denies_insecure_transport(allow));
        let wrong_condition = tls_only_policy(ARN).replace("\"false\"", "\"true\"");
        assert!(!denies_insecure_transport(&wrong_condition));
        assert!(!denies_insecure_transport("not json"));
        // S3 may answer with a single statement object and a boolean condition.
        let single = r#"{"Statement":{"Effect":"Deny","Principal":{"AWS":"*"},"Action":["s3:*"],"Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#;
        assert!(denies_insecure_transport(single));
    }

    #[test]
    fn repairing_the_policy_keeps_the_buckets_other_statements() {
        let theirs = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Audit","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/audit"},"Action":"s3:GetObject","Resource":"*"}]}"#;
        let merged = with_tls_statement(Some(theirs), ARN);
        assert!(denies_insecure_transport(&merged));
        assert!(merged.contains("\"Sid\":\"Audit\""), "{merged}");
        // Our statement edited by hand is replaced, not duplicated.
        let edited = tls_only_policy(ARN).replace("\"Deny\"", "\"Allow\"");
        let merged = with_tls_statement(Some(&edited), ARN);
        assert_eq!(
            merged.matches("DenyInsecureTransport").count(),
            1,
            "{merged}"
        );
        assert!(denies_insecure_transport(&merged));
        assert!(denies_insecure_transport(&with_tls_statement(None, ARN)));
    }

    #[test]
    fn the_lifecycle_holds_only_with_our_enabled_rule_and_days() {
        let ours = lifecycle_rule(90).expect("a rule");
        assert!(lifecycle_holds(std::slice::from_ref(&ours), 90));
        assert!(!lifecycle_holds(std::slice::from_ref(&ours), 30));
        assert!(!lifecycle_holds(&[], 90));
        let disabled = ours.clone().to_builder_disabled();
        assert!(!lifecycle_holds(&[disabled], 90));
    }

    trait Disabled {
        fn to_builder_disabled(self) -> LifecycleRule;
    }

    impl Disabled for LifecycleRule {
        fn to_builder_disabled(self) -> LifecycleRule {
            LifecycleRule::builder()
                .id(self.id().unwrap_or_default())
                .status(ExpirationStatus::Disabled)
                .set_noncurrent_version_expiration(self.noncurrent_version_expiration().cloned())
                .set_abort_incomplete_multipart_upload(
                    self.abort_incomplete_multipart_upload().cloned(),
                )
                .build()
                .expect("a rule")
        }
    }
}
