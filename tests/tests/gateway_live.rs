//! Live streams against real NATS and QuestDB: snapshots then updates (revisions included),
//! shared upstream subscriptions, `Last-Event-ID` resumption, slow clients, the stream cap and shutdown.

use std::time::{Duration, Instant};

use rtdash_tests::gateway_env::amount::{self, at, provisional, total, us};
use rtdash_tests::gateway_env::GatewayEnv;
use rtdash_tests::time::{minute, now_millis};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_live_updates_and_revisions() {
    let env = GatewayEnv::start(|_| {}).await;
    let base = minute(0);
    amount::define(&env).await;
    let rows = vec![
        us(at(base, 3), 10),
        us(at(base, 2), 20),
        us(at(base, 1), 30),
        total(at(base, 3), 11),
        total(at(base, 2), 21),
        total(at(base, 1), 31),
    ];
    env.insert(&rows);
    let (dashboard, widgets) = env
        .dashboard("acme", vec![
            json!({"metric_name": "amount", "dimensions": {"region": "us"}, "stat": "count", "time_window": "last_15m"}),
            json!({"metric_name": "amount", "stat": "sum", "window": "5m", "time_window": "last_1h"}),
            json!({"metric_name": "amount", "dimensions": {"region": "us"}, "stat": "p99", "time_window": "last_15m"}),
        ])
        .await;
    let mut sse = env.stream("acme", &dashboard, None).await;
    let mut snapshots = std::collections::HashMap::new();
    for _ in 0..3 {
        let event = sse.next_named("snapshot", T).await.expect("snapshot");
        assert!(event.id.is_some());
        snapshots.insert(
            event.data["widget_id"].as_str().unwrap().to_owned(),
            event.data,
        );
    }
    let counts: Vec<f64> = snapshots[&widgets[0]]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_f64().unwrap())
        .collect();
    assert_eq!(counts, vec![10.0, 20.0, 30.0]);
    assert_eq!(snapshots[&widgets[0]]["error"], Value::Null);
    let p99: Vec<f64> = snapshots[&widgets[2]]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_f64().unwrap())
        .collect();
    assert_eq!(p99, vec![9.5, 19.5, 29.5]);
    // 5-minute sums from the total rows.
    let mut want_5m = std::collections::BTreeMap::new();
    for row in rows.iter().filter(|r| r.dims.is_empty()) {
        *want_5m.entry(row.start / 300_000 * 300_000).or_insert(0.0) += row.sum.unwrap();
    }
    let sums: Vec<f64> = snapshots[&widgets[1]]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_f64().unwrap())
        .collect();
    assert_eq!(sums, want_5m.values().cloned().collect::<Vec<_>>());
    let status = sse.next_named("status", T).await.expect("status");
    assert_eq!(status.data["state"], "unknown");

    // A provisional update of the current minute.
    env.publish(&provisional(us(at(base, 0), 5)).update(now_millis()))
        .await;
    let update = sse.next_named("update", T).await.expect("update");
    let data = &update.data;
    let widget = data["widget_id"].as_str().unwrap();
    assert!(widget == widgets[0] || widget == widgets[2], "{data}");
    let mut seen = std::collections::HashMap::new();
    seen.insert(widget.to_owned(), data.clone());
    let second = sse
        .next_named("update", T)
        .await
        .expect("second widget's update");
    seen.insert(
        second.data["widget_id"].as_str().unwrap().to_owned(),
        second.data.clone(),
    );
    assert_eq!(seen[&widgets[0]]["value"], 5.0);
    assert_eq!(seen[&widgets[0]]["final"], false);
    assert_eq!(seen[&widgets[0]]["stat"], "count");
    assert!(seen[&widgets[0]]["delay_ms"].as_i64().unwrap() < 5_000);
    assert_eq!(seen[&widgets[2]]["value"], 4.5);
    // The total's update feeds the 5-minute sum: snapshot rows plus the live one.
    env.publish(&provisional(total(at(base, 0), 7)).update(now_millis()))
        .await;
    let update = sse.next_named("update", T).await.expect("5m update");
    assert_eq!(update.data["widget_id"], widgets[1].as_str());
    let bucket = at(base, 0) / 300_000 * 300_000;
    let want: f64 = rows
        .iter()
        .filter(|r| r.dims.is_empty() && r.start >= bucket)
        .map(|r| r.sum.unwrap())
        .sum::<f64>()
        + 14.0;
    assert_eq!(update.data["value"], want, "{}", update.data);
    // A late correction of a closed window: revision 1.
    let mut corrected = us(at(base, 2), 25);
    corrected.revision = 1;
    env.publish(&corrected.update(now_millis())).await;
    let update = sse.next_named("update", T).await.expect("revision");
    assert_eq!(update.data["revision"], 1);
    assert_eq!(update.data["final"], true);
    assert_eq!(
        update.data["window_start"],
        rtdash_shared::time::format_rfc3339(at(base, 2))
    );
    // One upstream subscription for the three widgets.
    assert_eq!(env.state.hub.subscriptions(), 1);
    // Another tenant's updates on its own subject never show up here.
    let mut foreign = us(at(base, 0), 999);
    foreign.tenant = "other".into();
    env.publish(&foreign.update(now_millis())).await;
    let mut update = provisional(us(at(base, 0), 6));
    update.count = 6;
    env.publish(&update.update(now_millis())).await;
    let next = sse.next_named("update", T).await.expect("update");
    assert_ne!(next.data["value"], 999.0);
    // Changing the dashboard reloads the stream.
    let (status, _) = env
        .send(
            "PUT",
            &format!("/v1/dashboards/{dashboard}?tenant_id=acme"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(status, 200);
    let reload = sse.next_named("reload", T).await.expect("reload");
    assert_eq!(reload.data["reason"], "updated");
    assert!(sse.next(T).await.is_none(), "stream ends after reload");
    drop(sse);
    // The last viewer gone, the subscription lingers (until `live.topic_linger_ms`: see
    // a_reopened_dashboard_keeps_the_open_windows_live_value), one for the metric.
    assert!(
        eventually(T, || env.state.hub.sweep_lingering() == 1).await,
        "the topic lingers once the last viewer left"
    );
    assert_eq!(env.state.hub.subscriptions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_without_a_gap() {
    let env = GatewayEnv::start(|_| {}).await;
    let base = minute(0);
    amount::define(&env).await;
    let (dashboard, _) = env
        .dashboard("acme", vec![json!({"metric_name": "amount", "dimensions": {"region": "us"}, "time_window": "last_15m"})])
        .await;
    // A second viewer keeps the topic (and its ring) alive while the first is away.
    let mut keeper = env.stream("acme", &dashboard, None).await;
    keeper.next_named("snapshot", T).await.expect("snapshot");
    let mut viewer = env.stream("acme", &dashboard, None).await;
    viewer.next_named("snapshot", T).await.expect("snapshot");
    env.publish(&provisional(us(at(base, 1), 1)).update(now_millis()))
        .await;
    let first = viewer.next_named("update", T).await.expect("update");
    let id = first.id.clone().expect("update id");
    drop(viewer);
    // Missed while away: two windows.
    env.publish(&provisional(us(at(base, 1), 2)).update(now_millis()))
        .await;
    env.publish(&provisional(us(at(base, 0), 3)).update(now_millis()))
        .await;
    keeper
        .next_named("update", T)
        .await
        .expect("keeper sees them");
    keeper
        .next_named("update", T)
        .await
        .expect("keeper sees them");
    let mut resumed = env.stream("acme", &dashboard, Some(&id)).await;
    let a = resumed.next(T).await.expect("event");
    assert_eq!(a.event, "status", "no snapshot on resume: {a:?}");
    let a = resumed.next_named("update", T).await.expect("missed 1");
    let b = resumed.next_named("update", T).await.expect("missed 2");
    assert_eq!(
        (a.data["value"].as_f64(), b.data["value"].as_f64()),
        (Some(2.0), Some(3.0))
    );
    // An unknown or foreign id falls back to snapshots.
    let mut fresh = env.stream("acme", &dashboard, Some("deadbeef.1")).await;
    let first = fresh.next(T).await.expect("event");
    assert_eq!(first.event, "snapshot");
    let values: Vec<f64> = first.data["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        values,
        vec![2.0, 3.0],
        "snapshot includes live values from memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_delay_others_and_gets_coalesced_values() {
    let env = GatewayEnv::start(|config| config.live.ring_capacity = 256).await;
    let base = minute(0);
    amount::define(&env).await;
    let widgets: Vec<Value> = (0..20)
        .map(|_| json!({"metric_name": "amount", "dimensions": {"region": "us"}, "time_window": "last_15m"}))
        .collect();
    let (dashboard, _) = env.dashboard("acme", widgets).await;
    let mut slow = env.stream("acme", &dashboard, None).await; // never read until the end
    let mut fast = env.stream("acme", &dashboard, None).await;
    for _ in 0..20 {
        fast.next_named("snapshot", T).await.expect("snapshot");
    }
    let updates = 2_000u64;
    let reader = tokio::spawn(async move {
        let mut last = (0.0, Instant::now());
        let mut events = 0u64;
        while let Some(event) = fast.next_named("update", T).await {
            events += 1;
            let value = event.data["value"].as_f64().unwrap();
            if value > last.0 {
                last = (value, Instant::now());
            }
            if value as u64 == updates && events >= 20 {
                break;
            }
        }
        (last, events)
    });
    let started = Instant::now();
    for count in 1..=updates {
        env.publish(&provisional(us(at(base, 0), count)).update(now_millis()))
            .await;
    }
    let published = Instant::now();
    let ((last_value, seen_at), fast_events) = reader.await.unwrap();
    assert_eq!(last_value, updates as f64);
    let delay = seen_at.saturating_duration_since(published);
    eprintln!("fast client: {fast_events} events, last seen {delay:?} after the last publish (publishing took {:?})", published - started);
    assert!(delay < Duration::from_secs(1), "{delay:?}");
    // The stalled client now reads: it ends on the latest value, with far fewer events than
    // were produced for it (20 widgets x 2,000 updates).
    let mut events = 0u64;
    let mut latest = 0.0;
    while let Some(event) = slow.next(Duration::from_secs(2)).await {
        if event.event == "update" {
            events += 1;
            latest = event.data["value"].as_f64().unwrap();
            if latest == updates as f64 && events > 20 {
                // keep draining what is left of this batch
            }
        }
    }
    eprintln!(
        "stalled client: {events} update events after resuming (of {} produced)",
        updates * 20
    );
    assert_eq!(latest, updates as f64);
    assert!(events < updates * 20, "coalesced: {events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cap_answers_503_and_streams_end_on_shutdown() {
    let mut env = GatewayEnv::start(|config| config.live.max_streams = 2).await;
    let (dashboard, _) = env
        .dashboard("acme", vec![json!({"metric_name": "events"})])
        .await;
    let mut a = env.stream("acme", &dashboard, None).await;
    let mut b = env.stream("acme", &dashboard, None).await;
    a.next_named("snapshot", T).await.expect("snapshot");
    b.next_named("snapshot", T).await.expect("snapshot");
    let response = env
        .http
        .get(env.url(&format!("/v1/dashboards/{dashboard}/stream?tenant_id=acme")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    // Shutdown ends both streams, and the server stops well within its grace period.
    let took = env.stop().await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    let started = Instant::now();
    while a.next(T).await.is_some() {}
    while b.next(T).await.is_some() {}
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Core NATS does not replay what was published while the gateway was disconnected. While it
/// is, streams say so (`status` `disconnected`, stale); once it is back, every widget gets a
/// fresh snapshot that includes what was missed, live updates flow again, and a cursor from
/// before the outage no longer resumes (it would skip what was lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_is_shown_and_followed_by_fresh_snapshots() {
    let mut env = GatewayEnv::start(|config| config.live.resync_settle_ms = 1_000).await;
    let base = minute(0);
    amount::define(&env).await;
    env.insert(&[
        us(at(base, 3), 10),
        us(at(base, 2), 20),
        total(at(base, 3), 11),
        total(at(base, 2), 21),
    ]);
    let (dashboard, widgets) = env
        .dashboard("acme", vec![
            json!({"metric_name": "amount", "dimensions": {"region": "us"}, "stat": "count", "time_window": "last_15m"}),
            json!({"metric_name": "amount", "stat": "count", "window": "5m", "time_window": "last_1h"}),
        ])
        .await;
    let mut sse = env.stream("acme", &dashboard, None).await;
    for _ in 0..2 {
        sse.next_named("snapshot", T).await.expect("snapshot");
    }
    env.publish(&provisional(us(at(base, 1), 30)).update(now_millis()))
        .await;
    let before = sse.next_named("update", T).await.expect("live update");
    assert_eq!(before.data["value"], 30.0);
    let old_id = before.id.clone().expect("id");

    tokio::task::block_in_place(|| env.nats.stop());
    let status = loop {
        let event = sse
            .next_named("status", T)
            .await
            .expect("status while down");
        if event.data["state"] == "disconnected" {
            break event;
        }
    };
    assert_eq!(status.data["stale"], true);
    // Meanwhile the aggregator wrote windows whose live updates nobody could receive.
    env.insert(&[us(at(base, 1), 77), total(at(base, 1), 78)]);
    tokio::task::block_in_place(|| env.nats.restart()).expect("NATS back");

    // Fresh snapshots of both widgets, with what was missed.
    let mut fresh = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fresh.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = sse
            .next(left)
            .await
            .expect("fresh snapshots after reconnecting");
        if event.event == "snapshot" {
            fresh.insert(
                event.data["widget_id"].as_str().unwrap().to_owned(),
                event.data,
            );
        }
    }
    let values = |data: &Value| -> Vec<f64> {
        data["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values(&fresh[&widgets[0]]), vec![10.0, 20.0, 77.0]);
    let total_5m: f64 = values(&fresh[&widgets[1]]).iter().sum();
    assert_eq!(total_5m, 11.0 + 21.0 + 78.0);
    assert!(
        env.state.status.view(false).state != gateway::live::status::FreshnessState::Disconnected
    );

    // Live updates flow again (the test's own client reconnects too; retry until it has).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut count = 100;
    loop {
        count += 1;
        env.publish(&provisional(us(at(base, 0), count)).update(now_millis()))
            .await;
        if let Some(update) = sse.next_named("update", Duration::from_secs(1)).await {
            if update.data["window_start"] == rtdash_shared::time::format_rfc3339(at(base, 0)) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no live update after reconnecting"
        );
    }

    // A cursor from before the outage starts over with snapshots.
    let mut resumed = env.stream("acme", &dashboard, Some(&old_id)).await;
    let first = resumed.next(T).await.expect("event");
    assert_eq!(first.event, "snapshot", "{first:?}");
}

/// Core NATS is at most once: a gateway can miss a window's final update (it subscribed just
/// after the publish, and its snapshot read QuestDB before the row was applied). Windows the
/// gateway still holds as provisional although they are closed everywhere are read back from
/// QuestDB, and viewers get the final version as an ordinary update, with nothing published.
/// Without partition reports (no aggregator here) a window counts as closed 5 minutes after
/// its end; windows more recent than that are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_final_update_is_read_back_from_questdb() {
    let env = GatewayEnv::start(|config| config.live.repair_interval_ms = 200).await;
    let base = minute(0);
    amount::define(&env).await;
    let old = at(base, 8);
    let recent = at(base, 2);
    env.insert(&[
        provisional(us(old, 10)),
        provisional(us(recent, 20)),
        us(at(base, 9), 5),
    ]);
    let (dashboard, widgets) = env
        .dashboard("acme", vec![
            json!({"metric_name": "amount", "dimensions": {"region": "us"}, "stat": "count", "time_window": "last_15m"}),
        ])
        .await;
    let mut sse = env.stream("acme", &dashboard, None).await;
    let snapshot = sse.next_named("snapshot", T).await.expect("snapshot");
    let windows: Vec<(f64, bool)> = snapshot.data["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["value"].as_f64().unwrap(), w["final"].as_bool().unwrap()))
        .collect();
    assert_eq!(windows, vec![(5.0, true), (10.0, false), (20.0, false)]);

    // The aggregator's final versions land in QuestDB; their live updates never arrive.
    env.insert(&[us(old, 12), us(recent, 22)]);
    let update = sse.next_named("update", T).await.expect("repaired update");
    assert_eq!(update.data["widget_id"], widgets[0].as_str());
    assert_eq!(
        update.data["window_start"],
        rtdash_shared::time::format_rfc3339(old)
    );
    assert_eq!(update.data["value"], 12.0);
    assert_eq!(update.data["final"], true);
    // The recent window is not closed yet by the fallback rule: no update for it, and the
    // repaired window is not read again (it is final now).
    let quiet_from = env.state.db.row_queries();
    assert!(
        sse.next_named("update", Duration::from_secs(2))
            .await
            .is_none(),
        "no update for a window that is not known to be closed"
    );
    assert_eq!(
        env.state.db.row_queries(),
        quiet_from,
        "nothing left to read back"
    );
}

/// Waits until `done` holds (checked every 50 ms), at most `within`.
async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// A dashboard reopened soon after its last stream closed (a reload) gets the open window's
/// latest live value in its snapshot although QuestDB has no row of it: the (tenant, metric)
/// lingers with its memory for `live.topic_linger_ms`, and is let go after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_dashboard_keeps_the_open_windows_live_value() {
    let env = GatewayEnv::start(|config| config.live.topic_linger_ms = 4_000).await;
    let base = minute(0);
    amount::define(&env).await;
    env.insert(&[us(at(base, 1), 30)]);
    let (dashboard, _) = env
        .dashboard(
            "acme",
            vec![
                json!({"metric_name": "amount", "dimensions": {"region": "us"},
                                       "stat": "count", "time_window": "last_15m"}),
            ],
        )
        .await;
    let counts = |snapshot: &Value| -> Vec<f64> {
        snapshot["windows"]
            .as_array()
            .expect("windows")
            .iter()
            .map(|w| w["value"].as_f64().expect("a count"))
            .collect()
    };
    let mut first = env.stream("acme", &dashboard, None).await;
    let snapshot = first.next_named("snapshot", T).await.expect("snapshot");
    assert_eq!(counts(&snapshot.data), vec![30.0]);
    // The open minute, live only (its provisional row never reaches QuestDB here).
    env.publish(&provisional(us(at(base, 0), 5)).update(now_millis()))
        .await;
    let update = first.next_named("update", T).await.expect("update");
    assert_eq!(update.data["value"], 5.0);
    drop(first);
    assert!(
        eventually(T, || env.state.hub.sweep_lingering() == 1).await,
        "the closed stream's topic lingers"
    );
    assert_eq!(env.state.hub.subscriptions(), 1);

    let mut reopened = env.stream("acme", &dashboard, None).await;
    let snapshot = reopened.next_named("snapshot", T).await.expect("snapshot");
    assert_eq!(
        counts(&snapshot.data),
        vec![30.0, 5.0],
        "the open minute from the lingering memory: {}",
        snapshot.data
    );
    drop(reopened);
    // Past the linger time with no stream, the upstream subscription goes.
    assert!(
        eventually(Duration::from_secs(15), || env.state.hub.subscriptions()
            == 0)
        .await,
        "still {} subscriptions",
        env.state.hub.subscriptions()
    );
}
