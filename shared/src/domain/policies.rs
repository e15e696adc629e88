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
    bucket_statements(json!(arn), json!(format!("{arn}/*")))
}

/// Every (action, resource) the state bucket policy grants, read from the document
/// itself: what Test Connection asks IAM's policy simulator about.
pub fn state_bucket_actions(partition: Partition, bucket: &BucketName) -> Vec<(String, String)> {
    let doc = state_bucket_policy(partition, bucket);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let mut out = Vec::new();
    for st in doc["Statement"].as_array().into_iter().flatten() {
        let Some(resource) = text(&st["Resource"]) else {
            continue;
        };
        let actions = match &st["Action"] {
            Value::Array(a) => a.iter().filter_map(text).collect(),
            one => text(one).into_iter().collect::<Vec<_>>(),
        };
        out.extend(actions.into_iter().map(|a| (a, resource.clone())));
    }
    out
}

/// The user's permission to read its own access key's facts and simulate its own
/// policies (Test Connection's credential hygiene). `${aws:username}` makes one document
/// fit every user of the account; a user with a path needs `user/<path>/${aws:username}`.
pub fn key_hygiene_policy(partition: Partition, account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "InspectOwnAccessKeys",
            "Effect": "Allow",
            "Action": [
                "iam:ListAccessKeys",
                "iam:GetAccessKeyLastUsed",
                "iam:SimulatePrincipalPolicy"
            ],
            "Resource": format!("arn:{}:iam::{account}:user/${{aws:username}}", partition.as_str()),
        }]
    })
}

/// The state bucket's statements for a bucket ARN and its objects' ARN (strings, or
/// CloudFormation expressions that make them).
fn bucket_statements(bucket: Value, objects: Value) -> Value {
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
                "Resource": bucket,
            },
            {
                "Sid": "TerraformState",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": objects,
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

/// Role delegation's trust policy: the platform's own principal may assume the role, and
/// only with the External ID the platform generated for the integration (the condition
/// that closes the confused-deputy hole: another tenant of the platform cannot make it
/// assume this role, because it cannot send this integration's External ID).
pub fn delegation_trust_policy(platform_principal: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "InfraKitchenPlatform",
            "Effect": "Allow",
            "Principal": { "AWS": platform_principal },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "sts:ExternalId": external_id } },
        }]
    })
}

/// A CloudFormation template that creates the delegated role in the user's account: its
/// trust policy names `platform_principal` with the `sts:ExternalId` condition, and (with
/// `WithStateBucket`) the state bucket's least-privilege policy, scoped to
/// `infrakitchen-<the account>-bucket`. Parameters: `RoleName`, `ExternalId`,
/// `WithStateBucket`. One template serves every integration: the External ID arrives as
/// a parameter (the quick-create link fills it in).
pub fn delegation_role_template(platform_principal: &str) -> Value {
    // The setup guide's statements, with the ARNs CloudFormation fills in for the stack's
    // own partition and account.
    let bucket = "arn:${AWS::Partition}:s3:::infrakitchen-${AWS::AccountId}-bucket";
    let bucket_policy = bucket_statements(
        json!({ "Fn::Sub": bucket }),
        json!({ "Fn::Sub": format!("{bucket}/*") }),
    );
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "InfraKitchen role delegation: a role the InfraKitchen platform assumes with this integration's External ID (no access key is stored anywhere).",
        "Parameters": {
            "RoleName": {
                "Type": "String",
                "Default": "InfraKitchenRole",
                "AllowedPattern": "^[\\w+=,.@-]{1,64}$",
                "Description": "The role's name (the integration form's role name).",
            },
            "ExternalId": {
                "Type": "String",
                "AllowedPattern": "^[\\w+=,.@:/-]{2,1224}$",
                "Description": "The External ID the platform generated for this integration (shown on the setup page; never choose your own).",
            },
            "WithStateBucket": {
                "Type": "String",
                "Default": "true",
                "AllowedValues": ["true", "false"],
                "Description": "Also allow the platform to create and harden the Terraform state bucket infrakitchen-<account>-bucket.",
            },
        },
        "Conditions": {
            "StateBucket": { "Fn::Equals": [{ "Ref": "WithStateBucket" }, "true"] },
        },
        "Resources": {
            "InfraKitchenRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": { "Ref": "RoleName" },
                    "Description": "Assumed by the InfraKitchen platform (role delegation with an External ID).",
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "InfraKitchenPlatform",
                            "Effect": "Allow",
                            "Principal": { "AWS": platform_principal },
                            "Action": "sts:AssumeRole",
                            "Condition": { "StringEquals": { "sts:ExternalId": { "Ref": "ExternalId" } } },
                        }]
                    },
                    "Policies": {
                        "Fn::If": [
                            "StateBucket",
                            [{ "PolicyName": "InfraKitchenStateBucket", "PolicyDocument": bucket_policy }],
                            { "Ref": "AWS::NoValue" },
                        ]
                    },
                },
            },
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Paste into the integration form, or let the platform read it from the role name.",
                "Value": { "Fn::GetAtt": ["InfraKitchenRole", "Arn"] },
            },
        },
    })
}

/// The console's quick-create link for the delegation template, hosted by the operator
/// at `template_url` (CloudFormation reads templates from S3 URLs only), with the
/// integration's values filled in. Values are percent-encoded.
pub fn quick_create_link(
    region: &str,
    template_url: &str,
    stack_name: &str,
    role_name: &str,
    external_id: &str,
    with_state_bucket: bool,
) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    format!(
        "https://console.aws.amazon.com/cloudformation/home?region={}#/stacks/quickcreate?templateURL={}&stackName={}&param_RoleName={}&param_ExternalId={}&param_WithStateBucket={}",
        enc(region),
        enc(template_url),
        enc(stack_name),
        enc(role_name),
        enc(external_id),
        with_state_bucket
    )
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

    #[test]
    fn the_simulated_actions_are_the_bucket_policys_own() {
        let bucket = BucketName::parse("infrakitchen-1-bucket").unwrap();
        let actions = state_bucket_actions(Partition::Aws, &bucket);
        let on = |a: &str| {
            actions
                .iter()
                .find(|(x, _)| x == a)
                .map(|(_, r)| r.as_str())
        };
        assert_eq!(
            on("s3:CreateBucket"),
            Some("arn:aws:s3:::infrakitchen-1-bucket")
        );
        assert_eq!(
            on("s3:PutObject"),
            Some("arn:aws:s3:::infrakitchen-1-bucket/*")
        );
        assert_eq!(on("s3:ListAllMyBuckets"), Some("*"));
        assert_eq!(actions.len(), 21);
        let k = key_hygiene_policy(Partition::AwsCn, "123456789012");
        assert_eq!(
            k["Statement"][0]["Resource"],
            "arn:aws-cn:iam::123456789012:user/${aws:username}"
        );
    }

    const PLATFORM: &str = "arn:aws:iam::999999999999:role/infrakitchen-platform";

    #[test]
    fn the_delegation_trust_policy_names_the_platform_and_requires_the_external_id() {
        let t = delegation_trust_policy(PLATFORM, "ik-01JABC");
        let st = &t["Statement"][0];
        assert_eq!(st["Principal"]["AWS"], PLATFORM);
        assert_eq!(st["Action"], "sts:AssumeRole");
        assert_eq!(
            st["Condition"]["StringEquals"]["sts:ExternalId"],
            "ik-01JABC"
        );
    }

    #[test]
    fn the_role_template_carries_the_trust_condition_and_the_scoped_bucket_policy() {
        let t = delegation_role_template(PLATFORM);
        let role = &t["Resources"]["InfraKitchenRole"]["Properties"];
        let st = &role["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(st["Principal"]["AWS"], PLATFORM);
        assert_eq!(
            st["Condition"]["StringEquals"]["sts:ExternalId"],
            json!({"Ref": "ExternalId"})
        );
        let policy = &role["Policies"]["Fn::If"][1][0]["PolicyDocument"];
        // Every statement of the setup guide's bucket policy, each resource-scoped to the
        // stack's own account's bucket (ListAllMyBuckets has no resource level).
        let guide = state_bucket_policy(
            Partition::Aws,
            &BucketName::parse("infrakitchen-000000000000-bucket").unwrap(),
        );
        assert_eq!(
            policy["Statement"].as_array().map(Vec::len),
            guide["Statement"].as_array().map(Vec::len)
        );
        assert_eq!(
            policy["Statement"][0]["Resource"]["Fn::Sub"],
            "arn:${AWS::Partition}:s3:::infrakitchen-${AWS::AccountId}-bucket"
        );
        assert_eq!(
            policy["Statement"][1]["Resource"]["Fn::Sub"],
            "arn:${AWS::Partition}:s3:::infrakitchen-${AWS::AccountId}-bucket/*"
        );
        assert_eq!(policy["Statement"][2]["Resource"], "*");
        assert_eq!(
            policy["Statement"][0]["Action"],
            guide["Statement"][0]["Action"]
        );
        assert_eq!(
            role["Policies"]["Fn::If"][2],
            json!({"Ref": "AWS::NoValue"})
        );
    }

    #[test]
    fn the_quick_create_link_fills_in_the_parameters_encoded() {
        let link = quick_create_link(
            "eu-west-1",
            "https://ops-templates.s3.amazonaws.com/infrakitchen/role.json",
            "infrakitchen-role",
            "InfraKitchenRole",
            "ik-01J/AB+C=",
            true,
        );
        assert!(link.starts_with(
            "https://console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate?templateURL=https%3A%2F%2Fops-templates.s3.amazonaws.com%2Finfrakitchen%2Frole.json&"
        ), "{link}");
        assert!(
            link.contains("&param_ExternalId=ik-01J%2FAB%2BC%3D&"),
            "{link}"
        );
        assert!(link.ends_with("&param_WithStateBucket=true"), "{link}");
    }
}
