//! A minimal webhook client: one HTTP/1.1 POST per connection over TCP, or TLS (rustls with
//! the ring provider and the system's root certificates), with one timeout for the whole
//! exchange and a bounded read of the answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

/// An answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The start of the body (at most the client's excerpt size).
    pub body: Vec<u8>,
}

/// Why there is no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// Not an http(s) URL with a host.
    #[error("invalid webhook URL: {0}")]
    BadUrl(String),
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection could not be made (refused, unreachable, DNS, TLS).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The exchange broke off.
    #[error("request failed: {0}")]
    Request(String),
}

/// Posts JSON bodies to webhooks.
#[derive(Clone)]
pub struct WebhookClient {
    tls: TlsConnector,
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
    /// A client with `timeout` per request, keeping `excerpt` bytes of answers.
    pub fn new(timeout: Duration, excerpt: usize) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::warn!("no system root certificates found: https:// webhooks will fail");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(tls)),
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
        match tokio::time::timeout(self.timeout, self.exchange(url, headers, body)).await {
            Ok(result) => result,
            Err(_) => Err(PostError::Timeout(self.timeout)),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, PostError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| PostError::BadUrl(e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(PostError::BadUrl(format!("{url}: not http or https"))),
        };
        let host = uri
            .host()
            .ok_or_else(|| PostError::BadUrl(format!("{url}: no host")))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = TcpStream::connect((bare_host.as_str(), port))
            .await
            .map_err(|e| PostError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut request = Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "rtdash-notifier")
            .header(hyper::header::CONNECTION, "close");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| PostError::Request(e.to_string()))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(bare_host)
                .map_err(|e| PostError::BadUrl(e.to_string()))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| PostError::Connect(format!("TLS: {e}")))?;
            self.send(TokioIo::new(stream), request).await
        } else {
            self.send(TokioIo::new(tcp), request).await
        }
    }

    async fn send<T>(&self, io: T, request: Request<Full<Bytes>>) -> Result<Answer, PostError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| PostError::Request(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| PostError::Request(e.to_string()))?;
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let mut kept = Vec::new();
            while kept.len() < self.excerpt {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            let room = self.excerpt - kept.len();
                            kept.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    // The status is what counts; a broken body after it does not matter.
                    Some(Err(_)) | None => break,
                }
            }
            Ok(Answer { status, body: kept })
        }
        .await;
        driver.abort();
        result
    }
}
