//! Tenant isolation and the audit trail end to end (issue 11): two tenants, a teammate,
//! an admin and a platform service on every route, through the local gateway's
//! authorizer stand-in, the real handlers and the local AWS.

mod common;

use common::*;
use local_harness::ROUTES;
use serde_json::{json, Value};

const TEAMMATE: &str = "local-teammate-token";
const OTHER: &str = "local-other-tenant-token";
const ADMIN: &str = "local-admin-token";
const SERVICE: &str = "local-service-token";

/// A request for every route that names an integration, on `id`.
fn id_routes(id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    ROUTES
        .iter()
        .filter(|r| r.path().contains("{id}"))
        .map(|r| {
            let body = (r.method() == "PATCH").then(|| json!({"description": "changed"}));
            (r.method(), r.path().replace("{id}", id), body)
        })
        .collect()
}

async fn names(env: &TestEnv, token: &str) -> Vec<String> {
    let r = env
        .send_as(token, "GET", "/integrations/aws", None, &[])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn two_tenants_on_every_route_see_and_change_only_what_they_may() {
    let env = TestEnv::new().await;
    let mut shared = form("tenant-a-prod");
    shared["shared_with"] = json!(["local-team"]);
    let a = env.post("/integrations/aws", &shared).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["created_by"], PRINCIPAL);
    assert_eq!(a.body["shared_with"], json!(["local-team"]));
    let id = a.body["id"].as_str().unwrap().to_owned();
    let b = env
        .send_as(
            OTHER,
            "POST",
            "/integrations/aws",
            Some(&form("tenant-b-prod")),
            &[],
        )
        .await;
    assert_eq!(b.status, 201, "{:?}", b.body);

    // The other tenant: every route that names A answers 404, as for an unknown id.
    let routes = id_routes(&id);
    assert_eq!(routes.len(), 8, "{routes:?}");
    for (method, path, body) in &routes {
        let r = env.send_as(OTHER, method, path, body.as_ref(), &[]).await;
        assert_eq!(r.status, 404, "{method} {path}: {:?}", r.body);
        assert_eq!(r.body["type"], "/problems/not-found", "{method} {path}");
    }
    assert_eq!(names(&env, OTHER).await, ["tenant-b-prod"]);
    assert_eq!(names(&env, TOKEN).await, ["tenant-a-prod"]);

    // The teammate (local-team) reads, tests, asks for the bucket and reads the history;
    // changing or deleting is the owner's: 403.
    assert_eq!(names(&env, TEAMMATE).await, ["tenant-a-prod"]);
    for (method, path, body) in &routes {
        let r = env
            .send_as(TEAMMATE, method, path, body.as_ref(), &[])
            .await;
        let expected: &[u16] = match *method {
            "PATCH" | "DELETE" => &[403],
            // The bucket's status is 404 until one is requested; the POST requests it.
            "GET" if path.ends_with("/state-bucket") => &[200, 404],
            // A's keys are access keys: its onboarding (role delegation's) is a 409, which
            // the teammate may see, as the owner would.
            "GET" if path.ends_with("/onboarding") => &[409],
            _ => &[200, 202],
        };
        assert!(
            expected.contains(&r.status),
            "{method} {path}: {} {:?}",
            r.status,
            r.body
        );
        if r.status == 403 {
            assert_eq!(r.body["type"], "/problems/forbidden");
        }
    }

    // Admins and platform services (IAM-signed) see both and may change either.
    for token in [ADMIN, SERVICE] {
        assert_eq!(names(&env, token).await, ["tenant-a-prod", "tenant-b-prod"]);
    }
    let bid = b.body["id"].as_str().unwrap();
    let r = env
        .send_as(
            SERVICE,
            "PATCH",
            &format!("/integrations/aws/{bid}"),
            Some(&json!({"labels": ["audited"]})),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body["created_by"].as_str()),
        (200, Some("local-other-tenant"))
    );

    // Nothing the other tenant or the teammate tried changed A.
    let now = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(
        (
            now.body["revision"].as_u64(),
            now.body["description"].as_str()
        ),
        (Some(1), Some("test account"))
    );

    // The owner stops sharing: the teammate gets 404 from then on.
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"shared_with": []})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = env
        .send_as(
            TEAMMATE,
            "GET",
            &format!("/integrations/aws/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    // Sharing is validated like every field.
    let r = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"shared_with": ["two words"]})),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].as_str()),
        (400, Some("shared_with[0]"))
    );
}

#[tokio::test]
async fn the_history_records_who_changed_what_without_secrets_and_outlives_a_delete() {
    let env = TestEnv::new().await;
    let mut shared = form("audited");
    shared["shared_with"] = json!(["local-team"]);
    let a = env.post("/integrations/aws", &shared).await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    let path = format!("/integrations/aws/{id}");
    let r = env
        .send(
            "PATCH",
            &path,
            Some(&json!({"name": "audited-2", "aws_session_duration": 1800})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rotated = json!({"aws_access_key_id": "AKIAIOSFODNN7ROTATED", "aws_secret_access_key": "Rotated/Secret+Key0123456789abcdefghijKL"});
    assert_eq!(
        env.send("PATCH", &path, Some(&rotated), &[]).await.status,
        200
    );
    let r = env
        .send_as(
            TEAMMATE,
            "POST",
            &format!("{path}/test-connection"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = env
        .send_as(TEAMMATE, "POST", &format!("{path}/state-bucket"), None, &[])
        .await;
    assert!(matches!(r.status, 200 | 202), "{:?}", r.body);

    let h = env.get(&format!("{path}/history")).await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    let events = h.body["events"].as_array().unwrap().clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first; the bucket may already be ready (the stream provisions it).
    let tail: Vec<&str> = actions
        .iter()
        .copied()
        .filter(|a| *a != "bucket_ready" && *a != "bucket_failed")
        .collect();
    assert_eq!(
        tail,
        [
            "bucket_requested",
            "tested",
            "keys_rotated",
            "updated",
            "created"
        ],
        "{actions:?}"
    );
    let tested = events.iter().find(|e| e["action"] == "tested").unwrap();
    assert_eq!(
        (tested["actor"].as_str(), tested["actor_kind"].as_str()),
        (Some("local-teammate"), Some("user"))
    );
    let updated = events.iter().find(|e| e["action"] == "updated").unwrap();
    assert_eq!(updated["actor"], PRINCIPAL);
    assert_eq!(
        updated["changes"],
        json!([{"field": "name", "from": "audited", "to": "audited-2"},
               {"field": "aws_session_duration", "from": 3600, "to": 1800}])
    );
    let text = h.body.to_string();
    for secret in [
        SECRET,
        "Rotated/Secret+Key0123456789abcdefghijKL",
        KEY_ID,
        "AKIAIOSFODNN7ROTATED",
    ] {
        assert!(!text.contains(secret), "{secret} in the history");
    }

    // Pages chain, newest first, and a forged token is a 400 naming it.
    let first = env.get(&format!("{path}/history?limit=2")).await;
    let token = first.body["next_token"].as_str().unwrap().to_owned();
    let second = env
        .get(&format!("{path}/history?limit=2&next_token={token}"))
        .await;
    assert_eq!(second.body["events"][0], events[2]);
    let forged = env.get(&format!("{path}/history?next_token=I%23x")).await;
    assert_eq!(
        (forged.status, forged.body["errors"][0]["field"].as_str()),
        (400, Some("next_token"))
    );

    // Stored events expire by the table's TTL (a year by default) and hold no secret.
    let items = env.raw_items().await;
    let stored: Vec<_> = items
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("H#"))
        .collect();
    assert!(stored.len() >= 5);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let year = now + 365 * 24 * 3600;
    for item in &stored {
        let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert!((year - 60..=year + 60).contains(&expires), "{expires}");
        assert!(!format!("{item:?}").contains("Rotated/Secret"));
    }

    // After the delete: the owner's history is gone (404), an admin still reads it.
    let del = env.send("DELETE", &path, None, &[]).await;
    assert_eq!(del.status, 204);
    assert_eq!(env.get(&format!("{path}/history")).await.status, 404);
    let h = env
        .send_as(ADMIN, "GET", &format!("{path}/history"), None, &[])
        .await;
    assert_eq!(
        (h.status, h.body["events"][0]["action"].as_str()),
        (200, Some("deleted"))
    );
}

/// 40 characters a secret key may hold, unique to this run.
fn canary(tag: &str) -> String {
    let s = format!("{tag}{}Canary0123456789", ulid::Ulid::new());
    s[..40].to_owned()
}

/// The secrets canary: two unique secrets (the first, then the rotated one) through every
/// main flow at the most verbose log level; neither, nor their base64 forms, shows up in
/// a log line, a response, an audit event or a stored attribute but the ciphertext.
#[tokio::test]
async fn a_canary_secret_appears_nowhere_but_as_ciphertext() {
    use base64::Engine as _;
    capture_logs();
    let env = TestEnv::new().await;
    env.start_stream_poller();
    let (first, rotated) = (canary("A"), canary("B"));
    let mut f = form("canary");
    f["aws_secret_access_key"] = json!(first);
    f["aws_assumed_role_name"] = json!("CanaryRole");
    f["create_state_bucket"] = json!(true);
    let mut answers: Vec<Value> = Vec::new();
    // Every flow must have run for real: each answer's status is checked as it comes.
    let mut keep = |what: &str, r: Resp, status: u16| {
        assert_eq!(r.status, status, "{what}: {}", r.body);
        answers.push(r.body.clone());
        r.body
    };
    let tested = keep(
        "unsaved test",
        env.post("/integrations/aws/test-connection", &f).await,
        200,
    );
    assert_eq!(tested["outcome"], "passed", "{tested}");
    let created = keep("create", env.post("/integrations/aws", &f).await, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/integrations/aws/{id}");
    keep("get", env.get(&path).await, 200);
    let listed = keep("list", env.get("/integrations/aws").await, 200);
    assert!(listed.to_string().contains(&id));
    let rotate =
        json!({"aws_access_key_id": "AKIAIOSFODNN7CANARYX", "aws_secret_access_key": rotated});
    keep(
        "rotate",
        env.send("PATCH", &path, Some(&rotate), &[("if-match", "\"1\"")])
            .await,
        200,
    );
    let saved = keep(
        "saved test",
        env.post(&format!("{path}/test-connection"), &json!({}))
            .await,
        200,
    );
    assert_eq!(saved["outcome"], "passed", "{saved}");
    // The bucket is provisioned with the rotated secret; a poll that times out fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let b = keep(
            "bucket",
            env.get(&format!("{path}/state-bucket")).await,
            200,
        );
        match b["status"].as_str() {
            Some("ready") => break,
            Some("failed") => panic!("the bucket failed: {b}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bucket was not ready within 30 s: {b}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    keep("history", env.get(&format!("{path}/history")).await, 200);
    let stored = format!("{:?}", env.raw_items().await);
    assert!(
        stored.contains("secret_ciphertext"),
        "the sealed secret is stored"
    );
    assert_eq!(env.send("DELETE", &path, None, &[]).await.status, 204);
    keep(
        "history after delete",
        env.send_as(ADMIN, "GET", &format!("{path}/history"), None, &[])
            .await,
        200,
    );

    let answers = serde_json::to_string(&answers).unwrap();
    assert!(logs_len() > 0, "the logs were captured");
    for secret in [&first, &rotated] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        for form in [secret.as_str(), &b64[..40]] {
            assert!(!answers.contains(form), "{form} in a response");
            assert!(!stored.contains(form), "{form} in a stored attribute");
        }
        assert!(!logs_contain(secret), "{secret} in the logs");
    }
    // The key id is stored and logged as the user gave it (it is an identifier, not a
    // secret), but every answer shows it masked.
    assert!(
        !answers.contains("AKIAIOSFODNN7CANARYX"),
        "{}",
        answers
            .match_indices("AKIAIOSFODNN7CANARYX")
            .map(|(i, _)| &answers[i.saturating_sub(300)..(i + 100).min(answers.len())])
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}
