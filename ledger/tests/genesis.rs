//! The genesis JSON: parsing, every refusal, and a hash that ignores JSON formatting.

use cairn_ledger::testkit::TestChain;
use cairn_ledger::{ConsensusKind, Genesis, GenesisError};

fn sample() -> Genesis {
    TestChain::new(ConsensusKind::Pbft, 4, 3, 1_000).genesis
}

#[test]
fn json_round_trip_and_hash_ignores_formatting() {
    let g = sample();
    let pretty = g.to_json();
    assert!(
        pretty.contains("\"pbft\""),
        "consensus is written by name:\n{pretty}"
    );
    let parsed = Genesis::from_json(&pretty).expect("parse");
    assert_eq!(parsed, g);
    let compact = serde_json::to_string(&g).expect("json");
    assert_eq!(
        Genesis::from_json(&compact).expect("parse").hash(),
        g.hash()
    );
}

#[test]
fn refusals() {
    let json = |g: &Genesis| serde_json::to_value(g).expect("json");
    let parse = |v: serde_json::Value| Genesis::from_json(&v.to_string());

    let mut v = json(&sample());
    v["surprise"] = 1.into();
    assert!(
        matches!(parse(v), Err(GenesisError::Json(_))),
        "unknown field"
    );

    let mut v = json(&sample());
    v["validators"][0]["public_key"] = "zz".into();
    assert!(matches!(parse(v), Err(GenesisError::Json(_))), "bad hex");

    type Case = (&'static str, fn(&mut Genesis), fn(&GenesisError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "chain id with space",
            |g| g.chain_id = "a b".into(),
            |e| matches!(e, GenesisError::BadChainId(_)),
        ),
        (
            "no validators",
            |g| g.validators.clear(),
            |e| matches!(e, GenesisError::ValidatorCount(0)),
        ),
        (
            "validator twice",
            |g| g.validators[1].public_key = g.validators[0].public_key,
            |e| {
                matches!(
                    e,
                    GenesisError::DuplicateKey {
                        what: "validator",
                        ..
                    }
                )
            },
        ),
        (
            "account twice",
            |g| g.accounts[1].public_key = g.accounts[0].public_key,
            |e| {
                matches!(
                    e,
                    GenesisError::DuplicateKey {
                        what: "account",
                        ..
                    }
                )
            },
        ),
        (
            "key off the curve",
            |g| {
                g.validators[0].public_key = cairn_crypto::PublicKey({
                    let mut b = [0u8; 32];
                    b[0] = 2;
                    b
                })
            },
            |e| {
                matches!(
                    e,
                    GenesisError::BadKey {
                        what: "validator",
                        ..
                    }
                )
            },
        ),
        (
            "supply overflow",
            |g| g.accounts[0].balance = u64::MAX,
            |e| matches!(e, GenesisError::SupplyOverflow),
        ),
        (
            "no members",
            |g| g.accounts.iter_mut().for_each(|a| a.role = None),
            |e| matches!(e, GenesisError::NoMembers),
        ),
        (
            "zero checkpoint interval",
            |g| {
                if let cairn_ledger::ConsensusConfig::Pbft(p) = &mut g.consensus {
                    p.checkpoint_interval = 0;
                }
            },
            |e| matches!(e, GenesisError::BadParams(_)),
        ),
        (
            "raft timeouts inverted",
            |g| {
                g.consensus = cairn_ledger::ConsensusConfig::Raft(cairn_ledger::RaftParams {
                    election_timeout_min_ms: 500,
                    election_timeout_max_ms: 400,
                    heartbeat_interval_ms: 100,
                    ..Default::default()
                })
            },
            |e| matches!(e, GenesisError::BadParams(_)),
        ),
        (
            "raft epoch of no blocks",
            |g| {
                g.consensus = cairn_ledger::ConsensusConfig::Raft(cairn_ledger::RaftParams {
                    epoch_length: 0,
                    ..Default::default()
                })
            },
            |e| matches!(e, GenesisError::BadParams(_)),
        ),
    ];
    for (desc, mutate, want) in cases {
        let mut g = sample();
        mutate(&mut g);
        let err = Genesis::from_json(&g.to_json()).expect_err(desc);
        assert!(want(&err), "{desc}: {err}");
    }
}

#[test]
fn load_reports_missing_file() {
    let err =
        Genesis::load(std::path::Path::new("/nonexistent/genesis.json")).expect_err("missing");
    assert!(matches!(err, GenesisError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/genesis.json"));
}

#[test]
fn every_field_changes_the_hash() {
    let g = sample();
    let mut a = g.clone();
    a.genesis_time_ms += 1;
    let mut b = g.clone();
    b.accounts[0].balance += 1;
    let mut c = g.clone();
    c.validators[0].name.push('0');
    for (desc, other) in [("time", a), ("balance", b), ("validator name", c)] {
        assert_ne!(other.hash(), g.hash(), "{desc}");
    }
}

#[test]
fn addresses_are_not_part_of_the_genesis() {
    // A genesis written when validators carried addresses gets an error that says what to
    // do, naming the validator, instead of serde's "unknown field".
    let mut v = serde_json::to_value(sample()).expect("json");
    v["validators"][2]["address"] = "/ip4/10.0.0.3/tcp/26000".into();
    let e = Genesis::from_json(&v.to_string()).expect_err("address refused");
    assert!(
        matches!(&e, GenesisError::AddressInGenesis { validator } if validator == "node2"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("node2") && text.contains("[p2p] bootstrap"),
        "{text}"
    );
}

#[test]
fn validator_names_are_short_printable_and_unique() {
    // Names are in the chain's identity and in every header's validator list.
    for (name, why) in [
        (String::new(), "1..=64"),
        ("n".repeat(65), "1..=64"),
        ("node\n1".to_string(), "control"),
        ("node0".to_string(), "two validators"),
    ] {
        let mut g = sample();
        g.validators[1].name = name.clone();
        let e = g.validate().expect_err("refused");
        assert!(
            matches!(&e, GenesisError::BadValidatorName { name: n, .. } if *n == name)
                && e.to_string().contains(why),
            "{name:?}: {e}"
        );
    }
}
