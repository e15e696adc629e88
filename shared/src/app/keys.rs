//! The service's own keys, derived once per process from the platform's KMS HMAC key
//! (see [`KeyDeriver`]): page tokens and idempotency fingerprints.
//!
//! - A **page token** is AES-256-GCM over (expiry, position), with the caller and the
//!   query (label, limit) as associated data: it is opaque (a caller learns nothing from
//!   it, not even its own item's name), cannot be forged or altered, is refused for any
//!   other caller or query, and expires. Nonces are random (96 bits).
//! - An idempotency **fingerprint** is HMAC-SHA-256 of the body's SHA-256: stored, it
//!   reveals nothing of the secret in the body, even to someone who guesses candidates.
//!
//! Why derived, not stored: the same label gives the same bytes in every process, so no
//! key is kept in the table or the environment, nothing needs creating on first use, and
//! every instance agrees; one KMS call per process, on first need. Rotating means a new
//! label (`v2`): outstanding tokens then fail as expired ones do.

use crate::domain::{Caller, IntegrationId, IntegrationName, ListPosition};
use crate::error::{Error, Result};
use crate::ports::KeyDeriver;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

const ROOT_LABEL: &str = "infrakitchen-integrations/service-keys/v1";
const TOKEN_VERSION: u8 = 1;
/// Page tokens last this long unless configured (`PAGE_TOKEN_TTL_SECONDS`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

struct Derived {
    token: LessSafeKey,
    fingerprint: ring::hmac::Key,
}

/// What a page token is bound to: who asked, and what they asked for.
pub struct TokenBinding<'a> {
    pub caller: &'a Caller,
    pub label: Option<&'a str>,
    pub limit: usize,
    pub filter: &'a crate::ports::RecordFilter,
}

impl TokenBinding<'_> {
    /// Unambiguous: every part is length-prefixed.
    fn aad(&self) -> Vec<u8> {
        let mut out = b"page-token/v1".to_vec();
        let mut part = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        part(self.caller.kind.as_str().as_bytes());
        part(self.caller.id.as_bytes());
        match self.label {
            Some(l) => part(format!("L{l}").as_bytes()),
            None => part(b"-"),
        }
        part(self.limit.to_string().as_bytes());
        // Only when set: tokens of unfiltered listings read as before.
        if let Some(h) = self.filter.health {
            part(format!("H{}", h.as_str()).as_bytes());
        }
        if let Some(d) = self.filter.key_older_than_days {
            part(format!("K{d}").as_bytes());
        }
        out
    }
}

pub struct ServiceKeys {
    deriver: Arc<dyn KeyDeriver>,
    derived: tokio::sync::OnceCell<Derived>,
    token_ttl: Duration,
    rng: SystemRandom,
}

fn bad_token() -> Error {
    Error::validation(
        "next_token",
        "is not a token this API issued for this caller and query (a token works only for \
         the caller and the label and limit it was issued with): start from the first page",
    )
}

impl ServiceKeys {
    pub fn new(deriver: Arc<dyn KeyDeriver>, token_ttl: Duration) -> Self {
        ServiceKeys {
            deriver,
            derived: tokio::sync::OnceCell::new(),
            token_ttl,
            rng: SystemRandom::new(),
        }
    }

    /// The keys, derived on first use. A failure (KMS unreachable) is not cached: the
    /// next request tries again.
    async fn derived(&self) -> Result<&Derived> {
        self.derived
            .get_or_try_init(|| async {
                let root = self.deriver.derive(ROOT_LABEL).await?;
                let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, root.expose_secret());
                let sub = |label: &str| ring::hmac::sign(&root, label.as_bytes());
                let token = UnboundKey::new(&AES_256_GCM, sub("page-token").as_ref())
                    .map_err(|_| Error::internal("page token key of the wrong length"))?;
                Ok(Derived {
                    token: LessSafeKey::new(token),
                    fingerprint: ring::hmac::Key::new(
                        ring::hmac::HMAC_SHA256,
                        sub("idempotency-fingerprint").as_ref(),
                    ),
                })
            })
            .await
    }

    /// `h1:<hex>`: the keyed fingerprint of a request body, given its SHA-256.
    pub async fn fingerprint(&self, body_sha256: &[u8; 32]) -> Result<String> {
        let tag = ring::hmac::sign(&self.derived().await?.fingerprint, body_sha256);
        Ok(format!("h1:{}", hex(tag.as_ref())))
    }

    /// The token of a position, for this caller and query, valid for the token TTL.
    pub async fn seal(
        &self,
        position: &ListPosition,
        binding: &TokenBinding<'_>,
    ) -> Result<String> {
        self.seal_at(position, binding, now_secs()).await
    }

    async fn seal_at(
        &self,
        position: &ListPosition,
        binding: &TokenBinding<'_>,
        now: u64,
    ) -> Result<String> {
        let key = &self.derived().await?.token;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Error::internal("no randomness for a page token nonce"))?;
        let expires = now.saturating_add(self.token_ttl.as_secs());
        let mut data = expires.to_be_bytes().to_vec();
        data.extend_from_slice(
            format!("{}#{}", position.name_key, position.id.as_str()).as_bytes(),
        );
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(binding.aad()),
            &mut data,
        )
        .map_err(|_| Error::internal("sealing a page token"))?;
        let mut token = vec![TOKEN_VERSION];
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&data);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
    }

    /// The position a token holds, if this API issued it for this caller and query and
    /// it has not expired; a `400` naming `next_token` otherwise.
    pub async fn open(&self, token: &str, binding: &TokenBinding<'_>) -> Result<ListPosition> {
        self.open_at(token, binding, now_secs()).await
    }

    async fn open_at(
        &self,
        token: &str,
        binding: &TokenBinding<'_>,
        now: u64,
    ) -> Result<ListPosition> {
        // Far longer than any token this API issues: nothing bigger is decoded.
        if token.len() > 512 {
            return Err(bad_token());
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad_token())?;
        let (version, rest) = raw.split_first().ok_or_else(bad_token)?;
        if *version != TOKEN_VERSION || rest.len() < NONCE_LEN + 8 + AES_256_GCM.tag_len() {
            return Err(bad_token());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad_token())?;
        let mut data = sealed.to_vec();
        let key = &self.derived().await?.token;
        let plain = key
            .open_in_place(nonce, Aad::from(binding.aad()), &mut data)
            .map_err(|_| bad_token())?;
        let (expires, position) = plain.split_at(8);
        let expires = u64::from_be_bytes(expires.try_into().map_err(|_| bad_token())?);
        if now > expires {
            return Err(Error::validation(
                "next_token",
                format!(
                    "has expired (page tokens last {} minutes): start from the first page",
                    self.token_ttl.as_secs() / 60
                ),
            ));
        }
        // Authentic, so well formed; checked anyway before it reaches a query.
        let position = std::str::from_utf8(position).map_err(|_| bad_token())?;
        let (name_key, id) = position.rsplit_once('#').ok_or_else(bad_token)?;
        IntegrationName::parse(name_key).map_err(|_| bad_token())?;
        Ok(ListPosition {
            name_key: name_key.to_owned(),
            id: IntegrationId::parse(id).map_err(|_| bad_token())?,
        })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::fakes::FixedKeys;

    fn keys() -> ServiceKeys {
        ServiceKeys::new(Arc::new(FixedKeys::default()), Duration::from_secs(600))
    }

    fn position() -> ListPosition {
        ListPosition {
            name_key: "aws-prod".into(),
            id: IntegrationId::parse("01J00000000000000000000000").unwrap(),
        }
    }

    #[tokio::test]
    async fn a_token_opens_only_for_its_caller_and_query_and_reveals_nothing() {
        let k = keys();
        let ann = Caller::user("ann", vec![]);
        let bob = Caller::user("bob", vec![]);
        let admin_ann = Caller::admin("ann", vec![]);
        static NONE: crate::ports::RecordFilter = crate::ports::RecordFilter {
            health: None,
            key_older_than_days: None,
        };
        let b = |c, label, limit| TokenBinding {
            filter: &NONE,
            caller: c,
            label,
            limit,
        };
        let t = k
            .seal(&position(), &b(&ann, Some("prod"), 5))
            .await
            .unwrap();
        assert_eq!(
            k.open(&t, &b(&ann, Some("prod"), 5)).await.unwrap(),
            position()
        );
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&t)
            .unwrap();
        for secret in ["aws-prod", "01J00000000000000000000000", "ann", "prod"] {
            let hit = decoded
                .windows(secret.len())
                .any(|w| w == secret.as_bytes());
            assert!(!hit, "the token shows {secret}");
        }
        for other in [
            b(&bob, Some("prod"), 5),
            b(&admin_ann, Some("prod"), 5),
            b(&ann, None, 5),
            b(&ann, Some("prod2"), 5),
            b(&ann, Some("prod"), 6),
        ] {
            let e = k.open(&t, &other).await.unwrap_err();
            assert!(format!("{e:?}").contains("next_token"), "{e:?}");
        }
        // Two tokens of one position differ (random nonces): no token is guessable
        // from another.
        let again = k
            .seal(&position(), &b(&ann, Some("prod"), 5))
            .await
            .unwrap();
        assert_ne!(t, again);
    }

    #[tokio::test]
    async fn a_filtered_listings_token_opens_only_with_the_same_filters() {
        use crate::domain::HealthStatus;
        use crate::ports::RecordFilter;
        let k = keys();
        let ann = Caller::user("ann", vec![]);
        let filters = [
            RecordFilter::default(),
            RecordFilter {
                health: Some(HealthStatus::Failing),
                key_older_than_days: None,
            },
            RecordFilter {
                health: Some(HealthStatus::Ok),
                key_older_than_days: None,
            },
            RecordFilter {
                health: None,
                key_older_than_days: Some(90),
            },
            RecordFilter {
                health: None,
                key_older_than_days: Some(9),
            },
            RecordFilter {
                health: Some(HealthStatus::Failing),
                key_older_than_days: Some(90),
            },
        ];
        let b = |filter| TokenBinding {
            filter,
            caller: &ann,
            label: None,
            limit: 5,
        };
        for (i, sealed_with) in filters.iter().enumerate() {
            let t = k.seal(&position(), &b(sealed_with)).await.unwrap();
            for (j, opened_with) in filters.iter().enumerate() {
                let opened = k.open(&t, &b(opened_with)).await;
                assert_eq!(opened.is_ok(), i == j, "sealed {i}, opened {j}");
            }
        }
    }

    #[tokio::test]
    async fn altered_forged_and_expired_tokens_are_refused() {
        let k = keys();
        let ann = Caller::user("ann", vec![]);
        let b = TokenBinding {
            filter: &Default::default(),
            caller: &ann,
            label: None,
            limit: 2,
        };
        let t = k.seal_at(&position(), &b, 1_000).await.unwrap();
        assert!(k.open_at(&t, &b, 1_000 + 600).await.is_ok());
        let expired = format!("{:?}", k.open_at(&t, &b, 1_000 + 601).await.unwrap_err());
        assert!(expired.contains("expired"), "{expired}");
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&t)
            .unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
            assert!(k.open_at(&altered, &b, 1_000).await.is_err(), "byte {i}");
            raw[i] ^= 1;
        }
        // The old layout's readable tokens, garbage, and another key's tokens.
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"v":1,"id":"01J00000000000000000000000","name_key":"a"}"#);
        for forged in [old.as_str(), "", "x", &"A".repeat(600)] {
            assert!(k.open_at(forged, &b, 1_000).await.is_err(), "{forged}");
        }
        let other = ServiceKeys::new(Arc::new(FixedKeys([7; 32])), Duration::from_secs(600));
        let theirs = other.seal_at(&position(), &b, 1_000).await.unwrap();
        assert!(k.open_at(&theirs, &b, 1_000).await.is_err());
    }

    #[tokio::test]
    async fn fingerprints_are_keyed() {
        let digest = [3u8; 32];
        let a = keys().fingerprint(&digest).await.unwrap();
        assert_eq!(a, keys().fingerprint(&digest).await.unwrap());
        assert!(a.starts_with("h1:") && a.len() == 3 + 64);
        let other = ServiceKeys::new(Arc::new(FixedKeys([7; 32])), DEFAULT_TOKEN_TTL);
        assert_ne!(a, other.fingerprint(&digest).await.unwrap());
        assert_ne!(a[3..], hex(&digest));
    }
}
