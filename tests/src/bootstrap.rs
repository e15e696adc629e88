//! Creates what template.yaml creates in AWS (the table with its indexes and stream, the
//! KMS key) in the local AWS (DynamoDB Local for the table, moto for the key).
//! Idempotent, so the local stack can be restarted against the same local AWS.

use aws_config::SdkConfig;
use integrations_core::aws::dynamo::create_table;

#[derive(Debug, Clone)]
pub struct Stack {
    pub table: String,
    pub kms_key_id: String,
    pub stream_arn: Option<String>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Ensures the table and a KMS key (by alias) exist; returns their names.
pub async fn ensure(sdk: &SdkConfig, table: &str, key_alias: &str) -> Result<Stack, BoxError> {
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let created = create_table(&ddb, table)?.send().await;
    if let Err(e) = created {
        let exists = e
            .as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception());
        if !exists {
            return Err(e.into());
        }
    }
    let described = ddb.describe_table().table_name(table).send().await?;
    let stream_arn = described.table.and_then(|t| t.latest_stream_arn);

    let kms = aws_sdk_kms::Client::new(sdk);
    let alias = if key_alias.starts_with("alias/") {
        key_alias.to_owned()
    } else {
        format!("alias/{key_alias}")
    };
    let known = kms.describe_key().key_id(&alias).send().await;
    if known.is_err() {
        let k = kms
            .create_key()
            .description("InfraKitchen integration secrets (local)")
            .send()
            .await?;
        let key_id = k
            .key_metadata
            .map(|m| m.key_id)
            .ok_or("CreateKey returned no key")?;
        kms.create_alias()
            .alias_name(&alias)
            .target_key_id(&key_id)
            .send()
            .await?;
    }
    // Resolve the alias to the key ARN, as the deployed stack passes the key ARN.
    let arn = kms
        .describe_key()
        .key_id(&alias)
        .send()
        .await?
        .key_metadata
        .and_then(|m| m.arn)
        .ok_or("DescribeKey returned no ARN")?;
    Ok(Stack {
        table: table.to_owned(),
        kms_key_id: arn,
        stream_arn,
    })
}
