//! Creates what template.yaml creates in AWS (the table with its indexes and stream, the
//! KMS key) in the local AWS (DynamoDB Local for the table, moto for the key).
//! Idempotent, so the local stack can be restarted against the same local AWS.

use aws_config::SdkConfig;
use integrations_core::aws::dynamo::create_table;

#[derive(Debug, Clone)]
pub struct Stack {
    pub table: String,
    pub kms_key_id: String,
    /// The HMAC key (GENERATE_VERIFY_MAC) the service's own keys derive from.
    pub hmac_key_id: String,
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
    let arn = ensure_key(&kms, &alias, KeyKind::Encrypt).await?;
    let hmac_arn = ensure_key(&kms, &format!("{alias}-hmac"), KeyKind::Hmac).await?;
    Ok(Stack {
        table: table.to_owned(),
        kms_key_id: arn,
        hmac_key_id: hmac_arn,
        stream_arn,
    })
}

/// The platform principal the local stack's onboarding names: `PLATFORM_PRINCIPAL_ARN`
/// when set, else `PLATFORM_ROLE_ARN` (the role the functions assume), else the identity
/// of `sdk`'s own credentials (STS GetCallerIdentity, an assumed-role session as its
/// role), which is what the test-connection and provision functions act as when they
/// are given the same configuration.
pub async fn platform_principal(sdk: &SdkConfig) -> Result<String, BoxError> {
    use integrations_core::ports::PlatformPrincipal as _;
    let set = |name: &str| integrations_core::wiring::env(name).ok();
    if let Some(arn) = set("PLATFORM_PRINCIPAL_ARN").or_else(|| set("PLATFORM_ROLE_ARN")) {
        return Ok(arn.trim().to_owned());
    }
    let own = integrations_core::aws::platform::PlatformAccount::new(sdk, None);
    let session = own.session().await.map_err(|f| {
        format!(
            "GetCallerIdentity for the local platform principal: {}: {}",
            f.code.as_deref().unwrap_or("no code"),
            f.message.as_deref().unwrap_or("no message")
        )
    })?;
    Ok(session.principal_arn)
}

#[derive(Clone, Copy)]
enum KeyKind {
    Encrypt,
    Hmac,
}

/// The key behind `alias`, created if missing; its ARN, as the deployed stack passes it.
async fn ensure_key(
    kms: &aws_sdk_kms::Client,
    alias: &str,
    kind: KeyKind,
) -> Result<String, BoxError> {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    if kms.describe_key().key_id(alias).send().await.is_err() {
        let req = match kind {
            KeyKind::Encrypt => kms
                .create_key()
                .description("InfraKitchen integration secrets (local)"),
            KeyKind::Hmac => kms
                .create_key()
                .description("InfraKitchen service keys: page tokens, fingerprints (local)")
                .key_spec(KeySpec::Hmac256)
                .key_usage(KeyUsageType::GenerateVerifyMac),
        };
        let key_id = req
            .send()
            .await?
            .key_metadata
            .map(|m| m.key_id)
            .ok_or("CreateKey returned no key")?;
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await?;
    }
    Ok(kms
        .describe_key()
        .key_id(alias)
        .send()
        .await?
        .key_metadata
        .and_then(|m| m.arn)
        .ok_or("DescribeKey returned no ARN")?)
}
