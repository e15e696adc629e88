//! Issue 18 end to end: two tenants and a teammate list one table. Every answer a caller
//! gets (items and page tokens alike) holds nothing of what it may not see; tokens are
//! opaque and refused when forged, altered, replayed by another caller or expired;
//! names are unique per owner, so a `409` tells a caller only about its own names.

mod common;

use common::*;
use local_harness::gateway::LOCAL_TEAM;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

const OTHER: &str = "local-other-tenant-token";
const TEAMMATE: &str = "local-teammate-token";

/// A stack whose page tokens last `ttl_secs`.
async fn env_with_token_ttl(ttl_secs: u64) -> TestEnv {
    let sdk = sdk_for(&moto_url(), "test", "test").await;
    let stack = local_harness::bootstrap::ensure(&sdk, &unique("tok"), &unique("alias/tok"))
        .await
        .unwrap();
    let config = integrations_core::wiring::Config {
        table: stack.table.clone(),
        kms_key_id: stack.kms_key_id.clone(),
        hmac_key_id: Some(stack.hmac_key_id.clone()),
        page_token_ttl: std::time::Duration::from_secs(ttl_secs),
        provisioning: Default::default(),
        audit_retention: integrations_core::wiring::audit_retention().unwrap(),
        access: local_harness::local_access(),
        platform_role_arn: None,
    };
    let functions =
        Arc::new(integrations_core::wiring::Services::new(&sdk, &sdk, &config).unwrap());
    TestEnv::serve_functions(sdk, stack, functions).await
}

fn form(name: &str, shared: &[&str], labels: &[&str]) -> Value {
    json!({
        "name": name,
        "aws_account_id": "123456789012",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "shared_with": shared,
        "labels": labels,
    })
}

/// Every page of a listing as raw answers, checking each page with a token is full.
async fn pages(env: &TestEnv, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("/integrations/aws?limit={limit}{query}");
        if let Some(t) = &next {
            path.push_str(&format!("&next_token={t}"));
        }
        let r = env.send_as(token, "GET", &path, None, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        next = r.body["next_token"].as_str().map(str::to_owned);
        let n = r.body["items"].as_array().map_or(0, Vec::len);
        assert!(
            next.is_none() || n == limit,
            "{path}: a page with a token holds {n}"
        );
        out.push(r.body);
        if next.is_none() {
            return out;
        }
    }
}

fn listed(pages: &[Value]) -> Vec<(String, String)> {
    pages
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["created_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tenants_see_only_their_own_part_and_tokens_leak_nothing() {
    let env = env_with_token_ttl(3).await;
    // The main caller (in LOCAL_TEAM) shares two of three; the other tenant has many,
    // some named like the main caller's; the teammate (in LOCAL_TEAM) owns one.
    let mut all: Vec<(String, String, String)> = Vec::new(); // (token, id, name)
    let create = |token: &'static str, body: Value| {
        let env = &env;
        async move {
            let r = env
                .send_as(token, "POST", "/integrations/aws", Some(&body), &[])
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            (
                token.to_owned(),
                r.body["id"].as_str().unwrap().to_owned(),
                r.body["name"].as_str().unwrap().to_owned(),
            )
        }
    };
    for (name, shared) in [
        ("team-prod", true),
        ("team-dev", true),
        ("mine-private", false),
    ] {
        let groups: &[&str] = if shared { &[LOCAL_TEAM] } else { &[] };
        all.push(create(TOKEN, form(name, groups, &["prod"])).await);
    }
    for n in 0..12 {
        all.push(
            create(
                OTHER,
                form(&format!("zz-foreign-{n:02}"), &["other-team"], &["prod"]),
            )
            .await,
        );
    }
    // Names are per owner: the other tenant may use the main caller's name (201, so it
    // learns nothing), and the teammate too; the owner itself gets a 409.
    all.push(create(OTHER, form("team-prod", &[], &[])).await);
    all.push(create(TEAMMATE, form("team-prod", &[LOCAL_TEAM], &[])).await);
    let again = env
        .post("/integrations/aws", &form("TEAM-PROD", &[], &[]))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.error_fields(), ["name"]);

    // The teammate sees both integrations named team-prod, with their owners.
    let teammate_sees = listed(&pages(&env, TEAMMATE, "", 50).await);
    let team_prod: HashSet<&str> = teammate_sees
        .iter()
        .filter(|(n, _)| n == "team-prod")
        .map(|(_, o)| o.as_str())
        .collect();
    assert_eq!(team_prod, HashSet::from([PRINCIPAL, "local-teammate"]));
    assert_eq!(teammate_sees.len(), 3, "{teammate_sees:?}");

    // What each caller may see, and that no answer byte names anything else.
    let visible = |token: &str| -> HashSet<String> {
        all.iter()
            .filter(|(owner, _, name)| match token {
                TOKEN => owner == TOKEN || (owner == TEAMMATE),
                TEAMMATE => owner == TEAMMATE || (owner == TOKEN && name != "mine-private"),
                _ => owner == OTHER,
            })
            .map(|(_, id, _)| id.clone())
            .collect()
    };
    let mut tokens_seen = 0;
    for token in [TOKEN, TEAMMATE, OTHER] {
        let mine = visible(token);
        for (query, limit) in [("", 1), ("", 2), ("&label=prod", 1), ("&label=prod", 5)] {
            let answers = pages(&env, token, query, limit).await;
            let ids: HashSet<String> = answers
                .iter()
                .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect();
            assert!(ids.is_subset(&mine), "{token}{query}: {ids:?}");
            let text = answers.iter().map(Value::to_string).collect::<String>();
            for (_, id, name) in all.iter().filter(|(_, id, _)| !mine.contains(id)) {
                assert!(
                    !text.contains(id.as_str()),
                    "{token}{query} shows foreign id {id}"
                );
                let own_name = all.iter().any(|(_, i, n)| n == name && mine.contains(i));
                if !own_name {
                    assert!(
                        !text.contains(name.as_str()),
                        "{token}{query} shows foreign name {name}"
                    );
                }
            }
            // Tokens are opaque: their bytes hold no id or name at all, decoded or not.
            for t in answers.iter().filter_map(|p| p["next_token"].as_str()) {
                tokens_seen += 1;
                let decoded = base64_decode(t);
                for (_, id, name) in &all {
                    for secret in [id.as_str(), name.as_str()] {
                        assert!(!t.contains(secret), "token shows {secret}");
                        let hit = decoded
                            .windows(secret.len())
                            .any(|w| w == secret.as_bytes());
                        assert!(!hit, "decoded token shows {secret}");
                    }
                }
            }
        }
    }
    assert!(tokens_seen > 20, "{tokens_seen} tokens checked");

    // A token is refused when replayed by another caller, altered, forged, used with
    // another query, or expired: 400 naming next_token, nothing listed.
    let first = env.get("/integrations/aws?limit=1").await;
    let token = first.body["next_token"].as_str().unwrap().to_owned();
    let refused = |r: &Resp| {
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.error_fields(), ["next_token"], "{}", r.body);
        assert!(r.body.get("items").is_none());
    };
    let path = |t: &str, extra: &str| format!("/integrations/aws?limit=1&next_token={t}{extra}");
    for other in [TEAMMATE, OTHER, "local-admin-token"] {
        refused(
            &env.send_as(other, "GET", &path(&token, ""), None, &[])
                .await,
        );
    }
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 3;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    refused(
        &env.get(&path(&String::from_utf8(altered).unwrap(), ""))
            .await,
    );
    // The readable token of the layout before (a name and an id in base64 JSON).
    let forged = base64_encode(
        json!({"v": 1, "id": all[3].1, "name_key": "zz-foreign-"})
            .to_string()
            .as_bytes(),
    );
    refused(&env.get(&path(&forged, "")).await);
    refused(
        &env.get(&format!("/integrations/aws?limit=2&next_token={token}"))
            .await,
    );
    refused(&env.get(&path(&token, "&label=prod")).await);
    // Still good now; not after its lifetime.
    assert_eq!(env.get(&path(&token, "")).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(4_200)).await;
    let expired = env.get(&path(&token, "")).await;
    refused(&expired);
    assert!(
        expired.body.to_string().contains("expired"),
        "{}",
        expired.body
    );
}

fn base64_decode(t: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .unwrap_or_default()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
