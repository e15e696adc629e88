//! The setup page: the setup guide's form at `/integrations/aws/setup`, one self-contained
//! page (HTML, a small hand-written script and a style sheet, compiled into the binary)
//! that signs the user in with the platform's OpenID provider (authorization code + PKCE,
//! configured by `config.json`) and calls this API's routes with the user's access token.
//! The routes are public (a browser navigating to a page sends no token); they serve no
//! data.

use super::routes::PublicRoutes;
use http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, REFERRER_POLICY,
};
use http::StatusCode;
use lambda_http::{Body, Response};
use std::sync::LazyLock;

pub const ROUTES: PublicRoutes = &[
    ("GET /integrations/aws/setup", || {
        asset(HTML, "text/html; charset=utf-8")
    }),
    // API Gateway routes HEAD only where a route says so; a link checker or a monitor
    // asks HEAD first and should see the page's headers, not a 404.
    ("HEAD /integrations/aws/setup", || {
        head(asset(HTML, "text/html; charset=utf-8"))
    }),
    ("GET /integrations/aws/setup/app.js", || {
        asset(SCRIPT, "text/javascript; charset=utf-8")
    }),
    ("GET /integrations/aws/setup/app.css", || {
        asset(STYLE, "text/css; charset=utf-8")
    }),
    ("GET /integrations/aws/setup/config.json", || {
        asset(&CONFIG.json, "application/json")
    }),
];

const HTML: &str = include_str!("setup_page/index.html");
const SCRIPT: &str = include_str!("setup_page/app.js");
const STYLE: &str = include_str!("setup_page/app.css");

/// Where the page signs people in, from the function's environment (template.yaml's
/// `SetupPageOidc*` parameters): `SETUP_PAGE_OIDC_ISSUER`, `SETUP_PAGE_OIDC_CLIENT_ID`
/// (a public client: no secret), `SETUP_PAGE_OIDC_SCOPES` (default `openid profile`),
/// `SETUP_PAGE_OIDC_RESOURCE` (a resource indicator, for providers that need one to
/// issue a JWT for this API; empty for Cognito) and `SETUP_PAGE_OIDC_EXTRA_ORIGINS`
/// (origins the page must reach besides the issuer's, e.g. a Cognito domain whose
/// `/oauth2/token` is not on the issuer's host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageConfig {
    /// `config.json`'s body.
    json: String,
    /// The page's Content-Security-Policy: its own origin, plus the provider's.
    csp: String,
}

impl PageConfig {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self::new(
            var("SETUP_PAGE_OIDC_ISSUER").as_deref(),
            var("SETUP_PAGE_OIDC_CLIENT_ID").as_deref(),
            var("SETUP_PAGE_OIDC_SCOPES").as_deref(),
            var("SETUP_PAGE_OIDC_RESOURCE").as_deref(),
            var("SETUP_PAGE_OIDC_EXTRA_ORIGINS").as_deref(),
        )
    }

    /// A value that is not an http(s) URL is left out (and logged): the page then says
    /// sign-in is not configured, rather than sending people somewhere broken.
    pub fn new(
        issuer: Option<&str>,
        client_id: Option<&str>,
        scopes: Option<&str>,
        resource: Option<&str>,
        extra_origins: Option<&str>,
    ) -> Self {
        let issuer = issuer.and_then(|i| match origin(i) {
            Some(_) => Some(i.trim_end_matches('/')),
            None => {
                tracing::warn!(
                    issuer = i,
                    "SETUP_PAGE_OIDC_ISSUER is not an http(s) URL; sign-in is off"
                );
                None
            }
        });
        let client_id = client_id.filter(|c| {
            let ok = c.len() <= 256 && c.chars().all(|ch| ch.is_ascii_graphic());
            if !ok {
                tracing::warn!("SETUP_PAGE_OIDC_CLIENT_ID is not a client id; sign-in is off");
            }
            ok
        });
        let (issuer, client_id) = match (issuer, client_id) {
            (Some(i), Some(c)) => (Some(i), Some(c)),
            _ => (None, None),
        };
        let json = serde_json::json!({
            "issuer": issuer,
            "client_id": client_id,
            "scopes": scopes.unwrap_or("openid profile"),
            "resource": resource,
        })
        .to_string();
        let mut connect = vec!["'self'".to_owned()];
        let extra = extra_origins.unwrap_or_default().split(',');
        for o in issuer.into_iter().chain(extra).filter_map(origin) {
            if !connect.contains(&o) {
                connect.push(o);
            }
        }
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src {}; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            connect.join(" ")
        );
        Self { json, csp }
    }

    pub fn content_security_policy(&self) -> &str {
        &self.csp
    }
}

/// `scheme://host[:port]` of an http(s) URL, or None. Only characters a host or port can
/// hold pass, so nothing from the environment can break out of the CSP header.
fn origin(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let ok = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// Read once per process (`init` at start-up), never per request.
static CONFIG: LazyLock<PageConfig> = LazyLock::new(PageConfig::from_env);

/// Reads the page's configuration now (a function's `main`, before the first request).
pub fn init() -> &'static PageConfig {
    &CONFIG
}

fn asset(text: &str, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::Text(text.to_owned()));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(csp) = HeaderValue::from_str(CONFIG.content_security_policy()) {
        h.insert(HeaderName::from_static("content-security-policy"), csp);
    }
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    // Revalidated on every load, so a redeployed page is never mixed with an old script.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A GET's answer without its body, with the length the body would have.
fn head(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let len = match &body {
        Body::Text(t) => t.len(),
        Body::Binary(b) => b.len(),
        _ => 0,
    };
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, Body::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_the_policy() {
        for (key, handler) in ROUTES {
            let resp = handler();
            assert_eq!(resp.status(), StatusCode::OK, "{key}");
            let h = resp.headers();
            let ct = h[CONTENT_TYPE].to_str().unwrap_or_default();
            let want = match key.rsplit('.').next() {
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                Some("json") => "application/json",
                _ => "text/html",
            };
            assert!(ct.starts_with(want), "{key}: {ct}");
            assert_eq!(
                h["content-security-policy"],
                init().content_security_policy()
            );
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h[REFERRER_POLICY], "no-referrer");
            if key.starts_with("HEAD ") {
                // The GET's headers and length, no body.
                assert!(matches!(resp.body(), Body::Empty), "{key}");
                assert_eq!(h[CONTENT_LENGTH], HTML.len().to_string().as_str());
            } else {
                assert!(
                    matches!(resp.body(), Body::Text(t) if !t.is_empty()),
                    "{key}"
                );
            }
        }
    }

    fn config_of(page: &PageConfig) -> serde_json::Value {
        serde_json::from_str(&page.json).unwrap_or_default()
    }

    #[test]
    fn the_config_names_the_provider_and_the_policy_lets_the_page_reach_it() {
        let page = PageConfig::new(
            Some("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc/"),
            Some("5ab1client"),
            None,
            None,
            Some("https://auth.example.com, https://auth.example.com/oauth2/token"),
        );
        let c = config_of(&page);
        assert_eq!(
            c["issuer"],
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"
        );
        assert_eq!(c["client_id"], "5ab1client");
        assert_eq!(c["scopes"], "openid profile");
        assert!(c["resource"].is_null());
        assert!(page.csp.contains(
            "connect-src 'self' https://cognito-idp.us-east-1.amazonaws.com https://auth.example.com;"
        ));
        let local = PageConfig::new(
            Some("http://127.0.0.1:9400"),
            Some("infrakitchen-setup-page"),
            Some("openid profile integrations"),
            Some("urn:infrakitchen:api"),
            None,
        );
        assert_eq!(config_of(&local)["resource"], "urn:infrakitchen:api");
        assert!(local
            .csp
            .contains("connect-src 'self' http://127.0.0.1:9400;"));
    }

    #[test]
    fn without_a_provider_sign_in_is_off_and_the_policy_stays_same_origin() {
        for (issuer, client) in [
            (None, Some("c")),
            (Some("https://id.example.com"), None),
            (Some("ftp://id.example.com"), Some("c")),
            (Some("id.example.com"), Some("c")),
            (Some("https://id.example.com"), Some("has space")),
        ] {
            let page = PageConfig::new(issuer, client, None, None, None);
            let c = config_of(&page);
            assert!(c["issuer"].is_null() && c["client_id"].is_null(), "{c}");
            assert!(page.csp.contains("connect-src 'self';"), "{}", page.csp);
        }
    }

    #[test]
    fn nothing_from_the_environment_can_break_out_of_the_policy() {
        let page = PageConfig::new(
            Some("https://id.example.com"),
            Some("c"),
            None,
            None,
            Some("https://evil.example.com; script-src *,https://a@b.example.com,https://ok.example.com"),
        );
        assert_eq!(page.csp.matches("script-src").count(), 1, "{}", page.csp);
        assert!(!page.csp.contains("evil") && !page.csp.contains('@'));
        assert!(page.csp.contains("https://ok.example.com"));
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        // No CDN, no inline script or style (the policy would block them anyway).
        for (name, text) in [("html", HTML), ("js", SCRIPT), ("css", STYLE)] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name}"
            );
        }
        assert!(HTML.contains(r#"<script src="/integrations/aws/setup/app.js" defer>"#));
        assert!(HTML.contains(r#"href="/integrations/aws/setup/app.css""#));
        assert!(!HTML.contains("<script>") && !HTML.contains("style="));
        assert!(!HTML.contains("<style"));
    }

    #[test]
    fn the_secret_is_a_password_field_the_script_never_stores() {
        assert!(HTML.contains(r#"id="f-secret" name="aws_secret_access_key" type="password""#));
        // Only the sign-in tokens are kept, and only in memory and the tab's session.
        assert!(!SCRIPT.contains("localStorage"));
    }
}
