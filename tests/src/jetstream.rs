//! JetStream from the tests' side: connecting (to a server, a cluster, an edge site),
//! publishing with retries under faults, reading a stream back, counting its messages.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use async_nats::jetstream::{self, consumer, message::PublishMessage};
use futures::StreamExt;

/// Connects to every URL in `urls`, reconnecting forever (the client moves to another node
/// when the one it uses dies).
pub async fn connect(urls: &[String], name: &str) -> anyhow::Result<async_nats::Client> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>)
        .connect(urls)
        .await
        .with_context(|| format!("connect to {urls:?}"))?;
    Ok(client)
}

/// [`connect`] as `credentials` (user, password, TLS with its CA): a locked-down hub or
/// edge site ([`crate::cluster`]).
pub async fn connect_as(
    urls: &[String],
    name: &str,
    credentials: &crate::cluster::Credentials,
) -> anyhow::Result<async_nats::Client> {
    let client = credentials
        .connect_options()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>)
        .connect(urls)
        .await
        .with_context(|| format!("connect to {urls:?} as {}", credentials.user))?;
    Ok(client)
}

/// A JetStream context with a short API / ack timeout, so a publish to a dead stream leader
/// fails fast and is retried.
pub fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(timeout);
    js
}

/// Puts `value` under `key`, retrying for up to 10 s (right after a bucket is created its
/// R3 stream may still be electing a leader: "no stream found").
pub async fn kv_put(kv: &jetstream::kv::Store, key: &str, value: &str) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match kv.put(key, value.to_owned().into_bytes().into()).await {
            Ok(revision) => return Ok(revision),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err).with_context(|| format!("put {key}")),
        }
    }
}

/// How a publish went.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// Attempts that failed (no ack: timeout, no responders, connection lost) and were retried.
    pub retries: u32,
    /// The stream answered `duplicate`: an earlier attempt had been stored.
    pub duplicate: bool,
    /// Stream sequence of the message.
    pub sequence: u64,
}

/// Publishes until the stream acknowledges it, retrying with the same `Nats-Msg-Id` (the
/// stream deduplicates), every 100 ms, for at most `deadline`.
pub async fn publish_until_acked(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: &[u8],
    deadline: Duration,
) -> anyhow::Result<(Published, jetstream::publish::PublishAck)> {
    let give_up = tokio::time::Instant::now() + deadline;
    let mut published = Published::default();
    loop {
        let attempt = async {
            let ack = js
                .send_publish(
                    subject.to_owned(),
                    PublishMessage::build()
                        .message_id(id)
                        .payload(payload.to_vec().into()),
                )
                .await?;
            anyhow::Ok(ack.await?)
        };
        let error = match attempt.await {
            Ok(ack) => {
                published.duplicate = ack.duplicate;
                published.sequence = ack.sequence;
                return Ok((published, ack));
            }
            Err(err) => err,
        };
        if tokio::time::Instant::now() >= give_up {
            return Err(error.context(format!(
                "publish {id} to {subject}: no ack within {deadline:?} ({} retries)",
                published.retries
            )));
        }
        published.retries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Stream sequence.
    pub sequence: u64,
    pub subject: String,
    /// `Nats-Msg-Id`, empty when absent.
    pub msg_id: String,
    pub payload: Vec<u8>,
    /// Every header (first value of each).
    pub headers: HashMap<String, String>,
}

/// Reads every message of `stream` in stream order (an ordered consumer from the start),
/// expecting exactly `expected` of them; fails after `timeout`.
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &str,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Stored>> {
    let stream_handle = js.get_stream(stream).await?;
    let consumer = stream_handle
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::with_capacity(expected);
    tokio::time::timeout(timeout, async {
        while out.len() < expected {
            let Some(message) = messages.next().await else {
                bail!("the ordered consumer ended");
            };
            let message = message?;
            let info = message.info().map_err(anyhow::Error::from_boxed)?;
            let mut headers = HashMap::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    if let Some(value) = values.first() {
                        headers.insert(name.to_string(), value.to_string());
                    }
                }
            }
            out.push(Stored {
                sequence: info.stream_sequence,
                subject: message.subject.to_string(),
                msg_id: headers.get("Nats-Msg-Id").cloned().unwrap_or_default(),
                payload: message.payload.to_vec(),
                headers,
            });
        }
        anyhow::Ok(())
    })
    .await
    .with_context(|| {
        format!(
            "reading {stream}: {} of {expected} messages within {timeout:?}",
            out.len()
        )
    })??;
    Ok(out)
}

/// Messages in `stream` now (from its leader).
pub async fn stream_messages(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    let mut handle = js.get_stream(stream).await?;
    Ok(handle.info().await?.state.messages)
}

/// Waits until `stream` holds at least `count` messages (30 s at most).
pub async fn wait_messages_at_least(
    js: &jetstream::Context,
    stream: &str,
    count: u64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = stream_messages(js, stream).await.unwrap_or(0);
        if n >= count {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{stream}: {n} of {count} messages");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `stream` holds `count` messages; fails after `timeout` with the last count.
pub async fn wait_messages(
    js: &jetstream::Context,
    stream: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match stream_messages(js, stream).await {
            Ok(n) if n == count => return Ok(()),
            Ok(n) if n > count => {
                bail!("{stream} holds {n} messages, more than the {count} expected")
            }
            Ok(n) => n.to_string(),
            Err(err) => format!("error: {err:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{stream} did not reach {count} messages within {timeout:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
