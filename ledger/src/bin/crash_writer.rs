//! Test helper for `tests/crash.rs`: appends blocks to a RocksDB store as fast as it can and
//! prints `committed <height>` after each commit returns, until it is killed.
//!
//! Usage: `cairn-crash-writer --dir DIR [--blocks N]`

use std::io::Write;
use std::path::PathBuf;

use cairn_ledger::testkit::TestChain;
use cairn_ledger::{ConsensusKind, Ledger, Payload, RocksStore, StateView, VerifiedTransaction};

/// The chain the writer and the crash test share.
fn chain() -> TestChain {
    TestChain::new(ConsensusKind::Raft, 1, 16, 1_000_000)
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let mut dir = None;
    let mut blocks = u64::MAX;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--blocks" => blocks = args.next().ok_or("--blocks N")?.parse()?,
            "--print-genesis" => {
                println!("{}", chain().genesis.to_json());
                return Ok(());
            }
            other => {
                return Err(
                    format!("unknown argument {other}; usage: --dir DIR [--blocks N]").into(),
                );
            }
        }
    }
    let dir = dir.ok_or("--dir DIR is required")?;
    let c = chain();
    let store = RocksStore::open(&dir, &c.genesis.hash())?;
    let mut ledger = Ledger::open(store, c.genesis.clone())?;
    let stdout = std::io::stdout();
    for _ in 0..blocks {
        let height = ledger.tip().height + 1;
        let n = c.accounts.len();
        let mut txs = Vec::with_capacity(n + 1);
        for (i, k) in c.accounts.iter().enumerate() {
            let nonce = ledger.account(&k.public_key())?.map_or(0, |a| a.nonce);
            let to = c.accounts[(i + 1) % n].public_key();
            let amount = 1 + (height + i as u64) % 7;
            txs.push(VerifiedTransaction::trusted(
                c.transfer(k, nonce, to, amount),
            ));
        }
        let k = &c.accounts[(height % n as u64) as usize];
        let nonce = ledger.account(&k.public_key())?.map_or(0, |a| a.nonce) + 1;
        txs.push(VerifiedTransaction::trusted(c.tx(
            k,
            nonce,
            Payload::PutRecord {
                key: format!("h{height}"),
                value: height.to_le_bytes().to_vec(),
            },
        )));
        c.commit(&mut ledger, &txs)?;
        let mut out = stdout.lock();
        writeln!(out, "committed {height}")?;
        out.flush()?;
    }
    Ok(())
}
