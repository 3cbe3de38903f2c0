//! A minimal Server-Sent Events reader for the gateway's dashboard streams: what a browser's
//! `EventSource` would see, event by event, or as raw text.

use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::Value;
use tokio::time::Instant;

/// One event.
#[derive(Clone, Debug, Default)]
pub struct Event {
    /// `event:` (`message` when the block has none).
    pub event: String,
    /// `id:`, when the block has one.
    pub id: Option<String>,
    /// `data:` as JSON, or a JSON string holding the text when it is not JSON.
    pub data: Value,
    /// Whether `data:` was JSON.
    pub data_is_json: bool,
}

/// An open stream.
pub struct Sse {
    pub response: reqwest::Response,
    /// Text read but not yet consumed.
    buffer: String,
}

/// `GET <base>/v1/dashboards/<dashboard>/stream?tenant_id=<tenant>`: the dashboard's live
/// stream URL.
pub fn stream_url(base: &str, tenant: &str, dashboard: &str) -> String {
    format!("{base}/v1/dashboards/{dashboard}/stream?tenant_id={tenant}")
}

impl Sse {
    /// Reads events from an open stream response.
    pub fn new(response: reqwest::Response) -> Sse {
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// Opens `url` with `http`, with `Last-Event-ID` if given; fails unless it answers 200.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Sse> {
        let mut request = http.get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.context("open stream")?;
        ensure!(
            response.status().as_u16() == 200,
            "stream answered {}",
            response.status()
        );
        Ok(Sse::new(response))
    }

    /// The next event, or `None` at the end of the stream or after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        self.next_until(Some(Instant::now() + timeout)).await
    }

    /// The next event, or `None` at the end of the stream (or a read error) or at `deadline`
    /// (`None`: no deadline). Comment blocks (keep-alives) are skipped.
    pub async fn next_until(&mut self, deadline: Option<Instant>) -> Option<Event> {
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            if !self.read_chunk(deadline).await {
                return None;
            }
        }
    }

    /// The next event named `name` (skipping others).
    pub async fn next_named(&mut self, name: &str, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self.next_until(Some(deadline)).await?;
            if event.event == name {
                return Some(event);
            }
        }
    }

    /// Reads until the unread text contains `needle` (cheap: no parsing), or `timeout`;
    /// consumes the text up to the needle.
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.find(needle) {
                self.buffer.drain(..at + needle.len());
                return true;
            }
            if !self.read_chunk(Some(deadline)).await {
                return false;
            }
        }
    }

    /// Appends the next chunk to the buffer; false at the end of the stream, on a read error
    /// or at `deadline`.
    async fn read_chunk(&mut self, deadline: Option<Instant>) -> bool {
        let chunk = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                    Ok(chunk) => chunk,
                    Err(_) => return false,
                }
            }
            None => self.response.chunk().await,
        };
        match chunk {
            Ok(Some(chunk)) => {
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// Takes the first complete event out of the buffer, skipping comment blocks.
    fn parse_one(&mut self) -> Option<Event> {
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            if let Some(event) = parse_block(&block) {
                return Some(event);
            }
        }
        None
    }
}

/// One event block; `None` for a block with neither `event:` nor `data:` (a comment).
fn parse_block(block: &str) -> Option<Event> {
    let mut event = Event {
        event: "message".into(),
        ..Event::default()
    };
    let mut data = String::new();
    let mut any = false;
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event.event = value.trim().to_owned();
            any = true;
        } else if let Some(value) = line.strip_prefix("id:") {
            event.id = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
            any = true;
        }
    }
    if !any {
        return None;
    }
    match serde_json::from_str(&data) {
        Ok(json) => {
            event.data = json;
            event.data_is_json = true;
        }
        Err(_) => event.data = Value::String(data),
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_into_events() {
        let event = parse_block("event: update\nid: 7\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!(
            (event.event.as_str(), event.id.as_deref()),
            ("update", Some("7"))
        );
        assert!(event.data_is_json && event.data["a"] == 1);
        assert!(parse_block(": keep-alive\n\n").is_none());
        let plain = parse_block("data: hello\n\n").unwrap();
        assert_eq!(plain.event, "message");
        assert!(!plain.data_is_json && plain.data == "hello");
    }
}
