//! `GET /v1/dashboards/{id}/stream`: Server-Sent Events for one dashboard.
//!
//! A viewer registers its widgets' plans on the shared topics, sends one `snapshot` per
//! widget (unless it resumes with `Last-Event-ID`), then `update`s read from the topics'
//! rings. Nothing is queued per viewer: it only keeps a cursor per topic, so a slow reader
//! costs nothing while it does not read, and when it reads again it gets the latest value of
//! each widget window that changed meanwhile (coalesced), or (when it fell out of the ring)
//! the values in memory.

use super::hub::{Link, PlanHandle, Topic};
use super::status::StatusView;
use crate::api::definitions::effective_definition;
use crate::api::ApiQuery;
use crate::api::TenantQuery;
use crate::error::{ApiError, ErrorDetail};
use crate::model::{parse_time_window, Dashboard, Widget};
use crate::query::{self, format_duration, DerivedWindow};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rtdash_shared::time::{format_rfc3339, now_millis};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};

/// Opens the stream.
#[utoipa::path(
    get,
    path = "/v1/dashboards/{id}/stream",
    tag = "live",
    params(("id" = String, Path, description = "Dashboard id"), TenantQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "text/event-stream of snapshot, update, status and reload events", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such dashboard", body = crate::error::ErrorBody),
        (status = 503, description = "Too many streams or NATS unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TenantQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = query.tenant()?;
    let (dashboard, revision) = crate::api::dashboards::load(&state, &tenant, &id)?;
    let permit = state
        .streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::unavailable("too many live streams on this gateway"))?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let viewer = Viewer::open(state.clone(), dashboard, revision, last_event_id, permit).await?;
    let events = futures::stream::unfold(viewer, |mut viewer| async move {
        let event = viewer.next_event().await?;
        metrics::counter!("rtdash_gateway_sse_events_sent_total").increment(1);
        Some((Ok::<Event, Infallible>(event), viewer))
    });
    let keep_alive = KeepAlive::new()
        .interval(Duration::from_secs(state.config.live.keepalive_secs))
        .text("keep-alive");
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    // Ask reverse proxies (nginx) not to buffer the stream.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// One widget on a viewer's dashboard.
struct WidgetView {
    widget: Widget,
    /// The registered plan; `None` when the widget cannot be served (see `error`).
    handle: Option<PlanHandle>,
    /// Index into `Viewer::topics`.
    topic: usize,
    error: Option<ErrorDetail>,
    /// Resuming from `Last-Event-ID`: no snapshot.
    resume: bool,
    range_ms: i64,
}

/// Counts open streams in the `rtdash_gateway_sse_clients` gauge while alive.
struct ClientGauge;

impl ClientGauge {
    fn new() -> Self {
        metrics::gauge!("rtdash_gateway_sse_clients").increment(1.0);
        Self
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!("rtdash_gateway_sse_clients").decrement(1.0);
    }
}

/// A snapshot event's data.
#[derive(Serialize)]
struct SnapshotData<'a> {
    widget_id: &'a str,
    metric_name: &'a str,
    stat: &'static str,
    window: Option<String>,
    dimensions: &'a BTreeMap<String, String>,
    time_window: &'a str,
    windows: Vec<WindowData>,
    error: Option<&'a ErrorDetail>,
}

/// One window in a snapshot.
#[derive(Serialize)]
struct WindowData {
    window_start: String,
    window_end: String,
    value: Option<f64>,
    revision: u32,
    #[serde(rename = "final")]
    is_final: bool,
    late_count: u64,
    updated_at: String,
}

impl From<&DerivedWindow> for WindowData {
    fn from(window: &DerivedWindow) -> Self {
        Self {
            window_start: format_rfc3339(window.window_start),
            window_end: format_rfc3339(window.window_end),
            value: window.value,
            revision: window.revision,
            is_final: window.is_final,
            late_count: window.late_count,
            updated_at: format_rfc3339(window.updated_at),
        }
    }
}

/// An update event's data.
#[derive(Serialize)]
struct UpdateData<'a> {
    widget_id: &'a str,
    metric_name: &'a str,
    stat: &'static str,
    value: Option<f64>,
    window_start: String,
    window_end: String,
    updated_at: String,
    revision: u32,
    #[serde(rename = "final")]
    is_final: bool,
    late_count: u64,
    delay_ms: i64,
    stale: bool,
}

struct Viewer {
    state: AppState,
    dashboard: Dashboard,
    key: String,
    revision: u64,
    widgets: Vec<WidgetView>,
    topics: Vec<Arc<Topic>>,
    /// Per topic: every ring entry up to here was handled.
    cursors: Vec<u64>,
    /// Per topic: the cursor the last queued event stands for.
    emitted: Vec<u64>,
    watches: Vec<watch::Receiver<u64>>,
    pending: VecDeque<Event>,
    started: bool,
    done: bool,
    changes: broadcast::Receiver<Arc<str>>,
    status: watch::Receiver<Arc<StatusView>>,
    /// The NATS link: a new epoch means updates may have been lost, so fresh snapshots.
    link: watch::Receiver<Link>,
    epoch: u64,
    resync: bool,
    stale: bool,
    _permit: OwnedSemaphorePermit,
    _gauge: ClientGauge,
}

impl Viewer {
    async fn open(
        state: AppState,
        dashboard: Dashboard,
        revision: u64,
        last_event_id: Option<String>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Self, ApiError> {
        let tenant = dashboard.tenant_id.clone();
        let changes = state.store.subscribe();
        // Plans first, so the topics they need are known.
        let mut planned = Vec::with_capacity(dashboard.widgets.len());
        for widget in &dashboard.widgets {
            let range_ms = parse_time_window(&widget.time_window).unwrap_or(3_600_000);
            let plan = match effective_definition(&state.store, &tenant, &widget.metric_name) {
                None => Err(ApiError::not_found("metric", &widget.metric_name)),
                Some(found) => query::plan(
                    &found.definition,
                    &tenant,
                    &widget.dimensions,
                    widget.stat,
                    widget.window_ms(),
                )
                .map_err(ApiError::from),
            };
            planned.push((widget.clone(), plan, range_ms));
        }
        let mut metrics: Vec<String> = planned
            .iter()
            .filter(|(_, plan, _)| plan.is_ok())
            .map(|(widget, _, _)| widget.metric_name.clone())
            .collect();
        metrics.sort();
        metrics.dedup();
        let mut topics = Vec::with_capacity(metrics.len());
        for metric in &metrics {
            let topic =
                state.hub.topic(&tenant, metric).await.map_err(|err| {
                    ApiError::unavailable(format!("live updates unavailable: {err}"))
                })?;
            topics.push(topic);
        }
        let mut widgets = Vec::with_capacity(planned.len());
        for (widget, plan, range_ms) in planned {
            let topic = metrics
                .binary_search(&widget.metric_name)
                .unwrap_or_default();
            let (handle, error) = match plan {
                Ok(plan) => (Some(topics[topic].register(plan)), None),
                Err(err) => (None, Some(err.body().error)),
            };
            widgets.push(WidgetView {
                widget,
                handle,
                topic,
                error,
                resume: false,
                range_ms,
            });
        }
        let mut cursors: Vec<u64> = topics.iter().map(|topic| topic.cursor()).collect();
        if let Some(resumed) = last_event_id
            .as_deref()
            .and_then(|id| parse_event_id(id, state.hub.instance(), topics.len()))
        {
            for (index, cursor) in resumed.iter().enumerate() {
                let mut all = true;
                for view in widgets.iter_mut().filter(|view| view.topic == index) {
                    if let Some(handle) = &view.handle {
                        view.resume = handle.topic.can_resume(&handle.reg, *cursor);
                        all &= view.resume;
                    }
                }
                let any = widgets
                    .iter()
                    .any(|view| view.topic == index && view.resume);
                if any || all {
                    cursors[index] = (*cursor).min(cursors[index]);
                }
            }
        }
        let watches = topics.iter().map(|topic| topic.watch()).collect();
        let key = rtdash_shared::names::dashboard_config_key(&tenant, &dashboard.dashboard_id);
        let status = state.status.subscribe();
        let mut link = state.hub.link();
        let epoch = link.borrow_and_update().epoch;
        tracing::debug!(dashboard = %dashboard.dashboard_id, tenant = %tenant, widgets = widgets.len(), "stream opened");
        Ok(Self {
            emitted: cursors.clone(),
            state,
            dashboard,
            key,
            revision,
            widgets,
            topics,
            cursors,
            watches,
            pending: VecDeque::new(),
            started: false,
            done: false,
            changes,
            status,
            link,
            epoch,
            resync: false,
            stale: false,
            _permit: permit,
            _gauge: ClientGauge::new(),
        })
    }

    fn event_id(&self) -> String {
        let mut id = self.state.hub.instance().to_owned();
        for cursor in &self.emitted {
            id.push('.');
            id.push_str(&cursor.to_string());
        }
        id
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done || self.state.shutdown.is_cancelled() {
                return None;
            }
            if !self.started {
                self.started = true;
                self.push_snapshots().await;
                self.push_status();
                continue;
            }
            if self.resync {
                self.resync = false;
                self.resnapshot().await;
                continue;
            }
            for watch in &mut self.watches {
                watch.borrow_and_update();
            }
            if self.collect() {
                continue;
            }
            let shutdown = self.state.shutdown.clone();
            let mut status = self.status.clone();
            let mut link = self.link.clone();
            let any_update = async {
                if self.watches.is_empty() {
                    futures::future::pending::<()>().await;
                }
                let changed = self.watches.iter_mut().map(|w| Box::pin(w.changed()));
                let _ = futures::future::select_all(changed).await;
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                change = self.changes.recv() => self.on_config_change(change),
                () = any_update => {}
                Ok(()) = status.changed() => {
                    self.status = status;
                    self.push_status();
                }
                Ok(()) = link.changed() => {
                    let epoch = link.borrow_and_update().epoch;
                    self.link = link;
                    if epoch != self.epoch {
                        self.epoch = epoch;
                        self.resync = true;
                    }
                }
            }
        }
    }

    fn on_config_change(&mut self, change: Result<Arc<str>, broadcast::error::RecvError>) {
        let relevant = match change {
            Ok(key) => *key == *self.key,
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => false,
        };
        if !relevant {
            return;
        }
        let reason = match self.state.store.get(&self.key) {
            None => "deleted",
            Some(current) if current.revision != self.revision => "updated",
            Some(_) => return,
        };
        let data = serde_json::json!({
            "dashboard_id": self.dashboard.dashboard_id,
            "reason": reason,
        });
        self.pending
            .push_back(Event::default().event("reload").data(data.to_string()));
        self.done = true;
    }

    /// After a NATS reconnection: updates published meanwhile were lost, so every widget
    /// gets a fresh snapshot (queried again), and reading resumes from the rings' ends.
    async fn resnapshot(&mut self) {
        metrics::counter!("rtdash_gateway_sse_resnapshots_total").increment(1);
        for (index, topic) in self.topics.iter().enumerate() {
            let cursor = topic.cursor();
            self.cursors[index] = cursor;
            self.emitted[index] = cursor;
        }
        for view in &mut self.widgets {
            view.resume = false;
        }
        self.push_snapshots().await;
    }

    async fn push_snapshots(&mut self) {
        let snapshots = &self.state.snapshots;
        let max = self.state.config.live.max_snapshot_windows;
        let futures = self.widgets.iter().map(|view| async move {
            if view.resume {
                return None;
            }
            let Some(handle) = &view.handle else {
                return Some((Vec::new(), view.error.clone()));
            };
            match snapshots.rows(handle, view.range_ms).await {
                Ok(rows) => {
                    let plan = &handle.reg.plan;
                    let now = now_millis();
                    let from = plan.bucket_of(now - view.range_ms);
                    let in_range = rows.rows.iter().filter(|row| row.window_start >= from);
                    let mut windows: BTreeMap<i64, DerivedWindow> =
                        query::derive(plan, in_range, now)
                            .into_iter()
                            .map(|w| (w.window_start, w))
                            .collect();
                    for window in handle.topic.memory_values(&handle.reg) {
                        if window.window_start >= from {
                            windows.insert(window.window_start, window);
                        }
                    }
                    let mut list: Vec<DerivedWindow> = windows.into_values().collect();
                    if list.len() > max {
                        list.drain(..list.len() - max);
                    }
                    Some((list, None))
                }
                Err(err) => Some((
                    Vec::new(),
                    Some(ErrorDetail {
                        code: "unavailable",
                        message: format!("snapshot unavailable: {err}"),
                    }),
                )),
            }
        });
        let results = futures::future::join_all(futures).await;
        let id = self.event_id();
        for (view, result) in self.widgets.iter().zip(results) {
            let Some((windows, error)) = result else {
                continue;
            };
            let widget = &view.widget;
            let data = SnapshotData {
                widget_id: &widget.widget_id,
                metric_name: &widget.metric_name,
                stat: widget.stat.as_str(),
                window: view
                    .handle
                    .as_ref()
                    .map(|h| format_duration(h.reg.plan.window_ms)),
                dimensions: &widget.dimensions,
                time_window: &widget.time_window,
                windows: windows.iter().map(WindowData::from).collect(),
                error: error.as_ref(),
            };
            if let Ok(json) = serde_json::to_string(&data) {
                self.pending
                    .push_back(Event::default().event("snapshot").id(id.clone()).data(json));
            }
        }
    }

    fn push_status(&mut self) {
        let view = self.status.borrow_and_update().clone();
        self.stale = view.stale;
        if let Ok(json) = serde_json::to_string(&*view) {
            self.pending
                .push_back(Event::default().event("status").data(json));
        }
    }

    /// Queues the updates available on every topic; whether any were queued.
    fn collect(&mut self) -> bool {
        let before = self.pending.len();
        for index in 0..self.topics.len() {
            let topic = self.topics[index].clone();
            match topic.entries_after(self.cursors[index]) {
                Some((entries, latest)) => {
                    // Coalesce: the latest value per (widget, window), in id order.
                    let mut latest_per: BTreeMap<(usize, i64), Arc<super::hub::RingEntry>> =
                        BTreeMap::new();
                    for entry in entries {
                        for (widget_index, view) in self.widgets.iter().enumerate() {
                            let Some(handle) = &view.handle else { continue };
                            if view.topic == index && Arc::ptr_eq(&handle.reg, &entry.plan) {
                                latest_per.insert(
                                    (widget_index, entry.window.window_start),
                                    entry.clone(),
                                );
                            }
                        }
                    }
                    let mut ordered: Vec<((usize, i64), Arc<super::hub::RingEntry>)> =
                        latest_per.into_iter().collect();
                    ordered.sort_by_key(|(_, entry)| entry.id);
                    for ((widget_index, _), entry) in ordered {
                        self.emitted[index] = entry.id;
                        self.queue_update(widget_index, &entry.window, Some(&entry));
                    }
                    self.cursors[index] = latest;
                }
                None => {
                    // Fell out of the ring: send what memory holds for our widgets.
                    metrics::counter!("rtdash_gateway_sse_resyncs_total").increment(1);
                    let cursor = topic.cursor();
                    self.emitted[index] = cursor;
                    for widget_index in 0..self.widgets.len() {
                        let view = &self.widgets[widget_index];
                        if view.topic != index {
                            continue;
                        }
                        let Some(handle) = view.handle.clone() else {
                            continue;
                        };
                        for window in topic.memory_values(&handle.reg) {
                            self.queue_update(widget_index, &window, None);
                        }
                    }
                    self.cursors[index] = cursor;
                }
            }
        }
        self.pending.len() > before
    }

    fn queue_update(
        &mut self,
        widget_index: usize,
        window: &DerivedWindow,
        entry: Option<&super::hub::RingEntry>,
    ) {
        let widget = &self.widgets[widget_index].widget;
        let stale = self.stale;
        let render = |received_at: i64| {
            let data = UpdateData {
                widget_id: &widget.widget_id,
                metric_name: &widget.metric_name,
                stat: widget.stat.as_str(),
                value: window.value,
                window_start: format_rfc3339(window.window_start),
                window_end: format_rfc3339(window.window_end),
                updated_at: format_rfc3339(window.updated_at),
                revision: window.revision,
                is_final: window.is_final,
                late_count: window.late_count,
                delay_ms: (received_at - window.updated_at).max(0),
                stale,
            };
            serde_json::to_string(&data).unwrap_or_default()
        };
        let json: Arc<str> = match entry {
            Some(entry) => entry.rendered(&widget.widget_id, stale, || render(entry.received_at)),
            None => Arc::from(render(now_millis())),
        };
        let id = self.event_id();
        self.pending
            .push_back(Event::default().event("update").id(id).data(&*json));
    }
}

/// Parses `<instance>.<cursor>...`; `None` unless it is ours and has `topics` cursors.
fn parse_event_id(id: &str, instance: &str, topics: usize) -> Option<Vec<u64>> {
    let mut parts = id.trim().split('.');
    if parts.next()? != instance {
        return None;
    }
    let cursors: Vec<u64> = parts.map(str::parse).collect::<Result<_, _>>().ok()?;
    (cursors.len() == topics).then_some(cursors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids() {
        assert_eq!(parse_event_id("ab.1.2", "ab", 2), Some(vec![1, 2]));
        assert_eq!(parse_event_id("ab.1.2", "cd", 2), None);
        assert_eq!(parse_event_id("ab.1", "ab", 2), None);
        assert_eq!(parse_event_id("ab.x", "ab", 1), None);
        assert_eq!(parse_event_id("ab", "ab", 0), Some(vec![]));
    }
}
