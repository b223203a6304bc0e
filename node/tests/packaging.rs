//! Packaging for real hosts: the systemd unit, the network generator for containers, and the
//! image where this machine has a container engine. What cannot run here says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn have(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if !have("systemd-analyze", &["--version"]) {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(repo().join("packaging/systemd/cairn-node.service"))
        .expect("the unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/cairn-node run --home /var/lib/cairn"));
    // `verify` checks that ExecStart exists: point it at the binary this build made.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cairn-node.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/cairn-node", bin())).expect("write");

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let err = String::from_utf8_lossy(&out.stderr);
    // Unknown or misspelt keys are only warnings (exit 0): the output must be empty too.
    assert!(out.status.success() && err.trim().is_empty(), "{err}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for cairn-node.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // systemd's scale: 0 (locked down) to 10 (unprotected); below 2 is rated "OK".
    assert!(exposure < 2.0, "exposure {exposure}:\n{text}");
}

#[test]
fn the_container_network_generator_writes_valid_homes_and_compose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("net");
    let script = repo().join("packaging/docker/network.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--chain-id", "docker-test", "4"])
        .arg(&out_dir)
        .env("CAIRN_NODE", bin())
        .output()
        .expect("network.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let genesis = cairn_ledger::Genesis::load(&out_dir.join("genesis.json")).expect("genesis");
    assert_eq!(genesis.chain_id, "docker-test");
    assert_eq!(genesis.validators.len(), 4);
    let compose = std::fs::read_to_string(out_dir.join("compose.yaml")).expect("compose");
    for i in 0..4 {
        let home = out_dir.join(format!("node{i}"));
        let v = Command::new(bin())
            .args(["config", "validate", "--home"])
            .arg(&home)
            .output()
            .expect("config validate");
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(
            v.status.success() && text.contains("is a validator"),
            "node{i}: {text}{}",
            String::from_utf8_lossy(&v.stderr)
        );
        // Every other node is a bootstrap peer at its container address, this one is not.
        let config = std::fs::read_to_string(home.join("config.toml")).expect("config");
        let bootstrap = config
            .lines()
            .find(|l| l.starts_with("bootstrap = "))
            .expect("bootstrap line");
        for j in 0..4 {
            let addr = format!("/ip4/172.28.0.{}/tcp/26000/p2p/", 10 + j);
            assert_eq!(bootstrap.contains(&addr), i != j, "node{i}: {bootstrap}");
        }
        assert!(
            compose.contains(&format!("ipv4_address: 172.28.0.{}", 10 + i)),
            "{compose}"
        );
    }
    // Refuses to write over an existing directory.
    let again = Command::new("bash")
        .arg(&script)
        .arg("4")
        .arg(&out_dir)
        .env("CAIRN_NODE", bin())
        .output()
        .expect("network.sh");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}

#[test]
fn the_image_builds_and_runs_where_there_is_a_container_engine() {
    if !have("docker", &["info"]) {
        eprintln!(
            "skipped: no container engine answers `docker info` on this machine, so the image \
             (packaging/docker/Dockerfile) is not built here"
        );
        return;
    }
    let build = Command::new("docker")
        .args([
            "build",
            "-f",
            "packaging/docker/Dockerfile",
            "-t",
            "cairn-node:test",
            ".",
        ])
        .current_dir(repo())
        .output()
        .expect("docker build");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = Command::new("docker")
        .args(["run", "--rm", "cairn-node:test", "--version"])
        .output()
        .expect("docker run");
    assert!(
        run.status.success() && String::from_utf8_lossy(&run.stdout).contains("cairn-node"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
