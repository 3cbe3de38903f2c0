//! Webhook URLs of alert rules: checked when a rule is written (a URL to loopback,
//! link-local, private, shared, multicast or unspecified addresses, or to a name resolving
//! there, is refused with `400` naming why, unless `webhook_allow_destinations` allows it),
//! and masked when read (`https://hooks.slack.com/***`: the path and query often hold a
//! token). The check here is best effort (a name may resolve differently later, or not at
//! all from the gateway); the notifier checks again at every delivery, and that is the
//! guarantee (`rtdash_runtime::egress::guard`).

use crate::error::ApiError;
use rtdash_runtime::egress::{system_lookup, Allowlist, CheckError, Destination};
use std::time::Duration;

/// How long the check waits for DNS.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks a webhook URL against the destination policy.
pub async fn check(url: &str, allow: &[String]) -> Result<(), ApiError> {
    let refuse = |why: String| ApiError::bad_request(format!("`notify_channel` refused: {why}"));
    let allow = Allowlist::parse(allow).map_err(|e| ApiError::internal(e.to_string()))?;
    let destination = Destination::parse(url).map_err(|r| refuse(r.to_string()))?;
    let lookup = system_lookup();
    match tokio::time::timeout(LOOKUP_TIMEOUT, destination.check(&allow, &lookup)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(CheckError::Refused(refusal))) => Err(refuse(refusal.to_string())),
        // Not resolvable from here (yet): the notifier decides at delivery.
        Ok(Err(CheckError::Lookup { .. })) | Err(_) => Ok(()),
    }
}

/// The URL as answered.
pub fn masked(url: &str) -> String {
    rtdash_runtime::egress::mask_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(url: &str, allow: &[&str]) -> Option<String> {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        match check(url, &allow).await {
            Ok(()) => None,
            Err(ApiError::BadRequest(message)) => Some(message),
            Err(other) => panic!("{url}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn inward_literals_are_refused_naming_why_unless_allowed() {
        let message = refused("http://169.254.169.254/latest/meta-data/", &[])
            .await
            .expect("refused");
        assert!(
            message.starts_with("`notify_channel` refused: `169.254.169.254` is a link-local"),
            "{message}"
        );
        assert!(refused("http://[::ffff:10.0.0.1]/", &[]).await.is_some());
        assert!(refused("http://u:p@93.184.215.14/", &[]).await.is_some());
        assert_eq!(refused("http://93.184.215.14/hook", &[]).await, None);
        assert_eq!(
            refused("http://10.0.0.1:9093/", &["10.0.0.0/8"]).await,
            None
        );
    }

    #[test]
    fn urls_are_masked_to_scheme_host_and_port() {
        assert_eq!(
            masked("https://hooks.slack.com/services/T0/B1/xyz"),
            "https://hooks.slack.com/***"
        );
    }
}
