//! `cairn-testnet init`: keys, a genesis with funded demo accounts, and a home per node.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use cairn_cli::keystore::{KeyFile, Keystore};
use cairn_crypto::SigningKey;
use cairn_ledger::{
    ConsensusConfig, Genesis, GenesisAccount, PbftParams, RaftParams, Role, Validator,
};

use crate::hosts::Hosts;
use crate::procs::pid_of;
use crate::{Engine, NodeInfo, State, load_state, state_path};

/// What `init` makes.
pub struct Layout {
    pub hosts: Hosts,
    pub nodes: usize,
    pub engine: Engine,
    pub base: u16,
    pub accounts: usize,
    pub balance: u64,
    pub chain_id: String,
}

pub fn init(dir: &Path, layout: &Layout, force: bool) -> anyhow::Result<()> {
    let Layout {
        nodes,
        engine,
        base,
        accounts,
        balance,
        ..
    } = *layout;
    if !cairn_ledger::valid_chain_id(&layout.chain_id) {
        bail!(
            "--chain-id {:?} must be 1..=64 characters of [A-Za-z0-9._-]",
            layout.chain_id
        );
    }
    if nodes == 0 || nodes > 64 {
        bail!("--nodes must be in 1..=64");
    }
    if engine == Engine::Pbft && nodes < 4 {
        eprintln!("note: PBFT with {nodes} nodes tolerates no Byzantine fault (4 tolerate one)");
    }
    if base.checked_add(100 + nodes as u16).is_none() {
        bail!("--base-port too high");
    }
    // Free ports are held open until all are chosen, so no two nodes get the same one.
    let mut held = Vec::new();
    let mut free_port = || -> anyhow::Result<u16> {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        held.push(l);
        Ok(port)
    };
    if state_path(dir).exists() {
        if !force {
            bail!(
                "{} already holds a testnet (use --force to replace it, after `down`)",
                dir.display()
            );
        }
        let st = load_state(dir)?;
        if st.nodes.iter().any(|n| pid_of(dir, &n.name).is_some()) {
            bail!(
                "the testnet in {} is running: `cairn-testnet down` first",
                dir.display()
            );
        }
        // Namespaces a crashed run left behind go with the directory.
        st.hosts.tear_down(st.nodes.len())?;
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let keys: Vec<SigningKey> = (0..nodes).map(|_| SigningKey::generate()).collect();
    let account_keys: Vec<SigningKey> = (0..accounts).map(|_| SigningKey::generate()).collect();
    let mut infos = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let (p2p_port, api_port) = if layout.hosts != Hosts::Loopback {
            // Each node has an address of its own: the same ports serve them all.
            let base = if base == 0 { 27000 } else { base };
            (base, base + 100)
        } else if base == 0 {
            (free_port()?, free_port()?)
        } else {
            (base + i as u16, base + 100 + i as u16)
        };
        infos.push(NodeInfo {
            name: format!("node{i}"),
            public_key: k.public_key().to_string(),
            host: layout.hosts.address(i),
            p2p_port,
            api_port,
        });
    }
    drop(held);
    let genesis = Genesis {
        chain_id: layout.chain_id.clone(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        consensus: match engine {
            Engine::Raft => ConsensusConfig::Raft(RaftParams {
                election_timeout_min_ms: 500,
                election_timeout_max_ms: 1000,
                heartbeat_interval_ms: 100,
                epoch_length: 50,
                ..RaftParams::default()
            }),
            Engine::Pbft => ConsensusConfig::Pbft(PbftParams::default()),
        },
        validators: keys
            .iter()
            .zip(&infos)
            .map(|(k, n)| Validator {
                name: n.name.clone(),
                public_key: k.public_key(),
            })
            .collect(),
        accounts: account_keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisAccount {
                public_key: k.public_key(),
                balance,
                role: Some(if i == 0 { Role::Admin } else { Role::User }),
            })
            .collect(),
    };
    genesis.validate().context("the generated genesis")?;
    std::fs::write(dir.join("genesis.json"), genesis.to_json())?;
    // Where each node runs is configuration, not genesis: every node dials all the others.
    let mut peers = Vec::new();
    for (k, n) in keys.iter().zip(&infos) {
        let peer = cairn_p2p::peer_id_of(&k.public_key())?;
        peers.push(format!("\"/ip4/{}/tcp/{}/p2p/{peer}\"", n.host, n.p2p_port));
    }
    for (i, (k, n)) in keys.iter().zip(&infos).enumerate() {
        let bootstrap: Vec<&str> = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.as_str())
            .collect();
        let home = dir.join(&n.name);
        std::fs::create_dir_all(&home)?;
        cairn_node_key(&home.join("node_key"), k)?;
        std::fs::write(home.join("genesis.json"), genesis.to_json())?;
        std::fs::write(
            home.join("config.toml"),
            format!(
                "# Written by cairn-testnet init.\nmoniker = \"{}\"\n\n[p2p]\nlisten = \"/ip4/{}/tcp/{}\"\nbootstrap = [{}]\n\n[api]\nlisten = \"{}:{}\"\n\n[consensus]\ntick_ms = 20\n",
                n.name,
                n.host,
                n.p2p_port,
                bootstrap.join(", "),
                n.host,
                n.api_port
            ),
        )?;
    }
    let ks = Keystore::new(dir.join("accounts"));
    let mut names = Vec::new();
    for (i, k) in account_keys.iter().enumerate() {
        let name = format!("account{i}");
        let file = KeyFile::new(&name, k, None).map_err(|e| anyhow!(e))?;
        ks.save(&file)?;
        names.push(name);
    }
    let st = State {
        chain_id: genesis.chain_id.clone(),
        consensus: engine,
        hosts: layout.hosts.clone(),
        nodes: infos,
        accounts: names,
    };
    std::fs::write(state_path(dir), serde_json::to_string_pretty(&st)?)?;
    println!(
        "initialised a {}-node {:?} testnet in {}",
        nodes,
        engine,
        dir.display()
    );
    if let Hosts::Netns {
        tag,
        prefix: [a, b, c],
    } = &layout.hosts
    {
        println!(
            "  each node runs as a host: namespace cairn-{tag}-I, address {a}.{b}.{c}.(I+1) on bridge cb-{tag} (made by `up`, removed by `down`)"
        );
    }
    println!(
        "  demo accounts (unencrypted, for local use): {}/accounts",
        dir.display()
    );
    for (i, a) in account_keys.iter().enumerate() {
        println!(
            "    account{i}  {}{}",
            a.public_key(),
            if i == 0 { "  (admin)" } else { "" }
        );
    }
    println!("next: cairn-testnet --dir {} up", dir.display());
    Ok(())
}

/// The node key file format of `cairn-node init`: hex seed, mode 0600.
fn cairn_node_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key.to_seed()))?;
    Ok(())
}
