//! Round trips through the real services the pipeline is built on, started by the harness:
//! JetStream (publish with acks, durable pull consumer) and QuestDB (ILP over HTTP, WAL
//! tables, `DEDUP UPSERT KEYS`).

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use questdb::ingress::{Buffer, Sender, TimestampMicros};
use rtdash_tests::{unique_name, NatsServer, QuestDb};
use serde_json::json;

/// Upper bound for anything that should take milliseconds.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches exactly `count` messages from `consumer`, double-acking each (the ack is confirmed
/// by the server), and returns their payloads in delivery order.
async fn fetch_and_ack(
    consumer: &consumer::PullConsumer,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut payloads = Vec::with_capacity(count);
    tokio::time::timeout(TIMEOUT, async {
        while payloads.len() < count {
            let mut batch = consumer
                .batch()
                .max_messages(count - payloads.len())
                .expires(Duration::from_secs(1))
                .messages()
                .await?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(anyhow::Error::from_boxed)?;
                payloads.push(String::from_utf8(message.payload.to_vec())?);
                message
                    .double_ack()
                    .await
                    .map_err(anyhow::Error::from_boxed)?;
            }
        }
        anyhow::Ok(())
    })
    .await
    .context("fetching messages timed out")??;
    Ok(payloads)
}

/// Messages available to `consumer` right now (no wait), without acking them.
async fn available(consumer: &consumer::PullConsumer) -> anyhow::Result<Vec<String>> {
    let mut batch = consumer.fetch().max_messages(100).messages().await?;
    let mut payloads = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(anyhow::Error::from_boxed)?;
        payloads.push(String::from_utf8(message.payload.to_vec())?);
    }
    Ok(payloads)
}

#[tokio::test]
async fn jetstream_durable_pull_consumer_resumes_after_reconnect() -> anyhow::Result<()> {
    const N: usize = 50;
    let nats = NatsServer::start()?;
    let stream_name = unique_name("RT");
    let subject = format!("{stream_name}.partials");
    let durable = "aggregator";

    // Publish N messages, each acknowledged by the stream in order.
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{stream_name}.>")],
            ..Default::default()
        })
        .await?;
    let expected: Vec<String> = (0..N).map(|i| format!("partial-{i}")).collect();
    for (i, payload) in expected.iter().enumerate() {
        let ack = js
            .publish(subject.clone(), payload.clone().into())
            .await?
            .await?;
        assert_eq!(ack.stream, stream_name);
        assert_eq!(ack.sequence, i as u64 + 1);
        assert!(!ack.duplicate);
    }

    // A durable pull consumer gets all of them, in order; ack them all.
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(durable.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    assert_eq!(fetch_and_ack(&consumer, N).await?, expected);
    drop(consumer);
    drop(stream);
    drop(js);
    client.drain().await?;

    // A new connection and a new handle on the same durable: nothing is left to deliver.
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(&stream_name).await?;
    let mut consumer: consumer::PullConsumer = stream
        .get_consumer(durable)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let info = consumer.info().await?;
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, N as u64);
    assert_eq!(available(&consumer).await?, Vec::<String>::new());

    // ...and it still delivers what comes next, exactly that.
    js.publish(subject.clone(), "after-reconnect".into())
        .await?
        .await?;
    assert_eq!(fetch_and_ack(&consumer, 1).await?, ["after-reconnect"]);
    assert_eq!(available(&consumer).await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn nats_restart_keeps_port_and_stream() -> anyhow::Result<()> {
    let mut nats = NatsServer::start()?;
    let port = nats.port();
    let stream_name = unique_name("RESTART");
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: stream_name.clone(),
        subjects: vec![format!("{stream_name}.>")],
        ..Default::default()
    })
    .await?;
    for i in 0..3 {
        js.publish(format!("{stream_name}.x"), format!("m{i}").into())
            .await?
            .await?;
    }

    nats.stop();
    assert!(!nats.is_running());
    assert!(
        async_nats::connect(nats.url()).await.is_err(),
        "server still answers"
    );
    nats.restart()?;
    assert_eq!(nats.port(), port);

    // The old client reconnects by itself; the stream and its messages survived.
    let mut stream = tokio::time::timeout(TIMEOUT, async {
        loop {
            match js.get_stream(&stream_name).await {
                Ok(stream) => return stream,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await?;
    assert_eq!(stream.info().await?.state.messages, 3);
    Ok(())
}

/// A row of the tables below.
struct Row {
    k: &'static str,
    v: f64,
    n: i64,
    /// Micros since the epoch.
    ts: i64,
}

/// 2024-01-01T00:00:00Z in micros.
const T0: i64 = 1_704_067_200_000_000;

fn append(buffer: &mut Buffer, table: &str, row: &Row) -> anyhow::Result<()> {
    buffer
        .table(table)?
        .symbol("k", row.k)?
        .column_f64("v", row.v)?
        .column_i64("n", row.n)?
        .at(TimestampMicros::new(row.ts))?;
    Ok(())
}

fn write(db: &QuestDb, table: &str, rows: &[Row]) -> anyhow::Result<()> {
    let mut sender = Sender::from_conf(db.ilp_http_conf())?;
    let mut buffer = sender.new_buffer();
    for row in rows {
        append(&mut buffer, table, row)?;
    }
    sender.flush(&mut buffer)?;
    Ok(())
}

#[test]
fn questdb_ilp_http_rows_read_back_exactly() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let table = unique_name("ilp_roundtrip");
    let rows = [
        Row {
            k: "a",
            v: 1.5,
            n: 1,
            ts: T0,
        },
        Row {
            k: "b",
            v: -2.25,
            n: 2,
            ts: T0 + 1_000_000,
        },
        Row {
            k: "a",
            v: 1e-3,
            n: i64::MAX,
            ts: T0 + 60_000_000,
        },
    ];
    write(db, &table, &rows)?;
    db.wait_wal_applied(&table, TIMEOUT)?;

    let answer = db.exec(&format!(
        "select k, v, n, timestamp from '{table}' order by timestamp"
    ))?;
    assert_eq!(answer["count"], 3);
    assert_eq!(
        answer["dataset"],
        json!([
            ["a", 1.5, 1, "2024-01-01T00:00:00.000000Z"],
            ["b", -2.25, 2, "2024-01-01T00:00:01.000000Z"],
            ["a", 0.001, i64::MAX, "2024-01-01T00:01:00.000000Z"],
        ])
    );
    Ok(())
}

#[test]
fn questdb_dedup_upsert_keeps_the_latest_write_per_key() -> anyhow::Result<()> {
    let db = QuestDb::shared()?;
    let table = unique_name("dedup_upsert");
    db.exec(&format!(
        "create table '{table}' (k symbol, v double, n long, ts timestamp) \
         timestamp(ts) partition by day wal dedup upsert keys(ts, k)"
    ))?;

    // Two keys, then a rewrite of one of them (a window's next revision), as separate commits.
    write(
        db,
        &table,
        &[
            Row {
                k: "a",
                v: 1.0,
                n: 1,
                ts: T0,
            },
            Row {
                k: "b",
                v: 10.0,
                n: 1,
                ts: T0,
            },
        ],
    )?;
    db.wait_wal_applied(&table, TIMEOUT)?;
    write(
        db,
        &table,
        &[Row {
            k: "a",
            v: 2.0,
            n: 2,
            ts: T0,
        }],
    )?;
    db.wait_wal_applied(&table, TIMEOUT)?;

    let answer = db.exec(&format!("select k, v, n, ts from '{table}' order by k"))?;
    assert_eq!(
        answer["dataset"],
        json!([
            ["a", 2.0, 2, "2024-01-01T00:00:00.000000Z"],
            ["b", 10.0, 1, "2024-01-01T00:00:00.000000Z"],
        ])
    );

    // The same row again (a replay) changes nothing.
    write(
        db,
        &table,
        &[Row {
            k: "a",
            v: 2.0,
            n: 2,
            ts: T0,
        }],
    )?;
    db.wait_wal_applied(&table, TIMEOUT)?;
    let count = db.exec(&format!("select count() from '{table}'"))?;
    assert_eq!(count["dataset"], json!([[2]]));
    Ok(())
}

#[test]
fn questdb_restart_keeps_ports_and_data() -> anyhow::Result<()> {
    let mut db = QuestDb::start()?;
    let addr = db.http_addr();
    let table = unique_name("restart");
    write(
        &db,
        &table,
        &[Row {
            k: "a",
            v: 1.0,
            n: 1,
            ts: T0,
        }],
    )?;
    db.wait_wal_applied(&table, TIMEOUT)?;

    db.stop();
    assert!(!db.is_running());
    assert!(db.exec("select 1").is_err(), "server still answers");
    db.restart()?;
    assert_eq!(db.http_addr(), addr);
    let answer = db.exec(&format!("select k, v, n from '{table}'"))?;
    assert_eq!(answer["dataset"], json!([["a", 1.0, 1]]));
    Ok(())
}
