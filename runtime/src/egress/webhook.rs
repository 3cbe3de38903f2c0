//! The webhook client (the alert notifier's, and the gateway's test notifications): one pooled `reqwest` client for every delivery of the process
//! (connections to a receiver are reused), HTTP/1.1 over TCP or TLS (rustls, certificates
//! checked against the system's trust store), the proxies of the environment (`HTTPS_PROXY`,
//! `HTTP_PROXY`, `NO_PROXY`), redirects not followed, one timeout for the whole exchange and a
//! bounded read of the answer.

use super::guard::{refusal_in, Guard};
use crate::error_chain::ErrorChain;
use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use std::time::{Duration, SystemTime};

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The start of the body (at most the client's excerpt size).
    pub body: Vec<u8>,
    /// How long the receiver asks to wait before the next attempt (`Retry-After`, in seconds
    /// or as an HTTP date), when it says so.
    pub retry_after: Option<Duration>,
}

/// Why there is no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// Not an http(s) URL with a host.
    #[error("invalid webhook URL {url}: {source}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why it is not one.
        #[source]
        source: BadUrl,
    },
    /// The destination is inside (loopback, private, link-local, ...) and not allowlisted,
    /// or the URL carries user-info.
    #[error("destination refused: {0}")]
    Refused(#[source] crate::egress::Refusal),
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection could not be made (refused, unreachable, DNS, TLS, proxy).
    #[error("connection failed: {}", ErrorChain(.0))]
    Connect(#[source] reqwest::Error),
    /// The exchange broke off.
    #[error("request failed: {}", ErrorChain(.0))]
    Request(#[source] reqwest::Error),
}

/// Why a webhook URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum BadUrl {
    /// It does not parse.
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    /// Another scheme than http or https.
    #[error("not http or https")]
    Scheme,
    /// No host.
    #[error("no host")]
    NoHost,
}

/// The webhook client could not be built (its TLS backend did not start).
#[derive(Debug, thiserror::Error)]
#[error("HTTP client: {}", ErrorChain(.0))]
pub struct ClientError(#[from] reqwest::Error);

/// Posts JSON bodies to webhooks. Cloning shares the connection pool.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    guard: Guard,
    timeout: Duration,
    excerpt: usize,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client with `timeout` per request, reading at most `excerpt` bytes of answers,
    /// posting only where `guard` allows.
    pub fn new(timeout: Duration, excerpt: usize, guard: Guard) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .user_agent("rtdash-notifier")
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .tcp_nodelay(true)
            .dns_resolver(guard.resolver())
            .build()?;
        Ok(Self {
            http,
            guard,
            timeout,
            excerpt,
        })
    }

    /// POSTs `body` (JSON) to `url` with `headers`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, PostError> {
        self.guard.precheck(url).map_err(PostError::Refused)?;
        let url = parse_url(url)?;
        let mut request = self.http.post(url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send().await.map_err(|e| self.classify(e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, SystemTime::now()));
        let mut kept = Vec::new();
        while kept.len() < self.excerpt {
            match response.chunk().await {
                Ok(Some(data)) => {
                    let room = self.excerpt - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
                // The status is what counts; a broken body after it does not matter.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            body: kept,
            retry_after,
        })
    }

    fn classify(&self, err: reqwest::Error) -> PostError {
        if let Some(refusal) = refusal_in(&err) {
            PostError::Refused(refusal)
        } else if err.is_timeout() {
            PostError::Timeout(self.timeout)
        } else if err.is_connect() {
            PostError::Connect(err)
        } else {
            PostError::Request(err)
        }
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, PostError> {
    let bad = |source| PostError::BadUrl {
        url: text.to_owned(),
        source,
    };
    let url = reqwest::Url::parse(text).map_err(|e| bad(BadUrl::Parse(e)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(BadUrl::Scheme));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(BadUrl::NoHost));
    }
    Ok(url)
}

/// The wait a `Retry-After` value asks for at `now`: delay-seconds, or an HTTP date (a date
/// in the past asks for no wait). `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// The policy of these tests: the receivers are on loopback.
    fn loopback() -> Guard {
        Guard::new(crate::egress::Allowlist::parse(&["127.0.0.1"]).unwrap())
    }

    #[tokio::test]
    async fn an_inward_destination_is_refused_without_a_request() {
        let (url, connections) = receiver("200 OK", String::new()).await;
        let client = WebhookClient::new(
            Duration::from_secs(5),
            64,
            Guard::new(crate::egress::Allowlist::default()),
        )
        .unwrap();
        let err = client
            .post(&url, &[], Bytes::new())
            .await
            .expect_err("refused");
        assert!(matches!(err, PostError::Refused(_)), "{err}");
        assert!(err.to_string().contains("is a loopback address"), "{err}");
        let named = url.replace("127.0.0.1", "localhost");
        let err = client
            .post(&named, &[], Bytes::new())
            .await
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("`localhost` resolves to a loopback address"),
            "{err}"
        );
        assert_eq!(connections.load(Ordering::SeqCst), 0, "never connected");
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The two obsolete date forms HTTP still accepts.
        assert_eq!(
            retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun Nov  6 08:49:57 1994", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past"
        );
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    /// A tiny HTTP/1.1 server on loopback answering every request with `status`, `headers`
    /// (each ending in CRLF) and the body `slow down`, keeping connections open; counts the
    /// connections it accepted.
    async fn receiver(status: &'static str, headers: String) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let headers = headers.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: its head, then `content-length` bytes of body.
                        let (head_end, length) = loop {
                            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|line| line.strip_prefix("content-length:"))
                                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                                break (end + 4, length);
                            }
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        while buffer.len() < head_end + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buffer.drain(..head_end + length);
                        let answer = format!(
                            "HTTP/1.1 {status}\r\n{headers}content-length: 9\r\n\r\nslow down"
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    #[tokio::test]
    async fn a_429_says_how_long_to_wait_and_the_connection_is_reused() {
        let (url, connections) =
            receiver("429 Too Many Requests", "retry-after: 7\r\n".to_owned()).await;
        let client = WebhookClient::new(Duration::from_secs(5), 4, loopback()).unwrap();
        for _ in 0..3 {
            let answer = client
                .post(&url, &[("Idempotency-Key", "k")], Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(answer.status, 429);
            assert_eq!(answer.retry_after, Some(Duration::from_secs(7)));
            assert_eq!(answer.body, b"slow");
        }
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "one pooled connection"
        );
    }

    #[tokio::test]
    async fn a_503_may_say_when_to_come_back_as_an_http_date() {
        let at = SystemTime::now() + Duration::from_secs(30);
        let header = format!("retry-after: {}\r\n", httpdate::fmt_http_date(at));
        let (url, _) = receiver("503 Service Unavailable", header).await;
        let client = WebhookClient::new(Duration::from_secs(5), 64, loopback()).unwrap();
        let answer = client.post(&url, &[], Bytes::new()).await.unwrap();
        assert_eq!(answer.status, 503);
        let wait = answer.retry_after.expect("Retry-After read");
        assert!(
            (Duration::from_secs(27)..=Duration::from_secs(30)).contains(&wait),
            "{wait:?}"
        );
    }

    #[test]
    fn only_http_urls_with_a_host_are_posted_to() {
        assert!(parse_url("https://hooks.example.com/x").is_ok());
        assert!(matches!(
            parse_url("ftp://example.com/"),
            Err(PostError::BadUrl {
                source: BadUrl::Scheme,
                ..
            })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(PostError::BadUrl {
                source: BadUrl::Parse(_),
                ..
            })
        ));
    }
}
