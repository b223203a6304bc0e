//! Test vectors for docs/PROTOCOL.md: fixed keys and inputs → exact bytes, ids, signatures
//! and roots. The file `docs/test-vectors.json` is what a client in another language checks
//! itself against; this test recomputes every value and compares.
//!
//! After a deliberate format change: `CAIRN_WRITE_VECTORS=1 cargo test --test vectors`, then
//! review the diff of the JSON file like any other protocol change.

use cairn_crypto::{Hash, SigningKey, codec, merkle, signing_bytes};
use cairn_ledger::certificate::{PbftCommitStatement, RaftCommitStatement};
use cairn_ledger::domains;
use cairn_ledger::state::{Account, StateKey};
use cairn_ledger::{
    BlockParams, ConsensusConfig, Genesis, GenesisAccount, Ledger, MemoryStore, Payload,
    PbftParams, Role, Transaction, Validator, VerifiedTransaction,
};
use serde_json::{Value, json};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/test-vectors.json");

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn vectors() -> Value {
    let alice = SigningKey::from_seed([0x01; 32]);
    let bob = SigningKey::from_seed([0x02; 32]);
    let validator = SigningKey::from_seed([0x03; 32]);
    let chain = "cairn-vectors";
    let genesis = Genesis {
        chain_id: chain.into(),
        genesis_time_ms: 1_767_225_600_000,
        consensus: ConsensusConfig::Pbft(PbftParams::default()),
        validators: vec![Validator {
            name: "v0".into(),
            public_key: validator.public_key(),
            address: "/ip4/127.0.0.1/tcp/26000".into(),
        }],
        accounts: vec![
            GenesisAccount {
                public_key: alice.public_key(),
                balance: 1_000_000,
                role: Some(Role::Admin),
            },
            GenesisAccount {
                public_key: bob.public_key(),
                balance: 0,
                role: None,
            },
        ],
    };
    let tx = |nonce: u64, payload: Payload| Transaction {
        chain_id: chain.into(),
        sender: alice.public_key(),
        nonce,
        payload,
    };
    let txs = [
        (
            "transfer",
            tx(
                0,
                Payload::Transfer {
                    to: bob.public_key(),
                    amount: 1000,
                },
            ),
        ),
        (
            "put_record",
            tx(
                1,
                Payload::PutRecord {
                    key: "greeting".into(),
                    value: b"hello".to_vec(),
                },
            ),
        ),
        (
            "add_member",
            tx(
                2,
                Payload::AddMember {
                    account: bob.public_key(),
                    role: Role::User,
                },
            ),
        ),
        (
            "remove_member",
            tx(
                3,
                Payload::RemoveMember {
                    account: bob.public_key(),
                },
            ),
        ),
    ];
    let mut tx_vectors = serde_json::Map::new();
    let mut signed = Vec::new();
    for (name, t) in &txs {
        let s = t.clone().sign(&alice);
        tx_vectors.insert(
            (*name).into(),
            json!({
                "transaction": serde_json::to_value(t).expect("json"),
                "unsigned_encoding": h(&codec::encode(t)),
                "tx_id": t.id().to_string(),
                "signing_bytes": h(&signing_bytes(domains::TX_SIGN, chain, &codec::encode(t))),
                "signature": s.signature.to_string(),
                "signed_encoding": h(&codec::encode(&s)),
            }),
        );
        signed.push(s);
    }

    let ids: Vec<Hash> = signed.iter().map(|s| s.id().0).collect();
    let proof = merkle::prove(&ids, 2).expect("index 2");

    let mut ledger = Ledger::open(MemoryStore::new(), genesis.clone()).expect("open");
    let genesis_root = ledger.tip().state_root;
    let verified: Vec<VerifiedTransaction> = signed
        .iter()
        .cloned()
        .map(VerifiedTransaction::trusted)
        .collect();
    let built = ledger
        .build_block(
            &verified,
            BlockParams {
                proposer: validator.public_key(),
                round: 0,
                timestamp_ms: 1_767_225_601_000,
                max_txs: 10,
            },
        )
        .expect("build");
    assert!(
        built.dropped.is_empty(),
        "vector transactions all execute: {:?}",
        built.dropped
    );
    let header = built.block.header.clone();
    let block_hash = header.hash();
    let raft = RaftCommitStatement {
        height: 1,
        block_hash,
        term: 4,
    };
    let pbft = PbftCommitStatement {
        view: 0,
        seq: 1,
        block_hash,
    };
    let writes: Vec<Value> = built
        .execution
        .writes()
        .iter()
        .map(|(k, v)| json!({ "key": h(k), "value": v.as_deref().map(h) }))
        .collect();
    let cert = cairn_ledger::CommitCertificate::Pbft(cairn_ledger::PbftCertificate {
        view: 0,
        seq: 1,
        votes: vec![cairn_ledger::CommitVote {
            validator: validator.public_key(),
            signature: pbft.sign(chain, &validator),
        }],
    });
    let block_encoding = codec::encode(&built.block);
    assert!(
        header.proves_inclusion(&signed[2].id(), &proof),
        "proof checks against the header"
    );
    ledger
        .commit(built.block, cert.clone(), built.execution)
        .expect("commit");

    json!({
        "about": "Cairn protocol test vectors; see docs/PROTOCOL.md. Seeds are RFC 8032 secret keys.",
        "domains": {
            "tx_sign": domains::TX_SIGN.as_str(),
            "tx_id": domains::TX_ID.as_str(),
            "block_hash": domains::BLOCK_HASH.as_str(),
            "genesis_hash": domains::GENESIS_HASH.as_str(),
            "state_root": domains::STATE_ROOT.as_str(),
            "raft_commit": domains::RAFT_COMMIT.as_str(),
            "pbft_commit": domains::PBFT_COMMIT.as_str(),
        },
        "keys": {
            "alice": { "seed": h(&[0x01; 32]), "public_key": alice.public_key().to_string() },
            "bob": { "seed": h(&[0x02; 32]), "public_key": bob.public_key().to_string() },
            "validator": { "seed": h(&[0x03; 32]), "public_key": validator.public_key().to_string() },
        },
        "transactions": tx_vectors,
        "merkle": {
            "leaves": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "leaf_hash_0": merkle::leaf_hash(&ids[0]).to_string(),
            "root": merkle::root(&ids).to_string(),
            "empty_root": merkle::root(&[]).to_string(),
            "proof_of_index_2": serde_json::to_value(&proof).expect("json"),
        },
        "genesis": {
            "json": serde_json::to_value(&genesis).expect("json"),
            "encoding": h(&codec::encode(&genesis)),
            "hash": genesis.hash().to_string(),
            "state_root": genesis_root.to_string(),
            "alice_account_key": h(&StateKey::Account(alice.public_key()).to_bytes()),
            "alice_account_value": h(&codec::encode(&Account { balance: 1_000_000, nonce: 0, role: Some(Role::Admin) })),
        },
        "block_1": {
            "header": serde_json::to_value(&header).expect("json"),
            "header_encoding": h(&codec::encode(&header)),
            "hash": block_hash.to_string(),
            "tx_root": header.tx_root.to_string(),
            "writes": writes,
            "state_root": header.state_root.to_string(),
            "block_encoding_sha256": Hash::sha256(&block_encoding).to_string(),
            "raft_commit_statement": { "encoding": h(&codec::encode(&raft)), "signature": raft.sign(chain, &validator).to_string() },
            "pbft_commit_statement": { "encoding": h(&codec::encode(&pbft)), "signature": pbft.sign(chain, &validator).to_string() },
            "pbft_certificate_encoding": h(&codec::encode(&cert)),
        },
    })
}

#[test]
fn test_vectors_match_the_file() {
    let computed = vectors();
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&computed).expect("json") + "\n";
        std::fs::write(PATH, text).expect("write vectors");
        return;
    }
    let text = std::fs::read_to_string(PATH).expect("docs/test-vectors.json is present");
    let on_file: Value = serde_json::from_str(&text).expect("vectors file is JSON");
    // Compare section by section for a readable failure.
    let (Value::Object(a), Value::Object(b)) = (&computed, &on_file) else {
        panic!("objects")
    };
    for (k, v) in a {
        assert_eq!(
            Some(v),
            b.get(k),
            "vector section {k:?} differs from {PATH}"
        );
    }
    assert_eq!(a.len(), b.len(), "sections");
}

#[test]
fn vectors_decode_back() {
    // The byte strings on file decode to the values they claim to encode.
    let text = std::fs::read_to_string(PATH).expect("vectors");
    let v: Value = serde_json::from_str(&text).expect("json");
    for (name, t) in v["transactions"].as_object().expect("map") {
        let bytes = hex::decode(t["signed_encoding"].as_str().expect("hex")).expect("hex");
        let s: cairn_ledger::SignedTransaction = codec::decode(&bytes).expect(name);
        assert_eq!(
            s.id().to_string(),
            t["tx_id"].as_str().expect("id"),
            "{name}"
        );
        assert_eq!(s.verify_signature(), Ok(()), "{name}");
    }
}
