//! `GET /integrations/aws/setup-policies`: the setup guide's policy documents, filled in
//! with the caller's account, role, user and bucket.

use super::error::ApiError;
use super::input as v;
use super::request::query;
use super::response::json;
use crate::app::{Error, FieldError};
use crate::domain::{bucket_arn, policies, role_arn, state_bucket_name, Caller, Partition};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// The policy documents of the setup guide, filled in with the caller's values.
pub fn get(_: Caller, req: Request) -> Result<Response<Body>, ApiError> {
    let get = |k: &str| query(&req, k);
    let mut errors = Vec::new();
    let mut check =
        |field: &str, value: Option<String>, rule: fn(&str) -> Result<String, String>| {
            value.and_then(|raw| match rule(&raw) {
                Ok(v) => Some(v),
                Err(m) => {
                    errors.push(FieldError::new(field, m));
                    None
                }
            })
        };
    let account = check("aws_account_id", get("aws_account_id"), v::account_id);
    let region = check("region", get("region"), v::region);
    let role = check("role_name", get("role_name"), v::role_name);
    let external = check("external_id", get("external_id"), v::external_id);
    let user_arn = check("user_arn", get("user_arn"), v::principal_arn);
    let bucket = check("bucket_name", get("bucket_name"), v::bucket_name);
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
        if v::arn_partition(arn) != Partition::of_region(r) {
            errors.push(FieldError::new(
                "region",
                "is in another AWS partition than user_arn",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors).into());
    }
    let account = account.ok_or_else(|| Error::validation("aws_account_id", "is required"))?;
    let partition = match (&user_arn, &region) {
        (_, Some(r)) => Partition::of_region(r),
        (Some(arn), None) => v::arn_partition(arn),
        (None, None) => Partition::Aws,
    };
    let bucket = bucket.unwrap_or_else(|| state_bucket_name(&account));
    let mut policies = serde_json::Map::new();
    let mut body = json!({
        "aws_account_id": account,
        "partition": partition.as_str(),
        "bucket_arn": bucket_arn(partition, &bucket),
    });
    if let (Some(role), Some(user)) = (&role, &user_arn) {
        let arn = role_arn(partition, &account, role);
        policies.insert(
            "role_trust_policy".into(),
            policies::role_trust_policy(user, external.as_deref()),
        );
        policies.insert(
            "user_assume_role_policy".into(),
            policies::user_assume_role_policy(&arn),
        );
        body["role_arn"] = json!(arn);
        body["user_arn"] = json!(user);
    }
    policies.insert(
        "state_bucket_policy".into(),
        policies::state_bucket_policy(partition, &bucket),
    );
    body["policies"] = serde_json::Value::Object(policies);
    json(StatusCode::OK, &body)
}
