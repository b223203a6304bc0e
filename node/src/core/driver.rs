//! Drives the engine: one input in, every output executed in order, every input those outputs
//! lead to fed back, and the persist barrier kept.
//!
//! The barrier (`cairn_consensus` crate docs): the writes of a step's `Persist` outputs are made
//! durable, as one synced batch, before any later output of that step runs. Consecutive persist
//! ops are coalesced; an output that follows them waits for the batch. A write that fails ends
//! the step there: nothing after it runs, and the failure is fatal to the node.

use std::collections::VecDeque;

use cairn_consensus::{DurableState, Input, Output, Protocol};
use cairn_ledger::ConsensusWrite;

use crate::fatal::Fatal;

/// An output other than `Persist`, for [`Effects::execute`].
pub type Effect<P> = Output<<P as Protocol>::Message, <P as Protocol>::PersistOp>;

/// What carries out an engine's outputs.
pub trait Effects<P: Protocol> {
    /// Makes the writes durable (one synced batch) before returning.
    fn persist(&mut self, writes: &[ConsensusWrite]) -> Result<(), Fatal>;
    /// Carries out one output (never `Persist`); inputs it leads to (a validation result, a
    /// proposal, a sync result) go to `follow_up`, which the driver steps in order.
    fn execute(
        &mut self,
        output: Effect<P>,
        follow_up: &mut VecDeque<Input<P::Message>>,
    ) -> Result<(), Fatal>;
}

/// Most inputs one outside input may lead to: far above what an engine produces (a validation,
/// a proposal, a few sync results), low enough to catch a loop between engine and node.
const FOLLOW_UPS_MAX: usize = 10_000;

/// The engine and its step loop.
pub struct Driver<P: Protocol> {
    engine: P,
    out: Vec<Output<P::Message, P::PersistOp>>,
    writes: Vec<ConsensusWrite>,
}

impl<P: Protocol> Driver<P> {
    /// Drives `engine`.
    pub fn new(engine: P) -> Driver<P> {
        Driver {
            engine,
            out: Vec::new(),
            writes: Vec::new(),
        }
    }

    /// The engine's view of itself.
    pub fn status(&self) -> cairn_consensus::Status {
        self.engine.status()
    }

    /// Steps the engine with `input` and then with every input its outputs lead to.
    pub fn run(&mut self, input: Input<P::Message>, fx: &mut impl Effects<P>) -> Result<(), Fatal> {
        let mut queue = VecDeque::from([input]);
        let mut stepped = 0usize;
        while let Some(input) = queue.pop_front() {
            stepped += 1;
            if stepped > FOLLOW_UPS_MAX {
                // A programmer error, not an operating one: say so loudly, drop the rest.
                tracing::error!(stepped, "engine and node keep feeding each other: dropping");
                break;
            }
            self.engine.step(input, &mut self.out);
            let out = std::mem::take(&mut self.out);
            let mut result = Ok(());
            for o in out {
                if let Output::Persist { op } = &o {
                    P::Durable::writes(op, &mut self.writes);
                    continue;
                }
                result = self.flush(fx).and_then(|()| fx.execute(o, &mut queue));
                if result.is_err() {
                    break;
                }
            }
            result.and_then(|()| self.flush(fx))?;
        }
        Ok(())
    }

    fn flush(&mut self, fx: &mut impl Effects<P>) -> Result<(), Fatal> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let r = fx.persist(&self.writes);
        self.writes.clear();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::{DurableError, NodeId, Role, Status};
    use cairn_crypto::SigningKey;
    use cairn_ledger::{Height, StoreError};
    use serde::{Deserialize, Serialize};

    /// A scripted engine: each input (a number) yields the outputs the script gives it.
    struct Scripted {
        script: fn(u32) -> Vec<Output<u32, u32>>,
    }

    #[derive(Debug, Clone, Default, PartialEq)]
    struct Nothing;

    impl DurableState for Nothing {
        type Op = u32;
        fn apply(&mut self, _: &u32) {}
        fn writes(op: &u32, out: &mut Vec<ConsensusWrite>) {
            out.push(ConsensusWrite::Delete {
                key: op.to_be_bytes().to_vec(),
            });
        }
        fn load(_: &[(Vec<u8>, Vec<u8>)]) -> Result<Nothing, DurableError> {
            Ok(Nothing)
        }
        fn starting_at(_: Height, _: &mut Vec<ConsensusWrite>) -> Nothing {
            Nothing
        }
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Cfg;

    impl Protocol for Scripted {
        type Message = u32;
        type PersistOp = u32;
        type Config = Cfg;
        type Durable = Nothing;
        fn restore(_: Cfg, _: SigningKey, _: &Nothing, _: Height) -> Scripted {
            Scripted { script: |_| vec![] }
        }
        fn step(&mut self, input: Input<u32>, out: &mut Vec<Output<u32, u32>>) {
            if let Input::Message { msg, .. } = input {
                out.extend((self.script)(msg));
            }
        }
        fn status(&self) -> Status {
            Status {
                role: Role::Follower,
                round: 0,
                leader: None,
                commit_height: 0,
                refused: Default::default(),
            }
        }
        fn footprint(&self) -> Vec<cairn_consensus::Held> {
            Vec::new()
        }
    }

    #[derive(Default)]
    struct Log {
        events: Vec<String>,
        fail_persist: bool,
    }

    impl Effects<Scripted> for Log {
        fn persist(&mut self, writes: &[ConsensusWrite]) -> Result<(), Fatal> {
            let keys: Vec<String> = writes
                .iter()
                .map(|w| match w {
                    ConsensusWrite::Delete { key } => format!("{}", key[3]),
                    _ => "?".into(),
                })
                .collect();
            self.events.push(format!("persist {}", keys.join("+")));
            if self.fail_persist {
                return Err(Fatal::Persist {
                    source: StoreError::Engine("No space left on device".into()),
                });
            }
            Ok(())
        }
        fn execute(
            &mut self,
            o: Effect<Scripted>,
            follow_up: &mut VecDeque<Input<u32>>,
        ) -> Result<(), Fatal> {
            match o {
                Output::Send { msg, .. } => {
                    self.events.push(format!("send {msg}"));
                    if msg >= 100 {
                        // A follow-up: the engine is stepped with it after this input.
                        follow_up.push_back(msg_in(msg - 100));
                    }
                }
                other => self.events.push(format!("{other:?}")),
            }
            Ok(())
        }
    }

    fn msg_in(m: u32) -> Input<u32> {
        Input::Message {
            from: NodeId(1),
            msg: m,
        }
    }

    fn send(m: u32) -> Output<u32, u32> {
        Output::Send {
            to: NodeId(1),
            msg: m,
        }
    }

    fn persist(op: u32) -> Output<u32, u32> {
        Output::Persist { op }
    }

    fn run(
        script: fn(u32) -> Vec<Output<u32, u32>>,
        input: u32,
        fail: bool,
    ) -> (Vec<String>, bool) {
        let mut d = Driver::new(Scripted { script });
        let mut log = Log {
            fail_persist: fail,
            ..Log::default()
        };
        let ok = d.run(msg_in(input), &mut log).is_ok();
        (log.events, ok)
    }

    #[test]
    fn persists_are_coalesced_and_written_before_what_follows_them() {
        let (events, ok) = run(
            |_| {
                vec![
                    persist(1),
                    persist(2),
                    send(7),
                    persist(3),
                    send(8),
                    persist(4),
                ]
            },
            0,
            false,
        );
        assert!(ok);
        assert_eq!(
            events,
            ["persist 1+2", "send 7", "persist 3", "send 8", "persist 4"]
        );
    }

    #[test]
    fn follow_ups_are_stepped_in_order_after_the_input() {
        let (events, _) = run(
            |m| match m {
                0 => vec![send(101), send(102)],
                1 => vec![persist(1), send(10)],
                2 => vec![send(20)],
                _ => vec![],
            },
            0,
            false,
        );
        assert_eq!(
            events,
            ["send 101", "send 102", "persist 1", "send 10", "send 20"]
        );
    }

    #[test]
    fn a_failed_persist_stops_the_step_and_is_fatal() {
        let (events, ok) = run(|_| vec![send(5), persist(1), send(6), send(7)], 0, true);
        assert!(!ok, "fatal");
        assert_eq!(
            events,
            ["send 5", "persist 1"],
            "nothing after the failed write runs"
        );
        // Trailing persists are flushed at the end of the step, and fail the same way.
        let (events, ok) = run(|_| vec![send(5), persist(2)], 0, true);
        assert!(!ok);
        assert_eq!(events, ["send 5", "persist 2"]);
    }

    #[test]
    fn a_loop_between_engine_and_node_is_cut() {
        // Every message leads to itself again.
        let (events, ok) = run(|m| vec![send(100 + m)], 0, false);
        assert!(ok);
        assert_eq!(events.len(), FOLLOW_UPS_MAX);
    }
}
