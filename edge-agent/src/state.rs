//! The agent's identity: from the configuration, or generated once and kept in
//! `<state_dir>/agent-id` so that it is stable across restarts (the aggregator's exactly-once
//! bookkeeping is per agent id).

use crate::publish::seq::write_atomically;
use rtdash_shared::event::is_identifier;
use std::io;
use std::path::Path;

/// File holding the generated agent id.
pub const AGENT_ID_FILE: &str = "agent-id";

/// The configured id, else the persisted one, else a new one (`edge-` + 16 hex digits) that
/// is persisted.
pub fn resolve_agent_id(configured: Option<&str>, state_dir: &Path) -> io::Result<String> {
    if let Some(id) = configured {
        return Ok(id.to_owned());
    }
    let path = state_dir.join(AGENT_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if is_identifier(id, 64) {
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
    let id = format!("edge-{}", &simple[..16]);
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
        let first = resolve_agent_id(None, dir.path()).expect("generate");
        assert!(first.starts_with("edge-") && first.len() == 21, "{first}");
        assert_eq!(resolve_agent_id(None, dir.path()).expect("load"), first);
        assert_eq!(
            resolve_agent_id(Some("edge-fixed"), dir.path()).expect("configured"),
            "edge-fixed"
        );
        std::fs::write(dir.path().join(AGENT_ID_FILE), "bad id\n").expect("write");
        assert!(resolve_agent_id(None, dir.path()).is_err());
    }
}
