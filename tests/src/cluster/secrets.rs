//! The credentials and certificates of a locked-down hub cluster and its edge sites, made the
//! way `deploy/cluster/up.sh` makes them (`deploy/lockdown.sh`): the users and subject
//! permissions of `deploy/nats/users.conf`, a password per user and one for the routes, a
//! `leaf-<site>` user per edge site (`deploy/nats/leaf-user.conf`), users of its own at each
//! site (none of the hub's passwords there), and a
//! CA with a server certificate (`127.0.0.1`, `localhost`) made by the very shell function the
//! scripts use, `rtdash_lockdown_tls` (openssl). Calling the script rather than generating
//! certificates in Rust (`rcgen`) keeps one generator: the tests prove the certificates the
//! deployment makes, and the harness needs no new dependency.
//!
//! Passwords are throwaway and stand in the users file in clear (nats-server takes a bcrypt
//! hash or the password itself; the permissions and TLS are what the tests exercise).
//!
//! Layout, as in a deployment: `<dir>/secrets/nats-users.conf` (included by each node's
//! `<dir>/n1/nats.conf` as `../secrets/nats-users.conf`, by an edge site's `<dir>/nats.conf`
//! as `secrets/nats-users.conf`) and `<dir>/secrets/tls/{ca,server,server-key}.pem`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::bail;

use crate::lockdown::{new_passwords, password, render_users};

/// The user, password and CA a client connects to the hub or an edge site with.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// NATS user (`core-aggregator`, `gateway`, `edge-agent`, `operator`, `leaf-<site>`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The CA the servers' certificates chain to.
    pub ca: PathBuf,
}

/// Connect options for a TLS connection: rustls's process-wide crypto provider is set first
/// (the test binaries link two; the services do the same in `rtdash_runtime::nats_access`).
pub fn tls_options() -> async_nats::ConnectOptions {
    rtdash_runtime::nats_access::install_tls_provider();
    async_nats::ConnectOptions::new()
}

impl Credentials {
    /// async-nats options: user and password, TLS required, verified against [`Self::ca`].
    pub fn connect_options(&self) -> async_nats::ConnectOptions {
        tls_options()
            .user_and_password(self.user.clone(), self.password.clone())
            .add_root_certificates(self.ca.clone())
            .require_tls(true)
    }

    /// The `[nats]` section of a service connecting to `url` with these credentials.
    pub fn nats_config(&self, url: &str) -> rtdash_runtime::nats::NatsConfig {
        rtdash_runtime::nats::NatsConfig {
            url: url.to_owned(),
            user: Some(self.user.clone()),
            password: Some(self.password.as_str().into()),
            tls_ca: Some(self.ca.display().to_string()),
            ..Default::default()
        }
    }

    /// `RTDASH_NATS__USER`, `RTDASH_NATS__PASSWORD`, `RTDASH_NATS__TLS_CA`: what a service's
    /// `<service>.env` holds.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("RTDASH_NATS__USER".to_owned(), self.user.clone()),
            ("RTDASH_NATS__PASSWORD".to_owned(), self.password.clone()),
            (
                "RTDASH_NATS__TLS_CA".to_owned(),
                self.ca.display().to_string(),
            ),
        ]
    }
}

/// A hub's (or an edge site's) users, passwords and certificates.
#[derive(Clone, Debug)]
pub struct ClusterSecrets {
    /// `<dir>/secrets`.
    dir: PathBuf,
    passwords: HashMap<&'static str, String>,
    /// The hub's edge sites' leaf users, `leaf-<site>`: site -> password. Shared by the clones
    /// a cluster hands out, so a user added later is in every one.
    leaf_passwords: Arc<Mutex<BTreeMap<String, String>>>,
    route_password: String,
}

impl ClusterSecrets {
    /// Makes them under `<dir>/secrets`: the users file with new passwords (and no leaf user
    /// yet: [`add_leaf_user`](Self::add_leaf_user)), and the CA and server certificate
    /// ([`make_tls`]).
    pub(crate) fn generate(dir: &Path) -> anyhow::Result<Self> {
        let secrets = Self {
            dir: dir.join("secrets"),
            passwords: new_passwords(),
            leaf_passwords: Arc::default(),
            route_password: password(),
        };
        std::fs::create_dir_all(&secrets.dir)?;
        secrets.write_users(&BTreeMap::new())?;
        make_tls(&secrets.dir.join("tls"))?;
        Ok(secrets)
    }

    /// An edge site's secrets in `<dir>/secrets`, as `deploy/edge/up.sh` makes them: users of
    /// its own with new passwords (none of the hub's, no leaf user), a copy of the hub's CA
    /// and a server certificate of its own signed by it ([`make_site_tls`]).
    pub(crate) fn for_site(&self, dir: &Path) -> anyhow::Result<Self> {
        let site = Self {
            dir: dir.join("secrets"),
            passwords: new_passwords(),
            leaf_passwords: Arc::default(),
            route_password: password(),
        };
        std::fs::create_dir_all(&site.dir)?;
        site.write_users(&BTreeMap::new())?;
        make_site_tls(&site.dir.join("tls"), &self.dir.join("tls"))?;
        Ok(site)
    }

    /// Adds edge site `site`'s leaf user, `leaf-<site>`, with a new password, and writes the
    /// users file again (the servers take it on a reload). False when it was there already.
    pub(crate) fn add_leaf_user(&self, site: &str) -> anyhow::Result<bool> {
        let mut leaf_passwords = self.leaf_passwords.lock().expect("leaf users lock");
        if leaf_passwords.contains_key(site) {
            return Ok(false);
        }
        leaf_passwords.insert(site.to_owned(), password());
        self.write_users(&leaf_passwords)?;
        Ok(true)
    }

    /// The credentials of edge site `site`'s leaf user, if it has one.
    pub fn leaf_credentials(&self, site: &str) -> Option<Credentials> {
        let leaf_passwords = self.leaf_passwords.lock().expect("leaf users lock");
        leaf_passwords.get(site).map(|password| Credentials {
            user: format!("leaf-{site}"),
            password: password.clone(),
            ca: self.ca(),
        })
    }

    /// Writes the users file: the users' passwords and `leaf_passwords`' leaf users.
    fn write_users(&self, leaf_passwords: &BTreeMap<String, String>) -> anyhow::Result<()> {
        std::fs::write(
            self.users_conf(),
            render_users(&self.passwords, leaf_passwords)?,
        )?;
        Ok(())
    }

    /// `<dir>/secrets/nats-users.conf`.
    pub fn users_conf(&self) -> PathBuf {
        self.dir.join("nats-users.conf")
    }

    /// The CA every server's certificate chains to.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// The servers' certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls/server.pem")
    }

    /// Its key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("tls/server-key.pem")
    }

    /// The password of the `route` user the nodes authenticate to each other with.
    pub fn route_password(&self) -> &str {
        &self.route_password
    }

    /// The credentials of `user` (one of [`crate::lockdown::NATS_USERS`]).
    pub fn credentials(&self, user: &str) -> Credentials {
        let (user, password) = self
            .passwords
            .get_key_value(user)
            .unwrap_or_else(|| panic!("no NATS user {user} in deploy/nats/users.conf"));
        Credentials {
            user: (*user).to_owned(),
            password: password.clone(),
            ca: self.ca(),
        }
    }

    /// The template values every locked-down server config takes: `TLS_CERT`, `TLS_KEY`,
    /// `TLS_CA` and `USERS_INCLUDE` (relative to the config in `config_dir`).
    pub(crate) fn template_values(&self, users_include: &str) -> Vec<(&'static str, String)> {
        vec![
            ("TLS_CERT", self.cert().display().to_string()),
            ("TLS_KEY", self.key().display().to_string()),
            ("TLS_CA", self.ca().display().to_string()),
            ("USERS_INCLUDE", users_include.to_owned()),
        ]
    }
}

/// Makes a CA and a server certificate into `dir` with `rtdash_lockdown_tls` of
/// `deploy/lockdown.sh` (openssl): `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`.
pub fn make_tls(dir: &Path) -> anyhow::Result<()> {
    lockdown_tls(&[dir])
}

/// Makes an edge site's certificate into `dir` with `rtdash_lockdown_tls DIR CA_DIR`: a copy
/// of `ca_dir`'s `ca.pem` and a `server.pem`, `server-key.pem` of its own signed by that CA
/// (no CA key in `dir`).
pub(crate) fn make_site_tls(dir: &Path, ca_dir: &Path) -> anyhow::Result<()> {
    lockdown_tls(&[dir, ca_dir])
}

/// Runs `rtdash_lockdown_tls` with `args`.
fn lockdown_tls(args: &[&Path]) -> anyhow::Result<()> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|dir| dir.as_os_str()).collect();
    let output = crate::lockdown::deploy_functions(
        r#"unset RTDASH_TLS_SANS; rtdash_lockdown_tls "$@""#,
        &args,
        &[],
    )?;
    if !output.status.success() {
        bail!(
            "rtdash_lockdown_tls {:?} failed: {}",
            args,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
