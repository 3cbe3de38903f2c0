//! `GET /v1/status`: pipeline freshness.

use crate::live::status::StatusView;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;

/// Per-partition watermark and lag, and whether data is stale.
#[utoipa::path(get, path = "/v1/status", operation_id = "get_status",
    tag = "status",
    responses((status = 200, body = StatusView)))]
pub async fn status(State(state): State<AppState>) -> Json<StatusView> {
    Json(state.status.view(true))
}
