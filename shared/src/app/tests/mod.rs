//! Unit tests of the use cases through the in-memory fakes of every port: no AWS, no
//! emulator, milliseconds per test. The end-to-end suite stays the proof of the adapters.

mod access;
mod bucket_requests;
mod delegation;
mod health;
mod integrations;
mod provisioning;
mod recovery;
mod rounds;
mod test_connection;
mod updates;

use super::connection::ConnectionTester;
use super::fakes::{form, FakeAccount, FakePlatform, MemorySealer, MemoryStore, Trace};
use super::integrations::{Created, Integrations};
use super::provisioning::{Provisioner, Settings};
use super::test_connection::TestConnection;
use crate::domain::{AccountId, BucketStatus, Caller, Integration, Region, StateBucket, Timestamp};
use crate::error::Error;
use crate::ports::{SealContext, SecretSealer};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The use cases wired to fresh fakes, as `wiring` wires them to AWS.
struct World {
    /// Every call of the fakes below, as they overlapped.
    trace: Trace,
    store: Arc<MemoryStore>,
    sealer: Arc<MemorySealer>,
    account: Arc<FakeAccount>,
    /// The platform's own principal (role delegation).
    platform: Arc<FakePlatform>,
    integrations: Integrations,
}

fn caller() -> Caller {
    Caller::user("user-1", vec![])
}

/// A well-formed id that no record has.
const MISSING: &str = "01J00000000000000000000000";

/// A time `secs` seconds ago.
fn ago(secs: u64) -> Timestamp {
    Timestamp::ago(Duration::from_secs(secs))
}

/// A bucket of the test account with this status since `since`.
fn bucket(status: BucketStatus, since: &Timestamp) -> StateBucket {
    let account = AccountId::parse(super::fakes::ACCOUNT).expect("test account");
    let region = Region::parse("us-east-1").expect("test region");
    StateBucket {
        status,
        ..StateBucket::pending(&account, &region, since.clone())
    }
}

impl World {
    fn new() -> Self {
        let trace = Trace::default();
        let store = Arc::new(MemoryStore::traced(&trace));
        let sealer = Arc::new(MemorySealer::traced(&trace));
        World {
            integrations: Integrations::new(store.clone(), sealer.clone())
                .with_keys(std::sync::Arc::new(crate::app::keys::ServiceKeys::new(
                    std::sync::Arc::new(crate::app::fakes::FixedKeys::default()),
                    crate::app::keys::DEFAULT_TOKEN_TTL,
                )))
                .with_listing(store.clone()),
            store,
            sealer,
            account: Arc::new(FakeAccount::traced(&trace)),
            platform: Arc::new(FakePlatform::traced(&trace)),
            trace,
        }
    }

    fn provisioner(&self) -> Provisioner {
        Provisioner::new(
            self.integrations.clone(),
            self.store.clone(),
            self.account.clone(),
            self.account.clone(),
            Settings::default(),
        )
        .with_platform(self.platform.clone())
    }

    fn test_connection(&self) -> TestConnection {
        TestConnection {
            integrations: self.integrations.clone(),
            tester: self.tester(),
        }
    }

    /// The tester as `wiring` builds it, on the fakes (with the platform's principal).
    fn tester(&self) -> ConnectionTester {
        ConnectionTester::new(self.account.clone(), self.account.clone())
            .with_platform(self.platform.clone())
    }

    /// Creates an integration from the default form with these fields.
    async fn saved(&self, fields: Value) -> Integration {
        match self
            .integrations
            .create(&caller(), form(fields), None)
            .await
        {
            Ok(Created::New(i)) => *i,
            other => panic!("create failed: {other:?}"),
        }
    }

    /// A saved integration whose state bucket has had `status` since `since`.
    async fn with_bucket(
        &self,
        name: &str,
        status: BucketStatus,
        since: &Timestamp,
    ) -> Integration {
        let i = self.saved(serde_json::json!({ "name": name })).await;
        self.store.set_state_bucket(&i.id, bucket(status, since));
        self.stored(&i.id)
    }

    /// The record as stored now.
    fn stored(&self, id: impl AsRef<str>) -> Integration {
        let id = id.as_ref();
        self.store
            .record(id)
            .unwrap_or_else(|| panic!("no record {id}"))
    }

    fn bucket_of(&self, id: impl AsRef<str>) -> StateBucket {
        let id = id.as_ref();
        self.stored(id)
            .state_bucket
            .unwrap_or_else(|| panic!("record {id} has no state bucket"))
    }
}

/// The secret the record's ciphertext holds, opened with the record's own context.
async fn opened(w: &World, i: &Integration) -> String {
    let ctx = SealContext {
        integration_id: &i.id,
        aws_account_id: &i.aws_account_id,
    };
    let secret = w
        .sealer
        .open(i.credentials.sealed().unwrap(), ctx)
        .await
        .unwrap();
    secret.expose_secret().to_owned()
}

fn assert_name_conflict(r: Result<impl std::fmt::Debug, Error>) {
    match r {
        Err(Error::Conflict { field, detail }) => {
            assert_eq!(field.as_deref(), Some("name"), "{detail}")
        }
        other => panic!("expected a name conflict, got {other:?}"),
    }
}
