//! The local stand-in for API Gateway's HTTP API JWT authorizer. It checks a bearer token
//! the way the service's developer guide says the real one does:
//!
//! - the header's `kid` names a key of the issuer's JWKS (`jwks_uri` of
//!   `<issuer>/.well-known/openid-configuration`), and only RSA signatures count (RS256,
//!   RS384, RS512: `none`, HMAC, ECDSA and RSA-PSS are refused before any key is used);
//! - the signature verifies with that key;
//! - `iss` equals the configured issuer; `aud` holds one of the configured audiences, or,
//!   only when the token has no `aud`, `client_id` is one of them;
//! - `exp` is after now; `nbf` and `iat`, when present, are not after now;
//! - with required scopes configured, `scp` (or else `scope`) holds one of them.
//!
//! Clock skew: [`DEFAULT_CLOCK_SKEW`] (5 s; at most [`MAX_CLOCK_SKEW`]) either way, so a
//! token minted a moment ago by a provider whose clock is a little ahead is not refused,
//! while an expired one stops working within seconds. API Gateway documents no leeway.
//!
//! Keys are cached for `key_ttl` (API Gateway keeps them up to two hours; the local default
//! is 5 minutes) and refetched early when a token names a key the cache does not have, if
//! the last read is `refetch_interval` old: a key rotated in works within that interval,
//! and a removed key stops working at the next read. Discovery happens on first use (and
//! is retried on every request while it fails), so the authorizer may be built before its
//! provider is up.
//!
//! What passes on to the function is what API Gateway puts in
//! `requestContext.authorizer.jwt` (see [`JwtContext`]).

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long fetched keys are trusted before the JWKS is read again.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(300);
/// How old the last JWKS read must be before a token naming an unknown key causes another:
/// random `kid`s cannot make the authorizer hammer its provider.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Leeway on `exp`, `nbf` and `iat`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5);
/// The most leeway a configuration may ask for.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// One discovery or JWKS request: a provider that hangs must not hold requests for long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the authorizer checks tokens against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// Compared byte for byte with the token's `iss`; also where discovery starts.
    pub issuer: String,
    /// The token's `aud` (or, without `aud`, its `client_id`) must be one of these.
    pub audiences: Vec<String>,
    /// When not empty, the token's scopes must include one of these (a route's
    /// `authorizationScopes`; here the same for every route).
    pub scopes: Vec<String>,
    pub key_ttl: Duration,
    pub refetch_interval: Duration,
    pub clock_skew: Duration,
}

impl JwtConfig {
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            scopes: Vec::new(),
            key_ttl: DEFAULT_KEY_TTL,
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            clock_skew: DEFAULT_CLOCK_SKEW,
        }
    }
}

/// What API Gateway hands the function in `requestContext.authorizer.jwt`: every claim as
/// text (numbers and booleans as their text, arrays as `[a b c]`, objects as JSON text,
/// null claims left out) and the token's scopes (`scp`, or else the words of `scope`), null
/// when it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtContext {
    pub claims: BTreeMap<String, String>,
    pub scopes: Option<Vec<String>>,
}

impl JwtContext {
    /// From a verified token's claims.
    pub fn from_claims(claims: &Map<String, Value>) -> Self {
        let text = claims
            .iter()
            .filter_map(|(k, v)| claim_text(v).map(|t| (k.clone(), t)))
            .collect();
        Self {
            claims: text,
            scopes: token_scopes(claims),
        }
    }

    /// The `jwt` block of the event's authorizer.
    pub fn to_json(&self) -> Value {
        json!({ "claims": self.claims, "scopes": self.scopes })
    }
}

/// A claim as API Gateway renders it; `None` for null (left out).
pub fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let words: Vec<String> = items
                .iter()
                .map(|i| claim_text(i).unwrap_or_else(|| "null".into()))
                .collect();
            Some(format!("[{}]", words.join(" ")))
        }
        Value::Object(_) => Some(v.to_string()),
    }
}

/// `scp` wins over `scope`; either may be a space-separated string or an array.
fn token_scopes(claims: &Map<String, Value>) -> Option<Vec<String>> {
    let raw = claims
        .get("scp")
        .filter(|v| !v.is_null())
        .or_else(|| claims.get("scope").filter(|v| !v.is_null()))?;
    let scopes = match raw {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Some(scopes)
}

/// Why a request was refused. Never holds the token; attacker-chosen text (`alg`, `kid`,
/// `iss`) is shortened and printed escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No Authorization header.
    NoToken,
    /// The header holds no token (`Bearer` and nothing, another scheme, not a JWT).
    NotBearer,
    /// Not a signed JWT in compact form, or its parts do not decode.
    Malformed(String),
    /// The header's `alg` is not RS256, RS384 or RS512.
    Algorithm(String),
    /// The header names no key.
    NoKeyId,
    /// The JWKS (as last fetched) has no key of this id.
    UnknownKeyId(String),
    /// The JWKS says the key is for another algorithm than the token's.
    KeyAlgorithm {
        key: String,
        token: String,
    },
    /// Discovery or the JWKS could not be read, and no fresh keys are cached.
    KeysUnavailable(String),
    Signature,
    Issuer(Option<String>),
    Audience,
    /// A claim that must be there is missing or not of its type.
    Claim(String),
    Expired,
    NotYetValid,
    IssuedInFuture,
    Scope,
}

/// Attacker-chosen text, bounded and escaped for a log line.
fn shown(s: &str) -> String {
    let short: String = s.chars().take(64).collect();
    format!("{short:?}")
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::NoToken => write!(f, "no Authorization header"),
            Rejection::NotBearer => write!(f, "the Authorization header holds no bearer JWT"),
            Rejection::Malformed(why) => write!(f, "malformed token: {why}"),
            Rejection::Algorithm(alg) => {
                write!(f, "algorithm {alg} refused (RS256, RS384, RS512 only)")
            }
            Rejection::NoKeyId => write!(f, "the token's header has no kid"),
            Rejection::UnknownKeyId(kid) => write!(f, "no key {kid} in the issuer's JWKS"),
            Rejection::KeyAlgorithm { key, token } => {
                write!(f, "key is for {key}, the token is signed with {token}")
            }
            Rejection::KeysUnavailable(why) => write!(f, "signing keys unavailable: {why}"),
            Rejection::Signature => write!(f, "signature does not verify"),
            Rejection::Issuer(Some(iss)) => write!(f, "issuer {iss} is not the configured one"),
            Rejection::Issuer(None) => write!(f, "no iss claim"),
            Rejection::Audience => write!(
                f,
                "neither aud nor (without aud) client_id names a configured audience"
            ),
            Rejection::Claim(why) => write!(f, "claim: {why}"),
            Rejection::Expired => write!(f, "token expired (exp)"),
            Rejection::NotYetValid => write!(f, "token not valid yet (nbf)"),
            Rejection::IssuedInFuture => write!(f, "token issued in the future (iat)"),
            Rejection::Scope => write!(f, "token has none of the required scopes"),
        }
    }
}

struct Key {
    decoding: DecodingKey,
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeyCache {
    jwks_uri: Option<String>,
    keys: HashMap<String, Arc<Key>>,
    /// The last JWKS read that succeeded: keys are trusted `key_ttl` from then.
    fetched_at: Option<Instant>,
    /// The last attempt, successful or not: the unknown-kid refetch waits on it.
    attempted_at: Option<Instant>,
    fetches: u64,
}

pub struct JwtAuthorizer {
    config: JwtConfig,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    /// One fetch at a time; requests that wait reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn rs_algorithm(alg: &str) -> Option<Algorithm> {
    match alg {
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        _ => None,
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A NumericDate claim: absent (or null), a number, or an error.
fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Rejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Rejection::Claim(format!("{name} is not a number"))),
    }
}

/// The token of an Authorization header: `Bearer <jwt>` (the scheme in any case), or a bare
/// JWT, which API Gateway's JWT authorizer accepts as well (its troubleshooting guide
/// sends `Authorization: <token>`).
fn bearer_token(authorization: Option<&str>) -> Result<&str, Rejection> {
    let value = authorization.ok_or(Rejection::NoToken)?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return Err(Rejection::NotBearer),
        None => value,
    };
    let jwt_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    if token.is_empty() || token.eq_ignore_ascii_case("bearer") || !token.chars().all(jwt_chars) {
        return Err(Rejection::NotBearer);
    }
    Ok(token)
}

/// The header's algorithm and key id, read before any key is touched.
fn token_header(token: &str) -> Result<(Algorithm, String), Rejection> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(Rejection::Malformed(format!(
            "{} parts, a signed JWT has 3",
            parts.len()
        )));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|e| Rejection::Malformed(format!("header is not base64url: {e}")))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|e| Rejection::Malformed(format!("header is not a JSON object: {e}")))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = rs_algorithm(alg).ok_or_else(|| Rejection::Algorithm(shown(alg)))?;
    // RFC 7515: a recipient must refuse extensions it does not understand; this one
    // understands none.
    if header.contains_key("crit") {
        return Err(Rejection::Malformed("critical header extensions".into()));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(Rejection::NoKeyId)?;
    Ok((alg, kid.to_owned()))
}

/// The usable signing keys of a JWKS: RSA, for signatures, with a kid and (if it names
/// one) an RS algorithm. Others are skipped, as a JWKS may hold keys for other uses.
fn parse_jwks(jwks: &Value) -> Result<HashMap<String, Arc<Key>>, String> {
    let list = jwks["keys"]
        .as_array()
        .ok_or("the JWKS has no `keys` array")?;
    let mut keys = HashMap::new();
    for jwk in list {
        let kid = jwk["kid"].as_str();
        let skip = |why: &str| tracing::debug!(kid, why, "JWKS key skipped");
        let Some(kid) = kid else {
            skip("no kid");
            continue;
        };
        if jwk["kty"] != "RSA" {
            skip("not an RSA key");
            continue;
        }
        if !matches!(jwk.get("use"), None | Some(Value::Null)) && jwk["use"] != "sig" {
            skip("not a signing key");
            continue;
        }
        let alg = match jwk.get("alg").and_then(Value::as_str) {
            None => None,
            Some(a) => match rs_algorithm(a) {
                Some(alg) => Some(alg),
                None => {
                    skip("for an algorithm other than RS256/384/512");
                    continue;
                }
            },
        };
        let (Some(n), Some(e)) = (jwk["n"].as_str(), jwk["e"].as_str()) else {
            skip("no n or e");
            continue;
        };
        let decoding = match DecodingKey::from_rsa_components(n, e) {
            Ok(k) => k,
            Err(_) => {
                skip("n or e is not base64url");
                continue;
            }
        };
        if keys.contains_key(kid) {
            skip("duplicate kid (the first one is used)");
            continue;
        }
        keys.insert(kid.to_owned(), Arc::new(Key { decoding, alg }));
    }
    Ok(keys)
}

impl JwtAuthorizer {
    pub fn new(config: JwtConfig) -> Result<Self, String> {
        if config.issuer.trim().is_empty() {
            return Err("the JWT issuer is empty".into());
        }
        if config.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err("no JWT audience configured".into());
        }
        if config.clock_skew > MAX_CLOCK_SKEW {
            return Err(format!(
                "clock skew {:?} is over the most allowed, {MAX_CLOCK_SKEW:?}",
                config.clock_skew
            ));
        }
        // The provider is on this machine: no proxy from the environment in between.
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            config,
            http,
            cache: RwLock::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// How many times the JWKS has been read successfully.
    pub fn jwks_fetches(&self) -> u64 {
        self.read().fetches
    }

    /// Discovers and reads the keys now (e.g. at start, in the background), returning how
    /// many usable keys the JWKS has.
    pub async fn prefetch(&self) -> Result<usize, Rejection> {
        let _one = self.fetching.lock().await;
        self.refresh().await
    }

    /// Checks the value of an Authorization header; on success, what the function gets.
    pub async fn authorize(&self, authorization: Option<&str>) -> Result<JwtContext, Rejection> {
        let token = bearer_token(authorization)?;
        let (alg, kid) = token_header(token)?;
        let key = self.key(&kid).await?;
        if let Some(key_alg) = key.alg.filter(|a| *a != alg) {
            return Err(Rejection::KeyAlgorithm {
                key: format!("{key_alg:?}"),
                token: format!("{alg:?}"),
            });
        }
        // The library checks the signature (with exactly the header's RS algorithm);
        // every claim is checked below, by API Gateway's rules rather than the library's.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::Signature,
                _ => Rejection::Malformed(e.to_string()),
            })?;
        self.check_claims(&data.claims, now_seconds())?;
        Ok(JwtContext::from_claims(&data.claims))
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: f64) -> Result<(), Rejection> {
        let cfg = &self.config;
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if iss == cfg.issuer => {}
            Some(iss) => return Err(Rejection::Issuer(Some(shown(iss)))),
            None => return Err(Rejection::Issuer(None)),
        }
        let configured = |a: &str| cfg.audiences.iter().any(|c| c == a);
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => configured(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(configured),
            // Only a token without `aud` is judged by its `client_id`.
            None | Some(Value::Null) => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(configured),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(Rejection::Audience);
        }
        let skew = cfg.clock_skew.as_secs_f64();
        let exp = numeric(claims, "exp")?.ok_or_else(|| Rejection::Claim("no exp".into()))?;
        if exp + skew <= now {
            return Err(Rejection::Expired);
        }
        if numeric(claims, "nbf")?.is_some_and(|nbf| nbf > now + skew) {
            return Err(Rejection::NotYetValid);
        }
        if numeric(claims, "iat")?.is_some_and(|iat| iat > now + skew) {
            return Err(Rejection::IssuedInFuture);
        }
        if !cfg.scopes.is_empty() {
            let has = token_scopes(claims).unwrap_or_default();
            if !has.iter().any(|s| cfg.scopes.contains(s)) {
                return Err(Rejection::Scope);
            }
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyCache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached key, if the cache is fresh and has it; and whether it is fresh.
    fn cached(&self, kid: &str) -> (Option<Arc<Key>>, bool) {
        let cache = self.read();
        let fresh = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.config.key_ttl);
        let key = if fresh {
            cache.keys.get(kid).cloned()
        } else {
            None
        };
        (key, fresh)
    }

    async fn key(&self, kid: &str) -> Result<Arc<Key>, Rejection> {
        if let (Some(key), _) = self.cached(kid) {
            return Ok(key);
        }
        let _one = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let (key, fresh) = self.cached(kid);
        if let Some(key) = key {
            return Ok(key);
        }
        let unknown = || Rejection::UnknownKeyId(shown(kid));
        if fresh {
            let recent = self
                .read()
                .attempted_at
                .is_some_and(|t| t.elapsed() < self.config.refetch_interval);
            if recent {
                return Err(unknown());
            }
            tracing::debug!(kid = shown(kid), "unknown key id: reading the JWKS again");
        }
        self.refresh().await?;
        self.cached(kid).0.ok_or_else(unknown)
    }

    /// Reads the JWKS (discovering where it is first, if need be) and replaces the cache.
    /// The caller holds `fetching`.
    async fn refresh(&self) -> Result<usize, Rejection> {
        self.write().attempted_at = Some(Instant::now());
        let known_uri = self.read().jwks_uri.clone();
        let uri = match known_uri {
            Some(uri) => uri,
            None => self.discover().await?,
        };
        let jwks = match self.get_json(&uri).await {
            Ok(jwks) => jwks,
            Err(e) => {
                // Discover again next time: the provider may have moved its keys.
                self.write().jwks_uri = None;
                tracing::warn!(jwks_uri = %uri, error = %e, "reading the JWKS failed");
                return Err(Rejection::KeysUnavailable(e));
            }
        };
        let keys = parse_jwks(&jwks).map_err(|e| {
            tracing::warn!(jwks_uri = %uri, error = %e, "the JWKS is unusable");
            Rejection::KeysUnavailable(e)
        })?;
        let count = keys.len();
        let mut cache = self.write();
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        cache.fetches += 1;
        tracing::debug!(jwks_uri = %uri, keys = count, "JWKS read");
        Ok(count)
    }

    async fn discover(&self) -> Result<String, Rejection> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url).await.map_err(|e| {
            tracing::warn!(%url, error = %e, "OpenID discovery failed");
            Rejection::KeysUnavailable(e)
        })?;
        if doc["issuer"].as_str() != Some(self.config.issuer.as_str()) {
            // OpenID discovery requires them equal; tokens will carry the provider's.
            tracing::warn!(
                configured = %self.config.issuer,
                provider = %doc["issuer"],
                "the provider names another issuer than the configured one"
            );
        }
        let uri = doc["jwks_uri"].as_str().ok_or_else(|| {
            tracing::warn!(%url, "the discovery document has no jwks_uri");
            Rejection::KeysUnavailable(format!("no jwks_uri in {url}"))
        })?;
        self.write().jwks_uri = Some(uri.to_owned());
        Ok(uri.to_owned())
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("GET {url}: {status}"));
        }
        resp.json::<Value>()
            .await
            .map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}
