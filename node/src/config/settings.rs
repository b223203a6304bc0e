//! Every setting with what it means: the commented `config.toml` that `init` writes, and the
//! `CAIRN_*` environment overrides. A test keeps this table and [`Config`]'s fields in step.

use super::Config;

/// One key of `config.toml`.
pub struct Setting {
    /// `section.key`, or `key` at the top.
    pub key: &'static str,
    /// What it does, in a sentence or two.
    pub doc: &'static str,
    /// Its unit, when it has one.
    pub unit: Option<&'static str>,
}

const fn s(key: &'static str, doc: &'static str, unit: Option<&'static str>) -> Setting {
    Setting { key, doc, unit }
}

const MS: Option<&str> = Some("milliseconds");
const BYTES: Option<&str> = Some("bytes");

/// Every setting, in the file's order.
pub const SETTINGS: &[Setting] = &[
    s(
        "moniker",
        "A name for this node in logs and in /api/v1/status.",
        None,
    ),
    s(
        "p2p.listen",
        "Where to listen for peers: a multiaddr with a TCP port. Use /ip4/0.0.0.0/tcp/PORT to \
         accept connections from other machines.",
        None,
    ),
    s(
        "p2p.bootstrap",
        "The other nodes to dial (and redial while disconnected), each a multiaddr ending in \
         /p2p/<peer id>, e.g. /ip4/10.0.0.2/tcp/26000/p2p/12D3KooW… (`cairn-node show-key` \
         prints a node's peer id). The genesis names validators by key, not by address, so this \
         is where a node learns where they run; once connected, identify and Kademlia pass on \
         the addresses of the rest.",
        None,
    ),
    s(
        "p2p.observers",
        "Public keys (hex) of non-validators allowed to connect, such as nodes that only follow \
         the chain. A node whose own key is not a genesis validator runs only if it is listed \
         here; the validators must list it too.",
        None,
    ),
    s(
        "p2p.mdns",
        "Discover peers on the local network with mDNS (sends multicast).",
        None,
    ),
    s(
        "api.listen",
        "Where the HTTP API listens (host:port). Port 0 picks a free port and writes it to \
         HOME/api_addr. Anyone who reaches it can read the chain and submit transactions.",
        None,
    ),
    s(
        "api.max_body_bytes",
        "Largest request body; larger ones get 413.",
        BYTES,
    ),
    s(
        "api.max_batch_bytes",
        "Largest body of a `POST /api/v1/txs/batch` (at most 1,024 transactions); larger ones \
         get 413.",
        BYTES,
    ),
    s(
        "api.max_concurrent_requests",
        "API requests served at once by the whole node; more get 503 at once. The probes \
         (/health, /ready, /metrics) are outside this limit.",
        None,
    ),
    s(
        "api.wait_timeout_ms",
        "Longest a `POST /api/v1/txs?wait=commit` waits for its transaction to be final before \
         answering 504 wait_timeout.",
        MS,
    ),
    s(
        "api.header_timeout_ms",
        "A request's headers must arrive within this; a kept-alive connection waiting for its \
         next request is closed after it too.",
        MS,
    ),
    s(
        "api.body_timeout_ms",
        "A request's body must arrive within this once its headers did (else 408).",
        MS,
    ),
    s(
        "api.idle_timeout_ms",
        "A connection that moves no byte for this long is closed. Must exceed \
         api.wait_timeout_ms and the event stream's 10 s keep-alive.",
        MS,
    ),
    s(
        "api.max_connections",
        "Most open API connections; more are closed on accept.",
        None,
    ),
    s(
        "consensus.tick_ms",
        "Length of one consensus tick. The engine's timeouts in genesis.json count ticks, so \
         every validator should use the same value.",
        MS,
    ),
    s(
        "consensus.block_txs_max",
        "Most transactions in a block this node proposes.",
        None,
    ),
    s(
        "consensus.block_interval_ms",
        "How long a leader lets a block fill once it may propose.",
        MS,
    ),
    s(
        "consensus.empty_blocks",
        "Propose a block without transactions every block_interval_ms (a heartbeat chain).",
        None,
    ),
    s(
        "consensus.compact_blocks",
        "Send proposed blocks as transaction ids; receivers take the transactions from their \
         mempools and ask for the few they miss. Every node understands both forms; turn it \
         off only while nodes older than this form are still in the network.",
        None,
    ),
    s(
        "consensus.blocks_in_flight",
        "Most blocks a leader or primary keeps in flight: it builds the next block while the one \
         before is being agreed on, each on top of the last. 1 builds every block on the \
         committed tip. A PBFT backup also takes up to this many pre-prepares beyond its next \
         height before it decides it fell behind and syncs, so use one value network-wide.",
        None,
    ),
    s(
        "mempool.txs_max",
        "Most pending transactions held; more are refused with mempool_full.",
        None,
    ),
    s(
        "mempool.bytes_max",
        "Most pending transaction bytes held.",
        BYTES,
    ),
    s(
        "storage.memtable_bytes",
        "A budget for RocksDB's write buffers (memtables), all column families together: \
         past it the largest is flushed to disk. Default 32 MiB; at least 4 MiB, or 0 for none \
         (each of the ten column families then flushes at 64 MiB, so memory grows with the \
         chain up to some 640 MiB).",
        BYTES,
    ),
    s(
        "storage.block_cache_bytes",
        "RocksDB's block cache, shared by every column family: recently read data blocks, and \
         the index and filter blocks of its table files, which count against it. Default \
         32 MiB; at least 1 MiB.",
        BYTES,
    ),
    s(
        "storage.snapshot_interval",
        "Take a snapshot of the state every this many blocks, for new nodes to join from \
         (`cairn-node join`) instead of replaying the chain. Taken off the consensus task, in \
         HOME/snapshots; 0 turns it off.",
        Some("blocks"),
    ),
    s(
        "storage.snapshots_kept",
        "How many of the newest snapshots to keep and serve.",
        None,
    ),
    s(
        "log.format",
        "\"human\" for people, \"json\" for log collectors (one object per line).",
        None,
    ),
    s(
        "log.level",
        "A level (trace, debug, info, warn, error, off), or directives such as \
         \"info,cairn_node=debug\". The RUST_LOG environment variable wins.",
        None,
    ),
];

/// The environment variable of a setting: `CAIRN_` and its key in capitals, with `_` for
/// the dot (`api.listen` → `CAIRN_API_LISTEN`).
pub fn env_name(key: &str) -> String {
    format!("CAIRN_{}", key.replace('.', "_").to_uppercase())
}

/// The sections, as environment prefixes (`CAIRN_API_`…): a variable with one of these
/// prefixes that names no setting is a mistake worth refusing.
fn env_prefixes() -> Vec<String> {
    let mut p: Vec<String> = SETTINGS
        .iter()
        .filter_map(|s| s.key.split_once('.'))
        .map(|(section, _)| format!("CAIRN_{}_", section.to_uppercase()))
        .collect();
    p.dedup();
    p
}

/// A setting's value as TOML text.
fn toml_value(v: &toml::Value) -> String {
    v.to_string()
}

/// Looks a `section.key` up in a TOML table.
fn get<'a>(t: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    match key.split_once('.') {
        Some((section, k)) => t.get(section)?.as_table()?.get(k),
        None => t.get(key),
    }
}

/// `config` as a commented `config.toml`: every key, what it means, its unit and default.
pub fn commented_toml(config: &Config) -> String {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let values = toml::Table::try_from(config).unwrap_or_default();
    let mut out = String::from(
        "# Cairn node configuration.\n\
         #\n\
         # Every key is optional: a missing key takes the default shown. Any key can also be\n\
         # set from the environment, which wins over this file: CAIRN_<SECTION>_<KEY>, e.g.\n\
         # CAIRN_API_LISTEN=0.0.0.0:8000 or CAIRN_LOG_LEVEL=debug (CAIRN_MONIKER at the top).\n\
         # `cairn-node config validate --home DIR` checks this file, the genesis and the key\n\
         # without starting anything; `cairn-node config show --home DIR` prints the result.\n\
         # The chain itself (validators, consensus engine and its timing) is in genesis.json.\n",
    );
    let mut section = "";
    for s in SETTINGS {
        let (sec, name) = s.key.split_once('.').unwrap_or(("", s.key));
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        out.push('\n');
        for line in wrap(s.doc, 88) {
            out.push_str(&format!("# {line}\n"));
        }
        let default = get(&defaults, s.key).map(toml_value).unwrap_or_default();
        match s.unit {
            Some(u) => out.push_str(&format!("# Default: {default} ({u}).\n")),
            None => out.push_str(&format!("# Default: {default}.\n")),
        }
        let value = get(&values, s.key).map(toml_value).unwrap_or(default);
        out.push_str(&format!("{name} = {value}\n"));
    }
    out
}

/// Splits `text` into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Applies `CAIRN_*` variables to the table read from the file. Each value is read as the
/// setting's type (a string as it is, a number, `true`/`false`, or a list as a TOML array or
/// comma-separated words). Returns the names applied; refuses a variable that looks like a
/// setting but names none, or a value of the wrong type.
pub fn apply_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, String> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let prefixes = env_prefixes();
    let mut applied = Vec::new();
    for (name, raw) in vars {
        let Some(setting) = SETTINGS.iter().find(|s| env_name(s.key) == name) else {
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                let known: Vec<String> = SETTINGS.iter().map(|s| env_name(s.key)).collect();
                return Err(format!(
                    "the environment variable {name} names no setting (they are: {})",
                    known.join(", ")
                ));
            }
            continue;
        };
        let bad = |why: &str| format!("{name}={raw:?}: {why}");
        let value = match get(&defaults, setting.key) {
            Some(toml::Value::String(_)) => toml::Value::String(raw.clone()),
            Some(toml::Value::Integer(_)) => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| bad("expected a whole number"))?,
            ),
            Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match raw.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(bad("expected true or false")),
            }),
            Some(toml::Value::Array(_)) => {
                let t = raw.trim();
                if t.starts_with('[') {
                    let parsed: toml::Table = toml::from_str(&format!("v = {t}"))
                        .map_err(|e| bad(&format!("not a TOML array: {e}")))?;
                    parsed
                        .get("v")
                        .cloned()
                        .unwrap_or(toml::Value::Array(vec![]))
                } else {
                    toml::Value::Array(
                        t.split(',')
                            .map(str::trim)
                            .filter(|w| !w.is_empty())
                            .map(|w| toml::Value::String(w.to_string()))
                            .collect(),
                    )
                }
            }
            _ => return Err(bad("this setting cannot be set from the environment")),
        };
        let target = match setting.key.split_once('.') {
            Some((section, _)) => table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| bad(&format!("[{section}] in the file is not a table")))?,
            None => &mut *table,
        };
        let key = setting.key.rsplit('.').next().unwrap_or(setting.key);
        target.insert(key.to_string(), value);
        applied.push(name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the config in `section.key` form.
    fn keys(t: &toml::Table) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in t {
            match v.as_table() {
                Some(section) => out.extend(section.keys().map(|x| format!("{k}.{x}"))),
                None => out.push(k.clone()),
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_setting_is_documented_and_every_documented_key_exists() {
        let t = toml::Table::try_from(Config::default()).expect("table");
        let mut documented: Vec<String> = SETTINGS.iter().map(|s| s.key.to_string()).collect();
        documented.sort();
        assert_eq!(keys(&t), documented);
    }

    #[test]
    fn the_commented_file_parses_back_to_the_same_config_and_explains_every_key() {
        let mut c = Config {
            moniker: "n0".into(),
            ..Config::default()
        };
        c.api.listen = "127.0.0.1:0".into();
        let text = commented_toml(&c);
        let back: Config = toml::from_str(&text).expect("parses");
        assert_eq!(back, c);
        for s in SETTINGS {
            let name = s.key.rsplit('.').next().unwrap_or(s.key);
            assert!(
                text.contains(&format!("\n{name} = ")),
                "{} is written",
                s.key
            );
        }
        assert!(text.contains("# Default: 30000 (milliseconds).\nwait_timeout_ms = 30000"));
        assert!(text.lines().all(|l| l.len() <= 100), "lines are short");
    }

    #[test]
    fn environment_overrides_are_typed_and_unknown_ones_refused() {
        let mut t = toml::Table::new();
        let vars = [
            ("CAIRN_API_LISTEN", "0.0.0.0:9000"),
            ("CAIRN_API_WAIT_TIMEOUT_MS", "5000"),
            ("CAIRN_P2P_MDNS", "true"),
            (
                "CAIRN_P2P_BOOTSTRAP",
                "/ip4/1.2.3.4/tcp/1/p2p/a, /ip4/1.2.3.5/tcp/1/p2p/b",
            ),
            ("CAIRN_MONIKER", "123"),
            ("CAIRN_NODE", "http://x"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let applied = apply_env(&mut t, vars).expect("applies");
        assert_eq!(applied.len(), 5);
        let c: Config = t.try_into().expect("a config");
        assert_eq!(c.api.listen, "0.0.0.0:9000");
        assert_eq!(c.api.wait_timeout_ms, 5000);
        assert!(c.p2p.mdns);
        assert_eq!(c.p2p.bootstrap.len(), 2);
        assert_eq!(c.moniker, "123");

        let one = |k: &str, v: &str| apply_env(&mut toml::Table::new(), [(k.into(), v.into())]);
        assert!(one("CAIRN_API_LISTN", "x").is_err_and(|e| e.contains("CAIRN_API_LISTEN")));
        assert!(one("CAIRN_API_WAIT_TIMEOUT_MS", "soon").is_err());
        assert!(one("CAIRN_P2P_MDNS", "maybe").is_err());
    }
}
