//! The stream's wire format: finished SSE frames (`Bytes` written straight into the response
//! body, no per-viewer `Event` building), the data of `snapshot` and `update` events, and the
//! event ids that let a viewer resume (`Last-Event-ID`).

use super::super::status::StatusView;
use crate::api::metric_answer::{SeriesOut, WindowOut};
use crate::error::ErrorDetail;
use crate::query::Dims;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The keep-alive comment.
pub(super) const KEEP_ALIVE: &[u8] = b":keep-alive\n\n";

/// One SSE frame: `event`, optional `id`, the data (one `data:` line per line) and the blank
/// line that dispatches it.
pub(super) fn frame(event: &str, id: Option<&str>, data: &str) -> Bytes {
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

/// The `status` frame of a published summary, serialized once whatever the number of viewers
/// (the cache holds the summary it was made from, so a pointer match is the same summary).
pub(super) fn status_frame(view: &Arc<StatusView>) -> Option<Bytes> {
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

/// A snapshot event's data.
#[derive(Serialize)]
pub(super) struct SnapshotData<'a> {
    pub(super) widget_id: &'a str,
    pub(super) metric_name: &'a str,
    pub(super) stat: &'static str,
    /// The window served (the one `auto` chose).
    pub(super) window: Option<String>,
    pub(super) window_auto: bool,
    /// The stored resolution read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) source_window: Option<String>,
    pub(super) dimensions: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) group_by: &'a [String],
    pub(super) time_window: &'a str,
    /// The same shape as a metric query's windows (empty when grouped).
    pub(super) windows: Vec<WindowOut>,
    /// Grouped widgets: the same shape as a grouped metric query's series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) series: Option<Vec<SeriesOut>>,
    pub(super) error: Option<&'a ErrorDetail>,
}

/// Which series of a grouped widget an update is for.
#[derive(Serialize)]
pub(super) struct SeriesRef<'a> {
    pub(super) dimensions: &'a Dims,
    pub(super) other: bool,
}

/// An update event's data.
#[derive(Serialize)]
pub(super) struct UpdateData<'a> {
    pub(super) widget_id: &'a str,
    pub(super) metric_name: &'a str,
    pub(super) stat: &'static str,
    /// Grouped widgets: the series the value is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) series: Option<SeriesRef<'a>>,
    pub(super) value: Option<f64>,
    pub(super) window_start: String,
    pub(super) window_end: String,
    pub(super) updated_at: String,
    pub(super) revision: u32,
    #[serde(rename = "final")]
    pub(super) is_final: bool,
    pub(super) late_count: u64,
    pub(super) delay_ms: i64,
    pub(super) stale: bool,
}

/// An event id: `<instance>.<cursor>...`, one cursor per topic of the stream.
pub(super) fn event_id(instance: &str, cursors: &[u64]) -> String {
    let mut id = instance.to_owned();
    for cursor in cursors {
        id.push('.');
        id.push_str(&cursor.to_string());
    }
    id
}

/// Parses `<instance>.<cursor>...`; `None` unless it is ours and has `topics` cursors.
pub(super) fn parse_event_id(id: &str, instance: &str, topics: usize) -> Option<Vec<u64>> {
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
        assert_eq!(event_id("ab", &[1, 2]), "ab.1.2");
        assert_eq!(
            parse_event_id(&event_id("ab", &[7]), "ab", 1),
            Some(vec![7])
        );
    }

    #[test]
    fn frames_put_every_data_line_on_a_line_of_its_own() {
        assert_eq!(
            &frame("update", Some("ab.1"), "{\"a\":1}")[..],
            b"event: update\nid: ab.1\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &frame("reload", None, "one\ntwo")[..],
            b"event: reload\ndata: one\ndata: two\n\n"
        );
    }
}
