//! Block sync bookkeeping: what peers claim to hold, which request is in flight, when to ask
//! again. No IO here: the core sends what [`Sync::next_request`] says and reports back.
//!
//! - Heights are learnt from block announcements (on commit, at most every [`ANNOUNCE_GAP`],
//!   and every [`ANNOUNCE_EVERY`] on an idle chain, so a node that missed the last announcements while
//!   cut off still learns it is behind), from sync answers, and from the engine (`SyncTo`, a
//!   commit above the next height).
//! - A node more than one block behind asks at once. One block behind, consensus usually
//!   brings the block within milliseconds, so it asks only after [`ONE_BEHIND_GRACE`].
//! - One request at a time; one with no answer after [`SYNC_TIMEOUT`] is given up and the next
//!   peer asked. Peers known to be ahead are asked first, rotating on failures. A peer that
//!   claimed a height and shows nothing loses its claim, so a lying member cannot keep a node
//!   "syncing"; claims go with a disconnection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_crypto::PublicKey;
use cairn_ledger::Height;

use crate::wire::{self, SyncRequest};

/// A request with no answer after this long is given up.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node one block behind waits for consensus before it asks a peer.
pub const ONE_BEHIND_GRACE: Duration = Duration::from_secs(1);
/// How often a node announces its tip on an idle chain.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// Announcements of new blocks go out at most this often: on a busy chain one carries the
/// newest of several blocks, and the next tick announces a tip not announced yet.
pub const ANNOUNCE_GAP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
struct Inflight {
    id: u64,
    peer: PublicKey,
    at: Instant,
}

/// What a sync run did, for the log line at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRun {
    /// Height when it started.
    pub from: Height,
    /// When it started.
    pub since: Instant,
}

/// Sync state.
#[derive(Debug)]
pub struct Sync {
    me: PublicKey,
    /// Highest height heard of.
    known: Height,
    /// Peer to ask first (the engine's hint or the announcer).
    hint: Option<PublicKey>,
    inflight: Option<Inflight>,
    /// The engine asked for `SyncTo` and waits for `Synced`.
    engine_waiting: bool,
    heights: HashMap<PublicKey, Height>,
    rotation: usize,
    /// Since when the ledger has been behind `known`.
    behind_since: Option<Instant>,
    run: Option<SyncRun>,
}

impl Sync {
    /// Starting at `tip`.
    pub fn new(me: PublicKey, tip: Height) -> Sync {
        Sync {
            me,
            known: tip,
            hint: None,
            inflight: None,
            engine_waiting: false,
            heights: HashMap::new(),
            rotation: 0,
            behind_since: None,
            run: None,
        }
    }

    /// The highest height heard of.
    pub fn known(&self) -> Height {
        self.known
    }

    /// Whether the ledger is behind what peers hold.
    pub fn is_behind(&self, tip: Height) -> bool {
        self.known > tip
    }

    /// Someone (`from`, if a peer) says height `h` exists.
    pub fn note_height(&mut self, h: Height, from: Option<PublicKey>, tip: Height, now: Instant) {
        if let Some(p) = from {
            let e = self.heights.entry(p).or_insert(0);
            *e = (*e).max(h);
            if h > tip {
                self.hint = Some(p);
            }
        }
        self.known = self.known.max(h);
        if self.known > tip && self.behind_since.is_none() {
            self.behind_since = Some(now);
        }
    }

    /// The engine asked to reach `height` (from `peer`, a hint).
    pub fn engine_wants(
        &mut self,
        height: Height,
        peer: Option<PublicKey>,
        tip: Height,
        now: Instant,
    ) {
        self.engine_waiting = true;
        self.note_height(height, peer, tip, now);
        // The engine knows: no grace.
        self.behind_since = Some(now.checked_sub(ONE_BEHIND_GRACE).unwrap_or(now));
    }

    /// Whether the engine waits for a `Synced` and nobody has more to give: the caller answers
    /// it with the tip and this clears.
    pub fn engine_gave_up(&mut self, tip: Height) -> bool {
        if self.engine_waiting && !self.is_behind(tip) {
            self.engine_waiting = false;
            return true;
        }
        false
    }

    /// The engine got its answer.
    pub fn engine_answered(&mut self) {
        self.engine_waiting = false;
    }

    fn recompute_known(&mut self, tip: Height) {
        self.known = self.heights.values().copied().max().unwrap_or(tip).max(tip);
    }

    /// A peer left: its claim goes with it, and a request to it is over.
    pub fn on_disconnect(&mut self, peer: &PublicKey, tip: Height) {
        if self.heights.remove(peer).is_some() {
            self.recompute_known(tip);
        }
        if self.inflight.is_some_and(|r| r.peer == *peer) {
            self.inflight = None;
        }
        if self.hint == Some(*peer) {
            self.hint = None;
        }
    }

    /// The ledger reached `tip`. Returns the run that just ended, if the node caught up.
    pub fn on_tip(&mut self, tip: Height) -> Option<SyncRun> {
        self.known = self.known.max(tip);
        if self.known > tip {
            return None;
        }
        self.behind_since = None;
        self.run.take()
    }

    /// What to ask, and whom, if it is time to ask. `connected` are the peers to choose from.
    pub fn next_request(
        &mut self,
        tip: Height,
        connected: &[PublicKey],
        now: Instant,
    ) -> Option<(PublicKey, SyncRequest)> {
        if !self.is_behind(tip) {
            return None;
        }
        if let Some(r) = self.inflight {
            if now.saturating_duration_since(r.at) < SYNC_TIMEOUT {
                return None;
            }
            self.inflight = None;
            self.hint = None;
        }
        let waited = self
            .behind_since
            .is_some_and(|s| now.saturating_duration_since(s) >= ONE_BEHIND_GRACE);
        if self.known == tip + 1 && !waited {
            return None;
        }
        let mut candidates: Vec<PublicKey> = connected
            .iter()
            .copied()
            .filter(|p| *p != self.me)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        candidates.sort();
        let peer = match self.hint.filter(|h| candidates.contains(h)) {
            Some(p) => p,
            None => {
                let ahead: Vec<PublicKey> = candidates
                    .iter()
                    .copied()
                    .filter(|p| self.heights.get(p).is_some_and(|h| *h > tip))
                    .collect();
                let pool = if ahead.is_empty() {
                    &candidates
                } else {
                    &ahead
                };
                self.rotation = self.rotation.wrapping_add(1);
                pool[self.rotation % pool.len()]
            }
        };
        Some((
            peer,
            SyncRequest {
                from: tip + 1,
                max_blocks: wire::SYNC_BLOCKS_MAX,
            },
        ))
    }

    /// Blocks are coming in by sync from `tip`: starts a run (for the log lines at its start
    /// and end) unless one is going. `true` if this started one.
    pub fn start_run(&mut self, tip: Height, now: Instant) -> bool {
        if self.run.is_some() {
            return false;
        }
        self.run = Some(SyncRun {
            from: tip,
            since: now,
        });
        true
    }

    /// The request was handed to the network as `id`.
    pub fn sent(&mut self, id: u64, peer: PublicKey, now: Instant) {
        self.inflight = Some(Inflight { id, peer, at: now });
    }

    /// Whether a request is in flight (an empty probe on a new connection waits for it).
    pub fn in_flight(&self) -> bool {
        self.inflight.is_some()
    }

    /// An answer arrived: `true` if it is the one in flight.
    pub fn answered(&mut self, id: u64) -> bool {
        match self.inflight {
            Some(r) if r.id == id => {
                self.inflight = None;
                true
            }
            _ => false,
        }
    }

    /// A request failed or its answer was useless: ask someone else next.
    pub fn failed(&mut self) {
        self.hint = None;
    }

    /// A peer answered with its tip and `blocks` blocks. One that claimed to be ahead and
    /// shows nothing loses its claim.
    pub fn on_answer(
        &mut self,
        from: PublicKey,
        peer_tip: Height,
        blocks: usize,
        tip: Height,
        now: Instant,
    ) {
        if blocks == 0 && self.heights.get(&from).is_some_and(|h| *h > tip) {
            self.heights.insert(from, tip);
            self.recompute_known(tip);
            self.hint = None;
        } else {
            self.note_height(peer_tip, Some(from), tip, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey([n; 32])
    }

    #[test]
    fn far_behind_asks_at_once_one_behind_after_a_grace() {
        let t0 = Instant::now();
        let mut s = Sync::new(key(0), 10);
        let peers = [key(0), key(1), key(2)];
        assert!(s.next_request(10, &peers, t0).is_none(), "not behind");
        s.note_height(11, Some(key(2)), 10, t0);
        assert!(
            s.next_request(10, &peers, t0).is_none(),
            "one behind: consensus may bring it"
        );
        let (peer, req) = s
            .next_request(10, &peers, t0 + ONE_BEHIND_GRACE)
            .expect("after the grace");
        assert_eq!((peer, req.from), (key(2), 11), "the announcer first");
        let mut s = Sync::new(key(0), 10);
        s.note_height(15, None, 10, t0);
        let (peer, _) = s.next_request(10, &peers, t0).expect("at once");
        assert_ne!(peer, key(0), "never itself");
    }

    #[test]
    fn one_request_at_a_time_until_it_times_out() {
        let t0 = Instant::now();
        let mut s = Sync::new(key(0), 0);
        let peers = [key(1), key(2)];
        s.note_height(9, Some(key(1)), 0, t0);
        let (p, _) = s.next_request(0, &peers, t0).expect("ask");
        s.sent(7, p, t0);
        assert!(
            s.next_request(0, &peers, t0 + Duration::from_secs(1))
                .is_none()
        );
        assert!(!s.answered(8), "not ours");
        let retry = s
            .next_request(0, &peers, t0 + SYNC_TIMEOUT)
            .expect("timed out: retry");
        s.sent(9, retry.0, t0 + SYNC_TIMEOUT);
        assert!(s.answered(9));
        assert!(!s.in_flight());
    }

    #[test]
    fn empty_handed_claims_and_departed_peers_are_forgotten() {
        let t0 = Instant::now();
        let mut s = Sync::new(key(0), 5);
        s.note_height(100, Some(key(1)), 5, t0);
        s.note_height(8, Some(key(2)), 5, t0);
        assert_eq!(s.known(), 100);
        // Peer 1 shows nothing: its claim is replaced by our tip.
        s.on_answer(key(1), 100, 0, 5, t0);
        assert_eq!(s.known(), 8);
        // Peer 2 leaves: nothing known beyond our tip.
        s.on_disconnect(&key(2), 5);
        assert_eq!(s.known(), 5);
        assert!(!s.is_behind(5));
    }

    #[test]
    fn a_run_ends_when_the_tip_reaches_what_is_known() {
        let t0 = Instant::now();
        let mut s = Sync::new(key(0), 0);
        s.engine_wants(4, Some(key(1)), 0, t0);
        assert!(
            s.next_request(0, &[key(1)], t0).is_some(),
            "the engine asked: no grace"
        );
        assert!(s.start_run(0, t0));
        assert!(!s.start_run(1, t0), "one run at a time");
        assert_eq!(s.on_tip(2), None, "still behind");
        let run = s.on_tip(4).expect("caught up");
        assert_eq!(run.from, 0);
        s.engine_answered();
        assert!(!s.engine_gave_up(4), "answered already");
        // The engine wants 9, which only the departed peer claimed: nobody has more to give,
        // so the engine is answered with where the ledger is.
        s.engine_wants(9, None, 4, t0);
        assert!(s.is_behind(4));
        s.on_disconnect(&key(1), 4);
        assert!(!s.is_behind(4));
        assert!(s.engine_gave_up(4));
        assert!(!s.engine_gave_up(4), "once");
    }
}
