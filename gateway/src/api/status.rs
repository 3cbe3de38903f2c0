//! `GET /v1/status`: pipeline freshness.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::live::status::StatusView;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rtdash_shared::auth::Role;

/// Per-partition watermark and lag, and whether data is stale.
#[utoipa::path(get, path = "/v1/status", operation_id = "get_status",
    tag = "status",
    responses((status = 200, body = StatusView), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StatusView>, ApiError> {
    // Pipeline freshness is not per tenant: any reading credential (links too) may see it.
    if !caller.principal.allows(Role::Viewer) {
        return Err(ApiError::forbidden(
            "reading the status needs a `viewer` key or higher",
        ));
    }
    Ok(Json(state.status.view(true)))
}
