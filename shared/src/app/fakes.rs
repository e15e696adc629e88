//! In-memory fakes of every port, for unit tests of the use cases without AWS: a store
//! with the DynamoDB store's semantics, a reversible sealer bound to its context like
//! KMS, and a user's AWS account whose every answer a test can script.
//!
//! Domain inputs are built only by [`form`] and [`patch`], from JSON through the HTTP
//! layer's own parsers, so tests never depend on how the domain types are spelled.

mod account;
pub mod contract;
mod platform;
mod store;

pub(crate) use account::{aws_error, Call, FakeAccount, TEMP_KEY_ID, USER_ARN};
pub(crate) use platform::{FakePlatform, PLATFORM_ARN, PLATFORM_KEY_ID, PLATFORM_SECRET};
pub use store::{MemoryStore, Op};

/// The calls the fakes answered and how they overlapped in time, shared by the fakes of
/// one test. Each call is in flight across one yield to the executor, so calls made at
/// once (`join!`) overlap and calls made one after the other do not.
#[derive(Clone, Default)]
pub(crate) struct Trace(std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>);

impl Trace {
    /// Marks one call of `op`: started, a yield, finished.
    pub(crate) async fn call(&self, op: &str) {
        self.push(op.to_owned(), true);
        tokio::task::yield_now().await;
        self.push(op.to_owned(), false);
    }

    /// Forgets the calls so far (a test's set-up).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, op: String, start: bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((op, start));
    }

    /// The calls by sequential round, as the benchmark's counting proxy tells them
    /// apart: a round starts whenever no call is in flight. Each round's calls sorted.
    pub(crate) fn rounds(&self) -> Vec<Vec<String>> {
        let mut rounds: Vec<Vec<String>> = vec![];
        let mut in_flight = 0usize;
        for (op, start) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if !start {
                in_flight -= 1;
                continue;
            }
            if in_flight == 0 {
                rounds.push(vec![]);
            }
            in_flight += 1;
            if let Some(round) = rounds.last_mut() {
                round.push(op.clone());
                round.sort();
            }
        }
        rounds
    }
}

/// A key deriver with one fixed root key, as KMS GenerateMac under one HMAC key is:
/// the same label gives the same bytes.
#[derive(Debug, Clone)]
pub struct FixedKeys(pub [u8; 32]);

impl Default for FixedKeys {
    fn default() -> Self {
        FixedKeys([42; 32])
    }
}

#[async_trait]
impl crate::ports::KeyDeriver for FixedKeys {
    async fn derive(&self, label: &str) -> Result<secrecy::SecretBox<[u8; 32]>> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(secrecy::SecretBox::new(Box::new(out)))
    }
}

use crate::domain::{Integration, IntegrationPatch, NewIntegration, Sealed};
use crate::error::{Dependency, Error, Result};
use crate::ports::{SealContext, SecretSealer};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A valid create form: these fields over a minimal valid body (`null` removes one).
/// Unit tests only: it parses through the HTTP layer, which the fakes otherwise never use.
#[cfg(test)]
/// Panics on an invalid form: a test that builds one means to.
pub(crate) fn form(fields: Value) -> NewIntegration {
    let mut body = json!({
        "name": "aws-production",
        "aws_account_id": ACCOUNT,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
    });
    if let (Some(base), Value::Object(extra)) = (body.as_object_mut(), fields) {
        for (k, v) in extra {
            match v {
                Value::Null => base.remove(&k),
                v => base.insert(k, v),
            };
        }
    }
    match crate::http::input::parse_new(body.to_string().as_bytes()) {
        Ok(form) => form,
        Err(e) => panic!("test form {body} is invalid: {e:?}"),
    }
}

/// A PATCH body as `Integrations::update` takes it: parsed against the current record.
#[cfg(test)]
pub(crate) fn patch(body: Value) -> impl FnOnce(&Integration) -> Result<IntegrationPatch> {
    move |current| {
        crate::http::input::parse_patch(
            body.to_string().as_bytes(),
            &current.aws_account_id,
            current.credentials.kind(),
        )
    }
}

/// A sealer that writes the context beside the secret (scrambled, so the ciphertext never
/// shows it): reversible, and opening under another context fails as KMS Decrypt does
/// (`InvalidCiphertextException`: `SecretUnreadable`, as the adapter maps it). `fail_next` makes the
/// next calls fail as a KMS outage.
#[derive(Default)]
pub(crate) struct MemorySealer {
    failures: AtomicU32,
    seals: AtomicU32,
    opens: AtomicU32,
    trace: Trace,
}

fn kms_error(operation: &'static str, code: &str) -> Error {
    Error::Unavailable {
        dependency: Dependency::Kms,
        operation,
        code: code.into(),
        retry_after: std::time::Duration::from_secs(5),
        source: None,
    }
}

fn bound_to(ctx: SealContext<'_>) -> String {
    format!("{}/{}\n", ctx.integration_id, ctx.aws_account_id)
}

/// Its own inverse.
fn scramble(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b ^ 0x5a).collect()
}

impl MemorySealer {
    /// A sealer whose calls go to `trace` (as `Encrypt` and `Decrypt`).
    pub(crate) fn traced(trace: &Trace) -> Self {
        Self {
            trace: trace.clone(),
            ..Default::default()
        }
    }

    /// The next `n` calls (seal or open) fail with `Error::Unavailable` (KMS).
    pub(crate) fn fail_next(&self, n: u32) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// How many times a secret was sealed (successfully or not).
    pub(crate) fn seals(&self) -> u32 {
        self.seals.load(Ordering::SeqCst)
    }

    /// How many times a secret was opened (successfully or not).
    pub(crate) fn opens(&self) -> u32 {
        self.opens.load(Ordering::SeqCst)
    }

    fn outage(&self, operation: &'static str) -> Result<()> {
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match failing {
            Ok(_) => Err(kms_error(operation, "KMSInternalException")),
            Err(_) => Ok(()),
        }
    }
}

#[async_trait]
impl SecretSealer for MemorySealer {
    async fn seal(&self, secret: &SecretString, ctx: SealContext<'_>) -> Result<Sealed> {
        self.seals.fetch_add(1, Ordering::SeqCst);
        self.trace.call("Encrypt").await;
        self.outage("Encrypt")?;
        let mut sealed = bound_to(ctx).into_bytes();
        sealed.extend(scramble(secret.expose_secret().as_bytes()));
        Ok(Sealed(sealed))
    }

    async fn open(&self, sealed: &Sealed, ctx: SealContext<'_>) -> Result<SecretString> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.trace.call("Decrypt").await;
        self.outage("Decrypt")?;
        let secret = sealed.0.strip_prefix(bound_to(ctx).as_bytes());
        match secret.map(|s| String::from_utf8(scramble(s))) {
            Some(Ok(secret)) => Ok(SecretString::from(secret)),
            _ => Err(Error::SecretUnreadable { source: None }),
        }
    }
}
