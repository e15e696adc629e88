//! `GET /integrations/aws/{id}/onboarding`: everything a user needs to create the role a
//! role-delegation integration assumes: the trust policy naming the platform's principal
//! with the integration's External ID, the state bucket's permissions, the CloudFormation
//! template that creates the role, and the console's quick-create link for it. Served by
//! the manage-integrations function; no AWS call (the settings are read once at start).

use super::error::ApiError;
use super::request::path_id;
use super::response::json;
use crate::app::integrations::Integrations;
use crate::domain::{policies, AuthKind, Caller, Integration};
use crate::error::Error;
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

/// What onboarding names besides the integration: read once per process
/// (`wiring::onboarding_settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardingSettings {
    /// The platform's principal users' roles trust (`PLATFORM_PRINCIPAL_ARN`: the
    /// template's PlatformRole; locally, the identity the functions act as).
    pub platform_principal: String,
    /// Where the operator hosts the rendered delegation template in S3
    /// (`DELEGATION_TEMPLATE_URL`; CloudFormation's quick-create reads S3 URLs only).
    pub template_url: Option<String>,
}

pub async fn get(
    svc: &Integrations,
    settings: Option<&OnboardingSettings>,
    who: Caller,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let i = svc.get(&who, &path_id(&req)?).await?;
    if i.credentials.kind() != AuthKind::RoleDelegation {
        return Err(Error::Conflict {
            detail: format!(
                "integration '{}' uses access keys: onboarding is for role delegation (switch \
                 it with PATCH {{\"auth\": \"role_delegation\"}}: the platform then generates \
                 its External ID and its stored secret is destroyed)",
                i.id.as_str()
            ),
            field: None,
        }
        .into());
    }
    // The deployed function cannot start without it (wiring); only a hand-built stack
    // gets here without.
    let settings = settings.ok_or_else(|| {
        Error::internal("onboarding: the platform principal (PLATFORM_PRINCIPAL_ARN) is not set")
    })?;
    json(StatusCode::OK, &document(&i, settings)?)
}

/// The onboarding document of a role-delegation integration.
pub fn document(i: &Integration, settings: &OnboardingSettings) -> Result<Value, Error> {
    let role = i
        .aws_assumed_role_name
        .as_ref()
        .ok_or_else(|| Error::Conflict {
            detail: format!(
                "integration '{}' names no role: set aws_assumed_role_name (the role the platform \
             assumes)",
                i.id.as_str()
            ),
            field: None,
        })?;
    let external_id = i
        .aws_external_id
        .as_ref()
        .ok_or_else(|| Error::internal("a role-delegation integration without its External ID"))?
        .as_str();
    let partition = i.aws_default_region.partition();
    let account = &i.aws_account_id;
    let principal = settings.platform_principal.as_str();
    let quick_create = settings.template_url.as_deref().map(|url| {
        policies::quick_create_link(
            i.aws_default_region.as_str(),
            url,
            &stack_name(role.as_str()),
            role.as_str(),
            external_id,
            i.create_state_bucket,
        )
    });
    Ok(json!({
        "integration_id": i.id.as_str(),
        "aws_account_id": account.as_str(),
        "role_name": role.as_str(),
        "role_arn": role.arn(partition, account),
        "external_id": external_id,
        "platform_principal": principal,
        "trust_policy": policies::delegation_trust_policy(principal, external_id),
        "permissions_policy": policies::state_bucket_policy(partition, &account.state_bucket_name()),
        "cloudformation_template": policies::delegation_role_template(principal),
        "template_url": settings.template_url,
        "quick_create_link": quick_create,
    }))
}

/// `infrakitchen-<role name, lower case>`, as a stack name may be written: letters,
/// digits and hyphens (a role's path separator and `+=,.@_` become hyphens), at most 128.
fn stack_name(role: &str) -> String {
    let tail: String = role
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    format!("infrakitchen-{tail}").chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Credentials, ExternalId, Region, RoleName};

    fn delegated(region: &str, role: &str) -> Integration {
        let mut i: Integration = serde_json::from_value(json!({
            "id": "01JD5Z8Y6QJ4ZC3N1W7R8T9V0X",
            "name": "delegated",
            "aws_account_id": "123456789012",
            "auth": "role_delegation",
            "aws_session_duration": 3600,
            "aws_default_region": "us-east-1",
            "create_state_bucket": true,
            "created_at": "2026-11-24T12:00:00.000Z",
            "updated_at": "2026-11-24T12:00:00.000Z",
            "created_by": "u1",
            "revision": 1,
        }))
        .unwrap();
        assert_eq!(i.credentials, Credentials::RoleDelegation);
        i.aws_default_region = Region::parse(region).unwrap();
        i.aws_assumed_role_name = Some(RoleName::parse(role).unwrap());
        i.aws_external_id = Some(ExternalId::parse("ik-01JD5Z8Y6QJ4ZC3N1W7R8T9V0").unwrap());
        i
    }

    const PLATFORM: &str = "arn:aws:iam::999999999999:role/infrakitchen-platform";

    fn settings(url: Option<&str>) -> OnboardingSettings {
        OnboardingSettings {
            platform_principal: PLATFORM.into(),
            template_url: url.map(str::to_owned),
        }
    }

    #[test]
    fn the_document_names_the_principal_the_external_id_and_the_bucket() {
        let url = "https://ops.s3.amazonaws.com/infrakitchen/role.json";
        let d = document(
            &delegated("eu-west-1", "InfraKitchenRole"),
            &settings(Some(url)),
        )
        .unwrap();
        assert_eq!(
            d["role_arn"],
            "arn:aws:iam::123456789012:role/InfraKitchenRole"
        );
        assert_eq!(d["platform_principal"], PLATFORM);
        let st = &d["trust_policy"]["Statement"][0];
        assert_eq!(st["Principal"]["AWS"], PLATFORM);
        assert_eq!(
            st["Condition"]["StringEquals"]["sts:ExternalId"],
            "ik-01JD5Z8Y6QJ4ZC3N1W7R8T9V0"
        );
        assert_eq!(
            d["permissions_policy"]["Statement"][0]["Resource"],
            "arn:aws:s3:::infrakitchen-123456789012-bucket"
        );
        assert_eq!(
            d["cloudformation_template"]["Resources"]["InfraKitchenRole"]["Properties"]
                ["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
            PLATFORM
        );
        assert_eq!(d["template_url"], url);
        let link = d["quick_create_link"].as_str().unwrap();
        assert!(link.contains("region=eu-west-1#"), "{link}");
        assert!(
            link.contains("&stackName=infrakitchen-infrakitchenrole&"),
            "{link}"
        );
        assert!(
            link.contains("&param_ExternalId=ik-01JD5Z8Y6QJ4ZC3N1W7R8T9V0&"),
            "{link}"
        );
        assert!(link.ends_with("&param_WithStateBucket=true"), "{link}");
    }

    #[test]
    fn the_partition_follows_the_region_and_no_url_means_no_link() {
        let d = document(&delegated("cn-north-1", "team/Role_1"), &settings(None)).unwrap();
        assert_eq!(
            d["role_arn"],
            "arn:aws-cn:iam::123456789012:role/team/Role_1"
        );
        assert_eq!(
            d["permissions_policy"]["Statement"][1]["Resource"],
            "arn:aws-cn:s3:::infrakitchen-123456789012-bucket/*"
        );
        assert_eq!(d["template_url"], Value::Null);
        assert_eq!(d["quick_create_link"], Value::Null);
    }

    #[test]
    fn stack_names_keep_to_letters_digits_and_hyphens() {
        assert_eq!(
            stack_name("team/Infra.Kitchen+Role@x_1"),
            "infrakitchen-team-infra-kitchen-role-x-1"
        );
        assert_eq!(stack_name(&"R".repeat(200)).len(), 128);
    }
}
