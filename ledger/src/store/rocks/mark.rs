//! The write mark: how a store notices that its write-ahead log lost acknowledged writes.
//!
//! RocksDB recovers a store by replaying its write-ahead log, and a log that was truncated, or
//! damaged in its last records, replays to an earlier point without an error: the store opens
//! lower than what it had acknowledged. To notice, the store records the sequence number of
//! every synced write in a small file beside the database (`CAIRN-WRITE-MARK`), and refuses to
//! open when the database recovers to a lower sequence number than the mark says.
//!
//! The mark is written in place after each synced write, without a sync of its own: a process
//! crash keeps it (the OS has the page), so a stopped node's damaged log is always caught. A
//! power loss can leave the mark older than the database, never newer (it is written only
//! after the database's sync returned), so the check never refuses a healthy store; it may
//! then miss a loss of the last writes before the power failed. A clean close syncs it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cairn_crypto::Hash;

use crate::block::Height;
use crate::store::StoreError;

/// The mark file's name inside the store's directory.
pub const MARK_FILE: &str = "CAIRN-WRITE-MARK";
const MAGIC: &[u8; 4] = b"CWM1";
const LEN: usize = 4 + 8 + 8 + 8;

/// What the mark says: the last synced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The storage engine's sequence number after the write.
    pub seq: u64,
    /// The tip height after the write.
    pub height: Height,
}

impl Mark {
    fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12..20].copy_from_slice(&self.height.to_le_bytes());
        let check = Hash::sha256(&b[..20]);
        b[20..].copy_from_slice(&check.0[..8]);
        b
    }

    fn decode(b: &[u8]) -> Option<Mark> {
        if b.len() != LEN || &b[..4] != MAGIC || Hash::sha256(&b[..20]).0[..8] != b[20..] {
            return None;
        }
        let word = |r: std::ops::Range<usize>| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[r]);
            u64::from_le_bytes(w)
        };
        Some(Mark {
            seq: word(4..12),
            height: word(12..20),
        })
    }
}

/// The open mark file.
#[derive(Debug)]
pub struct WriteMark {
    file: File,
    path: PathBuf,
}

/// What was found in the mark file when the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No mark yet (a new store).
    None,
    /// A readable mark.
    Mark(Mark),
    /// A mark that does not check out (torn by a power loss, or damaged): nothing to compare.
    Unreadable,
}

impl WriteMark {
    /// Opens (creating if needed) the mark in `dir` and reads what it says.
    pub fn open(dir: &Path) -> Result<(WriteMark, Found), StoreError> {
        let path = dir.join(MARK_FILE);
        let io = |e: std::io::Error| StoreError::Engine(format!("{}: {e}", path.display()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut buf).map_err(io)?;
        let found = if buf.is_empty() {
            Found::None
        } else {
            Mark::decode(&buf).map_or(Found::Unreadable, Found::Mark)
        };
        Ok((WriteMark { file, path }, found))
    }

    /// Records a synced write. A failure to record is not an error of the write (which is
    /// durable): the mark just stays older, which the check tolerates.
    pub fn record(&self, mark: Mark) {
        let _ = self.file.write_all_at(&mark.encode(), 0);
    }

    /// Makes the mark durable (on a clean close).
    pub fn sync(&self) {
        let _ = self.file.sync_data();
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_damage_is_noticed() {
        let m = Mark {
            seq: 1234,
            height: 56,
        };
        let b = m.encode();
        assert_eq!(Mark::decode(&b), Some(m));
        for i in 0..LEN {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert_eq!(Mark::decode(&bad), None, "byte {i} flipped");
        }
        assert_eq!(Mark::decode(&b[..LEN - 1]), None, "truncated");
    }

    #[test]
    fn a_mark_file_reads_back_what_was_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, found) = WriteMark::open(dir.path()).expect("open");
        assert_eq!(found, Found::None);
        w.record(Mark { seq: 7, height: 2 });
        w.record(Mark { seq: 9, height: 3 });
        drop(w);
        let (_, found) = WriteMark::open(dir.path()).expect("reopen");
        assert_eq!(found, Found::Mark(Mark { seq: 9, height: 3 }));
        std::fs::write(dir.path().join(MARK_FILE), b"junk").expect("write");
        let (_, found) = WriteMark::open(dir.path()).expect("reopen");
        assert_eq!(found, Found::Unreadable);
    }
}
