//! Domain types: the stored integration, its state bucket, and the public view of both.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Default Terraform/OpenTofu state bucket name from the setup guide.
pub fn state_bucket_name(account_id: &str) -> String {
    format!("infrakitchen-{account_id}-bucket")
}

pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_SESSION_DURATION: u32 = 3600;

/// AWS partition of a region: decides ARNs and endpoint domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
    AwsIso,
    AwsIsoB,
    AwsIsoE,
    AwsIsoF,
}

impl Partition {
    pub fn of_region(region: &str) -> Self {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else if region.starts_with("us-isob-") {
            Partition::AwsIsoB
        } else if region.starts_with("us-isof-") || region.starts_with("eu-isof-") {
            Partition::AwsIsoF
        } else if region.starts_with("eu-isoe-") {
            Partition::AwsIsoE
        } else if region.starts_with("us-iso-") {
            Partition::AwsIso
        } else {
            Partition::Aws
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
        }
    }
}

/// `team/InfraKitchenRole` -> `arn:aws:iam::123456789012:role/team/InfraKitchenRole`.
pub fn role_arn(partition: Partition, account_id: &str, role: &str) -> String {
    format!("arn:{}:iam::{account_id}:role/{role}", partition.as_str())
}

pub fn bucket_arn(partition: Partition, bucket: &str) -> String {
    format!("arn:{}:s3:::{bucket}", partition.as_str())
}

/// KMS ciphertext of the secret access key. Debug shows only its length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketStatus {
    Pending,
    Provisioning,
    Ready,
    Failed,
}

impl BucketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BucketStatus::Pending => "pending",
            BucketStatus::Provisioning => "provisioning",
            BucketStatus::Ready => "ready",
            BucketStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateBucket {
    pub name: String,
    pub region: String,
    pub status: BucketStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The `terraform { backend "s3" { ... } }` block, once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// When the status last changed (RFC 3339); a stale `provisioning` may be taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_changed_at: Option<String>,
}

impl StateBucket {
    pub fn pending(account_id: &str, region: &str, now: &str) -> Self {
        StateBucket {
            name: state_bucket_name(account_id),
            region: region.to_owned(),
            status: BucketStatus::Pending,
            reason: None,
            attempts: 0,
            arn: None,
            backend: None,
            status_changed_at: Some(now.to_owned()),
        }
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTest {
    pub at: String,
    pub ok: bool,
}

/// The integration as stored. It holds the secret only as KMS ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub aws_account_id: String,
    pub aws_access_key_id: String,
    pub secret_ciphertext: Sealed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_assumed_role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_external_id: Option<String>,
    pub aws_session_duration: u32,
    pub aws_default_region: String,
    pub create_state_bucket: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bucket: Option<StateBucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test: Option<LastTest>,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub revision: u64,
}

impl Integration {
    pub fn view(&self) -> IntegrationView<'_> {
        IntegrationView {
            id: &self.id,
            name: &self.name,
            description: self.description.as_deref(),
            labels: &self.labels,
            aws_account_id: &self.aws_account_id,
            aws_access_key_id: mask_key_id(&self.aws_access_key_id),
            aws_assumed_role_name: self.aws_assumed_role_name.as_deref(),
            aws_external_id: self.aws_external_id.as_deref(),
            aws_session_duration: self.aws_session_duration,
            aws_default_region: &self.aws_default_region,
            create_state_bucket: self.create_state_bucket,
            state_bucket: self.state_bucket.as_ref(),
            last_test: self.last_test.as_ref(),
            created_at: &self.created_at,
            updated_at: &self.updated_at,
            created_by: &self.created_by,
            revision: self.revision,
        }
    }
}

/// What callers see: no secret, no ciphertext, the key id masked.
#[derive(Debug, Serialize)]
pub struct IntegrationView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub labels: &'a [String],
    pub aws_account_id: &'a str,
    pub aws_access_key_id: String,
    pub aws_assumed_role_name: Option<&'a str>,
    pub aws_external_id: Option<&'a str>,
    pub aws_session_duration: u32,
    pub aws_default_region: &'a str,
    pub create_state_bucket: bool,
    pub state_bucket: Option<&'a StateBucket>,
    pub last_test: Option<&'a LastTest>,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub created_by: &'a str,
    pub revision: u64,
}

/// `AKIAIOSFODNN7EXAMPLE` -> `AKIA************MPLE`.
pub fn mask_key_id(key_id: &str) -> String {
    let chars: Vec<char> = key_id.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// A validated create (or test-connection) form. The secret stays wrapped.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub name: String,
    pub description: Option<String>,
    pub labels: Vec<String>,
    pub aws_account_id: String,
    pub aws_access_key_id: String,
    pub aws_secret_access_key: SecretString,
    pub aws_assumed_role_name: Option<String>,
    pub aws_external_id: Option<String>,
    pub aws_session_duration: u32,
    pub aws_default_region: String,
    pub create_state_bucket: bool,
}

/// A validated PATCH. `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct IntegrationPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub labels: Option<Vec<String>>,
    pub keys: Option<(String, SecretString)>,
    pub aws_assumed_role_name: Option<Option<String>>,
    pub aws_external_id: Option<Option<String>>,
    pub aws_session_duration: Option<u32>,
    pub aws_default_region: Option<String>,
    pub create_state_bucket: Option<bool>,
}

impl IntegrationPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.labels.is_none()
            && self.keys.is_none()
            && self.aws_assumed_role_name.is_none()
            && self.aws_external_id.is_none()
            && self.aws_session_duration.is_none()
            && self.aws_default_region.is_none()
            && self.create_state_bucket.is_none()
    }
}

/// Who called: a JWT subject or an IAM principal's ARN, as the gateway verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Integration ids are ULIDs; anything else cannot exist, so it is a 404, not a lookup.
pub fn is_integration_id(id: &str) -> bool {
    ulid::Ulid::from_string(id).is_ok() && id.len() == 26
}

/// Current UTC time as a fixed-width RFC 3339 timestamp (see [`timestamp`]).
pub fn now_rfc3339() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

/// `2026-11-26T05:35:10.000Z`: always UTC, always three fraction digits. Stored times
/// are compared as strings (in Rust and in DynamoDB conditions), so every one has the
/// same width: `time`'s own RFC 3339 output drops trailing zeros, and `...:05Z` would
/// sort after `...:05.5Z`.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The fixed-width timestamp of `ago` before now (a threshold for "older than").
pub fn timestamp_ago(ago: std::time::Duration) -> String {
    timestamp(time::OffsetDateTime::now_utc() - ago)
}

/// Is the stored time `at` (any RFC 3339 form) earlier than the fixed-width `threshold`?
/// Parses both, so records written before timestamps were fixed-width compare correctly.
/// A missing or unreadable time counts as earlier: such a record can always be recovered.
pub fn is_before(at: Option<&str>, threshold: &str) -> bool {
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    };
    match (at.and_then(parse), parse(threshold)) {
        (Some(a), Some(t)) => a < t,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_edges() {
        assert_eq!(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIA************MPLE");
        assert_eq!(mask_key_id("short"), "*****");
    }

    #[test]
    fn timestamps_have_one_width_and_sort_by_time() {
        use time::macros::datetime;
        let whole = timestamp(datetime!(2026-11-26 05:35:05 UTC));
        let half = timestamp(datetime!(2026-11-26 05:35:05.5 UTC));
        let later = timestamp(datetime!(2026-11-26 05:35:06.001 UTC));
        assert_eq!(whole, "2026-11-26T05:35:05.000Z");
        assert_eq!(half, "2026-11-26T05:35:05.500Z");
        assert!(whole < half && half < later, "string order is time order");
        // Other offsets are written in UTC.
        assert_eq!(
            timestamp(datetime!(2026-11-26 07:35:05.25 +02:00)),
            "2026-11-26T05:35:05.250Z"
        );
        // Every millisecond of a few seconds: same width, and strictly increasing.
        let start = datetime!(2026-12-31 23:59:58 UTC);
        let all: Vec<String> = (0..3000)
            .map(|ms| timestamp(start + time::Duration::milliseconds(ms)))
            .collect();
        assert!(all.iter().all(|t| t.len() == 24));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(now_rfc3339().len(), 24);
    }

    #[test]
    fn before_compares_times_not_text() {
        // The variable-width form written by earlier versions still compares as time.
        assert!(!is_before(
            Some("2026-11-26T05:35:05Z"),
            "2026-11-26T05:35:04.500Z"
        ));
        assert!(is_before(
            Some("2026-11-26T05:35:05Z"),
            "2026-11-26T05:35:05.500Z"
        ));
        assert!(!is_before(
            Some("2026-11-26T05:35:05.5Z"),
            "2026-11-26T05:35:05.000Z"
        ));
        assert!(is_before(None, "2026-11-26T05:35:05.000Z"));
        assert!(is_before(Some("garbage"), "2026-11-26T05:35:05.000Z"));
    }

    #[test]
    fn partitions() {
        assert_eq!(Partition::of_region("us-east-1"), Partition::Aws);
        assert_eq!(Partition::of_region("cn-north-1"), Partition::AwsCn);
        assert_eq!(Partition::of_region("us-gov-west-1"), Partition::AwsUsGov);
        assert_eq!(
            role_arn(Partition::AwsCn, "123456789012", "team/R"),
            "arn:aws-cn:iam::123456789012:role/team/R"
        );
    }
}
