//! Test Connection against real IAM users, keys, roles and trust policies in a moto that
//! enforces IAM (issue 3).

mod common;

use common::iam::*;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn env() -> TestEnv {
    capture_logs();
    world().await;
    // User calls go to the IAM-enforcing moto; the admin keys there only route requests
    // (the service replaces them with the user's keys on every call).
    let user_sdk = sdk_for(&auth_url(), "AKIAUNUSED0000000000", "unused").await;
    TestEnv::with_user_sdk(user_sdk).await
}

fn subject(account: &str, keys: &Keys) -> Value {
    json!({
        "name": "probe",
        "aws_account_id": account,
        "aws_access_key_id": keys.id,
        "aws_secret_access_key": keys.secret,
    })
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The secret (and any temporary credentials) must appear in neither report nor logs.
fn assert_no_secret(report: &Value, secret: &str) {
    assert!(!report.to_string().contains(secret), "secret in report");
    assert!(!logs_contain(secret), "secret in logs");
}

async fn test(env: &TestEnv, form: &Value) -> Value {
    let r = env.post("/integrations/aws/test-connection", form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn valid_keys_pass_and_wrong_ones_fail_at_credentials() {
    let env = env().await;
    let w = world().await;
    let (arn, keys) = w.user(ACCOUNT_A, "valid", None).await;

    let ok = test(&env, &subject(ACCOUNT_A, &keys)).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["outcome"], "passed");
    assert_eq!(ok["caller_arn"], arn.as_str());
    // What a pass proves, and what it does not.
    let proves = ok["proves"].to_string();
    assert!(
        proves.contains(&arn) && proves.contains(&format!("account {ACCOUNT_A}")),
        "{proves}"
    );
    let not = ok["does_not_prove"].to_string();
    assert!(
        not.contains("s3:CreateBucket") && not.contains("manage resources"),
        "{not}"
    );
    assert!(ok["summary"].as_str().unwrap().starts_with("Passed:"));
    assert_eq!(
        statuses(&ok),
        pairs(&[("credentials", "passed"), ("account", "passed")])
    );
    assert!(step(&ok, "credentials")["duration_ms"].is_u64());
    assert_no_secret(&ok, &keys.secret);
    assert!(logs_len() > 0, "the log capture works");

    // wrong secret
    let mut bad = keys.clone();
    // Another last character (moto's secrets are random: one in 64 already ends in 'A').
    let last = if keys.secret.ends_with('A') { 'B' } else { 'A' };
    bad.secret = format!("{}{last}", &keys.secret[..39]);
    assert_ne!(bad.secret, keys.secret);
    let r = test(&env, &subject(ACCOUNT_A, &bad)).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["outcome"], "failed");
    let c = step(&r, "credentials");
    assert_eq!(c["status"], "failed");
    assert_eq!(c["aws_error_code"], "SignatureDoesNotMatch");
    assert!(c["detail"].as_str().unwrap().contains("secret access key"));
    assert!(c["hint"].as_str().unwrap().contains("typos"));
    assert_eq!(step(&r, "account")["status"], "skipped");
    assert_no_secret(&r, &bad.secret);

    // unknown key id
    let unknown = Keys {
        id: "AKIAZZZZZZZZZZZZZZZZ".into(),
        secret: keys.secret.clone(),
    };
    let r = test(&env, &subject(ACCOUNT_A, &unknown)).await;
    let c = step(&r, "credentials");
    assert_eq!(c["aws_error_code"], "InvalidClientTokenId");
    assert!(c["detail"].as_str().unwrap().contains("does not recognise"));
    assert!(c["hint"].as_str().unwrap().contains("typos"));
    assert_ne!(
        c["detail"],
        step(&test(&env, &subject(ACCOUNT_A, &bad)).await, "credentials")["detail"]
    );
    assert_no_secret(&r, &keys.secret);
}

#[tokio::test]
async fn keys_of_another_account_fail_at_account() {
    let env = env().await;
    let (_, keys) = world().await.user(ACCOUNT_B, "elsewhere", None).await;
    let r = test(&env, &subject(ACCOUNT_A, &keys)).await;
    assert_eq!(r["ok"], false);
    let a = step(&r, "account");
    assert_eq!(a["status"], "failed");
    assert!(a["detail"].as_str().unwrap().contains(ACCOUNT_B), "{a}");
    assert!(a["hint"].as_str().unwrap().contains("AWS Account ID"));
    assert_no_secret(&r, &keys.secret);
}

#[tokio::test]
async fn role_assumption_same_account_and_cross_account() {
    let env = env().await;
    let w = world().await;
    for (user_account, label) in [(ACCOUNT_A, "same"), (ACCOUNT_B, "cross")] {
        let (user_arn, keys) = w
            .user(
                user_account,
                &format!("assumer-{label}"),
                Some(allow(&["sts:AssumeRole"], "*")),
            )
            .await;
        let role = w
            .role(
                ACCOUNT_A,
                &format!("InfraKitchenRole-{label}"),
                trust(&user_arn, None),
                allow(&["s3:*"], "*"),
            )
            .await;
        let mut form = subject(ACCOUNT_A, &keys);
        form["aws_assumed_role_name"] = json!(role);
        form["aws_session_duration"] = json!(900);
        let r = test(&env, &form).await;
        assert_eq!(r["ok"], true, "{label}: {r}");
        // The role's ARN pasted into the name field works the same.
        let role_arn = format!("arn:aws:iam::{ACCOUNT_A}:role/{role}");
        let mut pasted = form.clone();
        pasted["aws_assumed_role_name"] = json!(role_arn);
        let p = test(&env, &pasted).await;
        assert_eq!(p["ok"], true, "{label} (ARN pasted): {p}");
        assert_eq!(
            step(&p, "assume_role")["detail"],
            format!("assumed {role_arn}").as_str()
        );
        assert!(p["proves"].to_string().contains(&role_arn));
        assert_eq!(
            statuses(&r),
            pairs(&[
                ("credentials", "passed"),
                ("account", "passed"),
                ("assume_role", "passed"),
                ("role_identity", "passed"),
            ])
        );
        let assumed = r["assumed_role_arn"].as_str().unwrap();
        assert!(
            assumed.starts_with(&format!(
                "arn:aws:sts::{ACCOUNT_A}:assumed-role/{role}/infrakitchen-"
            )),
            "{assumed}"
        );
        if label == "cross" {
            assert!(step(&r, "account")["detail"]
                .as_str()
                .unwrap()
                .contains("cross-account"));
        }
        assert_no_secret(&r, &keys.secret);
    }
}

#[tokio::test]
async fn untrusting_role_fails_with_both_policies_filled_in() {
    let env = env().await;
    let w = world().await;
    let (user_arn, keys) = w
        .user(
            ACCOUNT_A,
            "untrusted",
            Some(allow(&["sts:AssumeRole"], "*")),
        )
        .await;
    let role = w
        .role(
            ACCOUNT_A,
            "TrustsSomeoneElse",
            trust(&format!("arn:aws:iam::{ACCOUNT_A}:user/someone-else"), None),
            allow(&["s3:*"], "*"),
        )
        .await;
    let mut form = subject(ACCOUNT_A, &keys);
    form["aws_assumed_role_name"] = json!(role);
    let r = test(&env, &form).await;
    assert_eq!(r["ok"], false);
    let s = step(&r, "assume_role");
    assert_eq!(s["status"], "failed");
    let role_arn = format!("arn:aws:iam::{ACCOUNT_A}:role/{role}");
    let hint = s["hint"].as_str().unwrap();
    assert!(
        hint.contains(&role_arn) && hint.contains(&user_arn),
        "{hint}"
    );
    assert!(hint.contains("sts:AssumeRole") && hint.contains("trust policy"));
    assert_eq!(
        s["policies"]["user_assume_role_policy"]["Statement"][0]["Resource"],
        role_arn.as_str()
    );
    assert_eq!(
        s["policies"]["role_trust_policy"]["Statement"][0]["Principal"]["AWS"],
        user_arn.as_str()
    );
    assert_eq!(step(&r, "role_identity")["status"], "skipped");
    assert_no_secret(&r, &keys.secret);
}

#[tokio::test]
async fn external_id_right_and_wrong() {
    let env = env().await;
    let w = world().await;
    let (user_arn, keys) = w
        .user(ACCOUNT_A, "ext", Some(allow(&["sts:AssumeRole"], "*")))
        .await;
    let role = w
        .role(
            ACCOUNT_A,
            "ExtRole",
            trust(&user_arn, Some("tenant-42")),
            allow(&["s3:*"], "*"),
        )
        .await;
    let mut form = subject(ACCOUNT_A, &keys);
    form["aws_assumed_role_name"] = json!(role);
    form["aws_external_id"] = json!("tenant-42");
    assert_eq!(test(&env, &form).await["ok"], true);
    form["aws_external_id"] = json!("tenant-43");
    let r = test(&env, &form).await;
    assert_eq!(step(&r, "assume_role")["status"], "failed");
    assert!(step(&r, "assume_role")["hint"]
        .as_str()
        .unwrap()
        .contains("tenant-43"));
}

#[tokio::test]
async fn state_bucket_available_owned_taken_forbidden() {
    let env = env().await;
    let w = world().await;
    let bucket = format!("infrakitchen-{ACCOUNT_A}-bucket");
    // AWS authorises HeadBucket as s3:ListBucket; moto asks for "s3:HeadBucket".
    let s3_policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:HeadBucket", "s3:CreateBucket", "s3:DeleteBucket"],
         "Resource": format!("arn:aws:s3:::{bucket}")},
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]});
    let (_, keys) = w.user(ACCOUNT_A, "bucketeer", Some(s3_policy)).await;
    let mut form = subject(ACCOUNT_A, &keys);
    form["create_state_bucket"] = json!(true);
    let s3 =
        aws_sdk_s3::Client::from_conf(integrations_core::aws::s3_config(&sdk(&keys).await).build());

    let r = test(&env, &form).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["state_bucket"]["availability"], "available");
    assert_eq!(r["state_bucket"]["name"], bucket.as_str());

    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let r = test(&env, &form).await;
    assert_eq!(r["state_bucket"]["availability"], "owned", "{r}");
    assert_eq!(r["ok"], true);

    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
    let other = aws_sdk_s3::Client::from_conf(
        integrations_core::aws::s3_config(&sdk(w.admin(ACCOUNT_B)).await).build(),
    );
    other.create_bucket().bucket(&bucket).send().await.unwrap();
    let r = test(&env, &form).await;
    assert_eq!(r["state_bucket"]["availability"], "taken", "{r}");
    assert_eq!(r["ok"], false);
    assert!(step(&r, "state_bucket")["detail"]
        .as_str()
        .unwrap()
        .contains("another AWS account"));

    let (_, bare) = w.user(ACCOUNT_A, "nos3", None).await;
    let mut form = subject(ACCOUNT_A, &bare);
    form["create_state_bucket"] = json!(true);
    let r = test(&env, &form).await;
    assert_eq!(r["state_bucket"]["availability"], "forbidden", "{r}");
    let s = step(&r, "state_bucket");
    assert!(s["detail"]
        .as_str()
        .unwrap()
        .contains("s3:ListAllMyBuckets"));
    assert_eq!(
        s["policies"]["state_bucket_policy"]["Statement"][0]["Resource"],
        format!("arn:aws:s3:::{bucket}").as_str()
    );
    other.delete_bucket().bucket(&bucket).send().await.unwrap();
}

#[tokio::test]
async fn invalid_form_gets_400_before_any_aws_call() {
    let env = env().await;
    let r = env
        .post(
            "/integrations/aws/test-connection",
            &json!({"name": "x", "aws_account_id": "1"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error_fields().contains(&"aws_account_id".to_string()));
    assert!(r.error_fields().contains(&"aws_access_key_id".to_string()));

    // A key id typo (0 for O) and a role ARN of another account, named and explained.
    let mut form = subject(
        ACCOUNT_A,
        &Keys {
            id: "AKIAIOSF0DNN7EXAMPLE".into(),
            secret: SECRET.into(),
        },
    );
    form["aws_assumed_role_name"] =
        json!(format!("arn:aws:iam::{ACCOUNT_B}:role/InfraKitchenRole"));
    let r = env.post("/integrations/aws/test-connection", &form).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = |field: &str| {
        r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_else(|| panic!("no error on {field}: {}", r.body))
            .to_owned()
    };
    let key = message("aws_access_key_id");
    assert!(
        key.contains("'0' at position 9") && key.contains("'O'") && key.contains("2-7"),
        "{key}"
    );
    let role = message("aws_assumed_role_name");
    assert!(
        role.contains(&format!("account {ACCOUNT_B}")) && role.contains(ACCOUNT_A),
        "{role}"
    );
    form["aws_assumed_role_name"] =
        json!(format!("arn:aws:iam::{ACCOUNT_A}:user/InfraKitchenUser"));
    let r = env.post("/integrations/aws/test-connection", &form).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.to_string().contains("not the ARN of the user"),
        "{}",
        r.body
    );
}

/// An endpoint that accepts connections and never answers.
async fn hanging_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}")
}

/// A second gateway over `env`'s stack (same table and key) whose users' calls (STS, S3)
/// go to `endpoint`: the same saved integration, tested while AWS is out of reach.
async fn users_aws_at(env: &TestEnv, endpoint: &str) -> TestEnv {
    let user_sdk = sdk_for(endpoint, "AKIAUNUSED0000000000", "unused").await;
    let functions =
        local_harness::functions(&env.sdk, &user_sdk, &env.stack).expect("provisioning settings");
    let gateway = Arc::new(local_harness::gateway::Gateway::new(
        functions.clone(),
        TOKEN.into(),
        PRINCIPAL.into(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(local_harness::gateway::serve(listener, gateway.clone()));
    TestEnv {
        base,
        http: reqwest::Client::new(),
        sdk: env.sdk.clone(),
        stack: env.stack.clone(),
        functions,
        gateway,
    }
}

/// The report of a test that could not reach AWS: outcome `unreachable`, the step names
/// what happened and where, nothing in it blames or advises about the keys, and every
/// later step is skipped.
fn assert_outage(r: &Value, what: &str, endpoint: &str) {
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["outcome"], "unreachable", "{r}");
    let c = step(r, "credentials");
    assert_eq!(c["status"], "unreachable", "{c}");
    assert!(
        c.get("aws_error_code").is_none(),
        "no error code blames the user: {c}"
    );
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains("STS GetCallerIdentity in us-east-1")
            && detail.contains(endpoint)
            && detail.contains(what),
        "{detail}"
    );
    let hint = c["hint"].as_str().unwrap();
    assert!(
        hint.contains("not a problem with your keys") && hint.contains("Retry"),
        "{hint}"
    );
    let text = r.to_string();
    for advice in [
        "typo",
        "Access Key ID",
        "Secret Access Key",
        "trust policy",
        "Active",
    ] {
        assert!(!text.contains(advice), "key advice {advice:?} in {r}");
    }
    for later in r["steps"].as_array().unwrap().iter().skip(1) {
        assert_eq!(later["status"], "skipped", "{later}");
        assert!(
            later["detail"]
                .as_str()
                .unwrap()
                .contains("could not reach AWS"),
            "{later}"
        );
    }
    assert!(r["summary"].as_str().unwrap().starts_with("Not completed:"));
    assert_eq!(r["proves"], json!([]));
}

#[tokio::test]
async fn a_hung_endpoint_fails_the_step_with_a_timeout_within_the_bound() {
    capture_logs();
    let hung_url = hanging_endpoint().await;
    let hung = sdk_for(&hung_url, "AKIAUNUSED0000000000", "unused").await;
    let env = TestEnv::with_user_sdk(hung).await;
    let mut form = subject(
        ACCOUNT_A,
        &Keys {
            id: KEY_ID.into(),
            secret: SECRET.into(),
        },
    );
    form["aws_assumed_role_name"] = json!("InfraKitchenRole");
    form["create_state_bucket"] = json!(true);
    let started = Instant::now();
    let r = test(&env, &form).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let c = step(&r, "credentials");
    // Not `failed`: an endpoint that never answers says nothing about the keys.
    assert_eq!(c["status"], "unreachable");
    assert!(c["detail"].as_str().unwrap().contains("timed out"), "{c}");
    assert_eq!(r["ok"], false);
    for later in ["account", "assume_role", "role_identity", "state_bucket"] {
        assert_eq!(step(&r, later)["status"], "skipped");
    }
    assert_outage(&r, "timed out", &hung_url);
    assert_no_secret(&r, SECRET);
}

#[tokio::test]
async fn an_unreachable_or_hung_aws_is_not_blamed_on_the_keys_nor_recorded() {
    let env = env().await;
    let (_, keys) = world().await.user(ACCOUNT_A, "outage", None).await;
    let mut form = subject(ACCOUNT_A, &keys);
    form["name"] = json!(unique("outage"));
    let created = env.post("/integrations/aws", &form).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let saved = format!("/integrations/aws/{id}/test-connection");
    // A real verdict first: the one an outage must leave in place.
    let first = env.post(&saved, &json!({})).await;
    assert_eq!(first.body["outcome"], "passed", "{}", first.body);
    assert_eq!(first.body["recorded"], true);
    let recorded = first.body["last_test"].clone();
    assert_eq!(recorded["ok"], true);

    // Held for the whole test so the refused port stays refused.
    let (refused, held) = closed_endpoint();
    assert!(
        std::net::TcpListener::bind(held.local_addr().unwrap()).is_err(),
        "the held port cannot be taken by another listener"
    );
    for (endpoint, what) in [
        (refused, "connection refused"),
        (hanging_endpoint().await, "timed out"),
    ] {
        let out = users_aws_at(&env, &endpoint).await;

        // Unsaved form.
        let started = Instant::now();
        let r = test(&out, &form).await;
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_outage(&r, what, &endpoint);
        assert!(r.get("recorded").is_none() && r.get("last_test").is_none());
        assert_no_secret(&r, &keys.secret);

        // Saved integration: the report says nothing was recorded, and nothing was.
        let r = out.post(&saved, &json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_outage(&r.body, what, &endpoint);
        assert_eq!(r.body["recorded"], false, "{}", r.body);
        assert!(r.body.get("last_test").is_none(), "{}", r.body);
        assert!(r.body["summary"].as_str().unwrap().contains("Not recorded"));
        assert_no_secret(&r.body, &keys.secret);
        let got = env.get(&format!("/integrations/aws/{id}")).await;
        assert_eq!(got.body["last_test"], recorded, "last_test is unchanged");
        assert_eq!(got.body["revision"], created.body["revision"]);
    }
}

#[tokio::test]
async fn a_saved_integration_is_tested_by_id_and_records_last_test() {
    let env = env().await;
    let (_, keys) = world().await.user(ACCOUNT_A, "saved", None).await;
    let mut form = subject(ACCOUNT_A, &keys);
    form["name"] = json!("saved-one");
    let created = env.post("/integrations/aws", &form).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let r = env
        .post(
            &format!("/integrations/aws/{id}/test-connection"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ok"], true, "{}", r.body);
    assert_eq!(r.body["last_test"]["ok"], true);
    assert_eq!(r.body["recorded"], true);
    assert_no_secret(&r.body, &keys.secret);
    let got = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(got.body["last_test"], r.body["last_test"]);
    assert_eq!(
        got.body["revision"], 1,
        "recording a test bumps nothing else"
    );
    assert_eq!(got.body["updated_at"], created.body["updated_at"]);

    let missing = env
        .post(
            "/integrations/aws/01J0000000000000000000000Z/test-connection",
            &json!({}),
        )
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn setup_policies_are_filled_in_and_validated() {
    let env = env().await;
    let user = format!("arn:aws:iam::{ACCOUNT_B}:user/InfraKitchenUser");
    let r = env
        .get(&format!(
            "/integrations/aws/setup-policies?aws_account_id={ACCOUNT_A}&user_arn={user}&role_name=InfraKitchenRole&external_id=ext-1"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = &r.body["policies"];
    let role_arn = format!("arn:aws:iam::{ACCOUNT_A}:role/InfraKitchenRole");
    assert_eq!(r.body["role_arn"], role_arn.as_str());
    assert_eq!(
        p["role_trust_policy"]["Statement"][0]["Principal"]["AWS"],
        user.as_str()
    );
    assert_eq!(
        p["role_trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "ext-1"
    );
    assert_eq!(
        p["user_assume_role_policy"]["Statement"][0]["Resource"],
        role_arn.as_str()
    );
    assert_eq!(
        p["state_bucket_policy"]["Statement"][0]["Resource"],
        format!("arn:aws:s3:::infrakitchen-{ACCOUNT_A}-bucket").as_str()
    );
    for doc in p.as_object().unwrap().values() {
        assert_eq!(doc["Version"], "2012-10-17");
        assert!(!doc["Statement"].as_array().unwrap().is_empty());
    }
    // The filled-in documents are accepted by IAM itself.
    let iam = world().await.iam(ACCOUNT_A).await;
    let name = unique("PastedRole");
    iam.create_role()
        .role_name(&name)
        .assume_role_policy_document(p["role_trust_policy"].to_string())
        .send()
        .await
        .expect("trust policy accepted");
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("state")
        .policy_document(p["state_bucket_policy"].to_string())
        .send()
        .await
        .expect("bucket policy accepted");

    let bad = env
        .get(
            "/integrations/aws/setup-policies?aws_account_id=12&role_name=bad%20role&user_arn=nope",
        )
        .await;
    assert_eq!(bad.status, 400);
    let mut f = bad.error_fields();
    f.sort();
    assert_eq!(f, ["aws_account_id", "role_name", "user_arn"]);
}
