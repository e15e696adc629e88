//! Exact dependency faults (throttling, KMS outage) that moto cannot produce on demand:
//! the caller gets a retryable 503 problem and nothing is written.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
use aws_sdk_kms::operation::encrypt::{EncryptError, EncryptOutput};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::error::KmsInternalException;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use integrations_core::app::integrations::Integrations;
use integrations_core::aws::{dynamo::DynamoStore, kms::KmsSealer};
use serde_json::{json, Value};
use std::sync::Arc;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn create_event() -> lambda_http::Request {
    let event = json!({
        "version": "2.0", "routeKey": "POST /integrations/aws",
        "rawPath": "/integrations/aws", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": "POST", "path": "/integrations/aws"},
            "authorizer": {"jwt": {"claims": {"sub": "tester"}, "scopes": null}},
            "requestId": "r-1", "stage": "$default", "timeEpoch": 0},
        "body": json!({
            "name": "aws-production", "aws_account_id": "123456789012",
            "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": SECRET,
        }).to_string(),
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn encrypt_ok() -> Rule {
    mock!(aws_sdk_kms::Client::encrypt)
        .sequence()
        .output(|| {
            EncryptOutput::builder()
                .ciphertext_blob(Blob::new(vec![7u8; 32]))
                .build()
        })
        .repeatedly()
        .build()
}

fn service(kms_rules: &[&Rule], ddb_rules: &[&Rule]) -> Integrations {
    let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms_rules);
    let ddb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, ddb_rules);
    Integrations::new(
        Arc::new(DynamoStore::new(ddb, "table")),
        Arc::new(KmsSealer::new(kms, "key")),
    )
}

async fn call(svc: &Integrations) -> (u16, Option<String>, String, Value) {
    let resp = integrations_core::http::create::handle(svc, create_event()).await;
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    (status, retry, ct, body)
}

#[tokio::test]
async fn throttled_table_gives_a_retryable_503() {
    let enc = encrypt_ok();
    let tx = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .error(|| {
            TransactWriteItemsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    // As parsed from a real response, which carries the code.
                    .meta(
                        aws_smithy_types::error::ErrorMetadata::builder()
                            .code("ProvisionedThroughputExceededException")
                            .build(),
                    )
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let (status, retry, ct, body) = call(&service(&[&enc], &[&tx])).await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["type"], "/problems/dependency-unavailable");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("ProvisionedThroughputExceededException"));
    assert!(!body.to_string().contains(SECRET));
    // The record and its name guard are one transaction: a refused one wrote nothing.
    assert!(tx.num_calls() >= 1);
}

#[tokio::test]
async fn a_kms_outage_gives_503_before_anything_is_written() {
    let enc = mock!(aws_sdk_kms::Client::encrypt)
        .sequence()
        .error(|| {
            EncryptError::KmsInternalException(
                KmsInternalException::builder().message("internal").build(),
            )
        })
        .repeatedly()
        .build();
    let tx = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .error(|| {
            TransactWriteItemsError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder().build(),
            )
        })
        .repeatedly()
        .build();
    let (status, retry, _, body) = call(&service(&[&enc], &[&tx])).await;
    assert_eq!(status, 503);
    assert!(retry.is_some());
    assert!(body["detail"].as_str().unwrap().contains("KMS Encrypt"));
    assert_eq!(
        tx.num_calls(),
        0,
        "no write is attempted without ciphertext"
    );
}
