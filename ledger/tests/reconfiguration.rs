//! Validator-set changes in the ledger: approval by an admin or by a quorum of validator
//! votes, the one-pending rule, activation at the epoch boundary with the header announcing the
//! new set, certificates and proposers checked against the set in force, the handover gate,
//! and the set surviving a restart.

use cairn_crypto::SigningKey;
use cairn_ledger::testkit::{TestChain, key};
use cairn_ledger::{
    BlockError, ChangePolicy, ConsensusConfig, ConsensusKind, Ledger, MemoryStore, Payload,
    PbftParams, RaftParams, RocksStore, Trust, TxRejection, Validator, ValidatorChange,
    VerifiedTransaction, genesis::validators_hash,
};

/// Blocks per epoch in these tests.
const K: u64 = 4;

fn chain(kind: ConsensusKind, validators: usize, policy: ChangePolicy) -> TestChain {
    let mut c = TestChain::new(kind, validators, 3, 1_000);
    c.genesis.consensus = match kind {
        ConsensusKind::Raft => ConsensusConfig::Raft(RaftParams {
            epoch_length: K,
            validator_changes: policy,
            ..RaftParams::default()
        }),
        ConsensusKind::Pbft => ConsensusConfig::Pbft(PbftParams {
            checkpoint_interval: K,
            validator_changes: policy,
            ..PbftParams::default()
        }),
    };
    c
}

fn v(tx: cairn_ledger::SignedTransaction) -> VerifiedTransaction {
    VerifiedTransaction::trusted(tx)
}

fn newcomer(i: u64) -> (SigningKey, Validator) {
    let k = key("newcomer", i);
    let validator = Validator {
        name: format!("new{i}"),
        public_key: k.public_key(),
    };
    (k, validator)
}

fn change_tx(
    c: &TestChain,
    from: &SigningKey,
    nonce: u64,
    change: ValidatorChange,
) -> VerifiedTransaction {
    v(c.tx(from, nonce, Payload::ChangeValidators { change }))
}

/// Commits empty blocks by `signers` until the tip is at `height`.
fn empty_to(c: &TestChain, l: &mut Ledger<MemoryStore>, height: u64, signers: &[SigningKey]) {
    while l.tip().height < height {
        let (block, _) = c.commit_by(l, &[], signers).expect("empty block");
        assert!(
            block.header.next_validators.is_none() || block.header.height.is_multiple_of(K),
            "a new set is announced only at a boundary"
        );
    }
}

/// Why the next block with `tx` alone would leave it out.
fn refusal(c: &TestChain, l: &Ledger<MemoryStore>, tx: &VerifiedTransaction) -> TxRejection {
    let built = l
        .build_block(std::slice::from_ref(tx), c.params(l.tip().height + 1))
        .expect("build");
    built.dropped.first().expect("refused").1.clone()
}

#[test]
fn an_admin_adds_a_validator_in_force_after_the_next_boundary() {
    let c = chain(ConsensusKind::Raft, 3, ChangePolicy::Admins);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let (new_key, newcomer) = newcomer(1);
    let add = ValidatorChange::Add {
        validator: newcomer.clone(),
    };
    // A user is not an admin.
    assert_eq!(
        refusal(&c, &l, &change_tx(&c, &c.accounts[1], 0, add.clone())),
        TxRejection::NotAdmin {
            sender: c.accounts[1].public_key()
        }
    );
    c.commit(&mut l, &[change_tx(&c, &c.accounts[0], 0, add.clone())])
        .expect("approved at height 1");
    let pending = l.pending_change().expect("read").expect("pending");
    assert_eq!((pending.approved_at, pending.boundary), (1, K));
    assert_eq!(pending.validators.len(), 4);
    // One change at a time.
    let (_, other) = self::newcomer(2);
    assert_eq!(
        refusal(
            &c,
            &l,
            &change_tx(
                &c,
                &c.accounts[0],
                1,
                ValidatorChange::Add { validator: other }
            )
        ),
        TxRejection::ChangePending {
            in_force_from: K + 1
        }
    );
    empty_to(&c, &mut l, K - 1, &c.validators);
    assert_eq!(
        l.validators().len(),
        3,
        "still the genesis set before the boundary"
    );
    let (boundary, _) = c.commit(&mut l, &[]).expect("boundary block");
    let announced = boundary.header.next_validators.clone().expect("announced");
    assert_eq!(announced.last(), Some(&newcomer));
    assert_eq!(boundary.header.validators_hash, c.genesis.validators_hash());
    assert_eq!(l.validators_in_force().since(), K);
    assert_eq!(l.validators_in_force().list(), &announced[..]);
    assert!(l.pending_change().expect("read").is_none());
    // The next block carries the new set's hash; the newcomer may propose it.
    let mut signers = c.validators.clone();
    signers.push(new_key.clone());
    let mut by_newcomer = signers.clone();
    by_newcomer.rotate_left(3);
    let (next, _) = c
        .commit_by(&mut l, &[], &by_newcomer)
        .expect("new set's block");
    assert_eq!(next.header.validators_hash, validators_hash(&announced));
    assert_eq!(next.header.proposer, new_key.public_key());
}

#[test]
fn a_removed_validator_can_neither_propose_nor_certify_after_the_boundary() {
    let c = chain(ConsensusKind::Raft, 3, ChangePolicy::Admins);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let gone = c.validators[0].public_key();
    c.commit(
        &mut l,
        &[change_tx(
            &c,
            &c.accounts[0],
            0,
            ValidatorChange::Remove { public_key: gone },
        )],
    )
    .expect("approved");
    empty_to(&c, &mut l, K, &c.validators);
    assert!(!l.validators().contains(&gone));
    // Validator 0 proposes and certifies the next block: refused on both counts.
    let built = l
        .build_block(&[], c.params(K + 1))
        .expect("build by the removed validator");
    assert!(matches!(
        l.execute_block(&built.block, Trust::Verify),
        Err(BlockError::ProposerNotValidator(k)) if k == gone
    ));
    let certificate = c.certify(&built.block);
    assert!(l.verify_certificate(&built.block, &certificate).is_err());
    // The rest of the set goes on.
    c.commit_by(&mut l, &[], &c.validators[1..])
        .expect("remaining validators");
}

#[test]
fn validators_vote_a_change_in_and_a_quorum_approves_it() {
    let c = chain(ConsensusKind::Pbft, 4, ChangePolicy::Validators);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let (_, newcomer) = newcomer(1);
    let add = ValidatorChange::Add {
        validator: newcomer,
    };
    // An admin cannot approve it alone, nor vote: only validators in force vote.
    assert_eq!(
        refusal(&c, &l, &change_tx(&c, &c.accounts[0], 0, add.clone())),
        TxRejection::SenderNotValidator {
            sender: c.accounts[0].public_key()
        }
    );
    // Validators vote from their validator keys, which are not members' accounts.
    c.commit(&mut l, &[change_tx(&c, &c.validators[0], 0, add.clone())])
        .expect("first vote");
    assert_eq!(
        refusal(&c, &l, &change_tx(&c, &c.validators[0], 1, add.clone())),
        TxRejection::AlreadyVoted
    );
    c.commit(&mut l, &[change_tx(&c, &c.validators[1], 0, add.clone())])
        .expect("second vote");
    assert!(
        l.pending_change().expect("read").is_none(),
        "2 of 4 is not a quorum"
    );
    assert_eq!(l.validator_votes().expect("votes").len(), 2);
    c.commit(&mut l, &[change_tx(&c, &c.validators[2], 0, add.clone())])
        .expect("third vote");
    let pending = l
        .pending_change()
        .expect("read")
        .expect("approved by 3 of 4");
    assert_eq!(pending.change, add);
    assert!(
        l.validator_votes().expect("votes").is_empty(),
        "votes spent"
    );
    empty_to(&c, &mut l, K, &c.validators);
    assert_eq!(l.validators().len(), 5);
}

#[test]
fn votes_expire_after_the_epoch_following_the_one_they_were_cast_in() {
    let c = chain(ConsensusKind::Pbft, 4, ChangePolicy::Validators);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let (_, newcomer) = newcomer(1);
    let add = ValidatorChange::Add {
        validator: newcomer,
    };
    c.commit(&mut l, &[change_tx(&c, &c.validators[0], 0, add.clone())])
        .expect("vote at height 1");
    // Height 1 is in epoch (0, K]; it counts through (K, 2K], not in (2K, 3K].
    empty_to(&c, &mut l, 2 * K, &c.validators);
    assert!(l.validator_votes().expect("votes").is_empty());
    c.commit(&mut l, &[change_tx(&c, &c.validators[1], 0, add.clone())])
        .expect("vote");
    c.commit(&mut l, &[change_tx(&c, &c.validators[2], 0, add.clone())])
        .expect("vote");
    assert!(
        l.pending_change().expect("read").is_none(),
        "an expired vote does not make the quorum"
    );
    // The expired voter votes again, and that completes it.
    c.commit(&mut l, &[change_tx(&c, &c.validators[0], 1, add)])
        .expect("fresh vote");
    assert!(l.pending_change().expect("read").is_some());
}

#[test]
fn changes_that_break_the_fault_model_or_the_set_are_refused() {
    let c = chain(ConsensusKind::Pbft, 4, ChangePolicy::Validators);
    let l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let vote = |change| change_tx(&c, &c.validators[0], 0, change);
    let k = |i: usize| c.validators[i].public_key();
    assert_eq!(
        refusal(&c, &l, &vote(ValidatorChange::Remove { public_key: k(3) })),
        TxRejection::TooFewValidators {
            engine: ConsensusKind::Pbft,
            min: 4,
            now: 4
        }
    );
    let outsider = key("outsider", 0).public_key();
    assert_eq!(
        refusal(
            &c,
            &l,
            &vote(ValidatorChange::Remove {
                public_key: outsider
            })
        ),
        TxRejection::NotValidator { key: outsider }
    );
    assert_eq!(
        refusal(
            &c,
            &l,
            &vote(ValidatorChange::Rotate {
                public_key: k(1),
                new_key: k(2)
            })
        ),
        TxRejection::AlreadyValidator { key: k(2) }
    );
    assert_eq!(
        refusal(
            &c,
            &l,
            &vote(ValidatorChange::Add {
                validator: Validator {
                    name: "node1".into(),
                    public_key: outsider
                }
            })
        ),
        TxRejection::ValidatorNameTaken {
            name: "node1".into()
        }
    );
    // Stateless: caught before any state is read.
    let bad_name = vote(ValidatorChange::Add {
        validator: Validator {
            name: "tab\there".into(),
            public_key: outsider,
        },
    });
    assert!(matches!(
        cairn_ledger::validation::check_stateless(bad_name.signed(), c.chain_id()),
        Err(TxRejection::BadValidatorName { .. })
    ));
    let same = vote(ValidatorChange::Rotate {
        public_key: k(1),
        new_key: k(1),
    });
    assert!(matches!(
        cairn_ledger::validation::check_stateless(same.signed(), c.chain_id()),
        Err(TxRejection::RotationToSameKey { .. })
    ));
}

#[test]
fn a_rotated_key_takes_the_old_ones_place_and_name() {
    let c = chain(ConsensusKind::Pbft, 4, ChangePolicy::Admins);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let fresh = key("rotated", 0);
    let rotate = ValidatorChange::Rotate {
        public_key: c.validators[2].public_key(),
        new_key: fresh.public_key(),
    };
    c.commit(&mut l, &[change_tx(&c, &c.accounts[0], 0, rotate)])
        .expect("approved");
    empty_to(&c, &mut l, K, &c.validators);
    let list = l.validators_in_force().list();
    assert_eq!(list[2].name, "node2");
    assert_eq!(list[2].public_key, fresh.public_key());
    let mut signers = c.validators.clone();
    signers[2] = fresh;
    // PBFT certificates of the first n - f signers: the rotated key among them.
    c.commit_by(&mut l, &[], &signers)
        .expect("certified by the new key");
}

#[test]
fn nothing_is_built_or_executed_above_an_uncommitted_set_change() {
    let c = chain(ConsensusKind::Raft, 3, ChangePolicy::Admins);
    let mut l = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("open");
    let (_, newcomer) = newcomer(1);
    c.commit(
        &mut l,
        &[change_tx(
            &c,
            &c.accounts[0],
            0,
            ValidatorChange::Add {
                validator: newcomer,
            },
        )],
    )
    .expect("approved");
    empty_to(&c, &mut l, K - 1, &c.validators);
    let boundary = l.build_block(&[], c.params(K)).expect("build boundary");
    assert!(boundary.execution.next_validators().is_some());
    let above = l.build_block_on(&[&boundary.execution], &[], c.params(K + 1));
    assert!(matches!(
        above,
        Err(BlockError::AcrossHandover { height, boundary }) if height == K + 1 && boundary == K
    ));
    // A block above it from elsewhere is refused the same way.
    let mut twin = Ledger::open(MemoryStore::new(), c.genesis.clone()).expect("twin");
    c.commit(
        &mut twin,
        &[change_tx(
            &c,
            &c.accounts[0],
            0,
            ValidatorChange::Add {
                validator: self::newcomer(1).1,
            },
        )],
    )
    .expect("same change");
    empty_to(&c, &mut twin, K, &c.validators);
    let next = twin
        .build_block(&[], c.params(K + 1))
        .expect("next on the twin");
    assert!(matches!(
        l.execute_block_on(&[&boundary.execution], &next.block, Trust::PreVerified),
        Err(BlockError::AcrossHandover { .. })
    ));
    // A boundary block that leaves the announcement out is refused.
    let mut silent = boundary.block.clone();
    silent.header.next_validators = None;
    assert!(matches!(
        l.execute_block(&silent, Trust::PreVerified),
        Err(BlockError::WrongNextValidators { height, .. }) if height == K
    ));
    // After the boundary commits, a block still naming the old set is refused.
    c.commit(&mut l, &[]).expect("boundary");
    let mut stale = next.block.clone();
    stale.header.validators_hash = c.genesis.validators_hash();
    assert!(matches!(
        l.execute_block(&stale, Trust::PreVerified),
        Err(BlockError::WrongValidatorSet { .. })
    ));
    assert!(l.execute_block(&next.block, Trust::PreVerified).is_ok());
}

#[test]
fn the_set_in_force_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = chain(ConsensusKind::Raft, 3, ChangePolicy::Admins);
    let (_, newcomer) = newcomer(1);
    let expected = {
        let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("store");
        let mut l = Ledger::open(store, c.genesis.clone()).expect("open");
        c.commit(
            &mut l,
            &[change_tx(
                &c,
                &c.accounts[0],
                0,
                ValidatorChange::Add {
                    validator: newcomer,
                },
            )],
        )
        .expect("approved");
        while l.tip().height < K + 1 {
            c.commit(&mut l, &[]).expect("block");
        }
        l.validators_in_force().clone()
    };
    let store = RocksStore::open(dir.path(), &c.genesis.hash()).expect("reopen");
    let l = Ledger::open(store, c.genesis.clone()).expect("open again");
    assert_eq!(l.validators_in_force(), &expected);
    assert_eq!((expected.since(), expected.list().len()), (K, 4));
}
