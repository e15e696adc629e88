//! Calls into a *user's* AWS account with the user's credentials (STS, S3).
//!
//! Clients are cheap views over the process-wide `SdkConfig`: each one reuses its HTTP
//! client (connection pool, TLS) and only swaps in the caller's credentials and region.

use crate::ports::{
    AssumeRole, AwsCredentials, AwsFailure, AwsIdentity, BucketAccess, CallerIdentity, HeadBucket,
};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Bounds for calls into users' accounts: Test Connection makes up to four in a row and
/// must answer within 20 s even when an endpoint hangs.
pub fn user_call_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(4))
        .build()
}

#[derive(Clone)]
pub struct UserAws {
    sdk: SdkConfig,
}

impl UserAws {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sdk: sdk
                .to_builder()
                .timeout_config(user_call_timeouts())
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .build(),
        }
    }

    fn credentials(creds: &AwsCredentials) -> Credentials {
        Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "integration",
        )
    }

    fn sts(&self, creds: &AwsCredentials, region: &str) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(Self::credentials(creds))
            // Regional STS endpoint of the integration's region (and so its partition).
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    pub fn s3(&self, creds: &AwsCredentials, region: &str) -> aws_sdk_s3::Client {
        let conf = super::s3_config(&self.sdk)
            .credentials_provider(Self::credentials(creds))
            .region(Region::new(region.to_owned()))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// Reads `<Tag>value</Tag>` from an XML error body.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_owned()).filter(|s| !s.is_empty())
}

/// Classifies a failed call. The code comes from the SDK when it parsed one, else from
/// the raw response: moto wraps STS errors in an extra element the SDK does not expect.
pub fn failure<E>(err: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata,
{
    let from_raw = |raw: &HttpResponse| {
        let body = raw
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        (
            Some(raw.status().as_u16()),
            xml_tag(&body, "Code"),
            xml_tag(&body, "Message"),
        )
    };
    match err {
        SdkError::TimeoutError(_) => AwsFailure::timed_out(),
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsFailure::timed_out(),
        SdkError::DispatchFailure(_) => AwsFailure {
            code: Some("ConnectionFailure".into()),
            message: Some("could not connect to the AWS endpoint".into()),
            ..Default::default()
        },
        SdkError::ServiceError(ctx) => {
            let (status, raw_code, raw_msg) = from_raw(ctx.raw());
            AwsFailure {
                code: ctx.err().code().map(str::to_owned).or(raw_code),
                status,
                message: ctx.err().message().map(str::to_owned).or(raw_msg),
                timed_out: false,
            }
        }
        SdkError::ResponseError(ctx) => {
            let (status, code, message) = from_raw(ctx.raw());
            AwsFailure {
                code,
                status,
                message,
                timed_out: false,
            }
        }
        _ => AwsFailure {
            code: Some("RequestNotSent".into()),
            ..Default::default()
        },
    }
}

#[async_trait]
impl AwsIdentity for UserAws {
    async fn caller_identity(
        &self,
        creds: &AwsCredentials,
        region: &str,
    ) -> Result<CallerIdentity, AwsFailure> {
        let out = self
            .sts(creds, region)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| failure(&e))?;
        match (out.arn, out.account) {
            (Some(arn), Some(account)) => Ok(CallerIdentity { arn, account }),
            _ => Err(AwsFailure {
                code: Some("IncompleteResponse".into()),
                message: Some("GetCallerIdentity returned no ARN or account".into()),
                ..Default::default()
            }),
        }
    }

    async fn assume_role(
        &self,
        creds: &AwsCredentials,
        region: &str,
        req: &AssumeRole<'_>,
    ) -> Result<AwsCredentials, AwsFailure> {
        let out = self
            .sts(creds, region)
            .assume_role()
            .role_arn(req.role_arn)
            .role_session_name(req.session_name)
            .duration_seconds(req.duration_seconds as i32)
            .set_external_id(req.external_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| failure(&e))?;
        let c = out.credentials.ok_or_else(|| AwsFailure {
            code: Some("IncompleteResponse".into()),
            message: Some("AssumeRole returned no credentials".into()),
            ..Default::default()
        })?;
        Ok(AwsCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: SecretString::from(c.secret_access_key),
            session_token: Some(SecretString::from(c.session_token)),
        })
    }
}

#[async_trait]
impl BucketAccess for UserAws {
    async fn head_bucket(
        &self,
        creds: &AwsCredentials,
        region: &str,
        bucket: &str,
    ) -> Result<HeadBucket, AwsFailure> {
        match self
            .s3(creds, region)
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(HeadBucket::Accessible {
                region: out.bucket_region,
            }),
            Err(e) => {
                let f = failure(&e);
                match f.status {
                    Some(404) => Ok(HeadBucket::NotFound),
                    Some(403) => Ok(HeadBucket::Forbidden),
                    // 301: the bucket exists in another region.
                    Some(301) => Ok(HeadBucket::Accessible { region: None }),
                    _ => Err(f),
                }
            }
        }
    }

    async fn own_buckets(
        &self,
        creds: &AwsCredentials,
        region: &str,
        prefix: &str,
    ) -> Result<Vec<String>, AwsFailure> {
        let out = self
            .s3(creds, region)
            .list_buckets()
            .prefix(prefix)
            .send()
            .await
            .map_err(|e| failure(&e))?;
        Ok(out
            .buckets
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.name)
            .filter(|n| n.starts_with(prefix))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_codes_from_raw_xml() {
        let moto = "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code>\
                    <Message>bad sig</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            xml_tag(moto, "Code").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(xml_tag(moto, "Message").as_deref(), Some("bad sig"));
        assert_eq!(xml_tag("<Code></Code>", "Code"), None);
    }
}
