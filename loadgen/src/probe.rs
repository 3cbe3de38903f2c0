//! The marker metric the latency and fan-out probes watch.
//!
//! A marker is an event `{"event_type": "probe_marker", "properties": {"seq": <n>}}` with a
//! `seq` larger than any before it (it starts from the wall clock in microseconds). The metric
//! `probe` keeps `max(seq)` per 60 s window, so a window value of at least `n` means that the
//! window includes marker `n`: the probe times each marker from its send until a stream update
//! of *its* window shows a value `>= n`.

use crate::gateway::{Dashboard, GatewayClient};
use crate::jsonw::{self, Timestamps};
use crate::sse::SseEvent;
use anyhow::Context;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::time::{now_millis, parse_rfc3339, UnixMillis};
use serde::Deserialize;
use serde_json::json;

/// Name of the marker metric.
pub const PROBE_METRIC: &str = "probe";
/// Event type of markers.
pub const MARKER_EVENT_TYPE: &str = "probe_marker";
/// Window of the marker metric.
pub const PROBE_WINDOW_MS: i64 = 60_000;

/// The marker metric of `tenant`.
pub fn probe_metric(tenant: &str) -> MetricDefinition {
    MetricDefinition {
        name: PROBE_METRIC.to_owned(),
        tenant_id: Some(tenant.to_owned()),
        event_type: MARKER_EVENT_TYPE.to_owned(),
        field: Some("seq".to_owned()),
        unique: None,
        dimensions: Vec::new(),
        rollups: None,
        window_secs: (PROBE_WINDOW_MS / 1000) as u32,
        max_series_per_window: 10,
        description: Some("rtdash-loadgen probe markers (max seq per window)".to_owned()),
    }
}

/// Defines the marker metric and a dashboard named `name` with one widget on it (reused if
/// it exists).
pub async fn setup(gateway: &GatewayClient, tenant: &str, name: &str) -> anyhow::Result<Dashboard> {
    gateway
        .put_metric(&probe_metric(tenant))
        .await
        .context("defining the probe metric")?;
    let widget = json!({
        "title": "probe markers (max seq)",
        "metric_name": PROBE_METRIC,
        "stat": "max",
        "window": "1m",
        "time_window": "last_15m",
        "viz_type": "line_chart",
    });
    let dashboard = gateway
        .ensure_dashboard(tenant, name, "rtdash-loadgen probe", &[widget])
        .await
        .context("creating the probe dashboard")?;
    if !dashboard
        .widgets
        .iter()
        .any(|w| w.metric_name == PROBE_METRIC)
    {
        anyhow::bail!(
            "dashboard {name:?} ({}) has no widget on the `{PROBE_METRIC}` metric",
            dashboard.dashboard_id
        );
    }
    Ok(dashboard)
}

/// The pause before the next marker: `interval` × a uniform 0.5..1.5, so that markers do not
/// keep one phase against the agent's flush or the aggregator's publish interval (a fixed
/// 1,000 ms interval against a 500 ms flush measures the same phase every time).
pub fn jittered(interval: std::time::Duration, rng: &mut impl rand::Rng) -> std::time::Duration {
    interval.mul_f64(rng.random_range(0.5..1.5))
}

/// The first marker seq of a run: now in microseconds, so later runs use larger values.
pub fn first_seq() -> u64 {
    (now_millis().max(0) as u64) * 1000
}

/// The JSON of a marker event with `seq`, generated at `at`.
pub fn marker_event(tenant: &str, seq: u64, at: UnixMillis) -> Vec<u8> {
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(br#"{"tenant_id":"#);
    jsonw::string(&mut out, tenant);
    out.extend_from_slice(
        br#","source":"rtdash-loadgen","event_type":"probe_marker","properties":{"seq":"#,
    );
    jsonw::uint(&mut out, seq);
    out.extend_from_slice(br#"},"occurred_at":"#);
    Timestamps::new().write(&mut out, at);
    out.push(b'}');
    out
}

/// A window value seen on a stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seen {
    /// Window start.
    pub window_start: UnixMillis,
    /// The widget's value (max seq).
    pub value: f64,
}

#[derive(Deserialize)]
struct UpdateData {
    widget_id: String,
    value: Option<f64>,
    window_start: String,
}

#[derive(Deserialize)]
struct SnapshotWindow {
    window_start: String,
    value: Option<f64>,
}

#[derive(Deserialize)]
struct SnapshotData {
    widget_id: String,
    #[serde(default)]
    windows: Vec<SnapshotWindow>,
}

/// The values an SSE event carries for `widget_id`: one for an `update`, one per window for a
/// `snapshot`; nothing for other events or widgets.
pub fn values_of(event: &SseEvent, widget_id: &str) -> Vec<Seen> {
    match event.event.as_str() {
        "update" => serde_json::from_str::<UpdateData>(&event.data)
            .ok()
            .filter(|u| u.widget_id == widget_id)
            .and_then(|u| {
                Some(Seen {
                    window_start: parse_rfc3339(&u.window_start)?,
                    value: u.value?,
                })
            })
            .into_iter()
            .collect(),
        "snapshot" => serde_json::from_str::<SnapshotData>(&event.data)
            .ok()
            .filter(|s| s.widget_id == widget_id)
            .map(|s| {
                s.windows
                    .iter()
                    .filter_map(|w| {
                        Some(Seen {
                            window_start: parse_rfc3339(&w.window_start)?,
                            value: w.value?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether a value seen for `seen.window_start` includes marker `seq` sent into `window`.
pub fn includes(seen: &Seen, window: UnixMillis, seq: u64) -> bool {
    seen.window_start == window && seen.value >= seq as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::event::{parse_event, EventLimits};

    #[test]
    fn markers_are_valid_events_and_updates_parse() {
        let now = now_millis();
        let json = marker_event("probe", 1_700_000_000_000_123, now);
        let event = parse_event(&json, &EventLimits::default(), now).expect("valid");
        assert_eq!(
            event.property("seq").and_then(|v| v.as_f64()),
            Some(1_700_000_000_000_123.0)
        );
        probe_metric("probe").validate().expect("valid metric");
        let update = SseEvent {
            event: "update".into(),
            data: r#"{"widget_id":"w","metric_name":"probe","stat":"max","value":42,"window_start":"2024-01-15T14:05:00.000Z","window_end":"2024-01-15T14:06:00.000Z","revision":0,"final":false}"#.into(),
            id: None,
        };
        let seen = values_of(&update, "w");
        assert_eq!(seen.len(), 1);
        assert!(includes(&seen[0], 1_705_327_500_000, 42));
        assert!(!includes(&seen[0], 1_705_327_500_000, 43));
        assert!(values_of(&update, "other").is_empty());
    }
}
