//! The Test Connection use cases: test an unsaved form, or a saved integration and
//! record its verdict.

use super::connection::{Auth, ConnectionTester, ConnectionUnderTest, Report};
use super::integrations::Integrations;
use crate::domain::{Caller, Credentials, Integration, NewCredentials, NewIntegration};
use crate::error::{Error, Result};
use secrecy::SecretString;

/// Dependencies of the test-connection function, built once per process.
#[derive(Clone)]
pub struct TestConnection {
    pub integrations: Integrations,
    pub tester: ConnectionTester,
}

impl TestConnection {
    /// Tests a form before it is saved (an invalid form never gets here). Role
    /// delegation is tested once saved: its role trusts the External ID the platform
    /// generates on save, so before that there is nothing the role could trust.
    pub async fn test_form(&self, form: &NewIntegration) -> Result<Report> {
        let NewCredentials::AccessKeys { key_id, secret } = &form.credentials else {
            return Err(Error::validation(
                "auth",
                "role_delegation is tested once saved: save first (the External ID is \
                 generated when the integration is saved), put it in the role's trust policy, \
                 then POST /integrations/aws/{id}/test-connection",
            ));
        };
        Ok(self
            .tester
            .run(&ConnectionUnderTest {
                aws_account_id: &form.aws_account_id,
                auth: Auth::Keys {
                    key_id,
                    secret: secret.secret(),
                },
                role: form.aws_assumed_role_name.as_ref(),
                external_id: form.aws_external_id.as_ref(),
                session_duration: form.aws_session_duration,
                region: &form.aws_default_region,
                check_bucket: form.create_state_bucket,
            })
            .await)
    }

    /// Tests a saved integration (with its stored secret, or through the platform's
    /// principal for role delegation) and records the verdict as its `last_test`, unless
    /// AWS could not be reached (that says nothing of the setup).
    pub async fn test_saved(&self, who: &Caller, id: &str) -> Result<Report> {
        let i = self.integrations.get(who, id).await?;
        let secret = self.integrations.secret_of(&i).await?;
        let mut report = self
            .tester
            .run(&saved_under_test(&i, secret.as_ref())?)
            .await;
        drop(secret);
        report.last_test = self
            .integrations
            .record_test(
                who,
                &i,
                report.outcome,
                report.access_key.as_ref().and_then(|k| k.dates()).as_ref(),
            )
            .await?;
        report.recorded = Some(report.last_test.is_some());
        if report.last_test.is_none() {
            report
                .summary
                .push_str(" Not recorded: the integration's last_test keeps its previous value.");
        }
        Ok(report)
    }
}

/// What Test Connection tests of a saved integration: its fields, with its opened
/// secret for access keys.
pub fn saved_under_test<'a>(
    i: &'a Integration,
    secret: Option<&'a SecretString>,
) -> Result<ConnectionUnderTest<'a>> {
    let auth = match (&i.credentials, secret) {
        (Credentials::AccessKeys { key_id, .. }, Some(secret)) => Auth::Keys { key_id, secret },
        (Credentials::AccessKeys { .. }, None) => {
            return Err(Error::internal("an access-key record opened to no secret"))
        }
        (Credentials::RoleDelegation, _) => Auth::Delegated,
    };
    Ok(ConnectionUnderTest {
        aws_account_id: &i.aws_account_id,
        auth,
        role: i.aws_assumed_role_name.as_ref(),
        external_id: i.aws_external_id.as_ref(),
        session_duration: i.aws_session_duration,
        region: &i.aws_default_region,
        check_bucket: i.create_state_bucket,
    })
}
