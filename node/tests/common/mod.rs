//! A network of real `cairn-node` processes on 127.0.0.1 with ephemeral ports and temp dirs.
#![allow(dead_code)]

pub mod contract;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_crypto::{PublicKey, SigningKey};
use cairn_ledger::testkit::TestChain;
use cairn_ledger::{
    ConsensusConfig, ConsensusKind, Genesis, Payload, PbftParams, RaftParams, SignedTransaction,
    Transaction,
};
use serde_json::Value;

/// Reads an answer, checks it against the API's contract (panicking if it breaks it), and
/// returns its status and JSON (or its text as a JSON string).
async fn answer(method: &str, path: &str, r: reqwest::Response) -> (u16, Value) {
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if let Err(e) = contract::Contract::get().check(method, path, code, &ct, &v) {
        panic!("the answer breaks the API's documented contract: {e}");
    }
    (code, v)
}

/// A free TCP port on 127.0.0.1 (bound, then released for the node to take), below the
/// kernel's ephemeral range (32768 and up here): a port the kernel handed out for a port-0
/// bind would be free again at once, and the source port of any outgoing connection (nodes
/// open many) could take it before the node binds it. Ports below the range are only ever
/// taken on request; each is handed out once per test process, tests in other processes
/// start elsewhere in the range.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n.wrapping_mul(7)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// One node process.
pub struct Node {
    pub home: PathBuf,
    pub key: SigningKey,
    pub p2p_port: u16,
    pub child: Option<Child>,
    pub api: String,
}

/// A test network.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    /// Every validator's p2p address, `/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>`: what each
    /// node lists under `[p2p] bootstrap` (the genesis holds no addresses).
    pub peers: Vec<String>,
    pub accounts: Vec<SigningKey>,
    pub nodes: Vec<Node>,
    pub http: reqwest::Client,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn-node")
}

/// Runs `cairn-node` with `args`; its success, stdout and stderr.
pub fn node_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A path as a command-line argument.
pub fn arg(p: &std::path::Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The `cairn` wallet binary, built beside `cairn-node` (`cargo build --workspace --bins`,
/// which scripts/test.sh runs).
pub fn wallet_bin() -> PathBuf {
    let p = std::path::Path::new(bin()).with_file_name("cairn");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `cairn <args>` against node `i`, with the test's keystore: its exit code and output.
pub fn wallet(net: &Net, i: usize, args: &[&str]) -> (Option<i32>, String) {
    let o = std::process::Command::new(wallet_bin())
        .args(["--node", &net.nodes[i].api, "--keystore"])
        .arg(net.dir.path().join("keystore"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run cairn");
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn config_toml(p2p_port: u16, moniker: &str, bootstrap: &[String]) -> String {
    let bootstrap: Vec<String> = bootstrap.iter().map(|b| format!("{b:?}")).collect();
    let bootstrap = bootstrap.join(", ");
    format!(
        "moniker = \"{moniker}\"\n\
         [p2p]\nlisten = \"/ip4/127.0.0.1/tcp/{p2p_port}\"\nbootstrap = [{bootstrap}]\n\
         [api]\nlisten = \"127.0.0.1:0\"\nwait_timeout_ms = 20000\n\
         [consensus]\ntick_ms = 20\nblock_txs_max = 500\n\
         [log]\nlevel = \"info,cairn_node=debug\"\n"
    )
}

impl Net {
    /// Writes homes for `n` validators of `kind` with `accounts` funded accounts (account 0 is
    /// an admin), without starting anything.
    pub fn new(kind: ConsensusKind, n: usize, accounts: usize) -> Net {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = TestChain::new(kind, n, accounts, 1_000_000);
        let mut genesis = chain.genesis.clone();
        genesis.consensus = match kind {
            ConsensusKind::Raft => ConsensusConfig::Raft(RaftParams {
                election_timeout_min_ms: 400,
                election_timeout_max_ms: 800,
                heartbeat_interval_ms: 100,
                epoch_length: 10,
                ..RaftParams::default()
            }),
            ConsensusKind::Pbft => ConsensusConfig::Pbft(PbftParams {
                checkpoint_interval: 10,
                view_change_timeout_ms: 1500,
                ..PbftParams::default()
            }),
        };
        genesis.genesis_time_ms = 1_700_000_000_000;
        let mut nodes = Vec::new();
        let mut peers = Vec::new();
        for (i, key) in chain.validators.iter().enumerate() {
            let port = free_port();
            let peer = cairn_p2p::peer_id_of(&key.public_key()).expect("peer id");
            peers.push(format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"));
            let home = dir.path().join(format!("node{i}"));
            nodes.push(Node {
                home,
                key: key.clone(),
                p2p_port: port,
                child: None,
                api: String::new(),
            });
        }
        for (i, node) in nodes.iter().enumerate() {
            write_home(
                &node.home,
                &node.key,
                &genesis,
                node.p2p_port,
                &format!("node{i}"),
                &peers,
            );
        }
        Net {
            dir,
            genesis,
            peers,
            accounts: chain.accounts.clone(),
            nodes,
            http: reqwest::Client::builder()
                // Below every header timeout the tests set: the node closes kept-alive
                // connections idle that long, and reusing one it is closing fails.
                .pool_idle_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// Writes the home of a node with a new key that is not in the genesis (not started):
    /// it lists its own key under `p2p.observers`, as a validator joining a running chain
    /// does, and dials the genesis validators. Its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let key = SigningKey::generate();
        let port = free_port();
        let home = self.dir.path().join(format!("node{i}"));
        write_home(
            &home,
            &key,
            &self.genesis,
            port,
            &format!("node{i}"),
            &self.peers,
        );
        self.nodes.push(Node {
            home,
            key: key.clone(),
            p2p_port: port,
            child: None,
            api: String::new(),
        });
        self.configure(i, "p2p", &format!("observers = [\"{}\"]", key.public_key()));
        i
    }

    /// Sets `line` (such as `header_timeout_ms = 500`) in `[section]` of node `i`'s
    /// config.toml, before it starts, replacing the key if it is there.
    pub fn configure(&self, i: usize, section: &str, line: &str) {
        let p = self.nodes[i].home.join("config.toml");
        let key = line.split('=').next().unwrap_or("").trim();
        let mut current = String::new();
        let text: String = std::fs::read_to_string(&p)
            .expect("config")
            .lines()
            .filter(|l| {
                if l.starts_with('[') {
                    current = l.trim().to_string();
                }
                // The key only in this section: `listen` is in [p2p] and in [api].
                !(current == format!("[{section}]")
                    && l.split('=').next().unwrap_or("").trim() == key)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let header = format!("[{section}]\n");
        let text = if text.contains(&header) {
            text.replacen(&header, &format!("{header}{line}\n"), 1)
        } else {
            format!("{text}{header}{line}\n")
        };
        std::fs::write(&p, text).expect("config");
    }

    /// Starts node `i` and waits until it exits by itself (a start-up refusal), returning its
    /// exit status and log.
    pub async fn run_until_exit(
        &mut self,
        i: usize,
        within: Duration,
    ) -> (std::process::ExitStatus, String) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.home.join("node.log"))
            .expect("log file");
        let mut child = Command::new(bin())
            .args(["run", "--home"])
            .arg(&node.home)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cairn-node");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                let log = std::fs::read_to_string(node.home.join("node.log")).unwrap_or_default();
                return (st, log);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {i} did not exit within {within:?}: {}",
                    self.log_tail(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until node `i`'s process exits by itself (a fatal failure).
    pub async fn wait_exit(&mut self, i: usize, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            let child = self.nodes[i].child.as_mut().expect("running");
            if let Ok(Some(st)) = child.try_wait() {
                self.nodes[i].child = None;
                return st;
            }
            if Instant::now() > deadline {
                panic!("node {i} is still running: {}", self.log_tail(i));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether node `i`'s process is still running.
    pub fn running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The node's log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].home.join("node.log")).unwrap_or_default()
    }

    /// Starts node `i` and waits until its API answers.
    pub async fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let addr_file = node.home.join("api_addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.home.join("node.log"))
            .expect("log file");
        let child = Command::new(bin())
            .args(["run", "--home"])
            .arg(&node.home)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cairn-node");
        node.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file)
                && s.ends_with('\n')
            {
                node.api = format!("http://{}", s.trim());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not start: {}",
                self.log_tail(i)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let url = format!("{}/health", self.nodes[i].api);
        self.wait_for(&format!("node {i} health"), Duration::from_secs(20), || {
            let http = self.http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
    }

    /// Waits until every running node answers `/ready`.
    pub async fn wait_ready(&self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .collect();
        self.wait_for("ready nodes", Duration::from_secs(60), || async {
            for &i in &running {
                if self.try_get(i, "/ready").await.is_none() {
                    return false;
                }
            }
            true
        })
        .await;
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, …) to node `i`'s process.
    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.nodes[i].child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid}");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self, i: usize) -> std::process::ExitStatus {
        let mut c = self.nodes[i].child.take().expect("running");
        // kill(1) by PID keeps the tests free of unsafe libc calls.
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("node {i} did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self, i: usize) -> String {
        let s = std::fs::read_to_string(self.nodes[i].home.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `cond` until it holds, failing with node logs after `within`.
    pub async fn wait_for<F, Fut>(&self, what: &str, within: Duration, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        loop {
            if cond().await {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = (0..self.nodes.len())
                    .map(|i| format!("--- node {i} ---\n{}", self.log_tail(i)))
                    .collect();
                panic!("timed out waiting for {what}\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET `path` from node `i`; the answer is checked against the OpenAPI document.
    pub async fn get(&self, i: usize, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.nodes[i].api))
            .send()
            .await
            .expect("request");
        answer("GET", path, r).await
    }

    pub async fn try_get(&self, i: usize, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.nodes[i].api))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// POST `body` to `path` on node `i`; the answer is checked against the OpenAPI document.
    pub async fn post(&self, i: usize, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.nodes[i].api))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        answer("POST", path, r).await
    }

    pub async fn submit(&self, i: usize, tx: &SignedTransaction, wait: bool) -> (u16, Value) {
        let path = if wait {
            "/api/v1/txs?wait=commit"
        } else {
            "/api/v1/txs"
        };
        self.post(i, path, serde_json::to_vec(tx).expect("json"))
            .await
    }

    pub fn transfer(
        &self,
        from: usize,
        nonce: u64,
        to: PublicKey,
        amount: u64,
    ) -> SignedTransaction {
        Transaction {
            chain_id: self.genesis.chain_id.clone(),
            sender: self.accounts[from].public_key(),
            nonce,
            payload: Payload::Transfer { to, amount },
        }
        .sign(&self.accounts[from])
    }

    pub async fn height(&self, i: usize) -> Option<u64> {
        self.try_get(i, "/api/v1/status")
            .await
            .and_then(|s| s["height"].as_u64())
    }

    /// Waits until every running node is at `h` or more and all agree on the block at `h`
    /// (hash and state root).
    pub async fn wait_agree(&self, h: u64, within: Duration) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].child.is_some())
            .collect();
        self.wait_for(&format!("all nodes at height {h}"), within, || async {
            for &i in &running {
                if self.height(i).await.is_none_or(|x| x < h) {
                    return false;
                }
            }
            true
        })
        .await;
        let mut seen: Option<(Value, Value)> = None;
        for &i in &running {
            let (code, b) = self.get(i, &format!("/api/v1/blocks/{h}")).await;
            assert_eq!(code, 200, "block {h} on node {i}: {b}");
            let pair = (
                b["hash"].clone(),
                b["block"]["header"]["state_root"].clone(),
            );
            match &seen {
                None => seen = Some(pair),
                Some(p) => assert_eq!(*p, pair, "node {i} disagrees at height {h}"),
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if std::env::var("CAIRN_TEST_VERBOSE").is_ok() {
            for i in 0..self.nodes.len() {
                eprintln!("--- node {i} ---\n{}", self.log_tail(i));
            }
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Writes a node home: key (0600), config, genesis.
pub fn write_home(
    home: &std::path::Path,
    key: &SigningKey,
    genesis: &Genesis,
    port: u16,
    name: &str,
    bootstrap: &[String],
) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(home).expect("home");
    let key_path = home.join("node_key");
    std::fs::write(&key_path, format!("{}\n", hex::encode(key.to_seed()))).expect("key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(home.join("config.toml"), config_toml(port, name, bootstrap)).expect("config");
    std::fs::write(home.join("genesis.json"), genesis.to_json()).expect("genesis");
}
