//! Onboarding end to end (issue 21): `GET /integrations/aws/{id}/onboarding` through the
//! local gateway, the real manage handler and the local AWS. A role delegation's
//! onboarding names its External ID, the platform principal (the local stack's own
//! identity, which the test-connection function acts as), the trust policy, the
//! CloudFormation template and the quick-create link; whoever may see the integration
//! reads it, others get 404, an access-key integration 409. Every response is recorded
//! for the OpenAPI check (`common::record`).

mod common;

use common::*;
use integrations_core::domain::policies::{
    delegation_role_template, delegation_trust_policy, state_bucket_policy,
};
use integrations_core::domain::{BucketName, Partition};
use integrations_core::http::onboarding::OnboardingSettings;
use local_harness::bootstrap;
use serde_json::{json, Value};

const TEAMMATE: &str = "local-teammate-token";
const OTHER: &str = "local-other-tenant-token";
const ADMIN: &str = "local-admin-token";
const TEMPLATE_URL: &str =
    "https://ops-templates.s3.eu-west-1.amazonaws.com/infrakitchen/delegation-role.json";

/// A stack whose onboarding names the local platform principal and `template_url`;
/// returns it with that principal.
async fn env_with(template_url: Option<&str>) -> (TestEnv, String) {
    let sdk = sdk_for(&moto_url(), "test", "test").await;
    let stack = bootstrap::ensure(&sdk, &unique("onb"), &unique("alias/onb"))
        .await
        .expect("bootstrap the local stack (DynamoDB Local and moto)");
    let principal = bootstrap::platform_principal(&sdk)
        .await
        .expect("the local platform principal");
    let settings = OnboardingSettings {
        platform_principal: principal.clone(),
        template_url: template_url.map(str::to_owned),
    };
    let functions =
        local_harness::functions_with(&sdk, &sdk, &stack, settings).expect("provisioning settings");
    (
        TestEnv::serve_functions(sdk, stack, functions).await,
        principal,
    )
}

fn onboarding(id: &str) -> String {
    format!("/integrations/aws/{id}/onboarding")
}

#[tokio::test]
async fn a_delegation_integrations_onboarding_names_everything_to_create_its_role() {
    let (env, principal) = env_with(Some(TEMPLATE_URL)).await;
    assert!(principal.starts_with("arn:aws:"), "{principal}");
    let account = random_account();
    let created = env
        .post(
            "/integrations/aws",
            &json!({
                "name": "delegated",
                "auth": "role_delegation",
                "aws_account_id": account,
                "aws_assumed_role_name": "InfraKitchenRole",
                "aws_default_region": "eu-west-1",
                "create_state_bucket": true,
                "shared_with": ["local-team"],
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let ext = created.body["aws_external_id"].as_str().unwrap().to_owned();

    let r = env.get(&onboarding(&id)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let o = &r.body;
    assert_eq!(o["integration_id"], id.as_str());
    assert_eq!(o["aws_account_id"], account.as_str());
    assert_eq!(o["role_name"], "InfraKitchenRole");
    assert_eq!(
        o["role_arn"],
        format!("arn:aws:iam::{account}:role/InfraKitchenRole")
    );
    assert_eq!(o["external_id"], ext.as_str());
    assert_eq!(o["platform_principal"], principal.as_str());
    // The trust policy: the platform's principal, only with this External ID.
    assert_eq!(o["trust_policy"], delegation_trust_policy(&principal, &ext));
    let trust = &o["trust_policy"]["Statement"][0];
    assert_eq!(trust["Principal"]["AWS"], principal.as_str());
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        ext.as_str()
    );
    // The state bucket's permissions, for this account's bucket.
    let bucket = BucketName::parse(&format!("infrakitchen-{account}-bucket")).unwrap();
    let permissions = state_bucket_policy(Partition::Aws, &bucket);
    assert_eq!(o["permissions_policy"], permissions);
    // The template: its role trusts the principal and carries the bucket policy.
    let template = &o["cloudformation_template"];
    assert_eq!(template, &delegation_role_template(&principal));
    let role = &template["Resources"]["InfraKitchenRole"]["Properties"];
    let stmt = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(stmt["Principal"]["AWS"], principal.as_str());
    assert_eq!(
        stmt["Condition"]["StringEquals"]["sts:ExternalId"],
        json!({"Ref": "ExternalId"})
    );
    let policy = &role["Policies"]["Fn::If"][1][0]["PolicyDocument"];
    let actions = |doc: &Value| -> Vec<Value> {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Action"].clone())
            .collect()
    };
    assert_eq!(actions(policy), actions(&permissions));
    // The quick-create link: the hosted template, with this integration's values.
    assert_eq!(o["template_url"], TEMPLATE_URL);
    let link = o["quick_create_link"].as_str().unwrap();
    assert!(
        link.starts_with(
            "https://console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/quickcreate?templateURL=https%3A%2F%2Fops-templates.s3.eu-west-1.amazonaws.com%2F"
        ),
        "{link}"
    );
    assert!(
        link.contains(&format!("&param_ExternalId={ext}&")),
        "{link}"
    );
    assert!(
        link.contains("&stackName=infrakitchen-infrakitchenrole&"),
        "{link}"
    );
    assert!(link.contains("&param_RoleName=InfraKitchenRole&"), "{link}");
    assert!(link.ends_with("&param_WithStateBucket=true"), "{link}");

    // Whoever may see it reads the same documents; another tenant gets 404.
    for token in [TEAMMATE, ADMIN] {
        let r = env.send_as(token, "GET", &onboarding(&id), None, &[]).await;
        assert_eq!((r.status, &r.body), (200, o), "{token}");
    }
    let r = env.send_as(OTHER, "GET", &onboarding(&id), None, &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["type"], "/problems/not-found");
    assert!(!r.body.to_string().contains(&ext), "{}", r.body);
    let r = env.get(&onboarding("01JD5Z8Y6QJ4ZC3N1W7R8T9V0X")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // It reads no query parameter.
    let r = env.get(&format!("{}?role_name=x", onboarding(&id))).await;
    assert_eq!(
        (r.status, r.error_fields()),
        (400, vec!["role_name".into()])
    );

    // The principal it names is the one the delegation test acts as.
    let report = env
        .post(
            &format!("/integrations/aws/{id}/test-connection"),
            &json!({}),
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.body);
    let platform = report.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "platform")
        .unwrap_or_else(|| panic!("no platform step in {}", report.body));
    assert!(
        platform["detail"].as_str().unwrap().contains(&principal),
        "{platform}"
    );
}

#[tokio::test]
async fn access_keys_get_409_and_no_hosted_template_means_no_link() {
    let (env, principal) = env_with(None).await;
    let keys = env.post("/integrations/aws", &form("with-keys")).await;
    assert_eq!(keys.status, 201, "{}", keys.body);
    let id = keys.body["id"].as_str().unwrap();
    let r = env.get(&onboarding(id)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["type"], "/problems/conflict");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("onboarding is for role delegation"),
        "{detail}"
    );
    // Not even the other tenant learns that it exists.
    let r = env.send_as(OTHER, "GET", &onboarding(id), None, &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Switched to role delegation, it has an External ID and onboarding; without a
    // hosted template, no link.
    let switched = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"auth": "role_delegation", "aws_assumed_role_name": "team/Delegated"})),
            &[],
        )
        .await;
    assert_eq!(switched.status, 200, "{}", switched.body);
    let ext = switched.body["aws_external_id"].as_str().unwrap();
    let r = env.get(&onboarding(id)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["external_id"], ext);
    assert_eq!(r.body["platform_principal"], principal.as_str());
    assert_eq!(
        r.body["role_arn"],
        "arn:aws:iam::123456789012:role/team/Delegated"
    );
    assert_eq!(r.body["template_url"], Value::Null);
    assert_eq!(r.body["quick_create_link"], Value::Null);
}
