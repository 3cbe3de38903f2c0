//! An edge site's leaf node and its link to the hub (see the module docs of
//! [`crate::cluster`]: how the link is cut and restored).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;

use super::edge_objects::{edge_domain, edge_subject, validate_site};
use super::secrets::{ClusterSecrets, Credentials};
use super::NatsCluster;
use crate::deploy;
use crate::http::get_json;
use crate::nats::{monitor_url, monitoring_line, nats_launch};
use crate::ports::{free_ports, retry_port_conflicts};
use crate::supervised::Supervised;

/// `deploy/edge/leaf.conf`: an edge site's leaf node.
pub(super) const LEAF_CONF_TEMPLATE: &str = include_str!("../../../deploy/edge/leaf.conf");

/// How long a (re)start may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop waits after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long [`EdgeSite::cut_link`] and [`EdgeSite::restore_link`] wait for the link state.
const LINK_TIMEOUT: Duration = Duration::from_secs(20);

/// Settings of an [`EdgeSite`].
#[derive(Clone, Debug)]
pub struct EdgeOptions {
    /// JetStream `sync_interval` of the leaf node.
    pub sync_interval: String,
    /// JetStream `max_file_store` of the leaf node: the hard cap on the site's store. JetStream
    /// reserves each edge stream's `max_bytes` against it, so it must exceed their sum
    /// (three [`super::EdgeBuffer`]s and the config mirror). Default `4G`.
    pub max_file_store: String,
    /// Whether the leaf node authenticates to the hub as a leaf user (default). `false`: it
    /// dials without credentials, and the start does not wait for the link (the hub refuses
    /// it; `security_cluster.rs` shows it).
    pub link_credentials: bool,
    /// The site whose leaf user (`leaf-<site>`) the link authenticates as: `None` (default)
    /// for the site's own; another site's to show what that user does not carry.
    pub link_as: Option<String>,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            sync_interval: "2m".to_owned(),
            max_file_store: "4G".to_owned(),
            link_credentials: true,
            link_as: None,
        }
    }
}

/// An edge site: a leaf-node `nats-server` with JetStream domain `edge-<site>`, connected to
/// the hub's leafnode URLs as its `leaf-<site>` user over TLS, its own client port locked down
/// with users of its own (new passwords, none of the hub's) and a certificate of its own signed
/// by the hub's CA, as `deploy/edge/up.sh` does.
/// Killed on drop; directory removed.
#[derive(Debug)]
pub struct EdgeSite {
    /// Declared first: killed before the directory is removed.
    server: Supervised,
    /// `nats.conf`, `nats.log`, `store/`.
    dir: TempDir,
    site: String,
    port: u16,
    monitor_port: u16,
    /// The template values except `LINK_DISABLED`, to re-render the config.
    values: Vec<(&'static str, String)>,
    /// The site's own users and certificate, and its copy of the hub's CA.
    secrets: ClusterSecrets,
    /// True while the link is cut.
    cut: bool,
}

impl EdgeSite {
    /// Starts site `site` connected to `hub`'s leafnode ports and waits until JetStream is
    /// ready and the link to the hub is up.
    pub fn start(site: &str, hub: &NatsCluster) -> anyhow::Result<Self> {
        Self::start_with(site, hub, EdgeOptions::default())
    }

    /// [`start`](Self::start) with `options`.
    pub fn start_with(site: &str, hub: &NatsCluster, options: EdgeOptions) -> anyhow::Result<Self> {
        validate_site(site)?;
        let hub_leaf_urls = hub.leaf_urls();
        if hub_leaf_urls.is_empty() {
            bail!("edge site {site}: no hub leafnode URL given");
        }
        let leaf = match options.link_credentials {
            true => Some(hub.leaf_user(options.link_as.as_deref().unwrap_or(site))?),
            false => None,
        };
        // nats-leaf://127.0.0.1:7422 -> nats-leaf://leaf-<site>:<password>@127.0.0.1:7422
        let hub_urls = hub_leaf_urls
            .iter()
            .map(|url| match &leaf {
                Some(leaf) => {
                    url.replacen("://", &format!("://{}:{}@", leaf.user, leaf.password), 1)
                }
                None => url.clone(),
            })
            .map(|url| format!("\"{url}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let dir = tempfile::Builder::new()
            .prefix(&format!("rtdash-edge-{site}-"))
            .tempdir()?;
        let secrets = hub.secrets().for_site(dir.path())?;
        let (port, monitor_port, values, server) = retry_port_conflicts(|| {
            let [port, monitor_port] = free_ports()?;
            let mut values = vec![
                ("NAME", edge_domain(site)),
                ("DOMAIN", edge_domain(site)),
                ("PORT", port.to_string()),
                ("MONITORING", monitoring_line(monitor_port)),
                ("STORE_DIR", dir.path().join("store").display().to_string()),
                ("MAX_FILE_STORE", options.max_file_store.clone()),
                ("SYNC_INTERVAL", options.sync_interval.clone()),
                ("HUB_URLS", hub_urls.clone()),
            ];
            values.extend(secrets.template_values("secrets/nats-users.conf"));
            write_config(dir.path(), &values, false)?;
            let health = format!("{}/healthz?js-enabled-only=true", monitor_url(monitor_port));
            let launch = nats_launch(
                &format!("nats-server {}", edge_domain(site)),
                dir.path(),
                health,
                READY_TIMEOUT,
                STOP_GRACE,
            )?;
            Ok((port, monitor_port, values, Supervised::start(launch)?))
        })?;
        let edge = Self {
            server,
            dir,
            site: site.to_owned(),
            port,
            monitor_port,
            values,
            secrets,
            cut: false,
        };
        if options.link_credentials {
            edge.wait_link(true, READY_TIMEOUT)?;
        }
        Ok(edge)
    }

    /// The site id.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The site's JetStream domain, `edge-<site>`.
    pub fn domain(&self) -> String {
        edge_domain(&self.site)
    }

    /// `nats://127.0.0.1:<port>`: where the site's edge-agent connects.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The credentials of NATS user `user` at this site (the site's own passwords; its copy
    /// of the CA).
    pub fn credentials(&self, user: &str) -> Credentials {
        self.secrets.credentials(user)
    }

    /// The site's users, passwords and certificates (`<dir>/secrets`).
    pub fn secrets(&self) -> &ClusterSecrets {
        &self.secrets
    }

    /// The `operator` user's.
    pub fn operator(&self) -> Credentials {
        self.credentials("operator")
    }

    /// `http://127.0.0.1:<monitor port>`: `/healthz`, `/jsz`, `/leafz`.
    pub fn monitor_url(&self) -> String {
        monitor_url(self.monitor_port)
    }

    /// The leaf node's log (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.server.log_path().to_owned()
    }

    /// The site's JetStream store (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `rtdash.edge.<site>.partials.<partition>`.
    pub fn partials_subject(&self, partition: u32) -> String {
        edge_subject(&self.site, "partials", &partition.to_string())
    }

    /// Number of leafnode connections the leaf node reports (0 while the link is down).
    pub fn link_count(&self) -> anyhow::Result<u64> {
        let leafz = get_json(&format!("{}/leafz", self.monitor_url()))?;
        Ok(leafz["leafnodes"].as_u64().unwrap_or(0))
    }

    /// True while the leaf node has a connection to the hub.
    pub fn is_linked(&self) -> bool {
        self.link_count().is_ok_and(|n| n > 0)
    }

    /// Takes the link to the hub down (the leaf's remote disabled, config reloaded) and waits
    /// until the leaf node reports no hub connection. Both servers keep running; the site's
    /// clients stay connected to it.
    pub fn cut_link(&mut self) -> anyhow::Result<()> {
        self.set_link(false)
    }

    /// Brings the link back (remote enabled, config reloaded) and waits until the leaf node
    /// has reconnected.
    pub fn restore_link(&mut self) -> anyhow::Result<()> {
        self.set_link(true)
    }

    fn set_link(&mut self, up: bool) -> anyhow::Result<()> {
        self.cut = !up;
        write_config(self.dir.path(), &self.values, self.cut)?;
        self.server
            .signal(libc::SIGHUP)
            .with_context(|| format!("edge site {}", self.site))?;
        self.wait_link(up, LINK_TIMEOUT)
    }

    /// True while the link is cut by [`cut_link`](Self::cut_link).
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    fn wait_link(&self, up: bool, timeout: Duration) -> anyhow::Result<()> {
        let what = if up {
            "edge leaf node connected to the hub"
        } else {
            "edge leaf node disconnected from the hub"
        };
        crate::eventually(timeout, what, || {
            Ok(((self.link_count()? > 0) == up).then_some(()))
        })
        .with_context(|| format!("leaf node log: {}", self.log_path().display()))
    }

    /// True while the leaf node's process runs.
    pub fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// Crash stop of the leaf node (`SIGKILL`); port and store are kept.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Graceful stop of the leaf node (`SIGTERM`, `SIGKILL` after 10 s).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the leaf node again on its port and store and waits until JetStream is ready
    /// (and, unless the link is cut, until it reached the hub).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server
            .restart()
            .with_context(|| format!("restart edge site {}", self.site))?;
        if !self.cut {
            self.wait_link(true, READY_TIMEOUT)?;
        }
        Ok(())
    }
}

/// Renders `deploy/edge/leaf.conf` with `values` and the link state into `<dir>/nats.conf`.
fn write_config(dir: &Path, values: &[(&'static str, String)], cut: bool) -> anyhow::Result<()> {
    let disabled = if cut { "true" } else { "false" };
    let mut values: Vec<(&str, &str)> = values
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    values.push(("LINK_DISABLED", disabled));
    let conf = deploy::render(LEAF_CONF_TEMPLATE, &values)?;
    std::fs::write(dir.join("nats.conf"), conf)?;
    Ok(())
}
