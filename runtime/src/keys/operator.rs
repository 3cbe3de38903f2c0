//! The operator credential: a key in a file (`auth.operator_key_file`), written by
//! `./deploy/up.sh` at first start as `<state>/operator.key` with mode 0600. Services read it
//! at start and keep only its id and the hash of its secret.

use rtdash_shared::auth::Token;
use std::path::{Path, PathBuf};

/// The operator key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OperatorKeyError {
    /// It cannot be read.
    #[error("operator key file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It does not hold a key (`rtd_<16 hex>_<43 base64url>`).
    #[error(
        "operator key file {path} does not hold a key (rtd_<16 hex>_<43 base64url characters>)"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the operator key from `path`. A file others can read is used, with a warning.
pub fn read_operator_key(path: &Path) -> Result<Token, OperatorKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| OperatorKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = Token::parse(&text)
        .filter(|token| token.kind == rtdash_shared::auth::TokenKind::Key)
        .ok_or_else(|| OperatorKeyError::Malformed {
            path: path.to_owned(),
        })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the operator key file is readable by others; chmod 600 it");
            }
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::auth::TokenKind;

    #[test]
    fn a_key_file_is_read_and_a_bad_one_named() {
        let dir = std::env::temp_dir().join(format!("rtdash-opkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = Token::generate(TokenKind::Key).unwrap();
        let good = dir.join("operator.key");
        std::fs::write(&good, format!("{}\n", token.reveal())).unwrap();
        assert_eq!(read_operator_key(&good).unwrap(), token);
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "hunter2").unwrap();
        let err = read_operator_key(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.key") && err.contains("does not hold a key"),
            "{err}"
        );
        let link = dir.join("link.key");
        std::fs::write(&link, Token::generate(TokenKind::Link).unwrap().reveal()).unwrap();
        assert!(
            read_operator_key(&link).is_err(),
            "a link token is no operator key"
        );
        assert!(matches!(
            read_operator_key(&dir.join("missing")),
            Err(OperatorKeyError::Read { .. })
        ));
    }
}
