//! The alert side of the soak: the transitions the aggregators published (read back from
//! `RTDASH_ALERTS`) against what the webhook receiver was sent.
//!
//! The delivery contract (docs/alerts.md, "Delivery"): each `firing`/`resolved` transition is
//! delivered at most once per alert, in order; a transition still waiting for a retry when a
//! newer one of the same alert is delivered is *superseded* (recorded `skipped`, never sent
//! after the newer one); the newest transition of every alert is delivered. So a transition
//! counts as delivered exactly once when the receiver answered `2xx` to exactly one request
//! with its `Idempotency-Key`, as superseded when it got none and a newer one of its alert
//! was delivered, and as missing otherwise.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use rtdash_shared::alert::AlertTransition;
use rtdash_shared::names;

use crate::cluster::Credentials;
use crate::jetstream::{connect_as, jetstream, read_stream, stream_messages};
use crate::webhook::Received;

/// The outcome of [`check_deliveries`].
#[derive(Clone, Debug, Default)]
pub struct AlertCheck {
    /// Transitions published (distinct ids), every state.
    pub transitions: usize,
    /// Of those, `firing` and `resolved` (the ones that notify).
    pub notifying: usize,
    /// Delivered (answered 2xx) exactly once.
    pub delivered_once: usize,
    /// Not delivered, a newer transition of the same alert delivered instead.
    pub superseded: usize,
    /// Deliveries beyond the first of a transition.
    pub duplicates: usize,
    /// Neither delivered nor superseded.
    pub missing: usize,
    /// Deliveries of a transition after a newer one of its alert.
    pub out_of_order: usize,
    /// Deliveries whose key is no published transition's id.
    pub unknown: usize,
    /// Requests the receiver got (every answer).
    pub requests: usize,
    /// Requests it failed (answered non-2xx during its outages).
    pub failed_answers: usize,
    /// `firing` transitions among the notifying ones.
    pub firing: usize,
    /// `resolved` transitions among the notifying ones.
    pub resolved: usize,
}

impl AlertCheck {
    /// Every notifying transition delivered once or superseded, nothing doubled, nothing
    /// out of order or unknown, and at least one of each kind.
    pub fn pass(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.unknown == 0
            && self.firing > 0
            && self.resolved > 0
    }
}

/// Every transition in `RTDASH_ALERTS` on the cluster at `urls`, read as `credentials`.
pub async fn published_transitions(
    urls: &[String],
    credentials: &Credentials,
) -> anyhow::Result<Vec<AlertTransition>> {
    let client = connect_as(urls, "chaos-alerts", credentials).await?;
    let js = jetstream(client, Duration::from_secs(10));
    let count = stream_messages(&js, names::ALERTS_STREAM).await?;
    let stored = read_stream(
        &js,
        names::ALERTS_STREAM,
        count as usize,
        Duration::from_secs(60),
    )
    .await?;
    stored
        .iter()
        .map(|message| {
            rtdash_shared::wire::decode::<AlertTransition>(&message.payload)
                .with_context(|| format!("decode transition {}", message.msg_id))
        })
        .collect()
}

/// Compares the receiver's log with the published transitions (see the module docs).
pub fn check_deliveries(transitions: &[AlertTransition], received: &[Received]) -> AlertCheck {
    let mut by_id: BTreeMap<String, &AlertTransition> = BTreeMap::new();
    for transition in transitions {
        by_id.insert(transition.id(), transition);
    }
    let mut check = AlertCheck {
        transitions: by_id.len(),
        requests: received.len(),
        ..AlertCheck::default()
    };
    let delivered: Vec<&Received> = received
        .iter()
        .filter(|r| (200..300).contains(&r.answered))
        .collect();
    check.failed_answers = received.len() - delivered.len();
    let mut count: HashMap<&str, usize> = HashMap::new();
    // Per alert (fingerprint): seqs in delivery order.
    let mut order: HashMap<String, Vec<u64>> = HashMap::new();
    for request in &delivered {
        *count.entry(request.key.as_str()).or_default() += 1;
        match by_id.get(&request.key) {
            Some(t) => order.entry(t.fingerprint()).or_default().push(t.seq),
            None => check.unknown += 1,
        }
    }
    for seqs in order.values() {
        let mut newest = 0;
        for &seq in seqs {
            if seq < newest {
                check.out_of_order += 1;
            }
            newest = newest.max(seq);
        }
    }
    for (id, transition) in &by_id {
        if !transition.to.notifies() {
            continue;
        }
        check.notifying += 1;
        match transition.to.as_str() {
            "firing" => check.firing += 1,
            _ => check.resolved += 1,
        }
        match count.get(id.as_str()).copied().unwrap_or(0) {
            0 => {
                let newer_delivered = order
                    .get(&transition.fingerprint())
                    .is_some_and(|seqs| seqs.iter().any(|&s| s > transition.seq));
                if newer_delivered {
                    check.superseded += 1;
                } else {
                    check.missing += 1;
                }
            }
            n => {
                check.delivered_once += 1;
                check.duplicates += n - 1;
            }
        }
    }
    check
}
