//! Calls into a *user's* AWS account with the user's credentials (STS, S3).
//!
//! Clients are cheap views over the process-wide `SdkConfig`: each one reuses its HTTP
//! client (connection pool, TLS) and only swaps in the caller's credentials and region.

use crate::domain::{BucketName, Region};
use crate::ports::{
    AssumeRole, AwsCredentials, AwsFailure, AwsIdentity, BucketAccess, CallerIdentity, FailureKind,
    HeadBucket,
};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// The most one call into a user's account may take, retries included.
pub const USER_CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// Bounds for calls into users' accounts: Test Connection makes up to four in a row and
/// must answer within 20 s even when an endpoint hangs.
pub fn user_call_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(USER_CALL_TIMEOUT)
        .build()
}

#[derive(Clone)]
pub struct CustomerAccount {
    sdk: SdkConfig,
}

impl CustomerAccount {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sdk: sdk
                .to_builder()
                .timeout_config(user_call_timeouts())
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .build(),
        }
    }

    /// The configuration its clients are built on (users' timeouts and retries), for
    /// the other adapters that call users' accounts (`aws::iam`).
    pub fn config(&self) -> &SdkConfig {
        &self.sdk
    }

    fn failure<E: ProvideErrorMetadata>(&self, err: &SdkError<E, HttpResponse>) -> AwsFailure {
        failure_from(&self.sdk, err)
    }

    fn sts(&self, creds: &AwsCredentials, region: &Region) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(sdk_credentials(creds))
            // Regional STS endpoint of the integration's region (and so its partition).
            .region(aws_config::Region::new(region.as_str().to_owned()))
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }

    pub fn s3(&self, creds: &AwsCredentials, region: &Region) -> aws_sdk_s3::Client {
        let conf = super::s3_config(&self.sdk)
            .credentials_provider(sdk_credentials(creds))
            .region(aws_config::Region::new(region.as_str().to_owned()))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// [`failure`], naming `sdk`'s custom endpoint (a local AWS) when AWS was not reached.
pub(super) fn failure_from<E: ProvideErrorMetadata>(
    sdk: &SdkConfig,
    err: &SdkError<E, HttpResponse>,
) -> AwsFailure {
    let mut f = failure(err);
    if f.no_answer.is_some() {
        f.endpoint = sdk.endpoint_url().map(str::to_owned);
    }
    f
}

/// A user's (or a role session's) credentials as an SDK client's static provider.
pub(super) fn sdk_credentials(creds: &AwsCredentials) -> Credentials {
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

/// Reads `<Tag>value</Tag>` from an XML error body.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_owned()).filter(|s| !s.is_empty())
}

/// How a connection failed, in words: the first known cause in the error chain.
fn connect_cause(err: &(dyn std::error::Error + 'static)) -> String {
    use std::io::ErrorKind;
    let mut texts = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return "connection refused".into(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                    return "the connection was reset".into()
                }
                ErrorKind::NotConnected | ErrorKind::BrokenPipe => {
                    return "the connection was closed".into()
                }
                _ => {}
            }
        }
        texts.push(e.to_string());
        cur = e.source();
    }
    let all = texts.join(": ").to_lowercase();
    if all.contains("dns") || all.contains("lookup address") || all.contains("name or service") {
        "the endpoint's DNS name could not be resolved".into()
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        "the TLS handshake failed".into()
    } else {
        let last: String = texts
            .last()
            .map(String::as_str)
            .unwrap_or("")
            .chars()
            .take(160)
            .collect();
        if last.is_empty() {
            "the endpoint did not accept the connection".into()
        } else {
            last
        }
    }
}

/// Records a failed call: the code comes from the SDK when it parsed one, else from the
/// raw response (moto wraps STS errors in an extra element the SDK does not expect); a
/// call without an answer says why. What it means is [`AwsFailure::kind`]'s decision.
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
        SdkError::TimeoutError(_) => AwsFailure::timed_out(format!(
            "no answer within {} s",
            USER_CALL_TIMEOUT.as_secs()
        )),
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsFailure::timed_out(format!(
            "no connection within {} s or no answer within {} s",
            CONNECT_TIMEOUT.as_secs(),
            ATTEMPT_TIMEOUT.as_secs()
        )),
        SdkError::DispatchFailure(d) => AwsFailure::unreachable(
            d.as_connector_error()
                .map(|c| connect_cause(c))
                .unwrap_or_else(|| "the endpoint did not accept the connection".into()),
        ),
        SdkError::ServiceError(ctx) => {
            let (status, raw_code, raw_msg) = from_raw(ctx.raw());
            AwsFailure {
                code: ctx.err().code().map(str::to_owned).or(raw_code),
                status,
                message: ctx.err().message().map(str::to_owned).or(raw_msg),
                ..Default::default()
            }
        }
        SdkError::ResponseError(ctx) => {
            let (status, code, message) = from_raw(ctx.raw());
            AwsFailure {
                code,
                status,
                message,
                ..Default::default()
            }
        }
        _ => AwsFailure {
            code: Some("RequestNotSent".into()),
            ..Default::default()
        },
    }
}

#[async_trait]
impl AwsIdentity for CustomerAccount {
    async fn caller_identity(
        &self,
        creds: &AwsCredentials,
        region: &Region,
    ) -> Result<CallerIdentity, AwsFailure> {
        let out = self
            .sts(creds, region)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| self.failure(&e))?;
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
        region: &Region,
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
            .map_err(|e| self.failure(&e))?;
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
impl BucketAccess for CustomerAccount {
    async fn head_bucket(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        bucket: &BucketName,
    ) -> Result<HeadBucket, AwsFailure> {
        match self
            .s3(creds, region)
            .head_bucket()
            .bucket(bucket.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(HeadBucket::Accessible {
                region: out.bucket_region,
            }),
            Err(e) => {
                let f = self.failure(&e);
                match f.status {
                    Some(404) => Ok(HeadBucket::NotFound),
                    // 301: the bucket exists in another region.
                    Some(301) => Ok(HeadBucket::Accessible { region: None }),
                    // HEAD answers have no body: a bare 403 (exists, not listable).
                    _ if f.kind() == FailureKind::Denied => Ok(HeadBucket::Forbidden),
                    _ => Err(f),
                }
            }
        }
    }

    async fn own_buckets(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        prefix: &str,
    ) -> Result<Vec<String>, AwsFailure> {
        let out = self
            .s3(creds, region)
            .list_buckets()
            .prefix(prefix)
            .send()
            .await
            .map_err(|e| self.failure(&e))?;
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

    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError as E;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn raw(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body.to_owned()),
        )
    }

    fn service(code: &str, status: u16) -> SdkError<E, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        SdkError::service_error(E::generic(meta), raw(status, ""))
    }

    #[test]
    fn transport_failures_are_outages_with_a_cause() {
        let refused: SdkError<E, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        ));
        let f = failure(&refused);
        assert_eq!(f.kind(), FailureKind::Unreachable);
        assert_eq!(f.code, None, "no AWS code is made up");
        assert_eq!(f.describe(), "could not connect: connection refused");

        let dns: SdkError<E, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(
            "dns error: failed to lookup address information".into(),
        ));
        assert!(
            failure(&dns).describe().contains("DNS"),
            "{:?}",
            failure(&dns)
        );

        let slow: SdkError<E, HttpResponse> = SdkError::timeout_error("operation timeout");
        let f = failure(&slow);
        assert_eq!(f.kind(), FailureKind::TimedOut);
        assert_eq!(f.describe(), "timed out: no answer within 4 s");

        let hung: SdkError<E, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::timeout("read".into()));
        assert_eq!(failure(&hung).kind(), FailureKind::TimedOut);
    }

    #[test]
    fn answers_keep_aws_code_and_status() {
        let f = failure(&service("Throttling", 400));
        assert_eq!(
            (f.code.as_deref(), f.status),
            (Some("Throttling"), Some(400))
        );
        assert_eq!(f.kind(), FailureKind::Throttled);
        assert_eq!(
            failure(&service("SignatureDoesNotMatch", 403)).kind(),
            FailureKind::InvalidCredentials
        );
        // An answer the SDK could not parse: the status decides.
        let html: SdkError<E, HttpResponse> =
            SdkError::response_error("unparsable", raw(503, "<html>busy</html>"));
        let f = failure(&html);
        assert_eq!((f.code.as_deref(), f.status), (None, Some(503)));
        assert_eq!(f.kind(), FailureKind::ServerError);
    }
}
