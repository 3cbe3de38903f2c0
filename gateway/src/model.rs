//! The gateway's resource documents (dashboards with their widgets, alert rules as
//! answered) and their validation.

use crate::error::ApiError;
use crate::query::plan::{DEFAULT_GROUP_LIMIT, MAX_GROUP_LIMIT};
use crate::query::resolution::MAX_WINDOWS;
use crate::query::tiers::Tiers;
use crate::query::{Ask, QueryError, QueryPlan, WindowAsk};
use rtdash_shared::event::is_identifier;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Longest name, title or description, in characters.
pub const MAX_TEXT: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2_000;
/// Longest widget `time_window`.
pub const MAX_TIME_WINDOW_MS: i64 = 31 * 86_400_000;

/// Whether a path id can name a stored resource (a valid key token); others are `404`.
pub fn is_valid_id(id: &str) -> bool {
    is_identifier(id, 128)
}

/// A new opaque id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// How a widget draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VizType {
    /// Line chart over time.
    #[default]
    LineChart,
    /// Filled area chart.
    AreaChart,
    /// Bars per window.
    BarChart,
    /// One big number (latest window).
    Counter,
    /// Gauge of the latest window.
    Gauge,
    /// Table of windows.
    Table,
}

fn default_time_window() -> String {
    "last_1h".to_owned()
}

/// A widget: a query definition resolved at read time. Answers always carry every field but
/// `title` and `window` (the serde defaults read documents stored before a field existed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    /// Id (assigned by the gateway).
    #[serde(default)]
    #[schema(required = true)]
    pub widget_id: String,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Metric shown.
    pub metric_name: String,
    /// Dimension filter.
    #[serde(default)]
    #[schema(required = true)]
    pub dimensions: BTreeMap<String, String>,
    /// Statistic shown.
    #[serde(default)]
    #[schema(required = true)]
    pub stat: Stat,
    /// Range shown: `last_<n><s|m|h|d>`.
    #[serde(default = "default_time_window")]
    #[schema(required = true, example = "last_1h")]
    pub time_window: String,
    /// Aggregation window: a multiple of the metric's window (`1m`, `5m`, `1h`...) or
    /// `auto` (the finest keeping the range at or under about 500 windows); `auto` when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "auto")]
    pub window: Option<String>,
    /// One series per value of these dimensions (a multi-series chart, a top-N bar chart
    /// or table); absent: one series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Series shown besides `other` when grouped (default 10, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// How it draws.
    #[serde(default)]
    #[schema(required = true)]
    pub viz_type: VizType,
}

/// A widget as sent in create and update calls (the tenant may be named here).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetInput {
    /// Tenant (or as the `tenant_id` query parameter).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Ignored on create; must match the path on update when given.
    #[serde(default)]
    pub widget_id: Option<String>,
    /// Display title.
    #[serde(default)]
    pub title: Option<String>,
    /// Metric shown.
    pub metric_name: String,
    /// Dimension filter.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Statistic shown (default `count`).
    #[serde(default)]
    pub stat: Stat,
    /// Range shown: `last_<n><s|m|h|d>` (default `last_1h`).
    #[serde(default = "default_time_window")]
    #[schema(example = "last_1h")]
    pub time_window: String,
    /// Aggregation window: a multiple of the metric's window (`1m`, `5m`, `1h`...) or
    /// `auto` (default).
    #[serde(default)]
    #[schema(example = "auto")]
    pub window: Option<String>,
    /// One series per value of these dimensions (default: none, one series).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Series shown besides `other` when grouped (default 10, at most 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// How it draws.
    #[serde(default)]
    pub viz_type: VizType,
}

impl WidgetInput {
    /// The widget with `id`.
    pub fn into_widget(self, id: String) -> Widget {
        Widget {
            widget_id: id,
            title: self.title,
            metric_name: self.metric_name,
            dimensions: self.dimensions,
            stat: self.stat,
            time_window: self.time_window,
            window: self.window,
            group_by: self.group_by,
            limit: self.limit,
            viz_type: self.viz_type,
        }
    }
}

/// Parses `last_<n><unit>` into milliseconds.
pub fn parse_time_window(text: &str) -> Option<i64> {
    let ms = crate::query::parse_duration(text.strip_prefix("last_")?)?;
    (ms <= MAX_TIME_WINDOW_MS).then_some(ms)
}

impl Widget {
    /// Checks the fields that do not need the metric's definition.
    pub fn check_shape(&self) -> Result<(), ApiError> {
        if !is_identifier(&self.metric_name, 64) {
            return Err(ApiError::bad_request(
                "`metric_name` must be 1 to 64 characters from [A-Za-z0-9_-]",
            ));
        }
        if parse_time_window(&self.time_window).is_none() {
            return Err(ApiError::bad_request(format!(
                "`time_window` {:?} must look like last_15m, last_1h or last_7d (at most 31 days)",
                self.time_window
            )));
        }
        if let Some(window) = &self.window {
            if window != "auto" && crate::query::parse_duration(window).is_none() {
                return Err(ApiError::bad_request(format!(
                    "`window` {window:?} must look like 1m, 5m or 1h, or be `auto`"
                )));
            }
        }
        if self.group_by.iter().any(|name| !is_identifier(name, 64)) {
            return Err(ApiError::bad_request(
                "`group_by` names dimensions: 1 to 64 characters from [A-Za-z0-9_-] each",
            ));
        }
        if self
            .limit
            .is_some_and(|limit| limit == 0 || limit > MAX_GROUP_LIMIT)
        {
            return Err(ApiError::bad_request(format!(
                "`limit` must be 1 to {MAX_GROUP_LIMIT}"
            )));
        }
        if self
            .title
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TEXT)
        {
            return Err(ApiError::bad_request(format!(
                "`title` is longer than {MAX_TEXT} characters"
            )));
        }
        Ok(())
    }

    /// The range shown, in milliseconds.
    pub fn range_ms(&self) -> i64 {
        parse_time_window(&self.time_window).unwrap_or(3_600_000)
    }

    /// How the widget's window is asked for (absent: `auto`).
    pub fn window_ask(&self) -> WindowAsk {
        match self.window.as_deref().map(str::trim) {
            None | Some("") | Some("auto") => WindowAsk::Auto,
            Some(text) => {
                crate::query::parse_duration(text).map_or(WindowAsk::Auto, WindowAsk::Fixed)
            }
        }
    }

    /// The plan serving this widget at `now` (its range ending then), by the same planner
    /// as metric queries; also refused when the range holds more windows than one answer
    /// may.
    pub fn plan(
        &self,
        def: &MetricDefinition,
        tenant: &str,
        tiers: &Tiers,
        now: UnixMillis,
    ) -> Result<QueryPlan, QueryError> {
        let range = self.range_ms();
        let ask = Ask {
            filter: &self.dimensions,
            stat: self.stat,
            window: self.window_ask(),
            group_by: &self.group_by,
            limit: self.limit.unwrap_or(DEFAULT_GROUP_LIMIT),
            from: now - range,
            to: now,
            now,
        };
        let plan = crate::query::plan(def, tenant, tiers, &ask)?;
        match widget_window_count_error(&plan, range) {
            Some(message) => Err(QueryError::Invalid(message)),
            None => Ok(plan),
        }
    }
}

/// Why a widget range holds too many of `plan`'s windows, if it does.
pub fn widget_window_count_error(plan: &QueryPlan, range_ms: i64) -> Option<String> {
    (range_ms / plan.window_ms > MAX_WINDOWS).then(|| {
        format!(
            "a range of {} holds more than {MAX_WINDOWS} windows of {}; use a coarser window or `auto`",
            crate::query::format_duration(range_ms),
            crate::query::format_duration(plan.window_ms)
        )
    })
}

/// A dashboard as stored (`dashboard.<tenant>.<id>`) and answered (plus `revision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    /// Id.
    pub dashboard_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Widgets, in display order.
    #[serde(default)]
    #[schema(required = true)]
    pub widgets: Vec<Widget>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A dashboard with its store revision (answer shape).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DashboardOut {
    /// The dashboard.
    #[serde(flatten)]
    pub dashboard: Dashboard,
    /// Store revision (also the `ETag`).
    pub revision: u64,
}

/// Body of `POST /v1/dashboards` and `PUT /v1/dashboards/{id}`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardInput {
    /// Tenant (required on create).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Widgets; on update, replaces them only when given.
    #[serde(default)]
    pub widgets: Option<Vec<WidgetInput>>,
    /// Expected revision (update only; like `If-Match`).
    #[serde(default)]
    pub revision: Option<u64>,
    /// Ignored (answers carry it).
    #[serde(default)]
    pub dashboard_id: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Ignored.
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl DashboardInput {
    /// Checks name and description.
    pub fn check_shape(&self) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_TEXT {
            return Err(ApiError::bad_request(format!(
                "`name` must be 1 to {MAX_TEXT} characters"
            )));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(ApiError::bad_request(format!(
                "`description` is longer than {MAX_DESCRIPTION} characters"
            )));
        }
        Ok(())
    }
}

/// The tenant a call names, in the query or in the body (`400` when they differ); the
/// caller's credential decides what it may name ([`crate::auth::Caller::tenant`]).
pub fn requested_tenant<'a>(
    query: Option<&'a str>,
    body: Option<&'a str>,
) -> Result<Option<&'a str>, ApiError> {
    match (query, body) {
        (Some(q), Some(b)) if q != b => Err(ApiError::bad_request(
            "`tenant_id` in the query and in the body differ",
        )),
        (Some(q), _) => Ok(Some(q)),
        (None, b) => Ok(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_windows() {
        assert_eq!(parse_time_window("last_1h"), Some(3_600_000));
        assert_eq!(parse_time_window("last_31d"), Some(MAX_TIME_WINDOW_MS));
        assert_eq!(parse_time_window("last_32d"), None);
        assert_eq!(parse_time_window("1h"), None);
    }

    #[test]
    fn requested_tenants_agree() {
        assert_eq!(requested_tenant(Some("a"), None).unwrap(), Some("a"));
        assert_eq!(requested_tenant(None, Some("b")).unwrap(), Some("b"));
        assert_eq!(requested_tenant(Some("a"), Some("a")).unwrap(), Some("a"));
        assert!(requested_tenant(Some("a"), Some("b")).is_err());
        assert_eq!(requested_tenant(None, None).unwrap(), None);
    }
}
