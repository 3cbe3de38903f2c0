//! Fault: a gateway killed while viewers watch a dashboard under load.
//!
//! The real binaries (`rtdash_tests::fault::FaultStack`): one nats-server, QuestDB, a
//! `core-aggregator`, an `edge-agent` and two gateways behind one address. deploy/ has no
//! load balancer of its own (Kubernetes puts a Service in front of the gateways,
//! `deploy/k8s/gateway.yaml`), so the test puts `rtdash_tests::fault::FailoverProxy` there: a
//! loopback TCP proxy sending each new connection to the first gateway that accepts it.
//! Three viewers follow a dashboard's live stream through that address the way a browser's
//! `EventSource` does: when the stream ends they reconnect to the same address with
//! `Last-Event-ID`. A steady load of 3,000 events/s is posted to the agent; 8 s in, the gateway
//! serving every viewer is killed with `SIGKILL`. Each viewer must be back on the other
//! gateway within seconds and get fresh snapshots (its cursor was issued by the dead
//! instance), then updates; once every window is final each viewer's screen must show, for
//! every window, exactly the count (and the sum of one series) of the events the agent
//! accepted, and so must QuestDB for every window and series: zero lost, zero duplicated.
//!
//! Needs the service binaries (`cargo build --workspace --bins`). About 45 s. Also run by
//! `./deploy/faults.sh`, which collects the `FAULT-RESULT` line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rtdash_tests::client::{http_client, Api};
use rtdash_tests::fault::{
    report, FailoverProxy, FaultOptions, FaultStack, Load, LoadOptions, Tally, FAULT_METRIC,
    FAULT_TENANT,
};
use rtdash_tests::sse::{stream_url, Sse};
use rtdash_tests::time::format_rfc3339;
use serde_json::{json, Value};

const VIEWERS: usize = 3;

/// What one viewer saw.
#[derive(Debug, Default)]
struct Viewer {
    /// `(widget id, window_start)` -> (value, revision, final, updated_at), by the UI's
    /// merge rule: higher revision, then final, then newer `updated_at` wins.
    screen: BTreeMap<(String, String), (f64, u64, bool, String)>,
    /// Connections opened (1 + reconnections).
    connections: u32,
    /// Snapshots received on each connection.
    snapshots: Vec<u32>,
    /// Updates received on each connection.
    updates: Vec<u32>,
    /// From the end of a stream to the first event of the next connection, per reconnection.
    resume: Vec<Duration>,
    last_id: Option<String>,
    /// Connection attempts that failed (no gateway, error status).
    failed_attempts: u32,
}

impl Viewer {
    fn apply(&mut self, widget: &str, window: &Value) {
        let start = window["window_start"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let version = (
            window["value"].as_f64().unwrap_or(f64::NAN),
            window["revision"].as_u64().unwrap_or(0),
            window["final"].as_bool().unwrap_or(false),
            window["updated_at"].as_str().unwrap_or_default().to_owned(),
        );
        let key = (widget.to_owned(), start);
        let newer = self
            .screen
            .get(&key)
            .is_none_or(|old| (version.1, version.2, &version.3) >= (old.1, old.2, &old.3));
        if newer {
            self.screen.insert(key, version);
        }
    }
}

/// Follows the dashboard's stream at `base` forever, reconnecting like `EventSource`.
async fn follow(
    http: reqwest::Client,
    base: String,
    dashboard: String,
    viewer: Arc<Mutex<Viewer>>,
) {
    let url = stream_url(&base, FAULT_TENANT, &dashboard);
    let mut ended: Option<Instant> = None;
    loop {
        let last_id = viewer.lock().expect("viewer").last_id.clone();
        let Ok(mut sse) = Sse::open(&http, &url, last_id.as_deref()).await else {
            viewer.lock().expect("viewer").failed_attempts += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        {
            let mut v = viewer.lock().expect("viewer");
            v.connections += 1;
            v.snapshots.push(0);
            v.updates.push(0);
        }
        let mut first = true;
        while let Some(event) = sse.next_until(None).await {
            let mut v = viewer.lock().expect("viewer");
            if first {
                first = false;
                if let Some(ended) = ended.take() {
                    v.resume.push(ended.elapsed());
                }
            }
            if event.id.is_some() {
                v.last_id = event.id;
            }
            let data = event.data;
            let widget = data["widget_id"].as_str().unwrap_or_default().to_owned();
            match event.event.as_str() {
                "snapshot" => {
                    *v.snapshots.last_mut().expect("a connection") += 1;
                    for window in data["windows"].as_array().into_iter().flatten() {
                        v.apply(&widget, window);
                    }
                }
                "update" => {
                    *v.updates.last_mut().expect("a connection") += 1;
                    v.apply(&widget, &data);
                }
                _ => {}
            }
        }
        // The stream ended (its gateway went away): reconnect, as EventSource does.
        ended = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Windows where `viewer`'s screen differs from the accepted events: the count widget shows
/// every window's count, the sum widget the sum of `k1`.
fn screen_mismatches(viewer: &Viewer, tally: &Tally, widgets: &[String; 2]) -> Vec<String> {
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    let mut k1: BTreeMap<i64, u64> = BTreeMap::new();
    for ((start, k), (count, sum)) in &tally.expected {
        *counts.entry(*start).or_default() += count;
        if k == "k1" {
            *k1.entry(*start).or_default() += sum;
        }
    }
    let mut problems = Vec::new();
    for (widget, want) in [(&widgets[0], &counts), (&widgets[1], &k1)] {
        for (start, value) in want {
            let key = (widget.clone(), format_rfc3339(*start));
            match viewer.screen.get(&key) {
                Some((got, _, true, _)) if *got == *value as f64 => {}
                Some((got, _, is_final, _)) => problems.push(format!(
                    "{} {}: {got} (final {is_final}), want {value}",
                    key.0, key.1
                )),
                None => problems.push(format!("{} {}: missing, want {value}", key.0, key.1)),
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_a_killed_gateway_resume_on_the_other_one_with_exact_values(
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut stack = tokio::task::block_in_place(|| {
        let mut stack = FaultStack::start(FaultOptions {
            gateways: 2,
            ..FaultOptions::default()
        })?;
        stack.start_agent()?;
        stack.define_metric()?;
        anyhow::Ok(stack)
    })?;
    let proxy = FailoverProxy::start(&[stack.gateways[0].url(), stack.gateways[1].url()])?;
    let http = http_client(None);

    let (status, dashboard) = Api::new(http.clone(), proxy.url())
        .post_json(
            "/v1/dashboards",
            &json!({
                "tenant_id": FAULT_TENANT,
                "name": "faults",
                "widgets": [
                    {"metric_name": FAULT_METRIC, "stat": "count", "time_window": "last_15m",
                     "viz_type": "bar_chart"},
                    {"metric_name": FAULT_METRIC, "stat": "sum", "dimensions": {"k": "k1"},
                     "time_window": "last_15m"},
                ],
            }),
        )
        .await?;
    ensure!(status == 201, "create dashboard: {status} {dashboard}");
    let id = dashboard["dashboard_id"]
        .as_str()
        .context("dashboard_id")?
        .to_owned();
    let widget = |i: usize| {
        dashboard["widgets"][i]["widget_id"]
            .as_str()
            .map(str::to_owned)
    };
    let widgets = [
        widget(0).context("widget 0")?,
        widget(1).context("widget 1")?,
    ];

    let viewers: Vec<Arc<Mutex<Viewer>>> = (0..VIEWERS)
        .map(|_| Arc::new(Mutex::new(Viewer::default())))
        .collect();
    let tasks: Vec<_> = viewers
        .iter()
        .map(|v| tokio::spawn(follow(http.clone(), proxy.url(), id.clone(), v.clone())))
        .collect();
    // Every viewer has its snapshots (from gateway 1, the proxy's first choice).
    let deadline = Instant::now() + Duration::from_secs(20);
    while viewers
        .iter()
        .any(|v| v.lock().expect("viewer").snapshots.first() != Some(&2))
    {
        ensure!(
            Instant::now() < deadline,
            "viewers did not get their snapshots"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        proxy.connections()[0] >= VIEWERS as u64,
        "{:?}",
        proxy.connections()
    );

    let load = Load::start(&stack.agent_url()?, LoadOptions::default());
    tokio::time::sleep(Duration::from_secs(8)).await;
    let accepted_at_kill = load.accepted();
    tokio::task::block_in_place(|| stack.gateways[0].kill());
    let killed = Instant::now();
    // Every viewer is back, on gateway 2, with fresh snapshots.
    let back = loop {
        let all_back = viewers.iter().all(|v| {
            let v = v.lock().expect("viewer");
            v.connections >= 2 && v.snapshots.last() == Some(&2)
        });
        if all_back {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(20) {
            bail!(
                "viewers not back within 20 s: {viewers:?}; proxy {:?}\n{}",
                proxy.connections(),
                stack.logs(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(killed.elapsed())).await;
    let tally = tokio::task::block_in_place(|| load.stop());

    let mut verdict = tokio::task::block_in_place(|| {
        stack.check_exact(&tally.expected, Duration::from_secs(90))
    })?;
    // The screens converge to the same exact numbers (final windows).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut problems;
    loop {
        problems = viewers
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                screen_mismatches(&v.lock().expect("viewer"), &tally, &widgets)
                    .into_iter()
                    .map(move |p| format!("viewer {i}: {p}"))
            })
            .collect::<Vec<_>>();
        if problems.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for task in &tasks {
        task.abort();
    }
    let mut updates_after = u32::MAX;
    let mut resume_max = Duration::ZERO;
    for v in &viewers {
        let v = v.lock().expect("viewer");
        updates_after = updates_after.min(v.updates.last().copied().unwrap_or(0));
        resume_max = resume_max.max(v.resume.iter().copied().max().unwrap_or_default());
    }
    if !problems.is_empty() {
        verdict.exact = false;
        verdict.detail = format!(
            "{} screen mismatch(es): {}",
            problems.len(),
            problems
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if updates_after == 0 {
        verdict.exact = false;
        verdict.detail += "; a viewer got no update after reconnecting";
    }
    let extra = [
        ("viewers", VIEWERS.to_string()),
        ("viewers_back_ms", back.as_millis().to_string()),
        ("resume_max_ms", resume_max.as_millis().to_string()),
        ("min_updates_after", updates_after.to_string()),
        ("screens_exact", problems.is_empty().to_string()),
        ("accepted_at_kill", accepted_at_kill.to_string()),
        (
            "proxy_connections",
            format!("{:?}", proxy.connections()).replace(' ', ""),
        ),
        ("seconds", started.elapsed().as_secs().to_string()),
    ];
    report("gateway_kill", &tally, &verdict, &extra, || stack.logs(40))
}
