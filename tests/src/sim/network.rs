//! The simulated network and the fault schedule: delays, loss, duplication, partitions,
//! replay floods (old messages delivered again at a high rate), crashes and restarts, and the
//! Byzantine proxies that rewrite what their validators send.

use std::collections::VecDeque;

use cairn_ledger::Height;

use super::adversary::Adversary;
use super::{Epoch, Sim, SimEngine};

/// A partition of the validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Partition {
    None,
    /// Two sides that cannot talk.
    Split(u64),
    /// Messages from `a` to `b` are lost; `b` to `a` pass.
    OneWay(usize, usize),
    /// One node cut off.
    Isolate(usize),
    /// Two sides, except `bridge`, which talks to both.
    Bridge(u64, usize),
}

impl Partition {
    fn blocks(&self, from: usize, to: usize) -> bool {
        let side = |mask: u64, i: usize| mask >> i & 1 == 1;
        match *self {
            Partition::None => false,
            Partition::Split(m) => side(m, from) != side(m, to),
            Partition::OneWay(a, b) => from == a && to == b,
            Partition::Isolate(x) => from == x || to == x,
            Partition::Bridge(m, b) => from != b && to != b && side(m, from) != side(m, to),
        }
    }
}

/// A message in flight.
pub(super) struct Envelope<M> {
    pub(super) from: usize,
    pub(super) to: usize,
    /// The sender's validator set (its base height) when it sent it.
    pub(super) epoch: Height,
    pub(super) msg: M,
}

/// Messages kept for replay floods: the most recent this many.
const RECENT: usize = 512;
/// Old messages one replay flood delivers again.
const FLOOD: usize = 300;

/// The network's randomly drawn character for a run.
pub(super) struct Links<M> {
    pub(super) partition: Partition,
    pub(super) drop_p: f64,
    pub(super) dup_p: f64,
    pub(super) max_delay: u64,
    /// Recently sent messages, for replay floods.
    recent: VecDeque<(usize, usize, Height, M)>,
}

impl<M> Links<M> {
    pub(super) fn new(rng: &mut cairn_consensus::DetRng) -> Links<M> {
        Links {
            partition: Partition::None,
            drop_p: rng.range(0, 15) as f64 / 100.0,
            dup_p: rng.range(0, 8) as f64 / 100.0,
            max_delay: rng.range(1, 8),
            recent: VecDeque::new(),
        }
    }
}

impl<E: SimEngine> Sim<E> {
    /// Sends `msg` from `from`, a member of `epoch`, to `to` through the Byzantine proxy (if
    /// `from` is Byzantine) and the faulty network.
    pub(super) fn send(&mut self, from: usize, to: usize, msg: E::Message, epoch: &Epoch) {
        if to >= self.nodes.len() {
            return;
        }
        let Some(b) = self.nodes[from].byzantine else {
            return self.transmit(from, to, epoch.base, msg);
        };
        let Some(me) = epoch.id_of(from) else {
            return;
        };
        let key = self.cluster.keys[from].clone();
        let history = std::mem::take(&mut self.nodes[from].history);
        let context = self.cluster.context(epoch);
        let mut sent = Vec::new();
        let mut adv = Adversary {
            key: &key,
            me,
            chain_id: &self.cluster.genesis.chain_id,
            context: &context,
            rng: &mut self.rng,
            history: &history,
        };
        E::corrupt(&msg, b, &mut adv, to, &mut sent);
        self.nodes[from].history = history;
        if self.nodes[from].history.len() < 256 {
            self.nodes[from].history.push(msg);
        }
        for m in sent {
            self.transmit(from, to, epoch.base, m);
        }
    }

    /// Puts one message of the set above `epoch` on the wire, subject to partitions, loss,
    /// duplication and delay.
    fn transmit(&mut self, from: usize, to: usize, epoch: Height, msg: E::Message) {
        // A vote on the wire counts toward a certificate whether or not it arrives: anyone
        // who sees it may assemble one. Receivers take a vote only from its signer, and a
        // certificate for a height only from members of the set in force there.
        if let Some((height, block, signer)) = E::commit_vote(&msg)
            && self.cluster.epoch_after(epoch).node(signer) == Some(from)
        {
            let members = self.cluster.epoch_at(height).members;
            if members.contains(&from) {
                // 2f+1 of n = 3f+1 (n - f in general).
                let n = members.len();
                let quorum = n - (n - 1) / 3;
                if let Err(w) = self.certified.vote(height, block, from as u32, quorum) {
                    self.broken_certificates.get_or_insert(w);
                }
            }
        }
        if self.faults_on {
            if self.links.partition.blocks(from, to) || self.rng.chance(self.links.drop_p) {
                self.report.dropped += 1;
                return;
            }
            if self.links.recent.len() >= RECENT {
                self.links.recent.pop_front();
            }
            self.links.recent.push_back((from, to, epoch, msg.clone()));
            if self.rng.chance(self.links.dup_p) {
                self.report.duplicated += 1;
                let at = self.now + self.rng.range(1, self.links.max_delay + 1);
                self.enqueue(at, from, to, epoch, msg.clone());
            }
        }
        let delay = if self.faults_on {
            self.rng.range(1, self.links.max_delay + 1)
        } else {
            1
        };
        self.enqueue(self.now + delay, from, to, epoch, msg);
    }

    fn enqueue(&mut self, at: u64, from: usize, to: usize, epoch: Height, msg: E::Message) {
        self.seq += 1;
        self.net.insert(
            (at, self.seq),
            Envelope {
                from,
                to,
                epoch,
                msg,
            },
        );
    }

    /// Delivers [`FLOOD`] recently sent messages again, each to its receiver, over the next
    /// few ticks: stale, duplicate and reordered input at a high rate.
    fn replay_flood(&mut self) {
        if self.links.recent.is_empty() {
            return;
        }
        for _ in 0..FLOOD {
            let i = self.rng.range(0, self.links.recent.len() as u64) as usize;
            let (from, to, epoch, msg) = self.links.recent[i].clone();
            let at = self.now + self.rng.range(1, self.links.max_delay + 1);
            self.enqueue(at, from, to, epoch, msg);
            self.report.replayed += 1;
        }
    }

    /// The fault schedule, once per tick of the fault phase.
    pub(super) fn maybe_fault(&mut self) -> Result<(), super::Violation> {
        if self.cfg.quiet {
            for o in self.cfg.plan.clone() {
                if o.at == self.now {
                    self.crash(o.node);
                } else if o.at + o.ticks == self.now {
                    self.restart(o.node)?;
                }
            }
            return Ok(());
        }
        let n = self.nodes.len();
        // Keep a majority up most of the time, so there is progress to disturb.
        let down = self.nodes.iter().filter(|x| !x.instances[0].up).count();
        if self.rng.chance(0.004) && down < n.div_ceil(2) {
            let i = self.rng.range(0, n as u64) as usize;
            self.crash(i);
        }
        if self.rng.chance(0.01) {
            for i in 0..n {
                if !self.nodes[i].instances[0].up && self.rng.chance(0.5) {
                    self.restart(i)?;
                }
            }
        }
        if self.rng.chance(0.004) {
            self.report.partitions += 1;
            let a = self.rng.range(0, n as u64) as usize;
            let b = (a + 1 + self.rng.range(0, n as u64 - 1) as usize) % n;
            let mask = self.rng.range(1, (1u64 << n) - 1);
            self.links.partition = match self.rng.range(0, 4) {
                0 => Partition::Split(mask),
                1 => Partition::OneWay(a, b),
                2 => Partition::Isolate(a),
                _ => Partition::Bridge(mask, a),
            };
        }
        if self.rng.chance(0.006) {
            self.links.partition = Partition::None;
        }
        if self.cfg.replay_floods && self.rng.chance(0.003) {
            self.replay_flood();
        }
        Ok(())
    }
}
