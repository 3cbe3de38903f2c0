//! How a service proves who it is to NATS and checks who the server is: a user and password
//! (or a token, or a `.creds` file), TLS with the deployment's CA, and a reply-subject prefix
//! of its own. The subject permissions those users have are the server's business
//! (`deploy/nats/users.conf`, docs/security.md "NATS"); what a service needs to know is that a
//! refused publish or subscribe arrives as an asynchronous server error, which is logged here
//! with the subject the server names, instead of surfacing later only as a timeout.

use crate::config::ConfigError;
use crate::nats::{NatsConfig, NatsError};
use async_nats::ConnectOptions;

/// Reply-subject prefix of a connection without a user.
pub const DEFAULT_INBOX_PREFIX: &str = "_INBOX";

/// The reply-subject prefix `config` asks for: `nats.inbox_prefix`, else `_INBOX.<user>`,
/// else `_INBOX`.
pub fn inbox_prefix(config: &NatsConfig) -> String {
    match (&config.inbox_prefix, &config.user) {
        (Some(prefix), _) => prefix.clone(),
        (None, Some(user)) => format!("{DEFAULT_INBOX_PREFIX}.{user}"),
        (None, None) => DEFAULT_INBOX_PREFIX.to_owned(),
    }
}

/// Checks that the `[nats]` credentials and TLS settings go together; the error names the key.
pub fn validate(config: &NatsConfig) -> Result<(), ConfigError> {
    if config.user.is_some() != config.password.is_some() {
        let missing = if config.user.is_some() {
            "nats.password"
        } else {
            "nats.user"
        };
        return Err(ConfigError::invalid(
            missing,
            "must be set: `nats.user` and `nats.password` go together",
        ));
    }
    if config.user.as_deref().is_some_and(|user| !is_token(user)) {
        return Err(ConfigError::invalid(
            "nats.user",
            "must be letters, digits, `-` and `_` (it is also a subject token of the reply prefix)",
        ));
    }
    let ways = [
        config.user.is_some(),
        config.token.is_some(),
        config.credentials.is_some(),
    ]
    .into_iter()
    .filter(|&on| on)
    .count();
    if ways > 1 {
        return Err(ConfigError::invalid(
            "nats.token",
            "use one of `nats.user`/`nats.password`, `nats.token` or `nats.credentials`",
        ));
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(ConfigError::invalid(
            if config.tls_cert.is_some() {
                "nats.tls_key"
            } else {
                "nats.tls_cert"
            },
            "must be set: `nats.tls_cert` and `nats.tls_key` go together",
        ));
    }
    if let Some(prefix) = &config.inbox_prefix {
        if prefix.is_empty() || !prefix.split('.').all(is_token) {
            return Err(ConfigError::invalid(
                "nats.inbox_prefix",
                "must be dot-separated tokens of letters, digits, `-` and `_` (no wildcards)",
            ));
        }
    }
    Ok(())
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Adds `config`'s credentials, TLS settings, reply prefix and a logger of server errors to
/// `options`. Files are checked here, so a missing one is an error naming its key.
pub async fn apply(
    mut options: ConnectOptions,
    config: &NatsConfig,
) -> Result<ConnectOptions, NatsError> {
    let readable = |key: &'static str, path: &str| -> Result<(), NatsError> {
        std::fs::File::open(path)
            .map(drop)
            .map_err(|source| NatsError::File {
                url: config.url.clone(),
                key,
                path: path.to_owned(),
                source,
            })
    };
    install_tls_provider();
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_owned());
    }
    if let Some(path) = &config.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| NatsError::File {
                url: config.url.clone(),
                key: "credentials",
                path: path.clone(),
                source,
            })?;
    }
    if let Some(ca) = &config.tls_ca {
        readable("tls_ca", ca)?;
        options = options.add_root_certificates(ca.into()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        readable("tls_cert", cert)?;
        readable("tls_key", key)?;
        options = options.add_client_certificate(cert.into(), key.into());
    }
    Ok(options
        .custom_inbox_prefix(inbox_prefix(config))
        .event_callback(|event| async move {
            // A permissions violation (a publish or subscribe the user may not make) comes
            // only as this event: the request it belonged to just times out.
            if let async_nats::Event::ServerError(err) = event {
                tracing::warn!(error = %err, "NATS server refused an operation");
            }
        }))
}

/// Makes ring, the provider async-nats is built with, rustls's process-wide default, once.
/// async-nats builds its TLS configuration from that default; a binary that also links
/// rustls with aws-lc-rs (through other clients) has two providers compiled in and no
/// default, and its first TLS connection to NATS would panic. A provider installed earlier
/// (by anyone) is kept.
pub fn install_tls_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn with(edit: impl FnOnce(&mut NatsConfig)) -> NatsConfig {
        let mut config = NatsConfig::default();
        edit(&mut config);
        config
    }

    #[test]
    fn the_reply_prefix_follows_the_user() {
        assert_eq!(inbox_prefix(&NatsConfig::default()), "_INBOX");
        let user = with(|c| {
            c.user = Some("gateway".into());
            c.password = Some(Secret::new("p"));
        });
        assert_eq!(inbox_prefix(&user), "_INBOX.gateway");
        let own = with(|c| c.inbox_prefix = Some("_R.x".into()));
        assert_eq!(inbox_prefix(&own), "_R.x");
    }

    #[test]
    fn credentials_and_tls_settings_must_go_together() {
        validate(&NatsConfig::default()).unwrap();
        let complete = with(|c| {
            c.user = Some("edge-agent".into());
            c.password = Some(Secret::new("p"));
            c.tls_ca = Some("/ca.pem".into());
        });
        validate(&complete).unwrap();
        let cases: Vec<(NatsConfig, &str)> = vec![
            (with(|c| c.user = Some("u".into())), "`nats.password`"),
            (with(|c| c.password = Some(Secret::new("p"))), "`nats.user`"),
            (
                with(|c| {
                    c.user = Some("a.b".into());
                    c.password = Some(Secret::new("p"));
                }),
                "`nats.user`",
            ),
            (
                with(|c| {
                    c.user = Some("u".into());
                    c.password = Some(Secret::new("p"));
                    c.token = Some(Secret::new("t"));
                }),
                "`nats.token`",
            ),
            (
                with(|c| {
                    c.token = Some(Secret::new("t"));
                    c.credentials = Some("/x.creds".into());
                }),
                "`nats.token`",
            ),
            (
                with(|c| c.tls_cert = Some("/c.pem".into())),
                "`nats.tls_key`",
            ),
            (
                with(|c| c.tls_key = Some("/k.pem".into())),
                "`nats.tls_cert`",
            ),
            (
                with(|c| c.inbox_prefix = Some("_INBOX.>".into())),
                "`nats.inbox_prefix`",
            ),
            (
                with(|c| c.inbox_prefix = Some(String::new())),
                "`nats.inbox_prefix`",
            ),
        ];
        for (config, key) in cases {
            let err = validate(&config).expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains("hunter"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_missing_tls_file_is_named_with_its_key() {
        let config = with(|c| c.tls_ca = Some("/nonexistent/ca.pem".into()));
        let err = apply(ConnectOptions::new(), &config).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`nats.tls_ca`"), "{text}");
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    }
}
