//! The ledger as the core changes it: the one validate → execute → commit path, for blocks from
//! consensus and from block sync alike.
//!
//! - A block is executed once: executions of blocks built or validated here are kept by hash
//!   (a few at a time) and reused when the block commits.
//! - Transaction signatures are verified once per node: only those of transactions this node
//!   has not verified yet are checked, in one batch ([`TxCheck`]), before a block executes.
//! - Consensus can run ahead of the ledger (after a restart or a partition): validations and
//!   commits above the next height are held, bounded, and done once block sync fills the gap.
//! - Storage failures are fatal ([`Fatal`]); an invalid block is an answer, not a failure.

use std::collections::{BTreeMap, HashMap};

use cairn_ledger::{
    Block, BlockError, BlockHash, BlockParams, BlockStore, BuiltBlock, CommitCertificate,
    Execution, Height, Ledger, SignedTransaction, Tip, Trust, TxId, TxRejection,
    VerifiedTransaction,
};

use crate::fatal::Fatal;

/// How far ahead of this node's clock a proposed block's timestamp may be.
pub const CLOCK_DRIFT_MAX_MS: u64 = 30_000;
/// Most heights with held validations, and blocks held per height.
const HELD_VALIDATION_HEIGHTS: usize = 64;
const HELD_VALIDATIONS_PER_HEIGHT: usize = 8;
/// Most commits held above the next height.
const HELD_COMMITS: usize = 64;
/// Most executions kept for reuse.
const EXECUTIONS_KEPT: usize = 16;

/// Verifies, in one batch, the signatures of a block's transactions this node has not
/// verified before, and remembers them.
pub trait TxCheck {
    /// `Err` names the first transaction whose signature (or stateless rules) fail.
    fn check_block_txs(&mut self, txs: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)>;
}

/// Raft's check of the blocks its consensus commits: none. The leader built them from
/// transactions it verified, and under Raft's crash-fault model a leader is honest; the
/// certificate the leader signs vouches for the block. (Block sync never uses this: blocks
/// from a sync peer are checked in full.)
pub struct TrustLeader;

impl TxCheck for TrustLeader {
    fn check_block_txs(&mut self, _: &[SignedTransaction]) -> Result<(), (TxId, TxRejection)> {
        Ok(())
    }
}

/// A block now in the ledger.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: BlockHash,
    /// Its transactions' ids, in order.
    pub ids: Vec<TxId>,
}

/// The answer to "is this the block at its height?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// Yes.
    Valid,
    /// No, and why.
    Invalid(String),
    /// Above the next height: held until the ledger gets there.
    Later,
}

/// What a commit from consensus did.
#[derive(Debug)]
pub enum CommitOutcome {
    /// Applied, with any held commits it unblocked, in height order.
    Applied(Vec<Committed>),
    /// Above the next height (this one): held until block sync fills the gap.
    Held(Height),
    /// At or below the tip: the ledger has it already.
    AlreadyHeld,
}

/// The ledger and the bookkeeping around changing it.
pub struct Chain<S: BlockStore> {
    ledger: Ledger<S>,
    executions: HashMap<BlockHash, Execution>,
    held_validations: BTreeMap<Height, Vec<Block>>,
    held_commits: BTreeMap<Height, (Block, CommitCertificate)>,
}

/// Splits a block error into "the block is invalid" and "the store failed".
fn split(e: BlockError) -> Result<String, Fatal> {
    match e {
        BlockError::Store(source) => Err(Fatal::Read { source }),
        other => Ok(other.to_string()),
    }
}

impl<S: BlockStore> Chain<S> {
    /// Wraps an opened ledger.
    pub fn new(ledger: Ledger<S>) -> Chain<S> {
        Chain {
            ledger,
            executions: HashMap::new(),
            held_validations: BTreeMap::new(),
            held_commits: BTreeMap::new(),
        }
    }

    /// The ledger, for reads.
    pub fn ledger(&self) -> &Ledger<S> {
        &self.ledger
    }

    /// The newest committed block.
    pub fn tip(&self) -> Tip {
        self.ledger.tip()
    }

    /// The store, for the consensus engine's writes.
    pub fn store_mut(&mut self) -> &mut S {
        self.ledger.store_mut()
    }

    /// The hash of the block at `height` (the genesis hash at 0), if the ledger holds it.
    pub fn hash_at(&self, height: Height) -> Result<Option<BlockHash>, Fatal> {
        if height == 0 {
            return Ok(Some(self.ledger.genesis_hash()));
        }
        Ok(self.ledger.store().header(height)?.map(|h| h.hash()))
    }

    fn keep_execution(&mut self, exec: Execution) {
        if self.executions.len() >= EXECUTIONS_KEPT {
            self.executions.clear();
        }
        self.executions.insert(exec.block_hash(), exec);
    }

    /// Executes the next block, verifying first the signatures not verified here yet.
    fn execute(
        &self,
        block: &Block,
        txs: &mut impl TxCheck,
    ) -> Result<Result<Execution, String>, Fatal> {
        if let Err((id, why)) = txs.check_block_txs(&block.txs) {
            return Ok(Err(format!("transaction {id}: {why}")));
        }
        match self.ledger.execute_block(block, Trust::PreVerified) {
            Ok(e) => Ok(Ok(e)),
            Err(e) => split(e).map(Err),
        }
    }

    /// Checks a proposed block: at a held height it must be the block held; at the next it
    /// must come from a validator, carry a sane time and execute. Above the next height it is
    /// held (bounded: a faulty proposer cannot grow this).
    pub fn validate(
        &mut self,
        block: Block,
        now_ms: u64,
        txs: &mut impl TxCheck,
    ) -> Result<Validation, Fatal> {
        let tip = self.tip();
        let h = block.header.height;
        if h == 0 {
            return Ok(Validation::Invalid("height 0 is the genesis".into()));
        }
        if h <= tip.height {
            let held = self.hash_at(h)?;
            return Ok(if held == Some(block.hash()) {
                Validation::Valid
            } else {
                Validation::Invalid(format!("the ledger holds another block at {h}"))
            });
        }
        if h > tip.height + 1 {
            if self.held_validations.len() < HELD_VALIDATION_HEIGHTS
                || self.held_validations.contains_key(&h)
            {
                let v = self.held_validations.entry(h).or_default();
                if v.len() < HELD_VALIDATIONS_PER_HEIGHT {
                    v.push(block);
                }
            }
            return Ok(Validation::Later);
        }
        // Proposed by a validator (not necessarily the current primary: a new PBFT view
        // re-proposes blocks prepared in an earlier one, unchanged), with a sane clock.
        if !self.ledger.validators().contains(&block.header.proposer) {
            return Ok(Validation::Invalid("proposer is not a validator".into()));
        }
        if block.header.timestamp_ms > now_ms.saturating_add(CLOCK_DRIFT_MAX_MS) {
            return Ok(Validation::Invalid("timestamped in the future".into()));
        }
        Ok(match self.execute(&block, txs)? {
            Ok(exec) => {
                self.keep_execution(exec);
                Validation::Valid
            }
            Err(why) => Validation::Invalid(why),
        })
    }

    /// Held validations the ledger has caught up with, to validate now.
    pub fn take_ready_validations(&mut self) -> Vec<Block> {
        let next = self.tip().height + 1;
        let later = self.held_validations.split_off(&(next + 1));
        let ready = std::mem::replace(&mut self.held_validations, later);
        ready.into_values().flatten().collect()
    }

    /// Applies a block consensus committed. A block that does not execute here is fatal: the
    /// validators agreed on it, so this node's state is the one that is wrong.
    pub fn commit(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        txs: &mut impl TxCheck,
    ) -> Result<CommitOutcome, Fatal> {
        let tip = self.tip().height;
        let h = block.header.height;
        if h <= tip {
            let held = self.hash_at(h)?;
            if held != Some(block.hash()) {
                // Consensus and the ledger disagree on a committed block: a safety failure or
                // a bug. Going on would build on one of them and contradict the other.
                return Err(Fatal::Fork {
                    height: h,
                    committed: block.hash(),
                    held,
                });
            }
            return Ok(CommitOutcome::AlreadyHeld);
        }
        if h > tip + 1 {
            if self.held_commits.len() < HELD_COMMITS || self.held_commits.contains_key(&h) {
                self.held_commits.insert(h, (block, cert));
            }
            return Ok(CommitOutcome::Held(h));
        }
        let mut done = vec![self.apply(block, cert, txs)?];
        done.extend(self.apply_held(txs)?);
        Ok(CommitOutcome::Applied(done))
    }

    /// Applies held commits that now extend the tip.
    pub fn apply_held(&mut self, txs: &mut impl TxCheck) -> Result<Vec<Committed>, Fatal> {
        let mut done = Vec::new();
        loop {
            let next = self.tip().height + 1;
            self.held_commits = self.held_commits.split_off(&next);
            let Some((block, cert)) = self.held_commits.remove(&next) else {
                return Ok(done);
            };
            done.push(self.apply(block, cert, txs)?);
        }
    }

    /// Executes (or reuses the execution of) the next block and writes it.
    fn apply(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        txs: &mut impl TxCheck,
    ) -> Result<Committed, Fatal> {
        let h = block.header.height;
        let hash = block.hash();
        let exec = match self.executions.remove(&hash) {
            Some(e) => e,
            None => {
                // Signatures of transactions this node never saw are checked too.
                if let Err((id, reason)) = txs.check_block_txs(&block.txs) {
                    let index = block.txs.iter().position(|t| t.id() == id).unwrap_or(0);
                    let source = BlockError::InvalidTx { index, id, reason };
                    return Err(Fatal::Diverged { height: h, source });
                }
                match self.ledger.execute_block(&block, Trust::PreVerified) {
                    Ok(e) => e,
                    Err(BlockError::Store(source)) => return Err(Fatal::Read { source }),
                    Err(source) => return Err(Fatal::Diverged { height: h, source }),
                }
            }
        };
        self.executions.clear();
        let ids = exec.tx_ids().to_vec();
        match self.ledger.commit(block.clone(), cert, exec) {
            Ok(_) => Ok(Committed { block, hash, ids }),
            Err(BlockError::Store(source)) => Err(Fatal::Commit { height: h, source }),
            Err(source) => Err(Fatal::Diverged { height: h, source }),
        }
    }

    /// Applies a block fetched by block sync: it must carry a certificate valid against the
    /// genesis validators, extend the tip, and carry valid signatures. `Ok(Err)` blames the
    /// peer that sent it; a certified, well-signed block that does not execute here is fatal,
    /// as for consensus commits.
    pub fn apply_synced(
        &mut self,
        block: Block,
        cert: CommitCertificate,
        txs: &mut impl TxCheck,
    ) -> Result<Result<Committed, String>, Fatal> {
        let tip = self.tip();
        if block.header.height != tip.height + 1 || block.header.prev_hash != tip.hash {
            return Ok(Err(format!(
                "block {} does not extend the tip {}",
                block.header.height, tip.height
            )));
        }
        if let Err(e) = self.ledger.verify_certificate(&block, &cert) {
            return Ok(Err(format!("bad certificate: {e}")));
        }
        // The certificate covers the block hash, which covers transaction ids, not their
        // signatures: a peer could send the certified block with a signature altered. Those
        // not verified here are checked now, and a bad one is the peer's fault.
        if let Err((id, why)) = txs.check_block_txs(&block.txs) {
            return Ok(Err(format!("transaction {id}: {why}")));
        }
        let committed = self.apply(block, cert, txs)?;
        Ok(Ok(committed))
    }

    /// Builds the next block from `candidates`, keeping its execution for the commit.
    pub fn build(
        &mut self,
        candidates: &[VerifiedTransaction],
        params: BlockParams,
    ) -> Result<BuiltBlock, Fatal> {
        let built = self.ledger.build_block(candidates, params)?;
        self.keep_execution(built.execution.clone());
        Ok(built)
    }

    /// Tries one transaction against the committed state, as if it were the next block's only
    /// one: `Some(reason)` if it would not execute.
    pub fn dry_run(&self, tx: &VerifiedTransaction) -> Result<Option<TxRejection>, Fatal> {
        Ok(self.ledger.dry_run(tx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::testkit::TestChain;
    use cairn_ledger::{ConsensusKind, MemoryStore};

    /// Verifies every transaction it is shown and counts them.
    #[derive(Default)]
    struct CountingCheck {
        verified: usize,
    }

    impl TxCheck for CountingCheck {
        fn check_block_txs(
            &mut self,
            txs: &[SignedTransaction],
        ) -> Result<(), (TxId, TxRejection)> {
            for t in txs {
                t.verify_signature()
                    .map_err(|_| (t.id(), TxRejection::BadSignature))?;
                self.verified += 1;
            }
            Ok(())
        }
    }

    fn setup() -> (TestChain, Chain<MemoryStore>, Chain<MemoryStore>) {
        let c = TestChain::new(ConsensusKind::Pbft, 4, 3, 1_000);
        let a = Chain::new(Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("a"));
        let b = Chain::new(Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("b"));
        (c, a, b)
    }

    fn next(c: &TestChain, chain: &mut Chain<MemoryStore>, nonce: u64) -> Block {
        let tx = c.transfer(&c.accounts[1], nonce, c.accounts[2].public_key(), 1);
        let h = chain.tip().height + 1;
        chain
            .build(&[VerifiedTransaction::trusted(tx)], c.params(h))
            .expect("build")
            .block
    }

    #[test]
    fn a_validated_block_executes_once_and_commits() {
        let (c, mut a, mut b) = setup();
        let block = next(&c, &mut a, 0);
        let mut check = CountingCheck::default();
        assert_eq!(
            b.validate(block.clone(), u64::MAX / 2, &mut check)
                .expect("io"),
            Validation::Valid
        );
        let cert = c.certify(&block);
        match b.commit(block.clone(), cert, &mut check).expect("io") {
            CommitOutcome::Applied(done) => {
                assert_eq!(done.len(), 1);
                assert_eq!(done[0].hash, block.hash());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            check.verified, 1,
            "verified at validation, not again at commit"
        );
        // The same block again is already held; another block at that height is invalid.
        assert!(matches!(
            b.commit(block.clone(), c.certify(&block), &mut check)
                .expect("io"),
            CommitOutcome::AlreadyHeld
        ));
        let mut other = block.clone();
        other.header.timestamp_ms += 1;
        assert!(matches!(
            b.validate(other, u64::MAX / 2, &mut check).expect("io"),
            Validation::Invalid(_)
        ));
    }

    #[test]
    fn blocks_ahead_of_the_ledger_are_held_then_applied_in_order() {
        let (c, mut a, mut b) = setup();
        let mut check = CountingCheck::default();
        let mut blocks = Vec::new();
        for n in 0..3 {
            let block = next(&c, &mut a, n);
            let cert = c.certify(&block);
            a.commit(block.clone(), cert.clone(), &mut check)
                .expect("io");
            blocks.push((block, cert));
        }
        // Validation of 3 and commit of 3 arrive before the ledger has 1 and 2.
        assert_eq!(
            b.validate(blocks[2].0.clone(), u64::MAX / 2, &mut check)
                .expect("io"),
            Validation::Later
        );
        assert!(matches!(
            b.commit(blocks[2].0.clone(), blocks[2].1.clone(), &mut check)
                .expect("io"),
            CommitOutcome::Held(3)
        ));
        // Block sync brings 1; a wrong certificate is the peer's fault; then 2 unblocks 3.
        let (b1, c1) = blocks[0].clone();
        let mut forged = c1.clone();
        if let CommitCertificate::Pbft(p) = &mut forged {
            p.votes.truncate(1);
        }
        assert!(
            b.apply_synced(b1.clone(), forged, &mut check)
                .expect("io")
                .is_err()
        );
        b.apply_synced(b1, c1, &mut check).expect("io").expect("ok");
        assert!(b.take_ready_validations().is_empty(), "3 is not next yet");
        let (b2, c2) = blocks[1].clone();
        b.apply_synced(b2, c2, &mut check).expect("io").expect("ok");
        assert_eq!(b.take_ready_validations().len(), 1, "3 is next now");
        let done = b.apply_held(&mut check).expect("io");
        assert_eq!(done.len(), 1);
        assert_eq!(b.tip().height, 3);
        assert_eq!(b.tip().hash, a.tip().hash);
    }

    #[test]
    fn a_synced_block_with_an_altered_signature_blames_the_peer() {
        let (c, mut a, mut b) = setup();
        let mut check = CountingCheck::default();
        let block = next(&c, &mut a, 0);
        let cert = c.certify(&block);
        let mut altered = block.clone();
        altered.txs[0].signature.0[63] ^= 0x40;
        assert_eq!(
            altered.hash(),
            block.hash(),
            "the hash does not cover signatures"
        );
        assert!(
            b.apply_synced(altered, cert.clone(), &mut check)
                .expect("not fatal")
                .is_err()
        );
        assert_eq!(b.tip().height, 0);
        b.apply_synced(block, cert, &mut check)
            .expect("io")
            .expect("the real one applies");
        // Consensus committing another block at a height the ledger holds is fatal.
        let mut other = next(&c, &mut a, 1);
        other.header.height = 1;
        let cert = c.certify(&other);
        assert!(matches!(
            b.commit(other, cert, &mut check),
            Err(Fatal::Fork { height: 1, .. })
        ));
    }

    #[test]
    fn a_committed_block_that_does_not_execute_is_fatal() {
        let (c, mut a, mut b) = setup();
        let mut check = CountingCheck::default();
        let block = next(&c, &mut a, 0);
        let mut bad = block.clone();
        bad.header.state_root = cairn_crypto::Hash::ZERO;
        let cert = c.certify(&bad);
        assert!(matches!(
            b.commit(bad, cert, &mut check),
            Err(Fatal::Diverged { height: 1, .. })
        ));
        assert_eq!(b.tip().height, 0);
    }
}
