//! Access control on real services (issue #16): the gateway, core aggregator and edge agent
//! binaries of a [`Stack`] with the harness's operator key, and keys of every role created
//! through `POST /v1/keys`.
//!
//! - Every gateway endpoint, enumerated from the OpenAPI document the gateway serves (so a new
//!   route cannot be forgotten: one missing from [`ROUTES`] fails the test), and the live
//!   stream: no key `401` with `WWW-Authenticate`, another tenant's key `403`/`404`, an
//!   `ingest` key `403`, a role below the route's `403`, the route's role allowed.
//! - Revocation: a deleted key is refused within 5 s by the gateway and by the agent.
//! - Sessions: the cookie works, and stops working at sign-out and at its key's revocation;
//!   cookie-authenticated changes need a same-origin `Origin` (CSRF).
//! - Dashboard links: the token reads its dashboard (and stream) only.
//! - Edge agent: no key `401`, a viewer key `403`, an ingest key's events of another tenant
//!   rejected per item (`tenant_mismatch`), events without `tenant_id` take the key's tenant.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rtdash_tests::auth::{create_key, create_key_record, key_client, operator_key};
use rtdash_tests::client::{anonymous_client, decode};
use rtdash_tests::stack::{Stack, StackOptions};
use rtdash_tests::time::{format_rfc3339, now_millis};
use rtdash_tests::{blocking, unique_name};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How soon a deleted key must stop working.
const REVOCATION: Duration = Duration::from_secs(5);

/// The role a route needs (`None`: any credential; those routes are tested on their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    Viewer,
    Editor,
    Admin,
    /// The operator key only (a tenant's admin is below it).
    Operator,
    Any,
}

/// Every `(method, path)` of the OpenAPI document and the role it needs. A route the document
/// has and this table lacks fails the test: add it here, with a body below.
const ROUTES: &[(&str, &str, Needs)] = &[
    ("GET", "/v1/dashboards", Needs::Viewer),
    ("POST", "/v1/dashboards", Needs::Editor),
    ("GET", "/v1/dashboards/{id}", Needs::Viewer),
    ("PUT", "/v1/dashboards/{id}", Needs::Editor),
    ("DELETE", "/v1/dashboards/{id}", Needs::Editor),
    ("POST", "/v1/dashboards/{id}/widgets", Needs::Editor),
    (
        "PUT",
        "/v1/dashboards/{id}/widgets/{widget_id}",
        Needs::Editor,
    ),
    (
        "DELETE",
        "/v1/dashboards/{id}/widgets/{widget_id}",
        Needs::Editor,
    ),
    ("GET", "/v1/dashboards/{id}/stream", Needs::Viewer),
    ("GET", "/v1/dashboards/{id}/links", Needs::Admin),
    ("POST", "/v1/dashboards/{id}/links", Needs::Admin),
    (
        "DELETE",
        "/v1/dashboards/{id}/links/{link_id}",
        Needs::Admin,
    ),
    ("GET", "/v1/alerts", Needs::Viewer),
    ("POST", "/v1/alerts", Needs::Editor),
    ("GET", "/v1/alerts/{id}", Needs::Viewer),
    ("PUT", "/v1/alerts/{id}", Needs::Editor),
    ("DELETE", "/v1/alerts/{id}", Needs::Editor),
    ("GET", "/v1/alerts/{id}/events", Needs::Viewer),
    ("POST", "/v1/alerts/{id}/test", Needs::Editor),
    ("GET", "/v1/alerts/{id}/state", Needs::Viewer),
    ("GET", "/v1/alert-states", Needs::Viewer),
    ("GET", "/v1/silences", Needs::Viewer),
    ("POST", "/v1/silences", Needs::Editor),
    ("GET", "/v1/silences/{id}", Needs::Viewer),
    ("DELETE", "/v1/silences/{id}", Needs::Editor),
    ("GET", "/v1/metric-definitions", Needs::Viewer),
    ("POST", "/v1/metric-definitions", Needs::Editor),
    ("GET", "/v1/metric-definitions/{name}", Needs::Viewer),
    ("PUT", "/v1/metric-definitions/{name}", Needs::Editor),
    ("DELETE", "/v1/metric-definitions/{name}", Needs::Editor),
    (
        "GET",
        "/v1/metric-definitions/{name}/backfill",
        Needs::Viewer,
    ),
    ("GET", "/v1/event-types", Needs::Viewer),
    ("GET", "/v1/data-quality", Needs::Viewer),
    ("GET", "/v1/metrics", Needs::Viewer),
    ("GET", "/v1/metrics/{name}", Needs::Viewer),
    ("GET", "/v1/metrics/{name}/series", Needs::Viewer),
    ("GET", "/v1/metrics/{name}/capabilities", Needs::Viewer),
    ("GET", "/v1/status", Needs::Viewer),
    ("GET", "/v1/keys", Needs::Admin),
    ("POST", "/v1/keys", Needs::Admin),
    ("DELETE", "/v1/keys/{key_id}", Needs::Admin),
    ("GET", "/v1/tenants/{tenant}/quotas", Needs::Admin),
    ("PUT", "/v1/tenants/{tenant}/quotas", Needs::Operator),
    ("GET", "/v1/session", Needs::Any),
    ("POST", "/v1/session", Needs::Any),
    ("DELETE", "/v1/session", Needs::Any),
];

/// Tenant A's objects the routes' path parameters name.
struct Objects {
    tenant: String,
    dashboard: String,
    widget: String,
    rule: String,
    silence: String,
    metric: String,
    link: String,
    key_id: String,
}

impl Objects {
    fn path(&self, template: &str) -> String {
        let mut path = template.to_owned();
        let rest = template.strip_prefix("/v1/").unwrap_or(template);
        let id = if rest.starts_with("alerts") {
            &self.rule
        } else if rest.starts_with("silences") {
            &self.silence
        } else {
            &self.dashboard
        };
        path = path.replace("{widget_id}", &self.widget);
        path = path.replace("{link_id}", &self.link);
        path = path.replace("{key_id}", &self.key_id);
        path = path.replace("{name}", &self.metric);
        path = path.replace("{tenant}", &self.tenant);
        path.replace("{id}", id)
    }

    /// A valid body of `method template` for tenant A (`None`: no body).
    fn body(&self, method: &str, template: &str) -> Option<Value> {
        let t = &self.tenant;
        let body = match (method, template) {
            ("POST", "/v1/dashboards") => json!({"tenant_id": t, "name": "another"}),
            ("PUT", "/v1/dashboards/{id}") => json!({"tenant_id": t, "name": "renamed"}),
            ("POST", "/v1/dashboards/{id}/widgets")
            | ("PUT", "/v1/dashboards/{id}/widgets/{widget_id}") => widget(),
            ("POST", "/v1/dashboards/{id}/links") => json!({"tenant_id": t}),
            ("POST", "/v1/alerts") | ("PUT", "/v1/alerts/{id}") => rule(t),
            ("POST", "/v1/silences") => {
                json!({"tenant_id": t, "alert_id": self.rule, "duration_secs": 600})
            }
            ("POST", "/v1/metric-definitions") => {
                json!({"tenant_id": t, "name": "sec_other", "event_type": "pay"})
            }
            ("PUT", "/v1/metric-definitions/{name}") => {
                json!({"tenant_id": t, "name": self.metric, "event_type": "pay"})
            }
            ("POST", "/v1/keys") => json!({"tenant_id": t, "role": "viewer", "name": "more"}),
            ("PUT", "/v1/tenants/{tenant}/quotas") => json!({"dashboards": 1000}),
            _ => return None,
        };
        Some(body)
    }
}

fn widget() -> Value {
    json!({"metric_name": "events", "stat": "count", "time_window": "last_15m", "viz_type": "counter"})
}

fn rule(tenant: &str) -> Value {
    json!({
        "tenant_id": tenant,
        "metric_name": "events",
        "dimensions": {"source": "s1"},
        "stat": "count",
        "condition": "gt",
        "threshold": 1000.0,
        "notify_channel": "http://127.0.0.1:9/hook",
    })
}

/// `(status, body, WWW-Authenticate present)` of `method url` through `client`.
async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Value, bool)> {
    let mut request = client.request(reqwest::Method::from_bytes(method.as_bytes())?, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let challenge = response.headers().contains_key("www-authenticate");
    // A stream answering 200 never ends: only its status matters.
    if response.status().as_u16() == 200
        && response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return Ok((200, Value::Null, challenge));
    }
    let (status, body) = decode(response).await?;
    Ok((status, body, challenge))
}

async fn start_stack() -> anyhow::Result<Stack> {
    // Failed authentications are limited per address; every request here comes from
    // 127.0.0.1, so the limit is raised (it has a test of its own in the gateway's crate).
    let options = StackOptions::default()
        .gateway("AUTH__MAX_FAILED_PER_MINUTE", 100_000)
        .agent("AUTH__MAX_FAILED_PER_MINUTE", 100_000);
    blocking(move || Stack::start(options)).await
}

/// Creates tenant A's objects with A's admin key.
async fn objects(gateway: &str, tenant: &str, admin: &reqwest::Client) -> anyhow::Result<Objects> {
    let q = format!("tenant_id={tenant}");
    let (status, def, _) = call(
        admin,
        "POST",
        &format!("{gateway}/v1/metric-definitions"),
        Some(&json!({"tenant_id": tenant, "name": "sec_amount", "event_type": "pay", "field": "amount",
            "backfill": {"hours": 1}})),
        &[],
    )
    .await?;
    ensure!(status == 201, "definition: {status} {def}");
    ensure!(def["backfill"]["state"] == "queued", "backfill: {def}");
    let (status, dash, _) = call(
        admin,
        "POST",
        &format!("{gateway}/v1/dashboards"),
        Some(&json!({"tenant_id": tenant, "name": "secure", "widgets": [widget()]})),
        &[],
    )
    .await?;
    ensure!(status == 201, "dashboard: {status} {dash}");
    let dashboard = dash["dashboard_id"]
        .as_str()
        .context("dashboard id")?
        .to_owned();
    let widget = dash["widgets"][0]["widget_id"]
        .as_str()
        .context("widget id")?
        .to_owned();
    let (status, alert, _) = call(
        admin,
        "POST",
        &format!("{gateway}/v1/alerts"),
        Some(&rule(tenant)),
        &[],
    )
    .await?;
    ensure!(status == 201, "alert rule: {status} {alert}");
    let rule_id = alert["alert_id"]
        .as_str()
        .or_else(|| alert["id"].as_str())
        .context("rule id")?
        .to_owned();
    let (status, silence, _) = call(
        admin,
        "POST",
        &format!("{gateway}/v1/silences"),
        Some(&json!({"tenant_id": tenant, "alert_id": rule_id, "duration_secs": 600})),
        &[],
    )
    .await?;
    ensure!(status == 201, "silence: {status} {silence}");
    let (status, link, _) = call(
        admin,
        "POST",
        &format!("{gateway}/v1/dashboards/{dashboard}/links?{q}"),
        Some(&json!({})),
        &[],
    )
    .await?;
    ensure!(status == 201, "link: {status} {link}");
    let key = create_key_record(gateway, tenant, "viewer", "to delete").await?;
    Ok(Objects {
        tenant: tenant.to_owned(),
        dashboard,
        widget,
        rule: rule_id,
        silence: silence["silence_id"]
            .as_str()
            .context("silence id")?
            .to_owned(),
        metric: "sec_amount".to_owned(),
        link: link["link_id"].as_str().context("link id")?.to_owned(),
        key_id: key["key_id"].as_str().context("key id")?.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gateway_endpoint_checks_key_tenant_and_role() -> anyhow::Result<()> {
    let stack = start_stack().await?;
    let gw = stack.gateway_url();
    let (a, b) = (unique_name("sec-a"), unique_name("sec-b"));
    let client = |key: &str| key_client(key, Some(TIMEOUT));
    let a_ingest = client(&create_key(&gw, &a, "ingest", "ingest").await?);
    let a_viewer = client(&create_key(&gw, &a, "viewer", "viewer").await?);
    let a_editor = client(&create_key(&gw, &a, "editor", "editor").await?);
    let a_admin = client(&create_key(&gw, &a, "admin", "admin").await?);
    let b_admin = client(&create_key(&gw, &b, "admin", "admin").await?);
    let operator = client(operator_key());
    let anonymous = anonymous_client(Some(TIMEOUT));
    let objects = objects(&gw, &a, &a_admin).await?;

    // The document's routes, all in the table.
    let (status, doc, _) = call(
        &anonymous,
        "GET",
        &format!("{gw}/v1/openapi.json"),
        None,
        &[],
    )
    .await?;
    ensure!(status == 200, "openapi: {status}");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().context("paths")? {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ensure!(documented.len() >= ROUTES.len(), "{documented:?}");
    let mut failures = Vec::new();
    for (method, template) in &documented {
        let Some((_, _, needs)) = ROUTES.iter().find(|(m, p, _)| m == method && p == template)
        else {
            failures.push(format!(
                "{method} {template} is not in ROUTES of tests/tests/security_isolation.rs: add it with the role it needs"
            ));
            continue;
        };
        if *needs == Needs::Any {
            continue; // sessions: below
        }
        let path = objects.path(template);
        let body = objects.body(method, template);
        let named = format!("{gw}{path}?tenant_id={a}");
        let unnamed = format!("{gw}{path}");
        let route = format!("{method} {template}");
        let (status, _, challenge) = call(&anonymous, method, &named, body.as_ref(), &[]).await?;
        expect(&mut failures, &route, "no key", status, &[401]);
        if !challenge {
            failures.push(format!("{method} {template}: 401 without WWW-Authenticate"));
        }
        let (status, _, _) = call(&a_ingest, method, &named, body.as_ref(), &[]).await?;
        expect(&mut failures, &route, "an ingest key", status, &[403]);
        // Another tenant's admin naming tenant A, and not naming it (its own tenant: A's ids
        // do not exist there). List routes without an id answer B's own (empty) lists; a
        // metric's name is B's own metric of that name (a `PUT` creates it); the pipeline's
        // status is not per tenant.
        if *template != "/v1/status" {
            let (status, _, _) = call(&b_admin, method, &named, body.as_ref(), &[]).await?;
            expect(
                &mut failures,
                &route,
                "another tenant's key naming the tenant",
                status,
                &[403, 404],
            );
            if template.contains("{id}") || template.contains("{key_id}") {
                let other = body.as_ref().map(|b| {
                    let mut b = b.clone();
                    if let Some(map) = b.as_object_mut() {
                        map.remove("tenant_id");
                    }
                    b
                });
                let (status, _, _) = call(&b_admin, method, &unnamed, other.as_ref(), &[]).await?;
                expect(
                    &mut failures,
                    &route,
                    "another tenant's key",
                    status,
                    &[403, 404],
                );
            }
        }
        let below = match needs {
            Needs::Viewer => None,
            Needs::Editor => Some(("a viewer key", &a_viewer)),
            Needs::Admin => Some(("an editor key", &a_editor)),
            Needs::Operator => Some(("an admin key", &a_admin)),
            Needs::Any => unreachable!(),
        };
        if let Some((who, below)) = below {
            let (status, _, _) = call(below, method, &named, body.as_ref(), &[]).await?;
            expect(&mut failures, &route, who, status, &[403]);
        }
        // The route's own role is let through (deletes last, below: they would remove the
        // objects the other routes name).
        if method != "DELETE" {
            let enough = match needs {
                Needs::Viewer => &a_viewer,
                Needs::Editor => &a_editor,
                Needs::Operator => &operator,
                _ => &a_admin,
            };
            let (status, answer, _) = call(enough, method, &named, body.as_ref(), &[]).await?;
            if !(200..300).contains(&status) {
                failures.push(format!(
                    "{method} {template} with the role it needs: {status} {answer}"
                ));
            }
        }
    }
    // Deletes, the dashboard's parts before the dashboard.
    let mut deletes: Vec<_> = ROUTES.iter().filter(|r| r.0 == "DELETE").collect();
    deletes.sort_by_key(|r| std::cmp::Reverse(r.1.len()));
    for (method, template, needs) in deletes {
        if *needs == Needs::Any {
            continue;
        }
        let enough = if *needs == Needs::Admin {
            &a_admin
        } else {
            &a_editor
        };
        let url = format!("{gw}{}?tenant_id={a}", objects.path(template));
        let (status, answer, _) = call(enough, method, &url, None, &[]).await?;
        if !(200..300).contains(&status) {
            failures.push(format!(
                "{method} {template} with the role it needs: {status} {answer}"
            ));
        }
    }
    // /metrics: the operator only.
    let (status, _, _) = call(&a_admin, "GET", &format!("{gw}/metrics"), None, &[]).await?;
    if status != 403 {
        failures.push(format!("/metrics with a tenant admin key: {status}"));
    }
    let (status, _, _) = call(&anonymous, "GET", &format!("{gw}/metrics"), None, &[]).await?;
    if status != 401 {
        failures.push(format!("/metrics without a key: {status}"));
    }
    if !failures.is_empty() {
        bail!(
            "{} failures:\n  {}\n{}",
            failures.len(),
            failures.join("\n  "),
            stack.logs(20)
        );
    }
    Ok(())
}

/// Records a failure unless `got` is one of `allowed`.
fn expect(failures: &mut Vec<String>, route: &str, who: &str, got: u16, allowed: &[u16]) {
    if !allowed.contains(&got) {
        failures.push(format!("{route} with {who}: {got}, expected {allowed:?}"));
    }
}

/// Polls `probe` until it answers `want`; fails after `within`. Answers how long it took.
async fn within<F, Fut>(within: Duration, want: u16, mut probe: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u16>>,
{
    let started = Instant::now();
    loop {
        let status = probe().await?;
        if status == want {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("still {status} after {within:?} (expected {want})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event(tenant: Option<&str>) -> Value {
    let mut event = json!({
        "source": "sec", "event_type": "pay", "properties": {"amount": 3},
        "occurred_at": format_rfc3339(now_millis()),
    });
    if let Some(tenant) = tenant {
        event["tenant_id"] = json!(tenant);
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_keys_tenants_and_revocation() -> anyhow::Result<()> {
    let stack = start_stack().await?;
    let (gw, agent) = (stack.gateway_url(), stack.agent_url());
    let events = format!("{agent}/v1/events");
    let (a, b) = (unique_name("sec-a"), unique_name("sec-b"));
    let ingest = create_key_record(&gw, &a, "ingest", "producer").await?;
    let ingest_key = ingest["key"].as_str().context("key")?.to_owned();
    let viewer = create_key(&gw, &a, "viewer", "viewer").await?;
    let batch = json!([event(None), event(Some(&b)), event(Some(&a))]);

    let (status, body, challenge) = call(
        &anonymous_client(Some(TIMEOUT)),
        "POST",
        &events,
        Some(&batch),
        &[],
    )
    .await?;
    ensure!(status == 401 && challenge, "no key: {status} {body}");
    let (status, body, _) = call(
        &key_client(&viewer, Some(TIMEOUT)),
        "POST",
        &events,
        Some(&batch),
        &[],
    )
    .await?;
    ensure!(status == 403, "viewer key: {status} {body}");
    let bad = "rtd_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, body, _) = call(
        &key_client(bad, Some(TIMEOUT)),
        "POST",
        &events,
        Some(&batch),
        &[],
    )
    .await?;
    ensure!(status == 401, "unknown key: {status} {body}");

    // The ingest key: its tenant's events, and the one without tenant_id, are taken; the one
    // naming another tenant is rejected on its own. `X-Api-Key` works as well as Bearer.
    let (status, body, _) = call(
        &anonymous_client(Some(TIMEOUT)),
        "POST",
        &events,
        Some(&batch),
        &[("X-Api-Key", &ingest_key)],
    )
    .await?;
    ensure!(status == 202, "ingest key: {status} {body}");
    ensure!(body["accepted"] == 2, "{body}");
    ensure!(body["errors"][0]["index"] == 1, "{body}");
    ensure!(body["errors"][0]["code"] == "tenant_mismatch", "{body}");

    // The operator key sends for any tenant, naming it.
    let (status, body, _) = call(
        &key_client(operator_key(), Some(TIMEOUT)),
        "POST",
        &events,
        Some(&json!([event(Some(&b))])),
        &[],
    )
    .await?;
    ensure!(
        status == 202 && body["accepted"] == 1,
        "operator: {status} {body}"
    );

    // Revoked: refused by the agent within 5 s.
    let key_id = ingest["key_id"].as_str().context("key id")?;
    let (status, body, _) = call(
        &key_client(operator_key(), Some(TIMEOUT)),
        "DELETE",
        &format!("{gw}/v1/keys/{key_id}"),
        None,
        &[],
    )
    .await?;
    ensure!(status == 204, "delete key: {status} {body}");
    let producer = key_client(&ingest_key, Some(TIMEOUT));
    let took = within(REVOCATION, 401, || async {
        Ok(
            call(&producer, "POST", &events, Some(&json!([event(None)])), &[])
                .await?
                .0,
        )
    })
    .await?;
    eprintln!("the agent refused the revoked key after {took:?}");
    Ok(())
}

/// A browser's view of the gateway: no key, the session cookie kept as `Set-Cookie` says
/// (set at sign-in, removed by a `Max-Age=0` at sign-out).
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    async fn call(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes())?, url);
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str()?.to_owned();
            ensure!(
                set.contains("HttpOnly")
                    && set.contains("SameSite=Strict")
                    && set.contains("Path=/"),
                "session cookie attributes: {set}"
            );
            let pair = set.split(';').next().unwrap_or_default().trim().to_owned();
            self.cookie = if set.contains("Max-Age=0") || pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
        decode(response).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_revocation_and_links() -> anyhow::Result<()> {
    let stack = start_stack().await?;
    let gw = stack.gateway_url();
    let a = unique_name("sec-a");
    let editor = create_key_record(&gw, &a, "editor", "browser").await?;
    let editor_key = editor["key"].as_str().context("key")?.to_owned();
    let admin = key_client(&create_key(&gw, &a, "admin", "admin").await?, Some(TIMEOUT));
    let objects = objects(&gw, &a, &admin).await?;

    let mut browser = Browser {
        http: anonymous_client(Some(TIMEOUT)),
        cookie: None,
    };
    let session = format!("{gw}/v1/session");
    let (status, _) = browser.call("GET", &session, None, &[]).await?;
    ensure!(status == 401, "before signing in: {status}");
    let (status, body) = browser
        .call("POST", &session, Some(&json!({"key": "rtd_nope"})), &[])
        .await?;
    ensure!(status == 401, "a wrong key signs in: {status} {body}");
    let (status, body) = browser
        .call("POST", &session, Some(&json!({"key": editor_key})), &[])
        .await?;
    ensure!(status == 204, "sign in: {status} {body}");
    let (status, who) = browser.call("GET", &session, None, &[]).await?;
    ensure!(
        status == 200 && who["tenant_id"] == a.as_str() && who["role"] == "editor",
        "{who}"
    );
    let dashboards = format!("{gw}/v1/dashboards");
    let (status, _) = browser.call("GET", &dashboards, None, &[]).await?;
    ensure!(status == 200, "cookie read: {status}");

    // CSRF: a cookie-authenticated change needs a same-origin Origin.
    let new = json!({"name": "csrf"});
    let (status, body) = browser.call("POST", &dashboards, Some(&new), &[]).await?;
    ensure!(status == 403, "no Origin: {status} {body}");
    let (status, body) = browser
        .call(
            "POST",
            &dashboards,
            Some(&new),
            &[("Origin", "http://evil.example")],
        )
        .await?;
    ensure!(status == 403, "foreign Origin: {status} {body}");
    let (status, body) = browser
        .call("POST", &dashboards, Some(&new), &[("Origin", &gw)])
        .await?;
    ensure!(status == 201, "same Origin: {status} {body}");

    // Sign-out ends the session.
    let (status, _) = browser
        .call("DELETE", &session, None, &[("Origin", &gw)])
        .await?;
    ensure!((200..300).contains(&status), "sign out: {status}");
    let (status, _) = browser.call("GET", &dashboards, None, &[]).await?;
    ensure!(status == 401, "after sign-out: {status}");

    // Revoking the key ends its sessions within 5 s.
    let (status, _) = browser
        .call("POST", &session, Some(&json!({"key": editor_key})), &[])
        .await?;
    ensure!(status == 204, "sign in again: {status}");
    let key_id = editor["key_id"].as_str().context("key id")?;
    let (status, _, _) = call(
        &admin,
        "DELETE",
        &format!("{gw}/v1/keys/{key_id}?tenant_id={a}"),
        None,
        &[],
    )
    .await?;
    ensure!(status == 204, "revoke: {status}");
    let started = Instant::now();
    loop {
        let (status, _) = browser.call("GET", &dashboards, None, &[]).await?;
        if status == 401 {
            break;
        }
        ensure!(
            started.elapsed() < REVOCATION,
            "the revoked key's session still answers {status} after {REVOCATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    eprintln!("the gateway refused the revoked key's session after {took:?}");
    let editor_client = key_client(&editor_key, Some(TIMEOUT));
    let (status, _, _) = call(&editor_client, "GET", &dashboards, None, &[]).await?;
    ensure!(status == 401, "revoked key as bearer: {status}");

    // A link token: its dashboard (and its stream), nothing else.
    let (status, link, _) = call(
        &admin,
        "POST",
        &format!("{gw}/v1/dashboards/{}/links", objects.dashboard),
        Some(&json!({})),
        &[],
    )
    .await?;
    ensure!(status == 201, "link: {status} {link}");
    let token = link["token"].as_str().context("token")?;
    let viewer = key_client(token, Some(TIMEOUT));
    let own = format!("{gw}/v1/dashboards/{}", objects.dashboard);
    let (status, body, _) = call(&viewer, "GET", &own, None, &[]).await?;
    ensure!(status == 200, "link reads its dashboard: {status} {body}");
    let (status, _, _) = call(&viewer, "GET", &format!("{own}/stream"), None, &[]).await?;
    ensure!(status == 200, "link opens its stream: {status}");
    let (status, other, _) = call(
        &admin,
        "POST",
        &dashboards,
        Some(&json!({"name": "other"})),
        &[],
    )
    .await?;
    ensure!(status == 201, "{other}");
    let other_id = other["dashboard_id"].as_str().context("id")?;
    for (method, path) in [
        ("GET", format!("/v1/dashboards/{other_id}")),
        ("GET", format!("/v1/dashboards/{other_id}/stream")),
        ("GET", "/v1/dashboards".to_owned()),
        ("GET", "/v1/alerts".to_owned()),
        ("GET", "/v1/keys".to_owned()),
        ("PUT", format!("/v1/dashboards/{}", objects.dashboard)),
        ("DELETE", format!("/v1/dashboards/{}", objects.dashboard)),
    ] {
        let body = (method == "PUT").then(|| json!({"name": "x"}));
        let (status, answer, _) =
            call(&viewer, method, &format!("{gw}{path}"), body.as_ref(), &[]).await?;
        ensure!(
            status == 403 || status == 404,
            "the link token on {method} {path}: {status} {answer}"
        );
    }
    // Revoked link: refused.
    let link_id = link["link_id"].as_str().context("link id")?;
    let (status, _, _) = call(
        &admin,
        "DELETE",
        &format!("{own}/links/{link_id}"),
        None,
        &[],
    )
    .await?;
    ensure!(status == 204, "delete link: {status}");
    within(REVOCATION, 401, || async {
        Ok(call(&viewer, "GET", &own, None, &[]).await?.0)
    })
    .await?;
    Ok(())
}
