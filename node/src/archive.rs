//! Block export and import: certified blocks in a file that another node verifies while it
//! applies them (`cairn-node export`, `cairn-node import`).
//!
//! The file is a header, then one record per block in height order:
//!
//! ```text
//! header:  "CAIRNBLK" ‖ u32 version (1) ‖ genesis hash (32 bytes) ‖ u64 first ‖ u64 last
//!          ‖ SHA-256 of the five before
//! record:  u64 height ‖ u32 length ‖ encode((Block, CommitCertificate)) ‖ SHA-256 of the three before
//! ```
//!
//! Integers are little-endian, as in the codec. The checksum names the block a damaged byte
//! is in before anything is decoded; an import also checks every certificate against the
//! validator set in force, and every block's state root by executing it.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use cairn_crypto::{Hash, codec};
use cairn_ledger::{
    Block, BlockError, BlockHash, BlockStore, ChainRead, CommitCertificate, Height, Ledger,
    StoreError, Tip, Trust,
};

const MAGIC: &[u8; 8] = b"CAIRNBLK";
/// The header: magic, version, genesis hash, first and last height, checksum.
const HEADER_BYTES: usize = 8 + 4 + 32 + 8 + 8 + 32;
const VERSION: u32 = 1;
/// The largest record an import reads: a block of the largest size with its certificate.
const RECORD_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Why an export or an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing a file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed (in the message, not a source, so it is said once).
        error: std::io::Error,
    },
    /// Not a block export.
    #[error("{0} is not a Cairn block export (no CAIRNBLK header)")]
    NotAnExport(PathBuf),
    /// The header's checksum does not match.
    #[error("the export's header is damaged (its checksum does not match)")]
    DamagedHeader,
    /// A format this build does not read.
    #[error("the export is format version {0}; this build reads version {VERSION}")]
    Version(u32),
    /// Blocks of another chain.
    #[error("the export holds blocks of the chain with genesis {found}, this home's is {expected}")]
    OtherChain {
        /// The file's genesis hash.
        found: BlockHash,
        /// This home's.
        expected: BlockHash,
    },
    /// A range that the store does not hold.
    #[error("cannot export {from}..={to}: the store's tip is block {tip}")]
    Range {
        /// First asked for.
        from: Height,
        /// Last asked for.
        to: Height,
        /// The store's tip.
        tip: Height,
    },
    /// A block or certificate missing from the store.
    #[error("block {0} or its certificate is missing from the store")]
    Missing(Height),
    /// The file ends before the last block its header announces.
    #[error("the export ends before the end of block {0}: the file is truncated")]
    Truncated(Height),
    /// A record whose checksum does not match: a byte of it changed.
    #[error("the record of block {height} is damaged (its checksum does not match)")]
    Damaged {
        /// The height the record was expected to hold.
        height: Height,
    },
    /// A record that does not decode although its checksum matched.
    #[error("the record of block {height} does not decode: {why}")]
    Decode {
        /// Its height.
        height: Height,
        /// The codec's complaint.
        why: String,
    },
    /// Bytes after the last record the header announces.
    #[error("the export has bytes after its last block {0}")]
    Trailing(Height),
    /// Records out of order.
    #[error("expected block {expected}, the export has block {found} next")]
    Gap {
        /// The next height.
        expected: Height,
        /// What came.
        found: Height,
    },
    /// A block at a height this store already holds, but another one.
    #[error("block {height} in the export is not the block this store holds at that height")]
    Conflict {
        /// The height.
        height: Height,
    },
    /// A block that does not verify or execute.
    #[error("block {height} is refused: {source}")]
    Block {
        /// Its height.
        height: Height,
        /// Why.
        source: BlockError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |error| ArchiveError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// First block.
    pub from: Height,
    /// Last block.
    pub to: Height,
    /// Bytes written.
    pub bytes: u64,
}

fn checksum(height: Height, len: u32, payload: &[u8]) -> Hash {
    Hash::sha256(&[&height.to_le_bytes()[..], &len.to_le_bytes(), payload].concat())
}

/// Writes blocks `from..=to` (`to`: the tip when `None`) with their certificates to `out`:
/// first to a temporary file beside it, synced, then renamed, so `out` is whole or absent.
pub fn export<R: ChainRead>(
    store: &R,
    genesis_hash: BlockHash,
    from: Height,
    to: Option<Height>,
    out: &Path,
) -> Result<Exported, ArchiveError> {
    let tip = store.tip()?.height;
    let to = to.unwrap_or(tip);
    if from == 0 || from > to || to > tip {
        return Err(ArchiveError::Range { from, to, tip });
    }
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    let tmp = PathBuf::from(name);
    let written = write_export(store, genesis_hash, from, to, &tmp);
    match written {
        Ok(bytes) => {
            std::fs::rename(&tmp, out).map_err(io(out))?;
            Ok(Exported { from, to, bytes })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_export<R: ChainRead>(
    store: &R,
    genesis_hash: BlockHash,
    from: Height,
    to: Height,
    tmp: &Path,
) -> Result<u64, ArchiveError> {
    let file = File::create(tmp).map_err(io(tmp))?;
    let mut w = BufWriter::new(file);
    let mut bytes = 0u64;
    let mut put = |w: &mut BufWriter<File>, b: &[u8]| -> Result<(), ArchiveError> {
        bytes += b.len() as u64;
        w.write_all(b).map_err(io(tmp))
    };
    let mut head = Vec::with_capacity(HEADER_BYTES);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&genesis_hash.0.0);
    head.extend_from_slice(&from.to_le_bytes());
    head.extend_from_slice(&to.to_le_bytes());
    let sum = Hash::sha256(&head);
    head.extend_from_slice(&sum.0);
    put(&mut w, &head)?;
    for h in from..=to {
        let (Some(block), Some(cert)) = (store.block(h)?, store.certificate(h)?) else {
            return Err(ArchiveError::Missing(h));
        };
        let payload = codec::encode(&(block, cert));
        let len = u32::try_from(payload.len()).map_err(|_| ArchiveError::Missing(h))?;
        put(&mut w, &h.to_le_bytes())?;
        put(&mut w, &len.to_le_bytes())?;
        put(&mut w, &payload)?;
        put(&mut w, &checksum(h, len, &payload).0)?;
    }
    let file = w.into_inner().map_err(|e| ArchiveError::Io {
        path: tmp.to_path_buf(),
        error: e.into_error(),
    })?;
    file.sync_all().map_err(io(tmp))?;
    Ok(bytes)
}

/// What an import applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Blocks the store already held (the same blocks), skipped.
    pub skipped: u64,
    /// Blocks applied.
    pub applied: u64,
    /// The store's tip after.
    pub tip: Tip,
}

/// Reads the next `n` bytes, or `None` at a clean end of file (no byte of them present).
fn read_exact_or_end(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Applies the blocks of the export `file` to `ledger`, each checked as a block fetched from
/// an untrusted peer is: its certificate against the validator set in force at its height,
/// every transaction's signature, its execution and state root. Blocks the store already
/// holds must be the same blocks and are skipped; the first block after the tip must follow
/// it. Stops at the first block refused; what was applied before it stays (each block is
/// one synced commit). `progress` hears each applied height.
pub fn import<S: BlockStore>(
    ledger: &mut Ledger<S>,
    file: &Path,
    mut progress: impl FnMut(Height),
) -> Result<Imported, ArchiveError> {
    let mut r = BufReader::new(File::open(file).map_err(io(file))?);
    let mut head = [0u8; HEADER_BYTES];
    match read_exact_or_end(&mut r, &mut head) {
        Ok(true) if &head[..8] == MAGIC => {}
        Ok(_) | Err(_) => return Err(ArchiveError::NotAnExport(file.to_path_buf())),
    }
    if head[HEADER_BYTES - 32..] != Hash::sha256(&head[..HEADER_BYTES - 32]).0 {
        return Err(ArchiveError::DamagedHeader);
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION {
        return Err(ArchiveError::Version(version));
    }
    let mut g = [0u8; 32];
    g.copy_from_slice(&head[12..44]);
    let found = BlockHash(Hash(g));
    if found != ledger.genesis_hash() {
        return Err(ArchiveError::OtherChain {
            found,
            expected: ledger.genesis_hash(),
        });
    }
    let (first, last) = (word(44), word(52));
    let (mut skipped, mut applied) = (0, 0);
    for next in first..=last {
        let mut fixed = [0u8; 12];
        match read_exact_or_end(&mut r, &mut fixed) {
            Ok(true) => {}
            Ok(false) => return Err(ArchiveError::Truncated(next)),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(ArchiveError::Truncated(next));
            }
            Err(e) => return Err(io(file)(e)),
        }
        let mut h8 = [0u8; 8];
        h8.copy_from_slice(&fixed[..8]);
        let height = u64::from_le_bytes(h8);
        let len = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        // Neither is checked yet: a damaged record is named by the height it should hold.
        if len > RECORD_BYTES_MAX {
            return Err(ArchiveError::Damaged { height: next });
        }
        let mut payload = vec![0u8; len as usize + 32];
        match read_exact_or_end(&mut r, &mut payload) {
            Ok(true) => {}
            Ok(false) => return Err(ArchiveError::Truncated(next)),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(ArchiveError::Truncated(next));
            }
            Err(e) => return Err(io(file)(e)),
        }
        let sum = payload.split_off(len as usize);
        if sum != checksum(height, len, &payload).0 {
            return Err(ArchiveError::Damaged { height: next });
        }
        if height != next {
            return Err(ArchiveError::Gap {
                expected: next,
                found: height,
            });
        }
        let (block, cert): (Block, CommitCertificate) =
            codec::decode(&payload).map_err(|e| ArchiveError::Decode {
                height,
                why: e.to_string(),
            })?;
        if block.header.height != height {
            return Err(ArchiveError::Decode {
                height,
                why: format!("it holds block {}", block.header.height),
            });
        }
        let tip = ledger.tip().height;
        if height <= tip {
            match ledger.store().height_of(&block.hash())? {
                Some(h) if h == height => skipped += 1,
                _ => return Err(ArchiveError::Conflict { height }),
            }
        } else if height == tip + 1 {
            ledger
                .apply_block(block, cert, Trust::Verify)
                .map_err(|source| ArchiveError::Block { height, source })?;
            applied += 1;
            progress(height);
        } else {
            return Err(ArchiveError::Gap {
                expected: tip + 1,
                found: height,
            });
        }
    }
    let mut extra = [0u8; 1];
    if matches!(read_exact_or_end(&mut r, &mut extra), Ok(true)) {
        return Err(ArchiveError::Trailing(last));
    }
    Ok(Imported {
        skipped,
        applied,
        tip: ledger.tip(),
    })
}

#[cfg(test)]
mod tests;
