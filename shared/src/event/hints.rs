//! What a rejected item says about itself: its `tenant_id`, `source` and `event_type`, read
//! leniently (any JSON object holding them as identifiers), so the dead letters and the
//! pipeline's data-quality counts can name where a rejected item came from.

use super::model::is_identifier;

/// The identifiers a rejected item carries, each `None` when absent, not a string or not an
/// identifier of at most the given length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemHints {
    /// `tenant_id`.
    pub tenant_id: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `event_type`.
    pub event_type: Option<String>,
}

impl ItemHints {
    /// The longest identifier read by callers without a configured limit (the default
    /// identifier limit).
    pub const DEFAULT_MAX_LEN: usize = 128;

    /// Reads the hints of `raw` (nothing when it is not a JSON object).
    pub fn read(raw: &[u8], max_len: usize) -> Self {
        #[derive(serde::Deserialize)]
        struct Fields {
            #[serde(default)]
            tenant_id: Option<serde_json::Value>,
            #[serde(default)]
            source: Option<serde_json::Value>,
            #[serde(default)]
            event_type: Option<serde_json::Value>,
        }
        let Ok(fields) = serde_json::from_slice::<Fields>(raw) else {
            return Self::default();
        };
        let ident = |value: Option<serde_json::Value>| {
            value
                .and_then(|v| v.as_str().map(str::to_owned))
                .filter(|s| is_identifier(s, max_len))
        };
        Self {
            tenant_id: ident(fields.tenant_id),
            source: ident(fields.source),
            event_type: ident(fields.event_type),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_identifiers_and_ignores_the_rest() {
        let hints = ItemHints::read(
            br#"{"tenant_id":"t1","source":"web","event_type":"bad type","x":[1]}"#,
            128,
        );
        assert_eq!(hints.tenant_id.as_deref(), Some("t1"));
        assert_eq!(hints.source.as_deref(), Some("web"));
        assert_eq!(hints.event_type, None, "not an identifier");
        assert_eq!(ItemHints::read(b"not json", 128), ItemHints::default());
        assert_eq!(
            ItemHints::read(br#"{"source":"abcdef"}"#, 3).source,
            None,
            "too long"
        );
    }
}
