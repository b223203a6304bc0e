//! Copies of a store: a consistent checkpoint of a running store (online backups), and a
//! secondary open that reads a store another process may be writing (exports).

use std::path::Path;
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{DB, Options};

use super::{COLUMN_FAMILIES, RocksReader, engine};
use crate::store::StoreError;

impl RocksReader {
    /// Writes a consistent copy of the whole store to `dir`, which must not exist yet (a
    /// RocksDB checkpoint: hard links to the immutable table files where `dir` is on the same
    /// filesystem, copies elsewhere). Every block commit is one atomic batch, so the copy ends
    /// at a block boundary: a tip and the state, indexes and consensus state written with it.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        if dir.exists() {
            return Err(StoreError::Engine(format!(
                "{} already exists: a backup goes to a new directory",
                dir.display()
            )));
        }
        Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(engine)
    }

    /// Opens the store at `path` to read it while another process (a running node) may be
    /// writing it: a RocksDB secondary instance, which keeps its own logs in `scratch` and sees
    /// the store as it was when opened.
    pub fn open_secondary(path: &Path, scratch: &Path) -> Result<RocksReader, StoreError> {
        if !path.join("CURRENT").exists() {
            return Err(StoreError::Engine(format!(
                "{} holds no store",
                path.display()
            )));
        }
        let mut opts = Options::default();
        // A secondary instance must keep every table file open (RocksDB's rule for them).
        opts.set_max_open_files(-1);
        let db = DB::open_cf_as_secondary(&opts, path, scratch, COLUMN_FAMILIES).map_err(engine)?;
        db.try_catch_up_with_primary().map_err(engine)?;
        Ok(RocksReader { db: Arc::new(db) })
    }
}
