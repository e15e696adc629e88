//! End to end, strict input (issue 18): a JSON body with a member twice at any depth and
//! a query string with an unknown or repeated parameter are refused with a `400` naming
//! them, before anything is read or written; valid requests are unchanged.

mod common;

use common::*;
use serde_json::{json, Value};

/// A second secret, as valid as the first, so only the duplicate can be refused.
const OTHER_SECRET: &str = "abcdEFGHijklMNOPqrstUVWXyz0123456789+/AB";

/// Sends `body` as written (a `Value` cannot hold a member twice), declared as JSON, and
/// returns the answer with its raw bytes.
async fn send_raw(
    env: &TestEnv,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (Resp, Vec<u8>) {
    let mut req = env
        .http
        .request(method.parse().unwrap(), format!("{}{path}", env.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("local API answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap().to_vec();
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    record(method, path, status, &headers, &body);
    (
        Resp {
            status,
            headers,
            body,
        },
        bytes,
    )
}

/// `form(name)` as JSON text with `extra` members inserted first (`"k":v,...`).
fn form_with(name: &str, extra: &str) -> String {
    form(name)
        .to_string()
        .replacen('{', &format!("{{{extra},"), 1)
}

/// Asserts a validation problem naming exactly `fields`, each as a duplicate.
fn assert_duplicates(r: &Resp, fields: &[&str]) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["type"], "/problems/validation-failed", "{}", r.body);
    assert_eq!(r.error_fields(), fields, "{}", r.body);
    for e in r.body["errors"].as_array().unwrap() {
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("more than once"), "{message}");
    }
}

fn item_names(r: &Resp) -> Vec<String> {
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_duplicated_member_on_create_is_refused_and_nothing_is_written() {
    let env = TestEnv::new().await;

    // `name` twice: the first copy would be stored by a reader that keeps the first,
    // the second by serde_json. Neither is.
    let body = form_with("strict-second", r#""name":"strict-first""#);
    let (r, _) = send_raw(&env, "POST", "/integrations/aws", &body, &[]).await;
    assert_duplicates(&r, &["name"]);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("name appears more than once"),
        "{}",
        r.body
    );

    // Nested and inside arrays, named by path; an Idempotency-Key does not change that.
    let nested = form_with(
        "strict-nested",
        r#""labels":["a"],"x":{"k":1,"k":2},"shared_with":[{"g":1,"g":2}]"#,
    );
    let (r, _) = send_raw(
        &env,
        "POST",
        "/integrations/aws",
        &nested,
        &[("idempotency-key", "strict-1")],
    )
    .await;
    // In document order: the second `labels` comes after the nested ones.
    assert_duplicates(&r, &["x.k", "shared_with[0].g", "labels"]);

    // Nothing written: no record, no name guard, no idempotency entry, no audit event.
    assert!(env.raw_items().await.is_empty(), "nothing may be written");
    let listed = env.get("/integrations/aws").await;
    assert_eq!(listed.status, 200);
    assert!(item_names(&listed).is_empty());

    // Either name is still free, and the same key can be used for a valid request.
    for name in ["strict-first", "strict-second"] {
        let r = env.post("/integrations/aws", &form(name)).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = env
        .send(
            "POST",
            "/integrations/aws",
            Some(&form("strict-nested")),
            &[("idempotency-key", "strict-1")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn a_duplicated_secret_is_named_but_neither_value_is_echoed() {
    let env = TestEnv::new().await;
    let body = form_with(
        "strict-secret",
        &format!(r#""aws_secret_access_key":"{OTHER_SECRET}""#),
    );
    assert!(body.contains(SECRET) && body.contains(OTHER_SECRET));
    let (r, bytes) = send_raw(&env, "POST", "/integrations/aws", &body, &[]).await;
    assert_duplicates(&r, &["aws_secret_access_key"]);
    let answer = String::from_utf8_lossy(&bytes);
    for secret in [SECRET, OTHER_SECRET] {
        for form in [secret.to_owned(), secret.replace('/', "\\/")] {
            assert!(!answer.contains(&form), "secret echoed: {answer}");
        }
        // Nor a recognisable piece of it.
        assert!(!answer.contains(&secret[..12]), "{answer}");
    }
    assert!(env.raw_items().await.is_empty(), "nothing may be written");

    // The unsaved Test Connection reads the same form the same way (no AWS call is made).
    let (r, bytes) = send_raw(
        &env,
        "POST",
        "/integrations/aws/test-connection",
        &body,
        &[],
    )
    .await;
    assert_duplicates(&r, &["aws_secret_access_key"]);
    assert!(!String::from_utf8_lossy(&bytes).contains(OTHER_SECRET));
}

#[tokio::test]
async fn a_duplicated_member_on_patch_leaves_the_record_unchanged() {
    let env = TestEnv::new().await;
    let created = env.post("/integrations/aws", &form("strict-patch")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/integrations/aws/{id}");
    let before = env.get(&path).await;
    let items_before = env.raw_items().await.len();

    let rotate = format!(
        r#"{{"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"{SECRET}","aws_secret_access_key":"{OTHER_SECRET}"}}"#
    );
    for body in [
        r#"{"name":"strict-renamed","name":"strict-other"}"#,
        r#"{"description":"d","labels":["a"],"labels":["b"]}"#,
        rotate.as_str(),
    ] {
        let (r, bytes) = send_raw(&env, "PATCH", &path, body, &[("if-match", "\"1\"")]).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.error_fields().len(), 1, "{}", r.body);
        assert!(!String::from_utf8_lossy(&bytes).contains(OTHER_SECRET));
    }

    let after = env.get(&path).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before.body, "the record is unchanged");
    assert_eq!(after.header("etag"), Some("\"1\""));
    assert_eq!(env.raw_items().await.len(), items_before, "nothing written");

    // A valid PATCH still works.
    let ok = env
        .send(
            "PATCH",
            &path,
            Some(&json!({"name": "strict-renamed"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["name"], "strict-renamed");
    assert_eq!(ok.header("etag"), Some("\"2\""));
}

#[tokio::test]
async fn unknown_and_repeated_query_parameters_are_refused() {
    let env = TestEnv::new().await;
    let mut tagged = form("strict-prod");
    tagged["labels"] = json!(["prod"]);
    let created = env.post("/integrations/aws", &tagged).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        env.post("/integrations/aws", &form("strict-test"))
            .await
            .status,
        201
    );

    // A typo no longer lists everything.
    let r = env.get("/integrations/aws?lable=prod").await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["lable".into()]));
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("label, limit, next_token"), "{message}");

    // Which copy would count is a guess: refused.
    let r = env.get("/integrations/aws?limit=1&limit=2").await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["limit".into()]));
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("repeated"));

    // The list's filters: a bad value is named, every one at once, nothing listed.
    let r = env.get("/integrations/aws?health=sick").await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["health".into()]));
    for days in ["-1", "3651", "ninety", "1.5", ""] {
        let r = env
            .get(&format!("/integrations/aws?key_older_than_days={days}"))
            .await;
        assert_eq!(
            (r.status, r.error_fields()),
            (400, vec!["key_older_than_days".into()]),
            "{days}: {}",
            r.body
        );
    }
    let r = env
        .get("/integrations/aws?health=OK&key_older_than_days=99999&limit=0")
        .await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        (r.status, fields),
        (
            400,
            vec![
                "health".into(),
                "key_older_than_days".into(),
                "limit".into()
            ]
        ),
        "{}",
        r.body
    );
    assert!(r.body.get("items").is_none(), "{}", r.body);

    // A route that reads no parameter takes none.
    for path in [
        format!("/integrations/aws/{id}?verbose=1"),
        format!("/integrations/aws/{id}/state-bucket?x="),
        format!("/integrations/aws/{id}/history?label=prod"),
    ] {
        let r = env.get(&path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.body["type"], "/problems/validation-failed");
    }
    // Nor on writes: refused before the record is touched.
    let r = env
        .send(
            "DELETE",
            &format!("/integrations/aws/{id}?force=true"),
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["force".into()]));
    assert_eq!(
        env.get(&format!("/integrations/aws/{id}")).await.status,
        200
    );

    // A long name is echoed bounded.
    let long = "q".repeat(300);
    let r = env.get(&format!("/integrations/aws?{long}=1")).await;
    assert_eq!(r.status, 400);
    assert!(!r.body.to_string().contains(&long));

    // Valid queries are unchanged.
    let r = env.get("/integrations/aws?label=prod&limit=5").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(item_names(&r), ["strict-prod"]);
    let r = env.get("/integrations/aws?limit=1&next_token=").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(item_names(&r).len(), 1);
    let r = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(r.status, 200);
    let r = env
        .get(&format!("/integrations/aws/{id}/history?limit=10"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env
        .get("/integrations/aws/setup-policies?aws_account_id=123456789012&region=eu-west-1")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = env
        .get("/integrations/aws/setup-policies?aws_account_id=123456789012&acount=1")
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["acount".into()]));

    // The setup page is for browsers: a link's parameters do not break it.
    let page = env
        .http
        .get(format!(
            "{}/integrations/aws/setup?utm_source=mail",
            env.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}
