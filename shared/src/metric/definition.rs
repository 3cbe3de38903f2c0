//! A metric definition as users write it (TOML, JSON, or through the gateway's API), and its
//! validation.

use crate::event::is_identifier;
use crate::sketch::SketchSpec;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// `event_type` value that matches every event type.
pub const ANY_EVENT_TYPE: &str = "*";
/// Default tumbling window, in seconds.
pub const DEFAULT_WINDOW_SECS: u32 = 60;
/// Default cap on distinct series per metric, tenant and window.
pub const DEFAULT_MAX_SERIES: u32 = 10_000;
/// Most dimensions on one metric.
pub const MAX_DIMENSIONS: usize = 8;
/// Most rollups on one metric.
pub const MAX_ROLLUPS: usize = 16;
/// Dimension value given to series folded into a metric's overflow series.
pub const OVERFLOW_VALUE: &str = "__overflow__";

const fn default_window_secs() -> u32 {
    DEFAULT_WINDOW_SECS
}
const fn default_max_series() -> u32 {
    DEFAULT_MAX_SERIES
}

/// A metric definition as users write it (TOML, JSON, or through the gateway's API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricDefinition {
    /// Metric name, `[A-Za-z0-9_-]`, at most 64 bytes; unique per tenant.
    pub name: String,
    /// Tenant the metric belongs to; absent means every tenant. A tenant's own definition
    /// overrides an every-tenant definition of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Event type that feeds the metric, or `*` for every type.
    pub event_type: String,
    /// Numeric property aggregated into sum, min, max, avg and percentiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Property whose distinct values are counted (HyperLogLog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<String>,
    /// Dimensions to group by.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Dimension subsets also kept; defaults to the full set and the empty set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollups: Option<Vec<Vec<String>>>,
    /// Tumbling window size in seconds (divides a day).
    #[serde(default = "default_window_secs")]
    pub window_secs: u32,
    /// Cap on distinct series per tenant and window; further series fold into one overflow
    /// series whose dimension values are `__overflow__`.
    #[serde(default = "default_max_series")]
    pub max_series_per_window: u32,
    /// Free text shown in the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What is wrong with a metric definition.
#[derive(Debug, thiserror::Error)]
pub enum MetricDefError {
    /// The JSON could not be parsed (the message names the unknown or mistyped key).
    #[error("metric definition is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The TOML could not be parsed (the message names the unknown or mistyped key; the
    /// location snippet of the parser's own display is left out).
    #[error("metric definition is not valid TOML: {}", .0.message())]
    Toml(#[source] toml::de::Error),
    /// A field has an invalid value.
    #[error("metric `{metric}`: `{field}` {problem}")]
    Invalid {
        /// The metric's name (may itself be the problem).
        metric: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// A file of metric definitions: `[[metric]]` tables in TOML, or `{"metric": [...]}` in JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricFile {
    /// The definitions.
    #[serde(default)]
    pub metric: Vec<MetricDefinition>,
}

impl MetricFile {
    /// Parses and validates a TOML file of definitions.
    pub fn from_toml(text: &str) -> Result<Self, MetricDefError> {
        let file: MetricFile = toml::from_str(text).map_err(MetricDefError::Toml)?;
        for def in &file.metric {
            def.validate()?;
        }
        Ok(file)
    }
}

impl MetricDefinition {
    /// Parses and validates one definition from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MetricDefError> {
        let def: MetricDefinition = serde_json::from_slice(bytes).map_err(MetricDefError::Json)?;
        def.validate()?;
        Ok(def)
    }

    /// Parses and validates one definition from a TOML table.
    pub fn from_toml(text: &str) -> Result<Self, MetricDefError> {
        let def: MetricDefinition = toml::from_str(text).map_err(MetricDefError::Toml)?;
        def.validate()?;
        Ok(def)
    }

    pub fn validate(&self) -> Result<(), MetricDefError> {
        let invalid = |field: &'static str, problem: String| MetricDefError::Invalid {
            metric: self.name.clone(),
            field,
            problem,
        };
        if !is_identifier(&self.name, 64) {
            return Err(invalid(
                "name",
                "must be 1 to 64 characters from [A-Za-z0-9_-]".into(),
            ));
        }
        if let Some(tenant) = &self.tenant_id {
            if !is_identifier(tenant, 128) {
                return Err(invalid(
                    "tenant_id",
                    "must be 1 to 128 characters from [A-Za-z0-9_-]".into(),
                ));
            }
        }
        if self.event_type != ANY_EVENT_TYPE && !is_identifier(&self.event_type, 128) {
            return Err(invalid(
                "event_type",
                "must be `*` or 1 to 128 characters from [A-Za-z0-9_-]".into(),
            ));
        }
        for (field, value) in [("field", &self.field), ("unique", &self.unique)] {
            if let Some(name) = value {
                if !is_property_name(name) {
                    return Err(invalid(
                        field,
                        "must name a property (1 to 128 bytes)".into(),
                    ));
                }
            }
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(invalid(
                "dimensions",
                format!(
                    "has {}, the limit is {MAX_DIMENSIONS}",
                    self.dimensions.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for dimension in &self.dimensions {
            if !is_property_name(dimension) {
                return Err(invalid(
                    "dimensions",
                    format!("{dimension:?} is not a valid property name"),
                ));
            }
            if !seen.insert(dimension.as_str()) {
                return Err(invalid("dimensions", format!("lists {dimension:?} twice")));
            }
        }
        if let Some(rollups) = &self.rollups {
            if rollups.len() > MAX_ROLLUPS {
                return Err(invalid(
                    "rollups",
                    format!("has {}, the limit is {MAX_ROLLUPS}", rollups.len()),
                ));
            }
            for rollup in rollups {
                let mut in_rollup = HashSet::new();
                for dimension in rollup {
                    if !seen.contains(dimension.as_str()) {
                        return Err(invalid(
                            "rollups",
                            format!("{dimension:?} is not one of the metric's dimensions"),
                        ));
                    }
                    if !in_rollup.insert(dimension.as_str()) {
                        return Err(invalid(
                            "rollups",
                            format!("a rollup lists {dimension:?} twice"),
                        ));
                    }
                }
            }
        }
        if self.window_secs == 0 || 86_400 % self.window_secs != 0 {
            return Err(invalid(
                "window_secs",
                format!("{} does not divide a day (86400 s)", self.window_secs),
            ));
        }
        if self.max_series_per_window == 0 {
            return Err(invalid(
                "max_series_per_window",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The dimension sets kept, each sorted by name, without repeats: the full set first,
    /// then the rollups (default: the empty set).
    pub fn dimension_sets(&self) -> Vec<Vec<String>> {
        let mut full = self.dimensions.clone();
        full.sort();
        let mut sets = vec![full];
        let rollups = self.rollups.clone().unwrap_or_else(|| vec![Vec::new()]);
        for mut rollup in rollups {
            rollup.sort();
            if !sets.contains(&rollup) {
                sets.push(rollup);
            }
        }
        sets
    }

    /// Which optional sketch structures the metric needs.
    pub fn sketch_spec(&self) -> SketchSpec {
        SketchSpec {
            values: self.field.is_some(),
            unique: self.unique.is_some(),
        }
    }

    /// Window size in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_secs) * 1000
    }

    /// Whether the definition applies to every tenant.
    pub fn is_global(&self) -> bool {
        self.tenant_id.is_none()
    }
}

fn is_property_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: &str) -> Result<MetricDefinition, MetricDefError> {
        MetricDefinition::from_json(json.as_bytes())
    }

    #[test]
    fn parses_toml_and_json() {
        let file = MetricFile::from_toml(
            r#"
            [[metric]]
            name = "checkout_amount"
            event_type = "payment_completed"
            field = "amount_usd"
            unique = "user_id"
            dimensions = ["region", "plan"]
            rollups = [["region"], []]
            "#,
        )
        .expect("valid TOML");
        assert_eq!(file.metric.len(), 1);
        assert_eq!(
            file.metric[0].dimension_sets(),
            vec![
                vec!["plan".to_owned(), "region".to_owned()],
                vec!["region".to_owned()],
                vec![]
            ]
        );
        let json = def(r#"{"name":"logins","event_type":"login","dimensions":["region"]}"#)
            .expect("valid JSON");
        assert_eq!(json.window_secs, 60);
        assert_eq!(
            json.dimension_sets(),
            vec![vec!["region".to_owned()], vec![]]
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let err = def(r#"{"name":"x","event_type":"e","dimension":["a"]}"#).unwrap_err();
        assert!(err.to_string().contains("dimension"), "{err}");
        let err =
            MetricFile::from_toml("[[metric]]\nname='x'\nevent_type='e'\nfeild='a'\n").unwrap_err();
        assert!(err.to_string().contains("feild"), "{err}");
        for (json, field) in [
            (r#"{"name":"a b","event_type":"e"}"#, "name"),
            (r#"{"name":"x","event_type":"e.f"}"#, "event_type"),
            (
                r#"{"name":"x","event_type":"e","dimensions":["a","a"]}"#,
                "dimensions",
            ),
            (
                r#"{"name":"x","event_type":"e","dimensions":["a"],"rollups":[["b"]]}"#,
                "rollups",
            ),
            (
                r#"{"name":"x","event_type":"e","window_secs":7}"#,
                "window_secs",
            ),
            (
                r#"{"name":"x","event_type":"e","max_series_per_window":0}"#,
                "max_series_per_window",
            ),
            (r#"{"name":"x","event_type":"e","field":""}"#, "field"),
        ] {
            match def(json) {
                Err(MetricDefError::Invalid { field: got, .. }) => assert_eq!(got, field, "{json}"),
                other => panic!("{json}: expected invalid {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn parse_errors_keep_their_cause() {
        use std::error::Error as _;
        let err = def(r#"{"name":"x""#).unwrap_err();
        assert!(matches!(err, MetricDefError::Json(_)), "{err:?}");
        assert!(err.source().is_some());
        let err = MetricFile::from_toml("[[metric]]\nname=").unwrap_err();
        assert!(matches!(err, MetricDefError::Toml(_)), "{err:?}");
        assert!(err.source().is_some());
        assert!(err
            .to_string()
            .starts_with("metric definition is not valid TOML: "));
    }
}
