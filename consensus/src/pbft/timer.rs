//! Time (Castro & Liskov, OSDI '99, §4.4 and §4.5.2): the request timer that starts a view
//! change when a request waits and the primary makes no progress (doubling with each view
//! change that brings none, and standing still while this replica waits alone for others to
//! join a view change), and the retransmission of what this replica said last, since the
//! network may lose anything.

use super::message::PbftMessage;
use super::{Out, Pbft};
use crate::{Output, Seq};

impl Pbft {
    pub(super) fn on_tick(&mut self, out: &mut Out) {
        if self.restored && !self.my_view_changes.contains_key(&self.view) {
            // Restored into a view it cannot know was installed: say again that it wants this
            // view (a view change is a statement, not a vote, so repeating it is safe); if the
            // view does not install, the timer below moves it on.
            self.send_view_change(out);
        }
        // §4.5.2: in a view change, the timer runs only once 2f+1 replicas have moved to this
        // view or beyond, so one replica alone cannot run ahead through views the others
        // never reach. A restored replica's timer always runs.
        let waiting_alone = !self.active
            && !self.restored
            && self.view_changes.from(self.view).0.len() < self.quorum();
        // Idle: in an installed view, nothing to order and nothing in flight.
        let idle = self.active
            && !self.pending_work
            && !self
                .slots
                .range(self.next_seq()..)
                .any(|(_, s)| s.pre_prepare.is_some());
        if waiting_alone || idle {
            self.timer = 0;
        } else {
            self.timer += 1;
        }
        if self.timer >= self.timeout() {
            self.start_view_change(self.view.next(), out);
        }
        self.retransmit += 1;
        if self.retransmit >= self.cfg.retransmit_ticks.max(1) {
            self.retransmit = 0;
            self.resend(out);
        }
        self.maybe_propose(out);
    }

    /// Re-sends what this replica said about the in-flight slots, its latest checkpoint, and
    /// its view change or new view: the network may have lost them.
    fn resend(&mut self, out: &mut Out) {
        self.relayed.clear();
        if !self.active {
            for vc in self.my_view_changes.values() {
                out.push(Output::Broadcast {
                    msg: PbftMessage::ViewChange(Box::new(vc.clone())),
                });
            }
            return;
        }
        if let Some(nv) = &self.new_view
            && nv.body.view == self.view
            && self.is_primary()
        {
            out.push(Output::Broadcast {
                msg: PbftMessage::NewView(Box::new(nv.clone())),
            });
        }
        let next = self.next_seq();
        let last = Seq(next.0 + self.depth() - 1);
        for slot in self.slots.range(next..=last).map(|(_, s)| s) {
            if self.is_primary()
                && let Some((vote, block)) = &slot.pre_prepare
            {
                out.push(Output::Broadcast {
                    msg: PbftMessage::PrePrepare {
                        vote: vote.clone(),
                        block: cairn_ledger::Block::clone(block),
                    },
                });
            }
            if let Some(p) = &slot.my_prepare {
                out.push(Output::Broadcast {
                    msg: PbftMessage::Prepare(p.clone()),
                });
            }
            if let Some(c) = &slot.my_commit {
                out.push(Output::Broadcast {
                    msg: PbftMessage::Commit(c.clone()),
                });
            }
        }
        if let Some(c) = &self.my_checkpoint {
            out.push(Output::Broadcast {
                msg: PbftMessage::Checkpoint(c.clone()),
            });
        }
    }
}
