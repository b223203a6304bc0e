//! Crash test in the style of sled's: a child process appends blocks to a RocksDB store and
//! reports each height whose commit returned; the parent kills it with SIGKILL at random
//! moments. After every kill the store must open, hold contiguous heights including every
//! reported one, and replay from genesis to the same state root and state.
//!
//! `CRASH_SEED=<n>` replays a run's kill schedule.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cairn_ledger::audit::audit_store;
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{ChainRead, ConsensusKind, RocksStore};

const ROUNDS: usize = 24;

/// xorshift64*: enough randomness for a kill schedule, replayable from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn kill_9_at_random_moments_never_loses_a_committed_block() -> anyhow::Result<()> {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    eprintln!("crash test seed: CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let genesis = TestChain::new(ConsensusKind::Raft, 1, 16, 1_000_000).genesis;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db");
    let mut acknowledged = 0u64;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-crash-writer"))
            .arg("--dir")
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(h) = line.strip_prefix("committed ").and_then(|h| h.parse().ok())
                    && tx.send(h).is_err()
                {
                    break;
                }
            }
        });
        // One round in four kills at a random moment from spawn (possibly while the store is
        // opening and recovering); the others first see a new commit, then wait a random time.
        if round % 4 == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(40)));
        } else {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(h) => acknowledged = acknowledged.max(h),
                Err(e) => anyhow::bail!("round {round}: writer made no commit in 60 s: {e}"),
            }
            std::thread::sleep(Duration::from_millis(rng.below(120)));
        }
        child.kill()?; // SIGKILL
        child.wait()?;
        reader.join().expect("reader thread");
        while let Ok(h) = rx.try_recv() {
            acknowledged = acknowledged.max(h);
        }

        let store = RocksStore::open(&db, &genesis.hash())
            .map_err(|e| anyhow::anyhow!("round {round}: store does not open after kill: {e}"))?;
        if store.meta()?.is_none() {
            // Killed before the genesis state was written: legitimate only if nothing was
            // ever acknowledged.
            assert_eq!(
                acknowledged, 0,
                "round {round}: store lost its genesis (CRASH_SEED={seed})"
            );
            continue;
        }
        let tip = store.tip()?;
        assert!(
            tip.height >= acknowledged,
            "round {round}: acknowledged height {acknowledged} lost, tip is {} (CRASH_SEED={seed})",
            tip.height
        );
        // Replays every block with full verification: heights contiguous, links, certificates,
        // state roots, and the whole state equal to the replay.
        let report = audit_store(&store, &genesis)
            .map_err(|e| anyhow::anyhow!("round {round}: audit failed: {e} (CRASH_SEED={seed})"))?;
        assert_eq!(report.height, tip.height);
        drop(store);
    }
    assert!(acknowledged > 0, "the writer never committed");
    eprintln!("crash test: {ROUNDS} kills, {acknowledged} blocks acknowledged, all recovered");
    Ok(())
}
