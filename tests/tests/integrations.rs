//! End to end through the local gateway, the real handlers and moto (issue 2).

mod common;

use common::*;
use integrations_core::domain::{AccountId, IntegrationId, Sealed};
use integrations_core::ports::{SealContext, SecretSealer};
use secrecy_check::*;
use serde_json::{json, Value};

mod secrecy_check {
    /// True when the text contains the secret in any encoding a leak would take.
    pub fn leaks(text: &str) -> bool {
        text.contains(super::SECRET) || text.contains(&super::SECRET.replace('/', "\\/"))
    }
}

#[tokio::test]
async fn full_lifecycle_create_get_list_update_rotate_delete() {
    let env = TestEnv::new().await;

    // create
    let mut f = form("aws-production");
    f["aws_assumed_role_name"] = json!("team/InfraKitchenRole");
    f["aws_external_id"] = json!("ext-1234");
    f["create_state_bucket"] = json!(true);
    f["aws_default_region"] = json!("eu-central-1");
    let created = env.post("/integrations/aws", &f).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/integrations/aws/{id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    let v = &created.body;
    assert_eq!(v["aws_access_key_id"], "AKIA************MPLE");
    assert_eq!(v["created_by"], PRINCIPAL);
    assert_eq!(v["revision"], 1);
    assert_eq!(v["aws_session_duration"], 3600);
    assert_eq!(
        v["state_bucket"],
        json!({"name": "infrakitchen-123456789012-bucket", "region": "eu-central-1",
               "status": "pending", "attempts": 0,
               "status_changed_at": v["state_bucket"]["status_changed_at"]})
    );
    assert!(!leaks(&v.to_string()));
    assert!(v.get("aws_secret_access_key").is_none());
    assert!(v.get("secret_ciphertext").is_none());

    // get
    let got = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.body, created.body);

    // list
    let listed = env.get("/integrations/aws").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert_eq!(listed.body["next_token"], Value::Null);

    // update with If-Match
    let patched = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"description": "prod", "labels": ["prod", "billing", "prod"], "name": "aws-prod"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["revision"], 2);
    assert_eq!(patched.header("etag"), Some("\"2\""));
    assert_eq!(patched.body["labels"], json!(["prod", "billing"]));
    assert_eq!(patched.body["name"], "aws-prod");
    assert_eq!(patched.body["created_at"], created.body["created_at"]);
    // the old name is free again, the new one is taken
    let again = env.post("/integrations/aws", &form("AWS-PROD")).await;
    assert_eq!(again.status, 409);
    let reuse = env.post("/integrations/aws", &form("aws-production")).await;
    assert_eq!(reuse.status, 201, "{}", reuse.body);

    // rotate keys: re-encrypted, new masked key, revision bumped
    let before = raw_ciphertext(&env, &id).await;
    let new_secret = "abcdEFGHijklMNOPqrstUVWXyz0123456789+/AB";
    let rotated = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"aws_access_key_id": " AKIAZZZZZZZZZZZZ7777 ", "aws_secret_access_key": new_secret})),
            &[],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["aws_access_key_id"], "AKIA************7777");
    assert_eq!(rotated.body["revision"], 3);
    let after = raw_ciphertext(&env, &id).await;
    assert_ne!(before, after);
    let svc = &env.functions.integrations;
    let stored = svc.get(&admin(), &id).await.unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&svc.secret_of(&stored).await.unwrap().unwrap()),
        new_secret
    );

    // delete: record and guard go together; the bucket is never touched
    let deleted = env
        .send("DELETE", &format!("/integrations/aws/{id}"), None, &[])
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        env.get(&format!("/integrations/aws/{id}")).await.status,
        404
    );
    let reused = env.post("/integrations/aws", &form("aws-prod")).await;
    assert_eq!(reused.status, 201, "guard was removed with the record");
    // Beside the audit trail (H# items, kept after a delete until their TTL) and the
    // visibility entries (V#, two per record here: its owner's and an admin shard's).
    let items = env.raw_items().await;
    let kinds = |prefix: &str| {
        items
            .iter()
            .filter(|i| i["pk"].as_s().unwrap().starts_with(prefix))
            .count()
    };
    assert_eq!(
        (kinds("I#"), kinds("N#"), kinds("V#")),
        (2, 2, 4),
        "two records, their guards and entries remain"
    );
    assert_eq!(items.len(), 8 + kinds("H#"));
}

async fn raw_ciphertext(env: &TestEnv, id: &str) -> Vec<u8> {
    let item = aws_sdk_dynamodb::Client::new(&env.sdk)
        .get_item()
        .table_name(&env.stack.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("I#{id}")),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item["secret_ciphertext"].as_b().unwrap().as_ref().to_vec()
}

#[tokio::test]
async fn stored_item_holds_only_ciphertext_bound_to_its_record() {
    let env = TestEnv::new().await;
    let a = env.post("/integrations/aws", &form("alpha")).await;
    let b = env.post("/integrations/aws", &form("beta")).await;
    assert_eq!((a.status, b.status), (201, 201));
    let (ida, idb) = (
        a.body["id"].as_str().unwrap().to_owned(),
        b.body["id"].as_str().unwrap().to_owned(),
    );

    for item in env.raw_items().await {
        let dump = format!("{item:?}");
        assert!(!leaks(&dump), "plaintext secret in a stored item");
        if let Some(ct) = item.get("secret_ciphertext") {
            let bytes = ct.as_b().expect("ciphertext stored as binary");
            assert!(!String::from_utf8_lossy(bytes.as_ref()).contains(SECRET));
        }
    }

    let sealer = integrations_core::aws::kms::KmsSealer::new(
        aws_sdk_kms::Client::new(&env.sdk),
        env.stack.kms_key_id.clone(),
    );
    let ct_a = Sealed(raw_ciphertext(&env, &ida).await);
    let account = AccountId::parse("123456789012").unwrap();
    let (ida_typed, idb_typed) = (
        IntegrationId::parse(&ida).unwrap(),
        IntegrationId::parse(&idb).unwrap(),
    );
    let own = sealer
        .open(
            &ct_a,
            SealContext {
                integration_id: &ida_typed,
                aws_account_id: &account,
            },
        )
        .await
        .expect("decrypts with its own context");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&own), SECRET);
    let other = sealer
        .open(
            &ct_a,
            SealContext {
                integration_id: &idb_typed,
                aws_account_id: &account,
            },
        )
        .await;
    // KMS refuses it (InvalidCiphertextException): not an outage to retry, but a secret
    // that only new keys fix.
    assert!(
        matches!(
            other,
            Err(integrations_core::error::Error::SecretUnreadable { .. })
        ),
        "ciphertext must not open under another record's context: {other:?}"
    );
}

#[tokio::test]
async fn invalid_forms_get_one_problem_naming_every_field_and_write_nothing() {
    let env = TestEnv::new().await;
    let bad = json!({
        "name": "no spaces allowed",
        "description": "x".repeat(1025),
        "labels": ["ok", ""],
        "aws_account_id": "12345",
        "aws_access_key_id": "ASIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": "too-short",
        "aws_external_id": "e",
        "aws_session_duration": 100,
        "aws_default_region": "us-east-1.attacker.example",
        "create_state_bucket": "yes",
        "favourite_colour": "blue",
    });
    let r = env.post("/integrations/aws", &bad).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.body["status"], 400);
    assert_eq!(r.body["type"], "/problems/validation-failed");
    let mut fields = r.error_fields();
    fields.sort();
    let mut want = vec![
        "aws_access_key_id",
        "aws_account_id",
        "aws_default_region",
        "aws_external_id",
        "aws_secret_access_key",
        "aws_session_duration",
        "create_state_bucket",
        "description",
        "favourite_colour",
        "labels[1]",
        "name",
    ];
    want.sort();
    assert_eq!(fields, want);
    assert!(!r.body.to_string().contains("too-short"), "secret echoed");
    let asia = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "aws_access_key_id")
        .unwrap();
    assert!(asia["message"].as_str().unwrap().contains("temporary"));

    // malformed JSON and wrong types
    let r = env
        .send(
            "POST",
            "/integrations/aws",
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(
        (r.status, r.error_fields()),
        (400, vec!["body".to_string()])
    );
    let r = env
        .post(
            "/integrations/aws",
            &json!({"name": 5, "labels": "prod", "aws_session_duration": "3600"}),
        )
        .await;
    assert_eq!(r.status, 400);
    for f in ["name", "labels", "aws_session_duration"] {
        assert!(r.error_fields().contains(&f.to_string()), "{f}");
    }
    assert!(env.raw_items().await.is_empty(), "nothing may be written");

    // good edge values pass
    let mut ok = form(&"a".repeat(64));
    ok["description"] = json!("d".repeat(1024));
    ok["labels"] = json!((0..50).map(|i| format!("label-{i}")).collect::<Vec<_>>());
    ok["aws_session_duration"] = json!(43200);
    ok["aws_assumed_role_name"] = json!("R+=,.@_-");
    ok["aws_external_id"] = json!("ab");
    ok["aws_default_region"] = json!("us-gov-west-1");
    ok["create_state_bucket"] = json!(false);
    let r = env.post("/integrations/aws", &ok).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state_bucket"], Value::Null);

    // PATCH rules
    let id = r.body["id"].as_str().unwrap();
    let p = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"aws_account_id": "999999999999", "aws_access_key_id": KEY_ID})),
            &[],
        )
        .await;
    assert_eq!(p.status, 400);
    let mut f = p.error_fields();
    f.sort();
    assert_eq!(f, ["aws_account_id", "aws_secret_access_key"]);
    let p = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"aws_assumed_role_name": null})),
            &[],
        )
        .await;
    assert_eq!(p.status, 400, "external id left without a role");
    assert_eq!(p.error_fields(), ["aws_external_id"]);
    let unchanged = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(unchanged.body["revision"], 1);
}

#[tokio::test]
async fn duplicate_names_conflict_sequentially_and_under_concurrency() {
    let env = TestEnv::new().await;
    assert_eq!(
        env.post("/integrations/aws", &form("dup")).await.status,
        201
    );
    let r = env.post("/integrations/aws", &form("DUP")).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["type"], "/problems/conflict");
    assert_eq!(r.error_fields(), ["name"]);

    let race = form("race");
    let racers = (0..20).map(|_| env.post("/integrations/aws", &race));
    let results = futures::future::join_all(racers).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let items = env.raw_items().await;
    let race_records = items
        .iter()
        .filter(|i| {
            i.get("name")
                .and_then(|n| n.as_s().ok())
                .map(String::as_str)
                == Some("race")
        })
        .count();
    let race_guards = items
        .iter()
        .filter(|i| *i["pk"].as_s().unwrap() == format!("N#{PRINCIPAL}#race"))
        .count();
    assert_eq!((race_records, race_guards), (1, 1));
}

#[tokio::test]
async fn not_found_stale_and_conflicting_updates() {
    let env = TestEnv::new().await;
    let a = env.post("/integrations/aws", &form("first")).await;
    env.post("/integrations/aws", &form("second")).await;
    let id = a.body["id"].as_str().unwrap();

    for path in [
        "/integrations/aws/01J0000000000000000000000Z",
        "/integrations/aws/not-an-id",
    ] {
        let r = env.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"description": "x"})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(r.body["current_revision"], 1);
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"description": "x"})),
            &[("if-match", "seven")],
        )
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["If-Match".into()]));
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"name": "Second"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 409);
    let r = env
        .send(
            "DELETE",
            &format!("/integrations/aws/{id}"),
            None,
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(
        env.get(&format!("/integrations/aws/{id}")).await.status,
        200
    );
}

#[tokio::test]
async fn the_setup_page_is_served_without_a_token_and_nothing_else_is() {
    let env = TestEnv::new().await;
    for (path, kind) in [
        ("/integrations/aws/setup", "text/html"),
        ("/integrations/aws/setup/app.js", "text/javascript"),
        ("/integrations/aws/setup/app.css", "text/css"),
    ] {
        let r = env
            .http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        let (status, headers) = (r.status().as_u16(), h.clone());
        record(
            "GET",
            path,
            status,
            &headers,
            &Value::String(r.text().await.unwrap()),
        );
    }
    // The page's neighbours keep their authorizer: `{id}` routes and other methods.
    for (method, path) in [
        ("GET", "/integrations/aws/setup-policies"),
        ("DELETE", "/integrations/aws/setup"),
        ("POST", "/integrations/aws/setup/test-connection"),
        ("GET", "/integrations/aws/setup/state-bucket"),
    ] {
        let r = env
            .http
            .request(method.parse().unwrap(), format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}

#[tokio::test]
async fn requests_without_a_principal_are_refused() {
    let env = TestEnv::new().await;
    // A real integration, so that `{id}` routes would find it: a 401 here is not a 404.
    let created = env.post("/integrations/aws", &form("owned")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let items_before = env.raw_items().await.len();
    let mut checked = 0;
    for route in local_harness::ROUTES {
        let (method, path) = (route.method(), route.path().replace("{id}", &id));
        let body = matches!(method, "POST" | "PATCH").then(|| form("nobody").to_string());
        if route.public {
            // The setup page and its assets (see the test above).
            continue;
        }
        // Through the gateway: no token, then a token it does not know.
        for token in [None, Some("wrong")] {
            let mut req = env
                .http
                .request(method.parse().unwrap(), format!("{}{path}", env.base))
                .header("content-type", "application/json");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{} with token {token:?}", route.key);
        }
        // Straight to the function with an event that carries no authorizer context.
        let event = json!({
            "version": "2.0", "routeKey": route.key,
            "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json", "if-match": "\"1\""},
            "pathParameters": if route.key.contains("{id}") { json!({"id": id}) } else { json!({}) },
            "requestContext": {"http": {"method": method, "path": path},
                               "requestId": "r1", "stage": "$default", "timeEpoch": 0},
            "body": body, "isBase64Encoded": false,
        });
        let (status, headers, answer) =
            local_harness::gateway::invoke_event(&env.functions, route.function, &event).await;
        assert_eq!(
            status,
            401,
            "{}: {}",
            route.key,
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{}",
            route.key
        );
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["type"], "/problems/unauthenticated", "{}", route.key);
        checked += 1;
    }
    // Every route but the setup page's five public ones, in all four functions.
    assert_eq!(checked, local_harness::ROUTES.len() - 5);
    let functions: std::collections::HashSet<_> =
        local_harness::ROUTES.iter().map(|r| r.function).collect();
    assert_eq!(functions.len(), 4);
    // Nothing was written, and the integration is as it was.
    assert_eq!(env.raw_items().await.len(), items_before);
    let again = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["revision"], 1);
}

#[tokio::test]
async fn pagination_across_pages_with_a_label_filter() {
    let env = TestEnv::new().await;
    let mut want = Vec::new();
    for i in 0..12 {
        let name = format!("acct-{:02}", 11 - i);
        let mut f = form(&name);
        f["labels"] = if i % 3 == 0 {
            json!(["other"])
        } else {
            json!(["prod", "x"])
        };
        if i % 3 != 0 {
            want.push(name.clone());
        }
        assert_eq!(env.post("/integrations/aws", &f).await.status, 201);
    }
    want.sort();
    assert_eq!(want.len(), 8);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/integrations/aws?label=prod&limit=3".to_owned();
        if let Some(t) = &token {
            path.push_str(&format!("&next_token={t}"));
        }
        let r = env.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match r.body["next_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(seen, want, "all matches, in name order, no duplicates");
    assert!(pages >= 3);

    // everything, unfiltered, sorted by name
    let all = env.get("/integrations/aws?limit=100").await;
    let names: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names.len(), 12);
    assert_eq!(names, sorted);

    // bad parameters are named
    let r = env.get("/integrations/aws?limit=0").await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["limit".into()]));
    let r = env.get("/integrations/aws?limit=101").await;
    assert_eq!(r.status, 400);
    let r = env.get("/integrations/aws?next_token=garbage").await;
    assert_eq!(
        (r.status, r.error_fields()),
        (400, vec!["next_token".into()])
    );
}

#[tokio::test]
async fn every_event_payload_runs_through_its_handler() {
    let env = TestEnv::new().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    // Create first, so the events that name an integration find one; delete last.
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_str().unwrap();
        (!name.starts_with("create"), name.contains("delete"))
    });
    let mut id: Option<String> = None;
    let mut ran = 0;
    for path in &files {
        let file = path.file_name().unwrap().to_str().unwrap();
        let binary = file.split('.').next().unwrap();
        let Some(function) = local_harness::Function::from_binary(binary) else {
            continue; // events of functions covered by their own tests
        };
        let mut text = std::fs::read_to_string(path).unwrap();
        if let Some(id) = &id {
            text = text.replace(local_harness::EVENT_SAMPLE_ID, id);
        }
        let event: Value = serde_json::from_str(&text).unwrap();
        let body = if function == local_harness::Function::HealthCheck {
            // The schedule's run: the integration the create payload made is due (never
            // checked) and passes against moto.
            let out = integrations_core::events::health_check::handle(&env.functions.health, event)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(out["errors"], 0, "{file}: {out}");
            assert!(out["checked"].as_u64() >= Some(1), "{file}: {out}");
            out
        } else if function == local_harness::Function::ProvisionBucket {
            // One binary, two triggers: the Lambda entry point tells them apart.
            let out = integrations_core::events::provision_bucket::handle(
                &env.functions.provisioner,
                event,
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            if let Some(failures) = out.get("batchItemFailures") {
                assert_eq!(failures, &json!([]), "{file}");
                out
            } else if file == "provision-bucket.sweep.json" {
                // The schedule's sweep: nothing is overdue right after the create.
                assert_eq!(out["due"], 0, "{file}: {out}");
                assert_eq!(out["errors"], 0, "{file}: {out}");
                out
            } else {
                let status = out["statusCode"].as_u64().unwrap();
                assert!((200..300).contains(&status), "{file}: {out}");
                serde_json::from_str(out["body"].as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{file}: {e} {out}"))
            }
        } else {
            let (status, _, body) =
                local_harness::gateway::invoke_event(&env.functions, function, &event).await;
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if file == "manage-integrations.onboarding.json" {
                // The create payload's integration uses access keys: onboarding is for role
                // delegation (tests/tests/onboarding.rs covers the 200).
                assert_eq!(status.as_u16(), 409, "{file}: {body}");
                assert_eq!(body["type"], "/problems/conflict", "{file}: {body}");
                ran += 1;
                continue;
            }
            assert!(
                (200..300).contains(&status.as_u16()),
                "{file}: {status} {body}"
            );
            body
        };
        if file.starts_with("create") {
            id = body["id"].as_str().map(str::to_owned);
        }
        if file == "provision-bucket.stream.json" {
            // The stream payload provisioned the bucket the create payload asked for.
            let i = env
                .functions
                .integrations
                .get(&admin(), id.as_ref().unwrap())
                .await
                .unwrap();
            let b = i.state_bucket.unwrap();
            assert_eq!(
                b.status,
                integrations_core::domain::BucketStatus::Ready,
                "{b:?}"
            );
        }
        ran += 1;
    }
    assert!(ran >= 14, "only {ran} events ran");
}

#[tokio::test]
async fn unavailable_dependencies_give_a_retryable_503() {
    // Bootstrap in moto, then serve with an SDK pointed at a port where nothing listens.
    let good = TestEnv::new().await;
    let (dead, _held) = closed_endpoint();
    let sdk = sdk_for(&dead, "test", "test").await;
    let env = TestEnv::serve(sdk, good.stack.clone()).await;
    let r = env.post("/integrations/aws", &form("nowhere")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(r.header("retry-after").is_some());
    assert!(!leaks(&r.body.to_string()));
    let r = env.get("/integrations/aws").await;
    assert_eq!(r.status, 503);
    assert!(good.raw_items().await.is_empty());
}

/// Issue 11 item 1: a body full of bad entries gets a bounded answer, fast.
#[tokio::test]
async fn a_body_full_of_errors_gets_a_bounded_problem() {
    let env = TestEnv::new().await;
    let mut body = form("many-errors");
    for i in 0..500 {
        body[format!("unknown_{i:03}")] = json!(i);
    }
    let r = env.post("/integrations/aws", &body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 50);
    assert_eq!(r.body["errors_omitted"], 450);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("500 fields are invalid: unknown_000, unknown_001"),
        "{detail}"
    );
    assert!(detail.ends_with("and 450 more"), "{detail}");

    let mut labels = form("many-labels");
    labels["labels"] = json!(vec![1; 200_000]);
    let r = env.post("/integrations/aws", &labels).await;
    assert_eq!(
        (r.status, r.error_fields()),
        (400, vec!["labels".to_owned()]),
        "{}",
        r.body
    );
    assert!(r.body.to_string().len() < 2_000, "{}", r.body);
    assert!(env.raw_items().await.is_empty(), "nothing was written");
}

/// Issue 11 item 7: a forged page token is the caller's mistake (400), never a 503.
#[tokio::test]
async fn forged_page_tokens_are_refused_as_input() {
    use base64::Engine as _;
    let env = TestEnv::new().await;
    for name_key in [String::new(), "a".repeat(2000)] {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({"v": 1, "id": "01J00000000000000000000000", "name_key": name_key}).to_string(),
        );
        let r = env
            .get(&format!("/integrations/aws?next_token={token}"))
            .await;
        assert_eq!(
            (r.status, r.error_fields()),
            (400, vec!["next_token".to_owned()]),
            "{}",
            r.body
        );
    }
}

/// Issue 11 item 6: a body must be declared as JSON; anything else is a 415 that says so.
#[tokio::test]
async fn bodies_not_declared_as_json_get_415() {
    let env = TestEnv::new().await;
    let body = form("media-types").to_string();
    let send = |method: &'static str, path: String, content_type: Option<&'static str>| {
        let env = &env;
        let body = body.clone();
        async move {
            let mut req = env
                .http
                .request(method.parse().unwrap(), format!("{}{path}", env.base))
                .bearer_auth(TOKEN)
                .body(body);
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let json: Value = resp.json().await.unwrap_or(Value::Null);
            record(method, &path, status, &headers, &json);
            (status, headers, json)
        }
    };
    for (ct, shown) in [
        (Some("text/plain"), "text/plain"),
        (
            Some("application/x-www-form-urlencoded"),
            "application/x-www-form-urlencoded",
        ),
        (None, "no Content-Type"),
    ] {
        let (status, headers, json) = send("POST", "/integrations/aws".into(), ct).await;
        assert_eq!(status, 415, "{ct:?}: {json}");
        assert_eq!(
            headers.get("content-type").unwrap(),
            "application/problem+json"
        );
        assert_eq!(json["type"], "/problems/unsupported-media-type");
        let detail = json["detail"].as_str().unwrap();
        assert!(
            detail.contains("application/json") && detail.contains(shown),
            "{detail}"
        );
        let (status, _, _) = send("POST", "/integrations/aws/test-connection".into(), ct).await;
        assert_eq!(status, 415, "test-connection {ct:?}");
    }
    assert!(env.raw_items().await.is_empty(), "nothing was written");

    let (status, _, created) = send(
        "POST",
        "/integrations/aws".into(),
        Some("Application/JSON; charset=utf-8"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _, json) = send(
        "PATCH",
        format!("/integrations/aws/{id}"),
        Some("text/plain"),
    )
    .await;
    assert_eq!(status, 415, "{json}");
    let (status, _, json) = send(
        "PATCH",
        format!("/integrations/aws/{id}"),
        Some("application/merge-patch+json"),
    )
    .await;
    assert_eq!(status, 200, "{json}");
}

/// Issue 11 item 1: a body over the payload limit is a 413, not an empty body.
#[tokio::test]
async fn bodies_over_the_payload_limit_get_413() {
    let env = TestEnv::new().await;
    let mut body = form("too-large");
    body["description"] = json!("x".repeat(local_harness::gateway::MAX_PAYLOAD));
    let r = env.post("/integrations/aws", &body).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["message"], "Request Entity Too Large");
    assert!(env.raw_items().await.is_empty(), "nothing was written");
}

/// Issue 11 item 3: a record whose name guard is missing or held by another record
/// (a restore, a hand edit) can still be renamed and deleted, and the operator's check
/// finds and repairs what is out of step.
#[tokio::test]
async fn records_without_their_name_guard_can_be_renamed_deleted_and_repaired() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use integrations_core::aws::dynamo::DynamoStore;
    let env = TestEnv::new().await;
    let ddb = aws_sdk_dynamodb::Client::new(&env.sdk);
    let table = env.stack.table.clone();
    let store = DynamoStore::new(ddb.clone(), &table);
    // Guards are per owner: `N#<owner>#<lower-cased name>`.
    let guard_of = |name: &str| {
        let (ddb, table) = (ddb.clone(), table.clone());
        let key = format!("N#{PRINCIPAL}#{name}");
        async move {
            ddb.get_item()
                .table_name(table)
                .key("pk", AttributeValue::S(key))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .and_then(|i| i.get("integration_id").cloned())
                .and_then(|v| v.as_s().ok().cloned())
        }
    };
    let drop_guard = |name: &str| {
        let (ddb, table) = (ddb.clone(), table.clone());
        let key = format!("N#{PRINCIPAL}#{name}");
        async move {
            ddb.delete_item()
                .table_name(table)
                .key("pk", AttributeValue::S(key))
                .send()
                .await
                .unwrap();
        }
    };
    let id_of = |r: &Resp| r.body["id"].as_str().unwrap().to_owned();
    assert!(store.check_names().await.unwrap().is_consistent());

    // 1. Guard missing: rename works and writes the new guard; delete works.
    let a = id_of(&env.post("/integrations/aws", &form("restored-a")).await);
    drop_guard("restored-a").await;
    let check = store.check_names().await.unwrap();
    assert_eq!(check.unguarded.len(), 1, "{check:?}");
    assert_eq!(check.unguarded[0].id, a);
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{a}"),
            Some(&json!({"name": "restored-a2"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(guard_of("restored-a2").await.as_deref(), Some(a.as_str()));
    assert!(store.check_names().await.unwrap().is_consistent());
    let b = id_of(&env.post("/integrations/aws", &form("restored-b")).await);
    drop_guard("restored-b").await;
    let r = env
        .send("DELETE", &format!("/integrations/aws/{b}"), None, &[])
        .await;
    assert_eq!(r.status, 204, "{}", r.body);

    // 2. Guard held by another record (the name was taken while unguarded): both can
    // still be renamed and deleted; the other record's guard is never touched.
    let c = id_of(&env.post("/integrations/aws", &form("shared-name")).await);
    drop_guard("shared-name").await;
    let d = id_of(&env.post("/integrations/aws", &form("Shared-Name")).await);
    let check = store.check_names().await.unwrap();
    assert_eq!(check.contested.len(), 1, "{check:?}");
    assert_eq!(check.contested[0].id, c);
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{c}"),
            Some(&json!({"name": "shared-name-old"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(guard_of("shared-name").await.as_deref(), Some(d.as_str()));
    assert!(store.check_names().await.unwrap().is_consistent());
    let r = env
        .send("DELETE", &format!("/integrations/aws/{d}"), None, &[])
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(guard_of("shared-name").await, None);

    // 3. The operator's repair: a missing guard is written, an orphan one deleted.
    let e = id_of(&env.post("/integrations/aws", &form("unguarded-e")).await);
    drop_guard("unguarded-e").await;
    ddb.put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("N#{PRINCIPAL}#ghost")))
        .item(
            "integration_id",
            AttributeValue::S("01J00000000000000000000000".into()),
        )
        .send()
        .await
        .unwrap();
    let check = store.check_names().await.unwrap();
    assert_eq!(
        (check.unguarded.len(), check.orphan_guards.len()),
        (1, 1),
        "{check:?}"
    );
    assert_eq!(store.repair_names(&check).await.unwrap(), 2);
    assert!(store.check_names().await.unwrap().is_consistent());
    assert_eq!(guard_of("unguarded-e").await.as_deref(), Some(e.as_str()));
    assert_eq!(guard_of("ghost").await, None);
    // The repaired guard does its job again.
    assert_eq!(
        env.post("/integrations/aws", &form("UNGUARDED-E"))
            .await
            .status,
        409
    );
}

/// Issue 11 item 4: a create retried under the same Idempotency-Key gets the original
/// result (not a 409 for its own record); another body under the key is refused.
#[tokio::test]
async fn creates_under_an_idempotency_key_replay_and_refuse_reuse() {
    let env = TestEnv::new().await;
    let key = unique("key");
    let body = form("idempotent");
    let first = env
        .send(
            "POST",
            "/integrations/aws",
            Some(&body),
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = env
        .send(
            "POST",
            "/integrations/aws",
            Some(&body),
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body, first.body, "the original result, byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    assert!(!leaks(&again.body.to_string()));
    // The stored replay holds the masked view and a hash of the body, never the secret.
    let raw = format!("{:?}", env.raw_items().await);
    assert!(raw.contains("K#") && !leaks(&raw), "{raw}");

    let mut other = body.clone();
    other["name"] = json!("idempotent-other");
    let reused = env
        .send(
            "POST",
            "/integrations/aws",
            Some(&other),
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.body["type"], "/problems/idempotency-key-reused");
    // Without a key, the same body is a new create: its name is taken.
    assert_eq!(env.post("/integrations/aws", &body).await.status, 409);

    // Concurrent retries of one request: one record, every answer the same.
    let key = unique("key");
    let mut racing = form("idempotent-race");
    racing["labels"] = json!(["race"]);
    let headers = [("Idempotency-Key", key.as_str())];
    let answers = futures::future::join_all(
        (0..10).map(|_| env.send("POST", "/integrations/aws", Some(&racing), &headers)),
    )
    .await;
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            r.body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let listed = env.get("/integrations/aws?label=race").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

    for bad in ["", &"k".repeat(256), "has space"] {
        let r = env
            .send(
                "POST",
                "/integrations/aws",
                Some(&form("bad-key")),
                &[("Idempotency-Key", bad)],
            )
            .await;
        assert_eq!(
            (r.status, r.error_fields()),
            (400, vec!["Idempotency-Key".to_owned()]),
            "{bad:?}: {}",
            r.body
        );
    }
}

/// The tests read records directly, as an operator who sees everything.
fn admin() -> integrations_core::domain::Caller {
    integrations_core::domain::Caller::admin("test-admin", vec![])
}

/// 20 concurrent deletes of one record: exactly one 204, the others 404 (or 409 for a
/// delete that lost inside its transaction); renames racing to one name: one wins, and
/// afterwards every record has exactly its guard.
#[tokio::test]
async fn concurrent_deletes_and_renames_to_one_name_leave_one_winner() {
    let env = TestEnv::new().await;
    let r = env.post("/integrations/aws", &form("doomed")).await;
    let path = format!("/integrations/aws/{}", r.body["id"].as_str().unwrap());
    let deletes =
        futures::future::join_all((0..20).map(|_| env.send("DELETE", &path, None, &[]))).await;
    let statuses: Vec<u16> = deletes.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 204 | 404 | 409)),
        "{statuses:?}"
    );

    let mut ids = Vec::new();
    for n in 0..10 {
        let r = env
            .post("/integrations/aws", &form(&format!("renamer-{n}")))
            .await;
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let body = json!({"name": "The-One"});
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("/integrations/aws/{id}"))
        .collect();
    let renames =
        futures::future::join_all(paths.iter().map(|p| env.send("PATCH", p, Some(&body), &[])))
            .await;
    let statuses: Vec<u16> = renames.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    let check = env.name_check().await;
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!((check.records, check.guards), (10, 10));
}
