//! The setup page: the setup guide's form at `/integrations/aws/setup`, one self-contained
//! page (HTML, a small hand-written script and a style sheet, compiled into the binary)
//! that calls this API's routes with the caller's own bearer token. The routes are public
//! (a browser navigating to a page sends no token); they serve no data.

use super::routes::PublicRoutes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY};
use http::StatusCode;
use lambda_http::{Body, Response};

pub const ROUTES: PublicRoutes = &[
    ("GET /integrations/aws/setup", || {
        asset(HTML, "text/html; charset=utf-8")
    }),
    ("GET /integrations/aws/setup/app.js", || {
        asset(SCRIPT, "text/javascript; charset=utf-8")
    }),
    ("GET /integrations/aws/setup/app.css", || {
        asset(STYLE, "text/css; charset=utf-8")
    }),
];

const HTML: &str = include_str!("setup_page/index.html");
const SCRIPT: &str = include_str!("setup_page/app.js");
const STYLE: &str = include_str!("setup_page/app.css");

/// Same origin only, no inline script or style, no framing, no form posts: the page's own
/// script and style sheet, and `fetch` to this API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::Text(text.to_owned()));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
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
                _ => "text/html",
            };
            assert!(ct.starts_with(want), "{key}: {ct}");
            assert_eq!(h["content-security-policy"], CONTENT_SECURITY_POLICY);
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h[REFERRER_POLICY], "no-referrer");
            assert!(
                matches!(resp.body(), Body::Text(t) if !t.is_empty()),
                "{key}"
            );
        }
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
        // Only the bearer token is kept, and only for the tab's session.
        assert!(!SCRIPT.contains("localStorage"));
    }
}
