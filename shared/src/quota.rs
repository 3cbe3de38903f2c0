//! Tenant quotas: the limits a tenant is held to, as the `[quotas]` section of the gateway
//! ([`Limits`], every tenant's defaults) and as what the operator set for one tenant
//! ([`QuotaSettings`], stored as `quota.<tenant>` in the keys bucket and read by the gateway
//! and the edge agents alike).

use serde::{Deserialize, Serialize};

/// Largest value a limit may be set to.
pub const MAX_LIMIT: u64 = u32::MAX as u64;

/// Declares [`Limits`] and [`QuotaSettings`] from one list of the limits (doc, name,
/// default). A macro because the settings are the limits with every field wrapped in
/// `Option` (with its own serde attributes), which no generic type expresses with these JSON
/// and TOML shapes; listing the fields once keeps the config section, the per-tenant
/// settings and the mappings between them ([`QuotaSettings::over`], [`Limits::named`]) from
/// drifting apart.
macro_rules! quota_limits {
    ($($(#[doc = $doc:literal])+ $name:ident: $default:expr,)+) => {
        /// A tenant's limits: `[quotas]` of the gateway (the limits of a tenant the operator
        /// has not set otherwise; a key left out keeps its default), a tenant's limits in
        /// force, or its use against them (counts now, the largest dashboard's widgets, the
        /// highest `max_series_per_window` of its definitions).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $(
                $(#[doc = $doc])+
                #[cfg_attr(feature = "utoipa", schema(required = true))]
                pub $name: u64,
            )+
        }

        impl Default for Limits {
            fn default() -> Self {
                Self { $($name: $default,)+ }
            }
        }

        impl Limits {
            /// Every limit with its name.
            pub fn named(&self) -> [(&'static str, u64); LIMIT_COUNT] {
                [$((stringify!($name), self.$name),)+]
            }
        }

        /// The number of limits in [`Limits`].
        pub const LIMIT_COUNT: usize = [$(stringify!($name),)+].len();

        /// What the operator set for one tenant (`quota.<tenant>` in the keys bucket, and the
        /// body of `PUT /v1/tenants/{tenant}/quotas`): a limit left out (or `null`) is the
        /// default of `[quotas]`.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct QuotaSettings {
            $(
                $(#[doc = $doc])+
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<u64>,
            )+
            /// Events per second the tenant may send through each edge agent (enforced by the
            /// agents; 0: no limit; unset: the agent's `ingest.tenant_events_per_second`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub events_per_second: Option<u64>,
        }

        impl QuotaSettings {
            /// Every setting's JSON key.
            const KEYS: [&'static str; LIMIT_COUNT + 1] =
                [$(stringify!($name),)+ "events_per_second"];

            /// These settings over `defaults`.
            pub fn over(&self, defaults: Limits) -> Limits {
                Limits { $($name: self.$name.unwrap_or(defaults.$name),)+ }
            }
        }
    };
}

quota_limits! {
    /// Dashboards.
    dashboards: 100,
    /// Widgets on one dashboard.
    widgets_per_dashboard: 50,
    /// Alert rules.
    alert_rules: 200,
    /// The tenant's own metric definitions.
    metric_definitions: 100,
    /// Silences (not yet purged).
    silences: 1000,
    /// Live streams open at once (per gateway).
    open_streams: 2000,
    /// The ceiling of a definition's `max_series_per_window` (at least 1).
    max_series_per_window: 100_000,
    /// Bytes in the config bucket.
    config_bytes: 16 * 1024 * 1024,
}

impl Limits {
    /// The first limit out of range (`max_series_per_window` at least 1, every limit at
    /// most [`MAX_LIMIT`]), with why.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        if self.max_series_per_window == 0 {
            return Some(("max_series_per_window", "must be at least 1".to_owned()));
        }
        self.named()
            .into_iter()
            .find(|(_, value)| *value > MAX_LIMIT)
            .map(|(name, _)| (name, format!("must be at most {MAX_LIMIT}")))
    }
}

impl QuotaSettings {
    /// Decodes a stored `quota.<tenant>` value (strict: the gateway, which writes it,
    /// refuses a key it does not know).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Decodes a stored `quota.<tenant>` value as a reader that may be older than its writer
    /// (an edge agent during an upgrade): keys it does not know are ignored, a known key of
    /// the wrong type is still an error.
    pub fn from_json_lenient(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)?;
        object.retain(|key, _| Self::KEYS.contains(&key.as_str()));
        serde_json::from_value(serde_json::Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_override_the_defaults_and_keep_their_shapes() {
        let defaults = Limits::default();
        let set = QuotaSettings {
            dashboards: Some(2),
            ..QuotaSettings::default()
        };
        let limits = set.over(defaults);
        assert_eq!(limits.dashboards, 2);
        assert_eq!(limits.alert_rules, 200);
        assert_eq!(limits.max_series_per_window, 100_000);
        assert!(defaults.invalid().is_none());
        let zero_ceiling = QuotaSettings {
            max_series_per_window: Some(0),
            ..QuotaSettings::default()
        };
        assert_eq!(
            zero_ceiling.over(defaults).invalid().map(|(name, _)| name),
            Some("max_series_per_window")
        );
        let too_many = QuotaSettings {
            config_bytes: Some(MAX_LIMIT + 1),
            ..QuotaSettings::default()
        };
        assert_eq!(
            too_many.over(defaults).invalid().map(|(name, _)| name),
            Some("config_bytes")
        );
        let parsed = QuotaSettings::from_json(
            br#"{"dashboards": 3, "silences": null, "events_per_second": 7}"#,
        )
        .unwrap();
        assert_eq!(parsed.dashboards, Some(3));
        assert_eq!(parsed.silences, None);
        assert_eq!(parsed.events_per_second, Some(7));
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#"{"dashboards":3,"events_per_second":7}"#,
            "unset limits are left out"
        );
        assert!(QuotaSettings::from_json(br#"{"dashbords": 3}"#).is_err());
    }

    #[test]
    fn a_lenient_reader_ignores_keys_it_does_not_know_but_not_wrong_types() {
        let newer = br#"{"events_per_second": 7, "max_series_per_window": 3, "future": {"a": 1}}"#;
        assert!(QuotaSettings::from_json(newer).is_err());
        assert_eq!(
            QuotaSettings::from_json_lenient(newer).unwrap(),
            QuotaSettings {
                events_per_second: Some(7),
                max_series_per_window: Some(3),
                ..QuotaSettings::default()
            }
        );
        assert!(QuotaSettings::from_json_lenient(br#"{"events_per_second": "7"}"#).is_err());
        assert!(QuotaSettings::from_json_lenient(b"[1]").is_err());
        let every_key = serde_json::to_vec(&QuotaSettings {
            dashboards: Some(1),
            widgets_per_dashboard: Some(1),
            alert_rules: Some(1),
            metric_definitions: Some(1),
            silences: Some(1),
            open_streams: Some(1),
            max_series_per_window: Some(1),
            config_bytes: Some(1),
            events_per_second: Some(1),
        })
        .unwrap();
        assert_eq!(
            QuotaSettings::from_json_lenient(&every_key).unwrap(),
            QuotaSettings::from_json(&every_key).unwrap(),
            "every key it writes is one it knows"
        );
    }

    #[test]
    fn the_config_section_fills_what_it_leaves_out_and_names_every_limit() {
        let section: Limits = toml::from_str("dashboards = 5\nconfig_bytes = 1024").unwrap();
        assert_eq!(
            section,
            Limits {
                dashboards: 5,
                config_bytes: 1024,
                ..Limits::default()
            }
        );
        assert!(toml::from_str::<Limits>("dashbords = 5").is_err());
        assert!(
            toml::from_str::<Limits>("events_per_second = 5").is_err(),
            "the agents' setting is not a gateway limit"
        );
        let names: Vec<&str> = Limits::default()
            .named()
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(
            names,
            [
                "dashboards",
                "widgets_per_dashboard",
                "alert_rules",
                "metric_definitions",
                "silences",
                "open_streams",
                "max_series_per_window",
                "config_bytes"
            ]
        );
        assert_eq!(
            serde_json::to_value(Limits::default()).unwrap(),
            serde_json::json!({
                "dashboards": 100, "widgets_per_dashboard": 50, "alert_rules": 200,
                "metric_definitions": 100, "silences": 1000, "open_streams": 2000,
                "max_series_per_window": 100_000, "config_bytes": 16_777_216
            })
        );
    }
}
