//! State bucket provisioning (issue 4): event-driven, idempotent, hardened, and proven by
//! Terraform writing state into the bucket.

mod common;

use aws_sdk_s3::types::{
    BucketVersioningStatus, ExpirationStatus, ObjectOwnership, ServerSideEncryption,
};
use common::iam::*;
use common::*;
use integrations_core::app::provisioning::Outcome;
use integrations_core::domain::BucketStatus;
use serde_json::{json, Value};

fn s3(env: &TestEnv) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(integrations_core::aws::s3_config(&env.sdk).build())
}

fn bucket_form(name: &str, account: &str, region: Option<&str>) -> Value {
    let mut f = form(name);
    f["aws_account_id"] = json!(account);
    f["create_state_bucket"] = json!(true);
    if let Some(r) = region {
        f["aws_default_region"] = json!(r);
    }
    f
}

/// Creates an integration asking for a bucket and waits for the provisioning to settle.
async fn provisioned(
    env: &TestEnv,
    name: &str,
    account: &str,
    region: Option<&str>,
) -> (String, Value) {
    let r = env
        .post("/integrations/aws", &bucket_form(name, account, region))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["state_bucket"]["status"], "pending");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let b = env.settled_bucket(&id).await;
    (id, b)
}

/// Reads every hardening setting back with S3 Get* calls.
async fn assert_hardened(env: &TestEnv, bucket: &str, integration_id: &str, region: &str) {
    let s3 = s3(env);
    let loc = s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let loc = loc
        .location_constraint
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        (region == "us-east-1" && loc.is_empty()) || loc == region || loc == "us-east-1",
        "location {loc:?} for {region}"
    );
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => assert_eq!(v.status, Some(BucketVersioningStatus::Enabled)),
        // moto names the XML root GetBucketVersioningResponse, which the SDK refuses to
        // parse: read the status from the raw response instead.
        Err(aws_sdk_s3::error::SdkError::ServiceError(e)) => {
            let body = String::from_utf8_lossy(e.raw().body().bytes().unwrap()).into_owned();
            assert!(body.contains("<Status>Enabled</Status>"), "{body}");
        }
        Err(e) => panic!("GetBucketVersioning: {e:?}"),
    }
    let e = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &e.server_side_encryption_configuration.unwrap().rules[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default
            .as_ref()
            .unwrap()
            .sse_algorithm,
        ServerSideEncryption::Aes256
    );
    let p = s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .public_access_block_configuration
        .unwrap();
    assert_eq!(
        (
            p.block_public_acls,
            p.ignore_public_acls,
            p.block_public_policy,
            p.restrict_public_buckets
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let o = s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        o.ownership_controls.unwrap().rules[0].object_ownership,
        ObjectOwnership::BucketOwnerEnforced
    );
    let pol = s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
    let pol: Value = serde_json::from_str(&pol.policy.unwrap()).unwrap();
    let st = &pol["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert_eq!(st["Condition"]["Bool"]["aws:SecureTransport"], "false");
    let l = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &l.rules.unwrap()[0];
    assert_eq!(rule.status, ExpirationStatus::Enabled);
    assert_eq!(
        rule.noncurrent_version_expiration
            .as_ref()
            .unwrap()
            .noncurrent_days,
        Some(90)
    );
    assert!(rule.abort_incomplete_multipart_upload.is_some());
    let t = s3.get_bucket_tagging().bucket(bucket).send().await.unwrap();
    assert!(t
        .tag_set
        .iter()
        .any(|t| t.key == "infrakitchen:integration-id" && t.value == integration_id));
}

#[tokio::test]
async fn create_with_the_flag_ends_ready_and_hardened_and_reruns_are_no_ops() {
    let env = TestEnv::new().await;
    env.start_stream_poller();
    let account = random_account();
    let (id, b) = provisioned(&env, "tf-state", &account, None).await;
    let bucket = format!("infrakitchen-{account}-bucket");
    assert_eq!(b["status"], "ready", "{b}");
    assert_eq!(b["arn"], format!("arn:aws:s3:::{bucket}").as_str());
    assert_eq!(b["attempts"], 1);
    let backend = b["backend"].as_str().unwrap();
    for line in [
        "backend \"s3\"",
        &format!("bucket               = \"{bucket}\""),
        "region               = \"us-east-1\"",
        "encrypt              = true",
        "use_lockfile         = true",
        "key                  = \"tf-state/terraform.tfstate\"",
    ] {
        assert!(backend.contains(line), "{line} missing in {backend}");
    }
    assert_hardened(&env, &bucket, &id, "us-east-1").await;

    // A rerun is a no-op, and so is a POST while ready.
    let p = &env.functions.provisioner;
    assert!(matches!(
        p.provision(&id).await.unwrap(),
        Outcome::Skipped(_)
    ));
    let again = env
        .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
        .await;
    assert_eq!(again.status, 200, "a ready bucket has nothing queued");
    assert_eq!(again.body["status"], "ready");
    let stored = env.functions.integrations.get(&admin(), &id).await.unwrap();
    assert_eq!(stored.state_bucket.unwrap().attempts, 1);

    // Deleting the integration never deletes its bucket.
    let d = env
        .send("DELETE", &format!("/integrations/aws/{id}"), None, &[])
        .await;
    assert_eq!(d.status, 204);
    s3(&env)
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket kept");
}

#[tokio::test]
async fn duplicate_and_concurrent_stream_records_provision_once() {
    let env = TestEnv::new().await; // no poller: the test delivers the records itself
    let account = random_account();
    let r = env
        .post("/integrations/aws", &bucket_form("dupes", &account, None))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/provision-bucket.stream.json"),
    )
    .unwrap()
    .replace(local_harness::EVENT_SAMPLE_ID, &id);
    let event: Value = serde_json::from_str(&template).unwrap();
    let mut record = event["Records"][0].clone();
    let mut records = Vec::new();
    for n in 0..5 {
        record["dynamodb"]["SequenceNumber"] = json!(format!("{}", 1000 + n));
        records.push(record.clone());
    }
    // Five copies in one batch and two batches at once.
    let batch: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(json!({ "Records": records })).unwrap();
    let p = &env.functions.provisioner;
    let (a, b) = tokio::join!(
        integrations_core::events::stream::handle(p, &batch),
        integrations_core::events::stream::handle(p, &batch)
    );
    assert!(a.batch_item_failures.is_empty() && b.batch_item_failures.is_empty());
    let stored = env.functions.integrations.get(&admin(), &id).await.unwrap();
    let sb = stored.state_bucket.unwrap();
    assert_eq!(sb.status, BucketStatus::Ready);
    assert_eq!(sb.attempts, 1, "exactly one provisioning ran");
}

/// The stream record of `id` as Lambda would deliver it now: its new image is the
/// stored item, read raw.
async fn stream_record_of(env: &TestEnv, id: &str, seq: &str) -> Value {
    let item = aws_sdk_dynamodb::Client::new(&env.sdk)
        .get_item()
        .table_name(&env.stack.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("I#{id}")),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let image = serde_json::to_value(serde_dynamo::Item::from(item)).unwrap();
    json!({
        "eventID": seq,
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": format!("I#{id}")}},
            "NewImage": image,
            "SequenceNumber": seq,
            "SizeBytes": 1000,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    })
}

/// A stream record starts from its image (no read of the record), but only while the
/// record is still exactly as the image shows it: an image older than a change (here a
/// rename) is refused by the claim's condition, and the run uses the record as stored.
#[tokio::test]
async fn a_stream_image_is_used_only_while_the_record_is_unchanged() {
    let env = TestEnv::new().await; // no poller: the test delivers the records itself
    let p = &env.functions.provisioner;
    let handle = |record: Value| async move {
        let out =
            integrations_core::events::provision_bucket::handle(p, json!({ "Records": [record] }))
                .await
                .unwrap();
        assert_eq!(out["batchItemFailures"], json!([]));
    };

    // Current: provisioned from the image, in one attempt.
    let account = random_account();
    let r = env
        .post("/integrations/aws", &bucket_form("fresh", &account, None))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    handle(stream_record_of(&env, &id, "1").await).await;
    let b = env.settled_bucket(&id).await;
    assert_eq!(
        (&b["status"], &b["attempts"]),
        (&json!("ready"), &json!(1)),
        "{b}"
    );

    // Stale: renamed after the image was taken.
    let account = random_account();
    let r = env
        .post("/integrations/aws", &bucket_form("before", &account, None))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let old = stream_record_of(&env, &id, "2").await;
    let renamed = env
        .send(
            "PATCH",
            &format!("/integrations/aws/{id}"),
            Some(&json!({"name": "after"})),
            &[],
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    handle(old).await;
    let b = env.settled_bucket(&id).await;
    assert_eq!(
        (&b["status"], &b["attempts"]),
        (&json!("ready"), &json!(1)),
        "{b}"
    );
    let backend = b["backend"].as_str().unwrap();
    assert!(backend.contains("\"after/terraform.tfstate\""), "{backend}");
    let tags = s3(&env)
        .get_bucket_tagging()
        .bucket(format!("infrakitchen-{account}-bucket"))
        .send()
        .await
        .unwrap();
    assert!(tags
        .tag_set
        .iter()
        .any(|t| t.key == "infrakitchen:integration-name" && t.value == "after"));
}

#[tokio::test]
async fn a_pre_existing_own_bucket_is_adopted_in_us_east_1_and_elsewhere() {
    let env = TestEnv::new().await;
    env.start_stream_poller();
    for region in ["us-east-1", "eu-west-1"] {
        let account = random_account();
        let bucket = format!("infrakitchen-{account}-bucket");
        let mut create = s3(&env).create_bucket().bucket(&bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        create.send().await.unwrap();
        let r = env
            .post(
                "/integrations/aws",
                &bucket_form(&format!("adopt-{region}"), &account, Some(region)),
            )
            .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        let b = env.settled_bucket(&id).await;
        assert_eq!(b["status"], "ready", "{region}: {b}");
        assert_eq!(b["region"], region);
        assert!(b["backend"]
            .as_str()
            .unwrap()
            .contains(&format!("region               = \"{region}\"")));
        assert_hardened(&env, &bucket, &id, region).await;
    }
}

#[tokio::test]
async fn a_new_bucket_outside_us_east_1_gets_its_location_constraint() {
    let env = TestEnv::new().await;
    env.start_stream_poller();
    let account = random_account();
    let r = env
        .post(
            "/integrations/aws",
            &bucket_form("frankfurt", &account, Some("eu-central-1")),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let b = env.settled_bucket(&id).await;
    assert_eq!(b["status"], "ready", "{b}");
    let bucket = format!("infrakitchen-{account}-bucket");
    let loc = s3(&env)
        .get_bucket_location()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .location_constraint
        .unwrap();
    assert_eq!(loc.as_str(), "eu-central-1");
    assert_hardened(&env, &bucket, &id, "eu-central-1").await;
}

#[tokio::test]
async fn partial_batch_response_lists_exactly_the_failed_records() {
    capture_logs();
    let env = TestEnv::new().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = env
            .post(
                "/integrations/aws",
                &bucket_form(&format!("batch-{n}"), &random_account(), None),
            )
            .await;
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let ddb = aws_sdk_dynamodb::Client::new(&env.sdk);
    let set = |id: String, expr: &'static str, value: aws_sdk_dynamodb::types::AttributeValue| {
        let ddb = ddb.clone();
        let table = env.stack.table.clone();
        async move {
            ddb.update_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("I#{id}")),
                )
                .update_expression(expr)
                .expression_attribute_values(":v", value)
                .send()
                .await
                .unwrap();
        }
    };
    // The middle record no longer reads (a hand edit broke it): *our* failure, which a
    // retry of that record alone may get past once it is repaired.
    set(
        ids[1].clone(),
        "SET aws_default_region = :v",
        aws_sdk_dynamodb::types::AttributeValue::S("not a region".into()),
    )
    .await;
    // The last one's ciphertext is damaged: KMS refuses it, which no retry fixes.
    set(
        ids[2].clone(),
        "SET secret_ciphertext = :v",
        aws_sdk_dynamodb::types::AttributeValue::B(vec![1u8, 2, 3].into()),
    )
    .await;
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/provision-bucket.stream.json"),
    )
    .unwrap();
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let e: Value =
                serde_json::from_str(&template.replace(local_harness::EVENT_SAMPLE_ID, id))
                    .unwrap();
            let mut r = e["Records"][0].clone();
            r["dynamodb"]["SequenceNumber"] = json!(format!("seq-{n}"));
            r
        })
        .collect();
    let out = integrations_core::events::provision_bucket::handle(
        &env.functions.provisioner,
        json!({ "Records": records }),
    )
    .await
    .unwrap();
    assert_eq!(
        out["batchItemFailures"],
        json!([{"itemIdentifier": "seq-1"}])
    );
    let svc = &env.functions.integrations;
    assert_eq!(
        svc.get(&admin(), &ids[0])
            .await
            .unwrap()
            .state_bucket
            .unwrap()
            .status,
        BucketStatus::Ready
    );
    // The unreadable record was never claimed: still pending for the retry.
    let raw = ddb
        .get_item()
        .table_name(&env.stack.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("I#{}", ids[1])),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let status = raw["state_bucket"].as_m().unwrap()["status"]
        .as_s()
        .unwrap()
        .clone();
    assert_eq!(status, "pending");
    // The damaged secret failed its bucket for good, saying what fixes it.
    let failed = svc
        .get(&admin(), &ids[2])
        .await
        .unwrap()
        .state_bucket
        .unwrap();
    assert_eq!(failed.status, BucketStatus::Failed);
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("rotate the keys"),
        "{failed:?}"
    );
    assert!(logs_len() > 0, "the logs were captured");
    assert!(!logs_contain(SECRET));
}

#[tokio::test]
async fn state_bucket_routes_request_and_report() {
    let env = TestEnv::new().await;
    env.start_stream_poller();
    let mut f = form("later");
    f["aws_account_id"] = json!(random_account());
    let r = env.post("/integrations/aws", &f).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let none = env
        .get(&format!("/integrations/aws/{id}/state-bucket"))
        .await;
    assert_eq!(none.status, 404);
    assert_eq!(
        none.header("content-type"),
        Some("application/problem+json")
    );
    let req = env
        .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
        .await;
    assert_eq!(req.status, 202, "{}", req.body);
    assert_eq!(req.body["status"], "pending");
    assert_eq!(req.body["integration_id"], id.as_str());
    assert_eq!(env.settled_bucket(&id).await["status"], "ready");
    let view = env.get(&format!("/integrations/aws/{id}")).await;
    assert_eq!(view.body["create_state_bucket"], true);
    let missing = env
        .get("/integrations/aws/01J0000000000000000000000Z/state-bucket")
        .await;
    assert_eq!(missing.status, 404);
}

/// With IAM enforced: a name held by another account, and a role without s3:CreateBucket.
#[tokio::test]
async fn failures_in_the_users_account_are_recorded_with_actionable_reasons() {
    capture_logs();
    let w = world().await;
    let user_sdk = sdk_for(&auth_url(), "AKIAUNUSED0000000000", "unused").await;
    let env = TestEnv::with_user_sdk(user_sdk).await;
    env.start_stream_poller();

    // 1. taken: account B owns infrakitchen-<C>-bucket.
    let taken_bucket = format!("infrakitchen-{ACCOUNT_C}-bucket");
    let b_s3 = aws_sdk_s3::Client::from_conf(
        integrations_core::aws::s3_config(&sdk(w.admin(ACCOUNT_B)).await).build(),
    );
    b_s3.create_bucket()
        .bucket(&taken_bucket)
        .send()
        .await
        .unwrap();
    let (_, c_user) = w
        .user(
            ACCOUNT_C,
            "provisioner",
            Some(allow(&["s3:*", "sts:AssumeRole"], "*")),
        )
        .await;
    let mut f = bucket_form("taken", ACCOUNT_C, None);
    f["aws_access_key_id"] = json!(c_user.id);
    f["aws_secret_access_key"] = json!(c_user.secret);
    let r = env.post("/integrations/aws", &f).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let b = env.settled_bucket(&id).await;
    assert_eq!(b["status"], "failed", "{b}");
    let reason = b["reason"].as_str().unwrap();
    assert!(reason.contains("another AWS account"), "{reason}");
    assert!(!reason.contains(&c_user.secret));
    b_s3.delete_bucket()
        .bucket(&taken_bucket)
        .send()
        .await
        .unwrap();

    // A retry after the name was freed succeeds.
    let again = env
        .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
        .await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["status"], "pending");
    let b = env.settled_bucket(&id).await;
    assert_eq!(b["status"], "ready", "{b}");
    assert_eq!(b["attempts"], 2);
    env.send("DELETE", &format!("/integrations/aws/{id}"), None, &[])
        .await;

    // 2. a role that may not create buckets.
    let (user_arn, assumer) = w
        .user(
            ACCOUNT_A,
            "prov-assumer",
            Some(allow(&["sts:AssumeRole"], "*")),
        )
        .await;
    let role = w
        .role(
            ACCOUNT_A,
            "NoCreateBucket",
            trust(&user_arn, Some("ext-9")),
            allow(&["s3:ListBucket", "s3:HeadBucket"], "*"),
        )
        .await;
    let account = ACCOUNT_A;
    let mut f = bucket_form("no-create", account, None);
    f["aws_access_key_id"] = json!(assumer.id);
    f["aws_secret_access_key"] = json!(assumer.secret);
    f["aws_assumed_role_name"] = json!(role);
    f["aws_external_id"] = json!("ext-9");
    let r = env.post("/integrations/aws", &f).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let b = env.settled_bucket(&id).await;
    assert_eq!(b["status"], "failed", "{b}");
    let reason = b["reason"].as_str().unwrap();
    assert!(
        reason.contains("CreateBucket") && reason.contains("s3:CreateBucket"),
        "{reason}"
    );
    assert!(reason.contains(&format!("arn:aws:s3:::infrakitchen-{account}-bucket")));
    assert_eq!(b["attempts"], 1);
    assert!(!logs_contain(&assumer.secret));
}

/// Runs terraform in `dir` with the integration's keys.
async fn terraform(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let keys = vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
    ];
    common::terraform::run(dir, args, keys).await
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A Terraform working directory whose resource runs `sleep_secs` when `input` changes.
fn workdir(backend: &str, input: &str, sleep_secs: u32) -> common::terraform::Workdir {
    let resources = format!(
        r#"resource "terraform_data" "demo" {{
  input            = "{input}"
  triggers_replace = "{input}" # a new input re-creates it, so the provisioner runs
  provisioner "local-exec" {{
    command = "sleep {sleep_secs}"
  }}
}}
"#
    );
    common::terraform::Workdir::new(backend, &resources, &moto_url())
}

#[tokio::test]
async fn terraform_writes_versioned_state_into_the_bucket_and_the_lock_holds() {
    let env = TestEnv::new().await;
    env.start_stream_poller();
    let account = random_account();
    let (_, b) = provisioned(&env, "terraform-e2e", &account, None).await;
    assert_eq!(b["status"], "ready", "{b}");
    let backend = b["backend"].as_str().unwrap().to_owned();
    let bucket = format!("infrakitchen-{account}-bucket");
    let s3 = s3(&env);

    // moto ignores policy conditions, so the TLS-only deny would refuse every object
    // call even over https: assert it, then remove it before Terraform writes.
    let pol = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    assert!(pol.policy.unwrap().contains("aws:SecureTransport"));
    s3.delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();

    let first = workdir(&backend, "v1", 0);
    let init = [
        "init",
        "-input=false",
        "-no-color",
        "-backend-config=local.s3.tfbackend",
    ];
    let o = terraform(first.path(), &init).await;
    assert!(o.status.success(), "init: {}", text(&o));
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color"];
    let o = terraform(first.path(), &apply).await;
    assert!(o.status.success(), "apply: {}", text(&o));

    let key = "terraform-e2e/terraform.tfstate";
    let state = s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let state = String::from_utf8(state.body.collect().await.unwrap().to_vec()).unwrap();
    assert!(state.contains("terraform_data"), "{state}");

    // A change writes a second version of the state.
    let second = workdir(&backend, "v2", 6);
    assert!(terraform(second.path(), &init).await.status.success());
    let versions = |s3: aws_sdk_s3::Client, bucket: String| async move {
        s3.list_object_versions()
            .bucket(&bucket)
            .prefix(key)
            .send()
            .await
            .unwrap()
            .versions
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.key.as_deref() == Some(key))
            .count()
    };
    // While the slow apply holds the lock, a concurrent apply is refused.
    let slow = {
        let dir = second.path().to_owned();
        tokio::spawn(async move {
            terraform(
                &dir,
                &["apply", "-auto-approve", "-input=false", "-no-color"],
            )
            .await
        })
    };
    let lock = format!("{key}.tflock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s3
        .head_object()
        .bucket(&bucket)
        .key(&lock)
        .send()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let o = terraform(
        first.path(),
        &[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-lock-timeout=0s",
        ],
    )
    .await;
    assert!(!o.status.success(), "concurrent apply ran: {}", text(&o));
    assert!(
        text(&o).contains("Error acquiring the state lock"),
        "{}",
        text(&o)
    );
    let o = slow.await.unwrap();
    assert!(o.status.success(), "slow apply: {}", text(&o));
    assert!(
        versions(s3.clone(), bucket.clone()).await >= 2,
        "state is versioned"
    );
    assert!(
        s3.head_object()
            .bucket(&bucket)
            .key(&lock)
            .send()
            .await
            .is_err(),
        "the lock is released"
    );
}

/// A provisioner over the env's table whose re-drive thresholds are one second, so a
/// test can make a bucket "stuck" by waiting instead of by editing the clock.
fn impatient_provisioner(env: &TestEnv) -> integrations_core::app::provisioning::Provisioner {
    let settings = integrations_core::app::provisioning::Settings {
        pending_after: std::time::Duration::from_secs(1),
        stale_after: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let config = integrations_core::wiring::Config {
        table: env.stack.table.clone(),
        kms_key_id: env.stack.kms_key_id.clone(),
        hmac_key_id: Some(env.stack.hmac_key_id.clone()),
        page_token_ttl: integrations_core::wiring::page_token_ttl().unwrap(),
        audit_retention: integrations_core::wiring::audit_retention().unwrap(),
        access: local_harness::local_access(),
        provisioning: settings,
        platform_role_arn: None,
    };
    integrations_core::wiring::Services::new(&env.sdk, &env.sdk, &config)
        .unwrap()
        .provisioner
}

/// Issue 8 item 3: a bucket whose stream event was lost stays `pending`; a retry
/// request re-drives it only once it is overdue, the sweeper provisions it, and a
/// request on a `ready` bucket queues nothing (200, not 202).
#[tokio::test]
async fn a_pending_bucket_whose_event_was_lost_is_redriven_and_swept() {
    use integrations_core::app::provisioning::SweepReport;
    // No stream poller: every stream event of this table is "lost".
    let env = TestEnv::new().await;
    let p = impatient_provisioner(&env);
    let store = env.store();
    let created = env
        .post(
            "/integrations/aws",
            &bucket_form("lost-event", &random_account(), None),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let queued_at = created.body["state_bucket"]["status_changed_at"].clone();

    // Fresh: the route's own threshold (300 s) has not passed, nothing is re-driven.
    let fresh = env
        .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
        .await;
    assert_eq!(fresh.status, 202, "{}", fresh.body);
    assert_eq!(fresh.body["status"], "pending");
    assert_eq!(fresh.body["status_changed_at"], queued_at);
    assert_eq!(
        p.sweep().await.unwrap(),
        SweepReport::default(),
        "a fresh pending bucket is not due"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Overdue: a retry request writes it pending again (a new stream record).
    let again = p.request(&admin(), &id).await.unwrap();
    assert_eq!(again.status, BucketStatus::Pending);
    assert_ne!(
        json!(again.status_changed_at),
        queued_at,
        "the re-drive is a new write"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = integrations_core::domain::Timestamp::ago(std::time::Duration::ZERO);
    assert_eq!(
        store
            .buckets_due(BucketStatus::Pending, &before, 10)
            .await
            .unwrap(),
        vec![id.clone()],
        "the sweep index lists the pending bucket"
    );
    let swept = p.sweep().await.unwrap();
    assert_eq!(
        (swept.due, swept.ready, swept.errors),
        (1, 1, 0),
        "{swept:?}"
    );
    let b = env
        .get(&format!("/integrations/aws/{id}/state-bucket"))
        .await;
    assert_eq!(b.body["status"], "ready", "{}", b.body);
    assert_eq!(b.body["attempts"], 1);
    assert!(
        store
            .buckets_due(BucketStatus::Pending, &before, 10)
            .await
            .unwrap()
            .is_empty(),
        "a ready bucket leaves the sweep index"
    );
    assert_eq!(p.sweep().await.unwrap().due, 0);

    // Ready: nothing is queued, and the answer says so.
    let ready = env
        .post(&format!("/integrations/aws/{id}/state-bucket"), &json!({}))
        .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["attempts"], 1);
}

/// The sweeper takes over a run that crashed in `provisioning`, leaves a live one alone,
/// and never touches ready or failed buckets.
#[tokio::test]
async fn the_sweeper_takes_over_crashed_runs_only() {
    use integrations_core::domain::{StateBucket, Timestamp};
    use integrations_core::ports::{BucketGuard, WriteOutcome};
    let env = TestEnv::new().await;
    let p = impatient_provisioner(&env);
    let store = env.store();
    let mut ids = Vec::new();
    for name in ["crashed", "live", "done"] {
        let r = env
            .post(
                "/integrations/aws",
                &bucket_form(name, &random_account(), None),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let claim = |id: &str, status: BucketStatus| {
        let store = store.clone();
        let id = id.to_owned();
        async move {
            let current = store.get(&id).await.unwrap().unwrap();
            let b = StateBucket {
                status,
                status_changed_at: Some(Timestamp::now()),
                attempts: 1,
                ..current.state_bucket.unwrap()
            };
            let guard = BucketGuard {
                from: &[BucketStatus::Pending],
                ..Default::default()
            };
            assert_eq!(
                store.set_bucket(&id, &b, guard, None).await.unwrap(),
                WriteOutcome::Written
            );
        }
    };
    claim(&ids[0], BucketStatus::Provisioning).await;
    claim(&ids[2], BucketStatus::Failed).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // "live" is claimed only now: its run is not stale.
    claim(&ids[1], BucketStatus::Provisioning).await;

    let swept = p.sweep().await.unwrap();
    assert_eq!(
        (swept.due, swept.ready, swept.errors),
        (1, 1, 0),
        "{swept:?}"
    );
    let status = |id: String| {
        let env = &env;
        async move {
            env.get(&format!("/integrations/aws/{id}/state-bucket"))
                .await
                .body
        }
    };
    let crashed = status(ids[0].clone()).await;
    assert_eq!(crashed["status"], "ready", "{crashed}");
    assert_eq!(crashed["attempts"], 2, "the takeover is a second attempt");
    assert_eq!(status(ids[1].clone()).await["status"], "provisioning");
    assert_eq!(status(ids[2].clone()).await["status"], "failed");
}

/// A `provisioning` bucket without a recorded time (an old record, or an unreadable time)
/// counts as long stuck: the sweeper takes it over instead of skipping it for ever.
#[tokio::test]
async fn a_crashed_run_without_a_recorded_time_is_taken_over() {
    use integrations_core::domain::StateBucket;
    use integrations_core::ports::{BucketGuard, WriteOutcome};
    let env = TestEnv::new().await;
    let p = impatient_provisioner(&env);
    let store = env.store();
    let r = env
        .post(
            "/integrations/aws",
            &bucket_form("timeless", &random_account(), None),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let current = store.get(&id).await.unwrap().unwrap();
    let crashed = StateBucket {
        status: BucketStatus::Provisioning,
        status_changed_at: None,
        attempts: 1,
        ..current.state_bucket.unwrap()
    };
    let guard = BucketGuard {
        from: &[BucketStatus::Pending],
        ..Default::default()
    };
    assert_eq!(
        store.set_bucket(&id, &crashed, guard, None).await.unwrap(),
        WriteOutcome::Written
    );
    let swept = p.sweep().await.unwrap();
    assert_eq!((swept.due, swept.ready), (1, 1), "{swept:?}");
    let b = env
        .get(&format!("/integrations/aws/{id}/state-bucket"))
        .await
        .body;
    assert_eq!(b["status"], "ready", "{b}");
    assert_eq!(b["attempts"], 2, "{b}");
}

/// The tests act on records directly, as an operator who sees everything.
fn admin() -> integrations_core::domain::Caller {
    integrations_core::domain::Caller::admin("test-admin", vec![])
}
