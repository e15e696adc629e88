//! IAM with a user's own credentials, for Test Connection's credential hygiene: what IAM
//! records about the access key itself, and what the acting principal's policies allow.

use super::{AwsCredentials, AwsFailure};
use crate::domain::{Region, Timestamp};
use async_trait::async_trait;

/// When (and with which service) IAM last saw an access key used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLastUse {
    /// `None`: IAM has no record of any use (never used, or not since IAM began tracking
    /// in April 2015). IAM records a use with a delay of up to a few hours.
    pub at: Option<Timestamp>,
    /// The service of that use (`s3`, `sts`, ...), when there was one.
    pub service: Option<String>,
}

/// One action the platform needs, on one resource ARN (`*`: any resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOn {
    pub action: String,
    pub resource: String,
}

impl ActionOn {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        ActionOn {
            action: action.into(),
            resource: resource.into(),
        }
    }
}

/// An action the policy simulation did not allow, and IAM's decision
/// (`implicitDeny`: no policy allows it; `explicitDeny`: a policy denies it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub action: String,
    pub resource: String,
    pub decision: String,
}

/// IAM calls made with the credentials under test, on the principal they belong to.
/// Each answer is kept apart, so a refused permission is named on its own.
#[async_trait]
pub trait AccessKeyInspector: Send + Sync {
    /// `iam:ListAccessKeys` for the signing user itself (no user name: IAM takes the
    /// key's owner): when `key_id` was created, `None` when IAM did not list it.
    async fn key_created(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        key_id: &str,
    ) -> Result<Option<Timestamp>, AwsFailure>;

    /// `iam:GetAccessKeyLastUsed` of `key_id`.
    async fn key_last_used(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        key_id: &str,
    ) -> Result<KeyLastUse, AwsFailure>;

    /// `iam:SimulatePrincipalPolicy` of `principal_arn` (a user or role ARN) for each
    /// action on its resource: the actions it would not be allowed, in the order asked.
    async fn simulate(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        principal_arn: &str,
        checks: &[ActionOn],
    ) -> Result<Vec<Denial>, AwsFailure>;
}
