//! `/embed/<token>`: the web UI in embed mode for a signed dashboard link. The page is the
//! UI's `index.html` (which reads the token from its path and shows the one dashboard,
//! read-only, without navigation); it is served only while the token verifies, may be shown
//! in a frame by `auth.embed_frame_ancestors`, and is never sent as a referrer (the token is
//! in its URL).

use crate::auth::layer::ClientIp;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use rtdash_shared::auth::Principal;

const INVALID: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>rtdash</title></head>\
<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>This dashboard link does not work</h1>\
<p>It was revoked, it expired, or it was copied incompletely. Ask whoever shared it for a new one.</p></body></html>";

/// Serves the embedded dashboard page.
pub async fn page(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
) -> Response {
    let guard = &state.auth;
    if let Err(retry) = guard.limiter.check(ip) {
        return ApiError::TooManyRequests {
            message: "too many failed authentications from this address; retry later".to_owned(),
            retry_after_secs: retry.as_secs().max(1),
        }
        .into_response();
    }
    if !matches!(guard.keys.verify(&token), Some(Principal::Link { .. })) {
        guard.limiter.failed(ip);
        return with_headers(
            (StatusCode::NOT_FOUND, Html(INVALID)).into_response(),
            "'none'",
        );
    }
    let index = state.config.web_root.join("index.html");
    let page = match tokio::fs::read(&index).await {
        Ok(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            Html("<p>The web UI is not built.</p>"),
        )
            .into_response(),
    };
    with_headers(page, &guard.config.embed_frame_ancestors)
}

fn with_headers(mut response: Response, frame_ancestors: &str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The security-headers layer writes the page's CSP with these frame ancestors and leaves
    // out `X-Frame-Options` (which cannot name origins).
    response
        .extensions_mut()
        .insert(crate::http::headers::FramePolicy::Ancestors(
            frame_ancestors.to_owned(),
        ));
    response
}
