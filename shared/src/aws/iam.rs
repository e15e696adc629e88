//! IAM with a *user's* credentials, for Test Connection's credential hygiene: the access
//! key's own facts (ListAccessKeys, GetAccessKeyLastUsed) and a policy simulation
//! (SimulatePrincipalPolicy). Nothing else of IAM is called, so nothing else is linked.
//!
//! IAM is a global service: the client resolves its endpoint from the integration's
//! region (the partition's IAM endpoint: `iam.amazonaws.com`, China's, GovCloud's), or
//! takes the configuration's endpoint override (a local AWS). Clients are built per call
//! over the process-wide configuration, as `customer` builds STS and S3 ones.

use super::customer::{failure_from, sdk_credentials, CustomerAccount};
use crate::domain::{Region, Timestamp};
use crate::ports::{AccessKeyInspector, ActionOn, AwsCredentials, AwsFailure, Denial, KeyLastUse};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError;
use aws_sdk_iam::types::PolicyEvaluationDecisionType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// Results asked for per simulation (IAM's largest page): one call answers every action
/// the platform asks about (the wiring caps the configured list well below it).
const MAX_ITEMS: i32 = 1000;

#[derive(Clone)]
pub struct IamInspector {
    sdk: SdkConfig,
}

impl IamInspector {
    /// On the account adapter's configuration: users' timeouts and retries.
    pub fn new(account: &CustomerAccount) -> Self {
        Self {
            sdk: account.config().clone(),
        }
    }

    fn client(&self, creds: &AwsCredentials, region: &Region) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .credentials_provider(sdk_credentials(creds))
            .region(aws_config::Region::new(region.as_str().to_owned()))
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    fn failure<E: ProvideErrorMetadata>(&self, err: &SdkError<E, HttpResponse>) -> AwsFailure {
        failure_from(&self.sdk, err)
    }
}

fn timestamp(t: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos())
        .ok()
        .map(Timestamp::from)
}

/// ListAccessKeys of the signing user: `key_id`'s creation time.
async fn key_created(
    client: &aws_sdk_iam::Client,
    key_id: &str,
) -> Result<Option<Timestamp>, SdkError<impl ProvideErrorMetadata, HttpResponse>> {
    let out = client.list_access_keys().send().await?;
    Ok(out
        .access_key_metadata
        .iter()
        .find(|k| k.access_key_id.as_deref() == Some(key_id))
        .and_then(|k| k.create_date.as_ref())
        .and_then(timestamp))
}

async fn key_last_used(
    client: &aws_sdk_iam::Client,
    key_id: &str,
) -> Result<KeyLastUse, SdkError<impl ProvideErrorMetadata, HttpResponse>> {
    let out = client
        .get_access_key_last_used()
        .access_key_id(key_id)
        .send()
        .await?;
    let Some(used) = out.access_key_last_used else {
        return Ok(KeyLastUse::default());
    };
    let at = used.last_used_date.as_ref().and_then(timestamp);
    // IAM says `N/A` for the service and region of a key it never saw used.
    let service = Some(used.service_name).filter(|s| at.is_some() && !s.is_empty() && s != "N/A");
    Ok(KeyLastUse { at, service })
}

/// One SimulatePrincipalPolicy per resource (all at once; `*` is IAM's default, sent as
/// no resource), each action's decision read from its result.
async fn simulate(
    client: &aws_sdk_iam::Client,
    principal_arn: &str,
    checks: &[ActionOn],
    failed: impl Fn(&SdkError<SimulatePrincipalPolicyError, HttpResponse>) -> AwsFailure,
) -> Result<Vec<Denial>, AwsFailure> {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for c in checks {
        match groups.iter_mut().find(|(r, _)| *r == c.resource) {
            Some((_, actions)) => actions.push(c.action.clone()),
            None => groups.push((&c.resource, vec![c.action.clone()])),
        }
    }
    let calls = groups.into_iter().map(|(resource, actions)| {
        let req = client
            .simulate_principal_policy()
            .policy_source_arn(principal_arn)
            .set_action_names(Some(actions))
            .set_resource_arns((resource != "*").then(|| vec![resource.to_owned()]))
            .max_items(MAX_ITEMS);
        async move { req.send().await.map(|out| (resource, out)) }
    });
    let mut denials = Vec::new();
    for answer in futures::future::join_all(calls).await {
        let (resource, out) = answer.map_err(|e| failed(&e))?;
        for r in out.evaluation_results.unwrap_or_default() {
            if r.eval_decision == PolicyEvaluationDecisionType::Allowed {
                continue;
            }
            denials.push(Denial {
                resource: r.eval_resource_name.unwrap_or_else(|| resource.to_owned()),
                decision: r.eval_decision.as_str().to_owned(),
                action: r.eval_action_name,
            });
        }
    }
    // In the order asked, whatever order the calls answered in.
    let asked = |d: &Denial| checks.iter().position(|c| c.action == d.action);
    denials.sort_by_key(|d| asked(d).unwrap_or(usize::MAX));
    Ok(denials)
}

#[async_trait]
impl AccessKeyInspector for IamInspector {
    async fn key_created(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        key_id: &str,
    ) -> Result<Option<Timestamp>, AwsFailure> {
        key_created(&self.client(creds, region), key_id)
            .await
            .map_err(|e| self.failure(&e))
    }

    async fn key_last_used(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        key_id: &str,
    ) -> Result<KeyLastUse, AwsFailure> {
        key_last_used(&self.client(creds, region), key_id)
            .await
            .map_err(|e| self.failure(&e))
    }

    async fn simulate(
        &self,
        creds: &AwsCredentials,
        region: &Region,
        principal_arn: &str,
        checks: &[ActionOn],
    ) -> Result<Vec<Denial>, AwsFailure> {
        if checks.is_empty() {
            return Ok(vec![]);
        }
        let client = self.client(creds, region);
        simulate(&client, principal_arn, checks, |e| self.failure(e)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::FailureKind;
    use aws_sdk_iam::operation::get_access_key_last_used::GetAccessKeyLastUsedOutput;
    use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
    use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
    use aws_sdk_iam::types::{AccessKeyLastUsed, AccessKeyMetadata, EvaluationResult};
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    const USER: &str = "arn:aws:iam::123456789012:user/InfraKitchenUser";
    const BUCKET: &str = "arn:aws:s3:::infrakitchen-123456789012-bucket";

    /// An IAM client whose answers come from `rules` (no network).
    fn client(rules: &[&Rule]) -> aws_sdk_iam::Client {
        let mut mocks = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in rules {
            mocks = mocks.with_rule(r);
        }
        let conf = aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(mocks)
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    fn result(action: &str, resource: &str, decision: &str) -> EvaluationResult {
        EvaluationResult::builder()
            .eval_action_name(action)
            .eval_resource_name(resource)
            .eval_decision(PolicyEvaluationDecisionType::from(decision))
            .build()
            .expect("a complete result")
    }

    fn checks() -> Vec<ActionOn> {
        vec![
            ActionOn::new("s3:CreateBucket", BUCKET),
            ActionOn::new("s3:PutBucketPolicy", BUCKET),
            ActionOn::new("s3:ListAllMyBuckets", "*"),
            ActionOn::new("ec2:DescribeInstances", "*"),
        ]
    }

    async fn run(rules: &[&Rule]) -> Result<Vec<Denial>, AwsFailure> {
        simulate(
            &client(rules),
            USER,
            &checks(),
            crate::aws::customer::failure,
        )
        .await
    }

    /// Answers each call with a decision per action: `denied` ones as given, the others
    /// allowed; only for the principal asked about.
    fn decisions(denied: &'static [(&'static str, &'static str)]) -> Rule {
        mock!(aws_sdk_iam::Client::simulate_principal_policy)
            .match_requests(|r| r.policy_source_arn() == Some(USER))
            .then_compute_output(move |r| {
                let resource = r.resource_arns().first().map_or("*", String::as_str);
                let mut out = SimulatePrincipalPolicyOutput::builder().is_truncated(false);
                for a in r.action_names() {
                    let decision = denied
                        .iter()
                        .find(|(d, _)| d == a)
                        .map_or("allowed", |(_, why)| *why);
                    out = out.evaluation_results(result(a, resource, decision));
                }
                out.build()
            })
    }

    #[tokio::test]
    async fn a_principal_allowed_everything_has_no_denials_in_one_call_per_resource() {
        let rule = decisions(&[]);
        assert_eq!(run(&[&rule]).await, Ok(vec![]));
        assert_eq!(rule.num_calls(), 2, "the bucket's ARN and `*`");
    }

    #[tokio::test]
    async fn denied_actions_are_named_with_their_resource_and_decision() {
        let rule = decisions(&[
            ("s3:PutBucketPolicy", "explicitDeny"),
            ("ec2:DescribeInstances", "implicitDeny"),
        ]);
        let denials = run(&[&rule]).await.expect("a simulation");
        assert_eq!(
            denials,
            vec![
                Denial {
                    action: "s3:PutBucketPolicy".into(),
                    resource: BUCKET.into(),
                    decision: "explicitDeny".into(),
                },
                Denial {
                    action: "ec2:DescribeInstances".into(),
                    resource: "*".into(),
                    decision: "implicitDeny".into(),
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_simulation_is_denied_not_a_verdict_on_the_actions() {
        let rule = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_error(|| {
            SimulatePrincipalPolicyError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: iam:SimulatePrincipalPolicy")
                    .build(),
            )
        });
        let f = run(&[&rule]).await.expect_err("refused");
        assert_eq!(f.kind(), FailureKind::Denied);
        assert_eq!(f.code.as_deref(), Some("AccessDenied"));
    }

    #[tokio::test]
    async fn an_unimplemented_simulation_is_a_failure_not_an_empty_answer() {
        // moto 5.2 answers SimulatePrincipalPolicy with an HTML 500 page.
        let html = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(500).expect("a status"),
                SdkBody::from("<!doctype html><title>500 Internal Server Error</title>"),
            )
        });
        let f = run(&[&html]).await.expect_err("no simulation");
        assert_eq!((f.status, f.kind()), (Some(500), FailureKind::ServerError));
        // An endpoint that does not know the operation.
        let unknown =
            mock!(aws_sdk_iam::Client::simulate_principal_policy).then_http_response(|| {
                HttpResponse::new(
                    StatusCode::try_from(400).expect("a status"),
                    SdkBody::from(
                        "<ErrorResponse><Error><Code>InvalidAction</Code><Message>Could not find \
                     operation SimulatePrincipalPolicy</Message></Error></ErrorResponse>",
                    ),
                )
            });
        let f = run(&[&unknown]).await.expect_err("no simulation");
        assert_eq!(f.code.as_deref(), Some("InvalidAction"));
        assert_eq!(f.kind(), FailureKind::Other);
    }

    #[tokio::test]
    async fn key_facts_come_from_the_signing_users_own_listing() {
        let created = aws_smithy_types::DateTime::from_secs(1_767_225_600); // 2026-01-01
        let list = mock!(aws_sdk_iam::Client::list_access_keys)
            .match_requests(|r| r.user_name().is_none())
            .then_output(move || {
                ListAccessKeysOutput::builder()
                    .access_key_metadata(
                        AccessKeyMetadata::builder()
                            .access_key_id("AKIAOTHERKEY00000000")
                            .build(),
                    )
                    .access_key_metadata(
                        AccessKeyMetadata::builder()
                            .access_key_id("AKIAIOSFODNN7EXAMPLE")
                            .create_date(created)
                            .build(),
                    )
                    .build()
                    .expect("a listing")
            });
        let c = client(&[&list]);
        let at = key_created(&c, "AKIAIOSFODNN7EXAMPLE").await.ok().flatten();
        assert_eq!(
            at.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(
            key_created(&c, "AKIANOTLISTED0000000").await.ok(),
            Some(None)
        );

        let never = mock!(aws_sdk_iam::Client::get_access_key_last_used).then_output(|| {
            GetAccessKeyLastUsedOutput::builder()
                .access_key_last_used(
                    AccessKeyLastUsed::builder()
                        .service_name("N/A")
                        .region("N/A")
                        .build()
                        .expect("complete"),
                )
                .build()
        });
        let used = key_last_used(&client(&[&never]), "AKIAIOSFODNN7EXAMPLE").await;
        assert_eq!(used.ok(), Some(KeyLastUse::default()));
        let s3 = mock!(aws_sdk_iam::Client::get_access_key_last_used).then_output(move || {
            GetAccessKeyLastUsedOutput::builder()
                .access_key_last_used(
                    AccessKeyLastUsed::builder()
                        .last_used_date(created)
                        .service_name("s3")
                        .region("eu-central-1")
                        .build()
                        .expect("complete"),
                )
                .build()
        });
        let used = key_last_used(&client(&[&s3]), "AKIAIOSFODNN7EXAMPLE")
            .await
            .ok()
            .unwrap_or_default();
        assert_eq!(used.service.as_deref(), Some("s3"));
        assert!(used.at.is_some());
    }
}
