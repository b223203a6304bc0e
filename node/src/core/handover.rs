//! The core's side of a validator-set change: starting the instance of the set in force
//! when the ledger moves to a new set, and routing consensus messages by instance
//! (ARCHITECTURE.md, "Reconfiguration"; the state it resets is in [`super::epoch`]).

use std::time::Instant;

use cairn_consensus::{Input, NodeId};
use cairn_crypto::PublicKey;

use super::{Core, Driver, epoch};
use crate::engines::NodeEngine;
use crate::fatal::Fatal;
use crate::wire;

impl<P: NodeEngine> Core<P> {
    /// Starts the instance of the set in force if the ledger has moved to a new set (a block
    /// committed by consensus or sync announced it), and keeps the allow-list, the mempool's
    /// voters and the health's names in step with the set.
    pub(super) fn follow_the_set(&mut self) -> Result<(), Fatal> {
        if self.work.membership_changed {
            self.work.membership_changed = false;
            self.work.refresh_membership()?;
        }
        if !self.work.instance_over() {
            return Ok(());
        }
        let ledger = self.work.chain.ledger();
        let set = ledger.validators_in_force().clone();
        let genesis = ledger.genesis().clone();
        let since = set.since();
        let durable = epoch::reset::<P>(self.work.chain.store_mut(), since)
            .map_err(|source| Fatal::Persist { source })?;
        let engine = epoch::engine::<P>(
            &genesis,
            &set,
            &self.key,
            &durable,
            since,
            &self.work.cfg.consensus,
        );
        let member = engine.is_some();
        self.driver = engine.map(Driver::new);
        let w = &mut self.work;
        w.epoch = since;
        w.validators = set.list().iter().map(|v| v.public_key).collect();
        w.validator_list = set.list().into();
        w.admission.set_validators(&w.validators);
        w.health.set_validators(
            set.list().iter().map(|v| v.name.clone()).collect(),
            set.set().quorum(genesis.consensus.kind()),
        );
        w.chain.drop_ahead_from(since + 1);
        w.proposer.forget();
        w.refresh_membership()?;
        tracing::info!(
            height = since,
            validators = %set.list().iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(","),
            role = if member { "validator" } else { "observer" },
            "the validator set changed: a new consensus instance orders the heights above"
        );
        self.catch_up = member;
        self.catch_up_engine()
    }

    /// A fresh instance starts at its set's first height; the blocks the ledger holds above
    /// it (synced past the boundary) are news to it.
    pub(super) fn catch_up_engine(&mut self) -> Result<(), Fatal> {
        if !std::mem::take(&mut self.catch_up) {
            return Ok(());
        }
        let tip = self.work.chain.tip();
        if tip.height > self.work.epoch {
            self.run_engine(Input::Synced {
                height: tip.height,
                tip: tip.hash,
            })?;
        }
        Ok(())
    }

    /// Whether a consensus message of instance `epoch` from `from` is for this node's
    /// instance. One of a later instance means this node is behind: it syncs to that
    /// instance's start (and hands over on the way). One of an earlier instance means the
    /// sender is behind; it learns so from the tip announcements and syncs.
    pub(super) fn of_this_instance(
        &mut self,
        from: PublicKey,
        epoch: cairn_ledger::Height,
    ) -> bool {
        let mine = self.work.epoch;
        // Only a validator of this set or the next one is taken at its word (an observer's
        // claim sends this node after nothing).
        let w = &self.work;
        if epoch > mine && (w.validators.contains(&from) || w.pending_keys.contains(&from)) {
            let (tip, now) = (self.work.chain.tip().height, self.work.clock.at);
            self.work.sync.note_height(epoch, Some(from), tip, now);
            self.work.request_sync();
        }
        epoch == mine
    }

    /// A whole consensus message: to the engine if it is of this node's instance and from a
    /// validator of its set.
    pub(super) fn on_engine_message(
        &mut self,
        from: PublicKey,
        m: wire::EngineMessage,
        now: Instant,
    ) -> Result<(), Fatal> {
        if !self.of_this_instance(from, m.epoch) {
            return Ok(());
        }
        let Some(idx) = self.work.validators.iter().position(|k| *k == from) else {
            // Observers have no say in consensus.
            return Ok(());
        };
        let Some(msg) = P::unwrap(m.body) else {
            self.work.metrics.bad_messages.inc();
            return Ok(());
        };
        if let Some(round) = P::round_of(&msg) {
            self.work.health.saw_round(idx, round, now);
        }
        self.step(Input::Message {
            from: NodeId(idx as u32),
            msg,
        })
    }
}
