//! Committed reads, from a [`RocksReader`] on the reader threads: the explorer's pages, account
//! histories and records, event replay, and block sync answers. None of it passes through the
//! consensus task, so read load cannot delay ticks, elections or view changes.

use cairn_crypto::PublicKey;
use cairn_crypto::codec;
use cairn_ledger::state::{Account, StateKey};
use cairn_ledger::{
    BlockHash, ChainRead, Height, PublishedTree, RocksReader, StoreError, Tip, TxId,
};

use crate::views::*;
use crate::wire::{self, SyncRequest, SyncResponse};

/// A block reference from a URL.
#[derive(Debug, Clone, Copy)]
pub enum BlockRef {
    /// By height.
    Height(Height),
    /// By hash.
    Hash(BlockHash),
}

fn internal(e: StoreError) -> ApiError {
    ApiError::internal(e)
}

/// A page of blocks, newest first, below `before` (from the tip if `None`).
pub fn blocks(
    r: &RocksReader,
    before: Option<Height>,
    limit: usize,
) -> Result<BlockPage, ApiError> {
    let tip = r.tip().map_err(internal)?.height;
    let top = before.map(|b| b.saturating_sub(1)).unwrap_or(tip).min(tip);
    let mut blocks = Vec::new();
    let mut h = top;
    while h >= 1 && blocks.len() < limit {
        match r.header(h).map_err(internal)? {
            Some(header) => blocks.push(BlockSummary::of_header(&header)),
            None => break,
        }
        h -= 1;
    }
    let next = blocks.last().map(|b| b.height).filter(|h| *h > 1);
    Ok(BlockPage { blocks, next })
}

/// Block events from `from` on, oldest first, at most `limit` (event replay).
pub fn range(r: &RocksReader, from: Height, limit: usize) -> Result<Vec<ChainEvent>, ApiError> {
    let tip = r.tip().map_err(internal)?.height;
    let mut out = Vec::new();
    // A node joined from a snapshot has nothing below it: replay starts there.
    let mut h = from.max(r.base_height().map_err(internal)?);
    while h <= tip && out.len() < limit {
        let (Some(header), Some(txs)) = (
            r.header(h).map_err(internal)?,
            r.block_tx_ids(h).map_err(internal)?,
        ) else {
            break;
        };
        out.push(ChainEvent::Block {
            block: BlockSummary::of_header(&header),
            txs,
        });
        h += 1;
    }
    Ok(out)
}

/// One block with its certificate.
pub fn block(r: &RocksReader, at: BlockRef) -> Result<BlockView, ApiError> {
    let h = match at {
        BlockRef::Height(h) => h,
        BlockRef::Hash(hash) => r
            .height_of(&hash)
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found(format!("no block with hash {hash}")))?,
    };
    if h == 0 {
        return Err(ApiError::not_found(
            "height 0 is the genesis state, not a block: see GET /api/v1/status for its hash",
        ));
    }
    let base = r.base_height().map_err(internal)?;
    if h < base {
        return Err(ApiError::new(
            410,
            ErrorCode::NotFound,
            format!(
                "block {h} is not on this node: it joined from a snapshot at height {base} and \
                 holds no block below it; ask a node that replayed the chain"
            ),
        ));
    }
    let not_found = || {
        let tip = r.tip().map(|t| t.height).unwrap_or(0);
        ApiError::not_found(format!("no block at height {h} (the tip is {tip})"))
    };
    let block = r.block(h).map_err(internal)?.ok_or_else(not_found)?;
    let certificate = r.certificate(h).map_err(internal)?.ok_or_else(not_found)?;
    Ok(BlockView {
        height: h,
        hash: block.hash(),
        block,
        certificate,
    })
}

/// A committed transaction with its receipt and inclusion proof, if it is committed.
pub fn committed_tx(r: &RocksReader, id: TxId) -> Result<Option<TxView>, ApiError> {
    let Some(loc) = r.tx_location(&id).map_err(internal)? else {
        return Ok(None);
    };
    let block = r
        .block(loc.height)
        .map_err(internal)?
        .ok_or_else(|| ApiError::internal("indexed transaction's block is missing"))?;
    Ok(Some(TxView {
        id,
        status: TxStatus::Committed,
        tx: block.txs.get(loc.index as usize).cloned(),
        receipt: Some(ReceiptView {
            height: loc.height,
            index: loc.index,
            block_hash: block.hash(),
            block_time_ms: block.header.timestamp_ms,
        }),
        proof: block.inclusion_proof(loc.index as usize),
        reason: None,
    }))
}

/// An account, read at one consistent tip.
pub fn account(r: &RocksReader, id: PublicKey) -> Result<AccountView, ApiError> {
    let (a, tip) = r.account_at_tip(&id).map_err(internal)?;
    Ok(account_view(id, a, tip.height, None))
}

fn account_view(
    id: PublicKey,
    a: Option<Account>,
    height: Height,
    proof: Option<StateProofView>,
) -> AccountView {
    AccountView {
        id,
        exists: a.is_some(),
        balance: a.as_ref().map_or(0, |a| a.balance),
        nonce: a.as_ref().map_or(0, |a| a.nonce),
        role: a.and_then(|a| a.role),
        height,
        proof,
    }
}

/// An account with the proof of it (or of its absence) at the committed height.
pub fn proved_account(
    r: &RocksReader,
    tree: &PublishedTree,
    id: PublicKey,
) -> Result<AccountView, ApiError> {
    let (value, proof) = state_proof(r, tree, &StateKey::Account(id))?;
    let a: Option<Account> = value
        .map(|v| codec::decode(&v))
        .transpose()
        .map_err(|e| ApiError::internal(format!("a stored account does not decode: {e}")))?;
    Ok(account_view(id, a, proof.height, Some(proof)))
}

/// How often a proof read tries again when a commit lands between its two reads.
const PROOF_TRIES: usize = 200;

/// The proof of `key` in the committed state with the certified block it is against, and the
/// value it proves. The tree and the store are two reads; they are taken again until both
/// are at one height (a commit lands between them for a moment at most).
fn state_proof(
    r: &RocksReader,
    tree: &PublishedTree,
    key: &StateKey,
) -> Result<(Option<Vec<u8>>, StateProofView), ApiError> {
    let bytes = key.to_bytes();
    for _ in 0..PROOF_TRIES {
        let (tip, t): (Tip, _) = tree.get();
        let (value, at) = r.entry_at_tip(key).map_err(internal)?;
        if at.height != tip.height {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        let proof = t.prove(&bytes);
        proof
            .verify(&tip.state_root, &bytes, value.as_deref())
            .map_err(|e| {
                ApiError::internal(format!(
                    "the state tree and the store disagree at height {}: {e}",
                    tip.height
                ))
            })?;
        let (header, certificate) = if tip.height == 0 {
            (None, None)
        } else {
            let missing = || ApiError::internal(format!("block {} is missing", tip.height));
            (
                Some(
                    r.header(tip.height)
                        .map_err(internal)?
                        .ok_or_else(missing)?,
                ),
                Some(
                    r.certificate(tip.height)
                        .map_err(internal)?
                        .ok_or_else(missing)?,
                ),
            )
        };
        let view = StateProofView {
            height: tip.height,
            header,
            certificate,
            key: hex::encode(&bytes),
            value: value.as_deref().map(hex::encode),
            proof,
        };
        return Ok((value, view));
    }
    Err(ApiError::unavailable(
        "the state kept moving while the proof was read; try again",
    ))
}

/// An account's committed transactions below `before`, newest first, from the account
/// index. A page ends on a block boundary (the cursor is a height), so it may hold a few more
/// than `limit`.
pub fn account_txs(
    r: &RocksReader,
    id: PublicKey,
    before: Option<Height>,
    limit: usize,
) -> Result<AccountTxPage, ApiError> {
    let tip = r.tip().map_err(internal)?.height;
    let below = before.unwrap_or(tip + 1).min(tip + 1);
    let found = r.account_txs(&id, below, limit).map_err(internal)?;
    // Whether anything is left below the page's last block.
    let next = match found.last() {
        Some(last)
            if !r
                .account_txs(&id, last.height, 1)
                .map_err(internal)?
                .is_empty() =>
        {
            Some(last.height)
        }
        _ => None,
    };
    let txs = found
        .into_iter()
        .map(|t| AccountTx {
            id: t.tx.id(),
            height: t.height,
            index: t.index,
            tx: t.tx,
        })
        .collect();
    Ok(AccountTxPage { txs, next })
}

/// A page of an account's records after `after`, in key order.
pub fn records(
    r: &RocksReader,
    owner: PublicKey,
    after: Option<&str>,
    limit: usize,
) -> Result<RecordPage, ApiError> {
    let mut found = r.records(&owner, after, limit + 1).map_err(internal)?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next = if more {
        found.last().map(|e| e.key.clone())
    } else {
        None
    };
    Ok(RecordPage {
        records: found
            .into_iter()
            .map(|e| RecordView::of(owner, e.key, &e.value))
            .collect(),
        next,
    })
}

/// One record; with `tree`, with the proof of it (or of its absence: then `absent`) at the
/// committed height.
pub fn record(
    r: &RocksReader,
    owner: PublicKey,
    key: &str,
    tree: Option<&PublishedTree>,
) -> Result<RecordView, ApiError> {
    use cairn_ledger::StateView;
    let (value, proof) = match tree {
        Some(tree) => {
            let (v, p) = state_proof(r, tree, &StateKey::Record(owner, key.to_string()))?;
            (v, Some(p))
        }
        None => (r.record(&owner, key).map_err(internal)?, None),
    };
    match (value, proof) {
        (Some(v), proof) => Ok(RecordView {
            proof,
            ..RecordView::of(owner, key.to_string(), &v)
        }),
        // Asked for a proof: the absence is proved too.
        (None, Some(proof)) => Ok(RecordView {
            proof: Some(proof),
            absent: true,
            ..RecordView::of(owner, key.to_string(), &[])
        }),
        (None, None) => Err(ApiError::not_found(format!(
            "account {owner} has no record {key:?}"
        ))),
    }
}

/// Blocks with certificates from `req.from` on, for a peer: at most `SYNC_BLOCKS_MAX`, and
/// about half the largest response, so one answer always fits.
pub fn sync_response(r: &RocksReader, req: SyncRequest) -> Result<SyncResponse, StoreError> {
    let tip = r.tip()?.height;
    let last = tip.min(
        req.from
            .saturating_add(u64::from(req.max_blocks.min(wire::SYNC_BLOCKS_MAX)))
            .saturating_sub(1),
    );
    let mut blocks = Vec::new();
    let mut size = 0usize;
    let mut h = req.from.max(1);
    while h <= last {
        let (Some(b), Some(c)) = (r.block(h)?, r.certificate(h)?) else {
            break;
        };
        size += b.encoded_len() + 1024;
        if !blocks.is_empty() && size > wire::SYNC_RESPONSE_BYTES_MAX / 2 {
            break;
        }
        blocks.push((b, c));
        h += 1;
    }
    Ok(SyncResponse { tip, blocks })
}
