//! Builds the service's dependencies once per process, from the standard AWS
//! configuration and the function's environment. The Lambda functions and the local
//! stack both build through here, so they run the same wiring.

use crate::app::connection::{ConnectionTester, MAX_SIMULATED_ACTIONS};
use crate::app::health::{HealthCheck, HealthSettings};
use crate::app::integrations::Integrations;
use crate::app::keys::{ServiceKeys, DEFAULT_TOKEN_TTL};
use crate::app::provisioning::{Provisioner, Settings};
use crate::app::test_connection::TestConnection;
use crate::aws::iam::IamInspector;
use crate::aws::kms::{KmsKeyDeriver, KmsSealer};
use crate::aws::platform::PlatformAccount;
use crate::aws::{customer::CustomerAccount, dynamo::DynamoStore};
use crate::http::access::{configure, AccessConfig};
use crate::http::manage::Manage;
use crate::http::onboarding::OnboardingSettings;
use aws_config::SdkConfig;
use std::sync::Arc;
use std::time::Duration;

/// Reads a required environment variable at start-up, naming it when missing.
pub fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("environment variable {name} must be set"))
}

/// Where the service keeps its state, and how it provisions.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub kms_key_id: String,
    /// The KMS HMAC key the service's own keys are derived from (page tokens,
    /// idempotency fingerprints); only the create and manage functions need it.
    pub hmac_key_id: Option<String>,
    /// How long a page token stays valid.
    pub page_token_ttl: Duration,
    pub provisioning: Settings,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// The groups claim and the admin group.
    pub access: AccessConfig,
    /// The role the platform assumes to act for role delegation (`PLATFORM_ROLE_ARN`);
    /// without it the function's own credentials are the platform's principal.
    pub platform_role_arn: Option<String>,
}

impl Config {
    /// `TABLE_NAME`, `KMS_KEY_ID`, `HMAC_KEY_ID`, `PAGE_TOKEN_TTL_SECONDS`, the
    /// provisioning settings, `AUDIT_RETENTION_DAYS`, `GROUPS_CLAIM` and `ADMIN_GROUP`.
    pub fn from_env() -> Result<Self, String> {
        Ok(Config {
            table: env("TABLE_NAME")?,
            kms_key_id: env("KMS_KEY_ID")?,
            hmac_key_id: env("HMAC_KEY_ID").ok(),
            page_token_ttl: page_token_ttl()?,
            provisioning: provisioning_settings()?,
            audit_retention: audit_retention()?,
            access: AccessConfig::from_env()?,
            platform_role_arn: platform_role_arn(),
        })
    }
}

/// `PLATFORM_ROLE_ARN`, when set.
pub fn platform_role_arn() -> Option<String> {
    env("PLATFORM_ROLE_ARN").ok().map(|v| v.trim().to_owned())
}

/// Onboarding's settings (read by the manage function only): `PLATFORM_PRINCIPAL_ARN`
/// (required: the principal users' delegated roles trust) and `DELEGATION_TEMPLATE_URL`
/// (optional, empty = none: the rendered delegation template in S3, which the
/// quick-create link names).
pub fn onboarding_settings() -> Result<OnboardingSettings, String> {
    onboarding_settings_if_set()?.ok_or_else(|| {
        "environment variable PLATFORM_PRINCIPAL_ARN must be set (the platform's principal \
         that users' delegated roles trust)"
            .into()
    })
}

/// [`onboarding_settings`], or `None` without `PLATFORM_PRINCIPAL_ARN` (a stack whose
/// manage function serves no onboarding; a bad `DELEGATION_TEMPLATE_URL` is still an
/// error).
pub fn onboarding_settings_if_set() -> Result<Option<OnboardingSettings>, String> {
    let template_url = match env("DELEGATION_TEMPLATE_URL") {
        Ok(url) => Some(template_url(&url)?),
        Err(_) => None,
    };
    Ok(env("PLATFORM_PRINCIPAL_ARN")
        .ok()
        .map(|principal| OnboardingSettings {
            platform_principal: principal.trim().to_owned(),
            template_url,
        }))
}

/// `DELEGATION_TEMPLATE_URL`, checked: an https URL (CloudFormation's quick-create reads
/// templates from S3 over https only).
pub fn template_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    if url.starts_with("https://")
        && url.len() > "https://".len()
        && !url.contains(char::is_whitespace)
    {
        Ok(url.to_owned())
    } else {
        Err(format!(
            "DELEGATION_TEMPLATE_URL must be the https URL of the rendered delegation template in \
             S3 (local-api --delegation-template <PlatformRoleArn> renders it), not {url:?}"
        ))
    }
}

/// `AUDIT_RETENTION_DAYS` (default 365).
pub fn audit_retention() -> Result<Duration, String> {
    match std::env::var("AUDIT_RETENTION_DAYS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .map(|d| Duration::from_secs(d * 24 * 3600))
            .ok_or_else(|| {
                "AUDIT_RETENTION_DAYS must be a whole number of days from 1 to 3650".into()
            }),
        _ => Ok(crate::aws::dynamo::DEFAULT_AUDIT_RETENTION),
    }
}

/// `PAGE_TOKEN_TTL_SECONDS` (default 3600, at most a day).
pub fn page_token_ttl() -> Result<Duration, String> {
    match std::env::var("PAGE_TOKEN_TTL_SECONDS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                "PAGE_TOKEN_TTL_SECONDS must be a whole number of seconds from 1 to 86400".into()
            }),
        _ => Ok(DEFAULT_TOKEN_TTL),
    }
}

/// Every use case, wired to the AWS adapters (the local stack serves them all).
#[derive(Clone)]
pub struct Services {
    pub integrations: Integrations,
    /// The manage function's dependencies (the same `integrations`, and onboarding's
    /// settings).
    pub manage: Manage,
    pub test_connection: TestConnection,
    pub provisioner: Provisioner,
    pub health: HealthCheck,
}

// Each function builds only the use case it serves, so its binary links only the SDK
// clients that use case needs: create and manage need DynamoDB and KMS, not STS or S3.

fn store(service: &SdkConfig, config: &Config) -> Arc<DynamoStore> {
    // Once per process: the first configuration wins (the local stack builds these per
    // test, always with the same access settings).
    configure(config.access.clone());
    Arc::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(service), &config.table)
            .with_audit_retention(config.audit_retention),
    )
}

fn integrations_on(store: Arc<DynamoStore>, service: &SdkConfig, config: &Config) -> Integrations {
    let sealer = Arc::new(KmsSealer::new(
        aws_sdk_kms::Client::new(service),
        &config.kms_key_id,
    ));
    Integrations::new(store, sealer)
}

/// The same, with the service keys: for the functions that list or create (the others
/// never link the GenerateMac call).
fn integrations_with_keys(
    store: Arc<DynamoStore>,
    service: &SdkConfig,
    config: &Config,
) -> Result<Integrations, String> {
    let key_id = config
        .hmac_key_id
        .as_deref()
        .ok_or("environment variable HMAC_KEY_ID must be set")?;
    let deriver = Arc::new(KmsKeyDeriver::new(
        aws_sdk_kms::Client::new(service),
        key_id,
    ));
    Ok(integrations_on(store, service, config)
        .with_keys(Arc::new(ServiceKeys::new(deriver, config.page_token_ttl))))
}

/// The manage function's (and the local harness's): keys and listing.
fn integrations_listing(
    store: Arc<DynamoStore>,
    service: &SdkConfig,
    config: &Config,
) -> Result<Integrations, String> {
    Ok(integrations_with_keys(store.clone(), service, config)?.with_listing(store))
}

fn test_connection_on(
    integrations: Integrations,
    account: Arc<CustomerAccount>,
    platform: Arc<PlatformAccount>,
) -> TestConnection {
    // IAM with the user's credentials, over the same configuration as its STS and S3.
    let iam = Arc::new(IamInspector::new(&account));
    TestConnection {
        integrations,
        tester: ConnectionTester::new(account.clone(), account)
            .with_platform(platform)
            .with_key_inspector(iam)
            .with_simulated_actions(simulated_actions()),
    }
}

/// `HYGIENE_SIMULATE_ACTIONS`: IAM actions (`service:Action`, comma-separated, at most
/// [`MAX_SIMULATED_ACTIONS`]) Test Connection asks IAM's policy simulator about on any
/// resource, besides the state bucket's. Unset or empty: none. An entry that is not an
/// action is left out and logged (it could never be granted).
pub fn simulated_actions() -> Vec<String> {
    let raw = std::env::var("HYGIENE_SIMULATE_ACTIONS").unwrap_or_default();
    let (actions, refused) = parse_actions(&raw);
    if !refused.is_empty() {
        tracing::warn!(
            ?refused,
            "HYGIENE_SIMULATE_ACTIONS: left out what is not an IAM action (service:Action), or \
             beyond the first {MAX_SIMULATED_ACTIONS}"
        );
    }
    actions
}

/// The actions, and the entries left out.
fn parse_actions(raw: &str) -> (Vec<String>, Vec<String>) {
    let word = |w: &str, wild: bool| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (wild && c == '*'))
    };
    let (mut actions, mut refused): (Vec<String>, Vec<String>) = (vec![], vec![]);
    for a in raw.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let valid = a
            .split_once(':')
            .is_some_and(|(service, action)| word(service, false) && word(action, true));
        if !valid || actions.len() >= MAX_SIMULATED_ACTIONS {
            refused.push(a.to_owned());
        } else if !actions.iter().any(|o| o == a) {
            actions.push(a.to_owned());
        }
    }
    (actions, refused)
}

fn provisioner_on(
    integrations: Integrations,
    store: Arc<DynamoStore>,
    account: Arc<CustomerAccount>,
    platform: Arc<PlatformAccount>,
    config: &Config,
) -> Provisioner {
    Provisioner::new(
        integrations,
        store,
        account.clone(),
        account,
        config.provisioning.clone(),
    )
    .with_platform(platform)
}

impl Services {
    /// `service` reaches the service's own table and key; `customer` is the base
    /// configuration for calls made with users' credentials (STS, S3). In AWS both are
    /// the same; tests point the second at an IAM-enforcing emulator.
    ///
    /// Onboarding's settings come from the environment when `PLATFORM_PRINCIPAL_ARN` is
    /// set (else none: see [`Services::with_onboarding`]).
    pub fn new(service: &SdkConfig, customer: &SdkConfig, config: &Config) -> Result<Self, String> {
        let onboarding = onboarding_settings_if_set()?;
        let store = store(service, config);
        let integrations = integrations_listing(store.clone(), service, config)?;
        let account = Arc::new(CustomerAccount::new(customer));
        // The customer configuration's own credentials are the platform's (tests give it
        // a principal in the IAM-enforcing emulator).
        let platform = Arc::new(PlatformAccount::new(
            customer,
            config.platform_role_arn.clone(),
        ));
        let test_connection =
            test_connection_on(integrations.clone(), account.clone(), platform.clone());
        Ok(Services {
            health: health_on(
                &test_connection,
                store.clone(),
                account.clone(),
                platform.clone(),
                health_settings(&config.provisioning)?,
            ),
            test_connection,
            provisioner: provisioner_on(integrations.clone(), store, account, platform, config),
            manage: Manage {
                integrations: integrations.clone(),
                onboarding,
            },
            integrations,
        })
    }

    /// The same services with these onboarding settings (the local stack's platform
    /// principal, a test's template URL).
    pub fn with_onboarding(mut self, onboarding: OnboardingSettings) -> Self {
        self.manage.onboarding = Some(onboarding);
        self
    }
}

/// The create function's use case, as in Lambda: one AWS configuration, settings from
/// the environment.
pub fn integrations_from_env(sdk: &SdkConfig) -> Result<Integrations, String> {
    let config = Config::from_env()?;
    integrations_with_keys(store(sdk, &config), sdk, &config)
}

/// The manage function's use case: also lists (see [`integrations_from_env`]).
pub fn listing_integrations_from_env(sdk: &SdkConfig) -> Result<Integrations, String> {
    let config = Config::from_env()?;
    integrations_listing(store(sdk, &config), sdk, &config)
}

/// The manage function's dependencies: [`listing_integrations_from_env`] and onboarding's
/// settings, `PLATFORM_PRINCIPAL_ARN` required (no AWS client: onboarding calls none).
pub fn manage_from_env(sdk: &SdkConfig) -> Result<Manage, String> {
    let onboarding = onboarding_settings()?;
    Ok(Manage {
        integrations: listing_integrations_from_env(sdk)?,
        onboarding: Some(onboarding),
    })
}

/// The test-connection function's use case (see [`integrations_from_env`]).
pub fn test_connection_from_env(sdk: &SdkConfig) -> Result<TestConnection, String> {
    let config = Config::from_env()?;
    let integrations = integrations_on(store(sdk, &config), sdk, &config);
    let platform = Arc::new(PlatformAccount::new(sdk, config.platform_role_arn.clone()));
    Ok(test_connection_on(
        integrations,
        Arc::new(CustomerAccount::new(sdk)),
        platform,
    ))
}

/// The provision-bucket function's use case (see [`integrations_from_env`]).
pub fn provisioner_from_env(sdk: &SdkConfig) -> Result<Provisioner, String> {
    let config = Config::from_env()?;
    let store = store(sdk, &config);
    let integrations = integrations_on(store.clone(), sdk, &config);
    let account = Arc::new(CustomerAccount::new(sdk));
    let platform = Arc::new(PlatformAccount::new(sdk, config.platform_role_arn.clone()));
    Ok(provisioner_on(
        integrations,
        store,
        account,
        platform,
        &config,
    ))
}

/// The health-check function's use case: Test Connection's tester, the health queue and
/// the bucket inspector (see [`integrations_from_env`]).
pub fn health_check_from_env(sdk: &SdkConfig) -> Result<HealthCheck, String> {
    let config = Config::from_env()?;
    let store = store(sdk, &config);
    let integrations = integrations_on(store.clone(), sdk, &config);
    let account = Arc::new(CustomerAccount::new(sdk));
    let platform = Arc::new(PlatformAccount::new(sdk, config.platform_role_arn.clone()));
    let test_connection = test_connection_on(integrations, account.clone(), platform.clone());
    Ok(health_on(
        &test_connection,
        store,
        account,
        platform,
        health_settings(&config.provisioning)?,
    ))
}

fn health_on(
    test_connection: &TestConnection,
    store: Arc<DynamoStore>,
    account: Arc<CustomerAccount>,
    platform: Arc<PlatformAccount>,
    settings: HealthSettings,
) -> HealthCheck {
    HealthCheck::new(
        test_connection.integrations.clone(),
        store.clone(),
        store,
        test_connection.tester.clone(),
        account.clone(),
        Some(platform),
        account,
        settings,
    )
}

/// `HEALTH_CHECK_BUDGET_SECONDS` (600), `HEALTH_CHECK_CONCURRENCY` (8),
/// `HEALTH_CHECK_MIN_INTERVAL_SECONDS` (72000: 20 h), with the state bucket's settings
/// from provisioning's.
pub fn health_settings(provisioning: &Settings) -> Result<HealthSettings, String> {
    let d = HealthSettings::default();
    let num = |name: &str, default: u64, min: u64| -> Result<u64, String> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| format!("{name} must be a whole number of at least {min}")),
            _ => Ok(default),
        }
    };
    Ok(HealthSettings {
        budget: Duration::from_secs(num("HEALTH_CHECK_BUDGET_SECONDS", d.budget.as_secs(), 1)?),
        concurrency: num("HEALTH_CHECK_CONCURRENCY", d.concurrency as u64, 1)?.min(64) as usize,
        min_interval: Duration::from_secs(num(
            "HEALTH_CHECK_MIN_INTERVAL_SECONDS",
            d.min_interval.as_secs(),
            0,
        )?),
        max_checks: None,
        noncurrent_days: provisioning.noncurrent_days,
        kms_key_arn: provisioning.kms_key_arn.clone(),
    })
}

/// `STATE_BUCKET_NONCURRENT_DAYS`, `STATE_BUCKET_KMS_KEY_ARN`,
/// `PROVISION_STALE_AFTER_SECONDS`, `PROVISION_PENDING_AFTER_SECONDS` (defaults when unset).
pub fn provisioning_settings() -> Result<Settings, String> {
    let d = Settings::default();
    let num = |name: &str, default: u64| -> Result<u64, String> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} must be a positive whole number")),
            _ => Ok(default),
        }
    };
    Ok(Settings {
        noncurrent_days: num("STATE_BUCKET_NONCURRENT_DAYS", d.noncurrent_days as u64)? as u32,
        kms_key_arn: std::env::var("STATE_BUCKET_KMS_KEY_ARN")
            .ok()
            .filter(|v| !v.trim().is_empty()),
        stale_after: Duration::from_secs(num(
            "PROVISION_STALE_AFTER_SECONDS",
            d.stale_after.as_secs(),
        )?),
        pending_after: Duration::from_secs(num(
            "PROVISION_PENDING_AFTER_SECONDS",
            d.pending_after.as_secs(),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_actions;

    #[test]
    fn simulated_actions_are_iam_actions() {
        let none: Vec<String> = vec![];
        assert_eq!(parse_actions(""), (none.clone(), none.clone()));
        assert_eq!(
            parse_actions(" ec2:DescribeInstances, s3:Get*,,ec2:DescribeInstances "),
            (vec!["ec2:DescribeInstances".into(), "s3:Get*".into()], none)
        );
        for bad in [
            "ec2",
            "ec2:",
            ":Describe",
            "ec2:Describe Instances",
            "e*:Describe",
        ] {
            assert_eq!(parse_actions(bad).1, vec![bad.to_owned()], "{bad}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("svc:Action{i}")).collect();
        let (actions, refused) = parse_actions(&many.join(","));
        assert_eq!(
            (actions.len(), refused),
            (100, vec!["svc:Action100".to_owned()])
        );
    }
}
