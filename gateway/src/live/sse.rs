//! `GET /v1/dashboards/{id}/stream`: Server-Sent Events for one dashboard.
//!
//! A viewer registers its widgets' plans on the shared topics, sends one `snapshot` per
//! widget (unless it resumes with `Last-Event-ID`), then `update`s read from the topics'
//! rings. Nothing is queued per viewer: it only keeps a cursor per topic, so a slow reader
//! costs nothing while it does not read, and when it reads again it gets the latest value of
//! each widget window that changed meanwhile (coalesced), or (when it fell out of the ring)
//! the values in memory.
//!
//! Cost per viewer and event (what bounds a fan-out to thousands of viewers on 2 cores): the
//! stream writes finished SSE frames (`Bytes`) straight into the response body (no per-viewer
//! `Event` building); update data is serialized once per (ring entry, widget) and `status`
//! data once per published summary; the viewer's wake-ups (shutdown, dashboard changes,
//! pipeline status, NATS link, topic appends) stay registered across events, so an event only
//! re-arms the source that fired; the keep-alive is one interval per viewer that is never
//! reset (a comment goes out after a whole interval without any event).

use super::link::Link;
use super::status::StatusView;
use super::topic::{PlanHandle, Topic};
use crate::api::definitions::effective_definition;
use crate::api::ApiQuery;
use crate::api::TenantQuery;
use crate::error::{ApiError, ErrorDetail};
use crate::model::{parse_time_window, Dashboard, Widget};
use crate::query::{self, format_duration, DerivedWindow};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::task::AtomicWaker;
use rtdash_shared::time::{format_rfc3339, now_millis};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};
use tokio_util::sync::{ReusableBoxFuture, WaitForCancellationFutureOwned};

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
    let frames = futures::stream::unfold(viewer, |mut viewer| async move {
        let frame = viewer.next_frame().await?;
        Some((Ok::<Bytes, Infallible>(frame), viewer))
    });
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Ask reverse proxies (nginx) not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One SSE frame: `event`, optional `id`, the data (one `data:` line per line) and the blank
/// line that dispatches it.
fn frame(event: &str, id: Option<&str>, data: &str) -> Bytes {
    let mut len = 8 + event.len() + 2 + data.len() + 8;
    if let Some(id) = id {
        len += 5 + id.len();
    }
    let mut buf = BytesMut::with_capacity(len);
    buf.put_slice(b"event: ");
    buf.put_slice(event.as_bytes());
    buf.put_u8(b'\n');
    if let Some(id) = id {
        buf.put_slice(b"id: ");
        buf.put_slice(id.as_bytes());
        buf.put_u8(b'\n');
    }
    for line in data.split('\n') {
        buf.put_slice(b"data: ");
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// The keep-alive comment.
const KEEP_ALIVE: &[u8] = b":keep-alive\n\n";

/// The `status` frame of a published summary, serialized once whatever the number of viewers
/// (the cache holds the summary it was made from, so a pointer match is the same summary).
fn status_frame(view: &Arc<StatusView>) -> Option<Bytes> {
    static LAST: Mutex<Option<(Arc<StatusView>, Bytes)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((cached, frame)) = last.as_ref() {
        if Arc::ptr_eq(cached, view) {
            return Some(frame.clone());
        }
    }
    let json = serde_json::to_string(&**view).ok()?;
    let bytes = frame("status", None, &json);
    *last = Some((view.clone(), bytes.clone()));
    Some(bytes)
}

/// A wait on a watch channel that stays registered until it fires, and hands the receiver
/// back.
type WatchWait<T> =
    ReusableBoxFuture<'static, (Result<(), watch::error::RecvError>, watch::Receiver<T>)>;

async fn watch_wait<T: Send + Sync>(
    mut rx: watch::Receiver<T>,
) -> (Result<(), watch::error::RecvError>, watch::Receiver<T>) {
    let result = rx.changed().await;
    (result, rx)
}

type ChangeResult = Result<Arc<str>, broadcast::error::RecvError>;
/// A wait on the config change broadcast, handing the receiver back.
type ChangeWait = ReusableBoxFuture<'static, (ChangeResult, broadcast::Receiver<Arc<str>>)>;

async fn change_wait(
    mut rx: broadcast::Receiver<Arc<str>>,
) -> (ChangeResult, broadcast::Receiver<Arc<str>>) {
    let result = rx.recv().await;
    (result, rx)
}

/// Which of a viewer's wait sources woke it: each source is polled with a waker of its own
/// that sets the source's bit before waking the task, so a wake-up polls only the sources that
/// fired (re-polling a registered wait takes its channel's lock, and 10,000 viewers woken by
/// one update would otherwise all take the locks of every other channel).
#[derive(Debug, Default)]
struct WakeFlags {
    bits: AtomicU64,
    task: AtomicWaker,
}

struct SourceWaker {
    bit: u64,
    flags: Arc<WakeFlags>,
}

impl std::task::Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flags.bits.fetch_or(self.bit, Ordering::AcqRel);
        self.flags.task.wake();
    }
}

/// Bits of the wait sources; topic `i` has bit `TOPIC_BIT + i` (the last bit is shared by
/// topics beyond it).
const SHUTDOWN_BIT: u32 = 0;
const CHANGES_BIT: u32 = 1;
const STATUS_BIT: u32 = 2;
const LINK_BIT: u32 = 3;
const KEEP_ALIVE_BIT: u32 = 4;
const TOPIC_BIT: u32 = 5;

fn topic_bit(index: usize) -> u32 {
    (TOPIC_BIT as usize + index).min(63) as u32
}

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

/// Counts open streams in the `rtdash_gateway_sse_clients` gauge while alive.
struct ClientGauge;

impl ClientGauge {
    fn new() -> Self {
        metrics::gauge!(crate::metrics::SSE_CLIENTS).increment(1.0);
        Self
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::SSE_CLIENTS).decrement(1.0);
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
    flags: Arc<WakeFlags>,
    /// Per source bit (see [`WakeFlags`]).
    wakers: Vec<Waker>,
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
        // Every source is polled the first time.
        let flags = Arc::new(WakeFlags {
            bits: AtomicU64::new(u64::MAX),
            task: AtomicWaker::new(),
        });
        let topics_len = topics.len();
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
            sent: metrics::counter!(crate::metrics::SSE_EVENTS_SENT),
            wakers: (0..=topic_bit(topics_len))
                .map(|bit| {
                    Waker::from(Arc::new(SourceWaker {
                        bit: 1 << bit,
                        flags: flags.clone(),
                    }))
                })
                .collect(),
            flags,
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

    /// The next frame to send; `None` ends the stream.
    async fn next_frame(&mut self) -> Option<Bytes> {
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
        self.flags.task.register(cx.waker());
        let bits = self.flags.bits.swap(0, Ordering::AcqRel);
        let wake = self.poll_sources(bits);
        if let Poll::Ready((_, unpolled)) = &wake {
            // Sources not looked at this time (or re-armed, never polled yet): next time.
            self.flags.bits.fetch_or(*unpolled, Ordering::AcqRel);
        }
        wake.map(|(wake, _)| wake)
    }

    /// Polls the sources whose bit is in `bits`; on a wake-up also returns the bits to poll
    /// next time (those not polled, and those re-armed with a fresh wait).
    fn poll_sources(&mut self, bits: u64) -> Poll<(Wake, u64)> {
        let mut polled = 0u64;
        let mut rearmed = 0u64;
        let mut take = |bit: u32| {
            let mask = 1u64 << bit;
            polled |= mask;
            bits & mask != 0
        };
        let mut wake = None;
        if take(SHUTDOWN_BIT) {
            let mut cx = Context::from_waker(&self.wakers[SHUTDOWN_BIT as usize]);
            if std::future::Future::poll(self.shutdown.as_mut(), &mut cx).is_ready() {
                return Poll::Ready((Wake::Shutdown, 0));
            }
        }
        if take(CHANGES_BIT) {
            if let Some(wait) = &mut self.changes {
                let mut cx = Context::from_waker(&self.wakers[CHANGES_BIT as usize]);
                if let Poll::Ready((change, rx)) = wait.poll(&mut cx) {
                    if matches!(change, Err(broadcast::error::RecvError::Closed)) {
                        self.changes = None;
                    } else {
                        wait.set(change_wait(rx));
                        rearmed |= 1 << CHANGES_BIT;
                    }
                    wake = Some(Wake::Config(change));
                }
            }
        }
        if wake.is_none() {
            let mut updated = false;
            for (index, wait) in self.watches.iter_mut().enumerate() {
                let bit = topic_bit(index);
                if !take(bit) {
                    continue;
                }
                let mut cx = Context::from_waker(&self.wakers[bit as usize]);
                if let Poll::Ready((result, rx)) = wait.poll(&mut cx) {
                    if result.is_ok() {
                        wait.set(watch_wait(rx));
                        rearmed |= 1 << bit;
                        updated = true;
                    } else {
                        wait.set(futures::future::pending());
                    }
                }
            }
            if updated {
                wake = Some(Wake::Update);
            }
        }
        if wake.is_none() && take(STATUS_BIT) {
            if let Some(wait) = &mut self.status {
                let mut cx = Context::from_waker(&self.wakers[STATUS_BIT as usize]);
                if let Poll::Ready((result, mut rx)) = wait.poll(&mut cx) {
                    if result.is_ok() {
                        let view = rx.borrow_and_update().clone();
                        wait.set(watch_wait(rx));
                        rearmed |= 1 << STATUS_BIT;
                        wake = Some(Wake::Status(view));
                    } else {
                        self.status = None;
                    }
                }
            }
        }
        if wake.is_none() && take(LINK_BIT) {
            if let Some(wait) = &mut self.link {
                let mut cx = Context::from_waker(&self.wakers[LINK_BIT as usize]);
                if let Poll::Ready((result, mut rx)) = wait.poll(&mut cx) {
                    if result.is_ok() {
                        let link = *rx.borrow_and_update();
                        wait.set(watch_wait(rx));
                        rearmed |= 1 << LINK_BIT;
                        wake = Some(Wake::Link(link));
                    } else {
                        self.link = None;
                    }
                }
            }
        }
        if wake.is_none() && take(KEEP_ALIVE_BIT) {
            let mut cx = Context::from_waker(&self.wakers[KEEP_ALIVE_BIT as usize]);
            if self.keep_alive.poll_tick(&mut cx).is_ready() {
                // The interval registers for its next tick when polled again.
                rearmed |= 1 << KEEP_ALIVE_BIT;
                wake = Some(Wake::KeepAlive);
            }
        }
        match wake {
            Some(wake) => Poll::Ready((wake, (bits & !polled) | rearmed)),
            None => Poll::Pending,
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
            .push_back(frame("reload", None, &data.to_string()));
        self.done = true;
    }

    /// After a NATS reconnection: updates published meanwhile were lost, so every widget
    /// gets a fresh snapshot (queried again), and reading resumes from the rings' ends.
    async fn resnapshot(&mut self) {
        metrics::counter!(crate::metrics::SSE_RESNAPSHOTS).increment(1);
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
                return Some((Vec::new(), view.error.clone()));
            };
            match snapshots.rows(handle, view.range_ms).await {
                Ok(rows) => {
                    let plan = &handle.reg.plan;
                    let now = now_millis();
                    let from = plan.bucket_of(now - view.range_ms);
                    let in_range = rows.rows.iter().filter(|row| row.window_start >= from);
                    let mut windows: BTreeMap<i64, DerivedWindow> =
                        query::derive(plan, in_range, now, closed_through)
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
                    // Coalesce: the latest value per (widget, window), in id order.
                    let mut latest_per: BTreeMap<(usize, i64), Arc<super::ring::RingEntry>> =
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
                    let mut ordered: Vec<((usize, i64), Arc<super::ring::RingEntry>)> =
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
                    metrics::counter!(crate::metrics::SSE_RESYNCS).increment(1);
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
        entry: Option<&super::ring::RingEntry>,
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
        self.pending.push_back(frame("update", Some(&id), &json));
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
