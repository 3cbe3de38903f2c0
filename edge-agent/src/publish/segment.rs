//! Append-only segment files: the on-disk half of the spools.
//!
//! A log is a directory of files `seg-<n>.dat` (n increasing). Each record is
//!
//! ```text
//! magic u32 "RSP1" | key_a u32 | key_b u64 | len u32 | xxh3-64 of payload u64 | payload
//! ```
//!
//! all little-endian (28 header bytes). Records are only appended; a record is *released* when
//! its owner no longer needs it (its batch was acknowledged), and a segment file is deleted
//! once every record in it is released and it is no longer the one being appended to.
//! Opening a log scans every segment and returns the records found, in file order; a torn or
//! corrupt tail (a crash mid-write) ends the scan of that segment and is logged, the records
//! before it are kept.
//!
//! Writes are not fsynced one by one (the page cache survives a process crash; an operating
//! system crash may lose the newest records); [`SegmentLog::sync`] is called at shutdown.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

const MAGIC: u32 = u32::from_le_bytes(*b"RSP1");
/// Bytes of a record header.
pub const HEADER_LEN: u64 = 28;
/// Largest payload accepted (a partial batch is at most a few MiB).
pub const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;

/// Where a record's payload lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// Segment number.
    pub segment: u64,
    /// Offset of the record header in the segment.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
}

/// A record found when opening a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// First key (the partition for partial batches).
    pub key_a: u32,
    /// Second key (the sequence number for partial batches).
    pub key_b: u64,
    /// Where it is.
    pub at: RecordRef,
}

#[derive(Debug)]
struct SegmentInfo {
    /// File length in bytes.
    len: u64,
    /// Records not yet released.
    live: u64,
}

#[derive(Debug)]
struct Active {
    id: u64,
    file: File,
}

/// A directory of append-only segment files (see the module docs).
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    segments: BTreeMap<u64, SegmentInfo>,
    active: Option<Active>,
    next_id: u64,
    total_bytes: u64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016}.dat"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".dat")?
        .parse()
        .ok()
}

impl SegmentLog {
    /// Opens (creating) the log in `dir` and returns the records it holds, in segment and
    /// file order. New records go to a new segment.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Self, Vec<Recovered>)> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| parse_segment_name(entry.file_name().to_str()?))
            .collect();
        ids.sort_unstable();
        let mut log = Self {
            dir: dir.to_owned(),
            segment_bytes,
            segments: BTreeMap::new(),
            active: None,
            next_id: ids.last().map_or(1, |last| last + 1),
            total_bytes: 0,
        };
        let mut recovered = Vec::new();
        for id in ids {
            let path = segment_path(dir, id);
            let found = scan_segment(&path, id)?;
            let len = std::fs::metadata(&path)?.len();
            if found.is_empty() {
                std::fs::remove_file(&path)?;
                continue;
            }
            log.segments.insert(
                id,
                SegmentInfo {
                    len,
                    live: found.len() as u64,
                },
            );
            log.total_bytes += len;
            recovered.extend(found);
        }
        Ok((log, recovered))
    }

    /// Appends a record; returns where its payload is.
    pub fn append(&mut self, key_a: u32, key_b: u64, payload: &[u8]) -> io::Result<RecordRef> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| *len <= MAX_PAYLOAD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        let needs_roll = match &self.active {
            None => true,
            Some(active) => self
                .segments
                .get(&active.id)
                .is_none_or(|info| info.len >= self.segment_bytes),
        };
        if needs_roll {
            self.roll()?;
        }
        let Some(active) = self.active.as_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        let Some(info) = self.segments.get_mut(&active.id) else {
            return Err(io::Error::other("active segment not tracked"));
        };
        let mut header = [0u8; HEADER_LEN as usize];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&key_a.to_le_bytes());
        header[8..16].copy_from_slice(&key_b.to_le_bytes());
        header[16..20].copy_from_slice(&len.to_le_bytes());
        header[20..28].copy_from_slice(&xxh3_64(payload).to_le_bytes());
        let offset = info.len;
        let write = active
            .file
            .write_all(&header)
            .and_then(|()| active.file.write_all(payload));
        if let Err(err) = write {
            // Leave no half record behind the good ones.
            let _ = active.file.set_len(offset);
            let _ = active.file.seek(SeekFrom::Start(offset));
            return Err(err);
        }
        let written = HEADER_LEN + u64::from(len);
        info.len += written;
        info.live += 1;
        self.total_bytes += written;
        Ok(RecordRef {
            segment: active.id,
            offset,
            len,
        })
    }

    /// Closes the active segment (if any) and starts a new one with the next append.
    pub fn roll(&mut self) -> io::Result<()> {
        if let Some(old) = self.active.take() {
            drop(old.file);
            self.delete_if_dead(old.id);
        }
        let id = self.next_id;
        self.next_id += 1;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, id))?;
        self.segments.insert(id, SegmentInfo { len: 0, live: 0 });
        self.active = Some(Active { id, file });
        Ok(())
    }

    /// Reads a record's payload and checks it.
    pub fn read(&self, at: &RecordRef) -> io::Result<Vec<u8>> {
        let mut file = File::open(segment_path(&self.dir, at.segment))?;
        file.seek(SeekFrom::Start(at.offset))?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut header)?;
        let (_, _, len, checksum) = parse_header(&header)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad record header"))?;
        if len != at.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record length changed",
            ));
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact(&mut payload)?;
        if xxh3_64(&payload) != checksum {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record checksum mismatch",
            ));
        }
        Ok(payload)
    }

    /// Marks a record as no longer needed; deletes its segment once nothing in it is live.
    pub fn release(&mut self, at: &RecordRef) {
        if let Some(info) = self.segments.get_mut(&at.segment) {
            info.live = info.live.saturating_sub(1);
        }
        self.delete_if_dead(at.segment);
    }

    fn delete_if_dead(&mut self, id: u64) {
        if self.active.as_ref().is_some_and(|active| active.id == id) {
            return;
        }
        let dead = self.segments.get(&id).is_some_and(|info| info.live == 0);
        if dead {
            if let Some(info) = self.segments.remove(&id) {
                self.total_bytes = self.total_bytes.saturating_sub(info.len);
            }
            let path = segment_path(&self.dir, id);
            if let Err(err) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %err, "cannot delete spool segment");
            }
        }
    }

    /// Bytes of all segment files (live and released records).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Flushes the active segment to stable storage and closes it (deleting it if nothing in
    /// it is live).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(active) = self.active.take() {
            active.file.sync_all()?;
            drop(active.file);
            self.delete_if_dead(active.id);
        }
        Ok(())
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn parse_header(header: &[u8; HEADER_LEN as usize]) -> Option<(u32, u64, u32, u64)> {
    let word = |range: std::ops::Range<usize>| header.get(range);
    let magic = u32::from_le_bytes(word(0..4)?.try_into().ok()?);
    if magic != MAGIC {
        return None;
    }
    let key_a = u32::from_le_bytes(word(4..8)?.try_into().ok()?);
    let key_b = u64::from_le_bytes(word(8..16)?.try_into().ok()?);
    let len = u32::from_le_bytes(word(16..20)?.try_into().ok()?);
    let checksum = u64::from_le_bytes(word(20..28)?.try_into().ok()?);
    (len <= MAX_PAYLOAD).then_some((key_a, key_b, len, checksum))
}

fn scan_segment(path: &Path, id: u64) -> io::Result<Vec<Recovered>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut offset = 0u64;
    let mut found = Vec::new();
    let mut payload = Vec::new();
    while offset < file_len {
        let mut header = [0u8; HEADER_LEN as usize];
        if reader.read_exact(&mut header).is_err() {
            tracing::warn!(path = %path.display(), offset, "torn record header at the end of a spool segment; ignoring the rest");
            break;
        }
        let Some((key_a, key_b, len, checksum)) = parse_header(&header) else {
            tracing::warn!(path = %path.display(), offset, "corrupt record header in a spool segment; ignoring the rest");
            break;
        };
        payload.resize(len as usize, 0);
        if reader.read_exact(&mut payload).is_err() || xxh3_64(&payload) != checksum {
            tracing::warn!(path = %path.display(), offset, "torn or corrupt record in a spool segment; ignoring the rest");
            break;
        }
        found.push(Recovered {
            key_a,
            key_b,
            at: RecordRef {
                segment: id,
                offset,
                len,
            },
        });
        offset += HEADER_LEN + u64::from(len);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_released_segments_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, found) = SegmentLog::open(dir.path(), 1024 * 1024).expect("open");
        assert!(found.is_empty());
        let a = log.append(1, 10, b"first").expect("append");
        let b = log.append(2, 20, &vec![7u8; 5000]).expect("append");
        assert_eq!(log.read(&a).expect("read"), b"first");
        assert_eq!(log.total_bytes(), 2 * HEADER_LEN + 5 + 5000);
        log.sync().expect("sync");
        drop(log);

        let (mut log, found) = SegmentLog::open(dir.path(), 1024 * 1024).expect("reopen");
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].key_a, found[0].key_b), (1, 10));
        assert_eq!((found[1].key_a, found[1].key_b), (2, 20));
        assert_eq!(log.read(&found[1].at).expect("read"), vec![7u8; 5000]);
        let c = log.append(3, 30, b"third").expect("append");
        assert_ne!(
            c.segment, found[0].at.segment,
            "appends go to a new segment"
        );
        log.release(&found[0].at);
        log.release(&found[1].at);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "the fully released segment is deleted"
        );
        assert_eq!(log.read(&c).expect("read"), b"third");
        let _ = (a, b);
    }

    #[test]
    fn a_torn_tail_keeps_the_records_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = SegmentLog::open(dir.path(), 1024 * 1024).expect("open");
        let a = log.append(0, 1, b"kept").expect("append");
        log.append(0, 2, b"torn record").expect("append");
        log.sync().expect("sync");
        let path = segment_path(dir.path(), a.segment);
        let len = std::fs::metadata(&path).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len - 3)
            .expect("truncate");
        let (_, found) = SegmentLog::open(dir.path(), 1024 * 1024).expect("reopen");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key_b, 1);
    }

    #[test]
    fn segments_roll_at_their_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = SegmentLog::open(dir.path(), 100).expect("open");
        let refs: Vec<RecordRef> = (0..5)
            .map(|i| log.append(0, i, &[1u8; 80]).expect("append"))
            .collect();
        let segments: std::collections::BTreeSet<u64> = refs.iter().map(|r| r.segment).collect();
        assert_eq!(segments.len(), 5);
        for r in &refs {
            log.release(r);
        }
        // Only the active segment remains.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }
}
