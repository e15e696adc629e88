//! The platform's own principal (role delegation), scripted like the account: each
//! `session` takes the next queued answer, or the default session of the platform's
//! role. A session fetched from STS is one call in the trace (`PlatformSession`); once
//! `cached`, a session is handed out from memory, as `PlatformAccount` does until it
//! nears expiry, and no call is traced.

use crate::ports::{AwsCredentials, AwsFailure, PlatformPrincipal, PlatformSession};
use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

/// The platform's role, as a user's trust policy names it.
pub(crate) const PLATFORM_ARN: &str = "arn:aws:iam::999999999999:role/InfraKitchenPlatform";
/// The key id of the platform's own session (never a user's).
pub(crate) const PLATFORM_KEY_ID: &str = "ASIAPLATFORMEXAMPLE0";
pub(crate) const PLATFORM_SECRET: &str = "platform-session-secret";

#[derive(Default)]
pub(crate) struct FakePlatform {
    answers: Mutex<VecDeque<Result<(), AwsFailure>>>,
    sessions: AtomicU32,
    cached: AtomicBool,
    trace: super::Trace,
}

impl FakePlatform {
    /// A platform whose STS calls go to `trace` (as `PlatformSession`).
    pub(crate) fn traced(trace: &super::Trace) -> Self {
        Self {
            trace: trace.clone(),
            ..Default::default()
        }
    }

    /// The next `session` answers with this (a failure, or the default session).
    pub(crate) fn answer(&self, a: Result<(), AwsFailure>) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(a);
    }

    /// From now on the session comes from memory: no call to STS.
    pub(crate) fn cache(&self) {
        self.cached.store(true, Ordering::SeqCst);
    }

    /// How many sessions were asked for (cached or not).
    pub(crate) fn sessions(&self) -> u32 {
        self.sessions.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PlatformPrincipal for FakePlatform {
    async fn session(&self) -> Result<PlatformSession, AwsFailure> {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        if !self.cached.load(Ordering::SeqCst) {
            self.trace.call("PlatformSession").await;
        }
        let next = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        next.unwrap_or(Ok(()))?;
        Ok(PlatformSession {
            credentials: AwsCredentials {
                access_key_id: PLATFORM_KEY_ID.into(),
                secret_access_key: SecretString::from(PLATFORM_SECRET.to_owned()),
                session_token: Some(SecretString::from("platform-token".to_owned())),
            },
            principal_arn: PLATFORM_ARN.into(),
        })
    }
}
