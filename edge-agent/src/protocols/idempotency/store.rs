//! The remembered ids on disk: one file per generation, `<start ms>.ids`, the ids appended
//! as little-endian `u64`s. A file cut short by a crash loses only its partial last id.

use rtdash_shared::time::UnixMillis;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file of the id store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("event id store {path}")]
pub struct StoreError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn fail(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_owned(),
        source,
    }
}

fn file(dir: &Path, started_at: UnixMillis) -> PathBuf {
    dir.join(format!("{started_at}.ids"))
}

/// The generations in `dir`, oldest first: `(start, ids, stale)`, stale when it started
/// before `cutoff` (its ids are not read).
pub(super) fn load(
    dir: &Path,
    cutoff: UnixMillis,
) -> Result<Vec<(UnixMillis, Vec<u64>, bool)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(fail(dir)(err)),
    };
    let mut starts: Vec<UnixMillis> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(".ids")?.parse().ok()
        })
        .collect();
    starts.sort_unstable();
    let mut out = Vec::with_capacity(starts.len());
    for started_at in starts {
        if started_at < cutoff {
            out.push((started_at, Vec::new(), true));
            continue;
        }
        let path = file(dir, started_at);
        let bytes = std::fs::read(&path).map_err(fail(&path))?;
        let ids = bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default()))
            .collect();
        out.push((started_at, ids, false));
    }
    Ok(out)
}

/// Appends each generation's new ids to its file.
pub(super) fn append(dir: &Path, fresh: &[(UnixMillis, Vec<u64>)]) -> Result<(), StoreError> {
    if fresh.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    for (started_at, ids) in fresh {
        let path = file(dir, *started_at);
        let mut bytes = Vec::with_capacity(ids.len() * 8);
        for id in ids {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(fail(&path))?;
    }
    Ok(())
}

/// Removes the files of dropped generations (missing ones are fine).
pub(super) fn remove(dir: &Path, dropped: &[UnixMillis]) -> Result<(), StoreError> {
    for started_at in dropped {
        let path = file(dir, *started_at);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(fail(&path)(err)),
        }
    }
    Ok(())
}
