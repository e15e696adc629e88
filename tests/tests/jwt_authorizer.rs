//! The local gateway's JWT authorizer, held to what API Gateway's HTTP API JWT authorizer
//! documents: key by `kid` from the issuer's discovered JWKS, RSA signatures only, `iss`,
//! `aud` (or `client_id` only without `aud`), `exp`, `nbf`, `iat`, scopes; keys cached and
//! refetched when rotated. No AWS emulator: the issuer (discovery document and JWKS) is
//! served in this process, tokens are signed with the fixture keys in fixtures/jwt/, and
//! the gateway's function is a stand-in Lambda Invoke API that records what reaches it.
//!
//! Each refusal is checked for its reason, so a token refused for another reason than the
//! one a test is about fails that test.

use axum::routing::get;
use axum::Json;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use local_harness::gateway::Gateway;
use local_harness::invoke::{Invoker, Naming};
use local_harness::jwt::{JwtAuthorizer, JwtConfig, JwtContext, Rejection};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AUDIENCE: &str = "urn:test:api";
const OTHER_AUDIENCE: &str = "urn:test:second-api";

// ---- keys and tokens ---------------------------------------------------------------

struct TestKey {
    kid: &'static str,
    enc: EncodingKey,
    /// The public half as the issuer publishes it.
    jwk: Value,
}

fn test_key(pem: &[u8], kid: &'static str) -> TestKey {
    let enc = EncodingKey::from_rsa_pem(pem).expect("fixture key");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    TestKey { kid, enc, jwk }
}

fn key_a() -> TestKey {
    test_key(include_bytes!("fixtures/jwt/a.pem"), "key-a")
}

fn key_b() -> TestKey {
    test_key(include_bytes!("fixtures/jwt/b.pem"), "key-b")
}

/// A key the issuer never published.
fn forger() -> TestKey {
    test_key(include_bytes!("fixtures/jwt/forger.pem"), "forger")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a token the authorizer must accept, with every kind of JSON value.
fn claims(issuer: &Issuer) -> Value {
    let now = now();
    json!({
        "iss": issuer.url,
        "sub": "local-developer",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now - 5,
        "nbf": now - 5,
        "scope": "integrations openid",
        "groups": ["team-a", "team-b"],
        "email_verified": true,
        "auth_time": 1.5,
        "nickname": null,
        "address": {"country": "JP"},
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn without(mut claims: Value, names: &[&str]) -> Value {
    for n in names {
        claims.as_object_mut().unwrap().remove(*n);
    }
    claims
}

fn sign_with(key: &TestKey, kid: &str, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.enc).unwrap()
}

fn sign(key: &TestKey, claims: &Value) -> String {
    sign_with(key, key.kid, Algorithm::RS256, claims)
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token assembled by hand: whatever header, payload and signature.
fn hand_built(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// `token`'s signature under another header (same payload).
fn reheadered(token: &str, header: &Value) -> String {
    let mut parts = token.split('.');
    let (_, payload, sig) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    format!("{}.{payload}.{sig}", b64(header.to_string().as_bytes()))
}

// ---- the issuer ----------------------------------------------------------------------

/// An OpenID provider's discovery document and JWKS on a loopback port.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_reads: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, keys)
    }

    fn serve(listener: tokio::net::TcpListener, keys: &[&TestKey]) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Keys the authorizer must pass over: an EC key and an RSA encryption key.
        let mut published = vec![
            json!({"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": "AA", "y": "AA", "use": "sig"}),
            json!({"kty": "RSA", "kid": "enc-key", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        ];
        published.extend(keys.iter().map(|k| k.jwk.clone()));
        let keys = Arc::new(Mutex::new(published));
        let jwks_reads = Arc::new(AtomicUsize::new(0));
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/jwks"),
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let (k, reads) = (keys.clone(), jwks_reads.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let doc = discovery.clone();
                    async move { Json(doc) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    reads.fetch_add(1, Ordering::SeqCst);
                    let keys = k.lock().unwrap().clone();
                    async move { Json(json!({ "keys": keys })) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Issuer {
            url,
            keys,
            jwks_reads,
        }
    }

    fn publish(&self, key: &TestKey) {
        self.keys.lock().unwrap().push(key.jwk.clone());
    }

    fn withdraw(&self, kid: &str) {
        self.keys.lock().unwrap().retain(|k| k["kid"] != kid);
    }

    fn reads(&self) -> usize {
        self.jwks_reads.load(Ordering::SeqCst)
    }

    fn config(&self) -> JwtConfig {
        JwtConfig::new(
            self.url.clone(),
            vec![AUDIENCE.to_owned(), OTHER_AUDIENCE.to_owned()],
        )
    }

    fn authorizer(&self) -> JwtAuthorizer {
        JwtAuthorizer::new(self.config()).unwrap()
    }
}

async fn check(auth: &JwtAuthorizer, token: &str) -> Result<JwtContext, Rejection> {
    auth.authorize(Some(&format!("Bearer {token}"))).await
}

#[track_caller]
fn refused(result: Result<JwtContext, Rejection>) -> Rejection {
    match result {
        Ok(ctx) => panic!("accepted, claims {:?}", ctx.claims),
        Err(r) => r,
    }
}

// ---- what passes, and what the function gets -------------------------------------------

#[tokio::test]
async fn a_valid_token_passes_with_its_claims_as_api_gateway_renders_them() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    // RS384 and RS512 are RSA too; a key published without `alg` serves them.
    let b = key_b();
    let mut jwk = b.jwk.clone();
    jwk.as_object_mut().unwrap().remove("alg");
    issuer.keys.lock().unwrap().push(jwk);
    let auth = issuer.authorizer();
    let claims = claims(&issuer);
    let ctx = check(&auth, &sign(&a, &claims)).await.expect("accepted");

    assert_eq!(ctx.claims["sub"], "local-developer");
    assert_eq!(ctx.claims["iss"], issuer.url);
    assert_eq!(ctx.claims["aud"], AUDIENCE);
    // Arrays as `[a b]`, numbers and booleans as their text, objects as JSON, no nulls.
    assert_eq!(ctx.claims["groups"], "[team-a team-b]");
    assert_eq!(
        ctx.claims["exp"],
        claims["exp"].as_i64().unwrap().to_string()
    );
    assert_eq!(ctx.claims["auth_time"], "1.5");
    assert_eq!(ctx.claims["email_verified"], "true");
    assert_eq!(ctx.claims["address"], r#"{"country":"JP"}"#);
    assert!(!ctx.claims.contains_key("nickname"));
    assert_eq!(ctx.claims["scope"], "integrations openid");
    assert_eq!(
        ctx.scopes,
        Some(vec!["integrations".to_owned(), "openid".to_owned()])
    );
    // The functions read the groups back from that form.
    let groups: Vec<String> = integrations_core::http::access::parse_groups(&ctx.claims["groups"])
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(groups, ["team-a", "team-b"]);

    for alg in [Algorithm::RS384, Algorithm::RS512] {
        check(&auth, &sign_with(&b, b.kid, alg, &claims))
            .await
            .unwrap_or_else(|e| panic!("{alg:?} refused: {e}"));
    }
}

#[tokio::test]
async fn the_authorization_header_must_hold_a_bearer_jwt() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let token = sign(&a, &claims(&issuer));

    assert_eq!(refused(auth.authorize(None).await), Rejection::NoToken);
    for garbled in [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNzd29yZA==",
        &format!("Token {token}"),
        &format!("Bearer {token} trailing"),
        "Bearer not a token",
    ] {
        assert_eq!(
            refused(auth.authorize(Some(garbled)).await),
            Rejection::NotBearer,
            "{garbled:?}"
        );
    }
    for malformed in [
        "Bearer abc".to_owned(),
        "Bearer a.b.c".to_owned(),
        format!("Bearer {token}.extra.parts"),
        format!("Bearer {}", token.replacen('.', "", 1)),
    ] {
        assert!(
            matches!(
                refused(auth.authorize(Some(&malformed)).await),
                Rejection::Malformed(_)
            ),
            "{malformed:?}"
        );
    }
    let no_kid = reheadered(&token, &json!({"alg": "RS256", "typ": "JWT"}));
    assert_eq!(refused(check(&auth, &no_kid).await), Rejection::NoKeyId);

    // The scheme in any case, and a bare token, as API Gateway takes them.
    for ok in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        token.clone(),
    ] {
        auth.authorize(Some(&ok)).await.expect("accepted");
    }
}

// ---- signatures and algorithms -----------------------------------------------------------

#[tokio::test]
async fn a_forged_or_altered_signature_is_refused() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let claims = claims(&issuer);

    // Signed by another key under the issuer's key id.
    let forged = sign_with(&forger(), a.kid, Algorithm::RS256, &claims);
    assert_eq!(refused(check(&auth, &forged).await), Rejection::Signature);

    // The issuer's signature over other claims.
    let genuine = sign(&a, &claims);
    let admin = with(claims.clone(), json!({"groups": ["integrations-admins"]}));
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    parts[1] = b64(admin.to_string().as_bytes());
    assert_eq!(
        refused(check(&auth, &parts.join(".")).await),
        Rejection::Signature
    );
    check(&auth, &genuine)
        .await
        .expect("the genuine token passes");
}

#[tokio::test]
async fn only_rsa_algorithms_are_accepted() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let claims = claims(&issuer);
    let algorithm = |r: Rejection| match r {
        Rejection::Algorithm(alg) => alg,
        other => panic!("refused for another reason: {other}"),
    };

    let none = hand_built(
        &json!({"alg": "none", "kid": a.kid, "typ": "JWT"}),
        &claims,
        "",
    );
    assert_eq!(algorithm(refused(check(&auth, &none).await)), r#""none""#);
    let no_alg = hand_built(&json!({"kid": a.kid}), &claims, "");
    assert_eq!(algorithm(refused(check(&auth, &no_alg).await)), r#""""#);

    // Algorithm confusion: an HMAC keyed with the issuer's public key.
    let public_pem = include_bytes!("fixtures/jwt/a.pub.pem");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(a.kid.to_owned());
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(public_pem).unwrap(),
    )
    .unwrap();
    assert_eq!(algorithm(refused(check(&auth, &hs256).await)), r#""HS256""#);

    // A genuine RSA signature relabelled as another algorithm.
    let genuine = sign(&a, &claims);
    for alg in ["ES256", "PS256", "rs256", "HS512"] {
        let relabelled = reheadered(&genuine, &json!({"alg": alg, "kid": a.kid}));
        assert_eq!(
            algorithm(refused(check(&auth, &relabelled).await)),
            format!("{alg:?}")
        );
    }
    check(&auth, &genuine).await.expect("RS256 passes");
}

#[tokio::test]
async fn a_key_published_for_one_algorithm_verifies_no_other() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    assert_eq!(a.jwk["alg"], "RS256");
    let rs512 = sign_with(&a, a.kid, Algorithm::RS512, &claims(&issuer));
    assert!(matches!(
        refused(check(&auth, &rs512).await),
        Rejection::KeyAlgorithm { .. }
    ));
}

// ---- claims ----------------------------------------------------------------------------

#[tokio::test]
async fn the_issuer_must_be_the_configured_one() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let base = claims(&issuer);
    for iss in [
        json!("http://127.0.0.1:1"),
        json!(format!("{}/", issuer.url)),
        json!([issuer.url]),
    ] {
        let token = sign(&a, &with(base.clone(), json!({ "iss": iss })));
        assert!(
            matches!(refused(check(&auth, &token).await), Rejection::Issuer(_)),
            "{iss}"
        );
    }
    let token = sign(&a, &without(base, &["iss"]));
    assert_eq!(refused(check(&auth, &token).await), Rejection::Issuer(None));
}

#[tokio::test]
async fn the_audience_must_be_a_configured_one() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let base = claims(&issuer);
    for aud in [
        json!("urn:test:elsewhere"),
        json!(["urn:test:elsewhere"]),
        json!([]),
        json!(7),
    ] {
        let token = sign(&a, &with(base.clone(), json!({ "aud": aud })));
        assert_eq!(
            refused(check(&auth, &token).await),
            Rejection::Audience,
            "{aud}"
        );
    }
    for aud in [
        json!(OTHER_AUDIENCE),
        json!(["urn:test:elsewhere", AUDIENCE]),
    ] {
        let token = sign(&a, &with(base.clone(), json!({ "aud": aud })));
        check(&auth, &token).await.expect("a configured audience");
    }
}

#[tokio::test]
async fn client_id_counts_only_when_aud_is_absent() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let base = claims(&issuer);

    // `aud` present and wrong: a right `client_id` does not save it.
    let token = sign(
        &a,
        &with(
            base.clone(),
            json!({"aud": "urn:test:elsewhere", "client_id": AUDIENCE}),
        ),
    );
    assert_eq!(refused(check(&auth, &token).await), Rejection::Audience);

    // No `aud`: `client_id` decides.
    let no_aud = without(base, &["aud", "scope"]);
    let token = sign(&a, &with(no_aud.clone(), json!({"client_id": AUDIENCE})));
    let ctx = check(&auth, &token).await.expect("client_id accepted");
    assert_eq!(ctx.claims["client_id"], AUDIENCE);
    assert_eq!(ctx.scopes, None, "a token without scopes passes none on");
    let token = sign(
        &a,
        &with(no_aud.clone(), json!({"client_id": "some-other-client"})),
    );
    assert_eq!(refused(check(&auth, &token).await), Rejection::Audience);
    let token = sign(&a, &no_aud);
    assert_eq!(refused(check(&auth, &token).await), Rejection::Audience);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let base = claims(&issuer);
    let skew = auth.config().clock_skew.as_secs() as i64;
    for exp in [now() - 3600, now() - skew - 1] {
        let token = sign(&a, &with(base.clone(), json!({ "exp": exp })));
        assert_eq!(
            refused(check(&auth, &token).await),
            Rejection::Expired,
            "exp {exp}"
        );
    }
    for bad in [
        without(base.clone(), &["exp"]),
        with(base.clone(), json!({"exp": "soon"})),
    ] {
        assert!(matches!(
            refused(check(&auth, &sign(&a, &bad)).await),
            Rejection::Claim(_)
        ));
    }
    // Within the documented skew.
    let token = sign(&a, &with(base, json!({"exp": now() - 1})));
    check(&auth, &token).await.expect("within the clock skew");
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let base = claims(&issuer);
    let token = sign(&a, &with(base.clone(), json!({"nbf": now() + 600})));
    assert_eq!(refused(check(&auth, &token).await), Rejection::NotYetValid);
    let token = sign(&a, &with(base.clone(), json!({"nbf": now() + 1})));
    check(&auth, &token).await.expect("within the clock skew");
    let token = sign(&a, &without(base, &["nbf"]));
    check(&auth, &token).await.expect("nbf is optional");
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = issuer.authorizer();
    let base = claims(&issuer);
    let token = sign(&a, &with(base.clone(), json!({"iat": now() + 600})));
    assert_eq!(
        refused(check(&auth, &token).await),
        Rejection::IssuedInFuture
    );
    let token = sign(&a, &without(base, &["iat"]));
    check(&auth, &token).await.expect("iat is optional");
}

#[tokio::test]
async fn a_required_scope_must_be_in_the_token() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = JwtAuthorizer::new(JwtConfig {
        scopes: vec!["integrations:admin".into(), "integrations:write".into()],
        ..issuer.config()
    })
    .unwrap();
    let base = claims(&issuer);
    for refused_claims in [
        base.clone(), // scope "integrations openid"
        without(base.clone(), &["scope"]),
        with(base.clone(), json!({"scope": "integrations:adminx"})),
    ] {
        let token = sign(&a, &refused_claims);
        assert_eq!(refused(check(&auth, &token).await), Rejection::Scope);
    }
    for ok in [
        with(base.clone(), json!({"scope": "openid integrations:write"})),
        with(
            without(base, &["scope"]),
            json!({"scp": ["integrations:admin"]}),
        ),
    ] {
        check(&auth, &sign(&a, &ok))
            .await
            .expect("has a required scope");
    }
}

// ---- keys: discovery, cache, rotation ------------------------------------------------------

#[tokio::test]
async fn an_unknown_kid_is_refused_and_refetches_at_most_once_per_interval() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let auth = JwtAuthorizer::new(JwtConfig {
        refetch_interval: Duration::from_millis(300),
        ..issuer.config()
    })
    .unwrap();
    let claims = claims(&issuer);
    check(&auth, &sign(&a, &claims)).await.expect("accepted");
    assert_eq!(issuer.reads(), 1);
    check(&auth, &sign(&a, &claims)).await.expect("accepted");
    assert_eq!(issuer.reads(), 1, "keys come from the cache");

    let f = forger();
    let nobody = sign_with(&f, "nobody", Algorithm::RS256, &claims);
    assert_eq!(
        refused(check(&auth, &nobody).await),
        Rejection::UnknownKeyId(r#""nobody""#.into())
    );
    assert_eq!(issuer.reads(), 1, "no refetch right after a fetch");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        refused(check(&auth, &nobody).await),
        Rejection::UnknownKeyId(_)
    ));
    assert_eq!(issuer.reads(), 2, "an unknown kid reads the JWKS again");
    let nobody_else = sign_with(&f, "nobody-else", Algorithm::RS256, &claims);
    assert!(matches!(
        refused(check(&auth, &nobody_else).await),
        Rejection::UnknownKeyId(_)
    ));
    assert_eq!(issuer.reads(), 2, "but not twice within the interval");
    // Keys the issuer publishes for other uses are never used.
    for kid in ["ec-key", "enc-key"] {
        let token = sign_with(&a, kid, Algorithm::RS256, &claims);
        assert!(matches!(
            refused(check(&auth, &token).await),
            Rejection::UnknownKeyId(_)
        ));
    }
}

#[tokio::test]
async fn a_key_rotated_in_works_without_a_restart() {
    let (a, b) = (key_a(), key_b());
    let issuer = Issuer::start(&[&a]).await;
    let auth = JwtAuthorizer::new(JwtConfig {
        refetch_interval: Duration::from_millis(300),
        ..issuer.config()
    })
    .unwrap();
    let claims = claims(&issuer);
    check(&auth, &sign(&a, &claims)).await.expect("accepted");
    issuer.publish(&b);
    let token_b = sign(&b, &claims);
    // Right after a fetch, an unknown kid waits for the refetch interval...
    assert!(matches!(
        refused(check(&auth, &token_b).await),
        Rejection::UnknownKeyId(_)
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // ...then it reads the JWKS again and finds the new key.
    check(&auth, &token_b)
        .await
        .expect("the rotated-in key works");
    assert_eq!(issuer.reads(), 2);
    check(&auth, &sign(&a, &claims))
        .await
        .expect("the old key still works while published");
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_working_once_the_cache_expires() {
    let (a, b) = (key_a(), key_b());
    let issuer = Issuer::start(&[&a, &b]).await;
    let auth = JwtAuthorizer::new(JwtConfig {
        key_ttl: Duration::from_millis(600),
        ..issuer.config()
    })
    .unwrap();
    let claims = claims(&issuer);
    let token_a = sign(&a, &claims);
    check(&auth, &token_a).await.expect("accepted");
    issuer.withdraw(a.kid);
    check(&auth, &token_a)
        .await
        .expect("cached keys are trusted until the TTL");
    assert_eq!(issuer.reads(), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(matches!(
        refused(check(&auth, &token_a).await),
        Rejection::UnknownKeyId(_)
    ));
    assert_eq!(issuer.reads(), 2, "the expired cache was read again");
    check(&auth, &sign(&b, &claims))
        .await
        .expect("the key still published works");
}

#[tokio::test]
async fn the_provider_may_start_after_the_authorizer() {
    // A port that refuses connections (bound, not listening), later the issuer's.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let url = format!("http://{addr}");
    let auth = JwtAuthorizer::new(JwtConfig::new(url.clone(), vec![AUDIENCE.to_owned()])).unwrap();
    let a = key_a();
    let mut token_claims = json!({"iss": url, "aud": AUDIENCE, "sub": "s", "exp": now() + 600});
    let token = sign(&a, &token_claims);
    assert!(matches!(
        refused(check(&auth, &token).await),
        Rejection::KeysUnavailable(_)
    ));
    assert!(matches!(
        auth.prefetch().await,
        Err(Rejection::KeysUnavailable(_))
    ));

    drop(socket);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let issuer = Issuer::serve(listener, &[&a]);
    assert_eq!(issuer.url, url);
    token_claims["sub"] = json!("after-start");
    let ctx = check(&auth, &sign(&a, &token_claims))
        .await
        .expect("keys read on the next request");
    assert_eq!(ctx.claims["sub"], "after-start");
    assert_eq!(auth.prefetch().await, Ok(1));
}

// ---- through the gateway -------------------------------------------------------------------

/// A Lambda Invoke API that records every event it is given and answers 200.
struct FakeLambda {
    endpoint: String,
    events: Arc<Mutex<Vec<Value>>>,
}

impl FakeLambda {
    async fn start() -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let app = axum::Router::new().fallback(move |Json(event): Json<Value>| {
            seen.lock().unwrap().push(event);
            async move {
                Json(json!({
                    "statusCode": 200,
                    "headers": {"content-type": "application/json"},
                    "body": "{\"reached\":true}",
                }))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeLambda { endpoint, events }
    }

    fn invoker(&self) -> Arc<Invoker> {
        Arc::new(Invoker::LambdaApi {
            endpoint: self.endpoint.clone(),
            naming: Naming::Binary,
            client: reqwest::Client::new(),
        })
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }
}

fn auth_header(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

async fn call(gw: &Gateway, path: &str, headers: &HeaderMap) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = gw.handle(&Method::GET, path, "", headers, b"").await;
    (status, headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn the_gateway_hands_the_function_the_claims_api_gateway_would() {
    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let lambda = FakeLambda::start().await;
    let gw = Gateway::with_jwt(lambda.invoker(), issuer.authorizer());
    let claims = claims(&issuer);
    let token = sign(&a, &claims);

    let (status, _, body) = call(
        &gw,
        "/integrations/aws",
        &auth_header(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"reached": true})));
    let events = lambda.events();
    assert_eq!(events.len(), 1);
    let jwt = &events[0]["requestContext"]["authorizer"]["jwt"];
    let passed = jwt["claims"].as_object().expect("claims");
    assert!(passed.values().all(Value::is_string), "{passed:?}");
    assert_eq!(passed["sub"], "local-developer");
    assert_eq!(passed["groups"], "[team-a team-b]");
    assert_eq!(
        passed["exp"],
        claims["exp"].as_i64().unwrap().to_string().as_str()
    );
    assert_eq!(passed["email_verified"], "true");
    assert_eq!(jwt["scopes"], json!(["integrations", "openid"]));
    assert!(events[0]["requestContext"]["authorizer"]
        .get("iam")
        .is_none());

    // The setup page's public routes need no token and get no authorizer block.
    let (status, _, _) = call(&gw, "/integrations/aws/setup", &HeaderMap::new()).await;
    assert_eq!(status, StatusCode::OK);
    let events = lambda.events();
    assert_eq!(events.len(), 2);
    assert!(events[1]["requestContext"].get("authorizer").is_none());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_gateway_refuses_bad_tokens_before_the_function_and_logs_why_not_the_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    // This test's runtime runs on this thread only: everything it logs is captured.
    let _logs = tracing::subscriber::set_default(subscriber);

    let a = key_a();
    let issuer = Issuer::start(&[&a]).await;
    let lambda = FakeLambda::start().await;
    let gw = Gateway::with_jwt(lambda.invoker(), issuer.authorizer());
    let base = claims(&issuer);
    let expired = sign(&a, &with(base.clone(), json!({"exp": now() - 3600})));
    let forged = sign_with(&forger(), a.kid, Algorithm::RS256, &base);
    let wrong_audience = sign(&a, &with(base, json!({"aud": "urn:test:elsewhere"})));

    let cases = [
        (Some(format!("Bearer {expired}")), "token expired"),
        (
            Some(format!("Bearer {forged}")),
            "signature does not verify",
        ),
        (Some(format!("Bearer {wrong_audience}")), "audience"),
        (
            Some("Basic dXNlcjpwYXNzd29yZA==".to_owned()),
            "no bearer JWT",
        ),
        (None, "no Authorization header"),
    ];
    for (header, why) in &cases {
        let headers = header.as_deref().map(auth_header).unwrap_or_default();
        let (status, resp_headers, body) = call(&gw, "/integrations/aws", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(body, json!({"message": "Unauthorized"}));
        assert_eq!(resp_headers[http::header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(resp_headers[http::header::CONTENT_TYPE], "application/json");
        let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        assert!(
            logs.contains("authorizer refused the request") && logs.contains(why),
            "the reason ({why}) is logged: {logs}"
        );
    }
    assert!(lambda.events().is_empty(), "no function ran");

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    for token in [&expired, &forged, &wrong_audience] {
        let signature = token.rsplit('.').next().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        assert!(
            !logs.contains(signature.get(..20).unwrap()) && !logs.contains(payload),
            "a token reached the logs"
        );
    }
    assert!(!logs.contains("dXNlcjpwYXNzd29yZA"));
}

#[tokio::test]
async fn fixed_tokens_still_serve_the_in_process_suites() {
    let lambda = FakeLambda::start().await;
    let gw = Gateway::with_invoker(lambda.invoker(), "fixed".into(), "tester".into());
    let (status, _, _) = call(&gw, "/integrations/aws", &auth_header("Bearer fixed")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(
        &gw,
        "/integrations/aws",
        &auth_header("Bearer local-service-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&gw, "/integrations/aws", &auth_header("Bearer other")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let events = lambda.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["requestContext"]["authorizer"],
        json!({"jwt": {"claims": {
            "sub": "tester", "iss": "local-api", "cognito:groups": "[local-team]"
        }, "scopes": null}})
    );
    assert_eq!(
        events[1]["requestContext"]["authorizer"]["iam"]["userArn"],
        "arn:aws:iam::000000000000:role/local-platform-service"
    );
}
