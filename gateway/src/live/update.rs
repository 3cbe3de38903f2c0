//! Live window versions as the gateway reads them: the fields of
//! [`rtdash_shared::messages::WindowUpdate`] plus the optional `state` the aggregators add
//! (base64 of the window's sketch, present when the metric has values or a unique key, so
//! percentiles and distinct counts can be merged across series and windows). Base windows
//! and tier windows travel on the same subject; the window's length tells them apart.
//!
//! `WindowUpdate` in the shared crate now has the same `state` field; this mirror is to give
//! way to it (the JSON is the same).

use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::sketch::Stats;
use rtdash_shared::time::UnixMillis;
use rtdash_shared::wire::{self, Format, MessageKind, WireError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Bytes of the envelope header before a body (see `rtdash_shared::wire`).
const HEADER_LEN: usize = 5;

/// One published window version.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LiveWindow {
    /// Tenant.
    pub tenant_id: String,
    /// Metric name.
    pub metric: String,
    /// Dimension values (absent dimensions are `null`).
    pub dimensions: BTreeMap<String, Option<String>>,
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end (exclusive); its length says base window or tier.
    pub window_end: UnixMillis,
    /// The statistics.
    pub stats: Stats,
    /// Revision.
    pub revision: u32,
    /// Closed.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Events merged after the window closed.
    pub late_count: u64,
    /// When this version was produced.
    pub updated_at: UnixMillis,
    /// base64 of the window's sketch, when the metric has values or a unique key.
    #[serde(default)]
    pub state: Option<String>,
}

impl From<WindowUpdate> for LiveWindow {
    fn from(update: WindowUpdate) -> Self {
        Self {
            tenant_id: update.tenant_id,
            metric: update.metric,
            dimensions: update.dimensions,
            window_start: update.window_start,
            window_end: update.window_end,
            stats: update.stats,
            revision: update.revision,
            is_final: update.is_final,
            late_count: update.late_count,
            updated_at: update.updated_at,
            state: None,
        }
    }
}

/// Appends the versions of one live message (a single version or a batch) to `out`, in the
/// order they were published; returns how many. JSON bodies keep their `state`; binary ones
/// (which cannot carry it) decode as the shared type.
pub fn decode_live(payload: &[u8], out: &mut Vec<LiveWindow>) -> Result<usize, WireError> {
    let (_, format) = wire::peek_kind(payload)?;
    if format != Format::Json {
        let mut updates = Vec::new();
        let n = wire::decode_live_updates(payload, &mut updates)?;
        out.extend(updates.into_iter().map(LiveWindow::from));
        return Ok(n);
    }
    let batch = payload
        .get(HEADER_LEN..)
        .and_then(|body| body.iter().find(|b| !b.is_ascii_whitespace()))
        == Some(&b'[');
    if batch {
        let updates: Vec<LiveWindow> = wire::decode_borrowed(payload, MessageKind::WindowUpdate)?;
        let n = updates.len();
        out.extend(updates);
        Ok(n)
    } else {
        out.push(wire::decode_borrowed(payload, MessageKind::WindowUpdate)?);
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::update;
    use rtdash_shared::wire::encode;

    #[test]
    fn states_survive_decoding_in_both_forms() {
        let mut with_state = serde_json::to_value(update(0, &[("region", "eu")], 1, 10)).unwrap();
        with_state["state"] = serde_json::json!("AAEC");
        let mut one = b"RD\x01\x02\x01".to_vec();
        one.extend(serde_json::to_vec(&with_state).unwrap());
        let mut many = b"RD\x01\x02\x01".to_vec();
        many.extend(serde_json::to_vec(&serde_json::json!([with_state, with_state])).unwrap());
        let mut out = Vec::new();
        assert_eq!(decode_live(&one, &mut out).unwrap(), 1);
        assert_eq!(decode_live(&many, &mut out).unwrap(), 2);
        assert!(out.iter().all(|w| w.state.as_deref() == Some("AAEC")));
        // What the shared encoder writes (no state) and the binary form decode too.
        let plain = encode(&update(0, &[], 2, 10), Format::Json).unwrap();
        let binary = encode(&update(0, &[], 3, 10), Format::Binary).unwrap();
        decode_live(&plain, &mut out).unwrap();
        decode_live(&binary, &mut out).unwrap();
        assert_eq!(out[3].stats.count, 2);
        assert_eq!(out[4].stats.count, 3);
        assert!(out[3].state.is_none());
        assert!(decode_live(b"nope", &mut out).is_err());
    }
}
