//! Every NATS subject, JetStream stream and key-value bucket rtdash uses, in one place.
//!
//! | name | kind | content |
//! |---|---|---|
//! | [`PARTIALS_STREAM`] / `rtdash.partials.<p>` | stream | edge partial deltas, replayable |
//! | [`EVENTS_STREAM`] / `rtdash.events.<tenant>` | stream | raw events for recomputation |
//! | [`DLQ_STREAM`] / `rtdash.dlq.<tenant>` | stream | rejected input and its reason |
//! | [`LATE_STREAM`] / `rtdash.late.<tenant>` | stream | data later than the correction horizon |
//! | [`ALERTS_STREAM`] / `rtdash.alerts.<tenant>` | stream | alert transitions to deliver |
//! | [`ALERT_EVENTS_STREAM`] / `rtdash.alertlog.<tenant>.<rule>` | stream | every transition and delivery attempt of a rule |
//! | [`ALERT_STATE_BUCKET`] | KV | alert state per (rule, series), written before a transition is published |
//! | [`ALERT_DELIVERY_BUCKET`] | KV | the newest transition delivered per alert (notifier deduplication) |
//! | `rtdash.live.<tenant>.<metric>` | core NATS | window updates for gateways |
//! | [`EDGE_PARTIALS_STREAM`], [`EDGE_DLQ_STREAM`], [`EDGE_EVENTS_STREAM`] / `rtdash.edge.<site>.<kind>.*` | stream (edge site's domain) | an edge site's partials, dead letters, raw events; sourced by the hub's streams |
//! | [`CONFIG_BUCKET`] | KV | dashboards, widgets, alert rules, silences, metric definitions |
//! | [`LEASES_BUCKET`] | KV | partition ownership |
//! | [`CHECKPOINTS_BUCKET`] | KV | aggregator checkpoints |
//! | [`BACKFILL_BUCKET`] | KV | backfill jobs: one per (tenant, metric), with their progress |
//! | [`SCHEMA_BUCKET`] | KV | event types and properties seen per tenant and agent (schema discovery) |
//! | [`KEYS_BUCKET`] | KV | API keys (hashes), last use, dashboard links, the session secret, tenant quotas |

/// Stream of edge partial deltas.
pub const PARTIALS_STREAM: &str = "RTDASH_PARTIALS";
/// Stream of raw events archived for recomputation.
pub const EVENTS_STREAM: &str = "RTDASH_EVENTS";
/// Stream of rejected input (dead letters).
pub const DLQ_STREAM: &str = "RTDASH_DLQ";
/// Stream of data that arrived later than the correction horizon.
pub const LATE_STREAM: &str = "RTDASH_LATE";
/// Stream of alert state transitions awaiting delivery.
pub const ALERTS_STREAM: &str = "RTDASH_ALERTS";
/// Stream of alert log records: every transition and delivery attempt, per rule.
pub const ALERT_EVENTS_STREAM: &str = "RTDASH_ALERT_EVENTS";
/// Key-value bucket of alert state per (rule, series) (see [`alert_state_key`]).
pub const ALERT_STATE_BUCKET: &str = "rtdash_alert_state";
/// Key-value bucket of the newest transition delivered per alert (key: the fingerprint).
pub const ALERT_DELIVERY_BUCKET: &str = "rtdash_alert_delivery";
/// Durable consumer of [`ALERTS_STREAM`] shared by every notifier: each transition is
/// delivered by one of them.
pub const NOTIFIER_CONSUMER: &str = "rtdash-notifier";
/// Tenant token of the pipeline's own series (consumer lag, watermark delay) and their
/// alert transitions.
pub const PIPELINE_TENANT: &str = "_pipeline";
/// Key-value bucket for configuration (metric definitions, dashboards, widgets, alert rules).
pub const CONFIG_BUCKET: &str = "rtdash_config";
/// Key-value bucket for partition leases.
pub const LEASES_BUCKET: &str = "rtdash_leases";
/// Object-store bucket holding the window state of aggregator checkpoints.
pub const CHECKPOINT_DATA_BUCKET: &str = "rtdash_checkpoint_data";
/// Key-value bucket for aggregator checkpoints.
pub const CHECKPOINTS_BUCKET: &str = "rtdash_checkpoints";

/// Key-value bucket of backfill jobs ([`crate::backfill`]): `<tenant>.<metric>` -> the
/// newest job of that metric, requested by a gateway, run and updated by one aggregator.
pub const BACKFILL_BUCKET: &str = "rtdash_backfill";

/// Key of the backfill job of `metric` of `tenant` in [`BACKFILL_BUCKET`].
pub fn backfill_key(tenant: &str, metric: &str) -> String {
    format!("{tenant}.{metric}")
}

/// Key-value bucket of schema discovery ([`crate::discovery`]): `<tenant>.<agent>.t.<event
/// type>` -> a type record, `<tenant>.<agent>.overflow` -> what the agent did not keep.
pub const SCHEMA_BUCKET: &str = "rtdash_schema";

/// Key of an agent's record of one event type of a tenant in [`SCHEMA_BUCKET`].
pub fn schema_type_key(tenant: &str, agent: &str, event_type: &str) -> String {
    format!("{tenant}.{agent}.t.{event_type}")
}

/// Key of an agent's overflow record of a tenant in [`SCHEMA_BUCKET`].
pub fn schema_overflow_key(tenant: &str, agent: &str) -> String {
    format!("{tenant}.{agent}.overflow")
}

/// The hub's JetStream API prefix as seen from an edge site (the hub's JetStream domain is
/// `hub`; a site's is `edge-<site>`).
pub const HUB_JS_API: &str = "$JS.hub.API";

/// The subject that writes `key` of the hub's `bucket` from an edge site: the bucket's
/// `$KV.<bucket>.<key>` under [`HUB_JS_API`] (as a client writes through a mirror whose
/// external API prefix is the hub's).
pub fn hub_kv_subject(bucket: &str, key: &str) -> String {
    format!("{HUB_JS_API}.$KV.{bucket}.{key}")
}

/// Key-value bucket of credentials ([`crate::auth::record`]): `key.<key_id>`,
/// `used.<key_id>`, `link.<link_id>`, `secret.session`, `quota.<tenant>`.
pub const KEYS_BUCKET: &str = "rtdash_keys";
/// Key of the gateways' shared session secret in [`KEYS_BUCKET`].
pub const SESSION_SECRET_KEY: &str = "secret.session";

/// Key of an API key's record in [`KEYS_BUCKET`].
pub fn key_record_key(key_id: &str) -> String {
    format!("key.{key_id}")
}

/// Key of an API key's last-used time in [`KEYS_BUCKET`].
pub fn key_used_key(key_id: &str) -> String {
    format!("used.{key_id}")
}

/// Key of a dashboard link's record in [`KEYS_BUCKET`].
pub fn link_record_key(link_id: &str) -> String {
    format!("link.{link_id}")
}

/// Key of a tenant's quotas in [`KEYS_BUCKET`].
pub fn quota_key(tenant: &str) -> String {
    format!("quota.{tenant}")
}

/// Tenant token used on dead-letter subjects when no tenant could be read from the input.
pub const UNKNOWN_TENANT: &str = "_unknown";

/// Subject prefix of partial deltas (`rtdash.partials.<partition>`).
pub const PARTIALS_PREFIX: &str = "rtdash.partials";
/// Subject prefix of archived raw events.
pub const EVENTS_PREFIX: &str = "rtdash.events";
/// Subject prefix of dead letters.
pub const DLQ_PREFIX: &str = "rtdash.dlq";
/// Subject prefix of data beyond the correction horizon.
pub const LATE_PREFIX: &str = "rtdash.late";
/// Subject prefix of alert transitions.
pub const ALERTS_PREFIX: &str = "rtdash.alerts";
/// Subject prefix of alert log records (`rtdash.alertlog.<tenant>.<rule>`).
pub const ALERTLOG_PREFIX: &str = "rtdash.alertlog";
/// Subject prefix of live window updates (core NATS, not persisted).
pub const LIVE_PREFIX: &str = "rtdash.live";
/// Subject prefix of pipeline status reports (core NATS): partition lag and watermarks.
pub const STATUS_PREFIX: &str = "rtdash.status";

/// Default first token(s) of the subjects a directly connected edge agent publishes to
/// (`<prefix>.partials.<p>`, `<prefix>.dlq.<tenant>`, `<prefix>.events.<tenant>`).
pub const DEFAULT_SUBJECT_PREFIX: &str = "rtdash";

/// Stream of an edge site's partial deltas, in the site's JetStream domain
/// (`rtdash.edge.<site>.partials.*`), sourced by the hub's [`PARTIALS_STREAM`].
pub const EDGE_PARTIALS_STREAM: &str = "RTDASH_EDGE_PARTIALS";
/// Stream of an edge site's dead letters (`rtdash.edge.<site>.dlq.*`), sourced by the hub's
/// [`DLQ_STREAM`].
pub const EDGE_DLQ_STREAM: &str = "RTDASH_EDGE_DLQ";
/// Stream of an edge site's archived raw events (`rtdash.edge.<site>.events.*`), sourced by
/// the hub's [`EVENTS_STREAM`].
pub const EDGE_EVENTS_STREAM: &str = "RTDASH_EDGE_EVENTS";

/// `rtdash.edge.<site>`: the subject prefix of an edge site's agent (see `deploy/edge/`).
pub fn edge_subject_prefix(site: &str) -> String {
    format!("{DEFAULT_SUBJECT_PREFIX}.edge.{site}")
}

/// `<prefix>.partials.<partition>` ([`partials_subject`] with another prefix).
pub fn partials_subject_in(prefix: &str, partition: u32) -> String {
    format!("{prefix}.partials.{partition}")
}

/// `<prefix>.dlq.<tenant>` ([`dlq_subject`] with another prefix).
pub fn dlq_subject_in(prefix: &str, tenant: &str) -> String {
    format!("{prefix}.dlq.{tenant}")
}

/// `<prefix>.events.<tenant>` ([`events_subject`] with another prefix).
pub fn events_subject_in(prefix: &str, tenant: &str) -> String {
    format!("{prefix}.events.{tenant}")
}

/// `rtdash.partials.<partition>`.
pub fn partials_subject(partition: u32) -> String {
    format!("{PARTIALS_PREFIX}.{partition}")
}

/// `rtdash.events.<tenant>`.
pub fn events_subject(tenant: &str) -> String {
    format!("{EVENTS_PREFIX}.{tenant}")
}

/// `rtdash.dlq.<tenant>`; use [`UNKNOWN_TENANT`] when the tenant is not known.
pub fn dlq_subject(tenant: &str) -> String {
    format!("{DLQ_PREFIX}.{tenant}")
}

/// `rtdash.late.<tenant>`.
pub fn late_subject(tenant: &str) -> String {
    format!("{LATE_PREFIX}.{tenant}")
}

/// `rtdash.alerts.<tenant>`.
pub fn alerts_subject(tenant: &str) -> String {
    format!("{ALERTS_PREFIX}.{tenant}")
}

/// `rtdash.alertlog.<tenant>.<rule>`.
pub fn alertlog_subject(tenant: &str, rule: &str) -> String {
    format!("{ALERTLOG_PREFIX}.{tenant}.{rule}")
}

/// Key of the state of `rule` for one series in [`ALERT_STATE_BUCKET`]:
/// `p<partition>.<tenant>.<rule>.<series id, 16 hex>` (the partition first, so a new owner
/// loads its partition's keys with one filter).
pub fn alert_state_key(partition: u32, tenant: &str, rule: &str, series_id: u64) -> String {
    format!("p{partition}.{tenant}.{rule}.{series_id:016x}")
}

/// `rtdash.live.<tenant>.<metric>`.
pub fn live_subject(tenant: &str, metric: &str) -> String {
    format!("{LIVE_PREFIX}.{tenant}.{metric}")
}

/// `rtdash.status.<partition>`: a partition owner's periodic lag and watermark report.
pub fn status_subject(partition: u32) -> String {
    format!("{STATUS_PREFIX}.{partition}")
}

/// Message id of a partial batch, used as `Nats-Msg-Id` so JetStream drops retried duplicates.
pub fn partial_msg_id(agent_id: &str, partition: u32, seq: u64) -> String {
    format!("{agent_id}.{partition}.{seq}")
}

/// Durable consumer name of a partition's aggregator consumer.
pub fn partition_consumer(partition: u32) -> String {
    format!("rtdash-agg-p{partition}")
}

/// Key of a partition's lease in [`LEASES_BUCKET`].
pub fn lease_key(partition: u32) -> String {
    format!("partition.{partition}")
}

/// Key of a partition's checkpoint in [`CHECKPOINTS_BUCKET`].
pub fn checkpoint_key(partition: u32) -> String {
    format!("partition.{partition}")
}

/// Config-bucket key of a metric definition; `tenant` is `None` for an every-tenant metric.
pub fn metric_config_key(tenant: Option<&str>, name: &str) -> String {
    format!("metric.{}.{name}", tenant.unwrap_or(ALL_TENANTS))
}

/// Config-bucket key of an alert rule.
pub fn alert_config_key(tenant: &str, id: &str) -> String {
    format!("alert.{tenant}.{id}")
}

/// Config-bucket key of a silence ([`crate::silence::Silence`]).
pub fn silence_config_key(tenant: &str, id: &str) -> String {
    format!("silence.{tenant}.{id}")
}

/// Config-bucket key of a dashboard (its widgets are stored inside it).
pub fn dashboard_config_key(tenant: &str, id: &str) -> String {
    format!("dashboard.{tenant}.{id}")
}

/// Tenant token in config keys of definitions that apply to every tenant.
pub const ALL_TENANTS: &str = "_all";

/// Header carrying the version of the message envelope, for routing without decoding.
pub const HEADER_MSG_KIND: &str = "Rtdash-Kind";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_the_documented_shape() {
        assert_eq!(partials_subject(3), "rtdash.partials.3");
        assert_eq!(live_subject("t1", "events"), "rtdash.live.t1.events");
        assert_eq!(dlq_subject(UNKNOWN_TENANT), "rtdash.dlq._unknown");
        assert_eq!(partial_msg_id("edge-1", 2, 77), "edge-1.2.77");
        assert_eq!(alertlog_subject("t1", "r1"), "rtdash.alertlog.t1.r1");
        assert_eq!(
            alert_state_key(3, "t1", "r1", 255),
            "p3.t1.r1.00000000000000ff"
        );
        assert_eq!(key_record_key("00ff"), "key.00ff");
        assert_eq!(key_used_key("00ff"), "used.00ff");
        assert_eq!(link_record_key("ab"), "link.ab");
        assert_eq!(quota_key("acme"), "quota.acme");
    }

    #[test]
    fn prefixed_subjects_match_the_default_ones() {
        assert_eq!(
            partials_subject_in(DEFAULT_SUBJECT_PREFIX, 3),
            partials_subject(3)
        );
        assert_eq!(
            dlq_subject_in(DEFAULT_SUBJECT_PREFIX, "t"),
            dlq_subject("t")
        );
        assert_eq!(
            events_subject_in(DEFAULT_SUBJECT_PREFIX, "t"),
            events_subject("t")
        );
        let site = edge_subject_prefix("s1");
        assert_eq!(site, "rtdash.edge.s1");
        assert_eq!(partials_subject_in(&site, 0), "rtdash.edge.s1.partials.0");
        assert_eq!(dlq_subject_in(&site, "acme"), "rtdash.edge.s1.dlq.acme");
        assert_eq!(
            events_subject_in(&site, "acme"),
            "rtdash.edge.s1.events.acme"
        );
    }
}
