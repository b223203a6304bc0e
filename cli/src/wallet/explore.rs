//! Reading the chain: accounts, histories, records, transactions, blocks, status, validators,
//! and the live event stream.

use std::path::Path;
use std::time::Duration;

use cairn_api::client::Event;
use cairn_api::{ChainEvent, RecordView, StateProofView, TxStatus};
use cairn_cli::verify::{Trail, verify_state_proof};
use cairn_crypto::codec;
use cairn_ledger::state::{Account, StateKey};
use cairn_ledger::{Genesis, Height, TxId};
use futures::StreamExt;

use super::ctx::Ctx;
use super::fail::{INVALID, NODE, NOT_FOUND, R, USAGE, fail};
use super::out::{line, print, shell_quote, short, time};
use super::verify_cmd::follow;

/// `cairn account`; with `verify` (a genesis file), checked against a proof.
pub async fn account(
    ctx: &Ctx,
    id: Option<String>,
    from: Option<String>,
    verify: Option<&Path>,
) -> R<()> {
    let id = match (id, from) {
        (Some(s), _) | (None, Some(s)) => ctx.account_id(&s)?,
        (None, None) => {
            return Err(fail(
                USAGE,
                "name an account: `cairn account ID` or --from KEY",
            ));
        }
    };
    let mut checked = None;
    let v = match verify {
        None => ctx.client.account(&id).await?,
        Some(genesis) => {
            let v = ctx.client.account_proved(&id).await?;
            let key = StateKey::Account(id).to_bytes();
            let value = check_proof(ctx, genesis, v.proof.as_ref(), &key).await?;
            let proved: Option<Account> =
                value.map(|b| codec::decode(&b)).transpose().map_err(|e| {
                    fail(
                        INVALID,
                        format!("INVALID: the proved value is not an account: {e}"),
                    )
                })?;
            let shown = (v.id == id, v.exists, v.balance, v.nonce, v.role);
            let real = proved.map_or((true, false, 0, 0, None), |a| {
                (true, true, a.balance, a.nonce, a.role)
            });
            if shown != real || v.proof.as_ref().map(|p| p.height) != Some(v.height) {
                return Err(fail(
                    INVALID,
                    "INVALID: the account shown is not the one the proof proves",
                ));
            }
            checked = v.proof.as_ref().map(proof_line);
            v
        }
    };
    print(ctx.json, &v, |v| {
        let mut s = format!(
            "account {}\n  balance {}\n  nonce   {}\n  role    {}\n  (at height {})",
            v.id,
            v.balance,
            v.nonce,
            v.role
                .map_or("none (not a member)".to_string(), |r| format!("{r:?}")
                    .to_lowercase()),
            v.height
        );
        if let Some(c) = &checked {
            s.push_str(&format!("\n{c}"));
        }
        s
    });
    Ok(())
}

/// Checks a proof against the genesis in `genesis_path`, following the validator sets from
/// it through the boundary blocks below the proof's height; returns the value proved.
async fn check_proof(
    ctx: &Ctx,
    genesis_path: &Path,
    proof: Option<&StateProofView>,
    key: &[u8],
) -> R<Option<Vec<u8>>> {
    let genesis = Genesis::load(genesis_path)
        .map_err(|e| fail(USAGE, format!("{}: {e}", genesis_path.display())))?;
    let p = proof.ok_or_else(|| fail(INVALID, "INVALID: the node sent no proof"))?;
    let mut trail = Trail::new(&genesis);
    follow(ctx, &mut trail, p.height).await?;
    let set = trail.set_at(p.height).map_err(|e| fail(INVALID, e))?;
    verify_state_proof(&genesis, set, p, key).map_err(|e| fail(INVALID, format!("INVALID: {e}")))
}

fn proof_line(p: &StateProofView) -> String {
    match &p.header {
        Some(h) => format!(
            "  verified: proof against the state root of block {} {}, whose certificate verifies against the validators in force there",
            p.height,
            h.hash()
        ),
        None => "  verified: proof against the genesis state".to_string(),
    }
}

/// `cairn history`.
pub async fn history(ctx: &Ctx, id: &str, before: Option<Height>, limit: usize) -> R<()> {
    let account = ctx.account_id(id)?;
    let v = ctx
        .client
        .account_txs(&account, before, limit.clamp(1, 100))
        .await?;
    print(ctx.json, &v, |v| {
        let mut s = if v.txs.is_empty() {
            "no transactions".to_string()
        } else {
            v.txs
                .iter()
                .map(|t| {
                    format!(
                        "{:>8}.{:<4} {}  {}",
                        t.height,
                        t.index,
                        short(&t.id.to_string()),
                        describe(&t.tx.tx)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let Some(n) = v.next {
            s.push_str(&format!(
                "\n(more: `cairn history {} --before {n}`)",
                shell_quote(id)
            ));
        }
        s
    });
    Ok(())
}

fn describe(tx: &cairn_ledger::Transaction) -> String {
    use cairn_ledger::Payload;
    let from = short_key(&tx.sender);
    match &tx.payload {
        Payload::Transfer { to, amount } => {
            format!("{from} → {}: {amount}", short_key(to))
        }
        Payload::PutRecord { key, .. } => format!("{from} wrote record {key:?}"),
        Payload::AddMember { account, role } => {
            format!(
                "{from} made {} {}",
                short_key(account),
                format!("{role:?}").to_lowercase()
            )
        }
        Payload::RemoveMember { account } => format!("{from} removed {}", short_key(account)),
        Payload::ChangeValidators { change } => {
            use cairn_ledger::ValidatorChange as C;
            let what = match change {
                C::Add { validator } => format!(
                    "adding validator {} ({})",
                    validator.name,
                    short_key(&validator.public_key)
                ),
                C::Remove { public_key } => format!("removing validator {}", short_key(public_key)),
                C::Rotate {
                    public_key,
                    new_key,
                } => format!(
                    "rotating validator {} to {}",
                    short_key(public_key),
                    short_key(new_key)
                ),
            };
            format!("{from} approved or voted for {what}")
        }
    }
}

fn short_key(k: &cairn_crypto::PublicKey) -> String {
    short(&k.to_string()).to_string()
}

/// A record's value for people: its text if it is UTF-8, else hex.
fn record_value(r: &cairn_api::RecordView) -> String {
    match &r.text {
        Some(t) => format!("{t:?}"),
        None => format!("0x{}", r.value),
    }
}

fn record_key(key: &str) -> R<()> {
    if key.is_empty() {
        return Err(fail(USAGE, "a record key cannot be empty"));
    }
    Ok(())
}

/// `cairn record get`; with `verify` (a genesis file), checked against a proof, and only what
/// the proof shows is printed.
pub async fn record(ctx: &Ctx, account: &str, key: &str, verify: Option<&Path>) -> R<()> {
    record_key(key)?;
    let id = ctx.account_id(account)?;
    let mut checked = None;
    let v = match verify {
        None => ctx.client.record(&id, key).await?,
        Some(genesis) => {
            let v = ctx.client.record_proved(&id, key).await?;
            let state_key = StateKey::Record(id, key.to_string()).to_bytes();
            let value = check_proof(ctx, genesis, v.proof.as_ref(), &state_key).await?;
            let line = v.proof.as_ref().map(proof_line).unwrap_or_default();
            let Some(value) = value else {
                return Err(fail(
                    NOT_FOUND,
                    format!("account {id} has no record {key:?}\n{line} (proved absent)"),
                ));
            };
            checked = Some(line);
            // Print the key asked for and the bytes proved, never the node's rendering.
            RecordView {
                proof: v.proof,
                ..RecordView::of(id, key.to_string(), &value)
            }
        }
    };
    print(ctx.json, &v, |v| {
        let mut s = format!("{} = {}", v.key.escape_debug(), record_value(v));
        if let Some(c) = &checked {
            s.push_str(&format!("\n{c}"));
        }
        s
    });
    Ok(())
}

/// `cairn record list`.
pub async fn records(ctx: &Ctx, account: &str, after: Option<&str>, limit: usize) -> R<()> {
    let id = ctx.account_id(account)?;
    let v = ctx.client.records(&id, after, limit.clamp(1, 100)).await?;
    print(ctx.json, &v, |v| {
        let mut s = if v.records.is_empty() {
            "no records".to_string()
        } else {
            v.records
                .iter()
                // Keys are anyone's UTF-8: control characters are shown escaped.
                .map(|r| format!("{} = {}", r.key.escape_debug(), record_value(r)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if let Some(next) = &v.next {
            s.push_str(&format!(
                "\n(more: `cairn record list {} --after {}`)",
                shell_quote(account),
                shell_quote(next)
            ));
        }
        s
    });
    Ok(())
}

/// `cairn tx`.
pub async fn tx(ctx: &Ctx, id: &str) -> R<()> {
    let id: TxId = id.parse().map_err(|_| {
        fail(
            USAGE,
            format!("{id:?} is not a transaction id (64 hex digits)"),
        )
    })?;
    let v = ctx.client.tx(&id).await?;
    print(ctx.json, &v, |v| match (v.status, &v.receipt, &v.reason) {
        (TxStatus::Committed, Some(r), _) => format!(
            "{} committed at height {}, position {} (block {}, {})",
            v.id,
            r.height,
            r.index,
            short(&r.block_hash.to_string()),
            time(r.block_time_ms)
        ),
        (TxStatus::Rejected, _, Some(reason)) => {
            format!("{} rejected: {}", v.id, reason.message)
        }
        _ => format!(
            "{} pending on this node{}",
            v.id,
            v.tx.as_ref()
                .map(|t| format!(" (nonce {} of {})", t.tx.nonce, short_key(&t.tx.sender)))
                .unwrap_or_default()
        ),
    });
    Ok(())
}

/// `cairn block`.
pub async fn block(ctx: &Ctx, id: &str) -> R<()> {
    let v = ctx.client.block(id).await?;
    print(ctx.json, &v, |v| {
        let h = &v.block.header;
        format!(
            "block {} {}\n  prev      {}\n  time      {}\n  txs       {}\n  proposer  {}\n  round     {}\n  state     {}",
            v.height,
            v.hash,
            h.prev_hash,
            time(h.timestamp_ms),
            h.tx_count,
            short_key(&h.proposer),
            h.round,
            h.state_root
        )
    });
    Ok(())
}

/// `cairn blocks`.
pub async fn blocks(ctx: &Ctx, before: Option<Height>, limit: usize) -> R<()> {
    let v = ctx.client.blocks(before, limit.clamp(1, 100)).await?;
    print(ctx.json, &v, |v| {
        let mut s = format!(
            "{:>8}  {:<16}  {:<27}  {:>5}  {:>6}",
            "HEIGHT", "HASH", "TIME", "TXS", "ROUND"
        );
        for b in &v.blocks {
            s.push_str(&format!(
                "\n{:>8}  {:<16}  {:<27}  {:>5}  {:>6}",
                b.height,
                short(&b.hash.to_string()),
                time(b.timestamp_ms),
                b.tx_count,
                b.round
            ));
        }
        if let Some(n) = v.next {
            s.push_str(&format!("\n(more: `cairn blocks --before {n}`)"));
        }
        s
    });
    Ok(())
}

/// `cairn status`.
pub async fn status(ctx: &Ctx) -> R<()> {
    let v = ctx.client.status().await?;
    print(ctx.json, &v, |v| {
        let role = v.role;
        let leader = v
            .leader
            .map_or("unknown".to_string(), |l| short(&l.to_string()).to_string());
        let mut s = format!(
            "chain {} ({}), height {} head {} ({})\n  this node {} is {role} in round {} (leader {leader}); {} peers, {} validators heard; {} pending txs; {}",
            v.chain_id,
            v.consensus,
            v.height,
            short(&v.head_hash.to_string()),
            time(v.head_time_ms),
            v.moniker,
            v.round,
            v.peers,
            v.heard,
            v.mempool_txs,
            if v.ready { "ready" } else { "NOT READY" }
        );
        for why in &v.not_ready {
            s.push_str(&format!("\n    - {why}"));
        }
        s
    });
    Ok(())
}

/// `cairn validators`.
pub async fn validators(ctx: &Ctx) -> R<()> {
    let v = ctx.client.validators().await?;
    print(ctx.json, &v, |v| {
        v.iter()
            .map(|x| {
                format!(
                    "{:<10} {}  {}{}",
                    x.name,
                    x.public_key,
                    if x.connected {
                        "connected"
                    } else {
                        "unreachable"
                    },
                    if x.leader { ", leader" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `cairn events`: replay, then live, through node restarts, until interrupted.
pub async fn events(ctx: &Ctx, from: Option<Height>) -> R<()> {
    // Fail at once if nothing answers; later outages are waited out. Without --from-height,
    // start after the current tip, so an outage before the next block loses nothing.
    let tip = ctx.client.status().await?.height;
    let from = from.unwrap_or(tip + 1);
    let mut stream = Box::pin(ctx.client.events(Some(from), Duration::from_secs(5)));
    while let Some(item) = stream.next().await {
        match item? {
            Event::Chain(ev) => {
                if ctx.json {
                    line(&serde_json::to_string(&ev).unwrap_or_default());
                    continue;
                }
                match ev {
                    ChainEvent::Block { block, .. } => line(&format!(
                        "block {:>7} {}  {}  {} txs",
                        block.height,
                        short(&block.hash.to_string()),
                        time(block.timestamp_ms),
                        block.tx_count
                    )),
                    ChainEvent::TxRejected { id, reason } => {
                        line(&format!("rejected {id}: {}", reason.message))
                    }
                }
            }
            Event::Disconnected(why) => {
                eprintln!("{why}; reconnecting to {}…", ctx.client.node());
            }
            Event::Reconnected => eprintln!("reconnected; resuming after the last block seen"),
        }
    }
    Err(fail(NODE, "the event stream ended"))
}

/// How a change reads in a listing.
fn describe_change(c: &cairn_ledger::ValidatorChange) -> String {
    use cairn_ledger::ValidatorChange as C;
    match c {
        C::Add { validator } => format!("add {} {}", validator.name, validator.public_key),
        C::Remove { public_key } => format!("remove {public_key}"),
        C::Rotate {
            public_key,
            new_key,
        } => format!("rotate {public_key} -> {new_key}"),
    }
}

/// `cairn validator list`: the set in force, the pending change and the votes.
pub async fn validator_changes(ctx: &Ctx) -> R<()> {
    let set = ctx.client.validators().await?;
    let changes = ctx.client.validator_changes().await?;
    if ctx.json {
        let both = serde_json::json!({ "validators": set, "changes": changes });
        line(&serde_json::to_string_pretty(&both).unwrap_or_default());
        return Ok(());
    }
    let mut out = vec![format!(
        "validators in force from height {} (policy: {}, epochs of {} blocks):",
        changes.in_force_since + 1,
        match changes.policy {
            cairn_ledger::ChangePolicy::Admins => "admins",
            cairn_ledger::ChangePolicy::Validators => "validators",
        },
        changes.epoch_length
    )];
    out.extend(
        set.iter()
            .map(|v| format!("  {:<10} {}", v.name, v.public_key)),
    );
    match &changes.pending {
        Some(p) => out.push(format!(
            "pending: {} (approved at {}, in force from {}), id {}",
            describe_change(&p.change.change),
            p.change.approved_at,
            p.change.boundary + 1,
            p.id
        )),
        None => out.push("pending: none".into()),
    }
    if changes.votes.is_empty() {
        out.push("votes: none".into());
    }
    for v in &changes.votes {
        let name = set
            .iter()
            .find(|x| x.public_key == v.voter)
            .map_or_else(|| v.voter.to_string(), |x| x.name.clone());
        out.push(format!(
            "vote by {name} at {}: {} (id {})",
            v.height,
            describe_change(&v.change),
            v.id
        ));
    }
    line(&out.join("\n"));
    Ok(())
}
