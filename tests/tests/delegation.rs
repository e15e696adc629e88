//! Role delegation end to end (issue 21): the platform's principal (a user in account A)
//! assumes users' roles in account B with the integration's generated External ID, in the
//! moto that enforces IAM (`IK_MOTO_AUTH_URL`) behind the STS trust-policy proxy
//! (scripts/sts-trust-proxy: moto alone ignores a missing External ID and cross-account
//! trust). The suite starts the proxy itself, once the world's admins exist (the proxy
//! reads roles and users with them); its npm packages must be installed
//! (`ensure_sts_trust_proxy` in scripts/lib.sh).

mod common;

use common::iam::*;
use common::*;
use integrations_core::domain::policies::delegation_trust_policy;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The proxy's process, stopped when the test ends (also when it panics).
struct Proxy {
    child: Child,
    url: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_proxy(w: &World) -> Proxy {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo.join("scripts/sts-trust-proxy");
    assert!(
        dir.join("node_modules").is_dir(),
        "the STS trust proxy's npm packages are missing: run `source scripts/lib.sh; \
         ensure_sts_trust_proxy`"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (a, b) = (w.admin(ACCOUNT_A), w.admin(ACCOUNT_B));
    let log = std::fs::File::create(std::env::temp_dir().join(format!("ik-sts-proxy-{port}.log")))
        .expect("a log file");
    let child = Command::new("node")
        .arg(dir.join("server.mjs"))
        .env("STS_PROXY_PORT", port.to_string())
        .env("STS_PROXY_UPSTREAM", auth_url())
        .env(
            "STS_PROXY_ADMIN_ACCESS_KEY_ID",
            format!("{},{}", a.id, b.id),
        )
        .env(
            "STS_PROXY_ADMIN_SECRET_ACCESS_KEY",
            format!("{},{}", a.secret, b.secret),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("node runs (scripts/sts-trust-proxy)");
    let proxy = Proxy {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while reqwest::get(format!("{}/moto-api/", proxy.url))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the STS trust proxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy
}

fn delegation_form(name: &str, role: &str) -> Value {
    json!({
        "name": name,
        "auth": "role_delegation",
        "aws_account_id": ACCOUNT_B,
        "aws_assumed_role_name": role,
    })
}

fn names(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates a delegation integration for `role` (a name in account B, made afterwards:
/// its trust policy needs the generated External ID); returns (id, External ID).
async fn create(env: &TestEnv, name: &str, role: &str) -> (String, String) {
    let r = env
        .post("/integrations/aws", &delegation_form(name, role))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["auth"], "role_delegation");
    assert_eq!(r.body["aws_access_key_id"], Value::Null);
    let ext = r.body["aws_external_id"].as_str().unwrap().to_owned();
    assert!(ext.starts_with("ik-") && ext.len() == 29, "{ext}");
    (r.body["id"].as_str().unwrap().to_owned(), ext)
}

async fn test_saved(env: &TestEnv, id: &str) -> Value {
    let r = env
        .post(
            &format!("/integrations/aws/{id}/test-connection"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn the_platform_assumes_users_roles_only_with_their_external_id() {
    capture_logs();
    let w = world().await;
    let proxy = start_proxy(w).await;
    let (platform_arn, platform) = w
        .user(
            ACCOUNT_A,
            "platform",
            Some(allow(&["sts:AssumeRole", "sts:GetCallerIdentity"], "*")),
        )
        .await;
    let (other_arn, _) = w.user(ACCOUNT_A, "someone-else", None).await;
    // The platform's principal is the customer configuration's own credentials.
    let env = TestEnv::with_user_sdk(iam::sdk_at(&proxy.url, &platform).await).await;
    env.start_stream_poller();
    let s3_all = allow(&["s3:*"], "*");

    // 1. The right External ID: every step passes, through the platform's principal.
    let good_role = format!("Delegated-{}", w.suffix);
    let (good, ext) = create(&env, "delegated-good", &good_role).await;
    w.role(
        ACCOUNT_B,
        "Delegated",
        delegation_trust_policy(&platform_arn, &ext),
        s3_all.clone(),
    )
    .await;
    let report = test_saved(&env, &good).await;
    assert_eq!(report["outcome"], "passed", "{report}");
    assert_eq!(
        names(&report),
        ["platform", "assume_role", "role_identity"],
        "{report}"
    );
    assert!(step(&report, "platform")["detail"]
        .as_str()
        .unwrap()
        .contains(&platform_arn));
    assert!(report["assumed_role_arn"]
        .as_str()
        .unwrap()
        .contains(ACCOUNT_B));
    assert_eq!(report["recorded"], true);

    // 2. A role that trusts the platform with another External ID: refused at the role
    //    step (after the retries), with the condition it needs.
    let (wrong, wrong_ext) =
        create(&env, "delegated-wrong", &format!("WrongExt-{}", w.suffix)).await;
    w.role(
        ACCOUNT_B,
        "WrongExt",
        delegation_trust_policy(&platform_arn, "ik-SOMEONEELSESEXTERNALID0000"),
        s3_all.clone(),
    )
    .await;
    // 3. A role that trusts another principal (with the right External ID).
    let (untrusted, untrusted_ext) = create(
        &env,
        "delegated-other",
        &format!("OtherPrincipal-{}", w.suffix),
    )
    .await;
    w.role(
        ACCOUNT_B,
        "OtherPrincipal",
        delegation_trust_policy(&other_arn, &untrusted_ext),
        s3_all.clone(),
    )
    .await;
    let started = Instant::now();
    let (wrong_report, untrusted_report) =
        tokio::join!(test_saved(&env, &wrong), test_saved(&env, &untrusted));
    for (report, ext) in [
        (&wrong_report, &wrong_ext),
        (&untrusted_report, &untrusted_ext),
    ] {
        assert_eq!(report["outcome"], "failed", "{report}");
        let role_step = step(report, "assume_role");
        assert_eq!(role_step["status"], "failed", "{report}");
        assert_eq!(role_step["aws_error_code"], "AccessDenied", "{report}");
        // Retried with back-off while IAM might still be propagating, and says so.
        assert_eq!(role_step["attempts"], 4, "{report}");
        let hint = role_step["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!("sts:ExternalId = \"{ext}\"")) && hint.contains(&platform_arn),
            "{hint}"
        );
        let trust = &role_step["policies"]["role_trust_policy"]["Statement"][0];
        assert_eq!(trust["Principal"]["AWS"], platform_arn.as_str());
        assert_eq!(
            trust["Condition"]["StringEquals"]["sts:ExternalId"],
            ext.as_str()
        );
        assert_eq!(step(report, "role_identity")["status"], "skipped");
        assert_eq!(report["recorded"], true);
    }
    assert!(
        started.elapsed() < Duration::from_secs(18),
        "within the budget"
    );

    // 4. A missing External ID is refused too (the platform always sends one; this is
    //    the local STS saying no where AWS does).
    let customer = integrations_core::aws::customer::CustomerAccount::new(
        &iam::sdk_at(&proxy.url, &platform).await,
    );
    let creds = integrations_core::ports::AwsCredentials {
        access_key_id: platform.id.clone(),
        secret_access_key: platform.secret.clone().into(),
        session_token: None,
    };
    let role_arn = format!("arn:aws:iam::{ACCOUNT_B}:role/{good_role}");
    let req = |ext: Option<&'static str>| integrations_core::ports::AssumeRole {
        role_arn: Box::leak(role_arn.clone().into_boxed_str()),
        session_name: "missing-ext",
        duration_seconds: 900,
        external_id: ext,
    };
    use integrations_core::ports::AwsIdentity;
    let region = integrations_core::domain::Region::default();
    let missing = customer.assume_role(&creds, &region, &req(None)).await;
    assert_eq!(
        missing.err().and_then(|f| f.code).as_deref(),
        Some("AccessDenied")
    );

    // 5. The state bucket, provisioned through the delegated role (stream -> claim ->
    //    platform session -> AssumeRole with the External ID -> S3 in account B).
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{good}"),
            Some(&json!({"create_state_bucket": true})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bucket = env.settled_bucket(&good).await;
    assert_eq!(bucket["status"], "ready", "{bucket}");
    assert_eq!(
        bucket["name"],
        format!("infrakitchen-{ACCOUNT_B}-bucket").as_str()
    );
    // Provisioning checked the owner (HeadBucket with ExpectedBucketOwner = account B)
    // with the role's credentials, so ready means account B's bucket.
    assert_eq!(
        bucket["arn"],
        format!("arn:aws:s3:::infrakitchen-{ACCOUNT_B}-bucket").as_str()
    );

    // 6. A delegation record holds no secret: no key id, no ciphertext attribute.
    let items = env.raw_items().await;
    let record = items
        .iter()
        .find(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&format!("I#{good}")))
        .expect("the record");
    assert_eq!(
        record
            .get("auth")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("role_delegation")
    );
    for attr in [
        "secret_ciphertext",
        "aws_access_key_id",
        "aws_secret_access_key",
    ] {
        assert!(!record.contains_key(attr), "{attr} stored: {record:?}");
    }
    assert!(!logs_contain(&platform.secret));

    // 7. Terraform writes its state into the bucket provisioned through the delegated
    //    role, with a session of the user's role (what the platform would hand to
    //    Terraform: the platform's principal, AssumeRole with the External ID).
    let session = customer
        .assume_role(
            &creds,
            &region,
            &integrations_core::ports::AssumeRole {
                role_arn: &role_arn,
                session_name: "terraform",
                duration_seconds: 900,
                external_id: Some(&ext),
            },
        )
        .await
        .expect("the platform assumes the role with the External ID");
    let role_s3 = role_s3(&session).await;
    let bucket_name = format!("infrakitchen-{ACCOUNT_B}-bucket");
    // moto ignores policy conditions, so the TLS-only deny would refuse every object call
    // even over https: assert it, then remove it (as the role) before Terraform writes.
    let pol = role_s3
        .get_bucket_policy()
        .bucket(&bucket_name)
        .send()
        .await
        .expect("the role reads the bucket policy");
    assert!(pol
        .policy
        .unwrap_or_default()
        .contains("aws:SecureTransport"));
    role_s3
        .delete_bucket_policy()
        .bucket(&bucket_name)
        .send()
        .await
        .expect("the role removes the bucket policy");
    let backend = bucket["backend"].as_str().unwrap();
    let key = "delegated-good/terraform.tfstate";
    assert!(backend.contains(key), "{backend}");
    let dir = common::terraform::Workdir::new(
        backend,
        "resource \"terraform_data\" \"demo\" {\n  input = \"delegated\"\n}\n",
        &auth_url(),
    );
    for args in [
        &[
            "init",
            "-input=false",
            "-no-color",
            "-backend-config=local.s3.tfbackend",
        ][..],
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    ] {
        let o = terraform(dir.path(), args, &session).await;
        assert!(
            o.status.success(),
            "terraform {}: {}{}",
            args[0],
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let state = role_s3
        .get_object()
        .bucket(&bucket_name)
        .key(key)
        .send()
        .await
        .expect("the state object, read back as the role");
    let state = String::from_utf8(state.body.collect().await.unwrap().to_vec()).unwrap();
    let state: Value = serde_json::from_str(&state).expect("Terraform state JSON");
    assert_eq!(state["resources"][0]["type"], "terraform_data", "{state}");
    assert_eq!(
        state["resources"][0]["instances"][0]["attributes"]["input"]["value"], "delegated",
        "{state}"
    );
}

/// An S3 client acting as a session of the user's role, in the IAM-enforcing moto.
async fn role_s3(session: &integrations_core::ports::AwsCredentials) -> aws_sdk_s3::Client {
    use aws_sdk_dynamodb::config::Credentials;
    use secrecy::ExposeSecret;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(integrations_core::aws::http_client())
        .endpoint_url(auth_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &session.access_key_id,
            session.secret_access_key.expose_secret(),
            session
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "role-session",
        ))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(integrations_core::aws::s3_config(&sdk).build())
}

/// Runs terraform in `dir` with the role session's credentials, as the platform would
/// hand them to Terraform.
async fn terraform(
    dir: &std::path::Path,
    args: &[&str],
    session: &integrations_core::ports::AwsCredentials,
) -> std::process::Output {
    use secrecy::ExposeSecret;
    let credentials = vec![
        ("AWS_ACCESS_KEY_ID", session.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            session.secret_access_key.expose_secret().to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN",
            session
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .unwrap_or_default(),
        ),
    ];
    common::terraform::run(dir, args, credentials).await
}

#[tokio::test]
async fn switching_kind_destroys_the_secret_and_refuses_what_does_not_fit() {
    let env = TestEnv::new().await;
    // Refused at create: keys and a chosen External ID, each named; a role is required.
    let mut f = delegation_form("refused", "InfraKitchenRole");
    f["aws_access_key_id"] = json!(KEY_ID);
    f["aws_secret_access_key"] = json!(SECRET);
    f["aws_external_id"] = json!("mine-1234");
    let r = env.post("/integrations/aws", &f).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_fields(),
        [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_external_id"
        ]
    );
    let mut f = delegation_form("no-role", "x");
    f["aws_assumed_role_name"] = Value::Null;
    let r = env.post("/integrations/aws", &f).await;
    assert_eq!(r.error_fields(), ["aws_assumed_role_name"], "{}", r.body);
    // The unsaved test cannot test a delegation: save first.
    let r = env
        .post(
            "/integrations/aws/test-connection",
            &delegation_form("unsaved", "InfraKitchenRole"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_fields(), ["auth"]);
    assert!(r.body.to_string().contains("save first"), "{}", r.body);

    // An access-key integration switched to delegation: key and ciphertext gone.
    let mut f = form("switching");
    f["aws_assumed_role_name"] = json!("InfraKitchenRole");
    let r = env.post("/integrations/aws", &f).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["auth"], "access_keys");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/integrations/aws/{id}");
    let r = env
        .send(
            "PATCH",
            &path,
            Some(&json!({"auth": "role_delegation"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["auth"], "role_delegation");
    assert_eq!(r.body["aws_access_key_id"], Value::Null);
    let ext = r.body["aws_external_id"].as_str().unwrap().to_owned();
    assert!(ext.starts_with("ik-"), "{ext}");
    let items = env.raw_items().await;
    let record = items
        .iter()
        .find(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&format!("I#{id}")))
        .expect("the record");
    assert!(!record.contains_key("secret_ciphertext"), "{record:?}");
    assert!(!record.contains_key("aws_access_key_id"), "{record:?}");
    let history = env.get(&format!("{path}/history")).await;
    let last = &history.body["events"][0];
    assert!(
        last["detail"].as_str().unwrap().contains("destroyed"),
        "{last}"
    );
    assert!(last["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["field"] == "aws_secret_access_key" && c["to"] == "(destroyed)"));
    assert!(!history.body.to_string().contains(SECRET));

    // Keys or an External ID on a delegation integration: refused, each named.
    let r = env
        .send(
            "PATCH",
            &path,
            Some(&json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET})),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_fields(),
        ["aws_access_key_id", "aws_secret_access_key"]
    );
    // Back to keys: both required ...
    let r = env
        .send("PATCH", &path, Some(&json!({"auth": "access_keys"})), &[])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.error_fields(),
        ["aws_access_key_id", "aws_secret_access_key"]
    );
    // ... and with them the generated External ID is cleared.
    let r = env
        .send(
            "PATCH",
            &path,
            Some(&json!({"auth": "access_keys", "aws_access_key_id": KEY_ID,
                         "aws_secret_access_key": SECRET})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["auth"], "access_keys");
    assert_eq!(r.body["aws_external_id"], Value::Null);
    assert!(r.body["aws_access_key_id"]
        .as_str()
        .unwrap()
        .starts_with("AKIA"));
}
