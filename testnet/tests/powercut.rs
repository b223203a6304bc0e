//! Power loss, not just a crash: one validator's store sits on `powercut-fs`, a FUSE
//! filesystem that keeps only what was fsynced when "the power is cut" (a SIGKILL of the node
//! and of the filesystem, then an unmount: whatever the node wrote without syncing is gone, as
//! from a disk's cache). Under load, the power is cut 20 times at seeded moments. After each:
//! the disk still holds every block the node had reported committed, and the node restarts
//! and follows the chain again. At the end every node agrees, and no validator saw a
//! conflicting vote from it (which a lost vote record would cause).
//!
//! Needs root and /dev/fuse; says it skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_cairn-testnet")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before these tests (scripts/test.sh does)",
        p.display()
    );
    p
}

fn why_not() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("not root (mounting a FUSE filesystem needs it)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    None
}

fn mounted(at: &Path) -> bool {
    let want = at.display().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The filesystem under node3's store.
struct Disk {
    durable: PathBuf,
    live: PathBuf,
    mount: PathBuf,
    fs: Option<Child>,
}

impl Disk {
    fn power_on(&mut self) {
        let child = Command::new(bin("powercut-fs"))
            .arg("--durable")
            .arg(&self.durable)
            .arg("--live")
            .arg(&self.live)
            .arg("--mount")
            .arg(&self.mount)
            .stdout(Stdio::null())
            .spawn()
            .expect("start powercut-fs");
        self.fs = Some(child);
        wait_until("the filesystem is mounted", Duration::from_secs(20), || {
            mounted(&self.mount)
        });
    }

    /// The power cut, for the disk: the filesystem dies with whatever it had not synced.
    fn cut(&mut self) {
        if let Some(mut c) = self.fs.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_until(
            "the dead filesystem unmounts",
            Duration::from_secs(20),
            || {
                // Busy for a moment while the killed node's files close.
                let _ = Command::new("umount")
                    .arg(&self.mount)
                    .stderr(Stdio::null())
                    .status();
                !mounted(&self.mount)
            },
        );
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Some(mut c) = self.fs.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

struct Net {
    dir: tempfile::TempDir,
    load: Option<Child>,
    /// `CAIRN_PLANTED_BUG` for the nodes (debug builds read it).
    planted: Option<&'static str>,
}

impl Net {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("cairn-testnet"))
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .env("CAIRN_NODE_BIN", bin("cairn-node"))
            .env("RUST_BACKTRACE", "0")
            .envs(self.planted.map(|p| ("CAIRN_PLANTED_BUG", p)))
            .output()
            .expect("run cairn-testnet")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "cairn-testnet {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn rows(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status json")
    }

    fn height(&self, node: usize) -> Option<u64> {
        self.rows()[node]["status"]["height"].as_u64()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut c) = self.load.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.run(&["down"]);
    }
}

/// Whether node3's store, read offline, holds block `h` (`cairn-node export` of that block).
fn on_disk(home: &Path, h: u64, scratch: &Path) -> Result<(), String> {
    let o = Command::new(bin("cairn-node"))
        .args(["export", "--home"])
        .arg(home)
        .args(["--from", &h.to_string(), "--to", &h.to_string()])
        .arg(scratch)
        .output()
        .expect("run cairn-node export");
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// A plain HTTP/1.0 GET (no client library needed for one metrics page).
fn http_get(api: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = api.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Runs `cuts` power cuts of node3 under load. `Err` names the first cut after which node3's
/// disk lacked a block it had reported committed.
fn power_cuts(planted: Option<&'static str>, cuts: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let mut net = Net {
        dir,
        load: None,
        planted,
    };
    net.ok(&[
        "init",
        "--base-port",
        "0",
        "--nodes",
        "4",
        "--consensus",
        "pbft",
    ]);
    let home = root.join("node3");
    let mut disk = Disk {
        durable: root.join("disk"),
        live: root.join("page-cache"),
        mount: home.join("data"),
        fs: None,
    };
    std::fs::create_dir_all(&disk.mount).expect("mount point");
    disk.power_on();
    net.ok(&["up"]);
    // Paced load on every node until the end (killed then).
    net.load = Some(
        Command::new(bin("cairn-testnet"))
            .arg("--dir")
            .arg(&root)
            .args([
                "bench",
                "--txs",
                "60000",
                "--rate",
                "250",
                // Many accounts: one whose transaction a cut loses waits on that nonce
                // for the rest of the run (bench does not resend), and the rest carry on.
                "--accounts",
                "200",
            ])
            .args(["--batch", "8", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the load"),
    );

    let scratch = root.join("block.cairn");
    let mut rng: u64 = 0x005e_ed0f_c075;
    let mut last = 0;
    let mut heights = Vec::new();
    for cut in 0..cuts {
        if let Some(Ok(Some(end))) = net.load.as_mut().map(Child::try_wait) {
            panic!("the load ended before cut {cut} ({end}): rerun its bench command to see why");
        }
        // Blocks keep coming to node3 before each cut; the cut lands a seeded while later.
        wait_until(
            &format!("node3 commits past height {last} before cut {cut}"),
            Duration::from_secs(90),
            || net.height(3).is_some_and(|h| h > last),
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 700));
        let acknowledged = net.height(3).unwrap_or(last);
        net.ok(&["kill", "node3"]);
        disk.cut();
        disk.power_on();
        on_disk(&home, acknowledged, &scratch).map_err(|e| {
            format!("cut {cut}: node3 reported height {acknowledged}, its disk lost it: {e}")
        })?;
        net.ok(&["restart", "node3"]);
        last = acknowledged;
        heights.push(acknowledged);
    }
    if let Some(mut c) = net.load.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    eprintln!("power cut at node3 heights {heights:?}");

    // Every node at one head, node3 included.
    let mut agreed = None;
    wait_until(
        "every node agrees after the cuts",
        Duration::from_secs(90),
        || {
            let rows = net.rows();
            let heads: Vec<Option<(u64, String)>> = rows
                .iter()
                .map(|r| {
                    Some((
                        r["status"]["height"].as_u64()?,
                        r["status"]["head_hash"].as_str()?.to_string(),
                    ))
                })
                .collect();
            let same = heads.iter().all(|h| h.is_some() && *h == heads[0]);
            if same {
                agreed = heads[0].clone();
            }
            same
        },
    );
    let (height, _) = agreed.expect("agreed");
    assert!(height > last, "the chain went on after the last cut");

    // No validator saw node3 vote twice differently, which a lost vote record would cause.
    for r in net.rows().iter().take(3) {
        let api = r["api"].as_str().expect("api");
        let text = http_get(api, "/metrics");
        assert!(text.contains("cairn_"), "metrics from {api}");
        for line in text
            .lines()
            .filter(|l| l.starts_with("cairn_consensus_refused"))
        {
            if line.contains("\"conflicting\"") || line.contains("\"would_equivocate\"") {
                let n: f64 = line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
                assert_eq!(n, 0.0, "{api}: {line}");
            }
        }
    }
    Ok(())
}

#[test]
fn a_validator_keeps_every_block_it_committed_through_20_power_cuts_under_load() {
    if let Some(why) = why_not() {
        eprintln!("SKIPPED the power-loss test: {why}");
        return;
    }
    if let Err(e) = power_cuts(None, 20) {
        panic!("{e}");
    }
}

/// The same cuts against a node that commits blocks without syncing them (planted, debug
/// builds only): a cut loses blocks it had reported, and the test sees it.
#[test]
fn power_cuts_catch_a_node_that_does_not_sync_its_commits() {
    if let Some(why) = why_not() {
        eprintln!("SKIPPED the planted power-loss bug: {why}");
        return;
    }
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED the planted power-loss bug: release builds leave planted bugs out");
        return;
    }
    let lost = power_cuts(Some("unsynced_commit"), 20)
        .expect_err("a node that does not sync its commits loses some at a power cut");
    assert!(lost.contains("its disk lost it"), "{lost}");
}
