//! The pieces of Centrifugo (v6) the fan-out peer benchmark needs: a connection token signed
//! with HMAC SHA-256, the unidirectional SSE endpoint's URL, the server API's `publish`, and
//! the messages its uni_sse stream carries.
//!
//! Centrifugo's documentation (centrifugal.dev, "Unidirectional SSE", "Unidirectional client
//! protocol", "Server API", "Client JWT authentication"): a viewer opens
//! `GET /connection/uni_sse?cf_connect=<JSON connect request>` with `{"token": "<JWT>"}`; the
//! token's `subs` claim subscribes the connection server-side, so no client-side subscribe is
//! needed. Every message is one `data:` line of JSON: `{"connect": {...}}` first, then
//! `{"channel": "<ch>", "pub": {"data": <published JSON>, ...}}` per publication, and `{}` as a
//! ping. The server API is `POST /api/publish` with `X-API-Key`.

use crate::sse::SseEvent;
use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

/// Channel the probe's viewers subscribe to.
pub const PROBE_CHANNEL: &str = "rtdash-probe";

/// A connection JWT (HS256) for user `sub`, expiring at `exp` (Unix seconds), subscribed
/// server-side to `channel`.
pub fn connection_token(secret: &[u8], sub: &str, exp: i64, channel: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({ "sub": sub, "exp": exp, "subs": { channel: {} } });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = hs256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn hs256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The `cf_connect` query value of a uni_sse connection with `token`.
pub fn connect_request(token: &str) -> String {
    json!({ "token": token }).to_string()
}

/// What one uni_sse message means to the probe.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// The connect reply: the connection is established and subscribed.
    Connected,
    /// A publication on `channel` carrying a marker `seq`.
    Marker {
        /// Channel of the publication.
        channel: String,
        /// The marker's sequence number.
        seq: u64,
    },
    /// A ping, a publication without a marker, or anything else.
    Other,
}

#[derive(Deserialize)]
struct Push {
    #[serde(default)]
    connect: Option<Value>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, rename = "pub")]
    publication: Option<Publication>,
}

#[derive(Deserialize)]
struct Publication {
    #[serde(default)]
    data: Option<MarkerData>,
}

#[derive(Deserialize)]
struct MarkerData {
    seq: u64,
}

/// Reads one uni_sse event (`data:` JSON). A message Centrifugo sends that is not JSON is an
/// error, so that a protocol mismatch fails the run instead of counting as missing deliveries.
pub fn parse_message(event: &SseEvent) -> anyhow::Result<Message> {
    if event.data.is_empty() {
        return Ok(Message::Other);
    }
    let push: Push = serde_json::from_str(&event.data)
        .with_context(|| format!("uni_sse message is not a push: {:?}", event.data))?;
    if push.connect.is_some() {
        return Ok(Message::Connected);
    }
    match (push.channel, push.publication.and_then(|p| p.data)) {
        (Some(channel), Some(data)) => Ok(Message::Marker {
            channel,
            seq: data.seq,
        }),
        _ => Ok(Message::Other),
    }
}

/// Publishes `{"seq": seq}` on `channel` through the server API (`POST /api/publish`).
pub async fn publish(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    channel: &str,
    seq: u64,
) -> anyhow::Result<()> {
    let url = format!("{}/api/publish", base.trim_end_matches('/'));
    let response = client
        .post(&url)
        .header("X-API-Key", api_key)
        .json(&json!({ "channel": channel, "data": { "seq": seq } }))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url}: {status}: {body}");
    }
    // The server API answers 200 with `{"error": {...}}` for a refused command.
    if let Ok(answer) = serde_json::from_str::<Value>(&body) {
        if let Some(error) = answer.get("error") {
            bail!("POST {url}: {error}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HS256 as RFC 7515, appendix A.1 computes it: the same signing input and key give the
    /// signature printed there.
    #[test]
    fn hs256_matches_rfc7515_example() {
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .expect("key");
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(hs256(&key, input.as_bytes())),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }

    #[test]
    fn token_has_the_claims_and_a_valid_signature() {
        let token = connection_token(b"secret", "viewer-7", 2_000_000_000, "probe");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(
            claims,
            json!({"sub": "viewer-7", "exp": 2_000_000_000i64, "subs": {"probe": {}}})
        );
        let signature = hs256(b"secret", format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.encode(signature), parts[2]);
    }

    #[test]
    fn messages_parse() {
        let event = |data: &str| SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        };
        assert_eq!(
            parse_message(&event(
                r#"{"connect":{"client":"c","version":"6.9.1","subs":{"probe":{}},"ping":25}}"#
            ))
            .expect("connect"),
            Message::Connected
        );
        assert_eq!(
            parse_message(&event(
                r#"{"channel":"probe","pub":{"data":{"seq":1700000000000123},"offset":3}}"#
            ))
            .expect("pub"),
            Message::Marker {
                channel: "probe".to_owned(),
                seq: 1_700_000_000_000_123
            }
        );
        assert_eq!(parse_message(&event("{}")).expect("ping"), Message::Other);
        assert_eq!(
            parse_message(&event(
                r#"{"channel":"probe","join":{"info":{"user":"u"}}}"#
            ))
            .expect("join"),
            Message::Other
        );
        assert!(parse_message(&event("not json")).is_err());
    }
}
