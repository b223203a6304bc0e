//! The chaos load: one client per account, each with one transaction of its own in flight,
//! sent to a node picked at random, some waiting for the commit and some taking the node's
//! acknowledgement (202) and following up. Every answer is recorded, as it was given, for the
//! checker.
//!
//! A client never moves to its next nonce until it has seen its transaction committed (from
//! the node's answer or by asking a node) or definitely refused. After an unclear outcome
//! (timeout, unreachable, still pending after a while) it sends the *same* signed transaction
//! again, to another node: so each nonce of each account belongs to one transaction, except
//! after a definite refusal, when the nonce is reused for a new transfer.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_api::TxStatus;
use cairn_api::client::{Client, ClientError};
use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{Payload, SignedTransaction, Transaction, TxId};

use crate::hosts::splitmix;

/// What one submission was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a receipt: committed at this height in this block.
    Committed { height: u64, block: String },
    /// 202: admitted to that node's mempool.
    Acked,
    /// An error from the node, by code.
    Refused(String),
    /// No clear answer: a timeout, an unreachable node, a wait that ran out.
    Unknown(String),
}

/// One submission and its answer.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub tx: TxId,
    pub sender: PublicKey,
    pub nonce: u64,
    /// Node index it went to.
    pub node: usize,
    /// When it was sent, since the run began (a node restarted after this may have lost it).
    pub at: Duration,
    pub answer: Answer,
}

/// Everything the clients sent and heard.
#[derive(Debug, Default)]
pub struct History {
    pub attempts: Vec<Attempt>,
    /// Every transaction a client signed, by id.
    pub signed: std::collections::HashMap<TxId, (PublicKey, u64)>,
    /// Commits a client saw by asking (`GET /txs/{id}`), not as an answer to a submission.
    pub seen_committed: usize,
}

/// What the clients share.
pub struct Load {
    pub chain: String,
    pub clients: Vec<Client>,
    /// Which nodes to send to now (the nemesis marks killed ones down).
    pub up: Arc<Mutex<Vec<bool>>>,
    /// How many times each node lost its memory (killed or restarted): an acknowledgement
    /// is trusted while its node's count stays the same.
    pub lives: Arc<Mutex<Vec<u64>>>,
    pub history: Arc<Mutex<History>>,
    pub stop: Arc<AtomicBool>,
    pub began: Instant,
    /// The receivers of transfers.
    pub accounts: Vec<PublicKey>,
}

/// Reasons a node gives that mean the nonce is taken, so this transaction committed (it is
/// the only one of its sender with that nonce).
const COMMITTED_CODES: [&str; 2] = ["already_committed", "stale_nonce"];
/// Reasons worth sending the same transaction again for: no room now, or it is already
/// held there (so follow it).
const RETRY_CODES: [&str; 5] = [
    "mempool_full",
    "unavailable",
    "duplicate",
    "nonce_in_use",
    "future_nonce",
];

impl Load {
    fn record(&self, tx: &SignedTransaction, node: usize, sent: Duration, answer: Answer) {
        if let Ok(mut h) = self.history.lock() {
            h.attempts.push(Attempt {
                tx: tx.id(),
                sender: tx.tx.sender,
                nonce: tx.tx.nonce,
                node,
                at: sent,
                answer,
            });
        }
    }

    fn pick(&self, rng: &mut u64, avoid: Option<usize>) -> usize {
        let up = self.up.lock().map(|u| u.clone()).unwrap_or_default();
        let n = self.clients.len();
        let live: Vec<usize> = (0..n).filter(|&i| up.get(i) == Some(&true)).collect();
        let choice: Vec<usize> = live.iter().copied().filter(|&i| Some(i) != avoid).collect();
        *rng = splitmix(*rng);
        let pool = if choice.is_empty() { &live } else { &choice };
        if pool.is_empty() {
            (*rng % n as u64) as usize
        } else {
            pool[(*rng % pool.len() as u64) as usize]
        }
    }

    fn life(&self, node: usize) -> u64 {
        self.lives
            .lock()
            .ok()
            .and_then(|l| l.get(node).copied())
            .unwrap_or(0)
    }

    /// Asks nodes about `id` until it is committed, the wait runs out, or the run stops.
    async fn follow(&self, id: &TxId, rng: &mut u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            let node = self.pick(rng, None);
            if let Ok(v) = self.clients[node].tx(id).await
                && v.status == TxStatus::Committed
            {
                if let Ok(mut h) = self.history.lock() {
                    h.seen_committed += 1;
                }
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    /// One account's client, until `stop`.
    pub async fn client(self: Arc<Self>, key: SigningKey, start_nonce: u64, seed: u64) {
        let mut rng = seed;
        let mut nonce = start_nonce;
        let me = key.public_key();
        while !self.stop.load(Ordering::Relaxed) {
            rng = splitmix(rng);
            let mut to = self.accounts[(rng % self.accounts.len() as u64) as usize];
            if to == me {
                to = self.accounts[((rng >> 8) % self.accounts.len() as u64) as usize];
            }
            let tx = Transaction {
                chain_id: self.chain.clone(),
                sender: me,
                nonce,
                payload: Payload::Transfer {
                    to,
                    amount: 1 + (rng >> 16) % 5,
                },
            }
            .sign(&key);
            if let Ok(mut h) = self.history.lock() {
                h.signed.insert(tx.id(), (me, nonce));
            }
            match self.settle(&tx, &mut rng).await {
                Settled::Committed => nonce += 1,
                Settled::Refused => {}
                Settled::Stopped => return,
            }
        }
    }

    /// Sends `tx` until its outcome is clear.
    async fn settle(&self, tx: &SignedTransaction, rng: &mut u64) -> Settled {
        let mut last = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Settled::Stopped;
            }
            let node = self.pick(rng, last);
            last = Some(node);
            *rng = splitmix(*rng);
            let wait = rng.is_multiple_of(2);
            // Read before sending: a restart while the request is in flight must count.
            let life = self.life(node);
            let sent = self.began.elapsed();
            let answer = match self.clients[node].submit(tx, wait).await {
                Ok(v) => match (v.status, v.receipt) {
                    (TxStatus::Committed, Some(r)) => Answer::Committed {
                        height: r.height,
                        block: r.block_hash.to_string(),
                    },
                    (TxStatus::Pending, _) => Answer::Acked,
                    (s, _) => Answer::Unknown(format!("answered {s:?}")),
                },
                Err(ClientError::Api(e)) => {
                    let code = e.code.to_string();
                    if code == "wait_timeout" {
                        Answer::Unknown(code)
                    } else {
                        Answer::Refused(code)
                    }
                }
                Err(ClientError::Timeout { .. }) => Answer::Unknown("timeout".into()),
                Err(ClientError::Unreachable { .. }) => Answer::Unknown("unreachable".into()),
                Err(e) => Answer::Unknown(e.to_string()),
            };
            self.record(tx, node, sent, answer.clone());
            match answer {
                Answer::Committed { .. } => return Settled::Committed,
                Answer::Refused(code) if COMMITTED_CODES.contains(&code.as_str()) => {
                    return Settled::Committed;
                }
                Answer::Refused(code) if !RETRY_CODES.contains(&code.as_str()) => {
                    // A definite no from this node; another may still hold it from an earlier
                    // attempt, so make sure before reusing the nonce.
                    if self.follow(&tx.id(), rng, Duration::from_secs(3)).await {
                        return Settled::Committed;
                    }
                    return Settled::Refused;
                }
                Answer::Refused(_) => {
                    if self.follow(&tx.id(), rng, Duration::from_secs(2)).await {
                        return Settled::Committed;
                    }
                }
                Answer::Acked => {
                    // The node holds it: follow it for as long as that node keeps its memory
                    // (a partition or a pause only delays it). Sending it elsewhere would hide
                    // a node that acknowledges what it then loses.
                    loop {
                        if self.follow(&tx.id(), rng, Duration::from_secs(8)).await {
                            return Settled::Committed;
                        }
                        if self.stop.load(Ordering::Relaxed) {
                            return Settled::Stopped;
                        }
                        if self.life(node) != life {
                            break;
                        }
                    }
                }
                Answer::Unknown(_) => {
                    if self.follow(&tx.id(), rng, Duration::from_secs(8)).await {
                        return Settled::Committed;
                    }
                }
            }
        }
    }
}

enum Settled {
    Committed,
    Refused,
    Stopped,
}
