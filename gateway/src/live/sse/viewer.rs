//! One viewer of a dashboard stream, as a state machine: [`Viewer::open`] registers the
//! widgets' plans on the shared topics, then [`Viewer::next_frame`] sends one `snapshot` per
//! widget (unless it resumes with `Last-Event-ID`), the `status`, and the `update`s read from
//! the topics' rings, until the dashboard changes (`reload`) or the gateway shuts down.
//!
//! Nothing is queued per viewer between wake-ups: it only keeps a cursor per topic, so a slow
//! reader costs nothing while it does not read, and when it reads again it gets the latest
//! value of each widget window that changed meanwhile (coalesced), or (when it fell out of the
//! ring) the values in memory.

use super::frame::{
    event_id, frame, parse_event_id, status_frame, SeriesRef, SnapshotData, UpdateData, KEEP_ALIVE,
};
use super::wake::{change_wait, watch_wait, ChangeResult, ChangeWait, Pass, WakeSet, WatchWait};
use crate::api::definitions::effective_definition;
use crate::api::metric_answer::{Derived, SeriesOut, WindowOut};
use crate::error::{ApiError, ErrorDetail};
use crate::live::link::Link;
use crate::live::ring::{LiveValue, RingEntry};
use crate::live::snapshot::snapshot_answer;
use crate::live::status::StatusView;
use crate::live::topic::{PlanHandle, Topic};
use crate::model::{Dashboard, Widget};
use crate::query::{format_duration, WindowAsk};
use crate::state::AppState;
use bytes::Bytes;
use rtdash_runtime::error_chain::ErrorChain;
use rtdash_shared::time::{format_rfc3339, now_millis};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use tokio_util::sync::{ReusableBoxFuture, WaitForCancellationFutureOwned};

/// The wait sources, by index in the viewer's [`WakeSet`]; topic `i` is `TOPIC + i`.
const SHUTDOWN: usize = 0;
const CHANGES: usize = 1;
const STATUS: usize = 2;
const LINK: usize = 3;
const KEEP_ALIVE_TICK: usize = 4;
const TOPIC: usize = 5;

/// What woke a waiting viewer.
enum Wake {
    Shutdown,
    Config(ChangeResult),
    Update,
    Status(Arc<StatusView>),
    Link(Link),
    KeepAlive,
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

/// Counts an open stream in the `rtdash_gateway_sse_clients` gauge while alive.
struct ClientGauge(metrics::Gauge);

impl ClientGauge {
    fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// One open stream.
pub(super) struct Viewer {
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
    /// Per topic: woken when entries are appended.
    watches: Vec<WatchWait<u64>>,
    pending: VecDeque<Bytes>,
    started: bool,
    done: bool,
    shutdown: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    changes: Option<ChangeWait>,
    status: Option<WatchWait<Arc<StatusView>>>,
    /// The summary the next `status` event shows.
    status_view: Arc<StatusView>,
    /// The NATS link: a new epoch means updates may have been lost, so fresh snapshots.
    link: Option<WatchWait<Link>>,
    epoch: u64,
    keep_alive: tokio::time::Interval,
    /// Something was sent since the keep-alive interval last ticked.
    sent_since_tick: bool,
    sent: metrics::Counter,
    /// Counted when a stream falls out of a ring.
    resyncs: metrics::Counter,
    /// Counted on every fresh snapshot after a NATS reconnection.
    resnapshots: metrics::Counter,
    /// Which wait sources fired.
    wakes: WakeSet,
    resync: bool,
    stale: bool,
    _permit: OwnedSemaphorePermit,
    _gauge: ClientGauge,
}

impl Drop for Viewer {
    /// The stream's topics linger a while (`live.topic_linger_ms`): a reload finds their
    /// memory.
    fn drop(&mut self) {
        self.state.hub.linger(std::mem::take(&mut self.topics));
    }
}

impl Viewer {
    /// Plans the widgets and registers them on their topics (subscribing upstream where
    /// nobody watches yet); `permit` (a `live.max_streams` slot) is held while it lives.
    pub(super) async fn open(
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
        let now = now_millis();
        for widget in &dashboard.widgets {
            let range_ms = widget.range_ms();
            let plan = match effective_definition(&state.store, &tenant, &widget.metric_name) {
                None => Err(ApiError::not_found("metric", &widget.metric_name)),
                Some(found) => widget
                    .plan(&found.definition, &tenant, state.db.tiers(), now)
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
            let topic = state.hub.topic(&tenant, metric).await.map_err(|err| {
                ApiError::unavailable(format!("live updates unavailable: {}", ErrorChain(&err)))
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
        let watches = topics
            .iter()
            .map(|topic| {
                let mut watch = topic.watch();
                watch.borrow_and_update();
                ReusableBoxFuture::new(watch_wait(watch))
            })
            .collect();
        let key = rtdash_shared::names::dashboard_config_key(&tenant, &dashboard.dashboard_id);
        let mut status = state.status.subscribe();
        let status_view = status.borrow_and_update().clone();
        let mut link = state.hub.link();
        let epoch = link.borrow_and_update().epoch;
        let every = Duration::from_secs(state.config.live.keepalive_secs.max(1));
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = Box::pin(state.shutdown.clone().cancelled_owned());
        let wakes = WakeSet::new(TOPIC + topics.len());
        let metrics = state.hub.metrics().clone();
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
            shutdown,
            changes: Some(ReusableBoxFuture::new(change_wait(changes))),
            status: Some(ReusableBoxFuture::new(watch_wait(status))),
            status_view,
            link: Some(ReusableBoxFuture::new(watch_wait(link))),
            epoch,
            keep_alive,
            sent_since_tick: false,
            sent: metrics.sse_events_sent,
            resyncs: metrics.sse_resyncs,
            resnapshots: metrics.sse_resnapshots,
            wakes,
            resync: false,
            stale: false,
            _permit: permit,
            _gauge: ClientGauge::new(metrics.sse_clients),
        })
    }

    fn event_id(&self) -> String {
        event_id(self.state.hub.instance(), &self.emitted)
    }

    /// The next frame to send; `None` ends the stream.
    pub(super) async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                self.sent_since_tick = true;
                self.sent.increment(1);
                return Some(frame);
            }
            if self.done || self.state.shutdown.is_cancelled() {
                return None;
            }
            if !self.started {
                self.started = true;
                self.push_snapshots().await;
                self.push_status();
                // Appends while the snapshots were read.
                self.collect();
                continue;
            }
            if self.resync {
                self.resync = false;
                self.resnapshot().await;
                continue;
            }
            match std::future::poll_fn(|cx| self.poll_wake(cx)).await {
                Wake::Shutdown => return None,
                Wake::Config(change) => self.on_config_change(change),
                Wake::Update => {
                    self.collect();
                }
                Wake::Status(view) => {
                    self.status_view = view;
                    self.push_status();
                }
                Wake::Link(link) => {
                    if link.epoch != self.epoch {
                        self.epoch = link.epoch;
                        self.resync = true;
                    }
                }
                Wake::KeepAlive => {
                    if !std::mem::take(&mut self.sent_since_tick) {
                        return Some(Bytes::from_static(KEEP_ALIVE));
                    }
                }
            }
        }
    }

    /// Waits for the first of: shutdown, a dashboard change, appends on a topic, a new status
    /// summary, a link change, the keep-alive tick (in that order of precedence). The source
    /// that fired is re-armed; the others stay registered.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        let mut pass = self.wakes.begin(cx);
        let wake = self.poll_sources(&mut pass);
        // Sources not looked at this time (or re-armed, never polled yet): next time.
        self.wakes.finish(pass);
        wake
    }

    /// Polls the sources that fired in `pass`, in order of precedence, up to the first that
    /// has something.
    fn poll_sources(&mut self, pass: &mut Pass) -> Poll<Wake> {
        if pass.take(SHUTDOWN) {
            let mut cx = self.wakes.context(SHUTDOWN);
            if std::future::Future::poll(self.shutdown.as_mut(), &mut cx).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
        }
        if pass.take(CHANGES) {
            if let Some(wait) = &mut self.changes {
                let mut cx = self.wakes.context(CHANGES);
                if let Poll::Ready((change, rx)) = wait.poll(&mut cx) {
                    if matches!(change, Err(broadcast::error::RecvError::Closed)) {
                        self.changes = None;
                    } else {
                        wait.set(change_wait(rx));
                        pass.rearm(CHANGES);
                    }
                    return Poll::Ready(Wake::Config(change));
                }
            }
        }
        let mut updated = false;
        for (index, wait) in self.watches.iter_mut().enumerate() {
            if !pass.take(TOPIC + index) {
                continue;
            }
            let mut cx = self.wakes.context(TOPIC + index);
            if let Poll::Ready((result, rx)) = wait.poll(&mut cx) {
                if result.is_ok() {
                    wait.set(watch_wait(rx));
                    pass.rearm(TOPIC + index);
                    updated = true;
                } else {
                    wait.set(futures::future::pending());
                }
            }
        }
        if updated {
            return Poll::Ready(Wake::Update);
        }
        if pass.take(STATUS) {
            if let Some(wait) = &mut self.status {
                let mut cx = self.wakes.context(STATUS);
                if let Poll::Ready((result, mut rx)) = wait.poll(&mut cx) {
                    if result.is_ok() {
                        let view = rx.borrow_and_update().clone();
                        wait.set(watch_wait(rx));
                        pass.rearm(STATUS);
                        return Poll::Ready(Wake::Status(view));
                    }
                    self.status = None;
                }
            }
        }
        if pass.take(LINK) {
            if let Some(wait) = &mut self.link {
                let mut cx = self.wakes.context(LINK);
                if let Poll::Ready((result, mut rx)) = wait.poll(&mut cx) {
                    if result.is_ok() {
                        let link = *rx.borrow_and_update();
                        wait.set(watch_wait(rx));
                        pass.rearm(LINK);
                        return Poll::Ready(Wake::Link(link));
                    }
                    self.link = None;
                }
            }
        }
        if pass.take(KEEP_ALIVE_TICK) {
            let mut cx = self.wakes.context(KEEP_ALIVE_TICK);
            if self.keep_alive.poll_tick(&mut cx).is_ready() {
                // The interval registers for its next tick when polled again.
                pass.rearm(KEEP_ALIVE_TICK);
                return Poll::Ready(Wake::KeepAlive);
            }
        }
        Poll::Pending
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
            .push_back(frame("reload", None, &data.to_string()));
        self.done = true;
    }

    /// After a NATS reconnection: updates published meanwhile were lost, so every widget
    /// gets a fresh snapshot (queried again), and reading resumes from the rings' ends.
    async fn resnapshot(&mut self) {
        self.resnapshots.increment(1);
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
        let closed_through = self.state.status.closed_through();
        let futures = self.widgets.iter().map(|view| async move {
            if view.resume {
                return None;
            }
            let Some(handle) = &view.handle else {
                return Some((None, view.error.clone()));
            };
            match snapshots.rows(handle, view.range_ms, closed_through).await {
                Ok(rows) => Some((
                    Some(snapshot_answer(
                        &handle.reg,
                        (&rows.rows, snapshots.row_cache()),
                        handle.topic.memory_values(&handle.reg),
                        now_millis(),
                        view.range_ms,
                        closed_through,
                        max,
                    )),
                    None,
                )),
                Err(err) => Some((
                    None,
                    Some(ErrorDetail {
                        code: "unavailable",
                        message: format!("snapshot unavailable: {}", ErrorChain(&err)),
                    }),
                )),
            }
        });
        let results = futures::future::join_all(futures).await;
        let id = self.event_id();
        for (view, result) in self.widgets.iter().zip(results) {
            let Some((derived, error)) = result else {
                continue;
            };
            let widget = &view.widget;
            let plan = view.handle.as_ref().map(|h| &h.reg.plan);
            let (windows, series) = match &derived {
                Some(Derived::Windows(windows)) => {
                    (windows.iter().map(WindowOut::from).collect(), None)
                }
                Some(Derived::Series(series)) => (
                    Vec::new(),
                    Some(series.iter().map(SeriesOut::from).collect()),
                ),
                None => (Vec::new(), None),
            };
            let data = SnapshotData {
                widget_id: &widget.widget_id,
                metric_name: &widget.metric_name,
                stat: widget.stat.as_str(),
                window: plan.map(|p| format_duration(p.window_ms)),
                window_auto: widget.window_ask() == WindowAsk::Auto,
                source_window: plan.map(|p| format_duration(p.source_window_ms)),
                dimensions: &widget.dimensions,
                group_by: &widget.group_by,
                time_window: &widget.time_window,
                windows,
                series,
                error: error.as_ref(),
            };
            if let Ok(json) = serde_json::to_string(&data) {
                self.pending.push_back(frame("snapshot", Some(&id), &json));
            }
        }
    }

    fn push_status(&mut self) {
        self.stale = self.status_view.stale;
        if let Some(frame) = status_frame(&self.status_view) {
            self.pending.push_back(frame);
        }
    }

    /// Queues the updates available on every topic; whether any were queued.
    fn collect(&mut self) -> bool {
        let before = self.pending.len();
        for index in 0..self.topics.len() {
            let topic = self.topics[index].clone();
            match topic.entries_after(self.cursors[index]) {
                Some((entries, latest)) => {
                    // Coalesce: the latest value per (widget, window, series), in id order.
                    let mut latest_per: BTreeMap<(usize, i64, usize), Arc<RingEntry>> =
                        BTreeMap::new();
                    for entry in entries {
                        for (widget_index, view) in self.widgets.iter().enumerate() {
                            let Some(handle) = &view.handle else { continue };
                            if view.topic == index && Arc::ptr_eq(&handle.reg, &entry.plan) {
                                let series = entry.series.as_ref().map_or(0, |tag| tag.index);
                                latest_per.insert(
                                    (widget_index, entry.window.window_start, series),
                                    entry.clone(),
                                );
                            }
                        }
                    }
                    let mut ordered: Vec<((usize, i64, usize), Arc<RingEntry>)> =
                        latest_per.into_iter().collect();
                    ordered.sort_by_key(|(_, entry)| entry.id);
                    for ((widget_index, _, _), entry) in ordered {
                        self.emitted[index] = entry.id;
                        let value = LiveValue {
                            series: entry.series.clone(),
                            window: entry.window.clone(),
                        };
                        self.queue_update(widget_index, &value, Some(&entry));
                    }
                    self.cursors[index] = latest;
                }
                None => {
                    // Fell out of the ring: send what memory holds for our widgets.
                    self.resyncs.increment(1);
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
                        for value in topic.memory_values(&handle.reg) {
                            self.queue_update(widget_index, &value, None);
                        }
                    }
                    self.cursors[index] = cursor;
                }
            }
        }
        self.pending.len() > before
    }

    fn queue_update(&mut self, widget_index: usize, value: &LiveValue, entry: Option<&RingEntry>) {
        let widget = &self.widgets[widget_index].widget;
        let stale = self.stale;
        let window = &value.window;
        let render = |received_at: i64| {
            let data = UpdateData {
                widget_id: &widget.widget_id,
                metric_name: &widget.metric_name,
                stat: widget.stat.as_str(),
                series: value.series.as_deref().map(|tag| SeriesRef {
                    dimensions: &tag.dimensions,
                    other: tag.other,
                }),
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
        self.pending.push_back(frame("update", Some(&id), &json));
    }
}
