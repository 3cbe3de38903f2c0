//! What the harness takes from `deploy/`: version pins, config templates, and where
//! `./deploy/install.sh` puts the binaries. Read at compile time so the pins and configs
//! live in one place for the scripts and the tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// `deploy/versions.env`: `KEY=value` lines.
const VERSIONS_ENV: &str = include_str!("../../deploy/versions.env");
/// `deploy/nats/local.conf`, a template with `@KEY@` placeholders.
pub(crate) const NATS_CONF_TEMPLATE: &str = include_str!("../../deploy/nats/local.conf");
/// `deploy/questdb/server.conf`, a template with `@KEY@` placeholders.
pub(crate) const QUESTDB_CONF_TEMPLATE: &str = include_str!("../../deploy/questdb/server.conf");

/// The value pinned for `key` in `deploy/versions.env`.
pub(crate) fn pinned(key: &str) -> anyhow::Result<&'static str> {
    pinned_in(VERSIONS_ENV, key).with_context(|| format!("{key} is not set in deploy/versions.env"))
}

fn pinned_in<'a>(env_file: &'a str, key: &str) -> Option<&'a str> {
    env_file
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

/// Replaces every `@KEY@` in `template`; fails if a placeholder is left.
pub(crate) fn render(template: &str, values: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut text = template.to_owned();
    for (key, value) in values {
        text = text.replace(&format!("@{key}@"), value);
    }
    let ats: Vec<usize> = text.match_indices('@').map(|(i, _)| i).collect();
    let unset = ats
        .windows(2)
        .map(|w| &text[w[0] + 1..w[1]])
        .find(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
    match unset {
        Some(word) => bail!("config template placeholder @{word}@ left unset"),
        None => Ok(text),
    }
}

/// `${RTDASH_CACHE:-$HOME/.cache/rtdash}`, as in `deploy/lib.sh`.
fn cache_dir() -> PathBuf {
    match std::env::var_os("RTDASH_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
            Path::new(&home).join(".cache/rtdash")
        }
    }
}

/// The nats-server binary: `RTDASH_NATS_SERVER`, else the pinned one in the cache.
pub(crate) fn nats_server() -> anyhow::Result<PathBuf> {
    let default = cache_dir()
        .join(format!("nats-{}", pinned("NATS_SERVER_VERSION")?))
        .join("nats-server");
    resolve(
        "RTDASH_NATS_SERVER",
        std::env::var_os("RTDASH_NATS_SERVER"),
        default,
    )
}

/// The QuestDB server jar: `RTDASH_QUESTDB_JAR`, else the pinned one in the cache.
pub(crate) fn questdb_jar() -> anyhow::Result<PathBuf> {
    let default = cache_dir()
        .join("questdb")
        .join(format!("questdb-{}.jar", pinned("QUESTDB_VERSION")?));
    resolve(
        "RTDASH_QUESTDB_JAR",
        std::env::var_os("RTDASH_QUESTDB_JAR"),
        default,
    )
}

/// The java binary: `RTDASH_JAVA`, else `java` on `PATH`.
pub(crate) fn java() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("java"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("java"));
    resolve("RTDASH_JAVA", std::env::var_os("RTDASH_JAVA"), on_path)
}

/// `from_env` when set and non-empty, else `default`; either way the file must exist.
fn resolve(var: &str, from_env: Option<OsString>, default: PathBuf) -> anyhow::Result<PathBuf> {
    match from_env {
        Some(value) if !value.is_empty() => {
            let path = PathBuf::from(value);
            if !path.is_file() {
                bail!("{var}={} does not exist; fix or unset {var} (then ./deploy/install.sh installs the pinned one)", path.display());
            }
            Ok(path)
        }
        _ if default.is_file() => Ok(default),
        _ => bail!(
            "{} not found; run ./deploy/install.sh or set {var}",
            default.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_pinned() {
        assert!(pinned("NATS_SERVER_VERSION").unwrap().starts_with('v'));
        assert!(!pinned("QUESTDB_VERSION").unwrap().is_empty());
        assert!(pinned("NO_SUCH_KEY").is_err());
        assert_eq!(pinned_in("# A=1\nA=2\nAB=3\n", "A"), Some("2"));
        assert_eq!(pinned_in("AB=3\n", "A"), None);
    }

    #[test]
    fn render_fills_every_placeholder() {
        assert_eq!(
            render("a @X@ b @Y@", &[("X", "1"), ("Y", "/p")]).unwrap(),
            "a 1 b /p"
        );
        let err = render("a @X@ b @Y@", &[("X", "1")]).unwrap_err();
        assert!(err.to_string().contains("@Y@"), "{err}");
        // Prose such as "@...@" or an e-mail address is not a placeholder.
        assert!(render("the @...@ placeholders, a@b.c", &[]).is_ok());
        assert!(render("a@b @Z@", &[]).is_err());
    }

    #[test]
    fn templates_render_with_the_harness_keys() {
        let nats = [
            ("NATS_PORT", "1"),
            ("NATS_MONITORING", "# no monitoring"),
            ("NATS_STORE_DIR", "/s"),
            ("NATS_SYNC_INTERVAL", "2m"),
        ];
        render(NATS_CONF_TEMPLATE, &nats).unwrap();
        let questdb = [
            ("QDB_HTTP_PORT", "1"),
            ("QDB_ILP_PORT", "2"),
            ("QDB_PG_PORT", "3"),
            ("QDB_MIN_HTTP_PORT", "4"),
        ];
        render(QUESTDB_CONF_TEMPLATE, &questdb).unwrap();
    }

    #[test]
    fn missing_binary_names_the_variable_and_the_installer() {
        let err = resolve(
            "RTDASH_NATS_SERVER",
            Some("/nonexistent/nats-server".into()),
            PathBuf::from("/also/missing"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RTDASH_NATS_SERVER"), "{err}");
        assert!(err.contains("./deploy/install.sh"), "{err}");
        assert!(err.contains("/nonexistent/nats-server"), "{err}");

        let err = resolve("RTDASH_JAVA", None, PathBuf::from("/missing/java"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/missing/java") && err.contains("RTDASH_JAVA"),
            "{err}"
        );
    }
}
