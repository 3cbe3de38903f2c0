//! Keys and link tokens: `<prefix>_<id>_<secret>`, with `id` 16 lowercase hex characters
//! (64 random bits, the lookup key in the bucket) and `secret` 43 base64url characters (256
//! random bits from the OS). API keys have the prefix `rtd`, dashboard-link tokens `rtl`.
//! Only the SHA-256 of the secret is stored ([`sha256_hex`]); verification compares hashes
//! in constant time ([`constant_time_eq`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;

/// Length of the id part, in characters (8 random bytes in hex).
pub const ID_LEN: usize = 16;
/// Length of the secret part, in characters (32 random bytes in unpadded base64url).
pub const SECRET_LEN: usize = 43;

/// What a token is for, by its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `rtd_`: an API key (a tenant's, or the operator's).
    Key,
    /// `rtl_`: a signed dashboard link.
    Link,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Key => "rtd_",
            TokenKind::Link => "rtl_",
        }
    }
}

/// A parsed key or link token. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Key or link.
    pub kind: TokenKind,
    /// The public id (`key_id`, `link_id`).
    pub id: String,
    secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why random bytes could not be had from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// `len` random bytes from the operating system.
pub fn random_bytes(len: usize) -> Result<Vec<u8>, RandomError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|err| RandomError(err.to_string()))?;
    Ok(bytes)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Unpadded base64url of `bytes`.
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of `text`, in lowercase hex (what the bucket stores of a secret).
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Compares two strings in time that depends on their lengths only, not on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Token {
    /// A new random token of `kind`.
    pub fn generate(kind: TokenKind) -> Result<Self, RandomError> {
        Ok(Self {
            kind,
            id: hex(&random_bytes(ID_LEN / 2)?),
            secret: base64url(&random_bytes(32)?),
        })
    }

    /// Parses `<prefix>_<16 hex>_<43 base64url>`; `None` for anything else (surrounding
    /// whitespace is ignored, so a key file may end with a newline).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let kind = [TokenKind::Key, TokenKind::Link]
            .into_iter()
            .find(|kind| text.starts_with(kind.prefix()))?;
        let rest = &text[kind.prefix().len()..];
        if rest.len() != ID_LEN + 1 + SECRET_LEN || !rest.is_ascii() {
            return None;
        }
        let (id, secret) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
        let id_ok = id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let secret_ok = secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok && rest.as_bytes()[ID_LEN] == b'_').then(|| Self {
            kind,
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The SHA-256 of the secret, hex (compare with the stored hash through
    /// [`Token::matches`]).
    pub fn secret_sha256(&self) -> String {
        sha256_hex(&self.secret)
    }

    /// Whether the secret's hash is `stored_sha256`, compared in constant time.
    pub fn matches(&self, stored_sha256: &str) -> bool {
        constant_time_eq(&self.secret_sha256(), stored_sha256)
    }

    /// The whole token as presented (`rtd_<id>_<secret>`): shown once, at creation.
    pub fn reveal(&self) -> String {
        format!("{}{}_{}", self.kind.prefix(), self.id, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape_and_parse_back() {
        for kind in [TokenKind::Key, TokenKind::Link] {
            let token = Token::generate(kind).unwrap();
            let text = token.reveal();
            assert_eq!(text.len(), 4 + ID_LEN + 1 + SECRET_LEN, "{text}");
            assert_eq!(Token::parse(&text).unwrap(), token);
            assert_eq!(Token::parse(&format!(" {text}\n")).unwrap(), token);
            assert_eq!(token.secret_sha256().len(), 64);
            assert!(token.matches(&token.secret_sha256()));
            assert!(
                !format!("{token:?}").contains(&token.secret),
                "Debug hides the secret"
            );
        }
        let a = Token::generate(TokenKind::Key).unwrap();
        let b = Token::generate(TokenKind::Key).unwrap();
        assert_ne!(a.id, b.id);
        assert!(!a.matches(&b.secret_sha256()));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let good = Token::generate(TokenKind::Key).unwrap().reveal();
        let cases = [
            String::new(),
            "rtd_".to_owned(),
            good.replacen("rtd_", "rtx_", 1),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            good.replacen('_', "-", 2),
            format!("rtd_ABCDEF0123456789_{}", &good[22..]),
            format!("{}é", &good[..good.len() - 2]),
        ];
        for case in cases {
            assert!(Token::parse(&case).is_none(), "{case}");
        }
    }

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
