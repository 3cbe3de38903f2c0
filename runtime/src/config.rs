//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables. Every setting of a component has an environment variable:
//!
//! - `RTDASH_<COMPONENT>__<KEY>` for the component alone, `__` separating nested keys:
//!   `RTDASH_GATEWAY__LISTEN=127.0.0.1:9080`, `RTDASH_EDGE_AGENT__NATS__URL=...`;
//! - `RTDASH_<SECTION>__<KEY>` for the sections every component shares ([`SHARED_SECTIONS`]):
//!   `RTDASH_NATS__URL=nats://10.0.0.5:4222` applies to every component with a `nats` section.
//!
//! The component-specific variable wins over the shared one, and both over the file. A
//! variable's value reads as its field's type (`RTDASH_GATEWAY__QUESTDB__PASSWORD=12345` is the
//! string "12345"). Errors name the key and the variable or file its value came from.

use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::{Figment, Metadata, Profile, Source};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

mod env;

/// Top-level sections that may be set for every component at once.
pub const SHARED_SECTIONS: [&str; 5] = ["nats", "questdb", "telemetry", "streams", "rollups"];

/// A configuration problem. Printed as one line naming the key and where its value came from
/// (the environment variable or the file); the process exits with [`crate::EXIT_CONFIG`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist or cannot be read.
    #[error("config file {path}")]
    File {
        /// The path given.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A key is unknown or a value does not read as its field's type. Displayed in full
    /// (every key, its problem, its origin), so the figment error is not also a `source`.
    #[error("{}", describe(.0))]
    Parse(Box<figment::Error>),
    /// A value reads but is not acceptable.
    #[error("invalid config: `{key}` {problem}{}", in_parentheses(.origin))]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong with it.
        problem: String,
        /// Where the value came from (`RTDASH_GATEWAY__LIVE__MAX_STREAMS`, `config file
        /// gateway.toml`), filled in by [`load`] when it can tell.
        origin: Option<String>,
    },
    /// The file a setting names (a secret's `<key>_file`) cannot be read.
    #[error("invalid config: `{key}`: cannot read {}", .path.display())]
    FileSetting {
        /// Dotted key path.
        key: String,
        /// The file named.
        path: std::path::PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A setting reads well but what it configures cannot be set up (the trace exporter).
    #[error("invalid config: `{key}`: cannot set up {what}")]
    Setup {
        /// Dotted key path, or the environment variable that configured it.
        key: String,
        /// What could not be set up.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    /// An invalid-value error for `key`.
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            problem: problem.into(),
            origin: None,
        }
    }

    /// Names where an invalid value came from, if `figment` knows the key.
    fn located(self, figment: &Figment) -> Self {
        match self {
            Self::Invalid {
                key,
                problem,
                origin: None,
            } => {
                let path: Vec<&str> = key.split('.').collect();
                let origin = figment
                    .find_metadata(&key)
                    .and_then(|metadata| origin(metadata, &Profile::Default, &path));
                Self::Invalid {
                    key,
                    problem,
                    origin,
                }
            }
            other => other,
        }
    }
}

/// A configuration struct that can complete and check itself after loading.
pub trait Validate {
    /// Reads the secrets given as files (`nats.password_file`, ...) into their settings
    /// (see [`crate::secret::from_file_setting`]); nothing by default.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Checks values that parse but make no sense (zero sizes, unknown modes).
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` for `component` (e.g. `gateway`, `edge-agent`): defaults from `T::default()`,
/// then `file`, then environment variables; then [`Validate::read_secret_files`] and
/// [`Validate::validate`].
pub fn load<T>(component: &str, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    load_from(component, file, std::env::vars())
}

/// [`load`] with an explicit environment (for tests).
pub fn load_from<T>(
    component: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    let defaults = T::default();
    let shared_sections: Vec<String> = Value::serialize(&defaults)
        .ok()
        .and_then(Value::into_dict)
        .map(|dict| {
            dict.into_keys()
                .filter(|section| SHARED_SECTIONS.contains(&section.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = file {
        // Read here first: a missing file is an error (figment would take it as empty), and
        // the error keeps the I/O cause.
        std::fs::File::open(path).map_err(|source| ConfigError::File {
            path: path.display().to_string(),
            source,
        })?;
        figment = figment.merge(Toml::file_exact(path));
    }
    let env: Vec<(String, String)> = env.into_iter().collect();
    figment = figment
        .merge(env::EnvLayer::shared(&shared_sections, &env))
        .merge(env::EnvLayer::own(component, &env));
    // Lossy: the environment has only strings, and the field's type decides how one reads.
    let mut config: T = figment
        .extract_lossy()
        .map_err(|err| ConfigError::Parse(Box::new(err)))?;
    config
        .read_secret_files()
        .map_err(|err| err.located(&figment))?;
    config.validate().map_err(|err| err.located(&figment))?;
    Ok(config)
}

/// Where the value at `path` came from, for messages: the variable's name, or the file;
/// `None` for a built-in default.
fn origin(metadata: &Metadata, profile: &Profile, path: &[&str]) -> Option<String> {
    match &metadata.source {
        Some(Source::File(file)) => Some(format!("config file {}", file.display())),
        _ if metadata.name == env::NAME => Some(metadata.interpolate(profile, path)),
        _ => None,
    }
}

fn in_parentheses(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|origin| format!(" ({origin})"))
        .unwrap_or_default()
}

/// One line for every problem figment found: `invalid config: `key` problem (origin)`.
fn describe(err: &figment::Error) -> String {
    let mut messages: Vec<String> = err
        .clone()
        .into_iter()
        .map(|e| {
            let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            let profile = e.profile.clone().unwrap_or(Profile::Default);
            let origin = e
                .metadata
                .as_ref()
                .and_then(|metadata| origin(metadata, &profile, &path));
            let kind = match &e.kind {
                // figment's own text quotes its "one of" list twice.
                Kind::UnknownField(_, expected) => {
                    let expected: Vec<String> =
                        expected.iter().map(|key| format!("`{key}`")).collect();
                    format!("unknown field, expected one of {}", expected.join(", "))
                }
                other => other.to_string().replace('\n', " "),
            };
            if path.is_empty() {
                format!("invalid config: {kind}{}", in_parentheses(&origin))
            } else {
                format!(
                    "invalid config: `{}` {kind}{}",
                    path.join("."),
                    in_parentheses(&origin)
                )
            }
        })
        .collect();
    messages.dedup();
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        listen: String,
        nats: NatsPart,
        flush_ms: u64,
        archive: bool,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct NatsPart {
        url: String,
        password: Option<String>,
        timeout_ms: Option<u64>,
    }

    impl Default for NatsPart {
        fn default() -> Self {
            Self {
                url: "nats://127.0.0.1:4222".into(),
                password: None,
                timeout_ms: None,
            }
        }
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            if self.flush_ms > 10_000 {
                return Err(ConfigError::invalid("flush_ms", "must be at most 10000"));
            }
            Ok(())
        }
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rtdash-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn precedence_is_defaults_file_shared_then_own_variables() {
        let file = config_file(
            "layers.toml",
            "listen = \"127.0.0.1:1\"\nflush_ms = 5\n[nats]\nurl = \"nats://file:4222\"\n",
        );
        let load = |env: &[(&str, &str)]| -> Sample {
            load_from("edge-agent", Some(&file), vars(env)).unwrap()
        };
        let from_file = load(&[]);
        assert_eq!(from_file.listen, "127.0.0.1:1");
        assert_eq!(from_file.flush_ms, 5);
        assert_eq!(from_file.nats.url, "nats://file:4222");
        assert!(!from_file.archive, "a default the file leaves alone");

        let shared = load(&[("RTDASH_NATS__URL", "nats://shared:4222")]);
        assert_eq!(shared.nats.url, "nats://shared:4222");

        let own = load(&[
            ("RTDASH_NATS__URL", "nats://shared:4222"),
            ("RTDASH_EDGE_AGENT__NATS__URL", "nats://own:4222"),
            ("RTDASH_EDGE_AGENT__FLUSH_MS", "7"),
            ("RTDASH_EDGE_AGENT__ARCHIVE", "true"),
            ("RTDASH_GATEWAY__LISTEN", "another component's"),
            (
                "RTDASH_QUESTDB__URL",
                "a section this component does not have",
            ),
        ]);
        assert_eq!(own.nats.url, "nats://own:4222");
        assert_eq!(own.flush_ms, 7);
        assert!(own.archive);
        assert_eq!(own.listen, "127.0.0.1:1");
    }

    #[test]
    fn a_numeric_looking_value_of_a_string_key_stays_a_string() {
        let loaded: Sample = load_from(
            "edge-agent",
            None,
            vars(&[
                ("RTDASH_EDGE_AGENT__LISTEN", "8080"),
                ("RTDASH_EDGE_AGENT__NATS__PASSWORD", "12345"),
                ("RTDASH_NATS__TIMEOUT_MS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.listen, "8080");
        assert_eq!(loaded.nats.password.as_deref(), Some("12345"));
        assert_eq!(
            loaded.nats.timeout_ms,
            Some(250),
            "and a number where one is due"
        );
    }

    #[test]
    fn an_unknown_key_from_the_environment_names_the_variable() {
        for (variable, key) in [
            ("RTDASH_EDGE_AGENT__FLUHS_MS", "fluhs_ms"),
            ("RTDASH_EDGE_AGENT__NATS__URLS", "nats.urls"),
            ("RTDASH_NATS__BOGUS", "nats.bogus"),
        ] {
            let err = load_from::<Sample>("edge-agent", None, vars(&[(variable, "1")]))
                .expect_err(variable)
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
            assert!(err.contains(variable), "{err}");
            assert!(err.contains("unknown field"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn errors_name_the_key_and_where_the_value_came_from() {
        let err = load_from::<Sample>(
            "edge-agent",
            None,
            vars(&[("RTDASH_EDGE_AGENT__FLUSH_MS", "soon")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`flush_ms`"), "{err}");
        assert!(err.contains("RTDASH_EDGE_AGENT__FLUSH_MS"), "{err}");

        let err = load_from::<Sample>(
            "edge-agent",
            None,
            vars(&[("RTDASH_EDGE_AGENT__FLUSH_MS", "20000")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid config: `flush_ms` must be at most 10000 (RTDASH_EDGE_AGENT__FLUSH_MS)"
        );

        let file = config_file("bad.toml", "flush_ms = 20000\nlistne = \"x\"\n");
        let err = load_from::<Sample>("edge-agent", Some(&file), vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`listne`"), "{err}");
        assert!(
            err.contains(&format!("config file {}", file.display())),
            "{err}"
        );

        let missing = Path::new("/nonexistent/x.toml");
        let err = load_from::<Sample>("edge-agent", Some(missing), vars(&[])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
        assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
    }
}
