//! `GET /integrations/aws/setup-policies`: the setup guide's policy documents, filled in
//! with the caller's account, role, user and bucket.

use super::error::ApiError;
use super::request::query;
use super::response::json;
use crate::domain::{
    policies, AccountId, BucketName, Caller, ExternalId, Partition, PrincipalArn, Region, RoleName,
};
use crate::error::{Error, FieldError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// A present query parameter parsed by `parse`, its error recorded under `field`.
fn parsed<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    raw: Option<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    raw.and_then(|raw| match parse(&raw) {
        Ok(v) => Some(v),
        Err(m) => {
            errors.push(FieldError::new(field, m));
            None
        }
    })
}

/// What the caller asked for, each value parsed.
struct Inputs {
    account: AccountId,
    partition: Partition,
    bucket: BucketName,
    /// The role and the user its trust policy names, when asked for the role's policies.
    role: Option<(RoleName, PrincipalArn)>,
    external: Option<ExternalId>,
}

/// The policy documents of the setup guide, filled in with the caller's values.
pub fn get(_: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let inputs = inputs(&req)?;
    json(StatusCode::OK, &documents(&inputs))
}

/// Every parameter checked, every problem named at once.
fn inputs(req: &Request) -> Result<Inputs, ApiError> {
    let get = |k: &str| query(req, k);
    let mut errors = Vec::new();
    let e = &mut errors;
    let account = parsed(e, "aws_account_id", get("aws_account_id"), AccountId::parse);
    let region = parsed(e, "region", get("region"), Region::parse);
    let role = parsed(e, "role_name", get("role_name"), RoleName::parse);
    let external = parsed(e, "external_id", get("external_id"), ExternalId::parse);
    let user_arn = parsed(e, "user_arn", get("user_arn"), PrincipalArn::parse);
    let bucket = parsed(e, "bucket_name", get("bucket_name"), BucketName::parse);
    if get("aws_account_id").is_none() {
        errors.push(FieldError::new("aws_account_id", "is required"));
    }
    if role.is_some() && get("user_arn").is_none() {
        errors.push(FieldError::new(
            "user_arn",
            "is required with role_name (the trust policy names the user)",
        ));
    }
    if external.is_some() && get("role_name").is_none() {
        errors.push(FieldError::new(
            "external_id",
            "is only used with role_name",
        ));
    }
    if get("user_arn").is_some() && get("role_name").is_none() {
        errors.push(FieldError::new(
            "user_arn",
            "is only used with role_name (it is the principal of the role's trust policy)",
        ));
    }
    if let (Some(arn), Some(r)) = (&user_arn, &region) {
        if arn.partition() != r.partition() {
            errors.push(FieldError::new(
                "region",
                "is in another AWS partition than user_arn",
            ));
        }
    }
    let (Some(account), true) = (account, errors.is_empty()) else {
        return Err(Error::Validation(errors).into());
    };
    let partition = match (&user_arn, &region) {
        (_, Some(r)) => r.partition(),
        (Some(arn), None) => arn.partition(),
        (None, None) => Partition::Aws,
    };
    Ok(Inputs {
        bucket: bucket.unwrap_or_else(|| account.state_bucket_name()),
        account,
        partition,
        role: role.zip(user_arn),
        external,
    })
}

fn documents(i: &Inputs) -> serde_json::Value {
    let mut policies = serde_json::Map::new();
    let mut body = json!({
        "aws_account_id": i.account.as_str(),
        "partition": i.partition.as_str(),
        "bucket_arn": i.bucket.arn(i.partition),
    });
    if let Some((role, user)) = &i.role {
        let arn = role.arn(i.partition, &i.account);
        let external = i.external.as_ref().map(ExternalId::as_str);
        policies.insert(
            "role_trust_policy".into(),
            policies::role_trust_policy(user.as_str(), external),
        );
        policies.insert(
            "user_assume_role_policy".into(),
            policies::user_assume_role_policy(&arn),
        );
        body["role_arn"] = json!(arn);
        body["user_arn"] = json!(user.as_str());
    }
    policies.insert(
        "state_bucket_policy".into(),
        policies::state_bucket_policy(i.partition, &i.bucket),
    );
    // The keys' user: in the user ARN's account when given (it may be another account).
    let user_account = i
        .role
        .as_ref()
        .and_then(|(_, user)| user.as_str().split(':').nth(4))
        .unwrap_or(i.account.as_str());
    policies.insert(
        "key_hygiene_policy".into(),
        policies::key_hygiene_policy(i.partition, user_account),
    );
    body["policies"] = serde_json::Value::Object(policies);
    body
}
