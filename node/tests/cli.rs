//! The `cairn-node` command line: init, clear start-up errors, graceful shutdown.

mod common;

use std::process::Command;

use cairn_ledger::ConsensusKind;
use common::{Net, bin, node_cmd};

#[test]
fn init_writes_a_private_key_and_a_config_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("n");
    let out = Command::new(bin())
        .args(["init", "--json", "--moniker", "alpha", "--home"])
        .arg(&home)
        .output()
        .expect("run init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["public_key"].as_str().map(str::len), Some(64));
    assert!(
        v["peer_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("12D3KooW"))
    );
    let mode = std::fs::metadata(home.join("node_key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let cfg = std::fs::read_to_string(home.join("config.toml")).expect("config");
    assert!(cfg.contains("moniker = \"alpha\""));
    // Every key is written with what it means and its default (and unit).
    let keys = cfg
        .lines()
        .filter(|l| l.contains(" = ") && !l.starts_with('#'));
    assert!(keys.clone().count() >= 20, "{cfg}");
    assert!(
        cfg.contains("# Default: 30000 (milliseconds).\nwait_timeout_ms = 30000"),
        "{cfg}"
    );
    assert!(
        cfg.contains("CAIRN_API_LISTEN"),
        "the environment overrides are explained"
    );

    let again = Command::new(bin())
        .args(["init", "--home"])
        .arg(&home)
        .output()
        .expect("run init");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    let show = Command::new(bin())
        .args(["show-key", "--json", "--home"])
        .arg(&home)
        .output()
        .expect("show-key");
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(shown, v);

    // Without a genesis, `run` says what is missing and exits non-zero.
    let run = Command::new(bin())
        .args(["run", "--home"])
        .arg(&home)
        .output()
        .expect("run");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("genesis.json"));

    let help = Command::new(bin()).arg("--help").output().expect("help");
    let text = String::from_utf8_lossy(&help.stdout);
    for cmd in ["init", "run", "show-key", "config", "openapi"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn a_bad_config_is_refused_with_the_reason() {
    let net = Net::new(ConsensusKind::Raft, 1, 1);
    let home = &net.nodes[0].home;
    let node = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(bin());
        c.args(args).arg("--home").arg(home);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().expect("cairn-node");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // A good home validates, and says what it found.
    let (ok, out, err) = node(&["config", "validate"], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("is valid") && out.contains("a validator"),
        "{out}"
    );
    // The environment overrides the file; `config show` prints the result.
    let (ok, out, _) = node(
        &["config", "show"],
        &[("CAIRN_API_WAIT_TIMEOUT_MS", "1234")],
    );
    assert!(ok && out.contains("wait_timeout_ms = 1234"), "{out}");
    // Mistakes are named, in the file or the environment, before anything is opened.
    /// The file, the environment, and a word the refusal must name.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("[consensus]\ntick_ms = 0\n", &[], "tick_ms"),
        ("[log]\nlevel = \"verbose\"\n", &[], "log.level"),
        ("[p2p]\nlisten = \"127.0.0.1:26000\"\n", &[], "p2p.listen"),
        ("[api]\nlisten = \"localhost\"\n", &[], "api.listen"),
        (
            "",
            &[("CAIRN_API_LISTN", "127.0.0.1:1")],
            "CAIRN_API_LISTEN",
        ),
        ("", &[("CAIRN_P2P_LISTEN", "garbage")], "p2p.listen"),
    ];
    for (text, env, needle) in cases {
        std::fs::write(home.join("config.toml"), text).expect("write");
        for cmd in [&["config", "validate"][..], &["run"][..]] {
            let (ok, _, err) = node(cmd, env);
            assert!(!ok, "{cmd:?} accepted {text:?} {env:?}");
            assert!(err.contains(needle), "{cmd:?} {text:?} {env:?}: {err}");
        }
        assert!(!home.join("data").exists(), "the store was not opened");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_keeps_everything() {
    let mut net = Net::new(ConsensusKind::Raft, 1, 3);
    // Structured logs: one JSON object per line.
    let cfg = net.nodes[0].home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).expect("config") + "format = \"json\"\n";
    std::fs::write(&cfg, text).expect("config");
    net.start(0).await;
    let t = net.transfer(1, 0, net.accounts[2].public_key(), 5);
    let (code, v) = net.submit(0, &t, true).await;
    assert_eq!(code, 200, "{v}");
    // From the receipt: the status may lag the store by a tick.
    let h = v["receipt"]["height"].as_u64().expect("height");
    let status = net.stop(0);
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(net.nodes[0].home.join("node.log")).expect("log");
    assert!(log.contains("stopped"));
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }

    // Same chain, same height, the transaction still there; and it goes on committing.
    net.start(0).await;
    assert_eq!(net.height(0).await, Some(h));
    let (code, v) = net.get(0, &format!("/api/v1/txs/{}", t.id())).await;
    assert_eq!(
        (code, &v["status"]),
        (200, &serde_json::Value::from("committed"))
    );
    let t2 = net.transfer(1, 1, net.accounts[2].public_key(), 5);
    let (code, v) = net.submit(0, &t2, true).await;
    assert_eq!(code, 200, "{v}");

    // A store of another chain is refused.
    net.stop(0);
    let other = Net::new(ConsensusKind::Raft, 1, 2);
    std::fs::copy(
        other.nodes[0].home.join("genesis.json"),
        net.nodes[0].home.join("genesis.json"),
    )
    .expect("swap genesis");
    let out = Command::new(bin())
        .args(["run", "--home"])
        .arg(&net.nodes[0].home)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store"), "{err}");
}

#[test]
fn a_key_that_is_neither_validator_nor_observer_is_refused_at_start() {
    let net = Net::new(ConsensusKind::Raft, 1, 1);
    let outsider = cairn_crypto::SigningKey::generate();
    let home = net.dir.path().join("outsider");
    common::write_home(
        &home,
        &outsider,
        &net.genesis,
        common::free_port(),
        "outsider",
        &[],
    );
    let out = Command::new(bin())
        .args(["run", "--home"])
        .arg(&home)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&outsider.public_key().to_string())
            && err.contains("neither a validator")
            && err.contains("p2p.observers"),
        "{err}"
    );
    assert!(!home.join("data").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genesis_written_with_the_genesis_commands_runs_a_network() {
    let mut net = Net::new(ConsensusKind::Pbft, 4, 3);
    let path = net.dir.path().join("made.json");
    let file = path.to_str().expect("utf-8 path");
    let ok = |args: &[&str]| {
        let (ok, out, err) = node_cmd(args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let refused = |args: &[&str], why: &str| {
        let (ok, _, err) = node_cmd(args);
        assert!(
            !ok && err.contains(why),
            "{args:?} should fail with {why:?}: {err}"
        );
    };
    let new = [
        "genesis",
        "new",
        "--file",
        file,
        "--chain-id",
        "made-by-tool",
    ];
    refused(
        &[
            &new[..],
            &["--consensus", "pbft", "--heartbeat-interval-ms", "5"],
        ]
        .concat(),
        "Raft's",
    );
    refused(
        &[&new[..], &["--consensus", "paxos"]].concat(),
        "not an engine",
    );
    refused(
        &[
            &new[..],
            &["--consensus", "pbft", "--checkpoint-interval", "0"],
        ]
        .concat(),
        "checkpoint_interval > 0",
    );
    ok(&[
        &new[..],
        &[
            "--consensus",
            "pbft",
            "--checkpoint-interval",
            "10",
            "--view-change-timeout-ms",
            "1500",
        ],
    ]
    .concat());
    refused(&[&new[..], &["--consensus", "pbft"]].concat(), "--force");
    // Not valid yet: no validators, no accounts.
    refused(&["genesis", "validate", "--file", file], "validators");

    for (i, node) in net.nodes.iter().enumerate() {
        let name = format!("node{i}");
        let key = node.key.public_key().to_string();
        // Node 0 from its home, as on the validator's own host; the others by key.
        let (flag, value) = if i == 0 {
            ("--home", node.home.to_str().expect("utf-8 path"))
        } else {
            ("--key", key.as_str())
        };
        ok(&[
            "genesis",
            "add-validator",
            "--file",
            file,
            "--name",
            &name,
            flag,
            value,
        ]);
    }
    let key0 = net.nodes[0].key.public_key().to_string();
    let add_v = ["genesis", "add-validator", "--file", file];
    refused(
        &[&add_v[..], &["--name", "again", "--key", &key0]].concat(),
        "already validator",
    );
    let fresh = cairn_crypto::SigningKey::generate()
        .public_key()
        .to_string();
    refused(
        &[&add_v[..], &["--name", "node1", "--key", &fresh]].concat(),
        "already named",
    );
    refused(
        &[&add_v[..], &["--name", "x", "--key", "zz"]].concat(),
        "--key",
    );
    let long = "n".repeat(65);
    refused(
        &[&add_v[..], &["--name", &long, "--key", &fresh]].concat(),
        "1..=64",
    );
    refused(
        &["genesis", "validate", "--file", file],
        "no member accounts",
    );

    for (i, a) in net.accounts.iter().enumerate() {
        let key = a.public_key().to_string();
        let role = if i == 0 { "admin" } else { "user" };
        ok(&[
            "genesis",
            "add-account",
            "--file",
            file,
            "--key",
            &key,
            "--balance",
            "1000000",
            "--role",
            role,
        ]);
    }
    let key = net.accounts[1].public_key().to_string();
    refused(
        &["genesis", "add-account", "--file", file, "--key", &key],
        "already in the genesis",
    );

    let summary = ok(&["genesis", "validate", "--file", file]);
    let genesis = cairn_ledger::Genesis::load(&path).expect("a valid genesis");
    let hash = genesis.hash().to_string();
    assert!(
        summary.contains("pbft with 4 validators (tolerates 1 Byzantine)")
            && summary.contains("3 accounts (3 members, 1 admins), supply 3000000")
            && summary.contains(&hash),
        "{summary}"
    );
    assert_eq!(ok(&["genesis", "hash", "--file", file]).trim(), hash);

    // Real nodes run it, as four hosts: each on its own loopback address, each listing the
    // others in its configuration.
    let host = |i: usize| format!("127.0.0.{}", i + 1);
    let peers: Vec<String> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let peer = cairn_p2p::peer_id_of(&n.key.public_key()).expect("peer id");
            format!("\"/ip4/{}/tcp/{}/p2p/{peer}\"", host(i), n.p2p_port)
        })
        .collect();
    for (i, node) in net.nodes.iter().enumerate() {
        std::fs::copy(&path, node.home.join("genesis.json")).expect("copy genesis");
        net.configure(
            i,
            "p2p",
            &format!("listen = \"/ip4/{}/tcp/{}\"", host(i), node.p2p_port),
        );
        net.configure(i, "p2p", &format!("bootstrap = [{}]", peers.join(", ")));
    }
    net.genesis = genesis;
    net.start_all().await;
    net.wait_ready().await;
    let tx = net.transfer(1, 0, net.accounts[2].public_key(), 5);
    let (code, body) = net.submit(2, &tx, true).await;
    assert_eq!(code, 200, "{body}");
    let (_, st) = net.get(3, "/api/v1/status").await;
    assert_eq!(st["genesis_hash"], hash.as_str());
    assert_eq!(st["chain_id"], "made-by-tool");
    for i in 0..4 {
        assert!(
            net.log(i)
                .contains(&format!("listening addr=/ip4/{}/tcp/", host(i))),
            "node {i} listens on its own address:\n{}",
            net.log_tail(i)
        );
        let (_, peers) = net.get(i, "/api/v1/peers").await;
        assert_eq!(peers.as_array().map(Vec::len), Some(3), "node {i}: {peers}");
    }
}
