//! `core-aggregator recompute`: rebuilds windows from the raw-event archive (RTDASH_EVENTS,
//! NDJSON chunks as the edge agents archive them) with the metric definitions in the config
//! bucket; a chunk stored twice under the same message id counts once.

use std::time::Duration;

use rtdash_shared::{archive, names};
use rtdash_tests::aggregator::run_command;
use rtdash_tests::aggregator_env::AggregatorEnv;
use rtdash_tests::events::event_json;
use rtdash_tests::model::{mismatch, Expected};
use rtdash_tests::rng::TestRng;
use rtdash_tests::table::fetch_rows_where;
use rtdash_tests::time::format_rfc3339;
use rtdash_tests::workload::{base, TENANT, WINDOW_MS};
use rtdash_tests::QuestDb;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recompute_rebuilds_windows_from_the_archive_with_current_definitions() -> anyhow::Result<()>
{
    let db = QuestDb::shared()?;
    let env = AggregatorEnv::start().await?;
    // A 1 s duplicate window, so the test can store a chunk twice under the same id.
    let options = env.options("agg-recompute", db);
    let mut setup = options.clone();
    setup
        .settings
        .push(("STREAMS__DUPLICATE_WINDOW_SECS".into(), "1".into()));
    tokio::task::block_in_place(|| run_command(&setup, &["setup"]))?;

    // The current definition of `amount` (sum/percentiles of `amount`, distinct `user`, by
    // region, in 1 s windows).
    let kv = env.js.get_key_value(names::CONFIG_BUCKET).await?;
    let definition = json!({
        "name": "amount", "tenant_id": TENANT, "event_type": "purchase",
        "field": "amount", "unique": "user", "dimensions": ["region"], "window_secs": 1
    });
    kv.put(
        names::metric_config_key(Some(TENANT), "amount"),
        serde_json::to_vec(&definition)?.into(),
    )
    .await?;

    // Archive: purchases and page views over 5 windows, in NDJSON chunks.
    // A minute boundary: the built-in `events` metric has 60 s windows.
    let base = base(10) - base(10).rem_euclid(60_000);
    let mut rng = TestRng::seeded("recompute", 3);
    let mut expected = Expected::new();
    let mut events_total = 0u64;
    let mut chunks = Vec::new();
    let mut compressor = archive::ChunkCompressor::new(1)?;
    for chunk in 0..10 {
        let mut lines = Vec::new();
        for _ in 0..40 {
            let at = base + rng.below(5 * WINDOW_MS as u64) as i64;
            let start = at - at.rem_euclid(WINDOW_MS);
            events_total += 1;
            if rng.below(3) == 0 {
                lines.push(event_json(
                    TENANT,
                    "web",
                    "page_view",
                    json!({"path": "/"}),
                    at,
                ));
                continue;
            }
            let region = format!("r{}", rng.below(3));
            let amount = rng.below(10_000) as f64 * 0.25;
            let user = format!("u{}", rng.below(50));
            lines.push(event_json(
                TENANT,
                "web",
                "purchase",
                json!({"region": region, "amount": amount, "user": user}),
                at,
            ));
            for series in [json!({"region": region}).to_string(), "{}".to_owned()] {
                let acc = expected.entry((series, start)).or_default();
                acc.add(amount, Some(user.clone()));
            }
        }
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        // Every other chunk as an agent with `archive.compression = "zstd"` writes it.
        let body = if chunk % 2 == 1 {
            let compressed = compressor
                .compress(body.as_bytes())?
                .expect("the chunk compresses");
            assert!(archive::is_compressed(&compressed));
            compressed
        } else {
            body.into_bytes()
        };
        chunks.push((format!("edge-0.archive.{chunk}"), body));
    }
    let publish = |id: String, body: Vec<u8>| {
        let js = env.js.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            js.publish_with_headers(names::events_subject(TENANT), headers, body.into())
                .await?
                .await
                .map_err(anyhow::Error::from)
        }
    };
    for (id, body) in &chunks {
        publish(id.clone(), body.clone()).await?;
    }
    // After the duplicate window: the same chunk again (a retry from a restarted agent).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (id, body) = chunks[3].clone();
    assert!(!publish(id, body).await?.duplicate);

    let output = {
        let options = options.clone();
        let (from, to) = (format_rfc3339(base), format_rfc3339(base + 60_000));
        tokio::task::spawn_blocking(move || {
            run_command(
                &options,
                &[
                    "recompute",
                    "--from",
                    &from,
                    "--to",
                    &to,
                    "--tenant",
                    TENANT,
                ],
            )
        })
        .await??
    };
    assert!(
        output.contains("(1 duplicates, 0 undecodable skipped)"),
        "{output}"
    );
    db.wait_wal_applied(&env.table, Duration::from_secs(60))?;
    let rows = fetch_rows_where(db, &env.table, "metric = 'amount'")?;
    assert_eq!(mismatch(&rows, &expected, WINDOW_MS), None, "{output}");
    // The built-in `events` metric counts every event (its total series, one minute), the
    // chunk stored twice once.
    let totals = fetch_rows_where(db, &env.table, "metric = 'events' and dim_set is null")?;
    let counted: Vec<(i64, u64)> = totals.iter().map(|((_, t), r)| (*t, r.count)).collect();
    assert_eq!(counted, vec![(base, events_total)]);
    Ok(())
}
