//! The agent's identity: from the configuration, or generated once and kept in
//! `<state_dir>/agent-id` so that it is stable across restarts (the aggregator's exactly-once
//! bookkeeping is per agent id). Ids must be unique across every site of a deployment (the
//! hub deduplicates on `Nats-Msg-Id` = `<agent>.<p>.<seq>`): at an edge site a generated id
//! starts with the site, `<site>-<16 hex digits>`.

use crate::fs::write_atomically;
use rtdash_shared::event::is_identifier;
use std::io;
use std::path::Path;

/// File holding the generated agent id.
pub const AGENT_ID_FILE: &str = "agent-id";

/// The configured id, else the persisted one, else a new one that is persisted: `edge-` + 16
/// hex digits, or `<site>-` + 16 hex digits at an edge site. A persisted id is kept as it is
/// (identity must be stable), even one generated before `site` was set.
pub fn resolve_agent_id(
    configured: Option<&str>,
    site: Option<&str>,
    state_dir: &Path,
) -> io::Result<String> {
    if let Some(id) = configured {
        return Ok(id.to_owned());
    }
    let path = state_dir.join(AGENT_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if is_identifier(id, 64) {
                if let Some(site) = site.filter(|site| !id.starts_with(&format!("{site}-"))) {
                    tracing::warn!(
                        agent_id = %id,
                        site,
                        path = %path.display(),
                        "the persisted agent id does not name the site; it is kept (delete the file for a new `<site>-` id)"
                    );
                }
                return Ok(id.to_owned());
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {:?}, not an agent id ([A-Za-z0-9_-], at most 64 bytes)",
                    path.display(),
                    id
                ),
            ));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let simple = uuid::Uuid::new_v4().simple().to_string();
    let id = format!("{}-{}", site.unwrap_or("edge"), &simple[..16]);
    write_atomically(&path, format!("{id}\n").as_bytes())?;
    tracing::info!(agent_id = %id, path = %path.display(), "generated a new agent id");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_id_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = resolve_agent_id(None, None, dir.path()).expect("generate");
        assert!(first.starts_with("edge-") && first.len() == 21, "{first}");
        assert_eq!(
            resolve_agent_id(None, None, dir.path()).expect("load"),
            first
        );
        assert_eq!(
            resolve_agent_id(Some("edge-fixed"), None, dir.path()).expect("configured"),
            "edge-fixed"
        );
        assert_eq!(
            resolve_agent_id(None, Some("s1"), dir.path()).expect("kept"),
            first,
            "a persisted id stays"
        );
        std::fs::write(dir.path().join(AGENT_ID_FILE), "bad id\n").expect("write");
        assert!(resolve_agent_id(None, None, dir.path()).is_err());
    }

    #[test]
    fn a_generated_id_at_a_site_starts_with_the_site() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = resolve_agent_id(None, Some("eu-west-1"), dir.path()).expect("generate");
        assert!(id.starts_with("eu-west-1-") && id.len() == 26, "{id}");
        assert!(is_identifier(&id, 64));
        assert_eq!(
            resolve_agent_id(None, Some("eu-west-1"), dir.path()).expect("load"),
            id
        );
        assert_eq!(
            resolve_agent_id(Some("s1-pos7"), Some("s1"), dir.path()).expect("configured"),
            "s1-pos7"
        );
    }
}
