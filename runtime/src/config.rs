//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables. Every setting of a component has an environment variable:
//!
//! - `RTDASH_<COMPONENT>__<KEY>` for the component alone, `__` separating nested keys:
//!   `RTDASH_GATEWAY__LISTEN=127.0.0.1:9080`, `RTDASH_EDGE_AGENT__NATS__URL=...`;
//! - `RTDASH_<SECTION>__<KEY>` for the sections every component shares ([`SHARED_SECTIONS`]):
//!   `RTDASH_NATS__URL=nats://10.0.0.5:4222` applies to every component with a `nats` section.
//!
//! The component-specific variable wins over the shared one, and both over the file.

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Top-level sections that may be set for every component at once.
pub const SHARED_SECTIONS: [&str; 4] = ["nats", "questdb", "telemetry", "streams"];

/// A configuration problem. Printed as one line naming the key; the process exits with
/// [`crate::EXIT_CONFIG`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file does not exist or cannot be read.
    #[error("config file {path}: {problem}")]
    File {
        /// The path given.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// A value does not parse or has the wrong type; the message names the key.
    #[error("{0}")]
    Parse(String),
    /// A value parses but is not acceptable.
    #[error("invalid config: `{key}` {problem}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl ConfigError {
    /// An invalid-value error for `key`.
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A configuration struct that can check itself after loading.
pub trait Validate {
    /// Checks values that parse but make no sense (zero sizes, unknown modes).
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` for `component` (e.g. `gateway`, `edge-agent`): defaults from `T::default()`,
/// then `file`, then environment variables; then [`Validate::validate`].
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
    let own_sections: Vec<String> = Value::serialize(&defaults)
        .ok()
        .and_then(Value::into_dict)
        .map(|dict| dict.into_keys().collect())
        .unwrap_or_default();
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::File {
            path: path.display().to_string(),
            problem: err.to_string(),
        })?;
        figment = figment.merge(Toml::string(&text));
    }
    let env: Vec<(String, String)> = env.into_iter().collect();
    let shared: Vec<(String, String)> = env
        .iter()
        .filter_map(|(key, value)| {
            let rest = key.strip_prefix("RTDASH_")?;
            let section = rest.split("__").next()?.to_ascii_lowercase();
            (rest.contains("__")
                && SHARED_SECTIONS.contains(&section.as_str())
                && own_sections.contains(&section))
            .then(|| (rest.to_owned(), value.clone()))
        })
        .collect();
    let own_prefix = format!(
        "RTDASH_{}__",
        component.to_ascii_uppercase().replace('-', "_")
    );
    let own: Vec<(String, String)> = env
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix(&own_prefix)
                .map(|rest| (rest.to_owned(), value.clone()))
        })
        .collect();
    figment = figment.merge(env_provider(shared)).merge(env_provider(own));
    let config: T = figment.extract().map_err(|err| {
        let mut messages: Vec<String> = err
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let origin = e
                    .metadata
                    .as_ref()
                    .map(|m| m.name.to_string())
                    .unwrap_or_default();
                if key.is_empty() {
                    format!("invalid config: {} ({origin})", e.kind)
                } else {
                    format!("invalid config: `{key}` {} ({origin})", e.kind)
                }
            })
            .collect();
        messages.dedup();
        ConfigError::Parse(messages.join("; "))
    })?;
    config.validate()?;
    Ok(config)
}

fn env_provider(vars: Vec<(String, String)>) -> Serialized<Dict> {
    let mut root = Dict::new();
    for (key, raw) in vars {
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
        insert_path(&mut root, &path, value);
    }
    Serialized::defaults(root)
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
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
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct NatsPart {
        url: String,
    }

    impl Default for NatsPart {
        fn default() -> Self {
            Self {
                url: "nats://127.0.0.1:4222".into(),
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

    #[test]
    fn layers_defaults_file_shared_and_component_env() {
        let dir = std::env::temp_dir().join(format!("rtdash-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nflush_ms = 5\n").unwrap();
        let loaded: Sample = load_from(
            "edge-agent",
            Some(&file),
            vars(&[
                ("RTDASH_NATS__URL", "nats://shared:4222"),
                ("RTDASH_EDGE_AGENT__FLUSH_MS", "7"),
                ("RTDASH_GATEWAY__LISTEN", "ignored"),
                ("RTDASH_QUESTDB__HTTP", "not ours"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.listen, "127.0.0.1:1");
        assert_eq!(loaded.flush_ms, 7);
        assert_eq!(loaded.nats.url, "nats://shared:4222");
        let own: Sample = load_from(
            "edge-agent",
            None,
            vars(&[
                ("RTDASH_NATS__URL", "nats://shared:4222"),
                ("RTDASH_EDGE_AGENT__NATS__URL", "nats://own:4222"),
            ]),
        )
        .unwrap();
        assert_eq!(own.nats.url, "nats://own:4222");
    }

    #[test]
    fn errors_name_the_key() {
        let err = load_from::<Sample>(
            "edge-agent",
            None,
            vars(&[("RTDASH_EDGE_AGENT__FLUSH_MS", "soon")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("flush_ms"), "{err}");
        let err = load_from::<Sample>(
            "edge-agent",
            None,
            vars(&[("RTDASH_EDGE_AGENT__FLUSH_MS", "20000")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("flush_ms"), "{err}");
        let err = load_from::<Sample>(
            "edge-agent",
            None,
            vars(&[("RTDASH_EDGE_AGENT__FLUHS_MS", "1")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("fluhs_ms"), "{err}");
        let err = load_from::<Sample>(
            "edge-agent",
            Some(Path::new("/nonexistent/x.toml")),
            vars(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
    }
}
