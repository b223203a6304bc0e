//! Account and record proofs from real nodes (a 4-node PBFT network), checked offline against
//! the genesis alone, as `cairn account --verify` and `cairn record get --verify` do: every
//! node's proofs verify, and a tampered proof, a proof against a root no quorum certified and
//! a proof for another chain are refused.

mod common;

use std::time::Duration;

use cairn_api::{AccountView, RecordView};
use cairn_cli::verify::verify_state_proof;
use cairn_crypto::{Hash, PublicKey, SigningKey, codec};
use cairn_ledger::state::{Account, StateKey};
use cairn_ledger::{ConsensusKind, Genesis, Payload, SetInForce, Transaction};
use common::{Net, wallet};

const WAIT: Duration = Duration::from_secs(30);

async fn proved_account(net: &Net, node: usize, id: &PublicKey) -> AccountView {
    let (code, v) = net
        .get(node, &format!("/api/v1/accounts/{id}?prove=true"))
        .await;
    assert_eq!(code, 200, "{v}");
    serde_json::from_value(v).expect("an account view")
}

/// Verifies an account's proof against `genesis`; returns the account proved.
fn check(genesis: &Genesis, v: &AccountView) -> Result<Option<Account>, String> {
    let p = v.proof.as_ref().ok_or("no proof")?;
    let key = StateKey::Account(v.id).to_bytes();
    let value = verify_state_proof(genesis, &SetInForce::genesis(genesis), p, &key)?;
    Ok(value.map(|b| codec::decode(&b).expect("an account")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_from_every_node_verify_offline_and_forgeries_are_refused() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 8);
    net.start_all().await;
    net.wait_ready().await;

    // Some history: transfers between the accounts, and a record.
    for i in 0..6 {
        let to = net.accounts[i + 1].public_key();
        let tx = net.transfer(i, 0, to, 10 + i as u64);
        let (code, v) = net.submit(i % 4, &tx, true).await;
        assert_eq!(code, 200, "{v}");
    }
    let owner = net.accounts[7].public_key();
    let put = Transaction {
        chain_id: net.genesis.chain_id.clone(),
        sender: owner,
        nonce: 0,
        payload: Payload::PutRecord {
            key: "motto".into(),
            value: b"verify, then trust".to_vec(),
        },
    }
    .sign(&net.accounts[7]);
    let (code, v) = net.submit(0, &put, true).await;
    assert_eq!(code, 200, "{v}");
    let h = v["receipt"]["height"].as_u64().expect("height");
    net.wait_agree(h, WAIT).await;

    // Every node's proof of every account verifies against the genesis, and proves what the
    // node shows; an account nobody holds is proved absent.
    let nobody = SigningKey::from_seed([0x77; 32]).public_key();
    let mut ids: Vec<PublicKey> = net.accounts.iter().map(|k| k.public_key()).collect();
    ids.push(nobody);
    for node in 0..4 {
        for id in &ids {
            let v = proved_account(&net, node, id).await;
            let proved = check(&net.genesis, &v).unwrap_or_else(|e| panic!("node {node}: {e}"));
            assert_eq!(proved.is_some(), v.exists);
            assert_eq!(proved.map_or(0, |a| a.balance), v.balance);
            assert_eq!(proved.map_or(0, |a| a.nonce), v.nonce);
            assert!(v.height >= h, "read at the committed height");
        }
    }
    let sender = proved_account(&net, 1, &net.accounts[0].public_key()).await;
    assert_eq!(sender.balance, 1_000_000 - 10, "the first sender paid 10");

    // Forgeries. A flipped sibling; another balance claimed; the node's key swapped for
    // another account's.
    let good = proved_account(&net, 2, &net.accounts[3].public_key()).await;
    let p = good.proof.clone().expect("proof");
    assert!(!p.proof.siblings.is_empty());
    let mut flipped = good.clone();
    flipped.proof.as_mut().expect("proof").proof.siblings[0].0[31] ^= 1;
    let e = check(&net.genesis, &flipped).expect_err("a flipped sibling");
    assert!(e.contains("leads to root"), "{e}");
    let mut richer = good.clone();
    let mut a: Account =
        codec::decode(&hex::decode(p.value.as_ref().expect("value")).expect("hex"))
            .expect("account");
    a.balance += 1_000;
    richer.proof.as_mut().expect("proof").value = Some(hex::encode(codec::encode(&a)));
    let e = check(&net.genesis, &richer).expect_err("another value");
    assert!(e.contains("not the one claimed"), "{e}");
    let other = StateKey::Account(net.accounts[4].public_key()).to_bytes();
    let e = verify_state_proof(&net.genesis, &SetInForce::genesis(&net.genesis), &p, &other)
        .expect_err("another key");
    assert!(e.contains("is for key"), "{e}");

    // A root no quorum certified: the header carries the root of a forged state (the proof
    // then leads to it), so the certificate no longer matches the header.
    let mut uncertified = richer.clone();
    {
        let pv = uncertified.proof.as_mut().expect("proof");
        let leaf = pv.proof.leaf.as_mut().expect("leaf");
        leaf.value_hash = Hash::sha256(&codec::encode(&a));
        let forged_root = forged_root(&pv.proof, &StateKey::Account(good.id).to_bytes());
        pv.header.as_mut().expect("header").state_root = forged_root;
    }
    let e = check(&net.genesis, &uncertified).expect_err("an uncertified root");
    assert!(e.contains("certificate"), "{e}");

    // Another chain: the same proof checked against a genesis of another chain id.
    let mut other_chain = net.genesis.clone();
    other_chain.chain_id = "another-chain".into();
    let e = check(&other_chain, &good).expect_err("another chain");
    assert!(e.contains("chain"), "{e}");

    // A record's proof, from another node.
    let (code, r) = net
        .get(
            3,
            &format!("/api/v1/accounts/{owner}/records/motto?prove=true"),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    let r: RecordView = serde_json::from_value(r).expect("record view");
    let value = verify_state_proof(
        &net.genesis,
        &SetInForce::genesis(&net.genesis),
        r.proof.as_ref().expect("proof"),
        &StateKey::Record(owner, "motto".into()).to_bytes(),
    )
    .expect("record proof");
    assert_eq!(value.as_deref(), Some(&b"verify, then trust"[..]));

    // An absent record: without a proof a 404, with one its absence proved.
    let (code, _) = net
        .get(1, &format!("/api/v1/accounts/{owner}/records/nothing"))
        .await;
    assert_eq!(code, 404);
    let (code, r) = net
        .get(
            1,
            &format!("/api/v1/accounts/{owner}/records/nothing?prove=true"),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    let r: RecordView = serde_json::from_value(r).expect("record view");
    assert!(r.absent);
    let value = verify_state_proof(
        &net.genesis,
        &SetInForce::genesis(&net.genesis),
        r.proof.as_ref().expect("proof"),
        &StateKey::Record(owner, "nothing".into()).to_bytes(),
    )
    .expect("proof of absence");
    assert_eq!(value, None);

    // Bad query values are refused; without `prove` nothing changes.
    let (code, v) = net
        .get(0, &format!("/api/v1/accounts/{owner}?prove=yes"))
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("bad_query")),
        "{v}"
    );
    let (code, v) = net.get(0, &format!("/api/v1/accounts/{owner}")).await;
    assert_eq!(code, 200);
    assert!(v.get("proof").is_none(), "{v}");

    // The wallet: `--verify` succeeds against the network's genesis and fails (exit 8)
    // against another chain's.
    let genesis = net.nodes[0].home.join("genesis.json");
    let g = genesis.to_str().expect("path");
    let id = net.accounts[3].public_key().to_string();
    let (code, out) = wallet(&net, 1, &["account", &id, "--verify", "--genesis", g]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verified: proof against the state root of block"),
        "{out}"
    );
    let (code, out) = wallet(
        &net,
        2,
        &[
            "record",
            "get",
            &owner.to_string(),
            "motto",
            "--verify",
            "--genesis",
            g,
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verify, then trust") && out.contains("verified"),
        "{out}"
    );
    let (code, out) = wallet(
        &net,
        2,
        &[
            "record",
            "get",
            &owner.to_string(),
            "nothing",
            "--verify",
            "--genesis",
            g,
        ],
    );
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("proved absent"), "{out}");
    let other_path = net.dir.path().join("other-genesis.json");
    std::fs::write(
        &other_path,
        serde_json::to_vec_pretty(&other_chain).expect("json"),
    )
    .expect("write");
    let (code, out) = wallet(
        &net,
        1,
        &[
            "account",
            &id,
            "--verify",
            "--genesis",
            other_path.to_str().expect("path"),
        ],
    );
    assert_eq!(code, Some(8), "{out}");
    assert!(out.contains("INVALID"), "{out}");
    let (code, out) = wallet(&net, 1, &["account", &id, "--genesis", g]);
    assert_eq!(
        code,
        Some(2),
        "--genesis without --verify is a usage error: {out}"
    );
}

/// The root a proof leads to from its own leaf: what a forger would put in a header.
fn forged_root(p: &cairn_ledger::StateProof, key: &[u8]) -> Hash {
    let path = Hash::sha256(key);
    let leaf = p.leaf.expect("leaf");
    let mut acc = cairn_ledger::state_tree::leaf_hash(&leaf.key_hash, &leaf.value_hash);
    for (i, s) in p.siblings.iter().enumerate().rev() {
        let bit = (path.0[i / 8] >> (7 - i % 8)) & 1 == 1;
        acc = if bit {
            cairn_ledger::state_tree::node_hash(s, &acc)
        } else {
            cairn_ledger::state_tree::node_hash(&acc, s)
        };
    }
    acc
}
