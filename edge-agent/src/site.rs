//! Where the agent publishes, and which streams it relies on: rtdash's own topology when it
//! talks to the hub directly, an edge site's streams when it runs beside a leaf node with a
//! JetStream domain of its own (`site = "<id>"`, see `deploy/edge/` and `deploy/README.md`,
//! "Edge sites").
//!
//! | | direct (default) | edge site `<site>` |
//! |---|---|---|
//! | subjects | `rtdash.{partials,dlq,events}.*` | `rtdash.edge.<site>.{partials,dlq,events}.*` |
//! | streams | created when missing (`ensure_topology`) | `RTDASH_EDGE_*`, made by `deploy/edge/up.sh`; must exist |
//! | partition count | `rtdash.partitions` of `RTDASH_PARTIALS` | `rtdash.partitions` of `RTDASH_EDGE_PARTIALS` (copied from the hub) |
//! | metric definitions | bucket `rtdash_config` | bucket `rtdash_config` in the site's domain: the read-only mirror |
//! | schema discovery records | bucket `rtdash_schema` | the hub's `rtdash_schema`, through `$JS.hub.API` |
//!
//! At a site the agent never creates streams: `RTDASH_PARTIALS` (`rtdash.partials.*`) in the
//! site's domain would store the hub's subjects on both sides of the leaf connection (every
//! partial captured twice while the link is up). It checks instead that a stream of its own
//! domain captures each subject it publishes to, and warns when one in its domain captures the
//! hub's `rtdash.partials.*`. The partition count is read from the site's stream, so the agent
//! starts with the hub unreachable and still routes like the hub's aggregators consume.

use crate::config::AgentConfig;
use async_nats::jetstream::context::{Context, GetStreamByNameError, GetStreamByNameErrorKind};
use rtdash_runtime::nats::{self as rtnats, Ensure, NatsError};
use rtdash_shared::names;

/// The streams could not be readied.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// Creating the topology or reading the partition count failed.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// No stream of the agent's JetStream domain captures a subject it publishes to.
    #[error("JetStream stream for {subject}: {hint}")]
    NoStream {
        /// The subject.
        subject: String,
        /// What to do about it.
        hint: String,
    },
    /// The stream capturing a subject could not be looked up.
    #[error("JetStream stream for {subject}: {source}")]
    Lookup {
        /// The subject.
        subject: String,
        /// The JetStream error.
        #[source]
        source: GetStreamByNameError,
    },
}

/// The streams of the agent's domain that capture what it publishes, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Subject prefix in force.
    pub prefix: String,
    /// The stream capturing `<prefix>.partials.*`.
    pub partials_stream: String,
    /// Partition count to route with.
    pub partitions: u32,
}

/// Readies the streams: creates rtdash's topology when the agent owns the hub's subjects
/// (direct), else checks that the site's streams capture the agent's subjects. Then reads
/// the partition count (the configured one when no stream records it).
pub async fn prepare(js: &Context, config: &AgentConfig) -> Result<Topology, TopologyError> {
    let prefix = config.resolved_subject_prefix();
    let partials_stream = if config.creates_topology() {
        rtnats::ensure_topology(js, &config.streams, Ensure::CreateMissing).await?;
        names::PARTIALS_STREAM.to_owned()
    } else {
        let partials = capturing_stream(
            js,
            config,
            &names::partials_subject_in(&prefix, 0),
            names::EDGE_PARTIALS_STREAM,
        )
        .await?;
        capturing_stream(
            js,
            config,
            &names::dlq_subject_in(&prefix, names::UNKNOWN_TENANT),
            names::EDGE_DLQ_STREAM,
        )
        .await?;
        if config.archive_events {
            capturing_stream(
                js,
                config,
                &names::events_subject_in(&prefix, names::UNKNOWN_TENANT),
                names::EDGE_EVENTS_STREAM,
            )
            .await?;
        }
        if config.site.is_some() {
            warn_if_hub_subjects_stored_here(js).await;
        }
        partials
    };
    let partitions = match rtnats::partition_count_of(js, &partials_stream).await? {
        Some(count) => count,
        None => {
            if !config.creates_topology() {
                tracing::warn!(
                    stream = %partials_stream,
                    partitions = config.streams.partitions,
                    "the partials stream records no partition count (metadata rtdash.partitions); routing with streams.partitions, which must equal the hub's"
                );
            }
            config.streams.partitions
        }
    }
    .max(1);
    Ok(Topology {
        prefix,
        partials_stream,
        partitions,
    })
}

/// The name of the stream of this domain that captures `subject`; an error naming the
/// subject, and what to run, when there is none.
async fn capturing_stream(
    js: &Context,
    config: &AgentConfig,
    subject: &str,
    expected: &str,
) -> Result<String, TopologyError> {
    match js.stream_by_subject(subject).await {
        Ok(name) => {
            if config.site.is_some() && name != expected {
                tracing::warn!(
                    %subject,
                    stream = %name,
                    expected,
                    "an unexpected stream captures this edge site subject"
                );
            }
            Ok(name)
        }
        Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => {
            let hint = match &config.site {
                Some(site) => format!(
                    "no stream in this JetStream domain captures it; set the edge site up with `deploy/edge/up.sh {site}` (it creates {expected}), and check that the agent's nats.url is the site's leaf node"
                ),
                None => format!(
                    "no stream captures it; with subject_prefix = \"{}\" the agent creates no streams",
                    config.resolved_subject_prefix()
                ),
            };
            Err(TopologyError::NoStream {
                subject: subject.to_owned(),
                hint,
            })
        }
        Err(source) => Err(TopologyError::Lookup {
            subject: subject.to_owned(),
            source,
        }),
    }
}

/// Warns when a stream of the site's domain captures the hub's `rtdash.partials.*` (the
/// double-capture pitfall: made by something that ran `ensure_topology` against the leaf).
async fn warn_if_hub_subjects_stored_here(js: &Context) {
    if let Ok(name) = js.stream_by_subject(names::partials_subject(0)).await {
        tracing::warn!(
            stream = %name,
            subject = %names::partials_subject(0),
            "a stream in the edge site's domain captures the hub's partials subjects: with the link up they are stored on both sides; delete it from the site"
        );
    }
}
