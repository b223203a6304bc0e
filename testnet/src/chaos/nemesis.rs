//! The nemesis: a fault schedule drawn from the seed, one fault at a time, each held a few
//! seconds and then undone. Most faults stay within what the engine tolerates (f nodes down,
//! paused or cut off); about one kill, pause or partition in six goes beyond it for a few
//! seconds, when the network may stall but must never fork or lose a commit. Where the network
//! tolerates none (f = 0), every fault that takes a node away is marked beyond.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::faults::{self, Link};
use crate::hosts::splitmix;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Kind {
    /// SIGKILL nodes, restart them after.
    Kill,
    /// SIGSTOP nodes, SIGCONT after.
    Pause,
    /// Cut links (isolation, a minority, one way, a bridge); needs `--hosts netns`.
    Partition,
    /// Random packet loss on every link; needs `--hosts netns`.
    Loss,
    /// Delay on links; needs the kernel's netem.
    Netem,
    /// A node's clock set off by seconds (restarted under libfaketime).
    Clock,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Loss => "loss",
            Kind::Netem => "netem",
            Kind::Clock => "clock",
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Kill(Vec<usize>),
    Pause(Vec<usize>),
    Cut { what: String, cut: BTreeSet<Link> },
    Loss(f64),
    Delay(u64),
    Clock { node: usize, offset_s: i64 },
}

impl Fault {
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Kill(_) => Kind::Kill,
            Fault::Pause(_) => Kind::Pause,
            Fault::Cut { .. } => Kind::Partition,
            Fault::Loss(_) => Kind::Loss,
            Fault::Delay(_) => Kind::Netem,
            Fault::Clock { .. } => Kind::Clock,
        }
    }

    /// The nodes this fault's undo restarts (they must catch up before the next fault).
    pub fn restarted(&self) -> Vec<usize> {
        match self {
            Fault::Kill(v) => v.clone(),
            Fault::Clock { node, .. } => vec![*node],
            _ => Vec::new(),
        }
    }

    pub fn describe(&self) -> String {
        let names = |v: &[usize]| {
            v.iter()
                .map(|i| format!("node{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Fault::Kill(v) => format!("kill {}", names(v)),
            Fault::Pause(v) => format!("pause {}", names(v)),
            Fault::Cut { what, .. } => format!("partition {what}"),
            Fault::Loss(p) => format!("loss {:.0}% on every link", p * 100.0),
            Fault::Delay(ms) => format!("delay {ms} ms"),
            Fault::Clock { node, offset_s } => format!("clock of node{node} {offset_s:+} s"),
        }
    }
}

/// One step: the fault, how long it is held, the quiet after, and whether it goes beyond
/// what the engine tolerates.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub quiet: Duration,
    pub beyond: bool,
}

/// Draws steps from `seed` for `n` nodes tolerating `f` faulty ones, using only `kinds`.
/// The same seed, sizes and kinds give the same steps.
pub struct Schedule {
    rng: u64,
    n: usize,
    f: usize,
    kinds: Vec<Kind>,
}

impl Schedule {
    pub fn new(seed: u64, n: usize, f: usize, kinds: &[Kind]) -> Schedule {
        Schedule {
            rng: seed,
            n,
            f,
            kinds: kinds.to_vec(),
        }
    }

    fn next(&mut self) -> u64 {
        self.rng = splitmix(self.rng);
        self.rng
    }

    fn below(&mut self, m: u64) -> u64 {
        self.next() % m.max(1)
    }

    /// Every node, in a random order.
    fn shuffled(&mut self) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.n).collect();
        for i in (1..all.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            all.swap(i, j);
        }
        all
    }

    /// `k` distinct nodes.
    fn nodes(&mut self, k: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self.shuffled().into_iter().take(k.min(self.n)).collect();
        v.sort_unstable();
        v
    }

    /// The next step (`None` if no kind is enabled).
    pub fn step(&mut self) -> Option<Step> {
        if self.kinds.is_empty() {
            return None;
        }
        let pick = self.below(self.kinds.len() as u64) as usize;
        let kind = self.kinds[pick];
        // Beyond tolerance now and then, for kinds that take nodes away; always when the
        // network tolerates no node away (f = 0), as any such fault then goes beyond.
        let takes_nodes = matches!(kind, Kind::Kill | Kind::Pause | Kind::Partition);
        let beyond = (takes_nodes && self.below(6) == 0)
            || (self.f == 0 && (takes_nodes || kind == Kind::Clock));
        let k = if beyond {
            self.f + 1
        } else {
            1 + self.below(self.f.max(1) as u64) as usize
        }
        .min(self.n);
        let fault = match kind {
            Kind::Kill => Fault::Kill(self.nodes(k)),
            Kind::Pause => Fault::Pause(self.nodes(k)),
            Kind::Partition => self.partition(k, beyond),
            Kind::Loss => Fault::Loss([0.05, 0.1, 0.2, 0.3][self.below(4) as usize]),
            Kind::Netem => Fault::Delay(20 + self.below(200)),
            Kind::Clock => {
                let node = self.below(self.n as u64) as usize;
                let offset_s = [-60, -5, 5, 60][self.below(4) as usize];
                Fault::Clock { node, offset_s }
            }
        };
        let hold = if beyond {
            Duration::from_millis(2000 + self.below(3000))
        } else {
            Duration::from_millis(3000 + self.below(7000))
        };
        let quiet = Duration::from_millis(2000 + self.below(3000));
        Some(Step {
            fault,
            hold,
            quiet,
            beyond,
        })
    }

    /// A partition taking `k` nodes away from the rest's quorum.
    fn partition(&mut self, k: usize, beyond: bool) -> Fault {
        let n = self.n;
        let shape = self.below(4);
        if beyond {
            // No side keeps a quorum: groups of at most n - f - 1 nodes.
            let size = (n - self.f).saturating_sub(1).max(1);
            let groups: Vec<Vec<usize>> = self
                .shuffled()
                .chunks(size)
                .map(|g| {
                    let mut g = g.to_vec();
                    g.sort_unstable();
                    g
                })
                .collect();
            let what = groups
                .iter()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(" | ");
            return Fault::Cut {
                what: format!("{what} (no quorum anywhere)"),
                cut: faults::groups_cut(n, &groups).unwrap_or_default(),
            };
        }
        match shape {
            0 => {
                let node = self.below(n as u64) as usize;
                Fault::Cut {
                    what: format!("node{node} isolated"),
                    cut: faults::isolate_cut(n, node),
                }
            }
            1 if n >= 2 => {
                let pair = self.nodes(2);
                let (a, b) = if self.below(2) == 0 {
                    (pair[0], pair[1])
                } else {
                    (pair[1], pair[0])
                };
                Fault::Cut {
                    what: format!("node{a} -/-> node{b}"),
                    cut: [(a, b)].into_iter().collect(),
                }
            }
            2 if n >= 3 && self.f >= 1 && bridge_keeps_quorum(n, self.f) => {
                let node = self.below(n as u64) as usize;
                Fault::Cut {
                    what: format!("bridge through node{node}"),
                    cut: faults::bridge_cut(n, node),
                }
            }
            _ => {
                let minority = self.nodes(k);
                let rest: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
                Fault::Cut {
                    what: format!("{minority:?} | {rest:?}"),
                    cut: faults::groups_cut(n, &[minority, rest]).unwrap_or_default(),
                }
            }
        }
    }
}

/// Whether, in a bridge of `n` nodes, the nodes that lose a quorum of reachable peers are at
/// most `f`: the larger half plus the bridge must be a quorum (`n - f`).
fn bridge_keeps_quorum(n: usize, f: usize) -> bool {
    let others = n - 1;
    let larger = others - others / 2;
    let smaller = others / 2;
    larger + 1 >= n - f && smaller <= f
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kind; 4] = [Kind::Kill, Kind::Pause, Kind::Partition, Kind::Loss];

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let draw = |seed| {
            let mut s = Schedule::new(seed, 4, 1, &ALL);
            (0..50)
                .map(|_| s.step().expect("kinds"))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn faults_stay_within_tolerance_unless_marked_beyond() {
        for (n, f) in [(4, 1), (3, 1), (7, 2), (3, 0), (2, 0)] {
            let mut s = Schedule::new(1, n, f, &ALL);
            let mut beyond = 0;
            for _ in 0..2000 {
                let step = s.step().expect("kinds");
                let away = match &step.fault {
                    Fault::Kill(v) | Fault::Pause(v) => v.len(),
                    Fault::Cut { cut, .. } => {
                        // Nodes that cannot reach a quorum (counting themselves).
                        (0..n)
                            .filter(|&a| {
                                let reach = (0..n)
                                    .filter(|&b| {
                                        a == b || (!cut.contains(&(a, b)) && !cut.contains(&(b, a)))
                                    })
                                    .count();
                                reach < n - f
                            })
                            .count()
                    }
                    // A clock fault restarts its node.
                    Fault::Clock { .. } => 1,
                    _ => 0,
                };
                if step.beyond {
                    beyond += 1;
                    assert!(away > f, "{n} nodes: {step:?} is marked beyond but is not");
                } else {
                    assert!(away <= f, "{n} nodes: {step:?} takes {away} > {f} away");
                }
            }
            assert!(beyond > 100, "beyond-tolerance phases are drawn ({beyond})");
        }
    }
}
