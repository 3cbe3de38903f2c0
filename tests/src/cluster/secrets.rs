//! The credentials and certificates of a locked-down hub cluster and its edge sites, made the
//! way `deploy/cluster/up.sh` makes them (`deploy/lockdown.sh`): the users and subject
//! permissions of `deploy/nats/users.conf`, a password per user and one for the routes, and a
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::deploy;
use crate::lockdown::{password, NATS_USERS, NATS_USERS_TEMPLATE};

/// The user, password and CA a client connects to the hub or an edge site with.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// NATS user (`core-aggregator`, `gateway`, `edge-agent`, `operator`, `leaf`).
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

/// A hub's (or an edge site's copy of the hub's) users, passwords and certificates.
#[derive(Clone, Debug)]
pub struct ClusterSecrets {
    /// `<dir>/secrets`.
    dir: PathBuf,
    passwords: HashMap<&'static str, String>,
    route_password: String,
}

impl ClusterSecrets {
    /// Makes them under `<dir>/secrets`: the users file with new passwords, and the CA and
    /// server certificate ([`make_tls`]).
    pub(crate) fn generate(dir: &Path) -> anyhow::Result<Self> {
        let passwords: HashMap<&'static str, String> = NATS_USERS
            .iter()
            .map(|(user, _)| (*user, password()))
            .collect();
        let secrets = Self {
            dir: dir.join("secrets"),
            passwords,
            route_password: password(),
        };
        std::fs::create_dir_all(&secrets.dir)?;
        let values: Vec<(&str, &str)> = NATS_USERS
            .iter()
            .map(|(user, key)| (*key, secrets.passwords[user].as_str()))
            .collect();
        std::fs::write(
            secrets.users_conf(),
            deploy::render(NATS_USERS_TEMPLATE, &values)?,
        )?;
        make_tls(&secrets.dir.join("tls"))?;
        Ok(secrets)
    }

    /// Copies the users file and the certificates into `<dir>/secrets` (an edge site's
    /// directory, as `deploy/edge/up.sh` does); the copy's paths point there.
    pub(crate) fn copy_to(&self, dir: &Path) -> anyhow::Result<Self> {
        let copy = Self {
            dir: dir.join("secrets"),
            ..self.clone()
        };
        std::fs::create_dir_all(copy.dir.join("tls"))?;
        std::fs::copy(self.users_conf(), copy.users_conf())?;
        for file in ["ca.pem", "server.pem", "server-key.pem"] {
            std::fs::copy(
                self.dir.join("tls").join(file),
                copy.dir.join("tls").join(file),
            )?;
        }
        Ok(copy)
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

    /// The credentials of `user` (one of [`NATS_USERS`]).
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
    let output = crate::lockdown::deploy_functions(
        r#"unset RTDASH_TLS_SANS; rtdash_lockdown_tls "$1""#,
        &[dir.as_os_str()],
        &[],
    )?;
    if !output.status.success() {
        bail!(
            "rtdash_lockdown_tls {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
