//! Joining from a state snapshot with real processes, both engines: a fresh node joins a
//! network at height 2,000 from a snapshot (one peer serving a tampered chunk is refused, the
//! chunk comes from another), then follows the chain; another fresh node replays it from
//! genesis, and both end at the same block and state root as the network. Then a failed
//! validator is replaced by a node joined from a snapshot under its key, which must vote for
//! anything to commit. Times to catch up are printed (`--nocapture`), not asserted: they
//! are the closing note's, not a test's.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cairn_ledger::ConsensusKind;
use common::{Net, arg, bin, node_cmd};
use serde_json::{Value, json};

const BLOCKS: u64 = 2_000;
const WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbft_a_node_joins_from_a_snapshot_and_replaces_a_failed_validator() {
    let mut net = joins(ConsensusKind::Pbft, 4).await;
    replace_validator(&mut net, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_a_node_joins_from_a_snapshot_and_replaces_a_failed_validator() {
    let mut net = joins(ConsensusKind::Raft, 3).await;
    replace_validator(&mut net, 3).await;
}

/// The last of `n` validators fails for good: its store is lost. A new home under its key
/// joins from a snapshot of the others and runs as that validator again; then with validator
/// 0 down too, nothing commits unless the replaced one votes (Raft: 2 of 3; PBFT: 3 of 4).
async fn replace_validator(net: &mut Net, n: usize) {
    let last = n - 1;
    net.kill(last);
    let home = net.nodes[last].home.clone();
    std::fs::remove_dir_all(home.join("data")).expect("lose the store");
    std::fs::remove_dir_all(home.join("snapshots")).expect("and its snapshots");
    let mut args = vec!["join".to_string(), "--home".into(), arg(&home).into()];
    for i in 0..last {
        args.push("--peer".into());
        args.push(net.nodes[i].api.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = node_cmd(&args);
    assert!(ok, "{out}{err}");
    net.start(last).await;
    let tip = net.height(0).await.expect("height");
    net.wait_agree(tip, WAIT).await;
    net.kill(0);
    let to = net.accounts[2].public_key();
    let tx = net.transfer(3, BLOCKS / 40, to, 1);
    let (code, v) = net.submit(1, &tx, true).await;
    assert_eq!(code, 200, "the replaced validator votes: {v}");
}

/// A network of `n` validators of `kind` at height BLOCKS, with a node joined from a snapshot
/// and one replayed from genesis, both following it.
async fn joins(kind: ConsensusKind, n: usize) -> Net {
    let accounts = 40;
    let mut net = Net::new(kind, n, accounts);
    let (snap, replay) = (net.add_node(), net.add_node());
    let observers = format!(
        "observers = [\"{}\", \"{}\"]",
        net.nodes[snap].key.public_key(),
        net.nodes[replay].key.public_key()
    );
    for i in 0..n {
        net.configure(i, "p2p", &observers);
        // One transaction a block: BLOCKS transactions make BLOCKS blocks, and the chain
        // stops there, so every validator's snapshot is of the same block.
        net.configure(i, "consensus", "block_txs_max = 1");
        net.configure(i, "storage", &format!("snapshot_interval = {BLOCKS}"));
        net.start(i).await;
    }
    net.wait_ready().await;

    // BLOCKS transfers, in batches.
    let per = BLOCKS / accounts as u64;
    let txs: Vec<Value> = (0..per)
        .flat_map(|nonce| (0..accounts).map(move |a| (a, nonce)))
        .map(|(a, nonce)| {
            let to = net.accounts[(a + 1) % accounts].public_key();
            serde_json::to_value(net.transfer(a, nonce, to, 1)).expect("json")
        })
        .collect();
    for (k, batch) in txs.chunks(1000).enumerate() {
        let body = json!({ "txs": batch }).to_string().into_bytes();
        let (code, v) = net.post(k % n, "/api/v1/txs/batch", body).await;
        assert_eq!(code, 200, "{v}");
    }
    net.wait_agree(BLOCKS, WAIT).await;
    for i in 0..n {
        net.wait_for(&format!("node {i}'s snapshot"), WAIT, || async {
            net.try_get(i, "/api/v1/snapshots")
                .await
                .is_some_and(|v| v["heights"][0] == BLOCKS)
        })
        .await;
    }

    // Node 2 serves a tampered chunk: a byte of each of its chunk files flipped.
    let dir = net.nodes[2].home.join("snapshots").join(BLOCKS.to_string());
    for e in std::fs::read_dir(&dir).expect("snapshot dir") {
        let p = e.expect("entry").path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("chunk-"))
        {
            let mut b = std::fs::read(&p).expect("read");
            let at = b.len() - 1;
            b[at] ^= 0x01;
            std::fs::write(&p, b).expect("write");
        }
    }

    // A join killed (SIGKILL) at seeded moments leaves no store a node would start on, and
    // a later join completes.
    killed_joins(&net, &net.nodes[0].api).await;

    // Join from nodes 0, 1 and 2: the block from 0, the manifest from 1, the chunk from 2
    // (refused), then from 0.
    let started = Instant::now();
    let home = net.nodes[snap].home.clone();
    let apis: Vec<String> = (0..3).map(|i| net.nodes[i].api.clone()).collect();
    let (ok, out, err) = node_cmd(&[
        "join",
        "--home",
        arg(&home),
        "--peer",
        &apis[0],
        "--peer",
        &apis[1],
        "--peer",
        &apis[2],
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("at block {BLOCKS}")), "{out}");
    assert!(
        err.contains(&format!("refused {}: chunk 0", apis[2])),
        "the tampered chunk is refused: {err}"
    );
    net.start(snap).await;
    net.wait_agree(BLOCKS, WAIT).await;
    let snap_time = started.elapsed();

    // The same from genesis, by block sync.
    let started = Instant::now();
    net.start(replay).await;
    net.wait_agree(BLOCKS, WAIT).await;
    let replay_time = started.elapsed();
    eprintln!(
        "{kind:?}: time to the tip at height {BLOCKS}: from a snapshot {:.2} s (join and start), by replay from genesis {:.2} s",
        snap_time.as_secs_f64(),
        replay_time.as_secs_f64()
    );

    // The joined node follows new blocks, and says why it has no old ones.
    let to = net.accounts[1].public_key();
    let tx = net.transfer(0, per, to, 1);
    let (code, v) = net.submit(snap, &tx, true).await;
    assert_eq!(code, 200, "{v}");
    let h = v["receipt"]["height"].as_u64().expect("height");
    net.wait_agree(h, WAIT).await;
    let (code, v) = net.get(snap, "/api/v1/blocks/5").await;
    assert_eq!(code, 410, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("joined from a snapshot")),
        "{v}"
    );
    let (code, _) = net.get(replay, "/api/v1/blocks/5").await;
    assert_eq!(code, 200);
    // An event replay from height 1 starts at the snapshot's block, the first it has.
    let first = first_replayed(&net, snap).await;
    assert_eq!(
        first, BLOCKS,
        "replay starts at the joined node's first block"
    );

    // A second join into the same home is refused: it has a store.
    let (ok, _, err) = node_cmd(&["join", "--home", arg(&home), "--peer", &apis[0]]);
    assert!(!ok && err.contains("holds a store already"), "{err}");
    net
}

/// Runs `join` into a scratch home and kills it at a spread of moments, then lets one finish:
/// after each kill there is no `data/` or a whole one, never a partial store.
async fn killed_joins(net: &Net, peer: &str) {
    let home = net.dir.path().join("killed-join");
    common::write_home(
        &home,
        &cairn_crypto::SigningKey::generate(),
        &net.genesis,
        common::free_port(),
        "killed",
        &[],
    );
    // Seeded moments (CRASH_SEED=<n> replays a run), from as soon as the process starts to
    // past the time a join takes here.
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("killed joins: CRASH_SEED={seed}");
    let mut x = seed;
    let mut complete = false;
    for _ in 0..6 {
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let delay_ms = (z ^ (z >> 31)) % 150;
        let mut child = Command::new(bin())
            .args(["join", "--home", arg(&home), "--peer", peer])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn join");
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _ = child.kill();
        let status = child.wait().expect("wait");
        // Only a finished join renames its store into place.
        if home.join("data").exists() {
            assert!(
                status.success() || status.code().is_none(),
                "{status} (CRASH_SEED={seed})"
            );
            complete = true;
            break;
        }
    }
    if !complete {
        let (ok, out, err) = node_cmd(&["join", "--home", arg(&home), "--peer", peer]);
        assert!(
            ok,
            "a join after the kills completes (CRASH_SEED={seed}): {out}{err}"
        );
    }
    // The store is whole: a backup of it checks the state against its tip's certified root.
    let (ok, out, err) = node_cmd(&[
        "backup",
        "--home",
        arg(&home),
        "--to",
        arg(&home.join("check")),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("at block {BLOCKS}")), "{out}");
}

/// The height of the first block event `GET /api/v1/events?from_height=1` sends on node `i`.
async fn first_replayed(net: &Net, i: usize) -> u64 {
    use futures::StreamExt;
    let resp = net
        .http
        .get(format!("{}/api/v1/events?from_height=1", net.nodes[i].api))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("events");
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let mut reader = cairn_api::sse::SseReader::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("an event within the deadline")
            .expect("stream open")
            .expect("chunk");
        for data in reader.push(&chunk).expect("events of a sane size") {
            let ev: Value = serde_json::from_str(&data).expect("event json");
            if ev["type"] == "block" {
                return ev["height"].as_u64().expect("height");
            }
        }
    }
}
