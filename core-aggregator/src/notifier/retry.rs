//! The retry policy of webhook delivery (pure): what an answer means, and how long to wait
//! before the next attempt.

use super::config::NotifierConfig;
use super::http::{Answer, PostError};
use std::time::Duration;

/// What an answer means for the delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Delivered,
    /// Retry later.
    Retry,
    /// Do not retry.
    Failed,
}

/// Classifies the outcome of one request.
pub fn verdict(result: &Result<Answer, PostError>) -> Verdict {
    match result {
        Ok(answer) => match answer.status {
            200..=299 => Verdict::Delivered,
            408 | 429 | 500..=599 => Verdict::Retry,
            _ => Verdict::Failed,
        },
        Err(PostError::BadUrl { .. } | PostError::Refused(_)) => Verdict::Failed,
        Err(_) => Verdict::Retry,
    }
}

/// The delay before retry `n` (1-based) after `result`: what a 429 or 503 answer's
/// `Retry-After` asks for, kept within `initial_backoff_ms` .. `max_backoff_ms`; otherwise
/// [`backoff`].
pub fn retry_delay(
    config: &NotifierConfig,
    n: u32,
    result: &Result<Answer, PostError>,
) -> Duration {
    match result {
        Ok(Answer {
            status: 429 | 503,
            retry_after: Some(asked),
            ..
        }) => (*asked).clamp(
            Duration::from_millis(config.initial_backoff_ms),
            Duration::from_millis(config.max_backoff_ms),
        ),
        _ => backoff(config, n),
    }
}

/// The delay before retry `n` (1-based): `initial * 2^(n-1)` capped at `max`, ±20 % jitter.
pub fn backoff(config: &NotifierConfig, n: u32) -> Duration {
    let base = config
        .initial_backoff_ms
        .saturating_mul(1u64 << n.saturating_sub(1).min(30))
        .min(config.max_backoff_ms);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::http::{BadUrl, WebhookClient};

    fn answer(status: u16) -> Result<Answer, PostError> {
        Ok(Answer {
            status,
            body: Vec::new(),
            retry_after: None,
        })
    }

    fn asking(status: u16, seconds: u64) -> Result<Answer, PostError> {
        Ok(Answer {
            status,
            body: Vec::new(),
            retry_after: Some(Duration::from_secs(seconds)),
        })
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(verdict(&answer(200)), Verdict::Delivered);
        assert_eq!(verdict(&answer(204)), Verdict::Delivered);
        assert_eq!(verdict(&answer(500)), Verdict::Retry);
        assert_eq!(verdict(&answer(503)), Verdict::Retry);
        assert_eq!(verdict(&answer(429)), Verdict::Retry);
        assert_eq!(verdict(&answer(408)), Verdict::Retry);
        assert_eq!(verdict(&answer(404)), Verdict::Failed);
        assert_eq!(verdict(&answer(400)), Verdict::Failed);
        assert_eq!(verdict(&answer(301)), Verdict::Failed);
        assert_eq!(
            verdict(&Err(PostError::Timeout(Duration::from_secs(1)))),
            Verdict::Retry
        );
        assert_eq!(
            verdict(&Err(PostError::BadUrl {
                url: "ftp://x".into(),
                source: BadUrl::Scheme,
            })),
            Verdict::Failed
        );
    }

    /// A destination the policy refuses is not retried (the rule or the policy must change).
    #[tokio::test]
    async fn a_refused_destination_is_failed_not_retried() {
        let guard = super::super::guard::Guard::new(rtdash_runtime::egress::Allowlist::default());
        let client = WebhookClient::new(Duration::from_secs(5), 64, guard).unwrap();
        let result = client
            .post("http://127.0.0.1:9/hook", &[], bytes::Bytes::new())
            .await;
        assert!(matches!(result, Err(PostError::Refused(_))), "{result:?}");
        assert_eq!(verdict(&result), Verdict::Failed);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        drop(listener);
        let guard = super::super::guard::Guard::new(
            rtdash_runtime::egress::Allowlist::parse(&["127.0.0.1"]).unwrap(),
        );
        let client = WebhookClient::new(Duration::from_secs(5), 64, guard).unwrap();
        let result = client.post(&url, &[], bytes::Bytes::new()).await;
        assert!(matches!(result, Err(PostError::Connect(_))), "{result:?}");
        assert_eq!(verdict(&result), Verdict::Retry);
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_within_the_backoff_bounds() {
        let config = NotifierConfig {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 8_000,
            ..NotifierConfig::default()
        };
        let secs = |result: &Result<Answer, PostError>, n| retry_delay(&config, n, result);
        assert_eq!(secs(&asking(429, 7), 1), Duration::from_secs(7));
        assert_eq!(secs(&asking(503, 3), 5), Duration::from_secs(3));
        // Kept within initial_backoff_ms .. max_backoff_ms.
        assert_eq!(secs(&asking(429, 3_600), 1), Duration::from_secs(8));
        assert_eq!(secs(&asking(503, 0), 1), Duration::from_secs(1));
        // Other statuses, or no Retry-After: the exponential backoff (retry 3: 4 s ± 20 %).
        for result in [asking(500, 7), answer(429), answer(503)] {
            let wait = secs(&result, 3).as_millis();
            assert!((3_200..=4_800).contains(&wait), "{result:?}: {wait} ms");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let config = NotifierConfig {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 8_000,
            ..NotifierConfig::default()
        };
        for (n, base) in [
            (1, 1_000u64),
            (2, 2_000),
            (3, 4_000),
            (4, 8_000),
            (9, 8_000),
            (60, 8_000),
        ] {
            let wait = backoff(&config, n).as_millis() as u64;
            assert!(
                wait >= base * 8 / 10 && wait <= base * 12 / 10,
                "retry {n}: {wait}"
            );
        }
    }
}
