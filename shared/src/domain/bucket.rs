//! The Terraform/OpenTofu state bucket of an integration: its status and the backend
//! block users paste.

use super::values::{AccountId, BucketName, Region, Timestamp};
use serde::{Deserialize, Serialize};

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
    pub name: BucketName,
    pub region: Region,
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
    /// When the status last changed; a stale `provisioning` may be taken over. An
    /// unreadable stored time reads as none (always overdue), so such a record recovers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "Timestamp::deserialize_lenient"
    )]
    pub status_changed_at: Option<Timestamp>,
}

impl StateBucket {
    /// The guide's bucket (`infrakitchen-<account>-bucket`), queued now.
    pub fn pending(account: &AccountId, region: &Region, now: Timestamp) -> Self {
        StateBucket {
            name: account.state_bucket_name(),
            region: region.clone(),
            status: BucketStatus::Pending,
            reason: None,
            attempts: 0,
            arn: None,
            backend: None,
            status_changed_at: Some(now),
        }
    }
}

/// The block users paste into their Terraform/OpenTofu configuration. Workspaces other
/// than `default` get their own keys under `workspace_key_prefix`.
pub fn backend_block(bucket: &BucketName, region: &Region, integration_name: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_bucket_is_the_guides_name_in_the_region() {
        let account = AccountId::parse("123456789012").unwrap();
        let region = Region::parse("eu-west-1").unwrap();
        let now = Timestamp::now();
        let b = StateBucket::pending(&account, &region, now.clone());
        assert_eq!(b.name.as_str(), "infrakitchen-123456789012-bucket");
        assert_eq!(b.status, BucketStatus::Pending);
        assert_eq!(b.status_changed_at, Some(now));
        let block = backend_block(&b.name, &b.region, "prod");
        assert!(block.contains(r#"bucket               = "infrakitchen-123456789012-bucket""#));
        assert!(block.contains(r#"key                  = "prod/terraform.tfstate""#));
        assert!(block.contains(r#"region               = "eu-west-1""#));
    }
}
