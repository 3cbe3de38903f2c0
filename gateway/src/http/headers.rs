//! Security headers on every gateway answer:
//!
//! - `Content-Security-Policy`: for the web UI `default-src 'self'`, scripts from the
//!   gateway only (no inline script, no `eval`), `style-src 'self' 'unsafe-inline'` (the
//!   charts and the UI set element styles; inline styles cannot run code), images from the
//!   gateway or `data:` (the favicon), no plugins, no `<base>`, forms to the gateway only;
//!   for the API (`/v1/...`) `default-src 'none'` (JSON and event streams load nothing);
//! - the frame policy ([`FramePolicy`], per route: a route that may be framed inserts its
//!   own into its response's extensions; default [`FramePolicy::Deny`]):
//!   `X-Frame-Options: DENY` and `frame-ancestors 'none'`;
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.
//!
//! A header the handler already set is kept.

use axum::extract::Request;
use axum::http::header::{
    HeaderName, HeaderValue, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of the web UI (the frame part is added per route).
pub const UI_CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

/// The policy of API answers.
pub const API_CSP: &str = "default-src 'none'";

/// Who may put a response in a frame; a route sets it as a response extension.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum FramePolicy {
    /// Nobody (`X-Frame-Options: DENY`, `frame-ancestors 'none'`).
    #[default]
    Deny,
    /// The origins listed, as a CSP source list (`https://intranet.example`); no
    /// `X-Frame-Options` (it cannot name origins).
    Ancestors(String),
}

impl FramePolicy {
    fn directive(&self) -> String {
        match self {
            FramePolicy::Deny => "frame-ancestors 'none'".to_owned(),
            FramePolicy::Ancestors(sources) => format!("frame-ancestors {sources}"),
        }
    }
}

/// The middleware.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/v1/") || request.uri().path() == "/v1";
    let mut response = next.run(request).await;
    let frame = response
        .extensions()
        .get::<FramePolicy>()
        .cloned()
        .unwrap_or_default();
    let base = if api { API_CSP } else { UI_CSP };
    let csp = format!("{base}; {}", frame.directive());
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &str| {
        if !headers.contains_key(&name) {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
    };
    set(CONTENT_SECURITY_POLICY, &csp);
    if frame == FramePolicy::Deny {
        set(X_FRAME_OPTIONS, "DENY");
    }
    set(X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(REFERRER_POLICY, "no-referrer");
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/v1/thing", get(|| async { "{}" }))
            .route("/", get(|| async { "<!doctype html>" }))
            .route(
                "/embed/x",
                get(|| async {
                    let mut response = "<!doctype html>".into_response();
                    response
                        .extensions_mut()
                        .insert(FramePolicy::Ancestors("https://intranet.example".into()));
                    response
                }),
            )
            .layer(axum::middleware::from_fn(security_headers))
    }

    async fn headers(path: &str) -> axum::http::HeaderMap {
        let request = Request::get(path).body(Body::empty()).unwrap();
        app().oneshot(request).await.unwrap().headers().clone()
    }

    #[tokio::test]
    async fn ui_and_api_answers_carry_their_policies() {
        let ui = headers("/").await;
        assert_eq!(
            ui[CONTENT_SECURITY_POLICY],
            format!("{UI_CSP}; frame-ancestors 'none'").as_str()
        );
        assert!(!UI_CSP.contains("script-src 'self' 'unsafe-inline'"));
        assert_eq!(ui[X_FRAME_OPTIONS], "DENY");
        assert_eq!(ui[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(ui[REFERRER_POLICY], "no-referrer");
        let api = headers("/v1/thing").await;
        assert_eq!(
            api[CONTENT_SECURITY_POLICY],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(api[X_FRAME_OPTIONS], "DENY");
        // Unknown paths (the UI's fallback) too.
        assert_eq!(headers("/nope").await[X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[tokio::test]
    async fn a_route_may_set_its_own_frame_policy() {
        let embed = headers("/embed/x").await;
        assert!(embed.get(X_FRAME_OPTIONS).is_none());
        assert!(embed[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .ends_with("frame-ancestors https://intranet.example"));
    }
}
