//! The real binaries end to end: `cairn-testnet` starts `cairn-node` processes, `cairn`
//! drives them over HTTP. Both engines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cairn_api::{BlockView, ChainEvent, RecordPage, RecordView, StatusView, TxStatus, TxView};
use cairn_cli::output::{ExportedSeed, JsonFailure, KeyInfo};
use cairn_ledger::Payload;
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn bin(name: &str) -> PathBuf {
    // Cargo builds other packages' binaries for a test only if asked: they sit next to this
    // package's own once `cargo build --workspace --bins` ran (scripts/test.sh does).
    let p = Path::new(env!("CARGO_BIN_EXE_cairn-testnet")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before these tests (scripts/test.sh does)",
        p.display()
    );
    p
}

struct Testnet {
    dir: tempfile::TempDir,
}

/// A row of `cairn-testnet status --json`.
#[derive(Debug, Deserialize)]
struct Row {
    process: String,
    api: String,
    status: Option<StatusView>,
}

impl Row {
    fn up(&self) -> bool {
        self.process == "up"
    }

    fn height(&self) -> Option<u64> {
        self.status.as_ref().map(|s| s.height)
    }
}

impl Testnet {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn testnet(&self, args: &[&str]) -> Output {
        Command::new(bin("cairn-testnet"))
            .arg("--dir")
            .arg(self.path())
            .args(args)
            .env("CAIRN_NODE_BIN", bin("cairn-node"))
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run cairn-testnet")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.testnet(args);
        assert!(
            o.status.success(),
            "cairn-testnet {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn status(&self) -> Vec<Row> {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json")
    }

    fn api(&self, node: usize) -> String {
        self.status().swap_remove(node).api
    }

    fn wallet(&self, node: usize, args: &[&str]) -> Output {
        Command::new(bin("cairn"))
            .arg("--node")
            .arg(self.api(node))
            .arg("--keystore")
            .arg(self.path().join("accounts"))
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .env_remove("CAIRN_PASSPHRASE")
            .output()
            .expect("run cairn")
    }

    fn wallet_json<T: DeserializeOwned>(&self, node: usize, args: &[&str]) -> T {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = self.wallet(node, &a);
        assert!(
            o.status.success(),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).expect("wallet json")
    }

    /// Waits until every running node reports at least height `h`, all with one head.
    fn wait_agree(&self, h: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = self.status();
            let up: Vec<&Row> = st.iter().filter(|n| n.up()).collect();
            let heights: Vec<u64> = up.iter().filter_map(|n| n.height()).collect();
            if heights.len() == up.len() && heights.iter().all(|x| *x >= h) {
                // Same block at h everywhere.
                let hashes: Vec<_> = (0..st.len())
                    .filter(|i| st[*i].up())
                    .map(|i| {
                        self.wallet_json::<BlockView>(i, &["block", &h.to_string()])
                            .hash
                    })
                    .collect();
                assert!(
                    hashes.windows(2).all(|w| w[0] == w[1]),
                    "disagreement at {h}: {hashes:?}"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not reach height {h}: {st:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = self.testnet(&["down"]);
    }
}

fn up(engine: &str, nodes: &str) -> Testnet {
    let t = Testnet {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    t.ok(&[
        "init",
        "--force",
        "--nodes",
        nodes,
        "--consensus",
        engine,
        "--base-port",
        "0",
        "--chain-id",
        &format!("e2e-{engine}"),
    ]);
    let out = t.ok(&["up"]);
    assert!(out.contains("ready"), "{out}");
    t
}

/// The height of a transaction the wallet waited for; fails unless it is committed.
fn committed_height(v: &TxView) -> u64 {
    assert_eq!(v.status, TxStatus::Committed, "{v:?}");
    v.receipt
        .as_ref()
        .expect("a committed transaction has a receipt")
        .height
}

fn transfer_is_final_everywhere_and_verifies(engine: &str, nodes: &str) {
    let t = up(engine, nodes);
    let st = t.status();
    assert!(
        st.iter()
            .all(|n| n.up() && n.status.as_ref().is_some_and(|s| s.ready)),
        "{st:?}"
    );
    assert!(
        st.iter().all(|n| n
            .status
            .as_ref()
            .is_some_and(|s| s.chain_id == format!("e2e-{engine}"))),
        "the chain id given to init: {st:?}"
    );
    let human = t.ok(&["status"]);
    assert!(
        human.contains("HEIGHT") && human.contains("node0"),
        "{human}"
    );

    // A transfer made with the wallet, waited for until final.
    let v: TxView = t.wallet_json(
        1,
        &[
            "transfer", "--from", "account1", "--to", "account2", "--amount", "5", "--wait",
        ],
    );
    let h = committed_height(&v);
    t.wait_agree(h);
    let receiver = t
        .wallet_json::<KeyInfo>(0, &["key", "show", "account2"])
        .public_key;
    for node in 0..st.len() {
        let tx: TxView = t.wallet_json(node, &["tx", &v.id.to_string()]);
        assert_eq!(committed_height(&tx), h);
        let b: BlockView = t.wallet_json(node, &["block", &h.to_string()]);
        assert!(
            b.block.txs.iter().any(|x| x.id() == v.id
                && matches!(x.tx.payload, Payload::Transfer { to, amount: 5 } if to == receiver)),
            "the block at {h} holds the transfer"
        );
    }

    // Records: written with the wallet, read back from every node, one at a time and listed.
    let v: TxView = t.wallet_json(
        2,
        &[
            "record",
            "put",
            "greeting",
            "hello world",
            "--from",
            "account3",
            "--wait",
        ],
    );
    t.wait_agree(committed_height(&v));
    for node in 0..st.len() {
        let r: RecordView = t.wallet_json(node, &["record", "get", "account3", "greeting"]);
        assert_eq!(r.text.as_deref(), Some("hello world"), "{r:?}");
        let page: RecordPage = t.wallet_json(node, &["record", "list", "account3"]);
        assert_eq!(
            page.records.first().map(|r| r.key.as_str()),
            Some("greeting"),
            "{page:?}"
        );
    }
    let human = t.wallet(0, &["record", "get", "account3", "greeting"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("greeting = \"hello world\""));
    let missing = t.wallet(0, &["record", "get", "account3", "nothing here"]);
    assert_eq!(missing.status.code(), Some(5), "not found");

    // Offline verification: the real block passes; tampering with a transaction, the header
    // or the certificate fails with exit code 8.
    let genesis = t.path().join("genesis.json");
    let g = genesis.to_str().expect("path");
    let ok = t.wallet(0, &["verify", &h.to_string(), "--genesis", g]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let block: BlockView = t.wallet_json(0, &["block", &h.to_string()]);
    let file = t.path().join("block.json");
    std::fs::write(&file, serde_json::to_string(&block).expect("json")).expect("write");
    let from_file = t.wallet(0, &["verify", file.to_str().expect("path"), "--genesis", g]);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    let tamper = |f: &dyn Fn(&mut BlockView)| {
        let mut b = block.clone();
        f(&mut b);
        std::fs::write(&file, serde_json::to_string(&b).expect("json")).expect("write");
        let o = t.wallet(0, &["verify", file.to_str().expect("path"), "--genesis", g]);
        assert_eq!(
            o.status.code(),
            Some(8),
            "tampered block accepted: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    };
    tamper(&|b| {
        if let Payload::Transfer { amount, .. } = &mut b.block.txs[0].tx.payload {
            *amount = 6;
        }
    });
    tamper(&|b| b.block.header.timestamp_ms = 1);
    tamper(&|b| {
        let s = serde_json::to_string(&b.certificate).expect("json");
        // Flip one hex digit of the first signature in the certificate.
        let i = s.find("signature").expect("a signature") + 14;
        let mut bytes = s.into_bytes();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        b.certificate = serde_json::from_slice(&bytes).expect("json");
    });

    // Chaos: kill, restart, pause, resume; the network keeps committing, the node catches up.
    t.ok(&["kill", "node0"]);
    let v: TxView = t.wallet_json(
        1,
        &[
            "transfer", "--from", "account1", "--to", "account3", "--amount", "1", "--wait",
        ],
    );
    t.ok(&["restart", "node0"]);
    t.wait_agree(committed_height(&v));
    t.ok(&["pause", "node2"]);
    let st = t.status();
    assert_eq!(st[2].process, "unresponsive");
    let v: TxView = t.wallet_json(
        0,
        &[
            "transfer", "--from", "account1", "--to", "account3", "--amount", "1", "--wait",
        ],
    );
    t.ok(&["resume", "node2"]);
    t.wait_agree(committed_height(&v));
    let logs = t.ok(&["logs", "node0", "-n", "5"]);
    assert!(!logs.is_empty());

    let down = t.ok(&["down"]);
    assert!(down.contains("stopped"), "{down}");
    assert!(t.status().iter().all(|n| n.process == "down"));
}

#[test]
fn pbft_testnet_end_to_end() {
    transfer_is_final_everywhere_and_verifies("pbft", "4");
}

#[test]
fn raft_testnet_end_to_end() {
    transfer_is_final_everywhere_and_verifies("raft", "3");
}

#[test]
fn wallet_errors_are_clear_and_exit_non_zero() {
    let t = up("raft", "1");
    // Insufficient balance: rejected by the node (4), with what to do.
    let too_much = |json: bool| {
        let mut args = vec![
            "transfer",
            "--from",
            "account1",
            "--to",
            "account2",
            "--amount",
            "999999999999999",
        ];
        if json {
            args.insert(0, "--json");
        }
        t.wallet(0, &args)
    };
    let o = too_much(false);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("insufficient_balance") && err.contains("cairn account"),
        "{err}"
    );
    // Under --json a refusal is JSON on stdout, with the node's code and the exit code.
    let o = too_much(true);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: JsonFailure = serde_json::from_slice(&o.stdout).expect("a JSON error on stdout");
    assert_eq!(v.error.code, "insufficient_balance", "{v:?}");
    assert!(v.error.message.contains("cairn account"), "{v:?}");
    assert_eq!(v.exit, 4);
    // Many signed files at once: one answer each, in order; one refusal makes exit 4.
    let chain = t.wallet_json::<serde_json::Value>(0, &["status"])["chain_id"]
        .as_str()
        .expect("chain id")
        .to_string();
    let nonce = t.wallet_json::<serde_json::Value>(0, &["account", "account3"])["nonce"]
        .as_u64()
        .expect("nonce");
    let files: Vec<String> = [
        ("5", nonce),
        ("6", nonce + 1),
        ("999999999999999", nonce + 2),
    ]
    .iter()
    .enumerate()
    .map(|(i, (amount, n))| {
        let f = t.path().join(format!("signed{i}.json"));
        let payload = format!(r#"{{"transfer": {{"to": "account2", "amount": {amount}}}}}"#);
        let o = t.wallet(
            0,
            &[
                "sign",
                &payload,
                "--nonce",
                &n.to_string(),
                "--chain-id",
                &chain,
                "--from",
                "account3",
                "-o",
                f.to_str().expect("path"),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        f.to_string_lossy().into_owned()
    })
    .collect();
    let mut args = vec!["--json", "submit", "--wait"];
    args.extend(files.iter().map(String::as_str));
    let o = t.wallet(0, &args);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let rows = v.as_array().expect("one row per file");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "committed", "{v}");
    assert_eq!(rows[1]["status"], "committed", "{v}");
    assert_eq!(rows[2]["error"]["code"], "insufficient_balance", "{v}");
    assert_eq!(rows[2]["file"], files[2]);
    // Bad usage too: exit 2, code "usage", clap's sentence without the usage block.
    let o = t.wallet(0, &["--json", "transfer", "--from", "account1"]);
    assert_eq!(o.status.code(), Some(2));
    let v: JsonFailure = serde_json::from_slice(&o.stdout).expect("a JSON usage error");
    assert_eq!(v.error.code, "usage", "{v:?}");
    assert!(v.error.message.contains("--to"), "{v:?}");
    assert!(!v.error.message.contains("Usage:"), "{v:?}");
    // A transaction that is not there: 5, code not_found.
    let missing = "00".repeat(32);
    let o = t.wallet(0, &["--json", "tx", &missing]);
    assert_eq!(o.status.code(), Some(5));
    let v: JsonFailure = serde_json::from_slice(&o.stdout).expect("a JSON not-found error");
    assert_eq!((v.error.code.as_str(), v.exit), ("not_found", 5), "{v:?}");
    // Unreachable node (3).
    let o = Command::new(bin("cairn"))
        .args(["--node", "http://127.0.0.1:1", "status"])
        .output()
        .expect("cairn");
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach the node"));
    // An encrypted key: the right passphrase signs, a wrong one fails (6) and says so.
    let ks = t.path().join("accounts");
    let pass = t.path().join("pass");
    std::fs::write(&pass, "correct horse\n").expect("write");
    let seed = t
        .wallet_json::<ExportedSeed>(0, &["key", "export", "account3"])
        .seed;
    let seed_file = t.path().join("seed");
    std::fs::write(&seed_file, seed).expect("write");
    let o = t.wallet(
        0,
        &[
            "--passphrase-file",
            pass.to_str().expect("p"),
            "key",
            "import",
            "sealed",
            seed_file.to_str().expect("p"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(ks.join("sealed.json")).expect("key file");
    assert!(
        text.contains("\"encrypted\"")
            && !text.contains(&std::fs::read_to_string(&seed_file).expect("seed"))
    );
    let o = t.wallet(
        0,
        &[
            "--passphrase-file",
            pass.to_str().expect("p"),
            "transfer",
            "--from",
            "sealed",
            "--to",
            "account1",
            "--amount",
            "2",
            "--wait",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&pass, "wrong\n").expect("write");
    let o = t.wallet(
        0,
        &[
            "--passphrase-file",
            pass.to_str().expect("p"),
            "transfer",
            "--from",
            "sealed",
            "--to",
            "account1",
            "--amount",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    // Unknown key (5) and a non-member sender (4, not_member).
    let o = t.wallet(
        0,
        &[
            "transfer", "--from", "nobody", "--to", "account1", "--amount", "1",
        ],
    );
    assert_eq!(o.status.code(), Some(5));
    let o = t.wallet(0, &["key", "new", "stranger", "--insecure-plaintext"]);
    assert!(o.status.success());
    let o = t.wallet(
        0,
        &[
            "transfer", "--from", "stranger", "--to", "account1", "--amount", "1",
        ],
    );
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not_member"));
}

/// Waits for a child with a deadline; kills it and fails if it does not end.
fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wallet_events_follow_a_node_restart_and_end_quietly_on_a_closed_pipe() {
    use std::io::BufRead;
    use std::process::Stdio;

    let t = up("raft", "1");
    let transfer = |amount: &str| {
        let o = t.wallet(
            0,
            &[
                "transfer", "--from", "account1", "--to", "account2", "--amount", amount, "--wait",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let height = |t: &Testnet| t.status()[0].height().expect("height");
    transfer("1");
    let before = height(&t);

    // `cairn events` follows the chain through a node restart: every height once, in order.
    let mut events = Command::new(bin("cairn"))
        .args([
            "--node",
            &t.api(0),
            "--json",
            "events",
            "--from-height",
            "1",
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn events");
    let (tx, rx) = std::sync::mpsc::channel::<ChainEvent>();
    let stdout = events.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v: ChainEvent = serde_json::from_str(&line).expect("each event is one JSON line");
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    let mut heights = Vec::new();
    let follow_to = |target: u64, heights: &mut Vec<u64>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while heights.last().is_none_or(|h| *h < target) {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no event up to height {target}: saw {heights:?}"));
            if let Some(h) = ev.height() {
                heights.push(h);
            }
        }
    };
    follow_to(before, &mut heights);
    t.ok(&["restart", "node0"]);
    transfer("2");
    transfer("3");
    let after = height(&t);
    assert!(after > before);
    follow_to(after, &mut heights);
    assert_eq!(
        heights,
        (1..=after).collect::<Vec<_>>(),
        "each height once, in order"
    );
    events.kill().expect("stop cairn events");
    let _ = events.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut events.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(err.contains("reconnected"), "the outage is reported: {err}");

    // A reader that goes away (`cairn events | head -1`) ends the wallet quietly, with success.
    let mut events = Command::new(bin("cairn"))
        .args(["--node", &t.api(0), "events", "--from-height", "1"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn events");
    drop(events.stdout.take());
    let status = wait_exit(&mut events, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut events.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(status.success(), "exit {status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
