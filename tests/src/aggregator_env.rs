//! The environment of a core-aggregator test: its own nats-server, a fresh table in a
//! QuestDB, a client and JetStream context to publish with, and aggregators started on them.

use async_nats::jetstream;

use crate::aggregator::{Aggregator, AggregatorOptions};
use crate::{unique_name, NatsServer, QuestDb};

/// A nats-server of its own, a fresh table name, a client and a JetStream context.
pub struct AggregatorEnv {
    pub nats: NatsServer,
    pub table: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

impl AggregatorEnv {
    pub async fn start() -> anyhow::Result<AggregatorEnv> {
        let nats = NatsServer::start()?;
        let client = async_nats::connect(nats.url()).await?;
        let js = jetstream::new(client.clone());
        Ok(AggregatorEnv {
            nats,
            table: unique_name("agg"),
            client,
            js,
        })
    }

    /// Aggregator options for this environment (the test timings of
    /// [`AggregatorOptions::new`]), writing to this test's table in `db`.
    pub fn options(&self, instance: &str, db: &QuestDb) -> AggregatorOptions {
        AggregatorOptions::new(
            instance,
            &self.nats.url(),
            &db.http_addr().to_string(),
            &self.table,
        )
    }

    /// Starts an aggregator (blocking start on a thread, not to stall the runtime).
    pub async fn aggregator(&self, options: AggregatorOptions) -> anyhow::Result<Aggregator> {
        crate::blocking(move || Aggregator::start(options))
            .await
            .map_err(|err| err.context("start core-aggregator"))
    }
}
