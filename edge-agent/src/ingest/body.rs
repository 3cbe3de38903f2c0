//! Request bodies: what kind they are (JSON or NDJSON, gzip or not), reading them within the
//! size limit, and decompressing them within the decompressed-size limit.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::io::Read;

/// How the body is encoded (`Content-Encoding`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// No encoding.
    Identity,
    /// gzip (`gzip` or `x-gzip`).
    Gzip,
    /// Something the agent does not decode.
    Unsupported(String),
}

/// The headers that say how to read a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyKind {
    /// `Content-Type` says NDJSON (`application/x-ndjson`, `application/ndjson`,
    /// `application/jsonl`, `application/x-jsonlines`).
    pub ndjson: bool,
    /// `Content-Encoding`.
    pub encoding: Encoding,
    /// `Content-Length`, when sent.
    pub content_length: Option<u64>,
}

impl BodyKind {
    /// Reads the relevant headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let ndjson = matches!(
            media.as_str(),
            "application/x-ndjson"
                | "application/ndjson"
                | "application/jsonl"
                | "application/x-jsonlines"
                | "application/jsonlines"
        );
        let encoding = match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().map(|s| s.trim().to_ascii_lowercase()))
        {
            None => Encoding::Identity,
            Some(Ok(value)) if value.is_empty() || value == "identity" => Encoding::Identity,
            Some(Ok(value)) if value == "gzip" || value == "x-gzip" => Encoding::Gzip,
            Some(Ok(value)) => Encoding::Unsupported(value),
            Some(Err(_)) => Encoding::Unsupported("(not text)".to_owned()),
        };
        let content_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Self {
            ndjson,
            encoding,
            content_length,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit; `prefix` holds the first bytes read (for the dead letter).
    #[error("the request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
        /// The first bytes of the body, if any were read.
        prefix: Bytes,
    },
    /// The memory budget was exceeded while reading.
    #[error("the memory budget is exhausted")]
    OverBudget,
    /// The connection failed while reading.
    #[error("reading the request body failed: {0}")]
    Read(#[source] axum::Error),
}

/// Reads `body`, failing as soon as it exceeds `limit` bytes. `account` is called with each
/// chunk's size and returns false when the memory budget is exhausted. `keep_prefix` bytes
/// of an oversized body are returned for the dead letter.
pub async fn read_limited(
    body: Body,
    kind: &BodyKind,
    limit: u64,
    keep_prefix: usize,
    mut account: impl FnMut(usize) -> bool,
) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    if kind.content_length.is_some_and(|len| len > limit) {
        // Declared too large: read only the prefix kept for the dead letter.
        let mut prefix = BytesMut::new();
        while prefix.len() < keep_prefix {
            match stream.next().await {
                Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
                _ => break,
            }
        }
        prefix.truncate(keep_prefix);
        return Err(BodyError::TooLarge {
            limit,
            prefix: prefix.freeze(),
        });
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        total += chunk.len() as u64;
        if total > limit {
            let mut prefix = BytesMut::new();
            if let Some(first) = &first {
                prefix.extend_from_slice(first);
            }
            if let Some(rest) = &rest {
                prefix.extend_from_slice(rest);
            }
            prefix.extend_from_slice(&chunk);
            prefix.truncate(keep_prefix);
            return Err(BodyError::TooLarge {
                limit,
                prefix: prefix.freeze(),
            });
        }
        if !account(chunk.len()) {
            return Err(BodyError::OverBudget);
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(chunk),
            (Some(head), None) => {
                let capacity = kind
                    .content_length
                    .map_or(0, |len| len as usize)
                    .max(head.len() + chunk.len());
                let mut buffer = BytesMut::with_capacity(capacity);
                buffer.extend_from_slice(head);
                buffer.extend_from_slice(&chunk);
                rest = Some(buffer);
            }
            (Some(_), Some(buffer)) => buffer.extend_from_slice(&chunk),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buffer)) => buffer.freeze(),
        (Some(first), None) => first,
        (None, None) => Bytes::new(),
    })
}

/// Why a gzip body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    /// Decompressed, it is larger than the limit.
    #[error("the decompressed request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// Not valid gzip.
    #[error("the request body is not valid gzip: {0}")]
    Invalid(#[source] std::io::Error),
}

/// Decompresses a gzip body (concatenated members allowed), reading at most `limit + 1`
/// bytes of output so a "zip bomb" costs no more than the limit.
pub fn gunzip(compressed: &[u8], limit: u64) -> Result<Vec<u8>, GunzipError> {
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    let mut out = Vec::with_capacity((compressed.len() * 4).min(limit as usize));
    decoder
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Invalid)?;
    if out.len() as u64 > limit {
        return Err(GunzipError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn headers_decide_the_kind() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            BodyKind::from_headers(&headers),
            BodyKind {
                ndjson: false,
                encoding: Encoding::Identity,
                content_length: None
            }
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
        );
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("GZIP"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        let kind = BodyKind::from_headers(&headers);
        assert!(kind.ndjson);
        assert_eq!(kind.encoding, Encoding::Gzip);
        assert_eq!(kind.content_length, Some(12));
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(
            BodyKind::from_headers(&headers).encoding,
            Encoding::Unsupported("br".into())
        );
    }

    #[test]
    fn gunzip_is_bounded() {
        let data = vec![b'a'; 100_000];
        let compressed = gzip(&data);
        assert_eq!(gunzip(&compressed, 100_000).expect("fits"), data);
        assert!(matches!(
            gunzip(&compressed, 99_999),
            Err(GunzipError::TooLarge(99_999))
        ));
        assert!(matches!(
            gunzip(b"not gzip at all", 1000),
            Err(GunzipError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let kind = BodyKind {
            ndjson: false,
            encoding: Encoding::Identity,
            content_length: None,
        };
        let ok = read_limited(Body::from("hello"), &kind, 5, 3, |_| true)
            .await
            .expect("fits");
        assert_eq!(&ok[..], b"hello");
        match read_limited(Body::from("hello!"), &kind, 5, 3, |_| true).await {
            Err(BodyError::TooLarge { prefix, .. }) => assert_eq!(&prefix[..], b"hel"),
            other => panic!("{other:?}"),
        }
        let declared = BodyKind {
            content_length: Some(10),
            ..kind.clone()
        };
        assert!(matches!(
            read_limited(Body::from("x"), &declared, 5, 3, |_| true).await,
            Err(BodyError::TooLarge { .. })
        ));
        assert!(matches!(
            read_limited(Body::from("x"), &kind, 5, 3, |_| false).await,
            Err(BodyError::OverBudget)
        ));
    }
}
