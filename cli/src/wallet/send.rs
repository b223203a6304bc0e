//! Transactions: build, sign, submit, wait.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_api::{BATCH_TXS_MAX, BatchItem, TxStatus, TxView};
use cairn_cli::output::SignedFile;
use cairn_ledger::{Payload, Role, SignedTransaction, Transaction};
use serde::Deserialize;

use super::args::SendArgs;
use super::ctx::Ctx;
use super::fail::{Fail, LOCAL, NODE, R, REJECTED, TIMEOUT, USAGE, fail};
use super::out::{print, short};

/// Signs `payload` with `--from`'s key at its next nonce (or `--nonce`) and submits it.
pub async fn send(ctx: &Ctx, args: &SendArgs, payload: Payload) -> R<()> {
    let key = ctx.key(&args.from)?;
    let status = ctx.client.status().await?;
    if status.chain_id.is_empty() {
        return Err(fail(
            NODE,
            "the node's status has no chain id: is --node a Cairn node?",
        ));
    }
    let next = ctx.client.account(&key.public_key()).await?.nonce;
    let nonce = args.nonce.unwrap_or(next);
    if nonce > next && args.wait && !ctx.json {
        eprintln!(
            "note: nonce {nonce} is ahead of the account's next ({next}): it waits until the \
             transactions with nonces {next}..{nonce} are committed"
        );
    }
    let tx = Transaction {
        chain_id: status.chain_id,
        sender: key.public_key(),
        nonce,
        payload,
    }
    .sign(&key);
    submit(ctx, &tx, args.wait).await
}

/// Submits a signed transaction; with `wait`, until it is final.
pub async fn submit(ctx: &Ctx, tx: &SignedTransaction, wait: bool) -> R<()> {
    let start = Instant::now();
    let spinner = (wait && !ctx.json).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!(
            "waiting for {} to be final",
            short(&tx.id().to_string())
        ));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    });
    let r = ctx.client.submit(tx, wait).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let v: TxView = r?;
    let ms = start.elapsed().as_millis();
    print(ctx.json, &v, |v| match (v.status, &v.receipt) {
        (TxStatus::Committed, Some(r)) => format!(
            "committed {} at height {} (position {}) in {ms} ms",
            v.id, r.height, r.index
        ),
        _ => format!(
            "submitted {} (pending); follow it with `cairn tx {}`",
            v.id, v.id
        ),
    });
    Ok(())
}

/// A payload as a user writes it for `sign`: as in the protocol's JSON (PROTOCOL.md §10), but
/// accounts may be key names, and a record's value may be given as `"text"` instead of the
/// hex `"value"`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum PayloadInput {
    Transfer {
        to: String,
        amount: u64,
    },
    PutRecord {
        key: String,
        value: Option<String>,
        text: Option<String>,
    },
    AddMember {
        account: String,
        role: Role,
    },
    RemoveMember {
        account: String,
    },
}

/// Reads `sign`'s payload argument.
pub fn payload(ctx: &Ctx, text: &str) -> R<Payload> {
    let p: PayloadInput = serde_json::from_str(text).map_err(|e| {
        fail(
            USAGE,
            format!("the payload is not a payload ({e}); see `cairn sign --help`"),
        )
    })?;
    Ok(match p {
        PayloadInput::Transfer { to, amount } => Payload::Transfer {
            to: ctx.account_id(&to)?,
            amount,
        },
        PayloadInput::PutRecord { key, value, text } => Payload::PutRecord {
            key,
            value: match (value, text) {
                (Some(h), None) => {
                    hex::decode(h.strip_prefix("0x").unwrap_or(&h)).map_err(|_| {
                        fail(
                            USAGE,
                            format!("\"value\" is hex ({h:?} is not); give text as \"text\""),
                        )
                    })?
                }
                (None, Some(t)) => t.into_bytes(),
                _ => {
                    return Err(fail(
                        USAGE,
                        "a put_record takes \"value\" (hex) or \"text\", one of them",
                    ));
                }
            },
        },
        PayloadInput::AddMember { account, role } => Payload::AddMember {
            account: ctx.account_id(&account)?,
            role,
        },
        PayloadInput::RemoveMember { account } => Payload::RemoveMember {
            account: ctx.account_id(&account)?,
        },
    })
}

/// `cairn sign`.
pub fn sign(
    ctx: &Ctx,
    payload_text: &str,
    nonce: u64,
    chain_id: String,
    from: &str,
    out: PathBuf,
) -> R<()> {
    let payload = payload(ctx, payload_text)?;
    let key = ctx.key(from)?;
    let tx = Transaction {
        chain_id,
        sender: key.public_key(),
        nonce,
        payload,
    }
    .sign(&key);
    let text = serde_json::to_string_pretty(&tx).map_err(|e| fail(LOCAL, e.to_string()))?;
    std::fs::write(&out, text).map_err(|e| fail(LOCAL, format!("{}: {e}", out.display())))?;
    let v = SignedFile {
        id: tx.id(),
        file: out,
    };
    print(ctx.json, &v, |v| {
        format!(
            "signed {} into {}; send it with `cairn submit {}`",
            v.id,
            v.file.display(),
            v.file.display()
        )
    });
    Ok(())
}

/// Reads a file `sign` wrote.
fn read_signed(file: &std::path::Path) -> R<SignedTransaction> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| fail(USAGE, format!("{}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        fail(
            USAGE,
            format!("{}: not a signed transaction: {e}", file.display()),
        )
    })
}

/// One file's outcome in `cairn submit FILE...`.
#[derive(serde::Serialize)]
struct FileOutcome {
    file: PathBuf,
    #[serde(flatten)]
    item: BatchItem,
}

/// `cairn submit FILE...`: one file as a single submission; several (all read before any is
/// sent) in batches, each answered on its own.
pub async fn submit_files(ctx: &Ctx, files: &[PathBuf], wait: bool) -> R<()> {
    let txs = files
        .iter()
        .map(|f| read_signed(f))
        .collect::<R<Vec<SignedTransaction>>>()?;
    if let [tx] = txs.as_slice() {
        return submit(ctx, tx, wait).await;
    }
    let spinner = (wait && !ctx.json).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!(
            "waiting for {} transactions to be final",
            txs.len()
        ));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    });
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut sent = 0;
    for (chunk, names) in txs.chunks(BATCH_TXS_MAX).zip(files.chunks(BATCH_TXS_MAX)) {
        let answer = match ctx.client.submit_batch(chunk, wait).await {
            Ok(a) => a,
            Err(e) => {
                if let Some(s) = &spinner {
                    s.finish_and_clear();
                }
                let mut f: Fail = e.into();
                if sent > 0 {
                    f.msg = format!(
                        "{} (the first {sent} files were sent and answered before this)",
                        f.msg
                    );
                }
                return Err(f);
            }
        };
        sent += chunk.len();
        outcomes.extend(
            names
                .iter()
                .cloned()
                .zip(answer.results)
                .map(|(file, item)| FileOutcome { file, item }),
        );
    }
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let refused = outcomes
        .iter()
        .filter(|o| o.item.status.is_none() || o.item.status == Some(TxStatus::Rejected))
        .count();
    let timed_out = outcomes
        .iter()
        .filter(|o| o.item.status == Some(TxStatus::Pending) && o.item.error.is_some())
        .count();
    print(ctx.json, &outcomes, |os| {
        os.iter()
            .map(|o| {
                let id = o
                    .item
                    .id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into());
                let what = match (o.item.status, &o.item.receipt, &o.item.error) {
                    (Some(TxStatus::Committed), Some(r), _) => {
                        format!(
                            "committed {id} at height {} (position {})",
                            r.height, r.index
                        )
                    }
                    (Some(TxStatus::Pending), _, Some(e)) => {
                        format!("pending {id}, not final in time ({})", e.message)
                    }
                    (Some(TxStatus::Pending), _, None) => format!("submitted {id} (pending)"),
                    (Some(TxStatus::Rejected), _, Some(e)) => {
                        format!("rejected {id}: {} ({})", e.message, e.code)
                    }
                    (_, _, Some(e)) => format!("refused {id}: {} ({})", e.message, e.code),
                    _ => format!("{id}: no answer"),
                };
                format!("{}: {what}", o.file.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    // The lines above name each failure; the exit code says there was one.
    if refused > 0 {
        if !ctx.json {
            eprintln!(
                "error: {refused} of {} transactions were refused or rejected",
                outcomes.len()
            );
        }
        return Err(Fail::reported(REJECTED));
    }
    if timed_out > 0 {
        if !ctx.json {
            eprintln!(
                "error: {timed_out} of {} transactions were not final in time; follow them with `cairn tx ID`",
                outcomes.len()
            );
        }
        return Err(Fail::reported(TIMEOUT));
    }
    Ok(())
}
