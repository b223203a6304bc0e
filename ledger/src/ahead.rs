//! The state as it will be once blocks not committed yet are: a pipelining proposer builds
//! block h+1 while block h is still being agreed on, and a replica executes h+1 on top of its
//! execution of h. Their changes stay in memory ([`Execution`]) until each block commits;
//! reads look through them, newest first, then at the store.

use cairn_crypto::{PublicKey, codec};

use crate::ledger::Execution;
use crate::state::{Account, StateKey, StateView};
use crate::store::StoreError;

/// The committed state with the changes of blocks ahead of the tip laid over it.
#[derive(Debug, Clone)]
pub struct AheadView<'a, V> {
    base: &'a V,
    /// Executions of the blocks after the tip, oldest first.
    ahead: Vec<&'a Execution>,
}

impl<'a, V: StateView> AheadView<'a, V> {
    /// `base` with the changes of `ahead` (oldest first) on top.
    pub fn new(base: &'a V, ahead: &[&'a Execution]) -> Self {
        AheadView {
            base,
            ahead: ahead.to_vec(),
        }
    }

    /// The newest value a block ahead wrote under `key`: `Some(None)` if it deleted it, `None`
    /// if no block ahead touched it.
    fn written(&self, key: &[u8]) -> Option<Option<&'a Vec<u8>>> {
        self.ahead
            .iter()
            .rev()
            .find_map(|e| e.writes().get(key).map(Option::as_ref))
    }
}

impl<V: StateView> StateView for AheadView<'_, V> {
    fn account(&self, id: &PublicKey) -> Result<Option<Account>, StoreError> {
        if self.ahead.is_empty() {
            return self.base.account(id);
        }
        match self.written(&StateKey::Account(*id).to_bytes()) {
            Some(Some(bytes)) => Ok(Some(codec::decode(bytes)?)),
            Some(None) => Ok(None),
            None => self.base.account(id),
        }
    }

    fn record(&self, owner: &PublicKey, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.ahead.is_empty() {
            return self.base.record(owner, key);
        }
        match self.written(&StateKey::Record(*owner, key.to_string()).to_bytes()) {
            Some(value) => Ok(value.cloned()),
            None => self.base.record(owner, key),
        }
    }

    fn entry(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self.written(&key.to_bytes()) {
            Some(value) => Ok(value.cloned()),
            None => self.base.entry(key),
        }
    }
}
