//! Validator-set changes on running networks of real node processes (issue 13): a PBFT
//! network votes a fifth validator in, which syncs and then signs certificates, and votes one
//! out, which is refused from then on; a Raft network goes from 3 to 5 validators and back
//! under load without losing an acknowledged transaction. `cairn verify` follows the sets.

// Shared with the explorer's test, which uses all of it.
#[allow(dead_code)]
#[path = "common/browser.rs"]
mod browser;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::{
    ConsensusKind, Payload, PbftCommitStatement, SignedTransaction, Transaction, Validator,
    ValidatorChange,
};
use common::{Net, wallet};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(90);

/// The next nonce of `key`'s account, as node `i` knows it (0 for an account it has not
/// seen: a validator key that never voted).
async fn nonce(net: &Net, i: usize, key: &PublicKey) -> u64 {
    let (code, v) = net.get(i, &format!("/api/v1/accounts/{key}")).await;
    match code {
        200 => v["nonce"].as_u64().expect("nonce"),
        404 => 0,
        _ => panic!("account {key}: {code} {v}"),
    }
}

/// `signer`'s transaction for `change`, with its next nonce.
async fn change_tx(
    net: &Net,
    i: usize,
    signer: &SigningKey,
    change: &ValidatorChange,
) -> SignedTransaction {
    Transaction {
        chain_id: net.genesis.chain_id.clone(),
        sender: signer.public_key(),
        nonce: nonce(net, i, &signer.public_key()).await,
        payload: Payload::ChangeValidators {
            change: change.clone(),
        },
    }
    .sign(signer)
}

/// Submits `tx` to node `i` and waits for its commit; fails unless it committed.
async fn commit(net: &Net, i: usize, tx: &SignedTransaction) -> u64 {
    let (code, v) = net.submit(i, tx, true).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "committed", "{v}");
    v["receipt"]["height"].as_u64().expect("height")
}

/// The validators in force as node `i` shows them.
async fn set_at(net: &Net, i: usize) -> Vec<PublicKey> {
    match net.try_get(i, "/api/v1/validators").await {
        Some(Value::Array(vs)) => vs
            .iter()
            .filter_map(|v| v["public_key"].as_str()?.parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

async fn wait_set(net: &Net, nodes: &[usize], want: &[PublicKey]) {
    net.wait_for(
        &format!("nodes {nodes:?} showing a set of {}", want.len()),
        WITHIN,
        || async {
            for &i in nodes {
                if set_at(net, i).await != want {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

async fn role(net: &Net, i: usize) -> String {
    net.try_get(i, "/api/v1/status")
        .await
        .and_then(|s| s["role"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Transfers from account 1 to account 2 through node `via`, one after the other, each
/// waited for, until `stop`: the ids acknowledged as committed.
struct Load {
    stop: Arc<Mutex<bool>>,
    acked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(net: &Net, via: usize) -> Load {
        let url = format!("{}/api/v1/txs?wait=commit", net.nodes[via].api);
        let account = format!("{}/api/v1/accounts/", net.nodes[via].api);
        let (from, to) = (net.accounts[1].clone(), net.accounts[2].public_key());
        let chain_id = net.genesis.chain_id.clone();
        let http = net.http.clone();
        let stop = Arc::new(Mutex::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut next = 0u64;
            while !*s.lock().expect("lock") {
                let tx = Transaction {
                    chain_id: chain_id.clone(),
                    sender: from.public_key(),
                    nonce: next,
                    payload: Payload::Transfer { to, amount: 1 },
                }
                .sign(&from);
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&tx).expect("json"))
                    .send()
                    .await;
                let committed = match r {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["status"] == "committed"),
                    _ => false,
                };
                if committed {
                    a.lock().expect("lock").push(tx.id().to_string());
                    next += 1;
                } else {
                    // Not acknowledged: start again from what the chain has.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Ok(r) = http
                        .get(format!("{account}{}", from.public_key()))
                        .send()
                        .await
                        && let Ok(v) = r.json::<Value>().await
                    {
                        next = v["nonce"].as_u64().unwrap_or(next);
                    }
                }
            }
        });
        Load { stop, acked, task }
    }

    /// Stops and returns the acknowledged ids.
    async fn finish(self) -> Vec<String> {
        *self.stop.lock().expect("lock") = true;
        self.task.await.expect("load task");
        self.acked.lock().expect("lock").clone()
    }
}

/// `cairn <args>` that must succeed: its output.
fn wallet_ok(net: &Net, i: usize, args: &[&str]) -> String {
    let (code, out) = wallet(net, i, args);
    assert_eq!(code, Some(0), "cairn {args:?}: {out}");
    out
}

/// `cairn verify <what> --genesis …` against node `i`: its exit code and output.
fn verify(net: &Net, i: usize, what: &str) -> (Option<i32>, String) {
    let genesis = net.nodes[i].home.join("genesis.json");
    wallet(
        net,
        i,
        &["verify", what, "--genesis", genesis.to_str().expect("path")],
    )
}

/// The blocks that matter for following the sets verify offline: the first, every boundary
/// that changes the set and the block after it (the first of the new set), and the tip. (Every
/// block would be thousands of processes under load; the rule is the same for each.)
async fn verify_across_changes(net: &Net, i: usize, tip: u64, epoch: u64) -> usize {
    let mut heights = vec![1, tip];
    for e in (epoch..tip).step_by(epoch as usize) {
        let (code, b) = net.get(i, &format!("/api/v1/blocks/{e}")).await;
        assert_eq!(code, 200, "{b}");
        if !b["block"]["header"]["next_validators"].is_null() {
            heights.extend([e, e + 1]);
        }
    }
    for h in &heights {
        let (code, out) = verify(net, i, &h.to_string());
        assert_eq!(code, Some(0), "block {h}: {out}");
    }
    heights.len()
}

fn pbft_votes(cert: &Value) -> Vec<PublicKey> {
    cert["pbft"]["votes"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v["validator"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_votes_a_validator_in_and_one_out() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 3);
    for i in 0..4 {
        net.start(i).await;
    }
    net.wait_ready().await;
    let new = net.add_node();
    net.start(new).await;
    let keys: Vec<PublicKey> = net.nodes.iter().map(|n| n.key.public_key()).collect();

    // The policy is `validators`: three of four vote the fifth in (a quorum of the set), with
    // the wallet and their validator keys. The first proposes, the others vote by its id.
    for v in 0..3 {
        let seed = net.nodes[v].home.join("node_key");
        wallet_ok(
            &net,
            1,
            &[
                "key",
                "import",
                &format!("v{v}"),
                seed.to_str().expect("path"),
                "--insecure-plaintext",
            ],
        );
    }
    let new_key = keys[new].to_string();
    wallet_ok(
        &net,
        1,
        &[
            "validator",
            "add",
            "--name",
            "node4",
            "--key",
            &new_key,
            "--from",
            "v0",
            "--wait",
        ],
    );
    let listed: Value =
        serde_json::from_str(&wallet_ok(&net, 1, &["--json", "validator", "list"])).expect("json");
    let votes = listed["changes"]["votes"].as_array().expect("votes");
    assert_eq!(votes.len(), 1, "{listed}");
    let id = votes[0]["id"].as_str().expect("id").to_string();
    let human = wallet_ok(&net, 1, &["validator", "list"]);
    assert!(
        human.contains("vote by node0") && human.contains(&id),
        "{human}"
    );
    for v in ["v1", "v2"] {
        wallet_ok(
            &net,
            1,
            &["validator", "vote", &id[..12], "--from", v, "--wait"],
        );
    }
    let human = wallet_ok(&net, 1, &["validator", "list"]);
    assert!(
        human.contains("pending: add node4") || human.contains(&new_key),
        "approved (pending, or in force already): {human}"
    );
    // Votes count for an epoch or two: the load that drives the chain to the boundary
    // starts once the change is approved.
    let load = Load::start(&net, 1);
    wait_set(&net, &[0, 1, 2, 3, new], &keys[..5]).await;
    assert_ne!(role(&net, new).await, "observer");

    // With one of the old four stopped, a quorum of five needs the new validator's vote.
    net.kill(3);
    let tx = net.transfer(0, 0, net.accounts[2].public_key(), 5);
    let h = commit(&net, 0, &tx).await;
    let (code, b) = net.get(0, &format!("/api/v1/blocks/{h}")).await;
    assert_eq!(code, 200, "{b}");
    assert!(
        pbft_votes(&b["certificate"]).contains(&keys[new]),
        "the new validator signs: {b}"
    );
    net.start(3).await;

    // Four of five vote node0 out.
    let remove = ValidatorChange::Remove {
        public_key: keys[0],
    };
    // Sent together, so they land within the epoch or two a vote counts for.
    for v in [1, 2, 3, new] {
        let tx = change_tx(&net, 1, &net.nodes[v].key.clone(), &remove).await;
        let (code, v) = net.submit(1, &tx, false).await;
        assert_eq!(code, 202, "{v}");
    }
    let rest = vec![keys[1], keys[2], keys[3], keys[new]];
    wait_set(&net, &[1, 2, 3, new], &rest).await;
    // Refused from then on: no validator keeps a link to it.
    net.wait_for("node0 disconnected", WITHIN, || async {
        for i in [1, 2, 3, new] {
            let peers = net.try_get(i, "/api/v1/peers").await.unwrap_or_default();
            let listed = peers.as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["public_key"].as_str() == Some(&keys[0].to_string()))
            });
            if listed {
                return false;
            }
        }
        true
    })
    .await;

    // f = 1 of the new set stopped: it still commits.
    net.kill(2);
    let tx = net.transfer(0, 1, net.accounts[2].public_key(), 5);
    let tip = commit(&net, 1, &tx).await;
    let acked = load.finish().await;
    assert!(!acked.is_empty(), "the load committed transactions");
    for id in &acked {
        let (code, v) = net.get(1, &format!("/api/v1/txs/{id}")).await;
        assert!(code == 200 && v["status"] == "committed", "{id}: {v}");
    }

    // Offline verification follows both changes: every block from the genesis to the tip.
    let checked = verify_across_changes(&net, 1, tip, 10).await;
    assert_eq!(checked, 6, "two boundaries changed the set");
    for h in 2..tip {
        let (code, out) = verify(&net, 1, &h.to_string());
        assert_eq!(code, Some(0), "block {h}: {out}");
    }
    // A block after the removal, certified by the old set (node0 among the signers), is
    // refused.
    let (_, b) = net.get(1, &format!("/api/v1/blocks/{tip}")).await;
    let mut forged = b.clone();
    let statement = PbftCommitStatement {
        view: b["certificate"]["pbft"]["view"].as_u64().expect("view"),
        seq: tip,
        block_hash: serde_json::from_value(b["hash"].clone()).expect("hash"),
    };
    let votes: Vec<Value> = (0..4)
        .map(|v| {
            serde_json::json!({
                "validator": keys[v].to_string(),
                "signature": statement.sign(&net.genesis.chain_id, &net.nodes[v].key),
            })
        })
        .collect();
    forged["certificate"]["pbft"]["votes"] = Value::Array(votes);
    let file = net.dir.path().join("forged.json");
    std::fs::write(&file, forged.to_string()).expect("write");
    let (code, out) = verify(&net, 1, file.to_str().expect("path"));
    assert_eq!(code, Some(8), "{out}");

    // The explorer page follows the sets too (verify.js, in a real browser): the tip checks
    // against the set in force, and not against the genesis set.
    let mut page = browser::Browser::start().await;
    page.open(&format!("{}/#/block/{tip}", net.nodes[1].api))
        .await;
    let text = page
        .wait_text(
            &[
                "✓ the header names the validator set in force, followed from the genesis",
                "✓ Certificate verified:",
                "node4",
            ],
            WITHIN,
        )
        .await;
    assert!(!text.contains('✗'), "{text}");
    let genesis_only = page
        .eval(&format!(
            "(async () => {{
                const v = await (await fetch('/api/v1/blocks/{tip}')).json();
                const g = await (await fetch('/api/v1/genesis')).json();
                return (await window.cairnVerify.verifyBlock(v, g)).ok;
            }})()"
        ))
        .await;
    assert_eq!(
        genesis_only,
        Value::Bool(false),
        "the genesis set no longer certifies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_goes_from_three_to_five_validators_and_back_under_load() {
    let mut net = Net::new(ConsensusKind::Raft, 3, 3);
    for i in 0..3 {
        net.start(i).await;
    }
    net.wait_ready().await;
    let (a, b) = (net.add_node(), net.add_node());
    net.start(a).await;
    net.start(b).await;
    let keys: Vec<PublicKey> = net.nodes.iter().map(|n| n.key.public_key()).collect();
    let admin = net.accounts[0].clone();
    let load = Load::start(&net, 1);

    // The policy is `admins`: account 0's transaction approves each change.
    let mut set = keys[..3].to_vec();
    let mut members = vec![0, 1, 2];
    for (n, name) in [(a, "node3"), (b, "node4")] {
        let add = ValidatorChange::Add {
            validator: Validator {
                name: name.into(),
                public_key: keys[n],
            },
        };
        commit(&net, 1, &change_tx(&net, 1, &admin, &add).await).await;
        set.push(keys[n]);
        members.push(n);
        wait_set(&net, &members, &set).await;
    }
    net.wait_for("the new validators take part", WITHIN, || async {
        role(&net, a).await != "observer" && role(&net, b).await != "observer"
    })
    .await;
    // Node 2 is down while both removals take effect: on restart it syncs across them and
    // starts each new instance on the way.
    net.kill(2);
    for gone in [0, a] {
        let remove = ValidatorChange::Remove {
            public_key: keys[gone],
        };
        commit(&net, 1, &change_tx(&net, 1, &admin, &remove).await).await;
        set.retain(|k| *k != keys[gone]);
        wait_set(&net, &[1, b], &set).await;
        // It is refused from then on: it stays behind; stopped, so it is not waited for.
        net.kill(gone);
    }
    assert_eq!(set, vec![keys[1], keys[2], keys[b]]);
    net.start(2).await;
    wait_set(&net, &[2], &set).await;
    // A validator added on the running chain restarts as one: its store's set names it, with
    // no `p2p.observers` entry for its own key.
    net.kill(b);
    net.configure(b, "p2p", "observers = []");
    net.start(b).await;
    let next = nonce(&net, 2, &admin.public_key()).await;
    let tx = net.transfer(0, next, net.accounts[2].public_key(), 5);
    let tip = commit(&net, 2, &tx).await;
    let acked = load.finish().await;
    assert!(
        acked.len() > 10,
        "the load kept committing: {}",
        acked.len()
    );
    net.wait_agree(tip, WITHIN).await;
    for id in &acked {
        for i in [1, 2, b] {
            let (code, v) = net.get(i, &format!("/api/v1/txs/{id}")).await;
            assert!(
                code == 200 && v["status"] == "committed",
                "{id} on {i}: {v}"
            );
        }
    }
    let checked = verify_across_changes(&net, 1, tip, 10).await;
    assert_eq!(checked, 10, "four boundaries changed the set");
}
