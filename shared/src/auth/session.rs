//! Browser session tokens: `<key_id>.<expiry>.<mac>`, stateless, with `expiry` in Unix seconds
//! and `mac` the unpadded base64url HMAC-SHA256 of `<key_id>.<expiry>` under the gateways'
//! shared session secret. A session is only as good as its key: the gateway also checks
//! that the key still exists, so revoking the key ends its sessions.

use super::token::{base64url, constant_time_eq};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], payload: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(payload.as_bytes());
    base64url(&mac.finalize().into_bytes())
}

/// The session token of `key_id` valid until `expiry_secs` (Unix seconds).
pub fn sign(secret: &[u8], key_id: &str, expiry_secs: i64) -> String {
    let payload = format!("{key_id}.{expiry_secs}");
    let mac = mac(secret, &payload);
    format!("{payload}.{mac}")
}

/// The key id of a session token that is genuine (signed with `secret`) and not expired at
/// `now_secs`; `None` otherwise.
pub fn verify(secret: &[u8], token: &str, now_secs: i64) -> Option<String> {
    let (payload, given) = token.rsplit_once('.')?;
    let (key_id, expiry) = payload.split_once('.')?;
    let expiry: i64 = expiry.parse().ok()?;
    if secret.is_empty() || !constant_time_eq(&mac(secret, payload), given) || expiry <= now_secs {
        return None;
    }
    Some(key_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_until_they_expire_and_only_under_their_secret() {
        let token = sign(b"secret", "0123456789abcdef", 1_000);
        assert_eq!(
            verify(b"secret", &token, 999).as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(verify(b"secret", &token, 1_000), None, "expired");
        assert_eq!(verify(b"other", &token, 10), None, "another secret");
        assert_eq!(verify(b"", &token, 10), None);
        let forged = token.replace(".1000.", ".9000.");
        assert_eq!(verify(b"secret", &forged, 10), None, "expiry changed");
        let other_key = token.replacen("0123", "0124", 1);
        assert_eq!(verify(b"secret", &other_key, 10), None, "key changed");
        assert_eq!(verify(b"secret", "garbage", 10), None);
    }
}
