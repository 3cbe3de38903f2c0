//! The web UI: static files from `web_root`, with `index.html` for client-side routes, or a
//! short page saying the UI is not built.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use std::path::Path;
use tower_http::services::{ServeDir, ServeFile};

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>rtdash</title></head>\
<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>rtdash gateway</h1>\
<p>The web UI is not built. Build it with <code>npm ci &amp;&amp; npm run build</code> in \
<code>web/</code>, or point <code>web_root</code> (<code>RTDASH_GATEWAY__WEB_ROOT</code>) at a built UI.</p>\
<p>The API is served under <a href=\"/v1/openapi.json\"><code>/v1/</code></a>.</p></body></html>";

/// The UI router, used as the fallback of the whole app.
pub fn router<S: Clone + Send + Sync + 'static>(root: &Path) -> Router<S> {
    let index = root.join("index.html");
    if index.is_file() {
        Router::new().fallback_service(ServeDir::new(root).fallback(ServeFile::new(index)))
    } else {
        tracing::warn!(web_root = %root.display(), "web UI not built: serving a placeholder page");
        Router::new()
            .route("/", get(not_built))
            .fallback(|| async { (StatusCode::NOT_FOUND, Html(NOT_BUILT)) })
    }
}

async fn not_built() -> impl IntoResponse {
    Html(NOT_BUILT)
}
