//! Faults between the functions and the local AWS (issue 11): a proxy in front of
//! DynamoDB Local and moto answers chosen calls with throttling, 500/503, a cut
//! connection or a long delay. Whatever happens, a create answers `503` with
//! `Retry-After` within bounded time, and the table never holds a record without its
//! name guard (or a guard without its record), nor a plaintext secret; provisioning
//! fails with a reason or is retried, and converges once the faults stop.

mod common;

use common::faults::{Fault, FaultProxy};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Attempts the SDK makes for one of the service's own calls (DynamoDB, KMS): the standard
/// retry mode's default, which `aws::load_config` also sets.
const SERVICE_ATTEMPTS: u32 = 3;
/// Attempts for a call into a user's account (`aws::customer`: one retry).
const USER_CALL_ATTEMPTS: u32 = 2;

/// The local gateway over a fresh stack whose DynamoDB and moto traffic (the service's
/// own and the users') goes through fault proxies.
async fn env_behind_proxies() -> (TestEnv, FaultProxy, FaultProxy) {
    let ddb = FaultProxy::start(&dynamodb_url()).await;
    let moto = FaultProxy::start(&moto_url()).await;
    let sdk = with_dynamodb_endpoint(sdk_for(&moto.url, "test", "test").await, ddb.url.clone());
    (TestEnv::with_sdk(sdk).await, ddb, moto)
}

/// Records and name guards agree, and no item holds the plaintext secret.
async fn assert_consistent(env: &TestEnv) {
    let check = env.name_check().await;
    assert!(check.is_consistent(), "{check:?}");
    let dump = format!("{:?}", env.raw_items().await);
    assert!(!dump.contains(SECRET), "a plaintext secret in the table");
}

async fn create(env: &TestEnv, name: &str, key: Option<&str>) -> (Resp, Duration) {
    let started = Instant::now();
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let r = env
        .send("POST", "/integrations/aws", Some(&form(name)), &headers)
        .await;
    (r, started.elapsed())
}

fn assert_retryable_503(r: &Resp, took: Duration, what: &str) {
    assert_eq!(r.status, 503, "{what}: {:?}", r.body);
    assert_eq!(r.body["type"], "/problems/dependency-unavailable", "{what}");
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or("x")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{what}: Retry-After {retry}");
    // Bounded: the SDK's attempts and its operation timeout, far below API Gateway's 30 s.
    assert!(
        took < Duration::from_secs(20),
        "{what}: answered after {took:?}"
    );
}

#[tokio::test]
async fn creates_under_faults_answer_503_in_bounded_time_and_leave_the_table_consistent() {
    let (env, ddb, moto) = env_behind_proxies().await;
    let faults = [
        Fault::Status(400, "ThrottlingException"),
        Fault::Status(400, "ProvisionedThroughputExceededException"),
        Fault::Status(500, "InternalServerError"),
        Fault::Status(503, "ServiceUnavailable"),
        Fault::Reset,
    ];
    let mut created = 0;
    for (n, fault) in faults.iter().enumerate() {
        // More faults than the SDK makes attempts: every attempt fails.
        ddb.inject("TransactWriteItems", fault.clone(), 10);
        let (r, took) = create(&env, &format!("ddb-{n}"), None).await;
        assert_retryable_503(&r, took, &format!("TransactWriteItems {fault:?}"));
        ddb.clear();
        moto.inject("Encrypt", fault.clone(), 10);
        let (r, took) = create(&env, &format!("kms-{n}"), None).await;
        assert_retryable_503(&r, took, &format!("KMS Encrypt {fault:?}"));
        moto.clear();
        // One fault only: the SDK's own retry absorbs it.
        ddb.inject("TransactWriteItems", fault.clone(), 1);
        let (r, _) = create(&env, &format!("once-{n}"), None).await;
        assert_eq!(r.status, 201, "one {fault:?} is retried: {:?}", r.body);
        created += 1;
        ddb.clear();
    }
    println!(
        "faults injected: {} DynamoDB, {} KMS; {} creates answered 201",
        ddb.injected(),
        moto.injected(),
        created
    );
    // Every attempt of each failing create met its fault, and each retried create met
    // exactly one: a fault the SDK did not retry, or a create that called twice, shows here.
    let kinds = faults.len() as u32;
    assert_eq!(
        (ddb.injected(), moto.injected()),
        (kinds * (SERVICE_ATTEMPTS + 1), kinds * SERVICE_ATTEMPTS),
        "faults injected (DynamoDB, KMS)"
    );
    let items = env.raw_items().await;
    let records = items
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("I#"))
        .count();
    assert_eq!(records, created, "only the 201s left records");
    assert_consistent(&env).await;
}

#[tokio::test]
async fn a_create_whose_write_outlives_its_timeout_is_recovered_with_its_idempotency_key() {
    let (env, ddb, _moto) = env_behind_proxies().await;
    // Every attempt is held past the SDK's attempt timeout, then forwarded: the writes
    // may land after the caller got its 503, as a slow network can make them.
    ddb.inject(
        "TransactWriteItems",
        Fault::Delay(Duration::from_secs(5)),
        3,
    );
    let (r, took) = create(&env, "slow", Some("retry-me-1")).await;
    assert_retryable_503(&r, took, "delayed TransactWriteItems");
    // Attempts start at 0 s and 4-5 s (4 s attempt timeout, then up to 1 s of backoff);
    // a third starts only if its backoff (up to 2 s) ends before the 9 s operation
    // timeout. Each one reached the proxy and was held: 2 or 3 delayed writes.
    let delayed = ddb.injected();
    assert!(
        (SERVICE_ATTEMPTS - 1..=SERVICE_ATTEMPTS).contains(&delayed),
        "{delayed} delayed TransactWriteItems"
    );
    assert_eq!(
        r.body["detail"]
            .as_str()
            .map(|d| d.contains("may have been applied")),
        Some(true),
        "{:?}",
        r.body
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    // The retry the 503 asks for, with the same key: one integration, whatever landed.
    let (again, _) = create(&env, "slow", Some("retry-me-1")).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    let listed = env.get("/integrations/aws").await;
    let named: Vec<&Value> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"] == "slow")
        .collect();
    assert_eq!(named.len(), 1, "{:?}", listed.body);
    assert_eq!(named[0]["id"], again.body["id"]);
    assert_consistent(&env).await;
}

#[tokio::test]
async fn provisioning_under_s3_faults_fails_with_a_reason_and_converges_once_they_stop() {
    let (env, _ddb, moto) = env_behind_proxies().await;
    let account = format!(
        "{:012}",
        100_000_000_000u64 + (ulid::Ulid::new().random() % 800_000_000_000) as u64
    );
    let mut f = form("faulty-bucket");
    f["aws_account_id"] = json!(account);
    let r = env.post("/integrations/aws", &f).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let bucket_path = format!("/infrakitchen-{account}-bucket");
    let p = &env.functions.provisioner;

    for fault in [
        Fault::Status(503, "SlowDown"),
        Fault::Status(500, "InternalError"),
        Fault::Reset,
    ] {
        moto.inject(&format!("PUT {bucket_path}/?"), fault.clone(), 20);
        let queued = env
            .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
            .await;
        assert_eq!(queued.status, 202, "{:?}", queued.body);
        let outcome = p.provision(&id).await.unwrap();
        let status = env
            .get(&format!("/integrations/aws/{id}/state-bucket"))
            .await;
        assert_eq!(
            status.body["status"],
            "failed",
            "{fault:?}: {outcome:?} {:?} {:?}",
            status.body,
            moto.operations()
        );
        let reason = status.body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("CreateBucket"),
            "{fault:?}: a reason naming the call: {reason}"
        );
        moto.clear();
    }
    // Faults gone: a retry request provisions it.
    let queued = env
        .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
        .await;
    assert_eq!(queued.status, 202);
    p.provision(&id).await.unwrap();
    let status = env
        .get(&format!("/integrations/aws/{id}/state-bucket"))
        .await;
    assert_eq!(status.body["status"], "ready", "{:?}", status.body);
    // Each of the 3 failed runs made one CreateBucket call, every attempt of it faulted.
    assert_eq!(
        moto.injected(),
        3 * USER_CALL_ATTEMPTS,
        "CreateBucket attempts faulted"
    );
    assert_consistent(&env).await;
}
