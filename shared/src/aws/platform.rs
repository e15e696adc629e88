//! The platform's own principal for role delegation: with `PLATFORM_ROLE_ARN`, the
//! function's credentials assume that role (a dedicated role only the test-connection and
//! provision-bucket functions may assume) under a session policy that allows nothing but
//! `sts:AssumeRole` into users' roles; without it, the function's own credentials act
//! (a local stack). The role's session is cached until a few minutes before it expires.

use super::customer::{failure, user_call_timeouts};
use crate::ports::{AwsCredentials, AwsFailure, PlatformPrincipal, PlatformSession};
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use secrecy::SecretString;
use serde_json::json;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// A cached session is renewed this long before it expires, so no call starts with
/// credentials about to lapse.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
const SESSION_SECONDS: i32 = 3600;

pub struct PlatformAccount {
    sdk: SdkConfig,
    role_arn: Option<String>,
    /// The role's session and when it expires.
    cached: Mutex<Option<(PlatformSession, SystemTime)>>,
    /// The own principal's ARN (without a role), asked once.
    own_arn: tokio::sync::OnceCell<String>,
}

impl PlatformAccount {
    /// `sdk` carries the function's own credentials; `role_arn` is `PLATFORM_ROLE_ARN`.
    pub fn new(sdk: &SdkConfig, role_arn: Option<String>) -> Self {
        PlatformAccount {
            sdk: sdk
                .to_builder()
                .timeout_config(user_call_timeouts())
                .retry_config(RetryConfig::standard().with_max_attempts(2))
                .build(),
            role_arn,
            cached: Mutex::new(None),
            own_arn: tokio::sync::OnceCell::new(),
        }
    }

    fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk)
    }

    async fn own_credentials(&self) -> Result<AwsCredentials, AwsFailure> {
        let unavailable = |why: String| AwsFailure {
            code: Some("CredentialsUnavailable".into()),
            message: Some(why),
            ..Default::default()
        };
        let provider = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| unavailable("the function has no credentials provider".into()))?;
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| unavailable(format!("the function's credentials: {e}")))?;
        Ok(AwsCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: SecretString::from(c.secret_access_key().to_owned()),
            session_token: c.session_token().map(|t| SecretString::from(t.to_owned())),
        })
    }

    /// The function's own principal, as a trust policy names it.
    async fn own_session(&self) -> Result<PlatformSession, AwsFailure> {
        let credentials = self.own_credentials().await?;
        let arn = self
            .own_arn
            .get_or_try_init(|| async {
                let out = self
                    .sts()
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| failure(&e))?;
                out.arn.map(|a| principal_of(&a)).ok_or_else(|| AwsFailure {
                    code: Some("IncompleteResponse".into()),
                    message: Some("GetCallerIdentity returned no ARN".into()),
                    ..Default::default()
                })
            })
            .await?
            .clone();
        Ok(PlatformSession {
            credentials,
            principal_arn: arn,
        })
    }

    async fn role_session(&self, role_arn: &str) -> Result<PlatformSession, AwsFailure> {
        let mut cached = self.cached.lock().await;
        if let Some((session, expires)) = cached.as_ref() {
            if SystemTime::now() + RENEW_BEFORE < *expires {
                return Ok(session.clone());
            }
        }
        let partition = role_arn.split(':').nth(1).unwrap_or("aws");
        let out = self
            .sts()
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(format!(
                "infrakitchen-platform-{}",
                ulid::Ulid::new().to_string().to_lowercase()
            ))
            .duration_seconds(SESSION_SECONDS)
            .policy(session_policy(partition))
            .send()
            .await
            .map_err(|e| failure(&e))?;
        let c = out.credentials.ok_or_else(|| AwsFailure {
            code: Some("IncompleteResponse".into()),
            message: Some("AssumeRole returned no credentials".into()),
            ..Default::default()
        })?;
        let expires = SystemTime::try_from(c.expiration)
            .unwrap_or_else(|_| SystemTime::now() + Duration::from_secs(SESSION_SECONDS as u64));
        let session = PlatformSession {
            credentials: AwsCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: SecretString::from(c.secret_access_key),
                session_token: Some(SecretString::from(c.session_token)),
            },
            principal_arn: role_arn.to_owned(),
        };
        *cached = Some((session.clone(), expires));
        Ok(session)
    }
}

#[async_trait]
impl PlatformPrincipal for PlatformAccount {
    async fn session(&self) -> Result<PlatformSession, AwsFailure> {
        match &self.role_arn {
            Some(role) => self.role_session(role).await,
            None => self.own_session().await,
        }
    }
}

/// The session policy of the platform's role: whatever the role itself allows, its
/// sessions may only assume users' roles.
pub fn session_policy(partition: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": format!("arn:{partition}:iam::*:role/*"),
        }]
    })
    .to_string()
}

/// The principal a trust policy names for a caller ARN: a role for an assumed-role
/// session (`arn:aws:sts::1:assumed-role/R/s` -> `arn:aws:iam::1:role/R`; a role's path
/// is not in the session ARN), the ARN itself otherwise.
fn principal_of(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice() {
        if let Some(rest) = resource.strip_prefix("assumed-role/") {
            let role = rest.split('/').next().unwrap_or(rest);
            return format!("arn:{partition}:iam::{account}:role/{role}");
        }
    }
    arn.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_arn_names_its_role() {
        assert_eq!(
            principal_of("arn:aws:sts::111111111111:assumed-role/Platform/infrakitchen-1"),
            "arn:aws:iam::111111111111:role/Platform"
        );
        assert_eq!(
            principal_of("arn:aws:iam::111111111111:user/platform"),
            "arn:aws:iam::111111111111:user/platform"
        );
    }

    #[test]
    fn the_session_policy_allows_only_assuming_roles() {
        let p: serde_json::Value = serde_json::from_str(&session_policy("aws-cn")).unwrap();
        assert_eq!(p["Statement"][0]["Action"], "sts:AssumeRole");
        assert_eq!(p["Statement"][0]["Resource"], "arn:aws-cn:iam::*:role/*");
        assert_eq!(p["Statement"].as_array().map(Vec::len), Some(1));
    }
}
