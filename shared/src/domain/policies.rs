//! The IAM policy documents the setup guide tells users to paste, filled in with real
//! values. Used by the setup-policies route and by Test Connection's hints.

use super::values::{BucketName, Partition};
use serde_json::{json, Value};

/// The role's trust policy: lets the integration's IAM user assume the role.
pub fn role_trust_policy(user_arn: &str, external_id: Option<&str>) -> Value {
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": { "AWS": user_arn },
        "Action": "sts:AssumeRole",
    });
    if let Some(ext) = external_id {
        statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": ext } });
    }
    json!({ "Version": "2012-10-17", "Statement": [statement] })
}

/// The user's identity policy: allows `sts:AssumeRole` on exactly that role.
pub fn user_assume_role_policy(role_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": role_arn,
        }]
    })
}

/// Least privilege for provisioning and using the state bucket, scoped to its ARN.
/// `s3:ListAllMyBuckets` has no resource-level permission; it lets Test Connection tell
/// "owned" from "taken".
pub fn state_bucket_policy(partition: Partition, bucket: &BucketName) -> Value {
    let arn = bucket.arn(partition);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ProvisionStateBucket",
                "Effect": "Allow",
                "Action": [
                    "s3:CreateBucket",
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:GetBucketVersioning", "s3:PutBucketVersioning",
                    "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                    "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock",
                    "s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls",
                    "s3:GetBucketPolicy", "s3:PutBucketPolicy",
                    "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                    "s3:GetBucketTagging", "s3:PutBucketTagging"
                ],
                "Resource": arn,
            },
            {
                "Sid": "TerraformState",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": format!("{arn}/*"),
            },
            {
                "Sid": "TellOwnedFromTaken",
                "Effect": "Allow",
                "Action": "s3:ListAllMyBuckets",
                "Resource": "*",
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_filled_in() {
        let t = role_trust_policy("arn:aws:iam::111111111111:user/u", Some("ext-1"));
        assert_eq!(
            t["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111111111111:user/u"
        );
        assert_eq!(
            t["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-1"
        );
        let bucket = BucketName::parse("infrakitchen-1-bucket").unwrap();
        let b = state_bucket_policy(Partition::AwsCn, &bucket);
        assert_eq!(
            b["Statement"][0]["Resource"],
            "arn:aws-cn:s3:::infrakitchen-1-bucket"
        );
        assert_eq!(
            b["Statement"][1]["Resource"],
            "arn:aws-cn:s3:::infrakitchen-1-bucket/*"
        );
    }
}
