//! What the node says about itself: readiness with reasons, the role it shows, and the log
//! lines an operator watches (rounds, leaders, quorum lost and regained, stalls, a periodic
//! height line).
//!
//! Readiness (`/ready`, `status.ready`) holds when all of these do, and names each one that
//! does not:
//! - synced: no peer is known to hold more blocks;
//! - a quorum of validators (the engine's own count, [`cairn_ledger::ValidatorSet::quorum`],
//!   this node included) was *heard from* within [`HEARD_WITHIN`]: a pong or a message, not an
//!   open TCP connection, which a paused or cut-off peer keeps. An observer needs one;
//! - no stall: while transactions that could execute wait, the tip moved within the stall
//!   bound.
//!
//! (That the engine and the core are alive is checked where the status is read: a status
//! older than a few ticks means the core stopped reporting.)
//!
//! The role shown is the engine's, except that a leader that has not heard from a quorum, or
//! that hears validators working in a later round, shows as a follower with no known leader:
//! after a restart a PBFT replica resumes the view it left and would call itself primary of
//! a view the others left behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_consensus::{Role, Status};
use cairn_ledger::Height;

/// A validator counts as heard from if something arrived from it within this (pings go out
/// every second).
pub const HEARD_WITHIN: Duration = Duration::from_secs(3);
/// How often the node logs its height when nothing else happens.
pub const HEIGHT_LINE_EVERY: Duration = Duration::from_secs(30);

/// One validator as seen from here.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Time since it was last heard from; `None` when not connected. This node itself: zero.
    pub silent_for: Option<Duration>,
}

/// What readiness is judged on.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The engine's status (`None` for an observer).
    pub engine: Option<Status>,
    /// Ledger height.
    pub height: Height,
    /// Highest height heard of.
    pub known: Height,
    /// The validators, in genesis order.
    pub peers: Vec<Peer>,
    /// Transactions that could execute now are waiting.
    pub executable: bool,
    /// Transactions pending (any).
    pub pending: usize,
    /// Since when the tip has not moved, or since executable work appeared if later.
    pub tip_since: Instant,
    /// Now.
    pub now: Instant,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Everything holds.
    pub ready: bool,
    /// What does not, in words.
    pub reasons: Vec<String>,
    /// Validators heard from within [`HEARD_WITHIN`] (this node included).
    pub heard: usize,
}

/// How long a quorum must be missing before the node warns (a process resumed after a pause
/// sees everyone silent for an instant).
const QUORUM_LOST_GRACE: Duration = Duration::from_secs(1);

/// Readiness rules and the change log.
#[derive(Debug)]
pub struct Health {
    names: Vec<String>,
    quorum: usize,
    /// "term" (Raft) or "view" (PBFT), for log lines.
    round_name: &'static str,
    /// Since when the quorum has been missing.
    lost_since: Option<Instant>,
    /// Whether "quorum lost" was logged for this loss.
    lost_warned: bool,
    /// Whether "waiting to hear from a quorum" was logged (at start-up).
    waiting_logged: bool,
    /// The tip may stay still this long with executable work waiting.
    stall_after: Duration,
    /// Latest round each validator was seen working in, and when.
    rounds: HashMap<usize, (u64, Instant)>,
    last_engine: Option<Status>,
    /// Whether a quorum was ever heard (so its return reads as "regained").
    had_quorum: bool,
    stalled: bool,
    last_line: Option<Instant>,
    last_line_height: Height,
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn secs(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

impl Health {
    /// For a network whose validators are named `names` (genesis order), needing `quorum`;
    /// rounds are called `round_name` in logs.
    pub fn new(
        names: Vec<String>,
        quorum: usize,
        round_name: &'static str,
        stall_after: Duration,
    ) -> Health {
        Health {
            names,
            quorum,
            round_name,
            lost_since: None,
            lost_warned: false,
            waiting_logged: false,
            stall_after,
            rounds: HashMap::new(),
            last_engine: None,
            had_quorum: false,
            stalled: false,
            last_line: None,
            last_line_height: 0,
        }
    }

    /// The validator set changed: names and quorum of the new one, and nothing heard from
    /// it yet.
    pub fn set_validators(&mut self, names: Vec<String>, quorum: usize) {
        self.names = names;
        self.quorum = quorum;
        self.rounds.clear();
    }

    /// A validator's name.
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("?", String::as_str)
    }

    /// A consensus message from validator `index` showed it working in `round`.
    pub fn saw_round(&mut self, index: usize, round: u64, now: Instant) {
        let e = self.rounds.entry(index).or_insert((round, now));
        if round >= e.0 {
            *e = (round, now);
        }
    }

    /// Whether a validator heard from recently works in a later round than `round`.
    fn behind_others(&self, round: u64, now: Instant) -> bool {
        self.rounds
            .values()
            .any(|(r, at)| *r > round && now.saturating_duration_since(*at) <= HEARD_WITHIN)
    }

    /// Judges readiness. Pure: no logging, no state change.
    pub fn assess(&self, o: &Observed) -> Readiness {
        let mut reasons = Vec::new();
        if o.known > o.height {
            reasons.push(format!("syncing: at height {} of {}", o.height, o.known));
        }
        let heard = o
            .peers
            .iter()
            .filter(|p| p.silent_for.is_some_and(|d| d <= HEARD_WITHIN))
            .count();
        let need = if o.engine.is_some() { self.quorum } else { 1 };
        if heard < need {
            let silent: Vec<String> = o
                .peers
                .iter()
                .enumerate()
                .filter(|(_, p)| p.silent_for.is_none_or(|d| d > HEARD_WITHIN))
                .map(|(i, p)| match p.silent_for {
                    Some(d) => format!("{} silent for {}", self.name(i), secs(d)),
                    None => format!("{} not connected", self.name(i)),
                })
                .collect();
            reasons.push(format!(
                "no quorum: heard from {heard} of {} validators in the last {}, {need} needed ({})",
                o.peers.len(),
                secs(HEARD_WITHIN),
                silent.join(", ")
            ));
        }
        let still = o.now.saturating_duration_since(o.tip_since);
        if o.executable && still > self.stall_after {
            reasons.push(format!(
                "stalled: no block for {} while {} wait",
                secs(still),
                plural(o.pending, "transaction")
            ));
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            heard,
        }
    }

    /// The role and leader to show: the engine's, unless this node cannot be a working leader
    /// (see the module docs). `None` for an observer.
    pub fn shown(&self, o: &Observed, r: &Readiness) -> Option<(Role, Option<usize>)> {
        let s = o.engine?;
        let stale = self.behind_others(s.round, o.now);
        let lost = r.heard < self.quorum;
        let role = if s.role == Role::Leader && (stale || lost) {
            Role::Follower
        } else {
            s.role
        };
        let leader = if stale || (lost && s.role == Role::Leader) {
            None
        } else {
            s.leader.map(|l| l.index())
        };
        Some((role, leader))
    }

    /// Logs what changed since the last call.
    pub fn log_changes(&mut self, o: &Observed, r: &Readiness) {
        let quorum_ok = r.heard >= if o.engine.is_some() { self.quorum } else { 1 };
        if quorum_ok {
            if self.lost_warned {
                tracing::info!(heard = r.heard, "quorum regained");
            } else if !self.had_quorum {
                tracing::info!(heard = r.heard, "quorum heard");
            }
            self.lost_since = None;
            self.lost_warned = false;
            self.had_quorum = true;
        } else {
            let since = *self.lost_since.get_or_insert(o.now);
            if !self.had_quorum {
                if !self.waiting_logged {
                    tracing::info!("waiting to hear from a quorum of validators");
                    self.waiting_logged = true;
                }
            } else if !self.lost_warned
                && o.now.saturating_duration_since(since) >= QUORUM_LOST_GRACE
            {
                let why = r
                    .reasons
                    .iter()
                    .find_map(|s| s.strip_prefix("no quorum: "))
                    .unwrap_or_default();
                tracing::warn!("quorum lost: {why}");
                self.lost_warned = true;
            }
        }
        if let Some(s) = o.engine {
            let before = self.last_engine.replace(s);
            let leader = |s: &Status| {
                s.leader
                    .map_or("unknown".to_string(), |l| self.name(l.index()).to_string())
            };
            let what = self.round_name;
            match before {
                Some(b) if b.round != s.round => {
                    tracing::info!(from = b.round, to = s.round, leader = %leader(&s), "new {what}");
                }
                Some(b) if b.leader != s.leader => {
                    tracing::info!(round = s.round, leader = %leader(&s), "leader changed");
                }
                _ => {}
            }
            if s.role == Role::Leader && before.is_none_or(|b| b.role != s.role) {
                tracing::info!(round = s.round, "this node leads in {what} {}", s.round);
            }
        }
        let still = o.now.saturating_duration_since(o.tip_since);
        let stalled = o.executable && still > self.stall_after;
        if stalled && !self.stalled {
            tracing::warn!(
                height = o.height,
                pending = o.pending,
                "stalled: no block for {} while transactions wait",
                secs(still)
            );
        } else if !stalled && self.stalled {
            tracing::info!(height = o.height, "blocks are committing again");
        }
        self.stalled = stalled;
        let due = self
            .last_line
            .is_none_or(|at| o.now.saturating_duration_since(at) >= HEIGHT_LINE_EVERY);
        if due {
            // The first line counts from where the node started.
            let since = if self.last_line.is_some() {
                self.last_line_height
            } else {
                o.height
            };
            tracing::info!(
                height = o.height,
                new_blocks = o.height.saturating_sub(since),
                round = o.engine.map(|s| s.round),
                heard = r.heard,
                pending = o.pending,
                ready = r.ready,
                "height"
            );
            self.last_line = Some(o.now);
            self.last_line_height = o.height;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::NodeId;

    fn names() -> Vec<String> {
        (0..4).map(|i| format!("node{i}")).collect()
    }

    fn status(role: Role, round: u64, leader: Option<u32>) -> Status {
        Status {
            role,
            round,
            leader: leader.map(NodeId),
            commit_height: 5,
            refused: Default::default(),
        }
    }

    fn observed(heard: [Option<u64>; 4], now: Instant) -> Observed {
        Observed {
            engine: Some(status(Role::Follower, 0, Some(0))),
            height: 5,
            known: 5,
            peers: heard
                .iter()
                .map(|s| Peer {
                    silent_for: s.map(Duration::from_secs),
                })
                .collect(),
            executable: false,
            pending: 0,
            tip_since: now,
            now,
        }
    }

    #[test]
    fn readiness_as_a_table() {
        let now = Instant::now();
        let h = Health::new(names(), 3, "view", Duration::from_secs(10));
        let ok = [Some(0), Some(1), Some(2), None];
        let table: Vec<(&str, Observed, &[&str])> = vec![
            ("a quorum heard, synced, idle", observed(ok, now), &[]),
            (
                "two of four heard",
                observed([Some(0), Some(1), Some(9), None], now),
                &[
                    "no quorum: heard from 2 of 4",
                    "node2 silent for 9 s",
                    "node3 not connected",
                ],
            ),
            (
                "connected but silent is not heard",
                observed([Some(0), Some(4), Some(4), Some(4)], now),
                &["no quorum: heard from 1 of 4"],
            ),
            (
                "behind",
                Observed {
                    known: 9,
                    ..observed(ok, now)
                },
                &["syncing: at height 5 of 9"],
            ),
            (
                "executable work and a still tip",
                Observed {
                    executable: true,
                    pending: 7,
                    tip_since: now - Duration::from_secs(11),
                    ..observed(ok, now)
                },
                &["stalled: no block for 11 s while 7 transactions wait"],
            ),
            (
                "a nonce gap does not stall",
                Observed {
                    executable: false,
                    pending: 7,
                    tip_since: now - Duration::from_secs(60),
                    ..observed(ok, now)
                },
                &[],
            ),
            (
                "an observer needs one validator",
                Observed {
                    engine: None,
                    ..observed([None, Some(1), None, None], now)
                },
                &[],
            ),
        ];
        for (desc, o, expected) in table {
            let r = h.assess(&o);
            assert_eq!(r.ready, expected.is_empty(), "{desc}: {:?}", r.reasons);
            let all = r.reasons.join("; ");
            for e in expected {
                assert!(all.contains(e), "{desc}: {all:?} lacks {e:?}");
            }
        }
    }

    #[test]
    fn a_stale_or_isolated_leader_shows_as_follower() {
        let now = Instant::now();
        let mut h = Health::new(names(), 3, "view", Duration::from_secs(10));
        let leader = Observed {
            engine: Some(status(Role::Leader, 0, Some(0))),
            ..observed([Some(0), Some(1), Some(1), None], now)
        };
        let r = h.assess(&leader);
        assert_eq!(h.shown(&leader, &r), Some((Role::Leader, Some(0))));
        // Others work in view 1: this node's view 0 is over.
        h.saw_round(1, 1, now);
        assert_eq!(h.shown(&leader, &r), Some((Role::Follower, None)));
        // An old sighting does not count.
        let mut h = Health::new(names(), 3, "view", Duration::from_secs(10));
        h.saw_round(1, 1, now - Duration::from_secs(10));
        assert_eq!(h.shown(&leader, &r), Some((Role::Leader, Some(0))));
        // A leader that hears no quorum is no working leader.
        let alone = Observed {
            engine: Some(status(Role::Leader, 2, Some(0))),
            ..observed([Some(0), None, Some(8), None], now)
        };
        let r = h.assess(&alone);
        assert_eq!(h.shown(&alone, &r), Some((Role::Follower, None)));
        // A follower keeps showing whom it follows while it hears a quorum.
        let follower = observed([Some(0), Some(1), Some(1), None], now);
        let r = h.assess(&follower);
        assert_eq!(h.shown(&follower, &r), Some((Role::Follower, Some(0))));
        let observer = Observed {
            engine: None,
            ..follower
        };
        assert_eq!(h.shown(&observer, &r), None);
    }
}
