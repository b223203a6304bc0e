//! The data lifecycle with real processes (a 4-node PBFT network under load): an online
//! backup, restored into a new home whose node then rejoins with the same state root as the
//! others; an export taken from a running node, imported into an empty home (same tip, same
//! state root), and refused with the block it was in when a byte of it is flipped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_crypto::SigningKey;
use cairn_ledger::ConsensusKind;
use common::{Net, arg, free_port, node_cmd, write_home};

const WAIT: Duration = Duration::from_secs(60);

/// Block `h`'s hash and state root as node `i` serves them.
async fn block_at(net: &Net, i: usize, h: u64) -> (String, String) {
    let (code, b) = net.get(i, &format!("/api/v1/blocks/{h}")).await;
    assert_eq!(code, 200, "{b}");
    (
        b["hash"].as_str().expect("hash").to_string(),
        b["block"]["header"]["state_root"]
            .as_str()
            .expect("root")
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_export_and_import_keep_the_chain_whole() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 8);
    // The node a backup is restored into: a new key, an observer the validators let in.
    let restored = net.add_node();
    let observer = net.nodes[restored].key.public_key();
    for i in 0..4 {
        net.configure(i, "p2p", &format!("observers = [\"{observer}\"]"));
        net.start(i).await;
    }
    net.wait_ready().await;

    // Load: transfers from every account, round and round, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let http = net.http.clone();
        let apis: Vec<String> = net.nodes[..4].iter().map(|n| n.api.clone()).collect();
        let txs: Vec<Vec<u8>> = (0..400u64)
            .map(|k| {
                let from = (k % 8) as usize;
                let to = net.accounts[(from + 1) % 8].public_key();
                serde_json::to_vec(&net.transfer(from, k / 8, to, 1)).expect("json")
            })
            .collect();
        tokio::spawn(async move {
            let mut sent = 0;
            for (k, body) in txs.into_iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let url = format!("{}/api/v1/txs", apis[k % apis.len()]);
                if http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        })
    };
    net.wait_for("some blocks", WAIT, || async {
        net.height(0).await.is_some_and(|h| h >= 5)
    })
    .await;

    // An online backup of node 1, and a refusal to write into a directory in use.
    let backups = net.dir.path().join("backups");
    let b1 = backups.join("node1");
    let (ok, out, err) = node_cmd(&[
        "backup",
        "--home",
        arg(&net.nodes[1].home),
        "--to",
        arg(&b1),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("backed up chain") && out.contains("checked"),
        "{out}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b1.join("BACKUP.json")).expect("manifest"))
            .expect("json");
    let backed_up = manifest["height"].as_u64().expect("height");
    assert!(backed_up >= 5, "{manifest}");
    let (ok, _, err) = node_cmd(&[
        "backup",
        "--home",
        arg(&net.nodes[1].home),
        "--to",
        arg(&b1),
    ]);
    assert!(!ok && err.contains("is not empty"), "{err}");

    // An export from node 0 while it runs.
    let file = net.dir.path().join("blocks.cairn");
    let (ok, out, err) = node_cmd(&["export", "--home", arg(&net.nodes[0].home), arg(&file)]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("exported blocks 1..="), "{out}");

    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("load");
    assert!(sent > 0, "the load committed nothing");

    // Import into an empty home: the same tip and state root as node 0 at that height.
    let fresh = net.dir.path().join("fresh");
    write_home(
        &fresh,
        &SigningKey::generate(),
        &net.genesis,
        free_port(),
        "fresh",
        &[],
    );
    let (ok, out, err) = node_cmd(&["import", "--home", arg(&fresh), arg(&file)]);
    assert!(ok, "{out}{err}");
    let tip: u64 = out
        .split("tip ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no tip in {out:?}"));
    assert!(tip >= backed_up, "{out}");
    let (hash, root) = block_at(&net, 0, tip).await;
    assert!(
        out.contains(&hash) && out.contains(&root),
        "import says {out}, node 0 has {hash} {root}"
    );

    // A flipped byte in the middle of the export: refused, naming the block it was in; the
    // blocks before it stay applied.
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let bad = net.dir.path().join("bad.cairn");
    std::fs::write(&bad, &bytes).expect("write");
    let other = net.dir.path().join("other");
    write_home(
        &other,
        &SigningKey::generate(),
        &net.genesis,
        free_port(),
        "other",
        &[],
    );
    let (ok, out, err) = node_cmd(&["import", "--home", arg(&other), arg(&bad)]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("the record of block") || err.contains("block "),
        "{err}"
    );
    assert!(err.contains("the store keeps what was applied"), "{err}");

    // A backup whose manifest does not match its store is refused, and leaves no store.
    let forged = backups.join("forged");
    std::fs::create_dir_all(forged.join("store")).expect("dir");
    for e in std::fs::read_dir(b1.join("store")).expect("store") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), forged.join("store").join(e.file_name())).expect("copy");
    }
    let mut m = manifest.clone();
    m["height"] = (backed_up + 1).into();
    m["block_hash"] = "00".repeat(32).into();
    std::fs::write(forged.join("BACKUP.json"), m.to_string()).expect("write");
    let (ok, _, err) = node_cmd(&[
        "restore",
        "--home",
        arg(&net.nodes[restored].home),
        "--from",
        arg(&forged),
    ]);
    assert!(!ok && err.contains("not intact"), "{err}");
    assert!(!net.nodes[restored].home.join("data").exists());
    assert!(!net.nodes[restored].home.join("data.restoring").exists());
    // A home without a store has nothing to back up.
    let (ok, _, err) = node_cmd(&[
        "backup",
        "--home",
        arg(&net.nodes[restored].home),
        "--to",
        arg(&backups.join("none")),
    ]);
    assert!(!ok && err.contains("holds no store"), "{err}");

    // Restore the backup into the observer's home, start it: it catches up and agrees.
    let (ok, out, err) = node_cmd(&[
        "restore",
        "--home",
        arg(&net.nodes[restored].home),
        "--from",
        arg(&b1),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("at block {backed_up}")), "{out}");
    assert!(err.contains("no record of the votes"), "{err}");
    let (ok, _, err) = node_cmd(&[
        "restore",
        "--home",
        arg(&net.nodes[restored].home),
        "--from",
        arg(&b1),
    ]);
    assert!(!ok && err.contains("is not empty"), "{err}");
    net.start(restored).await;
    let h = net.height(0).await.expect("height");
    net.wait_agree(h, WAIT).await;
    let (hash, root) = block_at(&net, restored, h).await;
    assert_eq!((hash, root), block_at(&net, 0, h).await);
}
