//! The scheduled health check (issue 22) against the local stack: a deleted IAM key turns
//! an integration `failing` at the credentials step and a new key makes it `ok` again,
//! both in the audit trail; a state bucket whose versioning and TLS policy were changed
//! by hand is repaired by the next run; a deleted bucket is reported and never
//! re-created; a run out of budget resumes where it stopped. Runs go through the
//! function's own entry point with the scheduled event.

mod common;

use common::iam::*;
use common::*;
use integrations_core::app::health::{HealthRunReport, HealthSettings};
use local_harness::invoke::Invoker;
use local_harness::Function;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The settings of a test's runs: every integration due at once (no minimum interval).
fn settings(budget: Duration, max_checks: Option<usize>) -> HealthSettings {
    HealthSettings {
        budget,
        min_interval: Duration::ZERO,
        max_checks,
        ..HealthSettings::default()
    }
}

/// One scheduled run through the function's entry point (as EventBridge invokes it).
async fn run(env: &TestEnv, settings: HealthSettings) -> HealthRunReport {
    let mut functions = (*env.functions).clone();
    functions.health = functions.health.with_settings(settings);
    let invoker = Invoker::InProcess(Arc::new(functions));
    let answer = invoker
        .invoke(
            Function::HealthCheck,
            local_harness::schedule::scheduled_event(),
        )
        .await
        .expect("the health check runs");
    serde_json::from_value(answer.clone()).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

async fn history_actions(env: &TestEnv, id: &str) -> Vec<(String, String)> {
    let r = env.get(&format!("/integrations/aws/{id}/history")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// S3 as the account's admin, in the moto that enforces IAM.
async fn admin_s3(w: &World, account: &str) -> aws_sdk_s3::Client {
    let sdk = sdk(w.admin(account)).await;
    aws_sdk_s3::Client::from_conf(integrations_core::aws::s3_config(&sdk).build())
}

/// Versioning as S3 reports it (moto's answer is read raw where the SDK cannot parse it).
async fn versioning_of(s3: &aws_sdk_s3::Client, bucket: &str) -> String {
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => v.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        Err(aws_sdk_s3::error::SdkError::ServiceError(e)) => {
            let body = String::from_utf8_lossy(e.raw().body().bytes().unwrap()).into_owned();
            ["Enabled", "Suspended"]
                .into_iter()
                .find(|s| body.contains(&format!("<Status>{s}</Status>")))
                .unwrap_or("")
                .to_owned()
        }
        Err(e) => panic!("GetBucketVersioning: {e:?}"),
    }
}

#[tokio::test]
async fn a_deleted_key_turns_failing_at_the_credentials_step_and_a_new_one_recovers() {
    let w = world().await;
    let env = TestEnv::with_user_sdk(sdk(w.admin(ACCOUNT_A)).await).await;
    let (arn, keys) = w.user(ACCOUNT_A, "health", None).await;
    let user = arn.rsplit('/').next().unwrap().to_owned();
    let mut f = form("health-keys");
    f["aws_account_id"] = json!(ACCOUNT_A);
    f["aws_access_key_id"] = json!(keys.id);
    f["aws_secret_access_key"] = json!(keys.secret);
    let created = env.post("/integrations/aws", &f).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();

    let first = run(&env, settings(Duration::from_secs(60), None)).await;
    assert_eq!(
        (first.checked, first.ok, first.failing),
        (1, 1, 0),
        "{first:?}"
    );
    let ok = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(ok.body["health"]["status"], "ok", "{}", ok.body);
    assert_eq!(ok.body["last_test"]["ok"], true);

    // The user's key is deleted in the account.
    w.iam(ACCOUNT_A)
        .await
        .delete_access_key()
        .user_name(&user)
        .access_key_id(&keys.id)
        .send()
        .await
        .expect("delete the key");
    let second = run(&env, settings(Duration::from_secs(60), None)).await;
    assert_eq!(
        (second.failing, second.became_failing),
        (1, 1),
        "{second:?}"
    );
    let bad = env.get(&format!("/integrations/aws/{id}")).await.body;
    assert_eq!(bad["health"]["status"], "failing", "{bad}");
    assert_eq!(bad["health"]["step"], "credentials", "{bad}");
    assert!(
        bad["health"]["hint"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{bad}"
    );
    let since = bad["health"]["since"].clone();
    assert_eq!(bad["last_test"]["ok"], false);

    // Still failing on the next run: `since` stays, no second transition is recorded.
    let third = run(&env, settings(Duration::from_secs(60), None)).await;
    assert_eq!((third.failing, third.became_failing), (1, 0), "{third:?}");
    let still = env.get(&format!("/integrations/aws/{id}")).await.body;
    assert_eq!(still["health"]["since"], since);

    // A new key, rotated in through the API: the next run finds it ok again.
    let key = w
        .iam(ACCOUNT_A)
        .await
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .expect("a new key")
        .access_key
        .unwrap();
    let rotated = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key})),
            &[],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let fourth = run(&env, settings(Duration::from_secs(60), None)).await;
    assert_eq!((fourth.ok, fourth.recovered), (1, 1), "{fourth:?}");
    let back = env.get(&format!("/integrations/aws/{id}")).await.body;
    assert_eq!(back["health"]["status"], "ok", "{back}");
    assert!(back["health"].get("step").is_none(), "{back}");

    let actions = history_actions(&env, &id).await;
    let failing: Vec<_> = actions
        .iter()
        .filter(|(a, _)| a == "health_failing")
        .collect();
    let recovered: Vec<_> = actions
        .iter()
        .filter(|(a, _)| a == "health_recovered")
        .collect();
    assert_eq!((failing.len(), recovered.len()), (1, 1), "{actions:?}");
    assert!(failing[0].1.contains("credentials"), "{actions:?}");
}

#[tokio::test]
async fn drifted_hardening_is_repaired_and_a_deleted_bucket_is_reported_not_recreated() {
    // Users' calls go to the moto that enforces IAM: one user per account (B and C, one
    // state bucket each), allowed everything in its own account.
    let w = world().await;
    let env = TestEnv::with_user_sdk(sdk(w.admin(ACCOUNT_A)).await).await;
    env.start_stream_poller();
    let mut ids = Vec::new();
    for (name, account) in [("drift-kept", ACCOUNT_B), ("drift-deleted", ACCOUNT_C)] {
        let (_, keys) = w.user(account, name, Some(allow(&["*"], "*"))).await;
        let mut f = form(name);
        f["aws_account_id"] = json!(account);
        f["aws_access_key_id"] = json!(keys.id);
        f["aws_secret_access_key"] = json!(keys.secret);
        f["create_state_bucket"] = json!(true);
        let r = env.post("/integrations/aws", &f).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let b = env.settled_bucket(&id).await;
        assert_eq!(b["status"], "ready", "{b}");
        ids.push((id, b["name"].as_str().unwrap().to_owned()));
    }
    let (kept, kept_bucket) = &ids[0];
    let (deleted, deleted_bucket) = &ids[1];
    let s3 = admin_s3(w, ACCOUNT_B).await;
    let s3_c = admin_s3(w, ACCOUNT_C).await;

    // By hand: versioning suspended and the TLS-only policy removed on one bucket; the
    // other bucket deleted outright.
    s3.put_bucket_versioning()
        .bucket(kept_bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect("suspend versioning");
    s3.delete_bucket_policy()
        .bucket(kept_bucket)
        .send()
        .await
        .expect("delete the policy");
    assert_eq!(versioning_of(&s3, kept_bucket).await, "Suspended");
    s3_c.delete_bucket()
        .bucket(deleted_bucket)
        .send()
        .await
        .expect("delete the bucket");

    let report = run(&env, settings(Duration::from_secs(60), None)).await;
    assert_eq!(report.buckets_checked, 2, "{report:?}");
    assert_eq!(
        (report.buckets_repaired, report.buckets_lost),
        (1, 1),
        "{report:?}"
    );

    assert_eq!(versioning_of(&s3, kept_bucket).await, "Enabled");
    let policy = s3
        .get_bucket_policy()
        .bucket(kept_bucket)
        .send()
        .await
        .expect("the policy is back")
        .policy
        .unwrap_or_default();
    assert!(policy.contains("aws:SecureTransport"), "{policy}");
    let repaired = history_actions(&env, kept).await;
    let event = repaired
        .iter()
        .find(|(a, _)| a == "bucket_repaired")
        .unwrap_or_else(|| panic!("no repair in {repaired:?}"));
    assert!(
        event.1.contains("versioning") && event.1.contains("TLS-only"),
        "{event:?}"
    );
    let kept_view = env.get(&format!("/integrations/aws/{kept}")).await.body;
    assert_eq!(kept_view["health"]["status"], "ok", "{kept_view}");

    // The deleted bucket: reported, failed with why, and not re-created.
    let lost = env.get(&format!("/integrations/aws/{deleted}")).await.body;
    assert_eq!(lost["health"]["status"], "failing", "{lost}");
    assert_eq!(lost["health"]["step"], "state_bucket", "{lost}");
    assert_eq!(lost["state_bucket"]["status"], "failed", "{lost}");
    assert!(
        lost["state_bucket"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no longer exists"),
        "{lost}"
    );
    assert!(
        s3_c.head_bucket()
            .bucket(deleted_bucket)
            .send()
            .await
            .is_err(),
        "re-created"
    );
    let events = history_actions(&env, deleted).await;
    assert!(events.iter().any(|(a, _)| a == "bucket_lost"), "{events:?}");
    assert!(
        events.iter().any(|(a, _)| a == "health_failing"),
        "{events:?}"
    );

    // The next run repairs nothing more and recreates nothing.
    let again = run(&env, settings(Duration::from_secs(60), None)).await;
    assert_eq!(
        (again.buckets_repaired, again.buckets_lost),
        (0, 0),
        "{again:?}"
    );
    assert!(
        s3_c.head_bucket()
            .bucket(deleted_bucket)
            .send()
            .await
            .is_err(),
        "re-created"
    );
}

#[tokio::test]
async fn a_run_out_of_budget_resumes_where_it_stopped() {
    let env = TestEnv::new().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let r = env
            .post("/integrations/aws", &form(&format!("resume-{n}")))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let checked_at = |v: &Value| v["health"]["checked_at"].as_str().map(str::to_owned);
    // Checked within the hour: not due again; never checked: due.
    let hourly = |budget, max| HealthSettings {
        min_interval: Duration::from_secs(3600),
        ..settings(budget, max)
    };
    let views = || async {
        let mut out = Vec::new();
        for id in &ids {
            out.push(env.get(&format!("/integrations/aws/{id}")).await.body);
        }
        out
    };

    // No time at all: nothing is started, everything is still due.
    let none = run(&env, hourly(Duration::ZERO, None)).await;
    assert_eq!((none.checked, none.remaining), (0, 5), "{none:?}");

    // Room for two checks per run: each run takes the two least recently checked.
    let first = run(&env, hourly(Duration::from_secs(60), Some(2))).await;
    assert_eq!((first.checked, first.remaining), (2, 3), "{first:?}");
    let after_first: Vec<Option<String>> = views().await.iter().map(checked_at).collect();
    assert_eq!(after_first.iter().filter(|c| c.is_some()).count(), 2);

    let second = run(&env, hourly(Duration::from_secs(60), Some(2))).await;
    assert_eq!((second.checked, second.remaining), (2, 1), "{second:?}");
    let after_second: Vec<Option<String>> = views().await.iter().map(checked_at).collect();
    // The first run's two were not taken again: the never-checked came first.
    for (a, b) in after_first.iter().zip(&after_second) {
        if a.is_some() {
            assert_eq!(a, b, "checked twice before the rest: {after_second:?}");
        }
    }
    assert_eq!(after_second.iter().filter(|c| c.is_some()).count(), 4);

    let third = run(&env, hourly(Duration::from_secs(60), Some(2))).await;
    assert_eq!((third.checked, third.remaining), (1, 0), "{third:?}");
    let after_third: Vec<Option<String>> = views().await.iter().map(checked_at).collect();
    assert!(after_third.iter().all(Option::is_some), "{after_third:?}");
}
