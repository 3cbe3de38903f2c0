//! NATS and QuestDB locked down as in a deployment (deploy/lockdown.sh), for the tests that
//! ask for it (security_nats.rs, security_questdb.rs): the same users, subject permissions
//! (`deploy/nats/users.conf`) and QuestDB settings (`deploy/questdb/auth.conf`), with
//! passwords made up per test. The harness's other servers stay open.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::deploy;
use crate::nats::{NatsOptions, NatsServer};
use crate::questdb::QuestDb;

/// `deploy/nats/users.conf`: users and subject permissions.
const NATS_USERS_TEMPLATE: &str = include_str!("../../deploy/nats/users.conf");
/// `deploy/questdb/auth.conf`: HTTP basic auth, PG users, ILP/TCP off.
const QUESTDB_AUTH_TEMPLATE: &str = include_str!("../../deploy/questdb/auth.conf");

/// `deploy/nats/leaf-user.conf`: the user of one edge site's leaf node, `leaf-<site>`.
const LEAF_USER_TEMPLATE: &str = include_str!("../../deploy/nats/leaf-user.conf");

/// The NATS users of a deployment, and the placeholder of each one's password hash (edge
/// sites' leaf users come on top, one per site: [`render_users`]).
pub const NATS_USERS: [(&str, &str); 4] = [
    ("core-aggregator", "AGGREGATOR_HASH"),
    ("gateway", "GATEWAY_HASH"),
    ("edge-agent", "AGENT_HASH"),
    ("operator", "OPERATOR_HASH"),
];

/// A new password for each user of [`NATS_USERS`].
pub(crate) fn new_passwords() -> HashMap<&'static str, String> {
    NATS_USERS
        .iter()
        .map(|(user, _)| (*user, password()))
        .collect()
}

/// `deploy/nats/users.conf` with `passwords` (each user of [`NATS_USERS`]) in clear, and a
/// `leaf-<site>` user (`deploy/nats/leaf-user.conf`) for each site of `leaf_passwords`
/// (site, password).
pub(crate) fn render_users(
    passwords: &HashMap<&'static str, String>,
    leaf_passwords: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let mut leaf_users = String::new();
    for (site, password) in leaf_passwords {
        leaf_users.push_str(&deploy::render(
            LEAF_USER_TEMPLATE,
            &[("SITE", site), ("LEAF_HASH", password)],
        )?);
    }
    let mut values: Vec<(&str, &str)> = NATS_USERS
        .iter()
        .map(|(user, key)| (*key, passwords[user].as_str()))
        .collect();
    values.push(("LEAF_USERS", &leaf_users));
    deploy::render(NATS_USERS_TEMPLATE, &values)
}

/// Runs `script` in bash with `deploy/lib.sh` and `deploy/lockdown.sh` sourced, as the deploy
/// scripts have them (their own functions, not copies), `args` as `$1`, `$2`..., and `env`
/// added to the environment. Fails only when bash cannot run: the caller reads the status.
pub fn deploy_functions(
    script: &str,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
) -> anyhow::Result<Output> {
    deploy_functions_command(script, args, env)
        .output()
        .with_context(|| format!("run bash with deploy/lib.sh: {script}"))
}

/// The command [`deploy_functions`] runs, to spawn instead (a service started by
/// `rtdash_spawn` lives only as long as the shell that started it).
pub fn deploy_functions_command(script: &str, args: &[&OsStr], env: &[(&str, &OsStr)]) -> Command {
    let deploy_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            r#"set -euo pipefail; . "$RTDASH_DEPLOY_DIR/lib.sh"; . "$RTDASH_DEPLOY_DIR/lockdown.sh"; {script}"#
        ))
        .arg("rtdash-deploy-functions")
        .args(args)
        .env("RTDASH_DEPLOY_DIR", &deploy_dir);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A random password of 32 hex characters.
pub(crate) fn password() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A NATS server with the deployment's users and permissions (clear-text passwords in the
/// config: nats-server takes a bcrypt hash or the password itself, and the permissions are
/// what is tested here).
#[derive(Debug)]
pub struct LockedNats {
    /// The server.
    pub server: NatsServer,
    /// Password of each user of [`NATS_USERS`].
    pub passwords: HashMap<&'static str, String>,
}

impl LockedNats {
    /// Starts it and waits until JetStream is ready.
    pub fn start() -> anyhow::Result<Self> {
        let passwords = new_passwords();
        let users = render_users(&passwords, &BTreeMap::new())?;
        let server = NatsServer::start_with(NatsOptions {
            extra_conf: users,
            ..NatsOptions::default()
        })?;
        Ok(Self { server, passwords })
    }

    /// The `[nats]` section of service `user`: its user, password and short timeouts (a
    /// refused JetStream request just goes unanswered).
    pub fn config(&self, user: &str) -> rtdash_runtime::nats::NatsConfig {
        rtdash_runtime::nats::NatsConfig {
            url: self.server.url(),
            user: Some(user.to_owned()),
            password: Some(self.passwords[user].as_str().into()),
            request_timeout_ms: 2_000,
            ..Default::default()
        }
    }

    /// Connects as `user` the way the services do (rtdash_runtime::nats::connect).
    pub async fn connect(&self, user: &str) -> anyhow::Result<async_nats::Client> {
        Ok(rtdash_runtime::nats::connect(&self.config(user), &format!("test-{user}")).await?)
    }
}

/// A QuestDB with the deployment's authentication settings.
#[derive(Debug)]
pub struct LockedQuestDb {
    /// The server.
    pub db: QuestDb,
    /// HTTP and PostgreSQL admin user (`admin`) and its password.
    pub admin: (String, String),
    /// Read-only PostgreSQL user and its password.
    pub readonly: (String, String),
}

impl LockedQuestDb {
    /// Starts it and waits until its health port answers (not yet its `/exec`).
    pub fn start() -> anyhow::Result<Self> {
        let admin = ("admin".to_owned(), password());
        let readonly = ("rtdash_ro".to_owned(), password());
        let auth = deploy::render(
            QUESTDB_AUTH_TEMPLATE,
            &[
                ("QDB_ADMIN_USER", &admin.0),
                ("QDB_ADMIN_PASSWORD", &admin.1),
                ("QDB_READONLY_USER", &readonly.0),
                ("QDB_READONLY_PASSWORD", &readonly.1),
            ],
        )?;
        let db = QuestDb::start_with_conf(&auth)?;
        Ok(Self {
            db,
            admin,
            readonly,
        })
    }

    /// [`start`](Self::start)s it and waits (up to 90 s) until `/exec` answers `select 1`
    /// with the admin password. On a multi-threaded runtime (the start blocks).
    pub async fn start_ready() -> anyhow::Result<Self> {
        let locked = tokio::task::block_in_place(Self::start)?;
        let url = format!("http://{}/exec?query=select%201", locked.db.http_addr());
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let answer = client
                .get(&url)
                .basic_auth(&locked.admin.0, Some(&locked.admin.1))
                .send()
                .await;
            if answer.is_ok_and(|answer| answer.status().is_success()) {
                return Ok(locked);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "QuestDB not ready with its password"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
