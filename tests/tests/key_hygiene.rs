//! Credential hygiene in Test Connection (issue 22) through the local gateway, against
//! moto: the key's creation and last use from IAM, the warning that names a refused IAM
//! permission, a policy simulation moto cannot run, and a root user's key.
//!
//! What moto does here (5.2): ListAccessKeys and GetAccessKeyLastUsed work, and record a
//! key's use at once (AWS: hours later). With IAM enforced it authorizes IAM actions
//! against the resource `*` only, so a statement scoped to the user's own ARN (the setup
//! guide's `key_hygiene_policy`, `user/${aws:username}`) never matches there: the users
//! below are granted the actions on `*`. SimulatePrincipalPolicy is not implemented (an
//! HTML 500 once allowed, AccessDenied before that). moto has no root user: its STS names
//! every key's IAM user (or `user/moto`), so the root case puts a stand-in for STS's
//! answer in front of it (see `root_standin`).

mod common;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use common::iam::*;
use common::*;
use integrations_core::domain::Timestamp;
use serde_json::{json, Value};

const HYGIENE: &[&str] = &[
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
    "iam:SimulatePrincipalPolicy",
];

/// The gateway with users' calls going to the IAM-enforcing moto.
async fn enforcing_env() -> TestEnv {
    capture_logs();
    world().await;
    let user_sdk = sdk_for(&auth_url(), "AKIAUNUSED0000000000", "unused").await;
    TestEnv::with_user_sdk(user_sdk).await
}

fn subject(account: &str, keys: &Keys) -> Value {
    json!({
        "name": unique("hygiene"),
        "aws_account_id": account,
        "aws_access_key_id": keys.id,
        "aws_secret_access_key": keys.secret,
    })
}

async fn test(env: &TestEnv, form: &Value) -> Value {
    let r = env.post("/integrations/aws/test-connection", form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r
        .body
        .to_string()
        .contains(form["aws_secret_access_key"].as_str().unwrap()));
    r.body
}

fn codes(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .map(|w| w["code"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn warning<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["warnings"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["code"] == code))
        .unwrap_or_else(|| panic!("no {code} warning in {report}"))
}

fn time(v: &Value) -> Timestamp {
    Timestamp::parse(v.as_str().unwrap_or_else(|| panic!("no time: {v}"))).unwrap()
}

#[tokio::test]
async fn an_iam_users_key_is_reported_with_its_creation_and_the_warnings_moto_allows() {
    let env = enforcing_env().await;
    let w = world().await;
    let bucket = format!("arn:aws:s3:::infrakitchen-{ACCOUNT_A}-bucket");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": HYGIENE, "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:HeadBucket"], "Resource": bucket},
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]});
    let (arn, keys) = w.user(ACCOUNT_A, "hygienic", Some(policy)).await;
    let user_name = arn.rsplit('/').next().unwrap().to_owned();
    let created = w
        .iam(ACCOUNT_A)
        .await
        .list_access_keys()
        .user_name(&user_name)
        .send()
        .await
        .unwrap()
        .access_key_metadata[0]
        .create_date
        .unwrap();

    let mut form = subject(ACCOUNT_A, &keys);
    form["create_state_bucket"] = json!(true);
    let r = test(&env, &form).await;
    // Warnings never fail a test.
    assert_eq!(
        (r["ok"].as_bool(), r["outcome"].as_str()),
        (Some(true), Some("passed")),
        "{r}"
    );
    let facts = &r["access_key"];
    assert_eq!(
        time(&facts["created_at"]).instant().unix_timestamp(),
        created.secs()
    );
    // moto records uses at once (AWS: hours later): a use, if shown, is not before it.
    if !facts["last_used_at"].is_null() {
        assert!(
            time(&facts["last_used_at"]) >= time(&facts["created_at"]),
            "{facts}"
        );
    }
    // A new key, in use: nothing about its age or use. The simulation is allowed but
    // moto does not implement it: could not check, and no permission to blame.
    assert_eq!(codes(&r), ["permissions_unchecked"], "{r}");
    let unchecked = warning(&r, "permissions_unchecked");
    assert!(unchecked["permission"].is_null(), "{unchecked}");
    let message = unchecked["message"].as_str().unwrap();
    assert!(
        message.contains("SimulatePrincipalPolicy") && message.contains("HTTP 500"),
        "{message}"
    );

    // Saved and tested: the record keeps the key's dates, and the list finds it among
    // keys older than 0 days (not 1: it was made just now).
    let created_resp = env
        .post("/integrations/aws", &subject(ACCOUNT_A, &keys))
        .await;
    assert_eq!(created_resp.status, 201, "{}", created_resp.body);
    let id = created_resp.body["id"].as_str().unwrap().to_owned();
    assert!(created_resp.body["key_created_at"].is_null());
    let saved = env
        .post(
            &format!("/integrations/aws/{id}/test-connection"),
            &json!({}),
        )
        .await;
    assert_eq!(saved.body["outcome"], "passed", "{}", saved.body);
    let view = env.get(&format!("/integrations/aws/{id}")).await.body;
    assert_eq!(
        time(&view["key_created_at"]).instant().unix_timestamp(),
        created.secs(),
        "{view}"
    );
    assert_eq!(
        view["key_last_used_at"], saved.body["access_key"]["last_used_at"],
        "{view}"
    );
    let listed = |days: u32| {
        let (env, id) = (&env, &id);
        async move {
            let r = env
                .get(&format!(
                    "/integrations/aws?key_older_than_days={days}&limit=100"
                ))
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == id.as_str())
        }
    };
    assert!(listed(0).await);
    assert!(!listed(1).await);
}

#[tokio::test]
async fn a_user_without_iam_read_permission_gets_the_permission_named() {
    let env = enforcing_env().await;
    let (_, keys) = world().await.user(ACCOUNT_A, "nokeyread", None).await;
    let r = test(&env, &subject(ACCOUNT_A, &keys)).await;
    assert_eq!(r["outcome"], "passed", "{r}");
    assert_eq!(
        codes(&r),
        ["key_facts_unavailable", "key_facts_unavailable"],
        "{r}"
    );
    let named: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["permission"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(named, ["iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"]);
    assert!(
        r["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("AccessDenied"),
        "{r}"
    );
    assert!(r.get("access_key").is_none(), "{r}");

    // With a state bucket to provision, the simulation is asked for and refused too.
    let mut form = subject(ACCOUNT_A, &keys);
    form["create_state_bucket"] = json!(true);
    let r = test(&env, &form).await;
    assert_eq!(
        warning(&r, "permissions_unchecked")["permission"],
        "iam:SimulatePrincipalPolicy",
        "{r}"
    );

    // The setup guide's document for it is one IAM accepts.
    let guide = env
        .get(&format!(
            "/integrations/aws/setup-policies?aws_account_id={ACCOUNT_A}"
        ))
        .await;
    let doc = &guide.body["policies"]["key_hygiene_policy"];
    assert_eq!(
        doc["Statement"][0]["Action"],
        json!(HYGIENE),
        "{}",
        guide.body
    );
    assert_eq!(
        doc["Statement"][0]["Resource"],
        format!("arn:aws:iam::{ACCOUNT_A}:user/${{aws:username}}").as_str()
    );
    world()
        .await
        .iam(ACCOUNT_A)
        .await
        .put_user_policy()
        .user_name(format!("nokeyread-{}", world().await.suffix))
        .policy_name("hygiene")
        .policy_document(doc.to_string())
        .send()
        .await
        .expect("the guide's document is accepted");
}

/// A stand-in for STS in front of `upstream` (the open moto): every request is forwarded
/// untouched, and the answer to GetCallerIdentity signed with `root_key` names the
/// account's root user, as AWS answers for a root user's key. Returns its URL.
async fn root_standin(upstream: String, root_key: String, account: String) -> String {
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, upstream) = (client.clone(), upstream.clone());
        let (root_key, account) = (root_key.clone(), account.clone());
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 16 << 20)
                .await
                .unwrap_or_default();
            let signed_by_root = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains(&format!("Credential={root_key}/")));
            let whoami = String::from_utf8_lossy(&bytes).contains("Action=GetCallerIdentity");
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut out = client.request(parts.method.clone(), format!("{upstream}{path}"));
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    out = out.header(k, v);
                }
            }
            let resp = out.body(bytes).send().await.expect("moto answers");
            let mut answer = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if k != "transfer-encoding" && k != "content-length" {
                    answer = answer.header(k, v);
                }
            }
            let mut text = resp.text().await.unwrap_or_default();
            if signed_by_root && whoami {
                if let (Some(a), Some(b)) = (text.find("<Arn>"), text.find("</Arn>")) {
                    text.replace_range(a + 5..b, &format!("arn:aws:iam::{account}:root"));
                }
            }
            answer.body(Body::from(text)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// An IAM user and its key in the open moto, in `account`.
async fn open_moto_key(account: &str, name: &str) -> Keys {
    let iam = aws_sdk_iam::Client::new(&sdk_for(&moto_url(), "AKIAOPENMOTO00000000", "x").await);
    create_user(&iam, name, None, Some(account)).await.1
}

#[tokio::test]
async fn a_root_users_key_is_caught() {
    capture_logs();
    let account = random_account();
    let root = open_moto_key(&account, &unique("stands-for-root")).await;
    let user = open_moto_key(&account, &unique("iam-user")).await;
    let standin = root_standin(moto_url(), root.id.clone(), account.clone()).await;
    let env =
        TestEnv::with_user_sdk(sdk_for(&standin, "AKIAUNUSED0000000000", "unused").await).await;
    let root_arn = format!("arn:aws:iam::{account}:root");

    // The same account, an IAM user's key: passes (the stand-in changes nothing else).
    let mut form = subject(&account, &user);
    form["create_state_bucket"] = json!(true);
    let ok = test(&env, &form).await;
    assert_eq!(ok["outcome"], "passed", "{ok}");

    let mut form = subject(&account, &root);
    form["create_state_bucket"] = json!(true);
    let r = test(&env, &form).await;
    assert_eq!(
        (r["ok"].as_bool(), r["outcome"].as_str()),
        (Some(false), Some("failed")),
        "{r}"
    );
    let c = step(&r, "credentials");
    assert_eq!(c["status"], "failed");
    assert!(c["detail"].as_str().unwrap().contains(&root_arn), "{c}");
    let hint = c["hint"].as_str().unwrap();
    assert!(
        hint.contains("cannot be limited") && hint.contains("IAM user") && hint.contains("delete"),
        "{hint}"
    );
    assert!(c.get("aws_error_code").is_none(), "{c}");
    // The keys work: the other steps still run and pass.
    assert_eq!(step(&r, "account")["status"], "passed", "{r}");
    assert_eq!(step(&r, "state_bucket")["status"], "passed", "{r}");
    assert_eq!(r["state_bucket"]["availability"], "available");
    assert_eq!(r["caller_arn"], root_arn.as_str());
    assert!(r["summary"]
        .as_str()
        .unwrap()
        .starts_with("Failed at the credentials step"));
    assert!(!r["access_key"]["created_at"].is_null(), "{r}");

    // Saved, the verdict is recorded as failed (what the scheduled check shows too).
    let mut saved = subject(&account, &root);
    saved["name"] = json!(unique("root"));
    let created = env.post("/integrations/aws", &saved).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let r = env
        .post(
            &format!("/integrations/aws/{id}/test-connection"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "failed");
    assert_eq!(
        (
            r.body["recorded"].as_bool(),
            r.body["last_test"]["ok"].as_bool()
        ),
        (Some(true), Some(false)),
        "{}",
        r.body
    );
    assert!(!logs_contain(&root.secret), "secret in logs");
}
