//! The data commands of `cairn-node`: export, import, backup, restore.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_ledger::{Genesis, Ledger, RocksReader, RocksStore, StoreError};
use cairn_node::config::Home;
use cairn_node::{archive, backup};

fn genesis(h: &Home) -> anyhow::Result<Genesis> {
    if !h.genesis().exists() {
        bail!(
            "{} is missing: a home needs the network's genesis.json (`cairn-node init --home {}`, then copy it in)",
            h.genesis().display(),
            h.0.display()
        );
    }
    Genesis::load(&h.genesis()).with_context(|| format!("reading {}", h.genesis().display()))
}

/// Opens the home's store for writing, saying so when a running node holds it.
fn open_exclusive(h: &Home, genesis: &Genesis) -> anyhow::Result<RocksStore> {
    match RocksStore::open(&h.data(), &genesis.hash()) {
        Ok(s) => Ok(s),
        Err(StoreError::Engine(msg)) if msg.contains("lock") => bail!(
            "the store in {} is in use: stop the node first ({msg})",
            h.data().display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening the store in {}", h.data().display())),
    }
}

pub fn export(home: PathBuf, from: u64, to: Option<u64>, file: &Path) -> anyhow::Result<()> {
    let h = Home(home);
    let g = genesis(&h)?;
    // A secondary open: the node may be running and writing meanwhile.
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let reader = RocksReader::open_secondary(&h.data(), scratch.path())
        .with_context(|| format!("opening the store in {}", h.data().display()))?;
    let e = archive::export(&reader, g.hash(), from, to, file)?;
    println!(
        "exported blocks {}..={} of chain {} to {} ({} bytes)",
        e.from,
        e.to,
        g.chain_id,
        file.display(),
        e.bytes
    );
    Ok(())
}

pub fn import(home: PathBuf, file: &Path) -> anyhow::Result<()> {
    let h = Home(home);
    let g = genesis(&h)?;
    let store = open_exclusive(&h, &g)?;
    let mut ledger = Ledger::open(store, g.clone()).context("opening the ledger")?;
    let start = ledger.tip().height;
    let result = archive::import(&mut ledger, file, |height| {
        if height.is_multiple_of(1000) {
            eprintln!("applied block {height}");
        }
    });
    let tip = ledger.tip();
    match result {
        Ok(i) => {
            println!(
                "imported {} blocks ({} already present): tip {} {}, state root {}",
                i.applied, i.skipped, tip.height, tip.hash, tip.state_root
            );
            Ok(())
        }
        Err(e) => bail!(
            "{e}; the store keeps what was applied before it: {} blocks, tip {}",
            tip.height - start,
            tip.height
        ),
    }
}

pub fn backup(home: PathBuf, to: &Path) -> anyhow::Result<()> {
    let h = Home(home);
    let g = genesis(&h)?;
    let m = backup::backup(&h, &g, to)?;
    println!(
        "backed up chain {} at block {} {} (state root {}) to {}; checked: the state matches the root the tip's certificate covers",
        m.chain_id,
        m.height,
        m.block_hash,
        m.state_root,
        to.display()
    );
    Ok(())
}

pub fn restore(home: PathBuf, from: &Path) -> anyhow::Result<()> {
    let h = Home(home);
    let g = genesis(&h)?;
    let m = backup::restore(from, &h, &g)?;
    println!(
        "restored chain {} at block {} {} into {}; checked: the state matches the root the tip's certificate covers; start the node with `cairn-node run`",
        m.chain_id,
        m.height,
        m.block_hash,
        h.data().display()
    );
    eprintln!(
        "note: the restored store has no record of the votes this node cast. Start it only where \
         the node it replaces no longer runs (to replace a validator, its home needs that \
         validator's node_key and config.toml); it syncs the blocks after {} from its peers. A \
         validator restored this way should start while the rest of the network is healthy, \
         or under a new key (`cairn validator rotate`)",
        m.height
    );
    Ok(())
}

pub fn join(home: PathBuf, peers: &[String]) -> anyhow::Result<()> {
    let h = Home(home);
    let g = genesis(&h)?;
    if peers.is_empty() {
        bail!("name at least one peer's API with --peer http://HOST:PORT");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = std::time::Instant::now();
    let j = rt.block_on(cairn_node::join::join(&h, &g, peers))?;
    for (peer, why) in &j.refused {
        eprintln!("refused {peer}: {why}");
    }
    println!(
        "joined chain {} at block {} {} from a snapshot ({} entries in {} chunks, each checked against the certified state root) in {:.1} s; blocks below {} are not in this store. Next: `cairn-node run --home {}`",
        g.chain_id,
        j.height,
        j.block_hash,
        j.entries,
        j.chunks,
        started.elapsed().as_secs_f64(),
        j.height,
        h.0.display()
    );
    Ok(())
}
