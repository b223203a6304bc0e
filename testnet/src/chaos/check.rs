//! The checker: reads every node's whole chain after the run and holds it against the
//! genesis, each other, what the clients were told, and the model.
//!
//! Checked:
//! - every block of the first node's chain: hash link, transaction root, every signature, and
//!   the certificate against the validator set in force (followed from the genesis);
//! - every other node: the same hash at every height (no fork) and a valid certificate;
//! - every node at the same height, head and state root;
//! - no transaction twice, and none from a load account that no client signed;
//! - every "committed" answer at the height and block it named; every `already_committed`
//!   and `stale_nonce` refusal backed by a committed transaction of that sender and nonce;
//! - every acknowledgement (202) from a node that was not killed or restarted after giving it:
//!   that transaction, or another of its sender with its nonce, committed;
//! - the chain replayed through the model, transaction by transaction, and every account the
//!   model knows equal (balance and nonce) on every node.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cairn_api::BlockView;
use cairn_api::client::Client;
use cairn_cli::verify::{Trail, check_header, verify_block};
use cairn_crypto::PublicKey;
use cairn_ledger::{BlockHash, Genesis, TxId};
use futures::StreamExt;

use super::load::{Answer, History};
use super::model::Model;

/// What the checker needs besides the chains.
pub struct Facts<'a> {
    pub genesis: &'a Genesis,
    pub history: &'a History,
    /// Load accounts: every transaction of theirs in a chain must be one a client signed.
    pub load_accounts: &'a HashSet<PublicKey>,
    /// When each node lost its memory (killed or restarted), since the run began.
    pub restarts: &'a [(usize, Duration)],
}

/// What the chain holds, as the checker found it.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<String>,
    pub height: u64,
    pub blocks: u64,
    pub txs: u64,
    /// Transactions the clients signed that a block holds.
    pub committed_signed: usize,
    pub accounts_checked: usize,
}

impl Findings {
    fn violation(&mut self, v: String) {
        // A broken run can break thousands of things: the first hundred tell the story.
        if self.violations.len() < 100 {
            self.violations.push(v);
        } else if self.violations.len() == 100 {
            self.violations.push("… more violations left out".into());
        }
    }
}

/// Reads node `i`'s blocks 1..=height, 16 requests at a time.
async fn chain(client: &Client, height: u64) -> Result<Vec<BlockView>, String> {
    let got: Vec<Result<BlockView, String>> = futures::stream::iter(1..=height)
        .map(|h| async move {
            let mut last = String::new();
            for _ in 0..5 {
                match client.block(&h.to_string()).await {
                    Ok(b) => return Ok(b),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(format!("block {h}: {last}"))
        })
        .buffered(16)
        .collect()
        .await;
    got.into_iter().collect()
}

/// Checks the nodes behind `clients` (all of them up and settled).
pub async fn check(clients: &[Client], facts: &Facts<'_>) -> Findings {
    let mut out = Findings::default();
    let mut statuses = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        match c.status().await {
            Ok(s) => statuses.push(s),
            Err(e) => {
                out.violation(format!("node{i} does not answer after the run: {e}"));
                return out;
            }
        }
    }
    let first = &statuses[0];
    for (i, s) in statuses.iter().enumerate().skip(1) {
        if (s.height, s.head_hash, s.state_root)
            != (first.height, first.head_hash, first.state_root)
        {
            out.violation(format!(
                "node{i} ends at height {} head {} root {}, node0 at height {} head {} root {}",
                s.height,
                s.head_hash,
                s.state_root,
                first.height,
                first.head_hash,
                first.state_root
            ));
        }
    }
    let height = first.height;
    out.height = height;

    // The first node's chain, verified in full.
    let blocks = match chain(&clients[0], height).await {
        Ok(b) => b,
        Err(e) => {
            out.violation(format!("node0's chain cannot be read: {e}"));
            return out;
        }
    };
    let genesis = facts.genesis;
    let k = genesis.consensus.epoch_length().max(1);
    let mut trail = Trail::new(genesis);
    let mut parent: Option<BlockHash> = None;
    let mut sets = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        // The height asked for; a block that names another is wrong, not a reason to panic.
        let h = j as u64 + 1;
        if b.block.header.height != h {
            out.violation(format!(
                "node0 served a block of height {} as height {h}",
                b.block.header.height
            ));
            return out;
        }
        let set = match trail.set_at(h) {
            Ok(s) => s.clone(),
            Err(e) => {
                out.violation(format!("node0 block {h}: {e}"));
                return out;
            }
        };
        let expected_parent = if h == 1 { Some(genesis.hash()) } else { parent };
        if let Err(e) = verify_block(genesis, &set, &b.block, &b.certificate, expected_parent) {
            out.violation(format!("node0 block {h}: {e}"));
        }
        if b.hash != b.block.hash() {
            out.violation(format!("node0 block {h}: served hash is not the block's"));
        }
        if h.is_multiple_of(k)
            && let Err(e) = trail.follow(&b.block.header, &b.certificate)
        {
            out.violation(format!("node0 block {h}: {e}"));
        }
        parent = Some(b.block.hash());
        sets.push(set);
    }
    out.blocks = blocks.len() as u64;

    // Every other node: the same blocks, each certified.
    for (i, c) in clients.iter().enumerate().skip(1) {
        let h = statuses[i].height.min(height);
        match chain(c, h).await {
            Err(e) => out.violation(format!("node{i}'s chain cannot be read: {e}")),
            Ok(theirs) => {
                for (j, b) in theirs.iter().enumerate() {
                    let at = j as u64 + 1;
                    if b.block.hash() != blocks[j].block.hash() {
                        out.violation(format!(
                            "fork at height {at}: node{i} holds {}, node0 {}",
                            b.block.hash(),
                            blocks[j].hash
                        ));
                        continue;
                    }
                    if let Err(e) = check_header(genesis, &sets[j], &b.block.header, &b.certificate)
                    {
                        out.violation(format!("node{i} block {at}: {e}"));
                    }
                }
            }
        }
    }

    // Where every transaction is, and the model's replay.
    let mut at: HashMap<TxId, Vec<u64>> = HashMap::new();
    let mut slots: HashSet<(PublicKey, u64)> = HashSet::new();
    let mut model = Model::new(genesis);
    for (j, b) in blocks.iter().enumerate() {
        let h = j as u64 + 1;
        for t in &b.block.txs {
            let id = t.id();
            out.txs += 1;
            at.entry(id).or_default().push(h);
            slots.insert((t.tx.sender, t.tx.nonce));
            if facts.load_accounts.contains(&t.tx.sender) && !facts.history.signed.contains_key(&id)
            {
                out.violation(format!(
                    "transaction {id} at height {h} is from a load account but no client signed it"
                ));
            }
            if let Err(e) = model.apply(&t.tx) {
                out.violation(format!(
                    "transaction {id} at height {h} could not have executed: {e}"
                ));
            }
        }
    }
    out.committed_signed = at
        .keys()
        .filter(|id| facts.history.signed.contains_key(id))
        .count();
    for (id, hs) in &at {
        if hs.len() > 1 {
            out.violation(format!(
                "transaction {id} committed {} times, at heights {hs:?}",
                hs.len()
            ));
        }
    }

    // What the clients were told.
    for a in &facts.history.attempts {
        let here = at.get(&a.tx).and_then(|v| v.first().copied());
        let slot_taken = slots.contains(&(a.sender, a.nonce));
        match &a.answer {
            Answer::Committed { height: h, block } => match here {
                None => out.violation(format!(
                    "node{} answered that {} committed at height {h}, but no chain holds it",
                    a.node, a.tx
                )),
                Some(got) if got != *h => out.violation(format!(
                    "node{} answered that {} committed at height {h}; it is at height {got}",
                    a.node, a.tx
                )),
                Some(got) => {
                    let hash = blocks[got as usize - 1].hash.to_string();
                    if hash != *block {
                        out.violation(format!(
                            "node{} answered that {} committed in block {block}; height {got} is {hash}",
                            a.node, a.tx
                        ));
                    }
                }
            },
            Answer::Refused(code) if code == "already_committed" && here.is_none() => {
                out.violation(format!(
                    "node{} refused {} as already committed, but no chain holds it",
                    a.node, a.tx
                ));
            }
            Answer::Refused(code) if code == "stale_nonce" && !slot_taken => {
                out.violation(format!(
                    "node{} refused {} for a stale nonce {}, but no transaction of its sender with that nonce committed",
                    a.node, a.tx, a.nonce
                ));
            }
            Answer::Acked if !slot_taken => {
                let lost_memory = facts
                    .restarts
                    .iter()
                    .any(|&(n, t)| n == a.node && t >= a.at);
                if !lost_memory {
                    out.violation(format!(
                        "node{} acknowledged {} (nonce {}, sent at {:.1} s) and stayed up, but it never committed",
                        a.node,
                        a.tx,
                        a.nonce,
                        a.at.as_secs_f64()
                    ));
                }
            }
            _ => {}
        }
    }

    // Every account the model knows, on every node.
    for (i, c) in clients.iter().enumerate() {
        for (key, want) in &model.accounts {
            match c.account(key).await {
                Err(e) => out.violation(format!("node{i}: account {key}: {e}")),
                Ok(v) if (v.balance, v.nonce) != (want.balance, want.nonce) => {
                    out.violation(format!(
                        "node{i}: account {key} has balance {} nonce {}; the model says {} and {}",
                        v.balance, v.nonce, want.balance, want.nonce
                    ));
                }
                Ok(_) => {}
            }
            if i == 0 {
                out.accounts_checked += 1;
            }
        }
    }
    out
}
