//! The simulated application and ledger: building a proposal on a node's tip, answering
//! `Validate`, committing (where the agreement, validity and integrity checkers run), and block
//! sync from a peer, checked as a node checks what it fetches.

use cairn_consensus::DurableState;
use cairn_crypto::Hash;
use cairn_ledger::{Block, BlockHeader, CommitCertificate, Height};

use super::checkers::validity::{self, Tip};
use super::checkers::{integrity, validity::next_block_ok};
use super::{Sim, SimEngine, Violation, write_keys};

impl<E: SimEngine> Sim<E> {
    /// The tip of instance `(i, k)`'s ledger.
    pub(super) fn tip(&self, i: usize, k: usize) -> Tip {
        let chain = &self.nodes[i].instances[k].chain;
        let height = chain.len() as Height;
        match chain.last() {
            Some((b, _)) => Tip {
                hash: b.hash(),
                state_root: b.header.state_root,
                timestamp_ms: b.header.timestamp_ms,
                height,
            },
            None => Tip {
                hash: self.cluster.genesis.hash(),
                state_root: Hash::ZERO,
                timestamp_ms: self.cluster.genesis.genesis_time_ms,
                height,
            },
        }
    }

    /// The tip once the blocks instance `(i, k)` built ahead of its ledger commit.
    fn tip_ahead(&self, i: usize, k: usize) -> Tip {
        match self.nodes[i].instances[k].ahead.last() {
            Some(b) => Tip {
                hash: b.hash(),
                state_root: b.header.state_root,
                timestamp_ms: b.header.timestamp_ms,
                height: b.header.height,
            },
            None => self.tip(i, k),
        }
    }

    /// A block on top of the ledger and the blocks built ahead of it.
    pub(super) fn build_block(&mut self, i: usize, k: usize, round: u64) -> Block {
        let tip = self.tip_ahead(i, k);
        let height = tip.height + 1;
        let (validators_hash, next_validators) = self.cluster.header_sets(height);
        Block {
            header: BlockHeader {
                chain_id: self.cluster.genesis.chain_id.clone(),
                height,
                prev_hash: tip.hash,
                // Distinct proposals at one height differ in their timestamp.
                timestamp_ms: tip.timestamp_ms + 1 + self.rng.range(0, 1000),
                tx_root: Block::tx_root_of(&[]),
                tx_count: 0,
                state_root: validity::next_root(&tip.state_root, height),
                proposer: self.cluster.keys[i].public_key(),
                round,
                validators_hash,
                next_validators,
            },
            txs: Vec::new(),
        }
    }

    /// What a node answers to `Validate`: a block at a height it holds is valid if it is the
    /// block it holds; at the next height, if it is a valid next block; above it, if it is a
    /// valid next block on a block it found valid, which leads down to its ledger through
    /// blocks it found valid (pipelining).
    pub(super) fn valid_at(&self, i: usize, k: usize, b: &Block) -> Result<(), String> {
        let inst = &self.nodes[i].instances[k];
        let chain = &inst.chain;
        let h = b.header.height;
        if h >= 1 && h <= chain.len() as Height {
            return if chain[h as usize - 1].0.hash() == b.hash() {
                Ok(())
            } else {
                Err(format!("another block is committed at {h}"))
            };
        }
        let tip = self.tip(i, k);
        if h == tip.height + 1 {
            return next_block_ok(&self.cluster, &tip, b);
        }
        if self.gated(tip.height, h) {
            return Err(format!(
                "block {h} is above a validator-set change not committed yet"
            ));
        }
        let Some(parent) = inst.validated.get(&b.header.prev_hash) else {
            return Err(format!("block {h} is not on a block found valid"));
        };
        // The parent itself must lead down to the ledger.
        let mut link = parent;
        while link.header.height > tip.height + 1 {
            match inst.validated.get(&link.header.prev_hash) {
                Some(p) => link = p,
                None => return Err(format!("block {h} does not lead down to the ledger")),
            }
        }
        if link.header.prev_hash != tip.hash {
            return Err(format!("block {h} is on a block that lost"));
        }
        let parent_tip = Tip {
            hash: parent.hash(),
            state_root: parent.header.state_root,
            timestamp_ms: parent.header.timestamp_ms,
            height: parent.header.height,
        };
        next_block_ok(&self.cluster, &parent_tip, b)
    }

    /// Keeps a block found valid above the ledger (bounded: a Byzantine primary proposes at
    /// most one block per view and height, and the map is cleared when it grows past that).
    pub(super) fn remember_valid(&mut self, i: usize, k: usize, b: &Block) {
        let inst = &mut self.nodes[i].instances[k];
        if b.header.height <= inst.chain.len() as Height {
            return;
        }
        if inst.validated.len() >= 256 {
            inst.validated.clear();
        }
        inst.validated.insert(b.hash(), b.clone());
    }

    pub(super) fn commit(
        &mut self,
        i: usize,
        k: usize,
        block: Block,
        cert: CommitCertificate,
    ) -> Result<(), Violation> {
        if k == 0 && self.honest(i) {
            let c = &self.cluster;
            let mut checked = validity::check(c, i, &self.tip(i, k), &block);
            if self.cfg.check_certificates {
                checked = checked.and_then(|()| integrity::check(c, i, &block, &cert));
            }
            checked
                .and_then(|()| self.agreement.check(i, block.header.height, block.hash()))
                .map_err(|w| self.violation(w))?;
        }
        let inst = &mut self.nodes[i].instances[k];
        // A block built ahead commits or loses: either way it is not ahead any more, and
        // when another block takes its height, those built on it lose too.
        if inst.ahead.first().is_some_and(|b| b.hash() == block.hash()) {
            inst.ahead.remove(0);
        } else {
            inst.ahead.clear();
        }
        let changes = block.header.next_validators.is_some();
        inst.chain.push((block, cert));
        let height = inst.chain.len() as Height;
        inst.validated.retain(|_, b| b.header.height > height);
        if changes {
            self.hand_over(i, k, height);
        }
        Ok(())
    }

    /// Instance `(i, k)` committed block `base`, after which the validator set changes: its
    /// durable state is reset for the new set, in the same write as a node makes it, and its
    /// engine replaced by one of the new set (none if it is not a member: an observer).
    fn hand_over(&mut self, i: usize, k: usize, base: Height) {
        let epoch = self.cluster.epoch_after(base);
        let seed = self.cfg.seed ^ (base << 24) ^ ((k as u64) << 16) ^ i as u64;
        let config = epoch
            .id_of(i)
            .map(|me| E::config(&self.cluster, &epoch, me, seed, &self.cfg.knobs));
        let key = self.cluster.keys[i].clone();
        let inst = &mut self.nodes[i].instances[k];
        let mut writes = Vec::new();
        inst.model = E::Durable::starting_at(base, &mut writes);
        write_keys(&mut inst.keys, writes);
        inst.generation += 1;
        if k == 0 && self.nodes[i].byzantine.is_none() {
            self.report.handovers += 1;
        }
        let inst = &mut self.nodes[i].instances[k];
        inst.ahead.clear();
        inst.validated.clear();
        inst.engine = match config {
            Some(c) if inst.up => Some(E::restore(c, key, &inst.model, base)),
            _ => None,
        };
    }

    /// An observer copies the blocks the honest node furthest ahead has (checked as a node
    /// checks what it syncs).
    pub(super) fn follow(&mut self, i: usize, k: usize) -> Result<(), Violation> {
        let syncs = self.report.syncs;
        self.sync(i, k, i, Height::MAX)?;
        self.report.syncs = syncs;
        Ok(())
    }

    /// Block sync: copies certified blocks from `peer` (or the honest node furthest ahead)
    /// up to `height`, checking each as a node would.
    pub(super) fn sync(
        &mut self,
        i: usize,
        k: usize,
        peer: usize,
        height: Height,
    ) -> Result<(), Violation> {
        self.report.syncs += 1;
        let source = if peer != i && self.chain_len(peer) >= height {
            peer
        } else {
            match (0..self.nodes.len())
                .filter(|&j| j != i && self.honest(j))
                .max_by_key(|&j| self.chain_len(j))
            {
                Some(j) => j,
                None => return Ok(()),
            }
        };
        let generation = self.nodes[i].instances[k].generation;
        while (self.nodes[i].instances[k].chain.len() as Height) < height {
            let next = self.nodes[i].instances[k].chain.len();
            let Some((b, c)) = self.nodes[source].instances[0].chain.get(next).cloned() else {
                break;
            };
            // A node checks what it fetches: the link to its tip and the certificate.
            let cl = &self.cluster;
            if next_block_ok(cl, &self.tip(i, k), &b).is_err()
                || integrity::certified(cl, &b, &c).is_err()
            {
                break;
            }
            self.commit(i, k, b, c)?;
        }
        // A set change on the way started a new engine at its boundary; the blocks synced
        // after it are news to that engine.
        let inst = &self.nodes[i].instances[k];
        if inst.generation != generation && inst.engine.is_some() {
            let tip = self.tip(i, k);
            if tip.height > self.epoch_of(i, k).base {
                self.input(
                    i,
                    k,
                    cairn_consensus::Input::Synced {
                        height: tip.height,
                        tip: tip.hash,
                    },
                )?;
            }
        }
        Ok(())
    }
}
