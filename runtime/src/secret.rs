//! A configuration value that must not reach a log: passwords and tokens, and reading one
//! from the file a `<key>_file` setting names.
//!
//! `Debug` and `Display` print `[redacted]`, so a config struct can derive `Debug` and be
//! logged whole. `Serialize` writes the real value: the layered config (figment) serialises
//! the built-in defaults to merge the file and environment over them, and a redacted default
//! would replace the real one. Nothing in rtdash serialises a loaded config for output.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A secret string (a password, a token). Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one call that needs it (a connect, a request header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The secret of setting `key` given as a file, `<key>_file`: `Ok(None)` without a file (the
/// value set, if any, stands); with one, the file's secret ([`read_file`]). Setting both is
/// refused (`value_is_set`: the value differs from its default), so that a password left in
/// the environment is not silently kept beside the file meant to replace it.
pub fn from_file_setting(
    key: &str,
    value_is_set: bool,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    let Some(path) = file else {
        return Ok(None);
    };
    let file_key = format!("{key}_file");
    if value_is_set {
        return Err(ConfigError::invalid(
            file_key,
            format!("and `{key}` are both set: use one (the file keeps it out of the environment)"),
        ));
    }
    read_file(&file_key, path).map(Some)
}

/// Reads the secret in the file setting `file_key` names: its content without one trailing
/// newline. Refused with an error naming `file_key` and the path: a file that cannot be read,
/// an empty one, and (on unix) one that other users may read or write. The owner's group may
/// read it: systemd's credentials and Kubernetes' secret volumes (with `fsGroup`) give a
/// service access through its group.
pub fn read_file(file_key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let file_error = |source| ConfigError::FileSetting {
        key: file_key.to_owned(),
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(file_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(ConfigError::invalid(
                file_key,
                format!(
                    "names {}, which other users can access (mode {mode:03o}): `chmod 600` it",
                    path.display()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = std::fs::read_to_string(path).map_err(file_error)?;
    let secret = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(ConfigError::invalid(
            file_key,
            format!("names {}, which is empty", path.display()),
        ));
    }
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A file holding `text` with `mode`, in a directory removed at the end of the test.
    fn secret_file(
        dir: &tempfile::TempDir,
        name: &str,
        text: &str,
        mode: u32,
    ) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_secret_file_is_read_without_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("s3cret\n\n", "s3cret\n"),
            (" s3cret \n", " s3cret "),
        ] {
            let path = secret_file(&dir, "p", text, 0o600);
            let read = read_file("nats.password_file", &path).unwrap();
            assert_eq!(read.expose(), want, "{text:?}");
        }
        let group = secret_file(&dir, "group", "s3cret", 0o640);
        assert_eq!(
            read_file("nats.password_file", &group).unwrap().expose(),
            "s3cret",
            "the group may read it"
        );
    }

    #[test]
    fn unreadable_empty_and_open_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = read_file("questdb.password_file", &missing).unwrap_err();
        assert!(matches!(err, ConfigError::FileSetting { .. }), "{err:?}");
        let refusals = [
            ("questdb.password_file", missing, &["missing"][..]),
            (
                "nats.token_file",
                secret_file(&dir, "empty", "\n", 0o600),
                &["empty", "is empty"][..],
            ),
            (
                "nats.password_file",
                secret_file(&dir, "open", "s3cret", 0o644),
                &["open", "mode 644", "chmod 600"][..],
            ),
        ];
        for (key, path, needles) in refusals {
            let text = read_file(key, &path).unwrap_err().to_string();
            assert!(
                text.contains(&format!("`{key}`")) && needles.iter().all(|n| text.contains(n)),
                "{text}"
            );
            assert!(!text.contains("s3cret"), "{text}");
        }
    }

    #[test]
    fn a_file_setting_replaces_no_value_and_is_refused_beside_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_file(&dir, "p", "s3cret\n", 0o600);
        assert_eq!(
            from_file_setting("nats.password", true, None).unwrap(),
            None
        );
        assert_eq!(
            from_file_setting("nats.password", false, Some(&path)).unwrap(),
            Some(Secret::new("s3cret"))
        );
        let text = from_file_setting("nats.password", true, Some(&path))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("`nats.password_file`") && text.contains("`nats.password` are both set"),
            "{text}"
        );
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(secret.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Option<Secret>,
        }
        let text = format!(
            "{:?}",
            Holder {
                password: Some(secret)
            }
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn serde_reads_and_writes_the_plain_string() {
        let secret: Secret = serde_json::from_str("\"s3cret\"").unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"s3cret\"");
    }
}
