//! The environment layer of the configuration: `RTDASH_...` variables as a figment provider.
//!
//! Not figment's own `Env`: it reads only the process environment (tests pass theirs to
//! [`super::load_from`]), and it types each value itself, so `RTDASH_..._PASSWORD=12345`
//! became a number that a string field refuses. Here a scalar stays the string it is and the
//! field's type decides how it reads (the figment is extracted lossily: `"7"` reads as a
//! number where a number is expected, `"true"` as a bool where a bool is).

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// The name of an [`EnvLayer`]'s metadata; [`super::origin`] recognises the layer by it.
pub(super) const NAME: &str = "environment variable";

/// The variables under one prefix: `__` separates nested keys, keys are lowercased.
pub(super) struct EnvLayer {
    /// What precedes the key path in a variable's name, e.g. `RTDASH_EDGE_AGENT__`.
    prefix: String,
    /// (lowercased key path, raw value).
    values: Vec<(Vec<String>, String)>,
}

impl EnvLayer {
    /// The component's own variables, `RTDASH_<COMPONENT>__<KEY>` (`edge-agent` ->
    /// `RTDASH_EDGE_AGENT__`).
    pub(super) fn own(component: &str, env: &[(String, String)]) -> Self {
        let prefix = format!(
            "RTDASH_{}__",
            component.to_ascii_uppercase().replace('-', "_")
        );
        Self::select(prefix, env, |_| true)
    }

    /// The shared sections' variables, `RTDASH_<SECTION>__<KEY>`, for the `sections` given
    /// (those of the shared sections the component has); others are left alone.
    pub(super) fn shared(sections: &[String], env: &[(String, String)]) -> Self {
        Self::select("RTDASH_".to_owned(), env, |path| {
            path.len() > 1 && sections.contains(&path[0])
        })
    }

    fn select(
        prefix: String,
        env: &[(String, String)],
        wanted: impl Fn(&[String]) -> bool,
    ) -> Self {
        let values = env
            .iter()
            .filter_map(|(name, raw)| {
                let path: Vec<String> = name
                    .strip_prefix(&prefix)?
                    .split("__")
                    .map(str::to_ascii_lowercase)
                    .collect();
                let usable = path.iter().all(|part| !part.is_empty()) && wanted(&path);
                usable.then(|| (path, raw.clone()))
            })
            .collect();
        Self { prefix, values }
    }
}

/// Scalars stay strings (see the module docs); a value written as a list or a table
/// (`[1, 2]`, `{a = 1}`) is parsed so that lists and tables can be given too.
fn value_of(raw: &str) -> Value {
    match raw.parse::<Value>() {
        Ok(parsed @ (Value::Array(..) | Value::Dict(..))) => parsed,
        _ => Value::from(raw.to_owned()),
    }
}

impl Provider for EnvLayer {
    /// Names the variable of a key: an error on `questdb.password` from the gateway's layer
    /// says `RTDASH_GATEWAY__QUESTDB__PASSWORD`.
    fn metadata(&self) -> Metadata {
        let prefix = self.prefix.clone();
        Metadata::named(NAME).interpolater(move |_: &Profile, keys: &[&str]| {
            let keys: Vec<String> = keys.iter().map(|key| key.to_ascii_uppercase()).collect();
            format!("{prefix}{}", keys.join("__"))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut root = Dict::new();
        for (path, raw) in &self.values {
            insert(&mut root, path, value_of(raw));
        }
        Ok(Profile::Default.collect(root))
    }
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
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
                insert(inner, rest, value);
            }
        }
    }
}
