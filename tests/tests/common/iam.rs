//! Real IAM principals in the moto that enforces IAM (`IK_MOTO_AUTH_URL`): admins per
//! account made in a short no-auth window, then users, keys, roles and trust policies
//! made by those admins, as in a real account.
#![allow(dead_code)]

use super::sdk_for;
use aws_config::SdkConfig;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

pub const ACCOUNT_A: &str = "111111111111";
pub const ACCOUNT_B: &str = "222222222222";
pub const ACCOUNT_C: &str = "333333333333";

pub fn auth_url() -> String {
    std::env::var("IK_MOTO_AUTH_URL").unwrap_or_else(|_| "http://127.0.0.1:4567".into())
}

#[derive(Clone, Debug)]
pub struct Keys {
    pub id: String,
    pub secret: String,
}

pub struct World {
    pub suffix: String,
    admins: Vec<(String, Keys)>,
}

static WORLD: OnceCell<World> = OnceCell::const_new();

pub async fn sdk(keys: &Keys) -> SdkConfig {
    sdk_for(&auth_url(), &keys.id, &keys.secret).await
}

/// Resets the IAM-enforcing moto, then creates one admin per account in a no-auth window
/// of exactly the requests it needs.
pub async fn world() -> &'static World {
    WORLD
        .get_or_init(|| async {
            let suffix = ulid::Ulid::new().to_string().to_lowercase()[20..].to_owned();
            let accounts = [ACCOUNT_A, ACCOUNT_B, ACCOUNT_C];
            // A clean slate per test binary (they run one after another): reruns then see
            // no buckets or principals left by earlier runs.
            reqwest::Client::new()
                .post(format!("{}/moto-api/reset", auth_url()))
                .send()
                .await
                .expect("moto answers reset")
                .error_for_status()
                .unwrap();
            reqwest::Client::new()
                .post(format!("{}/moto-api/reset-auth", auth_url()))
                .header("content-type", "text/plain")
                .body((accounts.len() * 3).to_string())
                .send()
                .await
                .expect("moto answers reset-auth")
                .error_for_status()
                .unwrap();
            let anon = sdk_for(&auth_url(), "AKIAANONYMOUS0000000", "anonymous").await;
            let iam = aws_sdk_iam::Client::new(&anon);
            let mut admins = Vec::new();
            for acct in accounts {
                let policy = allow(&["*"], "*");
                // In the no-auth window moto takes the account from this header.
                let (_, keys) =
                    create_user(&iam, &format!("admin-{suffix}"), Some(&policy), Some(acct)).await;
                admins.push((acct.to_owned(), keys));
            }
            World { suffix, admins }
        })
        .await
}

/// CreateUser, PutUserPolicy (if any), CreateAccessKey; with `account`, each request
/// names the moto account it is for (an open moto, or an enforcing one in its no-auth
/// window). Returns (arn, keys).
pub async fn create_user(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: Option<&Value>,
    account: Option<&str>,
) -> (String, Keys) {
    let account = account.map(str::to_owned);
    let header = move |r: &mut aws_smithy_runtime_api::http::Request| {
        if let Some(acct) = &account {
            r.headers_mut().insert("x-moto-account-id", acct.clone());
        }
    };
    let arn = iam
        .create_user()
        .user_name(name)
        .customize()
        .mutate_request(header.clone())
        .send()
        .await
        .unwrap()
        .user
        .unwrap()
        .arn;
    if let Some(p) = policy {
        iam.put_user_policy()
            .user_name(name)
            .policy_name("p")
            .policy_document(p.to_string())
            .customize()
            .mutate_request(header.clone())
            .send()
            .await
            .unwrap();
    }
    let key = iam
        .create_access_key()
        .user_name(name)
        .customize()
        .mutate_request(header)
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    (
        arn,
        Keys {
            id: key.access_key_id,
            secret: key.secret_access_key,
        },
    )
}

pub fn allow(actions: &[&str], resource: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resource}]})
}

pub fn trust(principal_arn: &str, external_id: Option<&str>) -> Value {
    let mut st = json!({"Effect": "Allow", "Principal": {"AWS": principal_arn},
                        "Action": "sts:AssumeRole"});
    if let Some(e) = external_id {
        st["Condition"] = json!({"StringEquals": {"sts:ExternalId": e}});
    }
    json!({"Version": "2012-10-17", "Statement": [st]})
}

impl World {
    pub fn admin(&self, account: &str) -> &Keys {
        &self
            .admins
            .iter()
            .find(|(a, _)| a == account)
            .expect("known account")
            .1
    }

    pub async fn iam(&self, account: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&sdk(self.admin(account)).await)
    }

    /// A user with an inline policy (if any) and an access key. Returns (arn, keys).
    pub async fn user(&self, account: &str, name: &str, policy: Option<Value>) -> (String, Keys) {
        let iam = self.iam(account).await;
        let name = format!("{name}-{}", self.suffix);
        create_user(&iam, &name, policy.as_ref(), None).await
    }

    /// A role with a trust policy and an inline permission policy. Returns its name.
    pub async fn role(&self, account: &str, name: &str, trust: Value, policy: Value) -> String {
        let iam = self.iam(account).await;
        let name = format!("{name}-{}", self.suffix);
        iam.create_role()
            .role_name(&name)
            .assume_role_policy_document(trust.to_string())
            .max_session_duration(43200)
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name(&name)
            .policy_name("p")
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
        name
    }
}

/// SDK configuration for `keys` at another endpoint in front of the IAM-enforcing moto
/// (the STS trust proxy).
pub async fn sdk_at(endpoint: &str, keys: &Keys) -> SdkConfig {
    sdk_for(endpoint, &keys.id, &keys.secret).await
}
