//! `cairn-node genesis …`: write a genesis for real hosts step by step, then check it.
//!
//! `new` writes a draft (no validators, no accounts yet: not a valid genesis until both are
//! added); `add-validator` and `add-account` edit it in place, refusing what `validate`
//! would refuse (a duplicate key or name, a key that is not a curve point, a balance that
//! overflows the supply); `validate` and `hash` check the finished document. The file stays
//! the JSON of PROTOCOL.md §9, so it can also be read and edited by hand.

use std::path::Path;

use anyhow::{Context, bail};
use cairn_crypto::PublicKey;
use cairn_ledger::{
    ChangePolicy, ConsensusConfig, ConsensusKind, Genesis, GenesisAccount, PbftParams, RaftParams,
    Role, Validator,
};

/// The consensus parameters `new` starts from; `None` keeps the engine's default.
#[derive(Debug, Clone, Default)]
pub struct ConsensusChoice {
    /// PBFT: a checkpoint every this many blocks.
    pub checkpoint_interval: Option<u64>,
    /// PBFT: request timer before a view change, ms.
    pub view_change_timeout_ms: Option<u64>,
    /// Raft: election timeout range, ms.
    pub election_timeout_min_ms: Option<u64>,
    /// Raft: election timeout range, ms.
    pub election_timeout_max_ms: Option<u64>,
    /// Raft: heartbeat interval, ms.
    pub heartbeat_interval_ms: Option<u64>,
    /// Raft: blocks per epoch (validator changes take effect at its multiples).
    pub epoch_length: Option<u64>,
    /// Who may change the validator set (the engine's default if absent).
    pub validator_changes: Option<ChangePolicy>,
}

impl ConsensusChoice {
    fn config(&self, kind: ConsensusKind) -> anyhow::Result<ConsensusConfig> {
        match kind {
            ConsensusKind::Pbft => {
                if self.election_timeout_min_ms.is_some()
                    || self.election_timeout_max_ms.is_some()
                    || self.heartbeat_interval_ms.is_some()
                {
                    bail!(
                        "election and heartbeat timings are Raft's; PBFT takes --checkpoint-interval and --view-change-timeout-ms"
                    );
                }
                if self.epoch_length.is_some() {
                    bail!(
                        "PBFT's validator changes take effect at checkpoints: set --checkpoint-interval, not --epoch-length"
                    );
                }
                let d = PbftParams::default();
                Ok(ConsensusConfig::Pbft(PbftParams {
                    checkpoint_interval: self.checkpoint_interval.unwrap_or(d.checkpoint_interval),
                    view_change_timeout_ms: self
                        .view_change_timeout_ms
                        .unwrap_or(d.view_change_timeout_ms),
                    validator_changes: self.validator_changes.unwrap_or(d.validator_changes),
                }))
            }
            ConsensusKind::Raft => {
                if self.checkpoint_interval.is_some() || self.view_change_timeout_ms.is_some() {
                    bail!(
                        "checkpoints and view changes are PBFT's; Raft takes --election-timeout-min-ms, --election-timeout-max-ms and --heartbeat-interval-ms"
                    );
                }
                let d = RaftParams::default();
                Ok(ConsensusConfig::Raft(RaftParams {
                    election_timeout_min_ms: self
                        .election_timeout_min_ms
                        .unwrap_or(d.election_timeout_min_ms),
                    election_timeout_max_ms: self
                        .election_timeout_max_ms
                        .unwrap_or(d.election_timeout_max_ms),
                    heartbeat_interval_ms: self
                        .heartbeat_interval_ms
                        .unwrap_or(d.heartbeat_interval_ms),
                    epoch_length: self.epoch_length.unwrap_or(d.epoch_length),
                    validator_changes: self.validator_changes.unwrap_or(d.validator_changes),
                }))
            }
        }
    }
}

/// Reads a genesis being written: parsed, but not yet required to be complete.
fn read_draft(path: &Path) -> anyhow::Result<Genesis> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (start one with `cairn-node genesis new --file {}`)",
            path.display(),
            path.display()
        )
    })?;
    Genesis::from_json_draft(&text).with_context(|| format!("{} is not a genesis", path.display()))
}

fn write(path: &Path, g: &Genesis) -> anyhow::Result<()> {
    // Write beside it, then rename: an interrupted edit leaves the old file whole.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, format!("{}\n", g.to_json()))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// `genesis new`: a draft with the chain id and consensus, and no validators or accounts.
pub fn new(
    path: &Path,
    chain_id: &str,
    kind: ConsensusKind,
    choice: &ConsensusChoice,
    genesis_time_ms: Option<u64>,
    force: bool,
) -> anyhow::Result<Genesis> {
    if path.exists() && !force {
        bail!(
            "{} exists: pass --force to replace it, or edit it with `genesis add-validator` and `genesis add-account`",
            path.display()
        );
    }
    if !cairn_ledger::valid_chain_id(chain_id) {
        bail!("--chain-id {chain_id:?} must be 1..=64 characters of [A-Za-z0-9._-]");
    }
    let genesis_time_ms = match genesis_time_ms {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_millis() as u64,
    };
    let g = Genesis {
        chain_id: chain_id.to_string(),
        genesis_time_ms,
        consensus: choice.config(kind)?,
        validators: Vec::new(),
        accounts: Vec::new(),
    };
    // The parameters alone must already be sound; what is missing is only validators and
    // accounts.
    g.consensus.check()?;
    write(path, &g)?;
    Ok(g)
}

/// `genesis add-validator`.
pub fn add_validator(path: &Path, name: &str, key: PublicKey) -> anyhow::Result<Genesis> {
    let mut g = read_draft(path)?;
    cairn_ledger::genesis::check_validator_name(name)?;
    if !key.is_valid_point() {
        bail!("{key} is not a valid ed25519 public key");
    }
    if let Some(v) = g.validators.iter().find(|v| v.public_key == key) {
        bail!("{key} is already validator {:?}", v.name);
    }
    if g.validators.iter().any(|v| v.name == name) {
        bail!("a validator is already named {name:?}");
    }
    if g.validators.len() >= cairn_ledger::genesis::VALIDATORS_MAX {
        bail!(
            "a chain has at most {} validators",
            cairn_ledger::genesis::VALIDATORS_MAX
        );
    }
    g.validators.push(Validator {
        name: name.to_string(),
        public_key: key,
    });
    write(path, &g)?;
    Ok(g)
}

/// `genesis add-account`.
pub fn add_account(
    path: &Path,
    key: PublicKey,
    balance: u64,
    role: Option<Role>,
) -> anyhow::Result<Genesis> {
    let mut g = read_draft(path)?;
    if !key.is_valid_point() {
        bail!("{key} is not a valid ed25519 public key");
    }
    if g.accounts.iter().any(|a| a.public_key == key) {
        bail!("account {key} is already in the genesis");
    }
    let supply = g
        .accounts
        .iter()
        .try_fold(balance, |s, a| s.checked_add(a.balance));
    if supply.is_none() {
        bail!("balances would add up to more than 2^64-1");
    }
    g.accounts.push(GenesisAccount {
        public_key: key,
        balance,
        role,
    });
    write(path, &g)?;
    Ok(g)
}

/// A finished genesis, checked, with what an operator wants to confirm before sharing it.
pub fn summary(g: &Genesis) -> String {
    let n = g.validators.len();
    let tolerates = match g.consensus.kind() {
        ConsensusKind::Pbft => format!("{} Byzantine", (n - 1) / 3),
        ConsensusKind::Raft => format!("{} crashed", (n - 1) / 2),
    };
    let supply: u64 = g.accounts.iter().map(|a| a.balance).sum();
    let admins = g
        .accounts
        .iter()
        .filter(|a| a.role == Some(Role::Admin))
        .count();
    let members = g.accounts.iter().filter(|a| a.role.is_some()).count();
    format!(
        "chain {}: {} with {n} validators (tolerates {tolerates}), {} accounts ({members} members, {admins} admins), supply {supply}\ngenesis hash {}",
        g.chain_id,
        g.consensus.kind(),
        g.accounts.len(),
        g.hash()
    )
}

/// `genesis validate` and `genesis hash`: the whole document, checked as a node checks it.
pub fn load_checked(path: &Path) -> anyhow::Result<Genesis> {
    Genesis::load(path).with_context(|| format!("{} is not a valid genesis", path.display()))
}
